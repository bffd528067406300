//! Untrusted state images (MessagePack and JSON): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmbus_core::{Snapshot, StateStore};

fuzz_target!(|data: &[u8]| {
    for decoded in [Snapshot::from_msgpack(data), Snapshot::from_json(data)] {
        if let Ok(snapshot) = decoded {
            let store = StateStore::from_snapshot(snapshot.clone());
            assert_eq!(store.current().diff(&snapshot).ops.len(), 0);
        }
    }
});
