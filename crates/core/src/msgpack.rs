//! The one MessagePack reader of the project: a bounds-checked token reader
//! and the one nesting limit, [`MAX_DEPTH`].
//!
//! Every reader of MessagePack (envelopes, bridge frames, state images, the
//! MessagePack → JSON transcoder, the wasm package's exact decode path) reads
//! [`Token`]s from a [`Reader`] and matches on them; none repeats the marker
//! table.
//!
//! ## What a token costs
//!
//! [`Reader::token`] reads one marker and what it carries: scalars, or the
//! bytes of a `str`, `bin` or `ext` (borrowed, never copied), or only the
//! element count of an `array` or `map`, whose elements are the next tokens.
//! Every token consumes at least one byte and no token allocates, so any walk
//! over tokens does work bounded by the input's size. Declared lengths are
//! checked against the bytes left before anything is read: a `str32` declaring
//! 4 GiB in a 10-byte input is [`CodecError::Truncated`], and an array
//! declaring more elements than bytes left is refused at its header (each
//! element takes at least a byte), so a caller may pre-allocate `n` slots.
//!
//! ## Nesting
//!
//! Arrays and maps nest at most [`MAX_DEPTH`] levels on every path that builds
//! values (JSON text, JS values, state values) and in [`Reader::skip`], so no
//! input overflows a stack. Deeper is [`CodecError::TooDeep`].

use rmp::Marker;

use crate::error::CodecError;

/// Deepest nesting of arrays and maps (and of JS arrays and objects in the
/// wasm package) accepted anywhere: decoding, encoding, state values, frames.
pub const MAX_DEPTH: usize = 128;

/// One MessagePack token. Strings are raw bytes: whether invalid UTF-8 is an
/// error depends on the reader (the wasm package hands it to JS as bytes).
/// Floats keep their width, so a float32 prints as its shortest float32 text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Token<'a> {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// An unsigned marker (positive fixint, uint 8–64).
    Uint(u64),
    /// A signed marker (negative fixint, int 8–64); may hold a non-negative value.
    Int(i64),
    /// A float32.
    F32(f32),
    /// A float64.
    F64(f64),
    /// A string's bytes (UTF-8 not checked).
    Str(&'a [u8]),
    /// Binary data.
    Bin(&'a [u8]),
    /// An extension type and its data.
    Ext(i8, &'a [u8]),
    /// An array of this many elements; they are the next tokens.
    Array(u32),
    /// A map of this many key/value pairs; they are the next `2 × n` values.
    Map(u32),
}

impl Token<'_> {
    /// Values that follow this token as its elements (`2 × n` for a map).
    pub fn items(&self) -> u64 {
        match *self {
            Token::Array(n) => u64::from(n),
            Token::Map(n) => 2 * u64::from(n),
            _ => 0,
        }
    }

    /// True for arrays and maps.
    pub fn is_container(&self) -> bool {
        matches!(self, Token::Array(_) | Token::Map(_))
    }
}

/// One level deeper than `depth` levels left: the levels left inside, or
/// [`CodecError::TooDeep`]. Walkers call it on entering each array or map.
pub fn nested(depth: usize) -> Result<usize, CodecError> {
    depth.checked_sub(1).ok_or(CodecError::TooDeep { max: MAX_DEPTH })
}

/// A bounds-checked cursor over MessagePack bytes. Reading past the end is
/// [`CodecError::Truncated`], never a panic.
///
/// # Examples
/// ```
/// use swarmbus_core::msgpack::{Reader, Token};
/// // {"a": [1, -2]}
/// let mut r = Reader::new(&[0x81, 0xa1, b'a', 0x92, 0x01, 0xfe]);
/// assert_eq!(r.token()?, Token::Map(1));
/// assert_eq!(r.token()?, Token::Str(b"a"));
/// assert_eq!(r.token()?, Token::Array(2));
/// assert_eq!((r.token()?, r.token()?), (Token::Uint(1), Token::Int(-2)));
/// assert_eq!((r.remaining(), r.tokens()), (0, 5));
/// # Ok::<(), swarmbus_core::CodecError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    tokens: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0, tokens: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Tokens read so far (skipped ones included): the work done.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// `Ok` when every byte was read, else [`CodecError::TrailingBytes`].
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(CodecError::TrailingBytes(extra)),
        }
    }

    /// The next token. See the [module docs](self) for what it reads.
    pub fn token(&mut self) -> Result<Token<'a>, CodecError> {
        let marker = self.marker()?;
        let token = match marker {
            Marker::Null => Token::Nil,
            Marker::True => Token::Bool(true),
            Marker::False => Token::Bool(false),
            Marker::FixPos(n) => Token::Uint(n.into()),
            Marker::FixNeg(n) => Token::Int(n.into()),
            Marker::U8 => Token::Uint(self.be(1)?),
            Marker::U16 => Token::Uint(self.be(2)?),
            Marker::U32 => Token::Uint(self.be(4)?),
            Marker::U64 => Token::Uint(self.be(8)?),
            Marker::I8 => Token::Int(self.be(1)? as u8 as i8 as i64),
            Marker::I16 => Token::Int(self.be(2)? as u16 as i16 as i64),
            Marker::I32 => Token::Int(self.be(4)? as u32 as i32 as i64),
            Marker::I64 => Token::Int(self.be(8)? as i64),
            Marker::F32 => Token::F32(f32::from_bits(self.be(4)? as u32)),
            Marker::F64 => Token::F64(f64::from_bits(self.be(8)?)),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let len = self.len_after(marker)?;
                Token::Str(self.take(len)?)
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let len = self.len_after(marker)?;
                Token::Bin(self.take(len)?)
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let len = self.len_after(marker)?;
                self.check_items(len as u64)?;
                Token::Array(len)
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let len = self.len_after(marker)?;
                self.check_items(2 * len as u64)?;
                Token::Map(len)
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
                let kind = self.take(1)?[0] as i8;
                Token::Ext(kind, self.take(len)?)
            }
            Marker::Reserved => return Err(CodecError::UnexpectedType { field: "value" }),
        };
        self.tokens += 1;
        Ok(token)
    }

    /// Skips one whole value (a container with everything in it) without
    /// building anything; containers nest at most [`MAX_DEPTH`] levels.
    pub fn skip(&mut self) -> Result<(), CodecError> {
        self.skip_within(MAX_DEPTH, u32::MAX)
    }

    /// Skips one whole value whose containers nest at most `max_depth` levels
    /// (at most [`MAX_DEPTH`]) and hold at most `max_items` elements each
    /// ([`CodecError::TooManyItems`] beyond). Iterative: no recursion, no
    /// allocation, one step per token.
    pub fn skip_within(&mut self, max_depth: usize, max_items: u32) -> Result<(), CodecError> {
        let max_depth = max_depth.min(MAX_DEPTH);
        // Elements still to skip in each open container.
        let mut open = [0u64; MAX_DEPTH];
        let mut depth = 0;
        loop {
            let token = self.token()?;
            if let Token::Array(n) | Token::Map(n) = token {
                if n > max_items {
                    return Err(CodecError::TooManyItems { len: n as usize, max: max_items as usize });
                }
                if depth == max_depth {
                    return Err(CodecError::TooDeep { max: max_depth });
                }
                if n > 0 {
                    open[depth] = token.items();
                    depth += 1;
                    continue;
                }
            }
            // One value complete: close every container it completes.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                open[depth - 1] -= 1;
                if open[depth - 1] > 0 {
                    break;
                }
                depth -= 1;
            }
        }
    }

    /// True when the next value is `nil`.
    pub fn peek_nil(&self) -> bool {
        self.buf.get(self.pos) == Some(&Marker::Null.to_u8())
    }

    /// Reads `nil` as `None`, anything else with `read`.
    pub fn optional<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, CodecError>,
    ) -> Result<Option<T>, CodecError> {
        if self.peek_nil() {
            self.pos += 1;
            self.tokens += 1;
            return Ok(None);
        }
        read(self).map(Some)
    }

    /// A non-negative integer (signed markers with a non-negative value included:
    /// some encoders write small numbers as signed ints).
    pub fn uint(&mut self, field: &'static str) -> Result<u64, CodecError> {
        match self.token()? {
            Token::Uint(n) => Ok(n),
            Token::Int(n) => u64::try_from(n).map_err(|_| CodecError::UnexpectedType { field }),
            _ => Err(CodecError::UnexpectedType { field }),
        }
    }

    /// A UTF-8 string of at most `max` bytes; the length is checked before the
    /// bytes are read ([`CodecError::TooLarge`]).
    pub fn str(&mut self, field: &'static str, max: usize) -> Result<&'a str, CodecError> {
        let marker = self.marker()?;
        let len = match marker {
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => self.len_after(marker)?,
            _ => return Err(CodecError::UnexpectedType { field }),
        };
        self.tokens += 1;
        check_len(field, len as usize, max)?;
        core::str::from_utf8(self.take(len)?).map_err(|_| CodecError::InvalidUtf8 { field })
    }

    /// Binary data of at most `max` bytes, checked before the bytes are read.
    pub fn bin(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], CodecError> {
        let marker = self.marker()?;
        let len = match marker {
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => self.len_after(marker)?,
            _ => return Err(CodecError::UnexpectedType { field }),
        };
        self.tokens += 1;
        check_len(field, len as usize, max)?;
        self.take(len)
    }

    /// The element count of an array, for a fixed layout read field by field
    /// (so, unlike [`token`](Self::token), a count beyond the bytes left is not
    /// refused here: a prefix of an envelope still yields its header).
    pub fn array_len(&mut self, field: &'static str) -> Result<u32, CodecError> {
        self.header_len(field, false)
    }

    /// The entry count of a map; see [`array_len`](Self::array_len).
    pub fn map_len(&mut self, field: &'static str) -> Result<u32, CodecError> {
        self.header_len(field, true)
    }

    fn header_len(&mut self, field: &'static str, map: bool) -> Result<u32, CodecError> {
        let marker = self.marker()?;
        let expected = match marker {
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => !map,
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => map,
            _ => false,
        };
        if !expected {
            return Err(CodecError::UnexpectedType { field });
        }
        self.tokens += 1;
        self.len_after(marker)
    }

    /// The next `n` bytes.
    fn take(&mut self, n: u32) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n as usize)
            .filter(|&end| end <= self.buf.len())
            .ok_or(CodecError::Truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next `n` (at most 8) bytes as a big-endian unsigned integer.
    fn be(&mut self, n: u32) -> Result<u64, CodecError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn marker(&mut self) -> Result<Marker, CodecError> {
        Ok(Marker::from_u8(self.take(1)?[0]))
    }

    /// The length that follows a str, bin, array, map or ext marker (an ext's
    /// type byte is not counted).
    fn len_after(&mut self, marker: Marker) -> Result<u32, CodecError> {
        Ok(match marker {
            Marker::FixStr(n) | Marker::FixArray(n) | Marker::FixMap(n) => n.into(),
            Marker::FixExt1 => 1,
            Marker::FixExt2 => 2,
            Marker::FixExt4 => 4,
            Marker::FixExt8 => 8,
            Marker::FixExt16 => 16,
            Marker::Str8 | Marker::Bin8 | Marker::Ext8 => self.be(1)? as u32,
            Marker::Str16 | Marker::Bin16 | Marker::Ext16 | Marker::Array16 | Marker::Map16 => {
                self.be(2)? as u32
            }
            Marker::Str32 | Marker::Bin32 | Marker::Ext32 | Marker::Array32 | Marker::Map32 => {
                self.be(4)? as u32
            }
            _ => return Err(CodecError::UnexpectedType { field: "length" }),
        })
    }

    /// Each element takes at least one byte: more than the bytes left is truncated input.
    fn check_items(&self, items: u64) -> Result<(), CodecError> {
        if items > self.remaining() as u64 {
            return Err(CodecError::Truncated);
        }
        Ok(())
    }
}

/// [`CodecError::TooLarge`] when `len > max`.
pub(crate) fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), CodecError> {
    if len > max {
        return Err(CodecError::TooLarge { field, len, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[test]
    fn every_marker_becomes_its_token() {
        let cases: [(&[u8], Token<'_>); 18] = [
            (&[0xc0], Token::Nil),
            (&[0xc3], Token::Bool(true)),
            (&[0x7f], Token::Uint(127)),
            (&[0xe0], Token::Int(-32)),
            (&[0xcd, 0x01, 0x00], Token::Uint(256)),
            (&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Token::Uint(u64::MAX)),
            (&[0xd0, 0x05], Token::Int(5)),
            (&[0xd1, 0xff, 0x00], Token::Int(-256)),
            (&[0xca, 0x3f, 0xc0, 0, 0], Token::F32(1.5)),
            (&[0xcb, 0xbf, 0xf8, 0, 0, 0, 0, 0, 0], Token::F64(-1.5)),
            (&[0xa2, b'h', b'i'], Token::Str(b"hi")),
            (&[0xd9, 0x01, 0xff], Token::Str(&[0xff])),
            (&[0xc4, 0x02, 1, 2], Token::Bin(&[1, 2])),
            (&[0xd4, 0x07, 0x09], Token::Ext(7, &[9])),
            (&[0xc7, 0x01, 0xfe, 0x09], Token::Ext(-2, &[9])),
            (&[0x90], Token::Array(0)),
            (&[0xdc, 0x00, 0x01, 0xc0], Token::Array(1)),
            (&[0x81, 0xc0, 0xc0], Token::Map(1)),
        ];
        for (bytes, token) in cases {
            assert_eq!(Reader::new(bytes).token(), Ok(token), "{bytes:x?}");
        }
        assert_eq!(Reader::new(&[0xc1]).token(), Err(CodecError::UnexpectedType { field: "value" }));
    }

    #[test]
    fn declared_lengths_beyond_the_input_are_truncated_at_the_header() {
        for bytes in [
            &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'][..],
            &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0],
            &[0xdf, 0x00, 0x00, 0x00, 0x02, 0xc0, 0xc0, 0xc0],
            &[0x93, 0xc1],
        ] {
            let mut r = Reader::new(bytes);
            assert_eq!(r.token(), Err(CodecError::Truncated), "{bytes:x?}");
            assert_eq!(r.tokens(), 0);
        }
    }

    #[test]
    fn skip_steps_over_whole_values() {
        // [[1, {"a": []}], "x"], then 7
        let bytes = [0x92, 0x92, 0x01, 0x81, 0xa1, b'a', 0x90, 0xa1, b'x', 0x07];
        let mut r = Reader::new(&bytes);
        r.skip().unwrap();
        assert_eq!((r.tokens(), r.token()), (7, Ok(Token::Uint(7))));
        r.finish().unwrap();
    }

    #[test]
    fn skip_bounds_depth_and_items() {
        let deep: Vec<u8> = core::iter::repeat_n(0x91, MAX_DEPTH + 1).chain([0xc0]).collect();
        assert_eq!(Reader::new(&deep).skip(), Err(CodecError::TooDeep { max: MAX_DEPTH }));
        assert!(Reader::new(&deep[1..]).skip().is_ok(), "MAX_DEPTH levels are fine");
        let empty_arrays: Vec<u8> = core::iter::repeat_n(0x91, MAX_DEPTH).chain([0x90]).collect();
        assert_eq!(Reader::new(&empty_arrays).skip(), Err(CodecError::TooDeep { max: MAX_DEPTH }));
        assert_eq!(
            Reader::new(&[0x93, 0xc0, 0xc0, 0xc0]).skip_within(4, 2),
            Err(CodecError::TooManyItems { len: 3, max: 2 })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_tokens_never_outnumber_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..64)
        ) {
            let mut r = Reader::new(&bytes);
            let _ = r.skip();
            prop_assert!(r.tokens() <= bytes.len());
            let mut r = Reader::new(&bytes);
            while r.token().is_ok() {}
            prop_assert!(r.tokens() <= bytes.len());
        }

        #[test]
        fn skip_reads_what_a_token_walk_reads(value in crate::test_values::json_value()) {
            let bytes = rmp_serde::to_vec(&value).unwrap();
            let mut skipped = Reader::new(&bytes);
            skipped.skip_within(usize::MAX, u32::MAX).unwrap();
            let mut walked = Reader::new(&bytes);
            let mut left = 1;
            while left > 0 {
                left += walked.token().unwrap().items();
                left -= 1;
            }
            prop_assert_eq!((skipped.tokens(), skipped.remaining()), (walked.tokens(), 0));
        }
    }
}
