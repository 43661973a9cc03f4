//! An authentic peer's audio plaintext: frame format, capability list,
//! decoders and the playout.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_media::fuzzing::audio(data));
