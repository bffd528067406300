//! Untrusted bytes through the MessagePack → JSON transcoder (the wasm
//! package's `decode` fast path): never a panic, and every text it writes is
//! valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmbus_core::msgpack::MAX_DEPTH;
use swarmbus_core::msgpack_json::to_json;

fuzz_target!(|data: &[u8]| {
    let mut out = String::new();
    if to_json(data, MAX_DEPTH, &mut out).is_ok() {
        serde_json::from_str::<serde_json::Value>(&out).expect("the transcoder writes valid JSON");
    }
});
