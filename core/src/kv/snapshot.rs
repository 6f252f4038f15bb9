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
    keys: BTreeMap<Bytes, KeyHistory>,
    leases: Vec<LeaseTtl>,
    next_lease_id: i64,
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
    let mvcc = Mvcc::from_parts(state.keys, state.revision, state.compact_revision)
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
