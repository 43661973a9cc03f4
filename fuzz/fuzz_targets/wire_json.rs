//! Every JSON body and client event the server parses from the network.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| myturn_wire::fuzzing::wire_json(data));
