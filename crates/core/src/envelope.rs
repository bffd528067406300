//! The envelope every event travels in, and its MessagePack codec.
//!
//! ## Wire layout (format version 1)
//!
//! One MessagePack array of 10 elements, header first, payload last:
//!
//! | # | field | type |
//! |---|---|---|
//! | 0 | format version | uint, `1` |
//! | 1 | id | uint (u64) |
//! | 2 | topic | str, a valid [topic](crate::topic) |
//! | 3 | priority | uint 0–9 |
//! | 4 | timestamp (ms) | uint (u64) |
//! | 5 | ttl (ms) | nil or uint |
//! | 6 | sender agent | nil or str (≤ [`MAX_NAME_LEN`] bytes) |
//! | 7 | swarm | nil or str (≤ [`MAX_NAME_LEN`] bytes) |
//! | 8 | correlation id | nil or str (≤ [`MAX_NAME_LEN`] bytes) |
//! | 9 | payload | bin (≤ [`Limits::max_payload`], default 1 MiB) |
//!
//! Because id, topic and priority come first, [`peek_header`] routes an
//! envelope by reading a few dozen bytes, without looking at the payload.
//! Decoding borrows strings and payload from the input ([`EnvelopeRef`]) and
//! only copies on [`EnvelopeRef::to_owned`]. Untrusted bytes never panic:
//! every failure is a [`CodecError`], and declared lengths are checked against
//! the limits before anything is allocated.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::error::CodecError;
use crate::msgpack::{check_len, Reader};
use crate::priority::Priority;
use crate::topic::{validate_topic, MAX_TOPIC_LEN};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// Number of array elements in a version-1 envelope.
pub const FIELD_COUNT: u32 = 10;
/// Longest sender, swarm or correlation id, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Default largest payload, in bytes (1 MiB).
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Size limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest accepted payload in bytes.
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_payload: DEFAULT_MAX_PAYLOAD }
    }
}

/// An event in transit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Event id, unique per sender.
    pub id: u64,
    /// Concrete topic.
    pub topic: String,
    /// Priority 0–9.
    pub priority: Priority,
    /// Milliseconds since the Unix epoch (or the sender's clock) at publish.
    pub timestamp_ms: u64,
    /// Time to live in milliseconds.
    pub ttl_ms: Option<u64>,
    /// Agent that sent it.
    pub sender: Option<String>,
    /// Swarm it belongs to.
    pub swarm: Option<String>,
    /// Id of the request this answers.
    pub correlation_id: Option<String>,
    /// Application data, opaque to swarmbus.
    pub payload: Vec<u8>,
}

impl Envelope {
    /// An envelope with the given header and payload and no optional fields.
    pub fn new(
        id: u64,
        topic: impl Into<String>,
        priority: Priority,
        timestamp_ms: u64,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            id,
            topic: topic.into(),
            priority,
            timestamp_ms,
            ttl_ms: None,
            sender: None,
            swarm: None,
            correlation_id: None,
            payload,
        }
    }

    /// Borrowed view of this envelope.
    pub fn as_ref(&self) -> EnvelopeRef<'_> {
        EnvelopeRef {
            id: self.id,
            topic: &self.topic,
            priority: self.priority,
            timestamp_ms: self.timestamp_ms,
            ttl_ms: self.ttl_ms,
            sender: self.sender.as_deref(),
            swarm: self.swarm.as_deref(),
            correlation_id: self.correlation_id.as_deref(),
            payload: &self.payload,
        }
    }

    /// Encodes to MessagePack; see [`encode`].
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        encode(&self.as_ref())
    }
}

/// An envelope as applications describe it (JSON bodies, JS objects): topic
/// and payload required, everything else optional. `P` is the payload before
/// it becomes bytes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeInput<P> {
    /// Concrete topic.
    pub topic: String,
    /// Priority 0–9, default 5.
    #[serde(default)]
    pub priority: Option<u8>,
    /// The payload, encoded by [`into_envelope`](Self::into_envelope)'s caller.
    pub payload: P,
    /// Event id; the caller supplies a default.
    #[serde(default)]
    pub id: Option<u64>,
    /// Time to live in milliseconds.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
    /// Sender agent.
    #[serde(default)]
    pub sender: Option<String>,
    /// Swarm.
    #[serde(default)]
    pub swarm: Option<String>,
    /// Correlation id.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl<P> EnvelopeInput<P> {
    /// Builds the envelope: `encode` turns the payload into bytes, `default_id`
    /// is called when no id was given, the priority defaults to 5.
    ///
    /// # Examples
    /// ```
    /// use swarmbus_core::envelope::EnvelopeInput;
    /// let input: EnvelopeInput<String> = serde_json::from_str(r#"{"topic":"a.b","payload":"hi","ttlMs":5}"#).unwrap();
    /// let env = input.into_envelope(|| 7, 1_000, |p| Ok::<_, swarmbus_core::CodecError>(p.into_bytes()))?;
    /// assert_eq!((env.id, env.priority.get(), env.ttl_ms, &env.payload[..]), (7, 5, Some(5), &b"hi"[..]));
    /// # Ok::<(), swarmbus_core::CodecError>(())
    /// ```
    pub fn into_envelope<E: From<CodecError>>(
        self,
        default_id: impl FnOnce() -> u64,
        timestamp_ms: u64,
        encode: impl FnOnce(P) -> Result<Vec<u8>, E>,
    ) -> Result<Envelope, E> {
        let raw = self.priority.unwrap_or(Priority::NORMAL.get());
        let priority = Priority::new(raw).map_err(|_| CodecError::InvalidPriority(raw as u64))?;
        Ok(Envelope {
            id: self.id.unwrap_or_else(default_id),
            topic: self.topic,
            priority,
            timestamp_ms,
            ttl_ms: self.ttl_ms,
            sender: self.sender,
            swarm: self.swarm,
            correlation_id: self.correlation_id,
            payload: encode(self.payload)?,
        })
    }
}

/// An envelope borrowing its strings and payload from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeRef<'a> {
    /// See [`Envelope::id`].
    pub id: u64,
    /// See [`Envelope::topic`].
    pub topic: &'a str,
    /// See [`Envelope::priority`].
    pub priority: Priority,
    /// See [`Envelope::timestamp_ms`].
    pub timestamp_ms: u64,
    /// See [`Envelope::ttl_ms`].
    pub ttl_ms: Option<u64>,
    /// See [`Envelope::sender`].
    pub sender: Option<&'a str>,
    /// See [`Envelope::swarm`].
    pub swarm: Option<&'a str>,
    /// See [`Envelope::correlation_id`].
    pub correlation_id: Option<&'a str>,
    /// See [`Envelope::payload`].
    pub payload: &'a [u8],
}

impl EnvelopeRef<'_> {
    /// Copies into an owned [`Envelope`].
    pub fn to_owned(&self) -> Envelope {
        Envelope {
            id: self.id,
            topic: self.topic.into(),
            priority: self.priority,
            timestamp_ms: self.timestamp_ms,
            ttl_ms: self.ttl_ms,
            sender: self.sender.map(String::from),
            swarm: self.swarm.map(String::from),
            correlation_id: self.correlation_id.map(String::from),
            payload: self.payload.to_vec(),
        }
    }
}

/// What routing needs, read without touching the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Event id.
    pub id: u64,
    /// Topic, validated.
    pub topic: &'a str,
    /// Priority.
    pub priority: Priority,
}

/// Encodes an envelope. Fails if the topic is invalid or a field exceeds the
/// default [`Limits`], so that whatever encodes also decodes.
///
/// # Examples
/// ```
/// use swarmbus_core::{envelope, Envelope, Priority};
/// let env = Envelope::new(7, "swarm.alpha.task", Priority::TASK, 1_700_000_000_000, b"hi".to_vec());
/// let bytes = env.encode()?;
/// let header = envelope::peek_header(&bytes)?;
/// assert_eq!((header.id, header.topic, header.priority), (7, "swarm.alpha.task", Priority::TASK));
/// assert_eq!(envelope::decode(&bytes)?, env);
/// # Ok::<(), swarmbus_core::CodecError>(())
/// ```
pub fn encode(env: &EnvelopeRef<'_>) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_into(env, &mut out)?;
    Ok(out)
}

/// Appends the encoding of `env` to `out` (reuse one buffer across calls).
pub fn encode_into(env: &EnvelopeRef<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
    validate_topic(env.topic).map_err(CodecError::InvalidTopic)?;
    for (field, value) in
        [("sender", env.sender), ("swarm", env.swarm), ("correlation_id", env.correlation_id)]
    {
        check_len(field, value.map_or(0, str::len), MAX_NAME_LEN)?;
    }
    check_len("payload", env.payload.len(), DEFAULT_MAX_PAYLOAD)?;
    let names = [env.sender, env.swarm, env.correlation_id].iter().flatten().map(|s| s.len()).sum::<usize>();
    out.reserve(48 + env.topic.len() + names + env.payload.len());
    // Writing into a Vec cannot fail, so the writers' Results carry no information.
    let _ = rmp::encode::write_array_len(out, FIELD_COUNT);
    let _ = rmp::encode::write_uint(out, FORMAT_VERSION);
    let _ = rmp::encode::write_uint(out, env.id);
    let _ = rmp::encode::write_str(out, env.topic);
    let _ = rmp::encode::write_uint(out, env.priority.get() as u64);
    let _ = rmp::encode::write_uint(out, env.timestamp_ms);
    match env.ttl_ms {
        Some(ttl) => drop(rmp::encode::write_uint(out, ttl)),
        None => drop(rmp::encode::write_nil(out)),
    }
    for value in [env.sender, env.swarm, env.correlation_id] {
        match value {
            Some(s) => drop(rmp::encode::write_str(out, s)),
            None => drop(rmp::encode::write_nil(out)),
        }
    }
    let _ = rmp::encode::write_bin(out, env.payload);
    Ok(())
}

/// Reads id, topic and priority without decoding the rest.
pub fn peek_header(bytes: &[u8]) -> Result<Header<'_>, CodecError> {
    let mut r = Reader::new(bytes);
    preamble(&mut r)?;
    let id = r.uint("id")?;
    let topic = topic(&mut r)?;
    let priority = priority(&mut r)?;
    Ok(Header { id, topic, priority })
}

/// Decodes an owned envelope with the default [`Limits`].
pub fn decode(bytes: &[u8]) -> Result<Envelope, CodecError> {
    decode_ref(bytes, &Limits::default()).map(|e| e.to_owned())
}

/// Decodes an envelope that borrows from `bytes`, checking `limits`.
pub fn decode_ref<'a>(bytes: &'a [u8], limits: &Limits) -> Result<EnvelopeRef<'a>, CodecError> {
    let mut r = Reader::new(bytes);
    preamble(&mut r)?;
    let env = EnvelopeRef {
        id: r.uint("id")?,
        topic: topic(&mut r)?,
        priority: priority(&mut r)?,
        timestamp_ms: r.uint("timestamp")?,
        ttl_ms: r.optional(|r| r.uint("ttl"))?,
        sender: r.optional(|r| r.str("sender", MAX_NAME_LEN))?,
        swarm: r.optional(|r| r.str("swarm", MAX_NAME_LEN))?,
        correlation_id: r.optional(|r| r.str("correlation_id", MAX_NAME_LEN))?,
        payload: r.bin("payload", limits.max_payload)?,
    };
    r.finish()?;
    Ok(env)
}

fn preamble(r: &mut Reader<'_>) -> Result<(), CodecError> {
    let len = r.array_len("envelope")?;
    let version = r.uint("version")?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    if len != FIELD_COUNT {
        return Err(CodecError::FieldCount(len));
    }
    Ok(())
}

fn topic<'a>(r: &mut Reader<'a>) -> Result<&'a str, CodecError> {
    let topic = r.str("topic", MAX_TOPIC_LEN)?;
    validate_topic(topic).map_err(CodecError::InvalidTopic)?;
    Ok(topic)
}

fn priority(r: &mut Reader<'_>) -> Result<Priority, CodecError> {
    let raw = r.uint("priority")?;
    u8::try_from(raw).ok().and_then(|p| Priority::new(p).ok()).ok_or(CodecError::InvalidPriority(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            id: u64::MAX,
            topic: "swarm.alpha.agent.7".into(),
            priority: Priority::LIFECYCLE,
            timestamp_ms: 1_764_000_000_000,
            ttl_ms: Some(5_000),
            sender: Some("agent-7".into()),
            swarm: Some("alpha".into()),
            correlation_id: Some("req-1".into()),
            payload: (0..=255).collect(),
        }
    }

    #[test]
    fn round_trip_with_all_fields() {
        let env = sample();
        let bytes = env.encode().unwrap();
        assert_eq!(decode(&bytes).unwrap(), env);
        let header = peek_header(&bytes).unwrap();
        assert_eq!(header, Header { id: env.id, topic: &env.topic, priority: env.priority });
    }

    #[test]
    fn peek_header_ignores_a_truncated_payload() {
        let bytes = sample().encode().unwrap();
        let cut = &bytes[..bytes.len() - 10];
        assert_eq!(peek_header(cut).unwrap().id, u64::MAX);
        assert_eq!(decode(cut), Err(CodecError::Truncated));
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        let bytes = sample().encode().unwrap();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn typed_errors() {
        let mut env = sample();
        env.topic = "a.*".into();
        assert!(matches!(env.encode(), Err(CodecError::InvalidTopic(_))));

        let mut bytes = sample().encode().unwrap();
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(CodecError::TrailingBytes(1)));

        let big = Envelope::new(1, "t", Priority::BULK, 0, alloc::vec![0; 100]).encode().unwrap();
        assert_eq!(
            decode_ref(&big, &Limits { max_payload: 10 }),
            Err(CodecError::TooLarge { field: "payload", len: 100, max: 10 })
        );

        let mut v2 = sample().encode().unwrap();
        v2[1] = 2;
        assert_eq!(decode(&v2), Err(CodecError::UnsupportedVersion(2)));

        // priority 12 written by hand
        let mut out = Vec::new();
        rmp::encode::write_array_len(&mut out, 10).unwrap();
        for v in [1u64, 1] {
            rmp::encode::write_uint(&mut out, v).unwrap();
        }
        rmp::encode::write_str(&mut out, "t").unwrap();
        rmp::encode::write_uint(&mut out, 12).unwrap();
        assert_eq!(peek_header(&out), Err(CodecError::InvalidPriority(12)));
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        // array(10), version 1, id 1, str32 of 4 GiB declared
        let bytes = [0x9a, 0x01, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(peek_header(&bytes), Err(CodecError::TooLarge { field: "topic", .. })));
    }
}
