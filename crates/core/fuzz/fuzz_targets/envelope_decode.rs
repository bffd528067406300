//! Untrusted bytes through the envelope codec: never a panic, and whatever
//! decodes re-encodes to the same bytes' meaning.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmbus_core::envelope::{decode, decode_ref, peek_header, Limits};

fuzz_target!(|data: &[u8]| {
    let header = peek_header(data);
    if let Ok(env) = decode_ref(data, &Limits::default()) {
        let header = header.expect("a decodable envelope has a readable header");
        assert_eq!((header.id, header.topic, header.priority), (env.id, env.topic, env.priority));
        let again = env.to_owned().encode().expect("decoded envelopes re-encode");
        assert_eq!(decode(&again).expect("re-encoded envelopes decode"), env.to_owned());
    }
});
