//! The snapshot encoding: postcard of a versioned enum holding the revision, the compaction
//! point, every key's retained versions (key order) and the lease table (id order) — a pure
//! function of the state, so equal stores encode to equal bytes. Version 2 adds the active
//! alarms (written only while some alarm is active). Derived state (the revision
//! log, counters, lease attachments) is rebuilt on restore, after checking the invariants.
//! Snapshots of the first version (latest values only, no leases) still restore.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::alarm::{AlarmMember, Alarms};
use super::key_history::{KeyHistory, Version};
use super::lease_table::{LeaseTable, LeaseTtl};
use super::mvcc::Mvcc;
use super::{KeyValue, SnapshotDecodeError};

/// V1 is written while no alarm is active (so such states encode as before alarms existed);
/// V2 adds the active alarms.
#[derive(Serialize)]
enum SnapshotRef<'a> {
    V1(StateRef<'a>),
    V2(StateRef<'a>, Vec<AlarmMember>),
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
    V2(State, Vec<AlarmMember>),
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
/// is the revision (at least 1), never the tag 0 of `Snapshot::V1`.
#[derive(Deserialize)]
struct Legacy {
    revision: i64,
    keys: BTreeMap<Bytes, KeyValue>,
}

pub(crate) fn encode(mvcc: &Mvcc, leases: &LeaseTable, alarms: &Alarms) -> Bytes {
    let state = StateRef {
        revision: mvcc.revision(),
        compact_revision: mvcc.compact_revision(),
        keys: mvcc.keys(),
        leases: leases.records().collect(),
        next_lease_id: leases.next_id(),
    };
    let snap = if alarms.is_empty() {
        SnapshotRef::V1(state)
    } else {
        SnapshotRef::V2(state, alarms.list().iter().copied().collect())
    };
    Bytes::from(postcard::to_stdvec(&snap).expect("in-memory encoding cannot fail"))
}

pub(crate) fn decode(data: &[u8]) -> Result<(Mvcc, LeaseTable, Alarms), SnapshotDecodeError> {
    let (state, alarms) = match postcard::from_bytes::<Snapshot>(data) {
        Ok(Snapshot::V1(s)) => (s, Vec::new()),
        Ok(Snapshot::V2(s, alarms)) => (s, alarms),
        Err(e) => match postcard::from_bytes::<Legacy>(data) {
            Ok(legacy) => (from_legacy(legacy), Vec::new()),
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
    Ok((mvcc, leases, Alarms::from_list(alarms)))
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
