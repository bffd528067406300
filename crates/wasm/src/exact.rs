//! The exact paths of `encode` and `decode`, for values JSON text cannot carry
//! (bytes, `BigInt`, `Map`, non-finite numbers, non-string keys): the JS value
//! or the MessagePack bytes are walked one value at a time across the boundary.
//! Slower than the JSON fast paths in `codec`, used only when those decline.

use js_sys::{Array, Uint8Array};
use rmp::encode as w;
use rmp::Marker;
use swarmbus_core::envelope::Reader;
use swarmbus_core::CodecError;
use wasm_bindgen::prelude::*;

use crate::codec::MAX_DEPTH;
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
/// maps nest at most `depth` levels.
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
    let mut cursor = Cursor(Reader::new(bytes));
    let value = cursor.value(MAX_DEPTH)?;
    match cursor.0.remaining() {
        0 => Ok(value),
        extra => Err(Error::decode(format_args!("{extra} bytes after the end of the value"))),
    }
}

/// Core's MessagePack reader, building JS values.
struct Cursor<'a>(Reader<'a>);

fn truncated(_: CodecError) -> Error {
    Error::decode("invalid MessagePack: the input ends inside a value")
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        self.0.take(usize::try_from(n).unwrap_or(usize::MAX)).map_err(truncated)
    }

    fn be(&mut self, n: u64) -> Result<u64> {
        self.0.be(n as usize).map_err(truncated)
    }

    fn value(&mut self, depth: usize) -> Result<JsValue> {
        let marker = self.0.marker().map_err(truncated)?;
        Ok(match marker {
            Marker::Null => JsValue::NULL,
            Marker::True => JsValue::TRUE,
            Marker::False => JsValue::FALSE,
            Marker::FixPos(n) => f64::from(n).into(),
            Marker::FixNeg(n) => f64::from(n).into(),
            Marker::U8 => u64_to_js(self.be(1)?),
            Marker::U16 => u64_to_js(self.be(2)?),
            Marker::U32 => u64_to_js(self.be(4)?),
            Marker::U64 => u64_to_js(self.be(8)?),
            Marker::I8 => f64::from(self.be(1)? as u8 as i8).into(),
            Marker::I16 => f64::from(self.be(2)? as u16 as i16).into(),
            Marker::I32 => f64::from(self.be(4)? as u32 as i32).into(),
            Marker::I64 => i64_to_js(self.be(8)? as i64),
            Marker::F32 => f64::from(f32::from_bits(self.be(4)? as u32)).into(),
            Marker::F64 => f64::from_bits(self.be(8)?).into(),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let len = self.len_after(marker)?;
                self.string(len)?
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let len = self.len_after(marker)?;
                self.bin(len)?
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let len = self.len_after(marker)?;
                self.array(len, depth)?
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let len = self.len_after(marker)?;
                self.map(len, depth)?
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                let len = self.len_after(marker)?;
                self.ext(len)?
            }
            Marker::Reserved => return Err(Error::decode("invalid MessagePack: marker 0xc1 is never used")),
        })
    }

    fn len_after(&mut self, marker: Marker) -> Result<u64> {
        self.0.len_after(marker).map_err(truncated)
    }

    fn string(&mut self, len: u64) -> Result<JsValue> {
        let bytes = self.take(len)?;
        Ok(match core::str::from_utf8(bytes) {
            Ok(text) => JsValue::from_str(text),
            Err(_) => Uint8Array::from(bytes).into(),
        })
    }

    fn bin(&mut self, len: u64) -> Result<JsValue> {
        Ok(Uint8Array::from(self.take(len)?).into())
    }

    fn ext(&mut self, len: u64) -> Result<JsValue> {
        let kind = self.take(1)?[0] as i8;
        let data = Uint8Array::from(self.take(len)?);
        Ok(Array::of2(&f64::from(kind).into(), &data).into())
    }

    fn nested(depth: usize) -> Result<usize> {
        depth.checked_sub(1).ok_or_else(|| {
            Error::decode(format_args!("invalid MessagePack: nested deeper than {MAX_DEPTH} levels"))
        })
    }

    fn array(&mut self, len: u64, depth: usize) -> Result<JsValue> {
        let depth = Self::nested(depth)?;
        // Every item takes at least one byte: a longer declared length is truncated input.
        self.check_items(len)?;
        let items = Array::new_with_length(len as u32);
        for i in 0..len as u32 {
            items.set(i, self.value(depth)?);
        }
        Ok(items.into())
    }

    fn map(&mut self, len: u64, depth: usize) -> Result<JsValue> {
        let depth = Self::nested(depth)?;
        self.check_items(len.saturating_mul(2))?;
        let object = new_object();
        for _ in 0..len {
            let key = self.value(depth)?;
            let value = self.value(depth)?;
            set_key(&object, &key, &value);
        }
        Ok(object)
    }

    fn check_items(&self, items: u64) -> Result<()> {
        if items > self.0.remaining() as u64 {
            return Err(Error::decode("invalid MessagePack: the input ends inside a value"));
        }
        Ok(())
    }
}

/// An `i64` as a `number` when it is safe, else as a `BigInt`.
fn i64_to_js(n: i64) -> JsValue {
    if n.unsigned_abs() <= MAX_SAFE_INTEGER {
        (n as f64).into()
    } else {
        js_sys::BigInt::from(n).into()
    }
}
