//! Patches: the difference between two states of a [`StateStore`](crate::StateStore),
//! and JSON merge patch (RFC 7396) for partial updates of one value.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One change to one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    /// The key now holds `value`.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: Value,
    },
    /// The key is gone.
    Delete {
        /// The key.
        key: String,
    },
}

impl PatchOp {
    /// The key this operation changes.
    pub fn key(&self) -> &str {
        match self {
            Self::Set { key, .. } | Self::Delete { key } => key,
        }
    }
}

/// The changes that turn one state into another, in key order.
///
/// Applying `diff(a, b)` to a store holding `a` leaves it holding `b`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patch {
    /// Version of the state the patch starts from.
    pub from_version: u64,
    /// Version of the state the patch leads to.
    pub to_version: u64,
    /// The changes, one per key, sorted by key.
    pub ops: Vec<PatchOp>,
}

impl Patch {
    /// True when the two states hold the same data.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Applies a JSON merge patch (RFC 7396) to `target`: objects merge key by key,
/// `null` removes a key, anything else replaces.
///
/// # Examples
/// ```
/// use serde_json::json;
/// use swarmbus_core::patch::merge_patch;
/// let mut doc = json!({"phase": "plan", "agents": {"a": 1, "b": 2}});
/// merge_patch(&mut doc, &json!({"phase": "act", "agents": {"b": null, "c": 3}}));
/// assert_eq!(doc, json!({"phase": "act", "agents": {"a": 1, "c": 3}}));
/// ```
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(fields) = target {
        for (key, change) in changes {
            if change.is_null() {
                fields.remove(key);
            } else {
                merge_patch(fields.entry(key.clone()).or_insert(Value::Null), change);
            }
        }
    }
}
