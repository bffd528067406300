//! The bridge's one error type; clients get its code and message, never internals.

use std::fmt;

use swarmbus_core::{CodecError, TopicError};

/// What went wrong with a client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeError {
    /// The frame or body is not valid MessagePack / JSON of the expected shape.
    Malformed(String),
    /// The envelope failed to decode.
    Codec(CodecError),
    /// A subscription pattern is invalid.
    InvalidPattern(TopicError),
    /// A topic is invalid.
    InvalidTopic(TopicError),
    /// The client has too many subscriptions.
    TooManySubscriptions(usize),
    /// The first frame must be `hello`.
    HelloRequired,
    /// The client speaks another protocol version.
    UnsupportedVersion(u32),
    /// The client is no longer connected.
    Gone,
    /// The publish was not sent (Redis mode): Redis is unreachable or stalled,
    /// or this bridge's own subscription is down. Retrying cannot duplicate it.
    Unavailable(String),
    /// The publish was sent to Redis but no answer came in time (Redis mode):
    /// it may or may not be delivered.
    Timeout(String),
    /// The token's `nbf` is still in the future.
    TokenNotYetValid,
    /// No accepted `hello` arrived within `--hello-timeout` of the upgrade.
    HelloTimeout,
    /// Too many connections have not yet authenticated (`--max-unauthenticated`).
    TooManyUnauthenticated(usize),
    /// The HTTP request body did not arrive within `--body-timeout`.
    BodyTimeout,
    /// The bridge requires a token and none was given.
    AuthRequired,
    /// The token's `exp` has passed.
    TokenExpired,
    /// The token is malformed or its signature does not verify.
    InvalidToken,
    /// The token does not grant this topic or pattern.
    Forbidden(String),
    /// Publishes faster than `--publish-rate` (on one WebSocket, or all HTTP publishes together).
    RateLimited(u32),
}

impl BridgeError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "DECODE_ERROR",
            Self::Codec(e) => e.code(),
            Self::InvalidPattern(_) => TopicError::PATTERN_CODE,
            Self::InvalidTopic(_) => TopicError::TOPIC_CODE,
            Self::TooManySubscriptions(_) => "TOO_MANY_SUBSCRIPTIONS",
            Self::HelloRequired => "HELLO_REQUIRED",
            Self::UnsupportedVersion(_) => "UNSUPPORTED_VERSION",
            Self::Gone => "GONE",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Timeout(_) => "TIMEOUT",
            Self::TokenNotYetValid => "TOKEN_NOT_YET_VALID",
            Self::HelloTimeout => "HELLO_TIMEOUT",
            Self::TooManyUnauthenticated(_) => "TOO_MANY_UNAUTHENTICATED",
            Self::BodyTimeout => "BODY_TIMEOUT",
            Self::AuthRequired => "AUTH_REQUIRED",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::RateLimited(_) => "RATE_LIMITED",
        }
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed frame: {why}"),
            Self::Codec(e) => write!(f, "invalid envelope: {e}"),
            Self::InvalidPattern(e) => write!(f, "invalid pattern: {e}"),
            Self::InvalidTopic(e) => write!(f, "invalid topic: {e}"),
            Self::TooManySubscriptions(max) => write!(f, "more than {max} subscriptions on one connection"),
            Self::HelloRequired => f.write_str("the first frame must be hello"),
            Self::UnsupportedVersion(v) => {
                write!(f, "protocol version {v} is not supported (this bridge speaks 1)")
            }
            Self::Gone => f.write_str("connection closed"),
            Self::Unavailable(why) => write!(f, "not sent, relay unavailable: {why}"),
            Self::Timeout(why) => write!(f, "outcome unknown, no answer in time: {why}"),
            Self::TokenNotYetValid => f.write_str("the token is not valid yet (nbf)"),
            Self::HelloTimeout => f.write_str("no hello in time"),
            Self::TooManyUnauthenticated(max) => {
                write!(f, "more than {max} connections are waiting to authenticate")
            }
            Self::BodyTimeout => f.write_str("the request body did not arrive in time"),
            Self::AuthRequired => f.write_str("this bridge requires a token"),
            Self::TokenExpired => f.write_str("the token has expired"),
            Self::InvalidToken => f.write_str("the token is invalid or its signature does not verify"),
            Self::Forbidden(what) => write!(f, "the token does not grant {what}"),
            Self::RateLimited(rate) => write!(f, "more than {rate} publishes per second"),
        }
    }
}

impl std::error::Error for BridgeError {}

impl From<CodecError> for BridgeError {
    fn from(e: CodecError) -> Self {
        Self::Codec(e)
    }
}
