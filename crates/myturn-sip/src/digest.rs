//! HTTP Digest authentication for SIP (RFC 3261 §22.4, RFC 7616, RFC 8760).
//!
//! Both sides: a UAC answers a [`Challenge`] with [`respond`]; a registrar
//! checks [`Credentials`] with [`verify`]. Algorithms `MD5`, `MD5-sess`,
//! `SHA-256` and `SHA-256-sess`, with `qop=auth` (nc + cnonce) or without
//! qop (RFC 2069 compatibility). Parsing is done here, not by `rsip`, which
//! refuses the RFC 8760 spelling `algorithm=SHA-256`.

use md5::{Digest as _, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::msg::split_outside_quotes;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// `MD5` (RFC 2617), what SIPp and older PBXs speak.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// Parses the `algorithm` parameter; `None` for unsupported ones.
    /// `sha256` (rsip's spelling) is accepted too.
    pub fn parse(s: &str) -> Option<Algorithm> {
        let s = s.trim_matches('"');
        Some(match s.to_ascii_uppercase().as_str() {
            "MD5" => Algorithm::Md5,
            "MD5-SESS" => Algorithm::Md5Sess,
            "SHA-256" | "SHA256" => Algorithm::Sha256,
            "SHA-256-SESS" | "SHA256-SESS" => Algorithm::Sha256Sess,
            _ => return None,
        })
    }

    /// The name as written in the `algorithm` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex of the hash of `parts` joined by `:`.
    pub fn hash(self, parts: &[&str]) -> String {
        fn run<D: md5::Digest>(mut d: D, parts: &[&str]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => run(Md5::new(), parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => run(Sha256::new(), parts),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// Why a header could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not a Digest header")]
    /// The header's scheme is not `Digest`.
    NotDigest,
    #[error("missing or malformed parameter `{0}`")]
    /// A parameter is missing or unreadable.
    Param(&'static str),
    #[error("unsupported algorithm `{0}`")]
    /// An algorithm this implementation does not know.
    Algorithm(String),
    #[error("no supported qop offered")]
    /// The challenge offers qop values, none of them `auth`.
    Qop,
}

/// `name=value` pairs of a Digest header, values unquoted.
fn params(value: &str) -> Result<Vec<(String, String)>, DigestError> {
    let v = value.trim_start();
    let rest = v
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("digest"))
        .map(|_| &v[6..])
        .ok_or(DigestError::NotDigest)?;
    if !rest.starts_with([' ', '\t']) {
        return Err(DigestError::NotDigest);
    }
    let mut out = Vec::new();
    for part in split_outside_quotes(rest, b',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .ok_or(DigestError::Param("auth-param"))?;
        let v = v.trim();
        let v = if let Some(inner) = v.strip_prefix('"') {
            let inner = inner
                .strip_suffix('"')
                .ok_or(DigestError::Param("quoting"))?;
            inner.replace("\\\"", "\"").replace("\\\\", "\\")
        } else {
            v.to_owned()
        };
        out.push((k.trim().to_ascii_lowercase(), v));
    }
    Ok(out)
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// A Digest header's parameters and the algorithm they name: what a
/// challenge and credentials are read from.
struct Params {
    pairs: Vec<(String, String)>,
    algorithm: Algorithm,
}

impl Params {
    fn parse(value: &str) -> Result<Params, DigestError> {
        let pairs = params(value)?;
        // MD5 when absent (RFC 7616 §3.3).
        let algorithm = match get(&pairs, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or_else(|| DigestError::Algorithm(a.to_owned()))?,
        };
        Ok(Params { pairs, algorithm })
    }

    fn get(&self, k: &str) -> Option<&str> {
        get(&self.pairs, k)
    }

    /// Parameter `k`, which must be there.
    fn required(&self, k: &'static str) -> Result<String, DigestError> {
        self.get(k).map(str::to_owned).ok_or(DigestError::Param(k))
    }

    /// Parameter `k`, if there.
    fn optional(&self, k: &str) -> Option<String> {
        self.get(k).map(str::to_owned)
    }
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space (`realm`).
    pub realm: String,
    /// The server's nonce.
    pub nonce: String,
    /// `opaque`, echoed back unchanged.
    pub opaque: Option<String>,
    /// The hash to answer with.
    pub algorithm: Algorithm,
    /// The server offered `qop=auth`.
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired, the credentials were right.
    pub stale: bool,
}

impl Challenge {
    /// Parses a challenge header value.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let p = Params::parse(value)?;
        let qop_auth = match p.get("qop") {
            None => false,
            Some(q) if q.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")) => true,
            Some(_) => return Err(DigestError::Qop),
        };
        Ok(Challenge {
            realm: p.required("realm")?,
            nonce: p.required("nonce")?,
            opaque: p.optional("opaque"),
            algorithm: p.algorithm,
            qop_auth,
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Picks the strongest challenge this crate supports (RFC 8760 §2.4:
    /// a server may offer several, most preferred first).
    pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        values
            .into_iter()
            .filter_map(|v| Challenge::parse(v).ok())
            .max_by_key(|c| matches!(c.algorithm, Algorithm::Sha256 | Algorithm::Sha256Sess))
    }

    /// The header value a server sends.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}",
            self.realm,
            self.nonce,
            self.algorithm.as_str()
        );
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{o}\""));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }
}

/// An `Authorization` / `Proxy-Authorization` Digest response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The digest username.
    pub username: String,
    /// The realm answered.
    pub realm: String,
    /// The server's nonce, echoed.
    pub nonce: String,
    /// The `uri` the response covers (the Request-URI).
    pub uri: String,
    /// The response hash (hex).
    pub response: String,
    /// The hash used.
    pub algorithm: Algorithm,
    /// `opaque`, as the challenge gave it.
    pub opaque: Option<String>,
    /// `Some((cnonce, nc))` with `qop=auth`.
    pub qop: Option<(String, u32)>,
}

impl Credentials {
    /// Parses a credentials header value.
    pub fn parse(value: &str) -> Result<Credentials, DigestError> {
        let p = Params::parse(value)?;
        let qop = match p.get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let cnonce = p.required("cnonce")?;
                let nc = p
                    .get("nc")
                    .filter(|n| n.len() == 8)
                    .and_then(|n| u32::from_str_radix(n, 16).ok())
                    .ok_or(DigestError::Param("nc"))?;
                Some((cnonce, nc))
            }
            Some(_) => return Err(DigestError::Qop),
        };
        Ok(Credentials {
            username: p.required("username")?,
            realm: p.required("realm")?,
            nonce: p.required("nonce")?,
            uri: p.required("uri")?,
            response: p.required("response")?,
            algorithm: p.algorithm,
            opaque: p.optional("opaque"),
            qop,
        })
    }

    /// The header value (`Digest username="…", …`).
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
            self.username,
            self.realm,
            self.nonce,
            self.uri,
            self.response,
            self.algorithm.as_str()
        );
        if let Some((cnonce, nc)) = &self.qop {
            s.push_str(&format!(", cnonce=\"{cnonce}\", qop=auth, nc={nc:08x}"));
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{o}\""));
        }
        s
    }
}

/// The `response` value (RFC 7616 §3.4.1, RFC 2617 §3.2.2).
#[allow(clippy::too_many_arguments)]
pub(crate) fn compute(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<(&str, u32)>,
) -> String {
    let mut ha1 = algorithm.hash(&[username, realm, password]);
    if algorithm.is_sess() {
        let cnonce = qop.map(|(c, _)| c).unwrap_or_default();
        ha1 = algorithm.hash(&[&ha1, nonce, cnonce]);
    }
    let ha2 = algorithm.hash(&[method, uri]);
    match qop {
        Some((cnonce, nc)) => {
            let nc = format!("{nc:08x}");
            algorithm.hash(&[&ha1, nonce, &nc, cnonce, "auth", &ha2])
        }
        None => algorithm.hash(&[&ha1, nonce, &ha2]),
    }
}

/// The UAC side: credentials answering `challenge` for `method uri`.
/// `cnonce` comes from the caller's RNG; `nc` counts uses of this nonce.
pub fn respond(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Credentials {
    let qop = challenge.qop_auth.then(|| (cnonce.to_owned(), nc));
    let response = compute(
        challenge.algorithm,
        username,
        &challenge.realm,
        password,
        &challenge.nonce,
        method,
        uri,
        qop.as_ref().map(|(c, n)| (c.as_str(), *n)),
    );
    Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response,
        algorithm: challenge.algorithm,
        opaque: challenge.opaque.clone(),
        qop,
    }
}

/// The server side: whether `creds` prove knowledge of `password` for
/// `method`. Compares in constant time. Nonce freshness and replay (nc)
/// are the caller's to check.
pub fn verify(creds: &Credentials, password: &str, method: &str) -> bool {
    let expected = compute(
        creds.algorithm,
        &creds.username,
        &creds.realm,
        password,
        &creds.nonce,
        method,
        &creds.uri,
        creds.qop.as_ref().map(|(c, n)| (c.as_str(), *n)),
    );
    expected.as_bytes().ct_eq(creds.response.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's example (MD5, qop=auth), method GET.
    #[test]
    fn rfc2617_vector() {
        let r = compute(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            Some(("0a4f113b", 1)),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 7616 §3.9.1's examples: the same request with MD5 and SHA-256.
    #[test]
    fn rfc7616_vectors() {
        let args = (
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "GET",
            "/dir/index.html",
            Some(("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", 1)),
        );
        let md5 = compute(
            Algorithm::Md5,
            args.0,
            args.1,
            args.2,
            args.3,
            args.4,
            args.5,
            args.6,
        );
        assert_eq!(md5, "8ca523f5e9506fed4657c9700eebdbec");
        let sha = compute(
            Algorithm::Sha256,
            args.0,
            args.1,
            args.2,
            args.3,
            args.4,
            args.5,
            args.6,
        );
        assert_eq!(
            sha,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn challenge_parsing_and_choice() {
        let md5 = "Digest realm=\"asterisk\", nonce=\"36a99e6c\", algorithm=MD5";
        let sha = "Digest realm=\"x\", nonce=\"n, with comma\", qop=\"auth,auth-int\", algorithm=SHA-256, opaque=\"o\"";
        let c = Challenge::parse(sha).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.nonce, "n, with comma");
        assert!(c.qop_auth);
        assert_eq!(c.opaque.as_deref(), Some("o"));
        assert_eq!(
            Challenge::choose([md5, sha]).unwrap().algorithm,
            Algorithm::Sha256
        );
        assert_eq!(Challenge::choose([md5]).unwrap().algorithm, Algorithm::Md5);
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(DigestError::Algorithm("SHA-512-256".into()))
        );
        assert_eq!(
            Challenge::parse("Basic realm=\"r\""),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
            Err(DigestError::Qop)
        );
        let back = Challenge::parse(&c.to_header_value()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn respond_then_verify_round_trip() {
        for alg in [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ] {
            for qop in [false, true] {
                let ch = Challenge {
                    realm: "myturn".into(),
                    nonce: "abc".into(),
                    opaque: None,
                    algorithm: alg,
                    qop_auth: qop,
                    stale: false,
                };
                let cr = respond(&ch, "111000", "pw", "REGISTER", "sip:127.0.0.1", "cn", 3);
                let parsed = Credentials::parse(&cr.to_header_value()).unwrap();
                assert_eq!(parsed, cr);
                assert!(verify(&parsed, "pw", "REGISTER"));
                assert!(!verify(&parsed, "pW", "REGISTER"));
                assert!(!verify(&parsed, "pw", "INVITE"));
            }
        }
    }
}
