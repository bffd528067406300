//! The bridge wire protocol, version 1 (see `docs/protocol.md`): the frames
//! spoken between `swarmbus-bridge` and its clients (the native client and the
//! wasm `Messenger`), defined once here for both.
//!
//! Every WebSocket message is one binary frame holding one MessagePack map
//! with a `t` (type) field. Events carry the core envelope's bytes unchanged.

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::msgpack::Reader;
use crate::CodecError;

/// The protocol version this bridge speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum ClientFrame {
    /// First frame of a connection.
    Hello {
        /// Protocol version the client speaks.
        v: u32,
        /// Bearer token (required when the bridge has an auth secret).
        #[serde(default)]
        token: Option<String>,
    },
    /// Receive events whose topic matches `pattern`.
    Subscribe {
        /// A topic pattern (`*`, `>` wildcards).
        pattern: String,
        /// With it, the bridge answers `ack` (or `error` carrying it).
        #[serde(default)]
        ack: Option<u64>,
    },
    /// Stop receiving events for `pattern`.
    Unsubscribe {
        /// The pattern given to `subscribe`.
        pattern: String,
    },
    /// Publish an encoded envelope; with `ack`, the bridge answers `ack`.
    Publish {
        /// The core envelope's MessagePack bytes.
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
        /// Correlates the acknowledgement.
        #[serde(default)]
        ack: Option<u64>,
    },
    /// Counters this client measured, cumulative over the connection: events
    /// it handled on the wasm path and on a plain-JS path. The bridge exports
    /// them per client `kind` (`swarmbus_client_events_total`). Not answered.
    Report {
        /// What kind of client this is (`dashboard`, `worker`, ...): 1–32 of `a-z 0-9 _ -`.
        kind: String,
        /// Events handled on the wasm path so far.
        #[serde(default)]
        wasm: u64,
        /// Events handled on the plain-JS path so far.
        #[serde(default)]
        js: u64,
    },
    /// Replaces the connection's token before it expires (only after `hello`):
    /// the new token's grants and `exp` apply from then on; with `ack`,
    /// answered by `ack` (or `error` carrying it).
    Refresh {
        /// The new bearer token, for the same `sub` as the hello's.
        token: String,
        /// Correlates the acknowledgement.
        #[serde(default)]
        ack: Option<u64>,
    },
    /// Liveness check; answered by `pong` with the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
}

/// Frames the bridge sends.
///
/// Decoding is written out by hand ([`ServerFrame::decode`]): serde's code for
/// internally tagged enums costs the wasm client ~40 KB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum ServerFrame {
    /// Answer to `hello`.
    Welcome {
        /// Protocol version of the bridge.
        v: u32,
        /// This connection's id, for logs.
        session: u64,
    },
    /// An event matching one of the client's subscriptions.
    Event {
        /// The envelope's bytes, as published.
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
    },
    /// A publish with `ack` was accepted.
    Ack {
        /// The publish's `ack` value.
        ack: u64,
    },
    /// Something the client sent was refused.
    Error {
        /// Stable code, e.g. `DECODE_ERROR`.
        code: String,
        /// Human-readable explanation.
        message: String,
        /// The `ack` of the refused publish, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack: Option<u64>,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
}

impl ClientFrame {
    /// Encodes the frame: the bytes rmp-serde writes for it (a map, `t` first),
    /// written out by hand so the wasm client carries no serde serializer.
    pub fn encode(&self) -> Vec<u8> {
        use rmp::encode as w;
        fn str(out: &mut Vec<u8>, key: &str, value: &str) {
            let _ = w::write_str(out, key);
            let _ = w::write_str(out, value);
        }
        fn uint(out: &mut Vec<u8>, key: &str, value: u64) {
            let _ = w::write_str(out, key);
            let _ = w::write_uint(out, value);
        }
        fn optional(out: &mut Vec<u8>, key: &str, value: Option<u64>) {
            match value {
                Some(value) => uint(out, key, value),
                None => {
                    let _ = w::write_str(out, key);
                    let _ = w::write_nil(out);
                }
            }
        }
        let mut out = Vec::with_capacity(match self {
            Self::Publish { envelope, .. } => envelope.len() + 32,
            _ => 64,
        });
        // Writing into a Vec cannot fail, so the writers' Results carry no information.
        match self {
            Self::Hello { v, token } => {
                let _ = w::write_map_len(&mut out, 3);
                str(&mut out, "t", "hello");
                uint(&mut out, "v", u64::from(*v));
                let _ = w::write_str(&mut out, "token");
                match token {
                    Some(token) => drop(w::write_str(&mut out, token)),
                    None => drop(w::write_nil(&mut out)),
                }
            }
            Self::Subscribe { pattern, ack } => {
                let _ = w::write_map_len(&mut out, 3);
                str(&mut out, "t", "subscribe");
                str(&mut out, "pattern", pattern);
                optional(&mut out, "ack", *ack);
            }
            Self::Unsubscribe { pattern } => {
                let _ = w::write_map_len(&mut out, 2);
                str(&mut out, "t", "unsubscribe");
                str(&mut out, "pattern", pattern);
            }
            Self::Publish { envelope, ack } => {
                let _ = w::write_map_len(&mut out, 3);
                str(&mut out, "t", "publish");
                let _ = w::write_str(&mut out, "envelope");
                let _ = w::write_bin(&mut out, envelope);
                optional(&mut out, "ack", *ack);
            }
            Self::Report { kind, wasm, js } => {
                let _ = w::write_map_len(&mut out, 4);
                str(&mut out, "t", "report");
                str(&mut out, "kind", kind);
                uint(&mut out, "wasm", *wasm);
                uint(&mut out, "js", *js);
            }
            Self::Refresh { token, ack } => {
                let _ = w::write_map_len(&mut out, 3);
                str(&mut out, "t", "refresh");
                str(&mut out, "token", token);
                optional(&mut out, "ack", *ack);
            }
            Self::Ping { nonce } => {
                let _ = w::write_map_len(&mut out, 2);
                str(&mut out, "t", "ping");
                uint(&mut out, "nonce", *nonce);
            }
        }
        out
    }

    /// Decodes a frame from untrusted bytes: a map with a `t` field; unknown
    /// keys are skipped without building values (see [`skip_unknown`]), so
    /// the work is bounded by the frame's size (one step per token, each
    /// token at least one byte).
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        Self::read(&mut Reader::new(bytes))
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        let mut kind = None;
        let (mut v, mut ack, mut nonce, mut wasm, mut js) = (None, None, None, None, None);
        let (mut token, mut pattern, mut envelope, mut client_kind) = (None, None, None, None);
        for _ in 0..frame_fields(reader)? {
            match reader.str("key", MAX_TEXT)? {
                "t" => kind = Some(reader.str("t", MAX_TEXT)?),
                "v" => v = Some(reader.uint("v")?),
                "token" => token = Some(reader.optional(|r| r.str("token", MAX_TEXT))?),
                "pattern" => pattern = Some(reader.str("pattern", MAX_TEXT)?),
                "ack" => ack = reader.optional(|r| r.uint("ack"))?,
                "envelope" => envelope = Some(reader.bin("envelope", usize::MAX)?),
                "kind" => client_kind = Some(reader.str("kind", MAX_TEXT)?),
                "wasm" => wasm = Some(reader.uint("wasm")?),
                "js" => js = Some(reader.uint("js")?),
                "nonce" => nonce = Some(reader.uint("nonce")?),
                _ => skip_unknown(reader)?,
            }
        }
        reader.finish()?;
        let missing = |field| CodecError::UnexpectedType { field };
        let text = |value: Option<&str>, field| value.map(str::to_owned).ok_or(missing(field));
        Ok(match kind.ok_or(missing("t"))? {
            "hello" => Self::Hello {
                v: u32::try_from(v.ok_or(missing("v"))?).map_err(|_| missing("v"))?,
                token: token.flatten().map(str::to_owned),
            },
            "subscribe" => Self::Subscribe { pattern: text(pattern, "pattern")?, ack },
            "unsubscribe" => Self::Unsubscribe { pattern: text(pattern, "pattern")? },
            "publish" => Self::Publish { envelope: envelope.ok_or(missing("envelope"))?.to_vec(), ack },
            "report" => Self::Report {
                kind: text(client_kind, "kind")?,
                wasm: wasm.unwrap_or(0),
                js: js.unwrap_or(0),
            },
            "refresh" => Self::Refresh { token: text(token.flatten(), "token")?, ack },
            "ping" => Self::Ping { nonce: nonce.ok_or(missing("nonce"))? },
            _ => return Err(missing("t")),
        })
    }
}

/// Longest string (key, type, token, pattern, message) in a frame.
pub const MAX_TEXT: usize = 64 * 1024;
/// Most keys in a frame, and most elements of any array or map inside an
/// unknown field: a frame padded with a million empty maps is refused at the
/// padding's header ([`CodecError::TooManyItems`]), before a single map is read.
pub const MAX_FRAME_ITEMS: u32 = 1024;

/// The key count of the frame's map, at most [`MAX_FRAME_ITEMS`].
fn frame_fields(reader: &mut Reader<'_>) -> Result<u32, CodecError> {
    let fields = reader.map_len("frame")?;
    if fields > MAX_FRAME_ITEMS {
        return Err(CodecError::TooManyItems { len: fields as usize, max: MAX_FRAME_ITEMS as usize });
    }
    Ok(fields)
}

/// Skips the value of a key this version does not know, without building it:
/// containers nest at most [`MAX_DEPTH`](crate::msgpack::MAX_DEPTH) levels and
/// hold at most [`MAX_FRAME_ITEMS`] elements each.
fn skip_unknown(reader: &mut Reader<'_>) -> Result<(), CodecError> {
    reader.skip_within(crate::msgpack::MAX_DEPTH, MAX_FRAME_ITEMS)
}

impl ServerFrame {
    /// Encodes the frame (with the `std` feature: through rmp-serde).
    #[cfg(feature = "std")]
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("frames always serialize")
    }

    /// Decodes a frame from untrusted bytes: a map with a `t` field; unknown
    /// keys are skipped without building values (see [`skip_unknown`]), so
    /// later protocol versions can add fields.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        let mut kind = None;
        let (mut v, mut session, mut ack, mut nonce) = (None, None, None, None);
        let (mut envelope, mut code, mut message) = (None, None, None);
        for _ in 0..frame_fields(&mut reader)? {
            match reader.str("key", MAX_TEXT)? {
                "t" => kind = Some(reader.str("t", MAX_TEXT)?),
                "v" => v = Some(reader.uint("v")?),
                "session" => session = Some(reader.uint("session")?),
                "ack" if !reader.peek_nil() => ack = Some(reader.uint("ack")?),
                "nonce" => nonce = Some(reader.uint("nonce")?),
                "envelope" => envelope = Some(reader.bin("envelope", usize::MAX)?),
                "code" => code = Some(reader.str("code", MAX_TEXT)?),
                "message" => message = Some(reader.str("message", MAX_TEXT)?),
                _ => skip_unknown(&mut reader)?,
            }
        }
        reader.finish()?;
        let missing = |field| CodecError::UnexpectedType { field };
        Ok(match kind.ok_or(missing("t"))? {
            "welcome" => Self::Welcome {
                v: u32::try_from(v.ok_or(missing("v"))?).map_err(|_| missing("v"))?,
                session: session.ok_or(missing("session"))?,
            },
            "event" => Self::Event { envelope: envelope.ok_or(missing("envelope"))?.to_vec() },
            "ack" => Self::Ack { ack: ack.ok_or(missing("ack"))? },
            "error" => Self::Error {
                code: code.ok_or(missing("code"))?.to_owned(),
                message: message.unwrap_or_default().to_owned(),
                ack,
            },
            "pong" => Self::Pong { nonce: nonce.ok_or(missing("nonce"))? },
            _ => return Err(missing("t")),
        })
    }

    /// An error frame.
    pub fn error(code: &str, message: impl ToString, ack: Option<u64>) -> Self {
        Self::Error { code: code.to_owned(), message: message.to_string(), ack }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frames = [
            ClientFrame::Hello { v: 1, token: None },
            ClientFrame::Hello { v: 70_000, token: Some("jwt".into()) },
            ClientFrame::Subscribe { pattern: "a.>".into(), ack: Some(3) },
            ClientFrame::Subscribe { pattern: "a.*".into(), ack: None },
            ClientFrame::Unsubscribe { pattern: "a.*".into() },
            ClientFrame::Publish { envelope: vec![7; 300], ack: None },
            ClientFrame::Publish { envelope: vec![1, 2, 3], ack: Some(7) },
            ClientFrame::Ping { nonce: u64::MAX },
            ClientFrame::Report { kind: "dashboard".into(), wasm: 10, js: 2 },
            ClientFrame::Refresh { token: "jwt".into(), ack: Some(4) },
            ClientFrame::Refresh { token: "jwt".into(), ack: None },
        ];
        for frame in frames {
            assert_eq!(frame.encode(), rmp_serde::to_vec_named(&frame).unwrap(), "same bytes as rmp-serde");
            assert_eq!(ClientFrame::decode(&frame.encode()).unwrap(), frame);
        }
        let server = [
            ServerFrame::Welcome { v: 1, session: u64::MAX },
            ServerFrame::Event { envelope: vec![0xc4, 0] },
            ServerFrame::Ack { ack: 42 },
            ServerFrame::error("FORBIDDEN", "no", Some(3)),
            ServerFrame::error("DECODE_ERROR", "bad", None),
            ServerFrame::Pong { nonce: 0 },
        ];
        for frame in server {
            assert_eq!(ServerFrame::decode(&frame.encode()).unwrap(), frame);
        }
    }

    #[test]
    fn server_frames_skip_unknown_keys_and_refuse_garbage() {
        // {"t": "ack", "x": [1, {"y": nil}], "ack": 5}
        let bytes = [
            0x83, 0xa1, b't', 0xa3, b'a', b'c', b'k', 0xa1, b'x', 0x92, 0x01, 0x81, 0xa1, b'y', 0xc0, 0xa3,
            b'a', b'c', b'k', 0x05,
        ];
        assert_eq!(ServerFrame::decode(&bytes).unwrap(), ServerFrame::Ack { ack: 5 });
        for bytes in
            [&[][..], &[0x80], &[0x81, 0xa1, b't', 0xa3, b'b', b'a', b'd'], &[0xff; 32], &bytes[..10]]
        {
            assert!(ServerFrame::decode(bytes).is_err(), "{bytes:?}");
        }
        // {"t": "pong", "nonce": 1, "z": [[[...nil...]]]} nested one level too deep
        let mut deep =
            vec![0x83, 0xa1, b't', 0xa4, b'p', b'o', b'n', b'g', 0xa5, b'n', b'o', b'n', b'c', b'e', 1];
        deep.extend([0xa1, b'z']);
        deep.extend([0x91; crate::msgpack::MAX_DEPTH + 1]);
        deep.push(0xc0);
        let max = crate::msgpack::MAX_DEPTH;
        assert_eq!(ServerFrame::decode(&deep), Err(CodecError::TooDeep { max }), "nesting is bounded");
        deep.remove(17);
        assert_eq!(ServerFrame::decode(&deep), Ok(ServerFrame::Pong { nonce: 1 }));
    }

    /// `{"t": "ping", "nonce": 1, "pad": <padding>}`.
    fn padded_ping(padding: &[u8]) -> Vec<u8> {
        let mut bytes =
            vec![0x83, 0xa1, b't', 0xa4, b'p', b'i', b'n', b'g', 0xa5, b'n', b'o', b'n', b'c', b'e', 1];
        bytes.extend([0xa3, b'p', b'a', b'd']);
        bytes.extend(padding);
        bytes
    }

    // Regression (issue 13): a frame padded with a million empty maps in an
    // unknown field cost 70 ms of CPU per MiB (rmp-serde buffered every map).
    #[test]
    fn a_million_empty_maps_are_refused_at_the_padding_header() {
        let mut padding = vec![0xdd];
        padding.extend(1_000_000u32.to_be_bytes());
        padding.extend(core::iter::repeat_n(0x80, 1_000_000));
        let bytes = padded_ping(&padding);
        let mut reader = Reader::new(&bytes);
        assert_eq!(
            ClientFrame::read(&mut reader),
            Err(CodecError::TooManyItems { len: 1_000_000, max: MAX_FRAME_ITEMS as usize })
        );
        // map, "t", "ping", "nonce", 1, "pad" and the padding's header: no map of it was read
        assert_eq!(reader.tokens(), 7);
    }

    #[test]
    fn padding_within_the_caps_is_skipped_one_step_per_token() {
        // A million empty maps in 977 arrays of at most 1024: every container
        // within the cap, so the padding is skipped, token by token, nothing built.
        let mut padding = vec![0xdc];
        padding.extend(977u16.to_be_bytes());
        for chunk in 0..977 {
            let n = if chunk < 976 { 1024 } else { (1_000_000 - 976 * 1024) as u16 };
            padding.push(0xdc);
            padding.extend(n.to_be_bytes());
            padding.extend(core::iter::repeat_n(0x80, n as usize));
        }
        let bytes = padded_ping(&padding);
        let mut reader = Reader::new(&bytes);
        assert_eq!(ClientFrame::read(&mut reader), Ok(ClientFrame::Ping { nonce: 1 }));
        let frame_tokens = 7; // map, 3 keys, "ping", 1, and the padding's outer array
        assert_eq!(reader.tokens(), frame_tokens + 977 + 1_000_000);
        assert!(reader.tokens() <= bytes.len());
        assert_eq!(ServerFrame::decode(&bytes), Err(CodecError::UnexpectedType { field: "t" }));
    }

    #[test]
    fn client_frames_skip_unknown_keys_and_refuse_what_is_not_a_frame() {
        // {"t": "subscribe", "x": {"y": [1]}, "pattern": "a.>", "ack": nil}
        let mut bytes = vec![0x84, 0xa1, b't', 0xa9];
        bytes.extend(b"subscribe");
        bytes.extend([0xa1, b'x', 0x81, 0xa1, b'y', 0x91, 0x01, 0xa7]);
        bytes.extend(b"pattern");
        bytes.extend([0xa3, b'a', b'.', b'>', 0xa3, b'a', b'c', b'k', 0xc0]);
        assert_eq!(
            ClientFrame::decode(&bytes),
            Ok(ClientFrame::Subscribe { pattern: "a.>".into(), ack: None })
        );
        assert_eq!(ClientFrame::decode(&bytes[..bytes.len() - 1]), Err(CodecError::Truncated));
        let mut trailing = bytes.clone();
        trailing.push(0xc0);
        assert_eq!(ClientFrame::decode(&trailing), Err(CodecError::TrailingBytes(1)));
        // {"t": "hello", "v": 2^32}
        let hello =
            [0x82, 0xa1, b't', 0xa5, b'h', b'e', b'l', b'l', b'o', 0xa1, b'v', 0xcf, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(ClientFrame::decode(&hello), Err(CodecError::UnexpectedType { field: "v" }));
        // {"t": "refresh", "token": nil}
        let refresh = [
            0x82, 0xa1, b't', 0xa7, b'r', b'e', b'f', b'r', b'e', b's', b'h', 0xa5, b't', b'o', b'k', b'e',
            b'n', 0xc0,
        ];
        assert_eq!(ClientFrame::decode(&refresh), Err(CodecError::UnexpectedType { field: "token" }));
    }

    #[test]
    fn garbage_is_an_error() {
        for bytes in [&[][..], &[0xc1], &[0x81, 0xa1, b't', 0xa3, b'b', b'a', b'd'], &[0xff; 32]] {
            assert!(ClientFrame::decode(bytes).is_err());
        }
    }
}
