//! The SIP receive path: parsing around rsip, digest and SDP parsing, and
//! the user agent handling the datagram mid-registration and mid-call.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_sip::fuzzing::receive(data));
