//! The JS `StateStore`: versioned key → JSON value store with O(1) snapshots.

use serde_json::Value;
use swarmbus_core::store::SnapshotId;
use swarmbus_core::{Patch, Snapshot, StateStore as CoreStore};
use wasm_bindgen::prelude::*;

use crate::convert::{from_js, to_js, value_to_js};
use crate::error::{Error, Result};

/// A versioned document store. Values are JSON-compatible (objects, arrays,
/// strings, numbers, booleans, null).
#[wasm_bindgen]
pub struct StateStore {
    inner: CoreStore,
}

fn value_of(value: JsValue) -> Result<Value> {
    if value.is_undefined() {
        return Err(Error::invalid("undefined is not a JSON value; use delete() or null"));
    }
    from_js(value)
}

#[wasm_bindgen]
impl StateStore {
    /// An empty store at version 0 keeping the last `history` snapshots (default 10).
    #[wasm_bindgen(constructor)]
    pub fn new(history: Option<usize>) -> StateStore {
        Self { inner: CoreStore::with_history(history.unwrap_or(swarmbus_core::store::DEFAULT_HISTORY)) }
    }

    /// The value of `key`, or `undefined`.
    pub fn get(&self, key: &str) -> Result<JsValue> {
        match self.inner.get(key) {
            Some(value) => value_to_js(value),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Sets `key`; returns the new version.
    pub fn set(&mut self, key: &str, value: JsValue) -> Result<f64> {
        Ok(self.inner.set(key, value_of(value)?) as f64)
    }

    /// Merges `patch` into `key` (JSON merge patch, RFC 7396); returns the new version.
    pub fn merge(&mut self, key: &str, patch: JsValue) -> Result<f64> {
        Ok(self.inner.merge(key, &value_of(patch)?) as f64)
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&mut self, key: &str) -> bool {
        self.inner.delete(key).is_some()
    }

    /// Sets `key` only if its version is `expectedVersion` (0: absent);
    /// throws `VERSION_CONFLICT` otherwise. Returns the new version.
    #[wasm_bindgen(js_name = compareAndSet)]
    pub fn compare_and_set(&mut self, key: &str, expected_version: f64, value: JsValue) -> Result<f64> {
        Ok(self.inner.compare_and_set(key, expected_version as u64, value_of(value)?)? as f64)
    }

    /// The version that last wrote `key` (0 when absent).
    #[wasm_bindgen(js_name = keyVersion)]
    pub fn key_version(&self, key: &str) -> f64 {
        self.inner.key_version(key) as f64
    }

    /// The store's version.
    #[wasm_bindgen(getter)]
    pub fn version(&self) -> f64 {
        self.inner.version() as f64
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<String> {
        self.inner.keys().map(String::from).collect()
    }

    /// Records the current state in O(1); returns the snapshot id.
    pub fn snapshot(&mut self, label: Option<String>) -> f64 {
        self.inner.snapshot(label.as_deref()).0 as f64
    }

    /// Returns to snapshot `id`; returns the new version.
    pub fn restore(&mut self, id: f64) -> Result<f64> {
        Ok(self.inner.restore(SnapshotId(id as u64))? as f64)
    }

    /// The kept snapshots, oldest first: `[{id, label, version, keys}]`.
    #[wasm_bindgen(unchecked_return_type = "SnapshotInfo[]")]
    pub fn snapshots(&self) -> Result<JsValue> {
        to_js(&self.inner.snapshots().collect::<Vec<_>>())
    }

    /// The patch from snapshot `fromId` to snapshot `toId`:
    /// `{fromVersion, toVersion, ops: [{op: 'set', key, value} | {op: 'delete', key}]}`.
    #[wasm_bindgen(unchecked_return_type = "Patch")]
    pub fn diff(&self, from_id: f64, to_id: f64) -> Result<JsValue> {
        let patch = self.inner.diff(SnapshotId(from_id as u64), SnapshotId(to_id as u64))?;
        let patch = serde_json::to_value(&patch).map_err(|e| Error::new("ENCODE_ERROR", e))?;
        value_to_js(&patch)
    }

    /// Applies a patch from `diff`; returns the new version.
    pub fn apply(&mut self, #[wasm_bindgen(unchecked_param_type = "Patch")] patch: JsValue) -> Result<f64> {
        let patch: Patch = from_js(patch)?;
        Ok(self.inner.apply(&patch) as f64)
    }

    /// The current state as MessagePack.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.current().to_msgpack()
    }

    /// A store holding a state written by `toBytes()` (empty history).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<StateStore> {
        Ok(Self { inner: CoreStore::from_snapshot(Snapshot::from_msgpack(bytes)?) })
    }
}
