//! The media anchoring parsers: rtpengine ng replies (bencode) and SDP
//! rewriting, alone and inside a PBX.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_pbx::fuzzing::anchor(data));
