//! Authentication and topic grants: HS256 JWTs carrying `sub`, `exp` and the
//! patterns a client may publish to and subscribe to.
//!
//! ```json
//! { "sub": "agent-7", "exp": 1767225600, "publish": ["swarm.alpha.>"], "subscribe": ["swarm.*.phase"] }
//! ```
//!
//! A subscription is allowed when every topic it can match is matched by one
//! granted `subscribe` pattern (`swarm.alpha.task` and `swarm.*.task` are
//! within `swarm.>`; `swarm.>` is not within `swarm.*`). A publish is allowed
//! when its topic matches a granted `publish` pattern.
//!
//! ## Lifetime
//!
//! `exp` is required and checked without leeway (a token is refused from
//! the second `exp` itself on, `exp <= now`); an optional `nbf` is honoured
//! with [`NBF_LEEWAY`] seconds of leeway for clock skew (`TOKEN_NOT_YET_VALID`
//! before that). A connection's grants end at its token's `exp`
//! ([`Grants::expires_at`]): the bridge closes it then with 4001 unless the
//! client sent a `refresh` frame with a newer token for the same `sub`.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use swarmbus_core::topic::match_literal;

use crate::error::BridgeError;

/// The claims of a bridge token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the client is (logged).
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Patterns the client may publish to.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Patterns the client may subscribe within.
    #[serde(default)]
    pub subscribe: Vec<String>,
}

/// Seconds an `nbf` may lie in the future and the token still be accepted (clock skew).
pub const NBF_LEEWAY: u64 = 5;

/// What the bridge reads from a token: [`Claims`] plus the optional `nbf`.
#[derive(Deserialize)]
struct Token {
    sub: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
}

/// What one connection may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// Who (from `sub`), or `anonymous` on an open bridge.
    pub subject: String,
    publish: Vec<String>,
    subscribe: Vec<String>,
    expires_at: Option<u64>,
}

impl Grants {
    /// Everything allowed: a bridge without an auth secret (loopback only).
    pub fn open() -> Self {
        Self {
            subject: "anonymous".into(),
            publish: vec![">".into()],
            subscribe: vec![">".into()],
            expires_at: None,
        }
    }

    /// When these grants end (the token's `exp`, seconds since the Unix
    /// epoch); `None` on an open bridge.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// May this client publish on `topic`?
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|grant| match_literal(grant, topic))
    }

    /// May this client subscribe to `pattern`?
    pub fn may_subscribe(&self, pattern: &str) -> bool {
        self.subscribe.iter().any(|grant| covers(grant, pattern))
    }
}

/// Does every topic matched by `pattern` also match `grant`? Both must be valid patterns.
pub fn covers(grant: &str, pattern: &str) -> bool {
    let mut g = grant.split('.');
    let mut p = pattern.split('.');
    loop {
        match (g.next(), p.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(gt), Some(pt)) if gt == pt && gt != "*" && gt != ">" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The token of an `Authorization` header value: `Bearer <token>`, the
/// scheme in any case (RFC 9110 §11.1), spaces around the token ignored.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Seconds since the Unix epoch now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Verifies tokens with the bridge's shared secret.
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
}

impl Auth {
    /// An verifier for HS256 tokens signed with `secret`.
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // `nbf` is checked below, with its own leeway.
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { key: DecodingKey::from_secret(secret.as_bytes()), validation }
    }

    /// The grants of `token`, or why it is refused.
    pub fn verify(&self, token: Option<&str>) -> Result<Grants, BridgeError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(BridgeError::AuthRequired)?;
        let data = decode::<Token>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => BridgeError::TokenExpired,
            _ => BridgeError::InvalidToken,
        })?;
        let claims = data.claims;
        // jsonwebtoken (leeway 0) still accepts `exp == now`, whose deadline has passed.
        if claims.exp <= unix_now() {
            return Err(BridgeError::TokenExpired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > unix_now().saturating_add(NBF_LEEWAY)) {
            return Err(BridgeError::TokenNotYetValid);
        }
        let valid = |p: &String| swarmbus_core::topic::validate_pattern(p).is_ok();
        if !claims.publish.iter().all(valid) || !claims.subscribe.iter().all(valid) {
            return Err(BridgeError::InvalidToken);
        }
        Ok(Grants {
            subject: claims.sub,
            publish: claims.publish,
            subscribe: claims.subscribe,
            expires_at: Some(claims.exp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn token(secret: &str, exp: u64) -> String {
        let claims = Claims {
            sub: "a".into(),
            exp,
            publish: vec!["swarm.a.>".into()],
            subscribe: vec!["swarm.*.phase".into()],
        };
        encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn coverage_table() {
        let cases = [
            (">", "a", true),
            ("a.>", "a.b.c", true),
            ("a.>", "a.*", true),
            ("a.>", "a.>", true),
            ("a.>", "a", false),
            ("a.*", "a.b", true),
            ("a.*", "a.*", true),
            ("a.*", "a.>", false),
            ("a.*", "a.b.c", false),
            ("a.b", "a.*", false),
            ("*.b", "x.b", true),
            ("a", "a", true),
        ];
        for (grant, pattern, expected) in cases {
            assert_eq!(covers(grant, pattern), expected, "{grant} covers {pattern}");
        }
    }

    #[test]
    fn tokens_are_checked() {
        let auth = Auth::new("a-secret-of-some-length");
        let grants = auth.verify(Some(&token("a-secret-of-some-length", now() + 60))).unwrap();
        assert!(grants.may_publish("swarm.a.task") && !grants.may_publish("swarm.b.task"));
        assert!(grants.may_subscribe("swarm.beta.phase") && !grants.may_subscribe("swarm.>"));
        assert_eq!(auth.verify(None), Err(BridgeError::AuthRequired));
        assert_eq!(
            auth.verify(Some(&token("a-secret-of-some-length", now() - 10))),
            Err(BridgeError::TokenExpired)
        );
        assert_eq!(
            auth.verify(Some(&token("another-secret-entirely", now() + 60))),
            Err(BridgeError::InvalidToken)
        );
        assert_eq!(auth.verify(Some("not.a.jwt")), Err(BridgeError::InvalidToken));
    }

    fn token_with(secret: &str, claims: serde_json::Value) -> String {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[test]
    fn nbf_is_honoured_with_a_small_leeway() {
        // Regression: an `nbf` one hour ahead was accepted.
        const SECRET: &str = "a-secret-of-some-length";
        let auth = Auth::new(SECRET);
        let with_nbf =
            |nbf: u64| token_with(SECRET, serde_json::json!({"sub": "a", "exp": now() + 7200, "nbf": nbf}));
        assert_eq!(auth.verify(Some(&with_nbf(now() + 3600))), Err(BridgeError::TokenNotYetValid));
        assert!(auth.verify(Some(&with_nbf(now() + 1))).is_ok(), "within the leeway");
        assert!(auth.verify(Some(&with_nbf(now() - 60))).is_ok());
        let exp = now() + 60;
        let grants =
            auth.verify(Some(&token_with(SECRET, serde_json::json!({"sub": "a", "exp": exp})))).unwrap();
        assert_eq!(grants.expires_at(), Some(exp));
        assert_eq!(Grants::open().expires_at(), None);
    }

    #[test]
    fn a_token_at_its_exp_second_is_expired() {
        // Regression: `exp == now` was accepted, welcomed, then expired at once (4001): a reconnect storm.
        const SECRET: &str = "a-secret-of-some-length";
        let auth = Auth::new(SECRET);
        assert_eq!(auth.verify(Some(&token(SECRET, now()))), Err(BridgeError::TokenExpired));
        assert!(auth.verify(Some(&token(SECRET, now() + 2))).is_ok());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        // Regression: `Authorization: bearer …` (lower case) got 401.
        for header in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR  abc "] {
            assert_eq!(bearer_token(header), Some("abc"), "{header}");
        }
        for header in ["Basic abc", "Bearerabc", "abc", ""] {
            assert_eq!(bearer_token(header), None, "{header}");
        }
    }
}
