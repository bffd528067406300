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

//!
//! ## The guard: no JS exception unwinds through Rust
//!
//! A JS exception thrown into wasm skips every Rust frame it crosses: no
//! destructor runs, a `RefCell` stays borrowed, the shadow stack is not popped,
//! and after a few thousand such throws the module is broken for good. So every
//! read of a caller's value that can run user code (getters, Proxies, `toJSON`,
//! iterators) and every call of a caller's function goes through this module,
//! whose JS helpers catch: [`plain`], [`own_fields`], [`get`] and [`call`]
//! return what was thrown as an `Err`, and [`Error::thrown`] turns it into an
//! `INVALID_ARGUMENT` (or any code) with a readable message. [`from_js`] reads
//! options through [`plain`], so serde never touches a caller's object. Never
//! hold a `RefCell` borrow across any call into JS: convert first, then borrow.

use js_sys::Function;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_wasm_bindgen::Serializer;
use swarmbus_core::msgpack::MAX_DEPTH;
use swarmbus_core::Priority;
use wasm_bindgen::prelude::*;

use crate::error::{Error, Result};

#[wasm_bindgen(module = "/src/helpers.js")]
extern "C" {
    /// What the last guarded helper produced or caught.
    fn guard_take() -> JsValue;
    /// A plain copy of `v` (see helpers.js): 1 copied, 0 threw, 2 deeper than `depth`.
    fn guard_plain(v: &JsValue, depth: usize) -> u8;
    /// Own enumerable properties of `v`, one level; `false` when reading threw.
    fn guard_own(v: &JsValue) -> bool;
    /// `o[key]`; `false` when it threw.
    fn guard_get(o: &JsValue, key: &str) -> bool;
    /// `f.call(self, a, b, c)`; `false` when it threw.
    fn guard_call(f: &Function, this: &JsValue, a: &JsValue, b: &JsValue, c: &JsValue) -> bool;
    /// The message of a thrown value, never throwing itself.
    fn guard_describe(e: &JsValue) -> String;
}

/// What a guarded read or call threw.
pub type Thrown = JsValue;

/// A plain copy of `value`, read once inside a JS `try`: objects become plain
/// objects of their own enumerable properties, arrays and `Map`s are copied,
/// `Uint8Array`s and `ArrayBuffer`s become fresh `Uint8Array`s, primitives and
/// functions stay as they are. Nothing in the copy runs user code when read.
/// A throw while reading, or containers nested deeper than [`MAX_DEPTH`]
/// (a cycle included), is `INVALID_ARGUMENT`.
pub fn plain(value: &JsValue) -> Result<JsValue> {
    match guard_plain(value, MAX_DEPTH) {
        1 => Ok(guard_take()),
        2 => {
            guard_take();
            Err(Error::invalid(format_args!("the value nests deeper than {MAX_DEPTH} levels")))
        }
        _ => Err(Error::thrown("INVALID_ARGUMENT", "reading the argument threw", &guard_take())),
    }
}

/// The own enumerable properties of `value` as a fresh plain object, one level
/// deep (values are not copied); for inputs whose fields are read once each.
pub fn own_fields(value: &JsValue) -> Result<JsValue> {
    if guard_own(value) {
        Ok(guard_take())
    } else {
        Err(Error::thrown("INVALID_ARGUMENT", "reading the argument threw", &guard_take()))
    }
}

/// `target[key]`, guarded.
pub fn get(target: &JsValue, key: &str) -> core::result::Result<JsValue, Thrown> {
    if guard_get(target, key) {
        Ok(guard_take())
    } else {
        Err(guard_take())
    }
}

/// `f.call(this, args…)` with at most three arguments (missing ones are
/// `undefined`), guarded: `Err` holds what `f` threw.
pub fn call(f: &Function, this: &JsValue, args: &[&JsValue]) -> core::result::Result<JsValue, Thrown> {
    debug_assert!(args.len() <= 3, "call takes at most three arguments");
    let undefined = JsValue::UNDEFINED;
    let arg = |i: usize| args.get(i).copied().unwrap_or(&undefined);
    if guard_call(f, this, arg(0), arg(1), arg(2)) {
        Ok(guard_take())
    } else {
        Err(guard_take())
    }
}

/// The message of a thrown JS value (an `Error`'s message, or its string
/// form), read without letting a throwing `message` getter or `toString` escape.
pub fn describe(thrown: &JsValue) -> String {
    guard_describe(thrown)
}

/// A priority given by a caller: `undefined` or `null` is `None`, an integer
/// 0–9 is that priority, anything else (a string, 3.5, 265, `NaN`) is
/// `INVALID_PRIORITY`. No conversion, no modulo.
pub fn priority_from_js(value: &JsValue) -> Result<Option<Priority>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && (0.0..=9.0).contains(&n) => Ok(Some(Priority::new(n as u8)?)),
        _ => Err(Error::new(
            "INVALID_PRIORITY",
            format_args!("priority must be an integer 0..=9, got {}", describe(value)),
        )),
    }
}

/// The serializer every export uses: plain objects, `null`, `Uint8Array` for bytes.
pub fn serializer() -> Serializer {
    Serializer::json_compatible().serialize_bytes_as_arrays(false)
}

/// A Rust value as a plain JS value.
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue> {
    value.serialize(&serializer()).map_err(|e| Error::new("ENCODE_ERROR", e))
}

/// A JS value as a Rust value, read through a [`plain`] copy (so no getter or
/// Proxy of the caller's runs while serde reads); a shape mismatch, a throw
/// or nesting deeper than [`MAX_DEPTH`] is `INVALID_ARGUMENT`.
pub fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T> {
    serde_wasm_bindgen::from_value(plain(&value)?).map_err(Error::invalid)
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
