//! State-machine snapshots the loop takes: every `snapshot_every_entries` applied entries
//! (each member at its own offset, so members do not all snapshot at once) it encodes the
//! state machine, hands the snapshot to the core and to storage, and once storage
//! hands the stored copy back (e.g. the file, memory-mapped) shares the state machine's values
//! with it. Both walks go a slice of keys per turn of the loop ([`SnapshotEncoder`],
//! [`ValueSharing`]), so client requests, peer messages and ticks are served in between:
//! done in one go, a store of a million keys stopped the loop for a second or more, on every
//! member at once (they snapshot at the same index), and a stopped leader also misses its
//! heartbeats.

use bytes::Bytes;
use sextant_core::kv::{
    KvStore, SnapshotEncoder, SnapshotInterrupted, ValueSharing, WalkInterrupted,
};
use sextant_core::Index;
use tokio::time::Instant;

use super::event_loop::{NodeLoop, PeerSender};
use super::hash_kv::HashKvWalks;
use super::snapshot_reads::SnapshotReads;
use super::storage_io::StorageOp;
use super::stored_snapshot::adopt_stored_snapshot;
use super::Clock;

/// The snapshot walks in progress.
#[derive(Debug, Default)]
pub(super) struct Snapshotting {
    encoding: Option<Encoding>,
    sharing: Option<Sharing>,
    /// Clients' snapshot and hash requests, answered from encodings of their own.
    pub(super) reads: SnapshotReads,
    /// Clients' `HashKV` requests, answered from walks of their own.
    pub(super) hash_kv: HashKvWalks,
}

#[derive(Debug)]
struct Encoding {
    /// The applied index the snapshot is of.
    index: Index,
    encoder: SnapshotEncoder,
    slices: u64,
    started: Instant,
}

#[derive(Debug)]
struct Sharing {
    index: Index,
    walk: ValueSharing,
    slices: u64,
    started: Instant,
}

impl Snapshotting {
    /// Whether a walk has slices left (the loop comes back for them when idle).
    pub(super) fn busy(&self) -> bool {
        self.encoding.is_some()
            || self.sharing.is_some()
            || self.reads.busy()
            || self.hash_kv.busy()
    }

    /// The state machine was replaced (a snapshot from the leader): both walks are moot,
    /// and clients' reads and `HashKV`s start again.
    pub(super) fn state_replaced(&mut self) {
        self.encoding = None;
        self.sharing = None;
        self.reads.state_replaced();
        self.hash_kv.state_replaced();
    }
}

impl<P: PeerSender, C: Clock> NodeLoop<P, C> {
    /// Encodes the next slice of a snapshot in progress, or starts one when due; and a
    /// slice of a client's snapshot read and of a `HashKV`.
    pub(super) fn snapshot_step(&mut self) {
        self.snapshot_read_step();
        self.hash_kv_step();
        self.share_step();
        if self.snapshotting.encoding.is_none() && !self.start_snapshot_if_due() {
            return;
        }
        let enc = self.snapshotting.encoding.as_mut().expect("in progress");
        enc.slices += 1;
        let keys_max = self.cfg.snapshot_slice_keys;
        let Some((data, of_now)) = encode_slice(&mut enc.encoder, &self.kv, keys_max) else {
            return;
        };
        let enc = self.snapshotting.encoding.take().expect("in progress");
        let index = if of_now { self.kv_applied } else { enc.index };
        log_taken(index, &data, enc.slices, enc.started);
        self.snapshot_encoded(index, data);
    }

    /// Starts encoding a snapshot if one is due ([`snapshot_due_at`], or a defragmentation
    /// waits for one), unless the last one is still being saved or its values shared.
    /// Whether one started.
    fn start_snapshot_if_due(&mut self) -> bool {
        if self.snapshot_in_progress || self.snapshotting.sharing.is_some() {
            return false;
        }
        let due = self.kv_applied >= self.next_snapshot_due()
            || (self.maintenance.wants_snapshot() && self.kv_applied > self.last_snapshot_index);
        if due {
            self.snapshotting.encoding = Some(Encoding {
                index: self.kv_applied,
                encoder: SnapshotEncoder::new(&self.kv),
                slices: 0,
                started: Instant::now(),
            });
        }
        due
    }

    /// The applied index this member's next snapshot is due at ([`snapshot_due_at`], by its
    /// place among the voters; a learner goes last).
    fn next_snapshot_due(&self) -> Index {
        let voters = &self.raft.conf_state().voters;
        let me = self.raft.id();
        let rank = voters.iter().take_while(|v| **v != me).count();
        snapshot_due_at(
            self.last_snapshot_index,
            self.cfg.snapshot_every_entries,
            rank as u64,
            voters.len().max(rank + 1) as u64,
        )
    }

    /// Hands a finished snapshot to the core (which serves it to followers that fall behind
    /// the log) and to storage.
    fn snapshot_encoded(&mut self, index: Index, data: Bytes) {
        if let Err(e) = self.raft.snapshot_taken(index, data) {
            tracing::warn!(index, error = %e, "snapshot not taken");
            return;
        }
        let snapshot = self.raft.latest_snapshot().cloned().expect("just taken");
        let compact_to = index.saturating_sub(self.cfg.catch_up_entries);
        if self
            .storage
            .ops
            .send(StorageOp::SaveSnapshot {
                snapshot,
                compact_to,
            })
            .is_err()
        {
            self.fail("storage worker stopped".into());
            return;
        }
        self.snapshot_in_progress = true;
        self.defrag_snapshot_started();
    }

    /// Storage holds the snapshot at `index` and hands back its copy: the core keeps that,
    /// and the state machine's values move onto it, a slice per turn.
    pub(super) fn snapshot_stored(&mut self, index: Index, stored: Bytes) {
        if let Some(walk) = adopt_stored_snapshot(&mut self.raft, index, stored) {
            self.snapshotting.sharing = Some(Sharing {
                index,
                walk,
                slices: 0,
                started: Instant::now(),
            });
        }
    }

    fn share_step(&mut self) {
        let Some(sharing) = &mut self.snapshotting.sharing else {
            return;
        };
        sharing.slices += 1;
        let Some(shared) = sharing
            .walk
            .step(&mut self.kv, self.cfg.snapshot_slice_keys)
        else {
            return;
        };
        self.shared_value_bytes = shared.bytes;
        tracing::info!(
            index = sharing.index,
            versions = shared.versions,
            bytes = shared.bytes,
            complete = shared.complete,
            slices = sharing.slices,
            share_ms = sharing.started.elapsed().as_millis() as u64,
            "values shared with the stored snapshot"
        );
        self.snapshotting.sharing = None;
    }
}

/// When a member snapshots: on a grid of `every` applied entries, shifted for member `rank`
/// of `members` by `rank * every / members`, at the first point at least `every / 2` (and
/// at least one entry) past the last snapshot. Members that all snapshotted at the same
/// index stopped together for it; spread out, one member at a time snapshots, and the others
/// make a quorum without it.
/// On average still one snapshot per `every` entries (etcd's `--snapshot-count`).
pub(super) fn snapshot_due_at(last: Index, every: u64, rank: u64, members: u64) -> Index {
    let every = every.max(1);
    let phase =
        (u128::from(rank % members.max(1)) * u128::from(every) / u128::from(members.max(1))) as u64;
    let earliest = last.saturating_add((every / 2).max(1)).max(phase);
    // The first grid point `phase + k * every` at or after `earliest`.
    let k = (earliest - phase).div_ceil(every);
    phase.saturating_add(k.saturating_mul(every))
}

/// One slice of `encoder`'s walk over `kv` (the same store it started on): the snapshot once
/// the walk is through, `None` while slices remain. A walk a compaction interrupted gives
/// way to an encoding of `kv` as it is now, in one go, so that frequent compactions cannot
/// hold snapshots off: then the flag is set (the snapshot is of the state now, not of the
/// walk's start).
pub(super) fn encode_slice(
    encoder: &mut SnapshotEncoder,
    kv: &KvStore,
    keys_max: usize,
) -> Option<(Bytes, bool)> {
    match encoder.step(kv, keys_max) {
        Ok(None) => None,
        Ok(Some(data)) => Some((data, false)),
        Err(e) => {
            if matches!(
                e,
                SnapshotInterrupted::Walk(WalkInterrupted::Compacted { .. })
            ) {
                tracing::info!(error = %e, "snapshot encoded again, in one go");
            } else {
                tracing::warn!(error = %e, "snapshot encoded again, in one go");
            }
            Some((kv.snapshot(), true))
        }
    }
}

fn log_taken(index: Index, data: &Bytes, slices: u64, started: Instant) {
    tracing::info!(
        index,
        bytes = data.len(),
        slices,
        encode_ms = started.elapsed().as_millis() as u64,
        "state machine snapshot taken"
    );
}

#[cfg(test)]
mod tests {
    use super::snapshot_due_at;

    #[test]
    fn a_single_member_snapshots_every_so_many_entries() {
        assert_eq!(snapshot_due_at(0, 100, 0, 1), 100);
        assert_eq!(snapshot_due_at(100, 100, 0, 1), 200);
        // After a snapshot off the grid (a defragmentation, an install): the next grid point
        // at least half an interval on.
        assert_eq!(snapshot_due_at(130, 100, 0, 1), 200);
        assert_eq!(snapshot_due_at(160, 100, 0, 1), 300);
        assert_eq!(snapshot_due_at(0, 1, 0, 1), 1);
        assert_eq!(snapshot_due_at(5, 0, 0, 1), 6);
    }

    #[test]
    fn members_snapshot_at_different_indexes_once_per_interval() {
        let every = 90_000;
        for members in 1..=7u64 {
            let mut dues: Vec<Vec<u64>> = Vec::new();
            for rank in 0..members {
                let mut last = 0;
                let mut mine = Vec::new();
                for _ in 0..20 {
                    let due = snapshot_due_at(last, every, rank, members);
                    assert!(due >= last + every / 2 && due < last + every * 3 / 2);
                    mine.push(due);
                    last = due;
                }
                // In step: one interval apart after the first.
                assert!(mine.windows(2).all(|w| w[1] - w[0] == every), "{mine:?}");
                dues.push(mine);
            }
            // Spread evenly: no two members at the same index, `every / members` apart.
            let mut all: Vec<u64> = dues.concat();
            all.sort_unstable();
            let gaps: Vec<u64> = all.windows(2).map(|w| w[1] - w[0]).collect();
            let spread = every / members;
            assert!(
                gaps.iter().all(|g| *g == spread || *g == spread + 1),
                "{members}: {gaps:?}"
            );
        }
    }
}
