//! Untrusted bytes as bridge protocol frames (the bridge decodes client
//! frames, the clients decode server frames): never a panic, and whatever
//! decodes re-encodes to a frame that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmbus_core::protocol::{ClientFrame, ServerFrame};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = ServerFrame::decode(data) {
        assert_eq!(ServerFrame::decode(&frame.encode()).expect("re-encoded frames decode"), frame);
    }
    if let Ok(frame) = ClientFrame::decode(data) {
        assert_eq!(ClientFrame::decode(&frame.encode()).expect("re-encoded frames decode"), frame);
    }
});
