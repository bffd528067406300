//! The exact paths of `encode` and `decode`, for values JSON text cannot carry
//! (bytes, `BigInt`, `Map`, non-finite numbers, non-string keys): the JS value
//! or the MessagePack bytes are walked one value at a time across the boundary.
//! Slower than the JSON fast paths in `codec`, used only when those decline.

use js_sys::{Array, Uint8Array};
use rmp::encode as w;
use swarmbus_core::msgpack::{nested, Reader, Token, MAX_DEPTH};
use swarmbus_core::CodecError;
use wasm_bindgen::prelude::*;

use crate::convert::{u64_to_js, MAX_SAFE_INTEGER};
use crate::error::{Error, Result};

// What `value_kind` returns.
const NULLISH: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const NUMBER: u8 = 3;
const STRING: u8 = 4;
const BIGINT: u8 = 5;
const ARRAY: u8 = 6;
const BYTES: u8 = 7;
const ENTRIES: u8 = 8;

#[wasm_bindgen(module = "/src/helpers.js")]
extern "C" {
    /// The kind of a JS value (the constants above; 9 for what cannot be encoded).
    fn value_kind(v: &JsValue) -> u8;
    /// A `Uint8Array` or `ArrayBuffer` as a `Uint8Array`.
    fn as_bytes(v: &JsValue) -> Uint8Array;
    /// `[key, value]` pairs of a `Map` or of an object's own enumerable properties.
    fn entries_of(v: &JsValue) -> Array;
    /// `o[k] = v`, as an own property even for `__proto__`.
    fn set_key(o: &JsValue, k: &JsValue, v: &JsValue);
    /// `{}`.
    fn new_object() -> JsValue;
}

/// Appends the MessagePack encoding of `value` to `out`; arrays, objects and
/// maps nest at most `depth` levels. `value` must be a
/// [`plain`](crate::convert::plain) copy: the helpers called here are not
/// guarded, and on a copy no user code can run.
pub(crate) fn encode_value(value: &JsValue, out: &mut Vec<u8>, depth: usize) -> Result<()> {
    // Writing into a Vec cannot fail, so the writers' Results carry no information.
    let kind = value_kind(value);
    match kind {
        NULLISH => drop(w::write_nil(out)),
        FALSE => drop(w::write_bool(out, false)),
        TRUE => drop(w::write_bool(out, true)),
        NUMBER => {
            let n = value.as_f64().unwrap_or(f64::NAN);
            if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER as f64 {
                let _ = if n >= 0.0 { w::write_uint(out, n as u64) } else { w::write_sint(out, n as i64) };
            } else {
                let _ = w::write_f64(out, n);
            }
        }
        STRING => drop(w::write_str(out, &value.as_string().unwrap_or_default())),
        BIGINT => match i64::try_from(value.clone()) {
            Ok(n) if n >= 0 => drop(w::write_uint(out, n as u64)),
            Ok(n) => drop(w::write_sint(out, n)),
            Err(value) => match u64::try_from(value) {
                Ok(n) => drop(w::write_uint(out, n)),
                Err(_) => return Err(Error::invalid("a BigInt outside the 64-bit range cannot be encoded")),
            },
        },
        BYTES => drop(w::write_bin(out, &as_bytes(value).to_vec())),
        ARRAY | ENTRIES => {
            let depth = depth.checked_sub(1).ok_or_else(|| {
                Error::invalid(format_args!("the value nests deeper than {MAX_DEPTH} levels"))
            })?;
            if kind == ARRAY {
                let items: Array = value.clone().unchecked_into();
                let _ = w::write_array_len(out, items.length());
                for item in items.iter() {
                    encode_value(&item, out, depth)?;
                }
            } else {
                let entries = entries_of(value);
                let _ = w::write_map_len(out, entries.length());
                for entry in entries.iter() {
                    let pair: Array = entry.unchecked_into();
                    encode_value(&pair.get(0), out, depth)?;
                    encode_value(&pair.get(1), out, depth)?;
                }
            }
        }
        _ => {
            return Err(Error::invalid(
                "functions, symbols and typed arrays other than Uint8Array cannot be encoded",
            ))
        }
    }
    Ok(())
}

/// Decodes one MessagePack value into JS: integers beyond ±2^53 as `BigInt`,
/// bin (and strings that are not UTF-8) as `Uint8Array`, ext as `[type, Uint8Array]`.
pub(crate) fn decode_value(bytes: &[u8]) -> Result<JsValue> {
    let mut reader = Reader::new(bytes);
    let value = value(&mut reader, MAX_DEPTH).map_err(|e| crate::codec::invalid_msgpack(&e))?;
    reader.finish().map_err(|e| crate::codec::invalid_msgpack(&e))?;
    Ok(value)
}

/// One value from core's token reader, as JS.
fn value(r: &mut Reader<'_>, depth: usize) -> core::result::Result<JsValue, CodecError> {
    Ok(match r.token()? {
        Token::Nil => JsValue::NULL,
        Token::Bool(b) => JsValue::from_bool(b),
        Token::Uint(n) => u64_to_js(n),
        Token::Int(n) => i64_to_js(n),
        Token::F32(f) => f64::from(f).into(),
        Token::F64(f) => f.into(),
        Token::Str(bytes) => match core::str::from_utf8(bytes) {
            Ok(text) => JsValue::from_str(text),
            Err(_) => Uint8Array::from(bytes).into(),
        },
        Token::Bin(bytes) => Uint8Array::from(bytes).into(),
        Token::Ext(kind, data) => Array::of2(&f64::from(kind).into(), &Uint8Array::from(data)).into(),
        Token::Array(len) => {
            let depth = nested(depth)?;
            // The reader checked that `len` elements fit in the bytes left.
            let items = Array::new_with_length(len);
            for i in 0..len {
                items.set(i, value(r, depth)?);
            }
            items.into()
        }
        Token::Map(len) => {
            let depth = nested(depth)?;
            let object = new_object();
            for _ in 0..len {
                let key = value(r, depth)?;
                set_key(&object, &key, &value(r, depth)?);
            }
            object
        }
    })
}

/// An `i64` as a `number` when it is safe, else as a `BigInt`.
fn i64_to_js(n: i64) -> JsValue {
    if n.unsigned_abs() <= MAX_SAFE_INTEGER {
        (n as f64).into()
    } else {
        js_sys::BigInt::from(n).into()
    }
}
