//! `LessorConfig`: the lessor's intervals and rates, with etcd's defaults.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessorConfig {
    /// How often the leader checkpoints the remaining TTL of a lease longer than this (etcd
    /// `--experimental-lease-checkpoint-interval`, 5 min; etcd 3.5 has checkpoints off by
    /// default, here they are on). 0 turns checkpoints off.
    pub checkpoint_interval_ms: u64,
    /// A lease reported expired is reported again if still not revoked this much later (etcd's
    /// `expiredLeaseRetryInterval`, 3 s).
    pub expired_retry_ms: u64,
    /// Expired leases reported by one [`super::Lessor::expired`] call (etcd revokes at most
    /// `leaseRevokeRate / 2` = 500 every 500 ms).
    pub revokes_per_call_max: usize,
    /// Checkpoints in one proposal (etcd's `maxLeaseCheckpointBatchSize`).
    pub checkpoints_per_call_max: usize,
    /// The revoke rate promotion keeps expiries under by spreading them (etcd's
    /// `leaseRevokeRate`).
    pub revokes_per_sec_max: usize,
}

impl Default for LessorConfig {
    fn default() -> Self {
        LessorConfig {
            checkpoint_interval_ms: 5 * 60 * 1000,
            expired_retry_ms: 3000,
            revokes_per_call_max: 500,
            checkpoints_per_call_max: 1000,
            revokes_per_sec_max: 1000,
        }
    }
}
