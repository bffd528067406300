//! Untrusted text through the JSON → MessagePack transcoder (the wasm
//! package's `encode` fast path): never a panic, and what it writes is one
//! MessagePack value that transcodes back to JSON unless it holds a float
//! JSON cannot write (an overflowing exponent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmbus_core::json_msgpack::to_msgpack;
use swarmbus_core::msgpack::MAX_DEPTH;
use swarmbus_core::msgpack_json::{to_json, ToJsonError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut bytes = Vec::new();
    if to_msgpack(text, MAX_DEPTH, &mut bytes).is_ok() {
        let mut back = String::new();
        match to_json(&bytes, MAX_DEPTH, &mut back) {
            Ok(()) | Err(ToJsonError::NotJson(_)) => {}
            Err(e) => panic!("the transcoder wrote invalid MessagePack: {e:?}"),
        }
    }
});
