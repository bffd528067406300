//! MessagePack to JSON text in one pass, for values JSON represents exactly.
//!
//! The wasm package's `decode` hands this text to the engine's `JSON.parse`,
//! which builds JS objects faster than any property-by-property path across
//! the wasm boundary. Values JSON cannot carry exactly (binary, extension
//! types, integers beyond ±2^53, non-finite floats, non-string map keys,
//! strings that are not UTF-8) stop the pass with [`ToJsonError::NotJson`] so
//! the caller can take a slower, exact path.

use alloc::string::String;

use crate::error::CodecError;
use crate::msgpack::{nested, Reader, Token};

/// Largest integer magnitude a JSON number carries exactly into a JS `number` (2^53 − 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a MessagePack value was not written as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToJsonError {
    /// The bytes are valid MessagePack but hold something JSON cannot represent exactly.
    NotJson(&'static str),
    /// The bytes are not one valid MessagePack value (or nest deeper than allowed).
    Invalid(CodecError),
}

impl From<CodecError> for ToJsonError {
    fn from(e: CodecError) -> Self {
        Self::Invalid(e)
    }
}

/// Appends the JSON text of the single MessagePack value in `bytes` to `out`.
///
/// Arrays and maps nest at most `max_depth` levels (the wasm package passes
/// [`MAX_DEPTH`](crate::msgpack::MAX_DEPTH)). On error, `out` holds a partial
/// text the caller should discard.
///
/// ```
/// use swarmbus_core::msgpack_json::to_json;
/// // {"a": [1, -2.5, null, "é\""]}
/// let bytes = [0x81, 0xa1, b'a', 0x94, 0x01, 0xcb, 0xc0, 0x04, 0, 0, 0, 0, 0, 0, 0xc0, 0xa3, 0xc3, 0xa9, b'"'];
/// let mut json = String::new();
/// to_json(&bytes, 128, &mut json).unwrap();
/// assert_eq!(json, r#"{"a":[1,-2.5,null,"é\""]}"#);
/// ```
pub fn to_json(bytes: &[u8], max_depth: usize, out: &mut String) -> Result<(), ToJsonError> {
    let mut reader = Reader::new(bytes);
    let mut writer = Writer { out, floats: zmij::Buffer::new(), ints: itoa::Buffer::new() };
    writer.value(&mut reader, max_depth)?;
    Ok(reader.finish()?)
}

struct Writer<'o> {
    out: &'o mut String,
    floats: zmij::Buffer,
    ints: itoa::Buffer,
}

impl Writer<'_> {
    fn value(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<(), ToJsonError> {
        match r.token()? {
            Token::Nil => self.out.push_str("null"),
            Token::Bool(b) => self.out.push_str(if b { "true" } else { "false" }),
            Token::Uint(n) => self.uint(n)?,
            Token::Int(n) => self.int(n)?,
            Token::F32(f) => self.float(f)?,
            Token::F64(f) => self.float(f)?,
            Token::Str(bytes) => self.string(bytes)?,
            Token::Array(len) => self.array(r, len, depth)?,
            Token::Map(len) => self.map(r, len, depth)?,
            Token::Bin(_) => return Err(ToJsonError::NotJson("binary")),
            Token::Ext(..) => return Err(ToJsonError::NotJson("extension type")),
        }
        Ok(())
    }

    fn uint(&mut self, n: u64) -> Result<(), ToJsonError> {
        if n > MAX_SAFE_INTEGER {
            return Err(ToJsonError::NotJson("integer beyond 2^53"));
        }
        self.out.push_str(self.ints.format(n));
        Ok(())
    }

    fn int(&mut self, n: i64) -> Result<(), ToJsonError> {
        if n.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(ToJsonError::NotJson("integer beyond 2^53"));
        }
        self.out.push_str(self.ints.format(n));
        Ok(())
    }

    fn float<F: zmij::Float + IsFinite>(&mut self, f: F) -> Result<(), ToJsonError> {
        if !f.finite() {
            return Err(ToJsonError::NotJson("non-finite float"));
        }
        self.out.push_str(self.floats.format_finite(f));
        Ok(())
    }

    fn string(&mut self, bytes: &[u8]) -> Result<(), ToJsonError> {
        let text = core::str::from_utf8(bytes).map_err(|_| ToJsonError::NotJson("string is not UTF-8"))?;
        self.out.reserve(text.len() + 2);
        self.out.push('"');
        if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
            self.out.push_str(text);
            self.out.push('"');
            return Ok(());
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.out.push_str(&text[start..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.out.push_str("\\u00");
                self.out.push(HEX[usize::from(b >> 4)] as char);
                self.out.push(HEX[usize::from(b & 0xf)] as char);
            } else {
                self.out.push_str(escape);
            }
            start = i + 1;
        }
        self.out.push_str(&text[start..]);
        self.out.push('"');
        Ok(())
    }

    fn array(&mut self, r: &mut Reader<'_>, len: u32, depth: usize) -> Result<(), ToJsonError> {
        let depth = nested(depth)?;
        self.out.push('[');
        for i in 0..len {
            if i > 0 {
                self.out.push(',');
            }
            self.value(r, depth)?;
        }
        self.out.push(']');
        Ok(())
    }

    fn map(&mut self, r: &mut Reader<'_>, len: u32, depth: usize) -> Result<(), ToJsonError> {
        let depth = nested(depth)?;
        self.out.push('{');
        for i in 0..len {
            if i > 0 {
                self.out.push(',');
            }
            match r.token()? {
                Token::Str(key) => self.string(key)?,
                _ => return Err(ToJsonError::NotJson("map key is not a string")),
            }
            self.out.push(':');
            self.value(r, depth)?;
        }
        self.out.push('}');
        Ok(())
    }
}

/// `is_finite` for the two float widths MessagePack carries.
trait IsFinite {
    fn finite(&self) -> bool;
}

impl IsFinite for f32 {
    fn finite(&self) -> bool {
        self.is_finite()
    }
}

impl IsFinite for f64 {
    fn finite(&self) -> bool {
        self.is_finite()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values::json_value;
    use alloc::vec::Vec;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn transcode(bytes: &[u8]) -> Result<String, ToJsonError> {
        let mut out = String::new();
        to_json(bytes, 128, &mut out).map(|()| out)
    }

    #[test]
    fn json_values_round_trip_through_rmp_serde() {
        let value = json!({
            "s": "quote \" backslash \\ nl \n tab \t ctl \u{1} é 𝄞",
            "n": [0, 1, -1, 127, 128, -33, 65535, -70000, 9007199254740991_i64, -9007199254740991_i64],
            "f": [0.5, -2.25, 1e300, 1.0e-7],
            "b": [true, false, null],
            "o": {"nested": {"deep": []}, "": {}}
        });
        let bytes = rmp_serde::to_vec_named(&value).unwrap();
        let text = transcode(&bytes).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn what_json_cannot_carry_is_not_json() {
        let cases: [(&[u8], &str); 7] = [
            (&[0xc4, 0x01, 0xff], "binary"),
            (&[0xd4, 0x01, 0x00], "extension type"),
            (&[0xcf, 0, 0x20, 0, 0, 0, 0, 0, 0], "integer beyond 2^53"),
            (&[0xd3, 0xff, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], "integer beyond 2^53"),
            (&[0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0], "non-finite float"),
            (&[0x81, 0x01, 0x02], "map key is not a string"),
            (&[0xa1, 0xff], "string is not UTF-8"),
        ];
        for (bytes, why) in cases {
            assert_eq!(transcode(bytes), Err(ToJsonError::NotJson(why)), "{bytes:x?}");
        }
    }

    #[test]
    fn invalid_input_is_a_codec_error() {
        assert_eq!(transcode(&[]), Err(ToJsonError::Invalid(CodecError::Truncated)));
        assert_eq!(transcode(&[0x92, 0x01]), Err(ToJsonError::Invalid(CodecError::Truncated)));
        assert_eq!(
            transcode(&[0xc1]),
            Err(ToJsonError::Invalid(CodecError::UnexpectedType { field: "value" }))
        );
        assert_eq!(transcode(&[0x01, 0x02]), Err(ToJsonError::Invalid(CodecError::TrailingBytes(1))));
        assert_eq!(
            transcode(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(ToJsonError::Invalid(CodecError::Truncated))
        );
    }

    #[test]
    fn depth_is_bounded() {
        let deep: Vec<u8> = core::iter::repeat_n(0x91u8, 200).chain([0xc0]).collect();
        let mut out = String::new();
        assert_eq!(
            to_json(&deep, 128, &mut out),
            Err(ToJsonError::Invalid(CodecError::TooDeep { max: crate::msgpack::MAX_DEPTH }))
        );
        out.clear();
        assert!(to_json(&deep, 201, &mut out).is_ok());
    }

    proptest! {
        #[test]
        fn any_json_value_round_trips(value in json_value()) {
            let bytes = rmp_serde::to_vec_named(&value).unwrap();
            let text = transcode(&bytes).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, value);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = transcode(&bytes);
        }
    }
}
