//! The snapshot encoding: postcard of a versioned enum holding the revision, the compaction
//! point, every key's retained versions (key order), the lease table (id order), the member
//! registry and the active alarms — a pure function of the state, so equal stores encode to
//! equal bytes. Derived state (the revision log, counters, lease attachments) is rebuilt on
//! restore, after checking the invariants. Snapshots of earlier versions (V1: no member
//! registry, no alarms; the first: latest values only, no leases) still restore.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::alarm::{AlarmMember, Alarms};
use super::key_history::{KeyHistory, Version};
use super::lease_table::{LeaseTable, LeaseTtl};
use super::mvcc::Mvcc;
use super::{KeyValue, SnapshotDecodeError};
use crate::members::MemberRegistry;

#[derive(Serialize)]
enum SnapshotRef<'a> {
    /// Never written any more; keeps `V2`'s tag.
    #[allow(dead_code)]
    V1(StateRef<'a>),
    V2(StateRef<'a>, &'a MemberRegistry, Vec<AlarmMember>),
}

#[derive(Serialize)]
struct StateRef<'a> {
    revision: i64,
    compact_revision: i64,
    keys: &'a BTreeMap<Bytes, KeyHistory>,
    leases: Vec<LeaseTtl>,
    next_lease_id: i64,
}

#[derive(Deserialize)]
enum Snapshot {
    V1(State),
    V2(State, MemberRegistry, Vec<AlarmMember>),
}

#[derive(Deserialize)]
struct State {
    revision: i64,
    compact_revision: i64,
    #[serde(deserialize_with = "key_list")]
    keys: Vec<(Bytes, KeyHistory)>,
    leases: Vec<LeaseTtl>,
    next_lease_id: i64,
}

/// The key index, which `encode` writes in key order, read as a list (`decode` checks the
/// order and builds the map in bulk).
fn key_list<'de, D>(d: D) -> Result<Vec<(Bytes, KeyHistory)>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct List;
    impl<'de> serde::de::Visitor<'de> for List {
        type Value = Vec<(Bytes, KeyHistory)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of keys")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            // The length prefix is only a hint: memory is taken as entries actually decode,
            // from a bounded first step.
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(entry) = map.next_entry::<Bytes, KeyHistory>()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    d.deserialize_map(List)
}

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

pub(crate) fn encode(
    mvcc: &Mvcc,
    leases: &LeaseTable,
    members: &MemberRegistry,
    alarms: &Alarms,
) -> Bytes {
    let state = StateRef {
        revision: mvcc.revision(),
        compact_revision: mvcc.compact_revision(),
        keys: mvcc.keys(),
        leases: leases.records().collect(),
        next_lease_id: leases.next_id(),
    };
    let snap = SnapshotRef::V2(state, members, alarms.list().iter().copied().collect());
    Bytes::from(postcard::to_stdvec(&snap).expect("in-memory encoding cannot fail"))
}

/// What a snapshot restores to.
pub(crate) struct Decoded {
    pub mvcc: Mvcc,
    pub leases: LeaseTable,
    pub members: MemberRegistry,
    pub alarms: Alarms,
}

pub(crate) fn decode(data: &[u8]) -> Result<Decoded, SnapshotDecodeError> {
    let (state, members, alarms) = match postcard::from_bytes::<Snapshot>(data) {
        Ok(Snapshot::V1(s)) => (s, MemberRegistry::default(), Vec::new()),
        Ok(Snapshot::V2(s, members, alarms)) => (s, members, alarms),
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

#[cfg(test)]
mod tests {
    use super::*;

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

    fn crafted(keys: &[&str]) -> Vec<u8> {
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
        postcard::to_stdvec(&Crafted::V2(state, MemberRegistry::default(), Vec::new())).unwrap()
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
}
