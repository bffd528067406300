//! `encode` / `decode` (MessagePack ⇄ plain JS values) and the envelope functions.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use js_sys::{Object, Reflect, Uint8Array};
use serde::Deserialize;
use swarmbus_core::envelope::{self, EnvelopeInput};
use swarmbus_core::json_msgpack::{self, JsonError};
use swarmbus_core::msgpack_json::{self, ToJsonError};
use swarmbus_core::CodecError;
use wasm_bindgen::prelude::*;

use crate::convert::{own_fields, priority_from_js, u64_to_js};
use crate::error::{Error, Result};

pub(crate) use swarmbus_core::msgpack::MAX_DEPTH;

/// Encodes any JSON-compatible value as MessagePack, plus `Uint8Array` /
/// `ArrayBuffer` (bin), `BigInt` (64-bit integers), `Map`, `NaN` and ±`Infinity`.
/// `undefined` becomes nil and `toJSON()` is honoured, as in `JSON.stringify`.
/// A cycle, nesting deeper than 128 levels, a function or a throwing getter is
/// `INVALID_ARGUMENT`.
#[wasm_bindgen]
pub fn encode(value: JsValue) -> Result<Vec<u8>> {
    // Fast path: the engine's JSON.stringify walks the value, core transcodes the text.
    let text = json_text(&value);
    if let Some(text) = text.as_string() {
        let mut out = Vec::with_capacity(text.len() + 8);
        json_msgpack::to_msgpack(&text, MAX_DEPTH, &mut out).map_err(|e| match e.reason {
            JsonError::TOO_DEEP => {
                Error::invalid(format_args!("the value nests deeper than {MAX_DEPTH} levels"))
            }
            _ => Error::new("ENCODE_ERROR", format_args!("internal: {e}")),
        })?;
        return Ok(out);
    }
    if !text.is_undefined() {
        return Err(Error::thrown("INVALID_ARGUMENT", "cannot encode", &text));
    }
    // Bytes, BigInt, Map or a non-finite number somewhere: the exact path walks a
    // plain copy (read once inside a JS try), so no getter or Proxy runs from Rust.
    let value = crate::convert::plain(&value)?;
    let mut out = Vec::new();
    crate::exact::encode_value(&value, &mut out, MAX_DEPTH)?;
    Ok(out)
}

#[wasm_bindgen(module = "/src/helpers.js")]
extern "C" {
    /// `value` as JSON text (`undefined` → `null`); `undefined` when it holds
    /// something JSON cannot carry exactly; what was thrown for a cycle or a throwing getter.
    fn json_text(value: &JsValue) -> JsValue;
}

/// Decodes MessagePack into plain JS values: maps become objects, bin becomes
/// `Uint8Array`, integers beyond ±2^53 become `BigInt`.
#[wasm_bindgen(js_name = decode)]
pub fn decode_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array | number[]")] bytes: JsValue,
) -> Result<JsValue> {
    with_bytes(&bytes, decode)
}

/// [`decode_js`] of bytes already in wasm memory.
pub fn decode(bytes: &[u8]) -> Result<JsValue> {
    // Fast path: the value as JSON text, written in one pass and handed to the
    // engine's JSON.parse, which builds objects faster than any path across the boundary.
    let mut json = String::with_capacity(bytes.len() + bytes.len() / 2 + 8);
    match msgpack_json::to_json(bytes, MAX_DEPTH, &mut json) {
        Ok(()) => js_sys::JSON::parse(&json).map_err(|_| Error::decode("internal: JSON fast path failed")),
        Err(ToJsonError::Invalid(e)) => Err(invalid_msgpack(&e)),
        Err(ToJsonError::NotJson(_)) => {
            drop(json);
            crate::exact::decode_value(bytes)
        }
    }
}

/// The `DECODE_ERROR` for bytes that are not one MessagePack value.
pub(crate) fn invalid_msgpack(e: &CodecError) -> Error {
    match e {
        CodecError::Truncated => Error::decode("invalid MessagePack: the input ends inside a value"),
        CodecError::TrailingBytes(n) => Error::decode(format_args!("{n} bytes after the end of the value")),
        CodecError::TooDeep { .. } => {
            Error::decode(format_args!("invalid MessagePack: nested deeper than {MAX_DEPTH} levels"))
        }
        CodecError::UnexpectedType { .. } => Error::decode("invalid MessagePack: marker 0xc1 is never used"),
        other => Error::decode(format_args!("invalid MessagePack: {other}")),
    }
}

/// A JS payload kept as is while the rest of the input is deserialized.
struct JsPayload(JsValue);

impl<'de> Deserialize<'de> for JsPayload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> core::result::Result<Self, D::Error> {
        serde_wasm_bindgen::preserve::deserialize(deserializer).map(JsPayload)
    }
}

thread_local! {
    static NEXT_ENVELOPE_ID: Cell<u64> = Cell::new((js_sys::Math::random() * (1u64 << 40) as f64) as u64 * 1_000);
}

/// The next envelope id of this module instance: random start, then counting.
pub(crate) fn next_envelope_id() -> u64 {
    reserve_envelope_ids(1)
}

/// Reserves `count` consecutive envelope ids; returns the first.
pub(crate) fn reserve_envelope_ids(count: u64) -> u64 {
    NEXT_ENVELOPE_ID.with(|n| {
        let first = n.get();
        n.set(first + count);
        first
    })
}

/// Payload bytes of a JS value: a `Uint8Array` as is, anything else MessagePack-encoded.
pub(crate) fn payload_bytes(payload: JsValue) -> Result<Vec<u8>> {
    if payload.is_instance_of::<Uint8Array>() {
        bytes_from_js(&payload)
    } else {
        encode(payload)
    }
}

/// Encodes an envelope. `payload` is sent as is when it is a `Uint8Array` and
/// MessagePack-encoded otherwise; `id` defaults to a per-instance counter,
/// `priority` to 5, the timestamp is `Date.now()`.
#[wasm_bindgen(js_name = encodeEnvelope)]
pub fn encode_envelope(
    #[wasm_bindgen(unchecked_param_type = "EnvelopeInput")] input: JsValue,
) -> Result<Vec<u8>> {
    // One guarded read of the input's own fields (the payload is encoded, guarded, below).
    let fields = own_fields(&input)?;
    // `fields` is a plain object this module made: reading it runs no user code.
    let priority = Reflect::get(&fields, &"priority".into()).unwrap_or(JsValue::UNDEFINED);
    if let Some(priority) = priority_from_js(&priority)? {
        set(fields.unchecked_ref(), "priority", &priority.get().into());
    }
    // serde-wasm-bindgen describes a mistyped object with wasm-bindgen's debug
    // formatter, which reads it (Proxy traps, getters): only primitives reach it.
    for key in js_sys::Object::keys(fields.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        let value = Reflect::get(&fields, &key.as_str().into()).unwrap_or(JsValue::UNDEFINED);
        if key != "payload" && (value.is_object() || value.is_function()) {
            return Err(Error::invalid(format_args!("`{key}` must be a string or a number")));
        }
    }
    let input: EnvelopeInput<JsPayload> = serde_wasm_bindgen::from_value(fields).map_err(Error::invalid)?;
    let envelope =
        input.into_envelope(next_envelope_id, js_sys::Date::now() as u64, |p| payload_bytes(p.0))?;
    Ok(envelope.encode()?)
}

/// Decodes an envelope; `payload` is a `Uint8Array`, optional fields are omitted when absent.
#[wasm_bindgen(js_name = decodeEnvelope, unchecked_return_type = "DecodedEnvelope")]
pub fn decode_envelope(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array | number[]")] bytes: JsValue,
) -> Result<JsValue> {
    with_bytes(&bytes, envelope_object)
}

fn envelope_object(bytes: &[u8]) -> Result<JsValue> {
    let env = envelope::decode_ref(bytes, &envelope::Limits::default())?;
    let optional = |value: Option<&str>| value.map_or(JsValue::UNDEFINED, JsValue::from_str);
    Ok(make_envelope(
        &u64_to_js(env.id),
        &topic_string(env.topic),
        env.priority.get(),
        &u64_to_js(env.timestamp_ms),
        &env.ttl_ms.map_or(JsValue::UNDEFINED, u64_to_js),
        &optional(env.sender),
        &optional(env.swarm),
        &optional(env.correlation_id),
        &Uint8Array::from(env.payload),
    ))
}

/// Reads `{id, topic, priority}` without decoding the rest of the envelope:
/// only the envelope's first bytes cross into wasm, so the cost does not grow
/// with the payload.
#[wasm_bindgen(js_name = peekHeader, unchecked_return_type = "EnvelopeHeader")]
pub fn peek_header(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array | number[]")] bytes: JsValue,
) -> Result<JsValue> {
    with_header(&bytes, |header| {
        Ok(make_header(&u64_to_js(header.id), &topic_string(header.topic), header.priority.get()))
    })
}

thread_local! {
    /// JS strings of recently seen topics: decoding UTF-8 into a JS string costs
    /// more than the whole header read.
    static TOPIC_STRINGS: RefCell<HashMap<Box<str>, JsValue>> = RefCell::new(HashMap::new());
}

/// The JS string of a topic, from a bounded cache.
pub(crate) fn topic_string(topic: &str) -> JsValue {
    const MAX_ENTRIES: usize = 1024;
    TOPIC_STRINGS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(js) = cache.get(topic) {
            return js.clone();
        }
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        let js = JsValue::from_str(topic);
        cache.insert(Box::from(topic), js.clone());
        js
    })
}

thread_local! {
    /// This module's `WebAssembly.Memory`, for `copy_prefix`.
    static MEMORY: JsValue = wasm_bindgen::memory();
}

/// Reads an envelope's header from a JS `Uint8Array` (or array of numbers),
/// copying only its first bytes into wasm memory, in one call.
pub(crate) fn with_header<T>(
    bytes: &JsValue,
    f: impl FnOnce(envelope::Header<'_>) -> Result<T>,
) -> Result<T> {
    // A header is at most 1 + 1 + 9 + 5 + MAX_TOPIC_LEN + 1 bytes, so the prefix always holds it.
    const PREFIX: usize = 512;
    const _: () = assert!(PREFIX >= 17 + swarmbus_core::topic::MAX_TOPIC_LEN);
    let mut prefix = [0u8; PREFIX];
    let len = copy_in(bytes, &mut prefix)?;
    f(envelope::peek_header(&prefix[..len.min(PREFIX)])?)
}

/// Copies the first `out.len()` bytes of a JS `Uint8Array` (or array of
/// numbers) into `out`, guarded; returns its full length.
fn copy_in(bytes: &JsValue, out: &mut [u8]) -> Result<usize> {
    let len = MEMORY.with(|memory| copy_prefix(bytes, memory, out.as_mut_ptr() as usize, out.len()));
    match len {
        -1.0 => Err(Error::invalid("bytes must be a Uint8Array")),
        n if n < 0.0 => Err(Error::thrown("INVALID_ARGUMENT", "reading the bytes threw", &guard_take())),
        n => Ok(n as usize),
    }
}

/// All bytes of a JS `Uint8Array` (or array of numbers), copied into wasm
/// memory by a guarded helper: a `length` getter or Proxy that throws is
/// `INVALID_ARGUMENT` (wasm-bindgen's own `&[u8]` glue would leak its buffer).
pub(crate) fn bytes_from_js(bytes: &JsValue) -> Result<Vec<u8>> {
    let len = copy_in(bytes, &mut [])?;
    read_all(bytes, len)
}

fn read_all(bytes: &JsValue, len: usize) -> Result<Vec<u8>> {
    let mut out = vec![0; len];
    if copy_in(bytes, &mut out)? != len {
        return Err(Error::invalid("the bytes changed while being read"));
    }
    Ok(out)
}

thread_local! {
    /// Where `with_bytes` copies inputs up to its size, in one call, without a fresh allocation.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Calls `f` with the bytes of a JS `Uint8Array` (or array of numbers), copied
/// by the guarded helper: inputs up to 16 KiB into a reused scratch buffer in
/// one call, larger ones into a fresh `Vec`.
pub(crate) fn with_bytes<T>(bytes: &JsValue, f: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    const SCRATCH_SIZE: usize = 16 * 1024;
    // Taken out of the cell, so a re-entrant call finds it empty and makes its own.
    let mut scratch = SCRATCH.with(Cell::take);
    scratch.resize(SCRATCH_SIZE, 0);
    let result = match copy_in(bytes, &mut scratch) {
        Ok(len) if len <= SCRATCH_SIZE => f(&scratch[..len]),
        Ok(len) => read_all(bytes, len).and_then(|all| f(&all)),
        Err(e) => Err(e),
    };
    SCRATCH.with(|cell| cell.set(scratch));
    result
}

#[wasm_bindgen(module = "/src/helpers.js")]
extern "C" {
    fn make_header(id: &JsValue, topic: &JsValue, priority: u8) -> JsValue;
    /// The `decodeEnvelope` object; `undefined` optional fields are left out.
    #[allow(clippy::too_many_arguments)]
    fn make_envelope(
        id: &JsValue,
        topic: &JsValue,
        priority: u8,
        timestamp: &JsValue,
        ttl_ms: &JsValue,
        sender: &JsValue,
        swarm: &JsValue,
        correlation_id: &JsValue,
        payload: &Uint8Array,
    ) -> JsValue;
    /// Copies the first `max` bytes of `bytes` to `ptr` in wasm memory; returns
    /// the full length, -1 when `bytes` is neither a `Uint8Array` nor an array,
    /// -2 when reading it threw (see `guard_take`).
    fn copy_prefix(bytes: &JsValue, memory: &JsValue, ptr: usize, max: usize) -> f64;
    /// What the last guarded helper caught.
    fn guard_take() -> JsValue;
}

/// Sets a property on an object this module just created (cannot fail).
pub(crate) fn set(target: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &key.into(), value);
}
