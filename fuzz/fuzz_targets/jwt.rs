//! Access-token verification on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_server::fuzzing::jwt(data));
