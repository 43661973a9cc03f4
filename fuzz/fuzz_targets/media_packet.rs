//! RTP parsing and sealed-packet opening on arbitrary datagrams.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_media::fuzzing::packet(data));
