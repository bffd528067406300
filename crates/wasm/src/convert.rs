//! Conversions between Rust values and plain JS values.
//!
//! | Rust / MessagePack | JS |
//! |---|---|
//! | map, struct | plain object (never `Map`) |
//! | bin | `Uint8Array` |
//! | integer within ±2^53 | `number` |
//! | integer beyond ±2^53 | `BigInt` |
//! | float | `number` |
//! | str | `string` |
//! | nil / `None` | `null` |

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_wasm_bindgen::Serializer;
use wasm_bindgen::JsValue;

use crate::error::{Error, Result};

/// The serializer every export uses: plain objects, `null`, `Uint8Array` for bytes.
pub fn serializer() -> Serializer {
    Serializer::json_compatible().serialize_bytes_as_arrays(false)
}

/// A Rust value as a plain JS value.
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue> {
    value.serialize(&serializer()).map_err(|e| Error::new("ENCODE_ERROR", e))
}

/// A JS value as a Rust value; a shape mismatch is `INVALID_ARGUMENT`.
pub fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T> {
    serde_wasm_bindgen::from_value(value).map_err(Error::invalid)
}

/// Optional options: `undefined` or `null` give the defaults, anything else
/// must deserialize into `T`.
pub fn options_or_default<T: DeserializeOwned + Default>(value: JsValue) -> Result<T> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    from_js(value)
}

/// Largest integer a JS `number` holds exactly (2^53 − 1).
pub use swarmbus_core::msgpack_json::MAX_SAFE_INTEGER;

/// A `u64` as a `number` when it is safe, else as a `BigInt`.
pub fn u64_to_js(n: u64) -> JsValue {
    if n <= MAX_SAFE_INTEGER {
        JsValue::from_f64(n as f64)
    } else {
        js_sys::BigInt::from(n).into()
    }
}

/// A dynamic value as plain JS: integers within ±2^53 as `number`, beyond as `BigInt`.
pub fn value_to_js<'a, V>(value: &'a V) -> Result<JsValue>
where
    SafeInts<'a, V>: Serialize,
{
    let serializer = serializer().serialize_large_number_types_as_bigints(true);
    SafeInts(value).serialize(&serializer).map_err(|e| Error::new("ENCODE_ERROR", e))
}

/// Serializes a MessagePack or JSON value with safe integers as floats (→ `number`)
/// and only the others as 64-bit integers (→ `BigInt`).
pub struct SafeInts<'a, V: ?Sized>(pub &'a V);

fn safe_u64<S: serde::Serializer>(n: u64, s: S) -> core::result::Result<S::Ok, S::Error> {
    if n <= MAX_SAFE_INTEGER {
        s.serialize_f64(n as f64)
    } else {
        s.serialize_u64(n)
    }
}

fn safe_i64<S: serde::Serializer>(n: i64, s: S) -> core::result::Result<S::Ok, S::Error> {
    if n.unsigned_abs() <= MAX_SAFE_INTEGER {
        s.serialize_f64(n as f64)
    } else {
        s.serialize_i64(n)
    }
}

impl Serialize for SafeInts<'_, rmpv::Value> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        use rmpv::Value as V;
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            V::Nil => s.serialize_unit(),
            V::Boolean(b) => s.serialize_bool(*b),
            V::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(u), _) => safe_u64(u, s),
                (None, Some(n)) => safe_i64(n, s),
                _ => s.serialize_f64(i.as_f64().unwrap_or(f64::NAN)),
            },
            V::F32(f) => s.serialize_f32(*f),
            V::F64(f) => s.serialize_f64(*f),
            V::String(text) => match text.as_str() {
                Some(text) => s.serialize_str(text),
                None => s.serialize_bytes(text.as_bytes()),
            },
            V::Binary(bytes) => s.serialize_bytes(bytes),
            V::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&SafeInts(item))?;
                }
                seq.end()
            }
            V::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(&SafeInts(key), &SafeInts(value))?;
                }
                map.end()
            }
            V::Ext(kind, data) => {
                let mut seq = s.serialize_seq(Some(2))?;
                seq.serialize_element(kind)?;
                seq.serialize_element(&serde_bytes_view(data))?;
                seq.end()
            }
        }
    }
}

impl Serialize for SafeInts<'_, serde_json::Value> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        use serde_json::Value as V;
        match self.0 {
            V::Null => s.serialize_unit(),
            V::Bool(b) => s.serialize_bool(*b),
            V::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => safe_u64(u, s),
                (None, Some(i)) => safe_i64(i, s),
                _ => s.serialize_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            V::String(text) => s.serialize_str(text),
            V::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&SafeInts(item))?;
                }
                seq.end()
            }
            V::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, &SafeInts(value))?;
                }
                map.end()
            }
        }
    }
}

/// Bytes that serialize as `serialize_bytes` (a `Uint8Array`).
fn serde_bytes_view(data: &[u8]) -> impl Serialize + '_ {
    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    Bytes(data)
}
