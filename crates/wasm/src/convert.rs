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

/// Serializes a JSON value (state-store values, patches) with safe integers as floats (→ `number`)
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
