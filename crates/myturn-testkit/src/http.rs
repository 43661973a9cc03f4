//! JSON over real HTTP in tests (feature `http`): what a test asks a
//! server it started, with reqwest, the way a client would.

/// `GET url` with `token` as the bearer token: the JSON body (a test
/// failure if there is none).
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let resp = http.get(url).bearer_auth(token).send().await.unwrap();
    resp.json().await.unwrap()
}
