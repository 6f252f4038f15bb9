//! `LeaseTable`: the replicated half of leases — which leases exist, their granted TTL, the
//! remaining TTL last checkpointed, and the keys attached to each. Expiry is not here: time is
//! the leader's business ([`crate::lease::Lessor`]), and expiring a lease means proposing its
//! revoke.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::KvError;

/// etcd's `MaxLeaseTTL`: a grant with a longer TTL is refused.
pub const LEASE_TTL_MAX_SECS: i64 = 9_000_000_000;

/// A lease as the state machine knows it (what etcd's `LeaseTimeToLive` reports, apart from
/// the live remaining time, which only the leader's lessor knows).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub id: i64,
    /// The TTL granted.
    pub ttl_secs: i64,
    /// The remaining TTL last checkpointed, 0 when none is recorded (the full TTL applies).
    pub remaining_ttl_secs: i64,
    /// The keys attached, ascending.
    pub keys: Vec<Bytes>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lease {
    pub ttl_secs: i64,
    pub remaining_ttl_secs: i64,
    pub keys: BTreeSet<Bytes>,
}

/// A lease's TTLs without its keys: what a new leader's lessor needs, and what snapshots
/// persist (attachments are rebuilt from the keys' versions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTtl {
    pub id: i64,
    pub ttl_secs: i64,
    pub remaining_ttl_secs: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseTable {
    leases: BTreeMap<i64, Lease>,
    /// The next id to try when a grant asks for one to be allocated.
    next_id: i64,
}

impl Default for LeaseTable {
    fn default() -> Self {
        LeaseTable {
            leases: BTreeMap::new(),
            next_id: 1,
        }
    }
}

impl LeaseTable {
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn next_id(&self) -> i64 {
        self.next_id
    }

    pub fn info(&self, id: i64) -> Option<LeaseInfo> {
        self.leases.get(&id).map(|l| LeaseInfo {
            id,
            ttl_secs: l.ttl_secs,
            remaining_ttl_secs: l.remaining_ttl_secs,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    /// Every lease, by id, without the attached keys.
    pub fn records(&self) -> impl Iterator<Item = LeaseTtl> + '_ {
        self.leases.iter().map(|(&id, l)| LeaseTtl {
            id,
            ttl_secs: l.ttl_secs,
            remaining_ttl_secs: l.remaining_ttl_secs,
        })
    }

    /// etcd's `lessor.Grant`: TTL above the maximum is refused, then an existing id. An id of 0
    /// takes the next free positive id. A TTL below 1 s is raised to 1 s here; members raise it
    /// to their configured minimum before proposing ([`super::KvLimits::admit`]).
    pub fn grant(&mut self, id: i64, ttl_secs: i64) -> Result<(i64, i64), KvError> {
        if ttl_secs > LEASE_TTL_MAX_SECS {
            return Err(KvError::LeaseTtlTooLarge);
        }
        let id = if id == 0 { self.allocate() } else { id };
        if self.leases.contains_key(&id) {
            return Err(KvError::LeaseExists);
        }
        let ttl_secs = ttl_secs.max(1);
        self.leases.insert(
            id,
            Lease {
                ttl_secs,
                remaining_ttl_secs: 0,
                keys: BTreeSet::new(),
            },
        );
        Ok((id, ttl_secs))
    }

    fn allocate(&mut self) -> i64 {
        loop {
            let id = self.next_id;
            self.next_id = if id == i64::MAX { 1 } else { id + 1 };
            if !self.leases.contains_key(&id) {
                return id;
            }
        }
    }

    /// The keys attached to `id`, ascending (etcd revokes in sorted order).
    pub fn keys(&self, id: i64) -> Option<Vec<Bytes>> {
        self.leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
    }

    pub fn remove(&mut self, id: i64) -> Option<Lease> {
        self.leases.remove(&id)
    }

    /// etcd's `lessor.Checkpoint`: a lease that no longer exists is ignored.
    pub fn checkpoint(&mut self, id: i64, remaining_ttl_secs: i64) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.remaining_ttl_secs = remaining_ttl_secs;
        }
    }

    pub fn attach(&mut self, id: i64, key: &Bytes) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.clone());
        }
    }

    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }

    pub fn from_records(records: Vec<LeaseTtl>, next_id: i64) -> Result<LeaseTable, String> {
        let mut leases = BTreeMap::new();
        for r in records {
            let lease = Lease {
                ttl_secs: r.ttl_secs,
                remaining_ttl_secs: r.remaining_ttl_secs,
                keys: BTreeSet::new(),
            };
            if r.id == 0 || leases.insert(r.id, lease).is_some() {
                return Err(format!("lease id {} invalid or repeated", r.id));
            }
        }
        Ok(LeaseTable { leases, next_id })
    }

    /// Approximate heap bytes (attached keys share their bytes with the index).
    pub fn memory_bytes(&self) -> usize {
        let per_lease = std::mem::size_of::<(i64, Lease)>() + 16;
        let per_key = std::mem::size_of::<Bytes>() + 16;
        self.leases
            .values()
            .map(|l| per_lease + l.keys.len() * per_key)
            .sum()
    }
}
