//! Messages from the shepherd to the library: one payload, and a stream.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use netrunner_proto::{Encode, FromShepherd, PROTOCOL_VERSION};

fuzz_target!(|data: &[u8]| {
    let hello = FromShepherd::Hello {
        version: PROTOCOL_VERSION,
    }
    .to_frame();
    common::check::<FromShepherd>(data, &hello);
});
