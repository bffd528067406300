//! Topic and pattern syntax.
//!
//! A **topic** is a dot-separated list of tokens, such as `swarm.alpha.task.assigned`.
//! A **pattern** is a topic that may also use two wildcards, as in NATS:
//!
//! * `*` matches exactly one token: `swarm.*.task` matches `swarm.alpha.task`;
//! * `>` matches one or more trailing tokens and must be the last token:
//!   `swarm.>` matches `swarm.alpha` and `swarm.alpha.task`, but not `swarm`.
//!
//! Tokens are non-empty and made of visible ASCII (`0x21..=0x7e`) other than
//! `.`, `*` and `>`; a wildcard is always a whole token, so `foo*` is rejected.
//! Topics are at most [`MAX_TOPIC_LEN`] bytes and [`MAX_TOKENS`] tokens.

use crate::error::TopicError;

/// Longest accepted topic or pattern, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;
/// Most tokens in a topic or pattern.
pub const MAX_TOKENS: usize = 16;

/// The separator between tokens.
pub const SEPARATOR: char = '.';
/// The single-token wildcard.
pub const ANY_ONE: &str = "*";
/// The trailing one-or-more-tokens wildcard.
pub const ANY_REST: &str = ">";

/// What a validated pattern contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    /// No wildcard: the pattern matches exactly one topic.
    Exact,
    /// At least one `*` or `>`.
    Wildcard,
}

/// Checks a topic to be published. Wildcards are not allowed.
///
/// # Examples
/// ```
/// use swarmbus_core::{topic::validate_topic, TopicError};
/// assert!(validate_topic("swarm.alpha.task").is_ok());
/// assert_eq!(validate_topic("swarm..task"), Err(TopicError::EmptyToken { index: 1 }));
/// assert_eq!(validate_topic("swarm.*"), Err(TopicError::WildcardInTopic { index: 1 }));
/// ```
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if is_plain_topic(topic.as_bytes()) {
        return Ok(());
    }
    match scan(topic)? {
        Scan { first_wildcard: Some(index), .. } => Err(TopicError::WildcardInTopic { index }),
        _ => Ok(()),
    }
}

/// Checks a subscription pattern and says whether it holds wildcards.
///
/// # Examples
/// ```
/// use swarmbus_core::{topic::{validate_pattern, PatternKind}, TopicError};
/// assert_eq!(validate_pattern("swarm.*.task"), Ok(PatternKind::Wildcard));
/// assert_eq!(validate_pattern("swarm.alpha"), Ok(PatternKind::Exact));
/// assert_eq!(validate_pattern("swarm.>.task"), Err(TopicError::MisplacedFullWildcard { index: 1 }));
/// ```
pub fn validate_pattern(pattern: &str) -> Result<PatternKind, TopicError> {
    let scan = scan(pattern)?;
    if let Some(index) = scan.misplaced_rest {
        return Err(TopicError::MisplacedFullWildcard { index });
    }
    Ok(match scan.first_wildcard {
        Some(_) => PatternKind::Wildcard,
        None => PatternKind::Exact,
    })
}

struct Scan {
    first_wildcard: Option<usize>,
    misplaced_rest: Option<usize>,
}

/// One pass over the bytes: token shape, characters, limits, wildcard positions.
fn scan(input: &str) -> Result<Scan, TopicError> {
    let bytes = input.as_bytes();
    if bytes.is_empty() {
        return Err(TopicError::Empty);
    }
    if bytes.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: bytes.len() });
    }
    let mut out = Scan { first_wildcard: None, misplaced_rest: None };
    let mut index = 0;
    let mut token_start = 0;
    for offset in 0..=bytes.len() {
        if offset < bytes.len() && bytes[offset] != b'.' {
            continue;
        }
        let token = &bytes[token_start..offset];
        if index >= MAX_TOKENS {
            return Err(TopicError::TooManyTokens { count: index + 1 });
        }
        match token {
            [] => return Err(TopicError::EmptyToken { index }),
            [b'*'] => {
                out.first_wildcard.get_or_insert(index);
            }
            [b'>'] => {
                out.first_wildcard.get_or_insert(index);
                if offset != bytes.len() {
                    out.misplaced_rest.get_or_insert(index);
                }
            }
            _ => {
                if let Some(pos) = token.iter().position(|&b| !is_token_byte(b)) {
                    return Err(TopicError::IllegalChar { offset: token_start + pos, byte: token[pos] });
                }
            }
        }
        index += 1;
        token_start = offset + 1;
    }
    Ok(out)
}

#[inline]
fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTES[b as usize]
}

/// `TOKEN_BYTES[b]`: may `b` appear inside a token?
static TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        table[b] = b != b'.' as usize && b != b'*' as usize && b != b'>' as usize;
        b += 1;
    }
    table
};

/// The common case in one tight pass: a valid topic without wildcards. Anything
/// else goes through [`scan`], which names the problem.
fn is_plain_topic(bytes: &[u8]) -> bool {
    if bytes.is_empty() || bytes.len() > MAX_TOPIC_LEN {
        return false;
    }
    let mut dots = 0;
    let mut after_dot = true;
    for &b in bytes {
        if b == b'.' {
            if after_dot {
                return false;
            }
            dots += 1;
            after_dot = true;
        } else if TOKEN_BYTES[b as usize] {
            after_dot = false;
        } else {
            return false;
        }
    }
    !after_dot && dots < MAX_TOKENS
}

/// Reference matcher: does `pattern` match `topic`? Both must already be valid.
///
/// This is the plain definition of the wildcard rules, token by token. The
/// [`Router`](crate::router::Router) trie is property-tested against it.
///
/// # Examples
/// ```
/// use swarmbus_core::topic::match_literal;
/// assert!(match_literal("swarm.*.task", "swarm.alpha.task"));
/// assert!(match_literal("swarm.>", "swarm.alpha.task"));
/// assert!(!match_literal("swarm.>", "swarm"));
/// ```
pub fn match_literal(pattern: &str, topic: &str) -> bool {
    let mut p = pattern.split('.');
    let mut t = topic.split('.');
    loop {
        match (p.next(), t.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(pt), Some(tt)) if pt == tt => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    // The syntax table, as nats-server pins subject rules in sublist_test.go.
    #[test]
    fn pattern_syntax_table() {
        let cases: &[(&str, Result<PatternKind, TopicError>)] = &[
            ("foo", Ok(PatternKind::Exact)),
            ("foo.bar", Ok(PatternKind::Exact)),
            ("foo.*", Ok(PatternKind::Wildcard)),
            ("*", Ok(PatternKind::Wildcard)),
            (">", Ok(PatternKind::Wildcard)),
            ("foo.>", Ok(PatternKind::Wildcard)),
            ("*.*.>", Ok(PatternKind::Wildcard)),
            ("foo.>.bar", Err(TopicError::MisplacedFullWildcard { index: 1 })),
            (">.foo", Err(TopicError::MisplacedFullWildcard { index: 0 })),
            ("foo*", Err(TopicError::IllegalChar { offset: 3, byte: b'*' })),
            ("foo.b>r", Err(TopicError::IllegalChar { offset: 5, byte: b'>' })),
            ("", Err(TopicError::Empty)),
            (".foo", Err(TopicError::EmptyToken { index: 0 })),
            ("foo.", Err(TopicError::EmptyToken { index: 1 })),
            ("foo..bar", Err(TopicError::EmptyToken { index: 1 })),
            ("foo bar", Err(TopicError::IllegalChar { offset: 3, byte: b' ' })),
            ("f\u{e9}", Err(TopicError::IllegalChar { offset: 1, byte: 0xc3 })),
            ("a\tb", Err(TopicError::IllegalChar { offset: 1, byte: b'\t' })),
        ];
        for (input, expected) in cases {
            assert_eq!(&validate_pattern(input), expected, "pattern {input:?}");
        }
    }

    #[test]
    fn topics_reject_wildcards() {
        assert_eq!(validate_topic("a.*.c"), Err(TopicError::WildcardInTopic { index: 1 }));
        assert_eq!(validate_topic(">"), Err(TopicError::WildcardInTopic { index: 0 }));
        assert_eq!(validate_topic("a.b-c_d:e@f/1"), Ok(()));
    }

    #[test]
    fn limits() {
        let max_tokens: String = ["a"; MAX_TOKENS].join(".");
        assert_eq!(validate_topic(&max_tokens), Ok(()));
        let too_many = alloc::format!("{max_tokens}.a");
        assert_eq!(validate_topic(&too_many), Err(TopicError::TooManyTokens { count: MAX_TOKENS + 1 }));
        let longest = "x".repeat(MAX_TOPIC_LEN);
        assert_eq!(validate_topic(&longest), Ok(()));
        let too_long = "x".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(validate_topic(&too_long), Err(TopicError::TooLong { len: MAX_TOPIC_LEN + 1 }));
    }

    proptest::proptest! {
        // The fast path must agree with the full scan on every input.
        #[test]
        fn fast_path_agrees_with_scan(input in "[ab.*> \t]{0,40}") {
            let by_scan = match scan(&input) {
                Ok(Scan { first_wildcard: Some(index), .. }) => Err(TopicError::WildcardInTopic { index }),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            proptest::prop_assert_eq!(validate_topic(&input), by_scan);
            proptest::prop_assert_eq!(is_plain_topic(input.as_bytes()), validate_topic(&input).is_ok());
        }
    }

    #[test]
    fn literal_matching_table() {
        let cases = [
            ("foo.bar", "foo.bar", true),
            ("foo.bar", "foo.baz", false),
            ("foo.*", "foo.bar", true),
            ("foo.*", "foo.bar.baz", false),
            ("foo.*", "foo", false),
            ("foo.>", "foo.bar.baz", true),
            ("foo.>", "foo", false),
            (">", "foo", true),
            ("*", "foo.bar", false),
            ("*.bar.*", "x.bar.y", true),
            ("*.bar.>", "x.bar", false),
        ];
        for (pattern, topic, expected) in cases {
            assert_eq!(match_literal(pattern, topic), expected, "{pattern} vs {topic}");
        }
    }
}
