//! The browser's media: a page's datagrams and control messages, and its
//! WebRTC offer, on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_server::fuzzing::web_media(data));
