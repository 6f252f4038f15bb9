//! Configuration of one Raft node. Durations are in logical ticks: the driver calls
//! `Raft::tick` at a fixed interval and chooses what a tick means in wall time.

use thiserror::Error;

use crate::types::NodeId;

/// How linearizable reads confirm leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex with a heartbeat round to a quorum for every batch of reads (thesis §6.4).
    Safe,
    /// Serve from the leader's lease while it lasts (thesis §6.4.1); falls back to `Safe`
    /// when the lease is not held. Requires `check_quorum`. `drift_ticks_max` bounds how many
    /// ticks clocks may drift apart over one election timeout; the lease is shortened by it.
    /// A node restarted from storage in this mode refuses votes for `election_ticks_min` ticks
    /// after starting, honouring a lease it may have acknowledged before it went down. Every
    /// member must use this mode for the lease to be sound.
    Lease { drift_ticks_max: u32 },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// An election starts after a random number of ticks in
    /// `[election_ticks_min, election_ticks_max)` without hearing from a leader.
    pub election_ticks_min: u32,
    pub election_ticks_max: u32,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: u32,
    /// Pre-vote phase before real elections (thesis §9.6). Whatever this node's setting, it
    /// ignores pre-votes while it has heard from a leader within `election_ticks_min`.
    pub pre_vote: bool,
    /// A leader steps down if it has not heard from a quorum within `election_ticks_min`
    /// ticks, and followers that heard from a leader recently ignore vote requests.
    pub check_quorum: bool,
    pub read_mode: ReadMode,
    /// Followers forward proposals to the leader; otherwise they answer `NotLeader`.
    pub forward_proposals: bool,
    /// Upper bound on the entry bytes in one `Append` message (at least one entry is sent).
    pub append_bytes_max: usize,
    /// Flow control per follower: unacknowledged `Append` messages and bytes in flight.
    pub inflight_msgs_max: usize,
    pub inflight_bytes_max: usize,
    /// Proposals are refused once this many bytes are appended but uncommitted.
    pub uncommitted_bytes_max: usize,
    /// Largest single proposal.
    pub entry_bytes_max: usize,
    /// Snapshot data is sent in chunks of this size.
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot a follower accepts from a leader.
    pub snapshot_bytes_max: u64,
    /// Bound on read requests waiting for confirmation (per leader, and forwarded per follower).
    pub pending_reads_max: usize,
    /// Bound on the entry bytes handed out in one `Ready` for applying.
    pub apply_bytes_max: usize,
    /// Seed of the node's RNG (election jitter, read-id epoch). The driver must use a fresh
    /// seed every time a node starts (from OS randomness in production, from the simulation
    /// seed and boot count in the simulator): read ids carry an epoch drawn from it, and a
    /// reused epoch would let a late answer to a previous incarnation's read satisfy a new
    /// one (etcd #20418).
    pub rng_seed: u64,
}

impl Config {
    /// Defaults in the spirit of etcd (election 10-20 ticks, heartbeat every tick).
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_ticks_min: 10,
            election_ticks_max: 20,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            read_mode: ReadMode::Safe,
            forward_proposals: true,
            append_bytes_max: 1024 * 1024,
            inflight_msgs_max: 256,
            inflight_bytes_max: 32 * 1024 * 1024,
            uncommitted_bytes_max: 256 * 1024 * 1024,
            entry_bytes_max: 8 * 1024 * 1024,
            snapshot_chunk_bytes: 1024 * 1024,
            snapshot_bytes_max: 64 * 1024 * 1024 * 1024,
            pending_reads_max: 64 * 1024,
            apply_bytes_max: 64 * 1024 * 1024,
            rng_seed: 0,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::Invalid("heartbeat_ticks must be at least 1"));
        }
        if self.election_ticks_min <= self.heartbeat_ticks {
            return Err(ConfigError::Invalid(
                "election_ticks_min must be greater than heartbeat_ticks",
            ));
        }
        if self.election_ticks_max <= self.election_ticks_min {
            return Err(ConfigError::Invalid(
                "election_ticks_max must be greater than election_ticks_min",
            ));
        }
        if self.inflight_msgs_max == 0 || self.inflight_bytes_max == 0 {
            return Err(ConfigError::Invalid("in-flight bounds must be positive"));
        }
        if self.append_bytes_max == 0 || self.snapshot_chunk_bytes == 0 {
            return Err(ConfigError::Invalid("message size bounds must be positive"));
        }
        if self.pending_reads_max == 0 {
            return Err(ConfigError::Invalid("pending_reads_max must be positive"));
        }
        if let ReadMode::Lease { drift_ticks_max } = self.read_mode {
            if !self.check_quorum {
                return Err(ConfigError::Invalid("lease reads require check_quorum"));
            }
            if drift_ticks_max >= self.election_ticks_min {
                return Err(ConfigError::Invalid(
                    "drift_ticks_max must be below election_ticks_min",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("node id 0 is reserved")]
    ZeroId,
    #[error("invalid raft configuration: {0}")]
    Invalid(&'static str),
}
