//! The handshake state machine fed arbitrary datagram sequences.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_media::fuzzing::handshake(data));
