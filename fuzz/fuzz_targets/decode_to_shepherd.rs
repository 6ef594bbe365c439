//! Messages from the library to the shepherd: one payload, and a stream.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use netrunner_proto::{Encode, ToShepherd, PROTOCOL_VERSION};

fuzz_target!(|data: &[u8]| {
    let hello = ToShepherd::Hello {
        version: PROTOCOL_VERSION,
    }
    .to_frame();
    common::check::<ToShepherd>(data, &hello);
});
