//! The versioned state store of one swarm.
//!
//! A key → JSON-value document store. Every change (set, merge, delete,
//! compare-and-set, restore, apply) bumps the store's version by one and stamps
//! the keys it touched with that version, which is what compare-and-set checks.
//!
//! The data lives in a persistent (structurally shared) ordered map, so a
//! [`snapshot`](StateStore::snapshot) is a pointer copy: O(1) whatever the size,
//! and later writes copy only the O(log n) path they touch. The store keeps the
//! last `history_limit` snapshots (default [`DEFAULT_HISTORY`]); older ones are
//! released as new ones are taken. See `adrs/ADR-003-state-store.md`.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

use once_cell::race::OnceBox;
use rpds::RedBlackTreeMapSync;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CodecError, StoreError};
use crate::patch::{merge_patch, Patch, PatchOp};

/// Snapshots kept by default.
pub const DEFAULT_HISTORY: usize = 10;
/// Largest state image [`Snapshot::from_json`] and [`Snapshot::from_msgpack`] accept.
pub const MAX_IMAGE_BYTES: usize = 64 * 1024 * 1024;
/// Format version written into state images.
pub const IMAGE_FORMAT: u32 = 1;

/// A stored value and the store version that last wrote it.
///
/// Entries never change once stored (a write stores a new one), so each keeps
/// its MessagePack encoding after the first image that includes it; snapshots
/// share entries, and later images copy those bytes instead of re-encoding.
pub struct Entry {
    version: u64,
    value: Value,
    encoded: OnceBox<Vec<u8>>,
}

impl Entry {
    fn new(version: u64, value: Value) -> Self {
        Self { version, value, encoded: OnceBox::new() }
    }

    /// Store version at the last write of this key.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// MessagePack of `[version, value]`, encoded once.
    fn encoded(&self) -> &[u8] {
        self.encoded.get_or_init(|| {
            let mut out = Vec::new();
            msgpack::write_entry(&mut out, self.version, &self.value);
            Box::new(out)
        })
    }
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Self::new(self.version, self.value.clone())
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && self.value == other.value
    }
}

impl core::fmt::Debug for Entry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Entry").field("version", &self.version).field("value", &self.value).finish()
    }
}

/// The serialized shape of an [`Entry`].
#[derive(Serialize, Deserialize)]
struct EntryImage<V> {
    version: u64,
    value: V,
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EntryImage { version: self.version, value: &self.value }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EntryImage::<Value>::deserialize(deserializer).map(|e| Entry::new(e.version, e.value))
    }
}

type Data = RedBlackTreeMapSync<String, Entry>;

/// Identifies a snapshot in a store's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotId(pub u64);

/// A frozen state. Cloning it is O(1).
#[derive(Debug, Clone)]
pub struct Snapshot {
    id: SnapshotId,
    label: Option<String>,
    version: u64,
    data: Data,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.label == other.label
            && self.version == other.version
            && self.data == other.data
    }
}

impl Snapshot {
    /// Its id in the store that took it (0 for the live state).
    pub fn id(&self) -> SnapshotId {
        self.id
    }

    /// The label given when it was taken.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// The store version it froze.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.size()
    }

    /// True when it holds no keys.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The value of `key` in this snapshot.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.get(key).map(|e| &e.value)
    }

    /// Keys and entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.data.iter().map(|(k, e)| (k.as_str(), e))
    }

    /// The patch that turns `self` into `to`.
    ///
    /// Subtrees the two snapshots share are recognised by address, so diffing
    /// two close versions compares few values deeply.
    pub fn diff(&self, to: &Snapshot) -> Patch {
        let mut ops = Vec::new();
        let mut a = self.data.iter().peekable();
        let mut b = to.data.iter().peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
            };
            match order {
                Ordering::Less => {
                    let (key, _) = a.next().expect("peeked");
                    ops.push(PatchOp::Delete { key: key.clone() });
                }
                Ordering::Greater => {
                    let (key, entry) = b.next().expect("peeked");
                    ops.push(PatchOp::Set { key: key.clone(), value: entry.value.clone() });
                }
                Ordering::Equal => {
                    let (_, old) = a.next().expect("peeked");
                    let (key, new) = b.next().expect("peeked");
                    if !core::ptr::eq(old, new) && old.value != new.value {
                        ops.push(PatchOp::Set { key: key.clone(), value: new.value.clone() });
                    }
                }
            }
        }
        Patch { from_version: self.version, to_version: to.version, ops }
    }

    /// Encodes the snapshot as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&Image::from(self)).expect("a JSON value always serializes")
    }

    /// Decodes a snapshot written by [`to_json`](Self::to_json).
    pub fn from_json(bytes: &[u8]) -> Result<Snapshot, StoreError> {
        check_size(bytes)?;
        serde_json::from_slice::<Image>(bytes)
            .map(Snapshot::from)
            .map_err(|_| StoreError::Decode("invalid JSON state image"))
    }

    /// Encodes the snapshot as MessagePack: the bytes `rmp-serde` writes for
    /// the image (structs as arrays), assembled from each entry's cached
    /// encoding, so only entries written since the last image are encoded.
    /// Works without `std`.
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 64 * self.data.size());
        msgpack::write_image(&mut out, self);
        out
    }

    /// Decodes a snapshot written by [`to_msgpack`](Self::to_msgpack). Works without `std`.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Snapshot, StoreError> {
        check_size(bytes)?;
        msgpack::read_image(bytes).ok_or(StoreError::Decode("invalid MessagePack state image"))
    }
}

/// Decodes one MessagePack value as a state value: arrays and maps nest at
/// most [`MAX_DEPTH`](crate::msgpack::MAX_DEPTH) levels, map keys are strings,
/// binary and extension types are refused, non-finite floats become `null`.
/// Works without `std`.
///
/// # Examples
/// ```
/// use swarmbus_core::store::value_from_msgpack;
/// assert_eq!(value_from_msgpack(&[0x81, 0xa1, b'a', 0x01])?, serde_json::json!({"a": 1}));
/// # Ok::<(), swarmbus_core::CodecError>(())
/// ```
pub fn value_from_msgpack(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut r = crate::msgpack::Reader::new(bytes);
    let value = msgpack::read_value(&mut r, crate::msgpack::MAX_DEPTH)?;
    r.finish()?;
    Ok(value)
}

fn check_size(bytes: &[u8]) -> Result<(), StoreError> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(StoreError::TooLarge { len: bytes.len(), max: MAX_IMAGE_BYTES });
    }
    Ok(())
}

/// The serialized form of a snapshot: `[format, id, label, version, {key: entry}]`.
#[derive(Serialize, Deserialize)]
struct Image {
    format: u32,
    id: SnapshotId,
    label: Option<String>,
    version: u64,
    entries: ImageEntries,
}

struct ImageEntries(Data);

impl Serialize for ImageEntries {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.size()))?;
        for (key, entry) in self.0.iter() {
            map.serialize_entry(key, entry)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ImageEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = ImageEntries;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("a map of keys to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ImageEntries, A::Error> {
                let mut data = Data::new_sync();
                while let Some((key, entry)) = access.next_entry::<String, Entry>()? {
                    data.insert_mut(key, entry);
                }
                Ok(ImageEntries(data))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

impl From<&Snapshot> for Image {
    fn from(s: &Snapshot) -> Self {
        Image {
            format: IMAGE_FORMAT,
            id: s.id,
            label: s.label.clone(),
            version: s.version,
            entries: ImageEntries(s.data.clone()),
        }
    }
}

impl From<Image> for Snapshot {
    fn from(image: Image) -> Self {
        Snapshot { id: image.id, label: image.label, version: image.version, data: image.entries.0 }
    }
}

/// Summary of one snapshot in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its id.
    pub id: SnapshotId,
    /// Its label.
    pub label: Option<String>,
    /// The store version it froze.
    pub version: u64,
    /// Number of keys.
    pub keys: usize,
}

/// A versioned key → value store with O(1) snapshots.
///
/// # Examples
/// ```
/// use serde_json::json;
/// use swarmbus_core::StateStore;
/// let mut store = StateStore::new();
/// store.set("phase", json!("plan"));
/// let before = store.snapshot(Some("planning"));
/// store.merge("agents", &json!({"a1": "idle"}));
/// let after = store.snapshot(None);
/// let patch = store.diff(before, after)?;
/// assert_eq!(patch.ops.len(), 1);
/// store.restore(before)?;
/// assert_eq!(store.get("agents"), None);
/// store.apply(&patch);
/// assert_eq!(store.get("agents"), Some(&json!({"a1": "idle"})));
/// # Ok::<(), swarmbus_core::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StateStore {
    data: Data,
    version: u64,
    history: VecDeque<Snapshot>,
    history_limit: usize,
    next_snapshot: u64,
}

impl Default for StateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl StateStore {
    /// An empty store at version 0 keeping [`DEFAULT_HISTORY`] snapshots.
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// An empty store keeping at most `limit` snapshots (at least 1).
    pub fn with_history(limit: usize) -> Self {
        Self {
            data: Data::new_sync(),
            version: 0,
            history: VecDeque::new(),
            history_limit: limit.max(1),
            next_snapshot: 1,
        }
    }

    /// A store holding the state of `snapshot`, at its version, with an empty history.
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        let mut store = Self::new();
        store.data = snapshot.data;
        store.version = snapshot.version;
        store
    }

    /// The current version; 0 for a new store.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.size()
    }

    /// True when the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.get(key).map(|e| &e.value)
    }

    /// The version that last wrote `key`; 0 when it is absent.
    pub fn key_version(&self, key: &str) -> u64 {
        self.data.get(key).map_or(0, |e| e.version)
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.data.keys().map(String::as_str)
    }

    /// Sets `key` to `value`; returns the new version.
    pub fn set(&mut self, key: impl Into<String>, value: Value) -> u64 {
        self.version += 1;
        self.data.insert_mut(key.into(), Entry::new(self.version, value));
        self.version
    }

    /// Merges `patch` into the value of `key` (RFC 7396; an absent key starts
    /// as `null`); returns the new version.
    pub fn merge(&mut self, key: &str, patch: &Value) -> u64 {
        let mut value = self.get(key).cloned().unwrap_or(Value::Null);
        merge_patch(&mut value, patch);
        self.set(key, value)
    }

    /// Removes `key`; returns its value. Removing an absent key changes nothing.
    pub fn delete(&mut self, key: &str) -> Option<Value> {
        let old = self.data.get(key)?.value.clone();
        self.data.remove_mut(key);
        self.version += 1;
        Some(old)
    }

    /// Sets `key` only if its version is `expected` (0: only if absent);
    /// returns the new version.
    pub fn compare_and_set(&mut self, key: &str, expected: u64, value: Value) -> Result<u64, StoreError> {
        let actual = self.key_version(key);
        if actual != expected {
            return Err(StoreError::VersionConflict { expected, actual });
        }
        Ok(self.set(key, value))
    }

    /// The live state as a snapshot with id 0, without recording it in the history.
    pub fn current(&self) -> Snapshot {
        Snapshot { id: SnapshotId(0), label: None, version: self.version, data: self.data.clone() }
    }

    /// Records the current state in the history in O(1); returns its id.
    /// The oldest snapshot is released when the history is full.
    pub fn snapshot(&mut self, label: Option<&str>) -> SnapshotId {
        let id = SnapshotId(self.next_snapshot);
        self.next_snapshot += 1;
        if self.history.len() >= self.history_limit {
            self.history.pop_front();
        }
        self.history.push_back(Snapshot {
            id,
            label: label.map(String::from),
            version: self.version,
            data: self.data.clone(),
        });
        id
    }

    /// A snapshot in the history.
    pub fn get_snapshot(&self, id: SnapshotId) -> Result<&Snapshot, StoreError> {
        self.history.iter().find(|s| s.id == id).ok_or(StoreError::UnknownSnapshot(id.0))
    }

    /// The history, oldest first.
    pub fn snapshots(&self) -> impl DoubleEndedIterator<Item = SnapshotInfo> + '_ {
        self.history.iter().map(|s| SnapshotInfo {
            id: s.id,
            label: s.label.clone(),
            version: s.version,
            keys: s.len(),
        })
    }

    /// Returns to the state of snapshot `id`; returns the new version (restoring
    /// is itself a change). Keys keep the versions they had in the snapshot.
    pub fn restore(&mut self, id: SnapshotId) -> Result<u64, StoreError> {
        self.data = self.get_snapshot(id)?.data.clone();
        self.version += 1;
        Ok(self.version)
    }

    /// The patch from snapshot `from` to snapshot `to`.
    pub fn diff(&self, from: SnapshotId, to: SnapshotId) -> Result<Patch, StoreError> {
        Ok(self.get_snapshot(from)?.diff(self.get_snapshot(to)?))
    }

    /// Applies `patch` as one change; returns the new version.
    pub fn apply(&mut self, patch: &Patch) -> u64 {
        self.version += 1;
        for op in &patch.ops {
            match op {
                PatchOp::Set { key, value } => {
                    self.data.insert_mut(key.clone(), Entry::new(self.version, value.clone()));
                }
                PatchOp::Delete { key } => {
                    self.data.remove_mut(key.as_str());
                }
            }
        }
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_change_bumps_the_version() {
        let mut s = StateStore::new();
        assert_eq!(s.set("a", json!(1)), 1);
        assert_eq!(s.merge("b", &json!({"x": 1})), 2);
        assert_eq!(s.delete("a"), Some(json!(1)));
        assert_eq!(s.version(), 3);
        assert_eq!(s.delete("a"), None);
        assert_eq!(s.version(), 3, "deleting nothing is not a change");
    }

    #[test]
    fn compare_and_set_checks_the_key_version() {
        let mut s = StateStore::new();
        assert_eq!(s.compare_and_set("k", 0, json!("first")), Ok(1));
        assert_eq!(
            s.compare_and_set("k", 0, json!("again")),
            Err(StoreError::VersionConflict { expected: 0, actual: 1 })
        );
        s.set("other", json!(true));
        assert_eq!(s.compare_and_set("k", 1, json!("second")), Ok(3));
        assert_eq!(s.get("k"), Some(&json!("second")));
    }

    #[test]
    fn snapshots_are_isolated_from_later_writes() {
        let mut s = StateStore::new();
        s.set("a", json!([1, 2]));
        let snap = s.snapshot(Some("one"));
        s.set("a", json!([3]));
        assert_eq!(s.get_snapshot(snap).unwrap().get("a"), Some(&json!([1, 2])));
        s.restore(snap).unwrap();
        assert_eq!(s.get("a"), Some(&json!([1, 2])));
        assert_eq!(s.version(), 3);
    }

    #[test]
    fn history_is_bounded_and_labelled() {
        let mut s = StateStore::with_history(3);
        let ids: Vec<_> = (0..5)
            .map(|i| {
                s.set("i", json!(i));
                s.snapshot(Some(&alloc::format!("v{i}")))
            })
            .collect();
        let kept: Vec<_> = s.snapshots().map(|i| (i.id, i.label.unwrap())).collect();
        assert_eq!(kept, [(ids[2], "v2".into()), (ids[3], "v3".into()), (ids[4], "v4".into())]);
        assert_eq!(s.restore(ids[0]), Err(StoreError::UnknownSnapshot(ids[0].0)));
    }

    #[test]
    fn diff_lists_sets_and_deletes_in_key_order() {
        let mut s = StateStore::new();
        s.set("a", json!(1));
        s.set("b", json!(2));
        s.set("c", json!(3));
        let from = s.snapshot(None);
        s.delete("a");
        s.set("b", json!(2)); // rewritten with the same value: not a change in the diff
        s.set("c", json!(30));
        s.set("d", json!(4));
        let to = s.snapshot(None);
        let patch = s.diff(from, to).unwrap();
        assert_eq!(
            patch.ops,
            [
                PatchOp::Delete { key: "a".into() },
                PatchOp::Set { key: "c".into(), value: json!(30) },
                PatchOp::Set { key: "d".into(), value: json!(4) },
            ]
        );
        assert_eq!((patch.from_version, patch.to_version), (3, 7));
    }

    #[test]
    fn images_round_trip_and_reject_garbage() {
        let mut s = StateStore::new();
        s.set("swarm", json!({"agents": [1, 2, 3], "name": "α", "big": u64::MAX, "f": 1.5}));
        let id = s.snapshot(Some("label"));
        let snap = s.get_snapshot(id).unwrap().clone();
        assert_eq!(Snapshot::from_json(&snap.to_json()).unwrap(), snap);
        let image = snap.to_msgpack();
        assert_eq!(Snapshot::from_msgpack(&image).unwrap(), snap);
        assert_eq!(image, rmp_serde::to_vec(&Image::from(&snap)).unwrap(), "same bytes as rmp-serde");
        assert!(matches!(Snapshot::from_json(b"{\"nope\":1}"), Err(StoreError::Decode(_))));
        assert!(matches!(Snapshot::from_msgpack(&[0xc1, 0xff]), Err(StoreError::Decode(_))));
        for end in 0..image.len() {
            assert!(Snapshot::from_msgpack(&image[..end]).is_err(), "prefix of {end} bytes");
        }
        let mut trailing = image.clone();
        trailing.push(0xc0);
        assert!(Snapshot::from_msgpack(&trailing).is_err());
        let mut other_format = image.clone();
        other_format[1] = 2;
        assert!(Snapshot::from_msgpack(&other_format).is_err());
        let restored = StateStore::from_snapshot(snap);
        assert_eq!(restored.version(), 1);
        assert_eq!(restored.key_version("swarm"), 1);
    }
}

/// Direct MessagePack writer for state images (layout of `Image` as rmp-serde
/// writes it: structs as arrays, `Value` objects as maps).
mod msgpack {
    use alloc::string::String;
    use alloc::vec::Vec;

    use rmp::encode as w;
    use serde_json::{Map, Number, Value};

    use super::{Data, Entry, Snapshot, SnapshotId, IMAGE_FORMAT};
    use crate::error::CodecError;
    use crate::msgpack::{nested, Reader, Token, MAX_DEPTH};

    // Writing into a Vec cannot fail, so the writers' Results carry no information.
    pub(super) fn write_image(out: &mut Vec<u8>, s: &Snapshot) {
        let _ = w::write_array_len(out, 5);
        let _ = w::write_uint(out, IMAGE_FORMAT as u64);
        let _ = w::write_uint(out, s.id.0);
        match &s.label {
            Some(label) => drop(w::write_str(out, label)),
            None => drop(w::write_nil(out)),
        }
        let _ = w::write_uint(out, s.version);
        let _ = w::write_map_len(out, s.data.size() as u32);
        for (key, entry) in s.data.iter() {
            let _ = w::write_str(out, key);
            out.extend_from_slice(entry.encoded());
        }
    }

    pub(super) fn write_entry(out: &mut Vec<u8>, version: u64, value: &Value) {
        let _ = w::write_array_len(out, 2);
        let _ = w::write_uint(out, version);
        write_value(out, value);
    }

    fn write_value(out: &mut Vec<u8>, value: &Value) {
        match value {
            Value::Null => drop(w::write_nil(out)),
            Value::Bool(b) => drop(w::write_bool(out, *b)),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    let _ = w::write_uint(out, u);
                } else if let Some(i) = n.as_i64() {
                    let _ = w::write_sint(out, i);
                } else {
                    let _ = w::write_f64(out, n.as_f64().unwrap_or(f64::NAN));
                }
            }
            Value::String(s) => drop(w::write_str(out, s)),
            Value::Array(items) => {
                let _ = w::write_array_len(out, items.len() as u32);
                items.iter().for_each(|v| write_value(out, v));
            }
            Value::Object(fields) => {
                let _ = w::write_map_len(out, fields.len() as u32);
                for (k, v) in fields {
                    let _ = w::write_str(out, k);
                    write_value(out, v);
                }
            }
        }
    }

    /// Reads an image written by [`write_image`]; `None` when the bytes are not one.
    pub(super) fn read_image(bytes: &[u8]) -> Option<Snapshot> {
        let mut r = Reader::new(bytes);
        if r.array_len("image").ok()? != 5 || r.uint("format").ok()? != u64::from(IMAGE_FORMAT) {
            return None;
        }
        let id = SnapshotId(r.uint("id").ok()?);
        let label = r.optional(|r| r.str("label", usize::MAX).map(String::from)).ok()?;
        let version = r.uint("version").ok()?;
        let mut data = Data::new_sync();
        for _ in 0..r.map_len("entries").ok()? {
            let key = String::from(r.str("key", usize::MAX).ok()?);
            if r.array_len("entry").ok()? != 2 {
                return None;
            }
            let entry_version = r.uint("version").ok()?;
            let value = read_value(&mut r, MAX_DEPTH).ok()?;
            data.insert_mut(key, Entry::new(entry_version, value));
        }
        r.finish().ok().map(|()| Snapshot { id, label, version, data })
    }

    /// One state value, nested at most `depth` levels; what JSON has no form
    /// for (binary, extension types, non-string keys) is an error, a
    /// non-finite float becomes `null` (as serde_json does). The wasm
    /// `StateStore` reads JS values through this too (encoded first).
    pub(crate) fn read_value(r: &mut Reader<'_>, depth: usize) -> Result<Value, CodecError> {
        let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
        Ok(match r.token()? {
            Token::Nil => Value::Null,
            Token::Bool(b) => Value::Bool(b),
            Token::Uint(n) => Value::from(n),
            Token::Int(n) => Value::from(n),
            Token::F32(f) => float(f.into()),
            Token::F64(f) => float(f),
            Token::Str(bytes) => Value::String(string(bytes)?),
            Token::Array(len) => {
                let depth = nested(depth)?;
                (0..len).map(|_| read_value(r, depth)).collect::<Result<_, _>>().map(Value::Array)?
            }
            Token::Map(len) => {
                let depth = nested(depth)?;
                let mut fields = Map::new();
                for _ in 0..len {
                    let Token::Str(key) = r.token()? else {
                        return Err(CodecError::UnexpectedType { field: "key" });
                    };
                    fields.insert(string(key)?, read_value(r, depth)?);
                }
                Value::Object(fields)
            }
            Token::Bin(_) | Token::Ext(..) => return Err(CodecError::UnexpectedType { field: "value" }),
        })
    }

    fn string(bytes: &[u8]) -> Result<String, CodecError> {
        core::str::from_utf8(bytes).map(String::from).map_err(|_| CodecError::InvalidUtf8 { field: "value" })
    }
}
