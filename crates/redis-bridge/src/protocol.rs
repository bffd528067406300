//! The wire protocol, version 1 (see `docs/protocol.md`).
//!
//! Every WebSocket message is one binary frame holding one MessagePack map
//! with a `t` (type) field. Events carry the core envelope's bytes unchanged.

use serde::{Deserialize, Serialize};

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
    /// Liveness check; answered by `pong` with the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
}

/// Frames the bridge sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("frames always serialize")
    }

    /// Decodes a frame from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}

impl ServerFrame {
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("frames always serialize")
    }

    /// Decodes a frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }

    /// An error frame.
    pub fn error(code: &str, message: impl ToString, ack: Option<u64>) -> Self {
        Self::Error { code: code.to_owned(), message: message.to_string(), ack }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frames = [
            ClientFrame::Hello { v: 1, token: None },
            ClientFrame::Subscribe { pattern: "a.>".into(), ack: Some(3) },
            ClientFrame::Publish { envelope: vec![1, 2, 3], ack: Some(7) },
            ClientFrame::Ping { nonce: 9 },
        ];
        for frame in frames {
            assert_eq!(ClientFrame::decode(&frame.encode()).unwrap(), frame);
        }
        let event = ServerFrame::Event { envelope: vec![0xc4, 0] };
        assert_eq!(ServerFrame::decode(&event.encode()).unwrap(), event);
    }

    #[test]
    fn garbage_is_an_error() {
        for bytes in [&[][..], &[0xc1], &[0x81, 0xa1, b't', 0xa3, b'b', b'a', b'd'], &[0xff; 32]] {
            assert!(ClientFrame::decode(bytes).is_err());
        }
    }
}
