//! Typed errors. Every enum is `#[non_exhaustive]`, has a hand-written `Display`
//! and a stable machine-readable [`code`](BusError::code) that the wasm package
//! and the bridge hand to their clients unchanged.

use core::fmt;

use crate::priority::Priority;

/// Why a topic or a subscription pattern was rejected.
///
/// The limits are [`MAX_TOPIC_LEN`](crate::topic::MAX_TOPIC_LEN) bytes and
/// [`MAX_TOKENS`](crate::topic::MAX_TOKENS) tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic or pattern is the empty string.
    Empty,
    /// Two dots in a row, or a leading or trailing dot; `index` is the token's position.
    EmptyToken {
        /// Zero-based position of the empty token.
        index: usize,
    },
    /// A byte outside the allowed set (visible ASCII other than `.`, `*`, `>`).
    IllegalChar {
        /// Byte offset of the offending character.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
    /// A `*` or `>` wildcard in a topic that is published (topics are concrete).
    WildcardInTopic {
        /// Zero-based position of the wildcard token.
        index: usize,
    },
    /// `>` somewhere other than the last token of a pattern.
    MisplacedFullWildcard {
        /// Zero-based position of the misplaced `>`.
        index: usize,
    },
    /// More than [`MAX_TOKENS`](crate::topic::MAX_TOKENS) tokens.
    TooManyTokens {
        /// The number of tokens found (counting stops just past the limit).
        count: usize,
    },
    /// Longer than [`MAX_TOPIC_LEN`](crate::topic::MAX_TOPIC_LEN) bytes.
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
}

impl TopicError {
    /// The stable error code for a rejected topic (`INVALID_TOPIC`).
    pub const TOPIC_CODE: &'static str = "INVALID_TOPIC";
    /// The stable error code for a rejected pattern (`INVALID_PATTERN`).
    pub const PATTERN_CODE: &'static str = "INVALID_PATTERN";
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::topic::{MAX_TOKENS, MAX_TOPIC_LEN};
        match self {
            Self::Empty => f.write_str("topic is empty"),
            Self::EmptyToken { index } => write!(f, "token {index} is empty (leading, trailing or double dot)"),
            Self::IllegalChar { offset, byte } => write!(
                f,
                "illegal byte 0x{byte:02x} at offset {offset} (allowed: visible ASCII except '.', '*', '>' inside a token)"
            ),
            Self::WildcardInTopic { index } => {
                write!(f, "wildcard at token {index}: published topics must be concrete")
            }
            Self::MisplacedFullWildcard { index } => {
                write!(f, "'>' at token {index} must be the last token")
            }
            Self::TooManyTokens { count } => {
                write!(f, "{count} tokens exceed the limit of {MAX_TOKENS}")
            }
            Self::TooLong { len } => write!(f, "{len} bytes exceed the limit of {MAX_TOPIC_LEN}"),
        }
    }
}

/// A priority outside 0–9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityError {
    /// The rejected value.
    pub value: u8,
}

impl PriorityError {
    /// The stable error code (`INVALID_PRIORITY`).
    pub const CODE: &'static str = "INVALID_PRIORITY";
}

impl fmt::Display for PriorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "priority {} is outside 0..=9", self.value)
    }
}

/// The priority queue is full and holds nothing less urgent than the incoming event.
///
/// The rejected value is handed back, so nothing is lost silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFull<T> {
    /// The event that was not queued.
    pub rejected: T,
    /// Its priority.
    pub priority: Priority,
}

impl<T> QueueFull<T> {
    /// The stable error code (`QUEUE_FULL`).
    pub const CODE: &'static str = "QUEUE_FULL";
}

impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue full: nothing below priority {} to evict", self.priority.get())
    }
}

/// Errors returned by the [`EventBus`](crate::bus::EventBus).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusError {
    /// The published topic is invalid.
    InvalidTopic(TopicError),
    /// The subscription pattern is invalid.
    InvalidPattern(TopicError),
    /// The priority is outside 0–9.
    InvalidPriority(PriorityError),
    /// The queue is full of events at least as urgent as this one.
    QueueFull {
        /// Priority of the rejected event.
        priority: Priority,
    },
}

impl BusError {
    /// The stable error code, e.g. `QUEUE_FULL`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidTopic(_) => TopicError::TOPIC_CODE,
            Self::InvalidPattern(_) => TopicError::PATTERN_CODE,
            Self::InvalidPriority(_) => PriorityError::CODE,
            Self::QueueFull { .. } => "QUEUE_FULL",
        }
    }
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTopic(e) => write!(f, "invalid topic: {e}"),
            Self::InvalidPattern(e) => write!(f, "invalid pattern: {e}"),
            Self::InvalidPriority(e) => e.fmt(f),
            Self::QueueFull { priority } => {
                write!(f, "queue full: nothing below priority {} to evict", priority.get())
            }
        }
    }
}

/// The circuit breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen {
    /// Milliseconds until the breaker lets a probe through, if it will on its own
    /// (`None` when forced open).
    pub retry_after_ms: Option<u64>,
}

impl CircuitOpen {
    /// The stable error code (`CIRCUIT_OPEN`).
    pub const CODE: &'static str = "CIRCUIT_OPEN";
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after_ms {
            Some(ms) => write!(f, "circuit open: retry in {ms} ms"),
            None => f.write_str("circuit forced open"),
        }
    }
}

/// Errors of the [`StateStore`](crate::store::StateStore).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// Compare-and-set found a different version than expected.
    VersionConflict {
        /// The version the caller expected.
        expected: u64,
        /// The key's actual version (0 when the key is absent).
        actual: u64,
    },
    /// No snapshot with this id is in the history.
    UnknownSnapshot(u64),
    /// Bytes could not be decoded into a state image.
    Decode(&'static str),
    /// The state image is larger than the accepted limit.
    TooLarge {
        /// Size of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl StoreError {
    /// The stable error code, e.g. `VERSION_CONFLICT`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::VersionConflict { .. } => "VERSION_CONFLICT",
            Self::UnknownSnapshot(_) => "UNKNOWN_SNAPSHOT",
            Self::Decode(_) => "DECODE_ERROR",
            Self::TooLarge { .. } => "PAYLOAD_TOO_LARGE",
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VersionConflict { expected, actual } => {
                write!(f, "version conflict: expected {expected}, found {actual}")
            }
            Self::UnknownSnapshot(id) => write!(f, "no snapshot {id} in the history"),
            Self::Decode(why) => write!(f, "cannot decode state: {why}"),
            Self::TooLarge { len, max } => {
                write!(f, "state image of {len} bytes exceeds the limit of {max}")
            }
        }
    }
}

/// Why envelope bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before the envelope did.
    Truncated,
    /// A MessagePack marker of the wrong type for this field.
    UnexpectedType {
        /// The field being read.
        field: &'static str,
    },
    /// The envelope's format version is not one this build reads.
    UnsupportedVersion(u64),
    /// The envelope array has the wrong number of fields.
    FieldCount(u32),
    /// A field is longer than its limit.
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A string field is not valid UTF-8.
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// The topic fails validation.
    InvalidTopic(TopicError),
    /// The priority is outside 0–9.
    InvalidPriority(u64),
    /// Bytes follow the end of the envelope.
    TrailingBytes(usize),
    /// Arrays and maps nest deeper than the limit
    /// ([`MAX_DEPTH`](crate::msgpack::MAX_DEPTH) unless a reader says less).
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A container holds more elements than the reader accepts (bridge frames
    /// cap every container; see [`protocol`](crate::protocol)).
    TooManyItems {
        /// The declared element count.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl CodecError {
    /// The stable error code: `PAYLOAD_TOO_LARGE` for size limits, `INVALID_TOPIC`
    /// and `INVALID_PRIORITY` for those fields, `DECODE_ERROR` otherwise.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::InvalidTopic(_) => TopicError::TOPIC_CODE,
            Self::InvalidPriority(_) => PriorityError::CODE,
            _ => "DECODE_ERROR",
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("envelope is truncated"),
            Self::UnexpectedType { field } => write!(f, "field `{field}` has the wrong type"),
            Self::UnsupportedVersion(v) => write!(f, "envelope format version {v} is not supported"),
            Self::FieldCount(n) => write!(f, "envelope has {n} fields, expected 10"),
            Self::TooLarge { field, len, max } => {
                write!(f, "field `{field}` is {len} bytes, limit {max}")
            }
            Self::InvalidUtf8 { field } => write!(f, "field `{field}` is not valid UTF-8"),
            Self::InvalidTopic(e) => write!(f, "invalid topic: {e}"),
            Self::InvalidPriority(p) => write!(f, "priority {p} is outside 0..=9"),
            Self::TrailingBytes(n) => write!(f, "{n} bytes after the end of the envelope"),
            Self::TooDeep { max } => write!(f, "arrays and maps nest deeper than {max} levels"),
            Self::TooManyItems { len, max } => {
                write!(f, "a container of {len} elements exceeds the limit of {max}")
            }
        }
    }
}

impl core::error::Error for TopicError {}
impl core::error::Error for PriorityError {}
impl<T: fmt::Debug> core::error::Error for QueueFull<T> {}
impl core::error::Error for BusError {}
impl core::error::Error for CircuitOpen {}
impl core::error::Error for StoreError {}
impl core::error::Error for CodecError {}
