//! Arbitrary strings as patterns and topics: validation never panics, and the
//! router agrees with the reference matcher on whatever validates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmbus_core::topic::{match_literal, validate_pattern, validate_topic};
use swarmbus_core::Router;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, topic) = text.split_once('|').unwrap_or((text, text));
    let pattern_ok = validate_pattern(pattern).is_ok();
    let topic_ok = validate_topic(topic).is_ok();
    let mut router = Router::new();
    let id = router.subscribe(pattern);
    assert_eq!(id.is_ok(), pattern_ok);
    let route = router.route(topic);
    assert_eq!(route.is_ok(), topic_ok);
    if let (Ok(id), Ok(route)) = (id, route) {
        assert_eq!(route.contains(&id), match_literal(pattern, topic));
    }
});
