//! The JS `StateStore`: versioned key → JSON value store with O(1) snapshots.

use std::cell::RefCell;

use serde_json::Value;
use swarmbus_core::store::{value_from_msgpack, SnapshotId};
use swarmbus_core::{Patch, Snapshot, StateStore as CoreStore};
use wasm_bindgen::prelude::*;

use crate::convert::{to_js, value_to_js};
use crate::error::{Error, Result};

/// A versioned document store. Values are JSON-compatible (objects, arrays,
/// strings, numbers, booleans, null) and nest at most 128 levels (core's
/// `MAX_DEPTH`).
///
/// Every method converts its JS arguments before it borrows the store, so a
/// getter or `toJSON` that calls back into the same store works, and one that
/// throws leaves it untouched (`INVALID_ARGUMENT`).
#[wasm_bindgen]
pub struct StateStore {
    inner: RefCell<CoreStore>,
}

/// A key: a JS string, read without running any of the caller's code
/// (wasm-bindgen's own `&str` glue would call a non-string's `length` and
/// `charCodeAt`, and leak its buffer when they throw).
fn key_of(key: &JsValue) -> Result<String> {
    key.as_string().ok_or_else(|| Error::invalid("a key or label must be a string"))
}

/// A JS value as a state value: encoded as `encode` does (guarded, depth
/// capped, `toJSON` honoured), then read by core's state-value reader, which
/// refuses what JSON has no form for (bytes, non-string keys).
fn value_of(value: JsValue) -> Result<Value> {
    if value.is_undefined() {
        return Err(Error::invalid("undefined is not a JSON value; use delete() or null"));
    }
    let bytes = crate::codec::encode(value)?;
    value_from_msgpack(&bytes).map_err(|e| match e {
        swarmbus_core::CodecError::TooDeep { max } => {
            Error::invalid(format_args!("the value nests deeper than {max} levels"))
        }
        _ => Error::invalid("not a JSON value (bytes, or a Map with non-string keys)"),
    })
}

#[wasm_bindgen]
impl StateStore {
    /// An empty store at version 0 keeping the last `history` snapshots (default 10).
    #[wasm_bindgen(constructor)]
    pub fn new(history: Option<usize>) -> StateStore {
        let history = history.unwrap_or(swarmbus_core::store::DEFAULT_HISTORY);
        Self { inner: RefCell::new(CoreStore::with_history(history)) }
    }

    /// The value of `key`, or `undefined`.
    pub fn get(&self, #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue) -> Result<JsValue> {
        let key = key_of(&key)?;
        // Cloned out, so no borrow is held while the JS value is built.
        let value = self.inner.borrow().get(&key).cloned();
        match &value {
            Some(value) => value_to_js(value),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Sets `key`; returns the new version.
    pub fn set(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
        value: JsValue,
    ) -> Result<f64> {
        let key = key_of(&key)?;
        let value = value_of(value)?;
        Ok(self.inner.borrow_mut().set(key, value) as f64)
    }

    /// Merges `patch` into `key` (JSON merge patch, RFC 7396); returns the new version.
    pub fn merge(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
        patch: JsValue,
    ) -> Result<f64> {
        let key = key_of(&key)?;
        let patch = value_of(patch)?;
        Ok(self.inner.borrow_mut().merge(&key, &patch) as f64)
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&self, #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue) -> Result<bool> {
        let key = key_of(&key)?;
        Ok(self.inner.borrow_mut().delete(&key).is_some())
    }

    /// Sets `key` only if its version is `expectedVersion` (0: absent);
    /// throws `VERSION_CONFLICT` otherwise. Returns the new version.
    #[wasm_bindgen(js_name = compareAndSet)]
    pub fn compare_and_set(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
        expected_version: f64,
        value: JsValue,
    ) -> Result<f64> {
        let key = key_of(&key)?;
        let value = value_of(value)?;
        Ok(self.inner.borrow_mut().compare_and_set(&key, expected_version as u64, value)? as f64)
    }

    /// The version that last wrote `key` (0 when absent).
    #[wasm_bindgen(js_name = keyVersion)]
    pub fn key_version(&self, #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue) -> Result<f64> {
        let key = key_of(&key)?;
        Ok(self.inner.borrow().key_version(&key) as f64)
    }

    /// The store's version.
    #[wasm_bindgen(getter)]
    pub fn version(&self) -> f64 {
        self.inner.borrow().version() as f64
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<String> {
        self.inner.borrow().keys().map(String::from).collect()
    }

    /// Records the current state in O(1); returns the snapshot id.
    pub fn snapshot(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "string | null")] label: Option<JsValue>,
    ) -> Result<f64> {
        let label = match label {
            Some(label) if !label.is_null() && !label.is_undefined() => Some(key_of(&label)?),
            _ => None,
        };
        Ok(self.inner.borrow_mut().snapshot(label.as_deref()).0 as f64)
    }

    /// Returns to snapshot `id`; returns the new version.
    pub fn restore(&self, id: f64) -> Result<f64> {
        Ok(self.inner.borrow_mut().restore(SnapshotId(id as u64))? as f64)
    }

    /// The kept snapshots, oldest first: `[{id, label, version, keys}]`.
    #[wasm_bindgen(unchecked_return_type = "SnapshotInfo[]")]
    pub fn snapshots(&self) -> Result<JsValue> {
        let snapshots = self.inner.borrow().snapshots().collect::<Vec<_>>();
        to_js(&snapshots)
    }

    /// The patch from snapshot `fromId` to snapshot `toId`:
    /// `{fromVersion, toVersion, ops: [{op: 'set', key, value} | {op: 'delete', key}]}`.
    #[wasm_bindgen(unchecked_return_type = "Patch")]
    pub fn diff(&self, from_id: f64, to_id: f64) -> Result<JsValue> {
        let patch = self.inner.borrow().diff(SnapshotId(from_id as u64), SnapshotId(to_id as u64))?;
        let patch = serde_json::to_value(&patch).map_err(|e| Error::new("ENCODE_ERROR", e))?;
        value_to_js(&patch)
    }

    /// Applies a patch from `diff`; returns the new version. The whole patch
    /// nests at most 128 levels (its values at most 3 fewer).
    pub fn apply(&self, #[wasm_bindgen(unchecked_param_type = "Patch")] patch: JsValue) -> Result<f64> {
        let patch: Patch = serde_json::from_value(value_of(patch)?).map_err(Error::invalid)?;
        Ok(self.inner.borrow_mut().apply(&patch) as f64)
    }

    /// The current state as MessagePack.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        let current = self.inner.borrow().current();
        current.to_msgpack()
    }

    /// A store holding a state written by `toBytes()` (empty history).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | number[]")] bytes: JsValue,
    ) -> Result<StateStore> {
        let bytes = crate::codec::bytes_from_js(&bytes)?;
        Ok(Self { inner: RefCell::new(CoreStore::from_snapshot(Snapshot::from_msgpack(&bytes)?)) })
    }
}
