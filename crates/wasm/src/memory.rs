//! `memoryStats()`: what the module holds right now.

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::convert::to_js;
use crate::error::Result;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemoryStats {
    wasm_bytes: f64,
    live_allocations: usize,
    live_bytes: usize,
}

/// `{wasmBytes, liveAllocations, liveBytes}`: the size of linear memory and
/// what the allocator holds (counted by a wrapper around the system allocator).
#[wasm_bindgen(js_name = memoryStats, unchecked_return_type = "MemoryStats")]
pub fn memory_stats() -> Result<JsValue> {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    let wasm_bytes = memory.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as f64;
    #[cfg(target_arch = "wasm32")]
    let (live_allocations, live_bytes) =
        (crate::alloc_counter::live_allocations(), crate::alloc_counter::live_bytes());
    #[cfg(not(target_arch = "wasm32"))]
    let (live_allocations, live_bytes) = (0, 0);
    to_js(&MemoryStats { wasm_bytes, live_allocations, live_bytes })
}
