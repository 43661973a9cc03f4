//! The built-in PBX's receive path: any datagram, twice, then its timers.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_pbx::fuzzing::receive(data));
