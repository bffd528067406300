//! JSON text to MessagePack, the reverse of [`msgpack_json`](crate::msgpack_json).
//!
//! The wasm package's `encode` lets the engine's `JSON.stringify` walk the JS
//! value (far faster than reading it property by property across the wasm
//! boundary) and transcodes the text here. The bytes are the ones rmp-serde
//! writes for the same value: integers within ±2^53 − 1 in their most compact
//! form, other numbers as float64, strings as str, arrays and objects as
//! arrays and maps.
//!
//! MessagePack writes a container's length before its items, JSON does not:
//! a first pass counts the items of every array and object, the second writes.

use alloc::vec::Vec;
use core::fmt;

use rmp::encode as w;

use crate::msgpack_json::MAX_SAFE_INTEGER;

/// The JSON text is not valid (or nests deeper than allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset where reading stopped.
    pub offset: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

impl JsonError {
    /// The `reason` when arrays and objects nest deeper than allowed.
    pub const TOO_DEEP: &'static str = "nested too deeply";
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.reason)
    }
}

/// Appends the MessagePack encoding of the single JSON value in `text` to `out`.
///
/// Arrays and objects nest at most `max_depth` levels. On error, `out` holds
/// partial bytes the caller should discard.
///
/// ```
/// use swarmbus_core::json_msgpack::to_msgpack;
/// let mut bytes = Vec::new();
/// to_msgpack(r#"{"a":[1,-2.5,null,"é\""]}"#, 128, &mut bytes).unwrap();
/// assert_eq!(bytes, [0x81, 0xa1, b'a', 0x94, 0x01, 0xcb, 0xc0, 0x04, 0, 0, 0, 0, 0, 0, 0xc0, 0xa3, 0xc3, 0xa9, b'"']);
/// ```
pub fn to_msgpack(text: &str, max_depth: usize, out: &mut Vec<u8>) -> Result<(), JsonError> {
    let counts = count_items(text.as_bytes());
    let mut parser =
        Parser { text: text.as_bytes(), pos: 0, counts: &counts, next_count: 0, scratch: Vec::new() };
    parser.skip_whitespace();
    parser.value(out, max_depth)?;
    parser.skip_whitespace();
    if parser.pos != parser.text.len() {
        return Err(parser.error("text after the value"));
    }
    Ok(())
}

/// The item count of every array and object, in the order they open.
/// Assumes well-formed JSON; the second pass checks each count it uses.
fn count_items(text: &[u8]) -> Vec<u32> {
    let mut counts = Vec::new();
    let mut open: Vec<(usize, bool)> = Vec::new(); // (index into counts, has an item)
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b':' => {}
            b',' => {
                if let Some(&(index, _)) = open.last() {
                    counts[index] += 1;
                }
            }
            b']' | b'}' => {
                open.pop();
            }
            _ => {
                if let Some((index, has_item)) = open.last_mut() {
                    if !*has_item {
                        *has_item = true;
                        counts[*index] = 1;
                    }
                }
                match b {
                    b'[' | b'{' => {
                        open.push((counts.len(), false));
                        counts.push(0);
                    }
                    b'"' => i = skip_string(text, i),
                    _ => {}
                }
            }
        }
        i += 1;
    }
    counts
}

/// The index of the closing quote of the string opening at `start`.
fn skip_string(text: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    text.len()
}

struct Parser<'t, 'c> {
    text: &'t [u8],
    pos: usize,
    counts: &'c [u32],
    next_count: usize,
    /// Unescaped bytes of a string that had escapes.
    scratch: Vec<u8>,
}

impl Parser<'_, '_> {
    fn error(&self, reason: &'static str) -> JsonError {
        JsonError { offset: self.pos, reason }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.text.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, literal: &[u8]) -> Result<(), JsonError> {
        if self.text[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            Ok(())
        } else {
            Err(self.error("unknown literal"))
        }
    }

    // Writing into a Vec cannot fail, so the writers' Results carry no information.
    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> Result<(), JsonError> {
        match self.text.get(self.pos) {
            None => Err(self.error("the text ends before a value")),
            Some(b'n') => self.expect(b"null").map(|()| {
                let _ = w::write_nil(out);
            }),
            Some(b't') => self.expect(b"true").map(|()| {
                let _ = w::write_bool(out, true);
            }),
            Some(b'f') => self.expect(b"false").map(|()| {
                let _ = w::write_bool(out, false);
            }),
            Some(b'"') => self.string(out),
            Some(b'[') => self.container(out, depth, b']'),
            Some(b'{') => self.container(out, depth, b'}'),
            Some(b'-' | b'0'..=b'9') => self.number(out),
            Some(_) => Err(self.error("unexpected character")),
        }
    }

    fn container(&mut self, out: &mut Vec<u8>, depth: usize, close: u8) -> Result<(), JsonError> {
        let depth = depth.checked_sub(1).ok_or_else(|| self.error(JsonError::TOO_DEEP))?;
        let count = *self.counts.get(self.next_count).ok_or_else(|| self.error("miscounted container"))?;
        self.next_count += 1;
        let _ = if close == b']' { w::write_array_len(out, count) } else { w::write_map_len(out, count) };
        self.pos += 1;
        self.skip_whitespace();
        let mut seen = 0u32;
        if self.text.get(self.pos) == Some(&close) {
            self.pos += 1;
        } else {
            loop {
                if close == b'}' {
                    if self.text.get(self.pos) != Some(&b'"') {
                        return Err(self.error("an object key must be a string"));
                    }
                    self.string(out)?;
                    self.skip_whitespace();
                    if self.text.get(self.pos) != Some(&b':') {
                        return Err(self.error("expected `:`"));
                    }
                    self.pos += 1;
                    self.skip_whitespace();
                }
                self.value(out, depth)?;
                seen += 1;
                self.skip_whitespace();
                match self.text.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_whitespace();
                    }
                    Some(&b) if b == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or the end of the container")),
                }
            }
        }
        if seen != count {
            return Err(self.error("miscounted container"));
        }
        Ok(())
    }

    fn string(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let start = self.pos + 1;
        let mut i = start;
        loop {
            match self.text.get(i) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => return self.escaped_string(out, start),
                Some(0x00..=0x1f) => {
                    return Err(JsonError { offset: i, reason: "control character in a string" })
                }
                Some(_) => i += 1,
            }
        }
        let _ = w::write_str_len(out, (i - start) as u32);
        out.extend_from_slice(&self.text[start..i]);
        self.pos = i + 1;
        Ok(())
    }

    fn escaped_string(&mut self, out: &mut Vec<u8>, start: usize) -> Result<(), JsonError> {
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.clear();
        self.pos = start;
        let result = self.unescape(&mut scratch);
        if result.is_ok() {
            let _ = w::write_str_len(out, scratch.len() as u32);
            out.extend_from_slice(&scratch);
        }
        self.scratch = scratch;
        result
    }

    fn unescape(&mut self, into: &mut Vec<u8>) -> Result<(), JsonError> {
        loop {
            let Some(&b) = self.text.get(self.pos) else { return Err(self.error("unterminated string")) };
            self.pos += 1;
            match b {
                b'"' => return Ok(()),
                0x00..=0x1f => return Err(self.error("control character in a string")),
                b'\\' => {
                    let Some(&e) = self.text.get(self.pos) else {
                        return Err(self.error("unterminated string"));
                    };
                    self.pos += 1;
                    let simple = match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let c = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            into.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => return Err(self.error("unknown escape")),
                    };
                    into.push(simple);
                }
                _ => into.push(b),
            }
        }
    }

    /// The character of a `\uXXXX` escape (after the `u`), joining surrogate
    /// pairs; a lone surrogate becomes U+FFFD, as the engine's UTF-8 encoders do.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        if !(0xd800..0xdc00).contains(&first) {
            return Ok(char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        if self.text[self.pos..].starts_with(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xdc00..0xe000).contains(&second) {
                let c = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
                return Ok(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.pos = save;
        }
        Ok(char::REPLACEMENT_CHARACTER)
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.text.get(self.pos..self.pos + 4).ok_or_else(|| self.error("short \\u escape"))?;
        let mut value = 0;
        for &d in digits {
            let nibble = (d as char).to_digit(16).ok_or_else(|| self.error("bad \\u escape"))?;
            value = value * 16 + nibble;
        }
        self.pos += 4;
        Ok(value)
    }

    fn number(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.text.get(p.pos), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.text[self.pos] == b'-' {
            self.pos += 1;
        }
        let int_start = self.pos;
        match digits(self) {
            0 => return Err(self.error("a number needs digits")),
            n if n > 1 && self.text[int_start] == b'0' => return Err(self.error("leading zero")),
            _ => {}
        }
        let mut integral = true;
        if self.text.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            integral = false;
            if digits(self) == 0 {
                return Err(self.error("a fraction needs digits"));
            }
        }
        if matches!(self.text.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            integral = false;
            if matches!(self.text.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("an exponent needs digits"));
            }
        }
        // The slice is ASCII digits and signs, so it is valid UTF-8.
        let literal = core::str::from_utf8(&self.text[start..self.pos]).map_err(|_| self.error("number"))?;
        if integral {
            if let Ok(n) = literal.parse::<i64>() {
                if n.unsigned_abs() <= MAX_SAFE_INTEGER {
                    let _ = if n >= 0 {
                        w::write_uint(out, n as u64).map(drop)
                    } else {
                        w::write_sint(out, n).map(drop)
                    };
                    return Ok(());
                }
            }
        }
        let f: f64 = literal.parse().map_err(|_| JsonError { offset: start, reason: "number" })?;
        let _ = w::write_f64(out, f);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values::json_value;
    use alloc::string::{String, ToString};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn transcode(text: &str) -> Result<Vec<u8>, JsonError> {
        let mut out = Vec::new();
        to_msgpack(text, 128, &mut out).map(|()| out)
    }

    /// What the package's previous encoder (rmp-serde on a JSON value) wrote.
    fn reference(value: &Value) -> Vec<u8> {
        rmp_serde::to_vec(value).unwrap()
    }

    #[test]
    fn same_bytes_as_rmp_serde() {
        let value = json!({
            "s": "quote \" backslash \\ nl \n tab \t ctl \u{1} é 𝄞 /",
            "n": [0, 1, -1, 127, 128, -33, 65535, -70000, 9007199254740991_i64, -9007199254740991_i64],
            "f": [0.5, -2.25, 1e300, 1.0e-7, 9007199254740992.0, 1e21],
            "b": [true, false, null],
            "o": {"nested": {"deep": []}, "": {}},
            "e": [[], {}, [[]], [{}]]
        });
        let text = value.to_string();
        assert_eq!(transcode(&text).unwrap(), reference(&value));
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        assert_eq!(transcode(&pretty).unwrap(), reference(&value), "whitespace is ignored");
    }

    #[test]
    fn escapes_and_surrogates() {
        let bytes = transcode(r#"["\u00e9\ud834\udd1e\/\b\f", "\ud800x", "\udc00"]"#).unwrap();
        let back: Vec<String> = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, ["é𝄞/\u{8}\u{c}", "\u{fffd}x", "\u{fffd}"]);
    }

    #[test]
    fn integers_beyond_2_53_are_floats() {
        // JSON.stringify writes 2^53 + 2 as digits; a JS number is a float64 either way.
        assert_eq!(transcode("9007199254740994").unwrap(), reference(&json!(9007199254740994.0)));
        assert_eq!(transcode("-9007199254740994").unwrap(), reference(&json!(-9007199254740994.0)));
        assert_eq!(
            transcode("123456789012345678901234567890").unwrap(),
            reference(&json!(1.2345678901234568e29))
        );
    }

    #[test]
    fn invalid_text_is_an_error() {
        for text in [
            "",
            " ",
            "[1,]",
            "[1 2]",
            "{\"a\" 1}",
            "{1:2}",
            "[",
            "{\"a\":1",
            "\"abc",
            "01",
            "1.",
            "1e",
            "-",
            "tru",
            "nul",
            "[1]x",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\u{1}\"",
            "{\"a\":1,}",
            "[1,,2]",
            "[,1]",
            "+1",
        ] {
            assert!(transcode(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let mut out = Vec::new();
        assert_eq!(to_msgpack(&deep, 128, &mut out).unwrap_err().reason, JsonError::TOO_DEEP);
        out.clear();
        assert!(to_msgpack(&deep, 200, &mut out).is_ok());
    }

    #[test]
    fn round_trips_with_to_json() {
        let text = r#"{"a":[1,-2.5,null,"é\"\\\n"],"b":{"c":true}}"#;
        let bytes = transcode(text).unwrap();
        let mut back = String::new();
        crate::msgpack_json::to_json(&bytes, 128, &mut back).unwrap();
        assert_eq!(back, text);
    }

    proptest! {
        #[test]
        fn any_json_text_gives_rmp_serde_bytes(value in json_value()) {
            prop_assert_eq!(transcode(&value.to_string()).unwrap(), reference(&value));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,48}") {
            let _ = transcode(&text);
        }

        #[test]
        fn json_like_text_never_panics(text in "[\\[\\]{}\",:0-9a-z\\\\ .eE+-]{0,48}") {
            let _ = transcode(&text);
        }
    }
}
