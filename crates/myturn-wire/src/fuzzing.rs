//! Entry points shared by the fuzz targets (`fuzz/`) and the smoke tests
//! that run the same bodies on the stable toolchain.

use crate::{
    validate_name, validate_text, AdmitRequest, BanRequest, ClientEvent, CreateUserRequest,
    LobbySay, RefreshRequest, ReportRequest, SetStatusRequest, LOBBY_MAX_LEN, REPORT_MAX_LEN,
};

/// Everything a client can send as JSON, and the text validators.
/// Must never panic.
pub fn wire_json(data: &[u8]) {
    let _ = serde_json::from_slice::<CreateUserRequest>(data);
    let _ = serde_json::from_slice::<SetStatusRequest>(data);
    let _ = serde_json::from_slice::<RefreshRequest>(data);
    let _ = serde_json::from_slice::<ReportRequest>(data);
    let _ = serde_json::from_slice::<AdmitRequest>(data);
    let _ = serde_json::from_slice::<BanRequest>(data);
    let _ = serde_json::from_slice::<LobbySay>(data);
    if let Ok(ClientEvent::LobbySay { text }) = serde_json::from_slice::<ClientEvent>(data) {
        let _ = validate_text(&text, LOBBY_MAX_LEN);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if validate_name(s).is_ok() {
            // The promise: a valid name holds only config-safe bytes.
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        }
        let _ = validate_text(s, REPORT_MAX_LEN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_body_survives_random_and_mutated_inputs() {
        // A deterministic xorshift so the test needs no RNG crate.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: &[&[u8]] = &[
            br#"{"name":"alice"}"#,
            br#"{"type":"lobby_say","text":"hi"}"#,
            br#"{"type":"reauth","token":"a.b.c"}"#,
            br#"{"status":"ready"}"#,
            br#"{"name":"bob","seconds":60}"#,
        ];
        for i in 0..20_000 {
            let seed = seeds[i % seeds.len()];
            let mut v = seed.to_vec();
            for _ in 0..(next() % 4) {
                let pos = (next() as usize) % (v.len() + 1);
                match next() % 3 {
                    0 if pos < v.len() => v[pos] = next() as u8,
                    1 => v.insert(pos, next() as u8),
                    _ if pos < v.len() => {
                        v.remove(pos);
                    }
                    _ => {}
                }
            }
            wire_json(&v);
        }
    }
}
