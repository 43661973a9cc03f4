//! SIP over TLS: framing a byte stream into messages and keep-alives,
//! however the bytes arrive.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_sip::fuzzing::stream(data));
