//! Untrusted bytes through the one MessagePack reader: never a panic, never
//! more tokens than bytes (every token consumes at least one), and skipping a
//! value reads exactly the tokens a token-by-token walk of it reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmbus_core::msgpack::{Reader, Token};

fuzz_target!(|data: &[u8]| {
    let mut skipped = Reader::new(data);
    let skip = skipped.skip();
    assert!(skipped.tokens() <= data.len());
    let mut walked = Reader::new(data);
    let mut left: u64 = 1;
    let mut walk = Ok(());
    while left > 0 {
        match walked.token() {
            Ok(token @ (Token::Array(_) | Token::Map(_))) => left += token.items(),
            Ok(_) => {}
            Err(e) => {
                walk = Err(e);
                break;
            }
        }
        left -= 1;
    }
    assert!(walked.tokens() <= data.len());
    if skip.is_ok() {
        assert_eq!(walk, Ok(()), "what skips also walks");
        assert_eq!((skipped.tokens(), skipped.remaining()), (walked.tokens(), walked.remaining()));
    }
});
