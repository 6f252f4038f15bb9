//! The snapshot format, and reading it (`SnapshotEncoder` writes it): postcard of a
//! versioned enum holding the revision, the compaction point, every key's retained versions
//! (key order), the lease table (id order), the member registry and the active alarms — a
//! pure function of the state, so equal stores encode to equal bytes. Derived state (the
//! revision log, counters, lease attachments) is rebuilt on restore, after checking the
//! invariants. Snapshots of earlier versions (V1: no member registry, no alarms; the first:
//! latest values only, no leases) still restore.
//!
//! Decoding reads the encoding item by item and leaves the values where they are (slices of
//! the snapshot's buffer); `value_spans_from` locates them, so a store can swap its values
//! for the same bytes in a stored copy of its snapshot (`ValueSharing`).

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

use super::alarm::{AlarmMember, Alarms};
use super::key_history::{KeyHistory, Version};
use super::lease_table::{LeaseTable, LeaseTtl};
use super::mvcc::Mvcc;
use super::{KeyValue, Revision, SnapshotDecodeError};
use crate::members::MemberRegistry;

/// The enum tags that open a `V1` and a `V2` snapshot (postcard writes a variant's index).
pub(super) const TAG_V1: u32 = 0;
pub(super) const TAG_V2: u32 = 1;

/// The key index from the snapshot's list: keys must be strictly increasing (out of order or
/// repeated means a corrupt snapshot). Built in bulk: inserting a million keys one by one
/// searches the tree from the root each time and leaves its nodes about two-thirds full;
/// the bulk build is linear and packs them.
fn key_index(keys: Vec<(Bytes, KeyHistory)>) -> Result<BTreeMap<Bytes, KeyHistory>, String> {
    if let Some(w) = keys.windows(2).find(|w| w[0].0 >= w[1].0) {
        return Err(format!("key {:?} out of order after {:?}", w[1].0, w[0].0));
    }
    Ok(BTreeMap::from_iter(keys))
}

/// The first version's snapshot: the revision and each key's latest value. Its leading varint
/// is the revision (at least 1), never the tag 0 of `Snapshot::V1`; at revision 1 (no keys) it
/// is two bytes, too short to decode as a `Snapshot::V2`.
#[derive(Deserialize)]
struct Legacy {
    revision: i64,
    keys: BTreeMap<Bytes, KeyValue>,
}

// ----- reading the encoding -----
// Postcard writes an enum's variant and every length as a varint, integers as (zigzag)
// varints, byte strings as their length and bytes, and a struct as its fields in order; the
// snapshot is read item by item in the order `SnapshotEncoder` writes it, borrowing from the
// encoding (values are not copied, see `decode`; keys and values are located, see
// `value_spans_from`).

/// `Version` as encoded, borrowing its value from the encoding (fields in `Version`'s order).
#[derive(Deserialize)]
struct EncodedVersion<'a> {
    main: i64,
    create_revision: i64,
    version: i64,
    lease: i64,
    value: &'a [u8],
    sub: u32,
}

fn take<'a, T: Deserialize<'a>>(rest: &mut &'a [u8]) -> Result<T, postcard::Error> {
    let (item, after) = postcard::take_from_bytes(rest)?;
    *rest = after;
    Ok(item)
}

/// Reads a `SnapshotRef::V1` or `V2` up to its key index: whether it is `V2`, the revision,
/// the compaction point and the number of keys. A legacy snapshot starts with its revision
/// (zigzag, so at least 2) where these have the tag 0 or 1: refused here.
fn read_head(rest: &mut &[u8]) -> Result<(bool, i64, i64, usize), postcard::Error> {
    let v2 = match take::<u32>(rest)? {
        TAG_V1 => false,
        TAG_V2 => true,
        _ => return Err(postcard::Error::DeserializeBadEnum),
    };
    Ok((v2, take(rest)?, take(rest)?, take(rest)?))
}

/// Reads one key of the index and the number of its versions, which follow it.
fn read_key<'a>(rest: &mut &'a [u8]) -> Result<(&'a [u8], usize), postcard::Error> {
    Ok((take(rest)?, take(rest)?))
}

/// Where the key index of `encoded` (a `V1` or `V2` snapshot) starts, and how many keys it
/// holds.
pub(crate) fn key_index_at(encoded: &[u8]) -> Result<(usize, usize), postcard::Error> {
    let mut rest = encoded;
    let (_, _, _, keys) = read_head(&mut rest)?;
    Ok((encoded.len() - rest.len(), keys))
}

/// The key that starts at `offset` of `encoded`'s key index.
pub(crate) fn key_at(encoded: &[u8], offset: usize) -> Result<&[u8], postcard::Error> {
    let mut rest = encoded
        .get(offset..)
        .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
    Ok(read_key(&mut rest)?.0)
}

/// Where `encoded` holds the values of `keys` keys of its index, from the key that starts at
/// `offset`: calls `f(key, revision, span)` for each of their versions with a non-empty
/// value, in key order then revision order, `span` being the value's byte range in
/// `encoded`. Returns where the next key starts. Allocates nothing. An error means the bytes
/// are not such a snapshot (or are cut short); `f` may have been called for a prefix by then.
pub(crate) fn value_spans_from<'a>(
    encoded: &'a [u8],
    offset: usize,
    keys: usize,
    mut f: impl FnMut(&'a [u8], Revision, Range<usize>),
) -> Result<usize, postcard::Error> {
    let mut rest = encoded
        .get(offset..)
        .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
    for _ in 0..keys {
        let (key, versions) = read_key(&mut rest)?;
        for _ in 0..versions {
            let v: EncodedVersion = take(&mut rest)?;
            if !v.value.is_empty() {
                let start = v.value.as_ptr() as usize - encoded.as_ptr() as usize;
                f(
                    key,
                    Revision::new(v.main, v.sub),
                    start..start + v.value.len(),
                );
            }
        }
    }
    Ok(encoded.len() - rest.len())
}

/// [`value_spans_from`] over every key of the index.
#[cfg(test)]
pub(crate) fn value_spans<'a>(
    encoded: &'a [u8],
    f: impl FnMut(&'a [u8], Revision, Range<usize>),
) -> Result<(), postcard::Error> {
    let (offset, keys) = key_index_at(encoded)?;
    value_spans_from(encoded, offset, keys, f).map(|_| ())
}

/// The versioned snapshot in `data`, its values slices of `data`.
fn decode_versioned(
    data: &Bytes,
) -> Result<(State, MemberRegistry, Vec<AlarmMember>), postcard::Error> {
    let mut rest = &data[..];
    let (v2, revision, compact_revision, key_count) = read_head(&mut rest)?;
    // The count is only a hint: memory is taken as keys actually decode, from a bounded
    // first step.
    let mut keys = Vec::with_capacity(key_count.min(1 << 16));
    for _ in 0..key_count {
        let (key, version_count) = read_key(&mut rest)?;
        let mut versions = Vec::with_capacity(version_count.min(1 << 10));
        for _ in 0..version_count {
            let v: EncodedVersion = take(&mut rest)?;
            versions.push(Version {
                main: v.main,
                create_revision: v.create_revision,
                version: v.version,
                lease: v.lease,
                value: if v.value.is_empty() {
                    Bytes::new()
                } else {
                    data.slice_ref(v.value)
                },
                sub: v.sub,
            });
        }
        keys.push((
            Bytes::copy_from_slice(key),
            KeyHistory::from_versions(versions),
        ));
    }
    let state = State {
        revision,
        compact_revision,
        keys,
        leases: take(&mut rest)?,
        next_lease_id: take(&mut rest)?,
    };
    if v2 {
        Ok((state, take(&mut rest)?, take(&mut rest)?))
    } else {
        Ok((state, MemberRegistry::default(), Vec::new()))
    }
}

/// A decoded snapshot, before its invariants are checked.
struct State {
    revision: i64,
    compact_revision: i64,
    keys: Vec<(Bytes, KeyHistory)>,
    leases: Vec<LeaseTtl>,
    next_lease_id: i64,
}

/// What a snapshot restores to.
pub(crate) struct Decoded {
    pub mvcc: Mvcc,
    pub leases: LeaseTable,
    pub members: MemberRegistry,
    pub alarms: Alarms,
}

/// The state `data` encodes. Values are slices of `data`, which stays allocated while any of
/// them is retained (the driver then shares them with its stored copy, see
/// `ValueSharing`); keys are copied.
pub(crate) fn decode(data: &Bytes) -> Result<Decoded, SnapshotDecodeError> {
    let (state, members, alarms) = match decode_versioned(data) {
        Ok(parts) => parts,
        Err(e) => match postcard::from_bytes::<Legacy>(data) {
            Ok(legacy) => (from_legacy(legacy), MemberRegistry::default(), Vec::new()),
            Err(_) => return Err(e.into()),
        },
    };
    let keys = key_index(state.keys).map_err(SnapshotDecodeError::Inconsistent)?;
    let mvcc = Mvcc::from_parts(keys, state.revision, state.compact_revision)
        .map_err(SnapshotDecodeError::Inconsistent)?;
    let mut leases = LeaseTable::from_records(state.leases, state.next_lease_id)
        .map_err(SnapshotDecodeError::Inconsistent)?;
    for (k, h) in mvcc.keys() {
        let Some(v) = h.last().filter(|v| !v.is_tombstone() && v.lease != 0) else {
            continue;
        };
        if !leases.contains(v.lease) {
            return Err(SnapshotDecodeError::Inconsistent(format!(
                "key {k:?} is attached to missing lease {}",
                v.lease
            )));
        }
        leases.attach(v.lease, k);
    }
    Ok(Decoded {
        mvcc,
        leases,
        members,
        alarms: Alarms::from_list(alarms),
    })
}

fn from_legacy(legacy: Legacy) -> State {
    let keys = legacy
        .keys
        .into_iter()
        .map(|(k, kv)| {
            let mut h = KeyHistory::default();
            h.push(Version {
                main: kv.mod_revision,
                create_revision: kv.create_revision,
                version: kv.version,
                lease: kv.lease,
                value: kv.value,
                sub: 0,
            });
            (k, h)
        })
        .collect();
    // Its history is gone: reads before its revision answer "compacted".
    State {
        revision: legacy.revision,
        compact_revision: legacy.revision,
        keys,
        leases: Vec::new(),
        next_lease_id: 1,
    }
}

/// The format as serde derives it from the types (`SnapshotEncoder` writes it piece by
/// piece): the oracle the encoder's output is checked against, and the writer of `V1`.
#[cfg(test)]
pub(crate) mod serde_format {
    use super::*;
    use crate::kv::KvStore;

    #[derive(Serialize)]
    pub(crate) enum SnapshotRef<'a> {
        V1(StateRef<'a>),
        V2(StateRef<'a>, &'a MemberRegistry, Vec<AlarmMember>),
    }

    #[derive(Serialize)]
    pub(crate) struct StateRef<'a> {
        pub revision: i64,
        pub compact_revision: i64,
        pub keys: &'a BTreeMap<Bytes, KeyHistory>,
        pub leases: Vec<LeaseTtl>,
        pub next_lease_id: i64,
    }

    /// `store`'s snapshot as serde writes it.
    pub(crate) fn encode(store: &KvStore) -> Vec<u8> {
        let mvcc = store.mvcc();
        let state = StateRef {
            revision: mvcc.revision(),
            compact_revision: mvcc.compact_revision(),
            keys: mvcc.keys(),
            leases: store.leases(),
            next_lease_id: store.next_lease_id(),
        };
        postcard::to_stdvec(&SnapshotRef::V2(state, store.members(), store.alarms())).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::serde_format::{SnapshotRef, StateRef};
    use super::*;
    use crate::kv::{Command, DeleteRangeRequest, KvStore, PutRequest};

    /// `StateRef` with the key index as a plain list, written as a map in the list's order.
    #[derive(Serialize)]
    enum Crafted {
        #[allow(dead_code)]
        V1(()),
        V2(CraftedState, MemberRegistry, Vec<AlarmMember>),
    }

    #[derive(Serialize)]
    struct CraftedState {
        revision: i64,
        compact_revision: i64,
        #[serde(serialize_with = "as_map")]
        keys: Vec<(Bytes, KeyHistory)>,
        leases: Vec<LeaseTtl>,
        next_lease_id: i64,
    }

    fn as_map<S: serde::Serializer>(v: &[(Bytes, KeyHistory)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, h)| (k, h)))
    }

    fn crafted(keys: &[&str]) -> Bytes {
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut h = KeyHistory::default();
                h.push(Version {
                    main: i as i64 + 2,
                    create_revision: i as i64 + 2,
                    version: 1,
                    lease: 0,
                    value: Bytes::from_static(b"v"),
                    sub: 0,
                });
                (Bytes::copy_from_slice(k.as_bytes()), h)
            })
            .collect::<Vec<_>>();
        let state = CraftedState {
            revision: keys.len() as i64 + 1,
            compact_revision: -1,
            keys,
            leases: Vec::new(),
            next_lease_id: 1,
        };
        postcard::to_stdvec(&Crafted::V2(state, MemberRegistry::default(), Vec::new()))
            .unwrap()
            .into()
    }

    /// The index is built in bulk from the snapshot's order, so that order is checked: keys
    /// in order restore; out of order or repeated, the snapshot is refused as corrupt (a
    /// map built by insertion would have silently reordered or merged them).
    #[test]
    fn keys_must_come_in_strictly_increasing_order() {
        let ok = decode(&crafted(&["a", "b", "c"])).unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<&Bytes> = ok.mvcc.keys().keys().collect();
        assert_eq!(
            keys,
            [&Bytes::from("a"), &Bytes::from("b"), &Bytes::from("c")]
        );
        for bad in [&["a", "c", "b"][..], &["a", "b", "b"][..]] {
            let err = decode(&crafted(bad)).err().expect("refused");
            assert!(err.to_string().contains("out of order"), "{bad:?}: {err}");
        }
    }

    /// The spans the walker finds are exactly the retained non-empty values, in key then
    /// revision order, read back from the encoding; an encoding cut short or of another
    /// kind is an error, never a panic.
    #[test]
    fn value_spans_locate_every_retained_value() {
        let mut store = KvStore::new();
        let put = |k: &str, v: &str| {
            Command::Put(PutRequest {
                key: Bytes::copy_from_slice(k.as_bytes()),
                value: Bytes::copy_from_slice(v.as_bytes()),
                ..Default::default()
            })
        };
        for (k, v) in [
            ("b", "1"),
            ("a", "22"),
            ("b", ""),
            ("c", "333"),
            ("b", "4444"),
        ] {
            store.apply(&put(k, v)).unwrap();
        }
        store
            .apply(&Command::DeleteRange(DeleteRangeRequest {
                key: Bytes::from_static(b"c"),
                ..Default::default()
            }))
            .unwrap();
        store.apply(&put("c", "55555")).unwrap();
        let encoded = store.snapshot();

        let mut expected = Vec::new();
        for (k, h) in decode(&encoded).unwrap().mvcc.keys() {
            for v in h.versions().iter().filter(|v| !v.value.is_empty()) {
                expected.push((k.to_vec(), v.revision(), v.value.to_vec()));
            }
        }
        let mut found = Vec::new();
        let mut last_start = 0;
        value_spans(&encoded, |k, rev, span| {
            last_start = span.start;
            found.push((k.to_vec(), rev, encoded[span].to_vec()))
        })
        .unwrap();
        assert_eq!(found, expected);
        assert_eq!(
            found.len(),
            5,
            "b's empty value and c's tombstone hold no bytes"
        );

        for cut in [0, 1, encoded.len() / 2, last_start + 1] {
            assert!(
                value_spans(&encoded[..cut], |_, _, _| {}).is_err(),
                "cut at {cut}"
            );
        }
        let legacy = postcard::to_stdvec(&(7i64, BTreeMap::<Bytes, KeyValue>::new())).unwrap();
        assert!(value_spans(&legacy, |_, _, _| {}).is_err());
    }

    /// `V1` snapshots (no member registry, no alarms) still restore, with their history and
    /// leases.
    #[test]
    fn v1_snapshots_restore() {
        let mut store = KvStore::new();
        store
            .apply(&Command::LeaseGrant {
                id: 7,
                ttl_secs: 30,
            })
            .unwrap();
        for (k, v, lease) in [("a", "1", 0), ("b", "2", 7), ("a", "3", 0)] {
            let put = PutRequest {
                key: Bytes::copy_from_slice(k.as_bytes()),
                value: Bytes::copy_from_slice(v.as_bytes()),
                lease,
                ..Default::default()
            };
            store.apply(&Command::Put(put)).unwrap();
        }
        let d = decode(&store.snapshot()).unwrap();
        let v1 = SnapshotRef::V1(StateRef {
            revision: d.mvcc.revision(),
            compact_revision: d.mvcc.compact_revision(),
            keys: d.mvcc.keys(),
            leases: d.leases.records().collect(),
            next_lease_id: d.leases.next_id(),
        });
        let data = Bytes::from(postcard::to_stdvec(&v1).unwrap());
        let restored = decode(&data).unwrap();
        assert_eq!(restored.mvcc, d.mvcc);
        assert_eq!(restored.leases, d.leases);
        assert_eq!(restored.members, MemberRegistry::default());
    }
}
