//! State-machine snapshots the loop takes: every `snapshot_every_entries` applied entries it
//! encodes the state machine, hands the snapshot to the core and to storage, and once storage
//! hands the stored copy back (e.g. the file, memory-mapped) shares the state machine's values
//! with it. Both walks go a slice of keys per turn of the loop ([`SnapshotEncoder`],
//! [`ValueSharing`]), so client requests, peer messages and ticks are served in between:
//! done in one go, a store of a million keys stopped the loop for a second or more, on every
//! member at once (they snapshot at the same index), and a stopped leader also misses its
//! heartbeats.

use bytes::Bytes;
use sextant_core::kv::{SnapshotEncoder, SnapshotInterrupted, ValueSharing};
use sextant_core::Index;
use tokio::time::Instant;

use super::event_loop::{NodeLoop, PeerSender};
use super::snapshot_reads::SnapshotReads;
use super::storage_io::StorageOp;
use super::stored_snapshot::adopt_stored_snapshot;
use super::Clock;

/// The snapshot walks in progress.
#[derive(Debug, Default)]
pub(super) struct Snapshotting {
    encoding: Option<Encoding>,
    sharing: Option<Sharing>,
    /// A compaction interrupted the last encoding: the next one is done in one go, so
    /// frequent compactions cannot hold snapshots off.
    next_in_one_go: bool,
    /// Clients' snapshot and hash requests, answered from encodings of their own.
    pub(super) reads: SnapshotReads,
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
        self.encoding.is_some() || self.sharing.is_some() || self.reads.busy()
    }

    /// The state machine was replaced (a snapshot from the leader): both walks are moot,
    /// and clients' reads start again.
    pub(super) fn state_replaced(&mut self) {
        self.encoding = None;
        self.sharing = None;
        self.reads.state_replaced();
    }
}

impl<P: PeerSender, C: Clock> NodeLoop<P, C> {
    /// Encodes the next slice of a snapshot in progress, or starts one every
    /// `snapshot_every_entries` applied entries (not while the last one is being saved or
    /// its values shared).
    pub(super) fn snapshot_step(&mut self) {
        self.snapshot_read_step();
        self.share_step();
        if self.snapshotting.encoding.is_none() {
            let due = self.kv_applied >= self.last_snapshot_index + self.cfg.snapshot_every_entries
                || (self.maintenance.wants_snapshot()
                    && self.kv_applied > self.last_snapshot_index);
            if self.snapshot_in_progress || self.snapshotting.sharing.is_some() || !due {
                return;
            }
            let index = self.kv_applied;
            let started = Instant::now();
            if std::mem::take(&mut self.snapshotting.next_in_one_go) {
                let data = self.kv.snapshot();
                log_taken(index, &data, 1, started);
                self.snapshot_encoded(index, data);
                return;
            }
            self.snapshotting.encoding = Some(Encoding {
                index,
                encoder: SnapshotEncoder::new(&self.kv),
                slices: 0,
                started,
            });
        }
        let enc = self.snapshotting.encoding.as_mut().expect("set above");
        enc.slices += 1;
        match enc.encoder.step(&self.kv, self.cfg.snapshot_slice_keys) {
            Ok(None) => {}
            Ok(Some(data)) => {
                let enc = self.snapshotting.encoding.take().expect("in progress");
                log_taken(enc.index, &data, enc.slices, enc.started);
                self.snapshot_encoded(enc.index, data);
            }
            Err(e) => {
                let in_one_go = matches!(e, SnapshotInterrupted::Compacted { .. });
                tracing::info!(
                    index = enc.index,
                    error = %e,
                    "state machine snapshot started again"
                );
                self.snapshotting.encoding = None;
                self.snapshotting.next_in_one_go = in_one_go;
            }
        }
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

fn log_taken(index: Index, data: &Bytes, slices: u64, started: Instant) {
    tracing::info!(
        index,
        bytes = data.len(),
        slices,
        encode_ms = started.elapsed().as_millis() as u64,
        "state machine snapshot taken"
    );
}
