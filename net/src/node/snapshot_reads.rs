//! Client reads of the whole state machine (etcd's `Maintenance.Snapshot`, and `Hash`, a
//! checksum of the same encoding that the caller computes): each is answered from an encoding
//! of this member's applied state, walked a slice of keys per turn of the loop like the state
//! machine's own snapshots (`snapshots`), so a client saving a snapshot of a million keys does
//! not stop the member for a second. The answer is the state at the revision the walk started
//! at, which is after the request arrived.
//!
//! Requests that arrive while a walk is in progress wait for the next one (a walk started
//! earlier would answer with a state from before them); all requests waiting when a walk
//! starts share it. A compaction that interrupts a walk makes it answer from an encoding in
//! one go of the state then (`snapshots::encode_slice`, as for the member's own snapshots);
//! a snapshot from the leader that replaces the state machine starts the walk again on it.

use sextant_core::kv::SnapshotEncoder;
use sextant_core::{Index, Term};
use tokio::sync::oneshot;

use super::client::Header;
use super::event_loop::{NodeLoop, PeerSender};
use super::maintenance::StateSnapshot;
use super::snapshots::encode_slice;
use super::Clock;

/// Requests waiting for the next walk, at most; more are dropped (their callers see the
/// member as stopped, and may ask again).
const SNAPSHOT_READERS_MAX: usize = 1024;

/// A request answered with the whole encoded state.
pub(super) type SnapshotReader = oneshot::Sender<StateSnapshot>;

/// The walk in progress and the requests waiting for the next.
#[derive(Default)]
pub(super) struct SnapshotReads {
    waiting: Vec<SnapshotReader>,
    walk: Option<ReadWalk>,
}

impl std::fmt::Debug for SnapshotReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReads")
            .field("waiting", &self.waiting.len())
            .field("walk", &self.walk.as_ref().map(|w| w.readers.len()))
            .finish()
    }
}

struct ReadWalk {
    /// Where the state the walk encodes stood when it started: the header, and the index
    /// and term of the last entry applied.
    position: (Header, Index, Term),
    encoder: SnapshotEncoder,
    readers: Vec<SnapshotReader>,
}

impl SnapshotReads {
    /// Whether a walk is in progress or requests wait for one.
    pub(super) fn busy(&self) -> bool {
        self.walk.is_some() || !self.waiting.is_empty()
    }

    pub(super) fn push(&mut self, reader: SnapshotReader) {
        if self.waiting.len() >= SNAPSHOT_READERS_MAX {
            tracing::warn!(
                waiting = self.waiting.len(),
                "too many snapshot and hash requests waiting: one dropped"
            );
            return;
        }
        self.waiting.push(reader);
    }

    /// The state machine was replaced: the walk's requests start again, on the new state.
    pub(super) fn state_replaced(&mut self) {
        if let Some(walk) = self.walk.take() {
            let newer = std::mem::replace(&mut self.waiting, walk.readers);
            self.waiting.extend(newer);
        }
    }
}

impl<P: PeerSender, C: Clock> NodeLoop<P, C> {
    /// Where the applied state stands: what a [`ReadWalk`] started now encodes.
    fn read_position(&self) -> (Header, Index, Term) {
        (
            self.header(self.kv.revision()),
            self.kv_applied,
            self.applied_term,
        )
    }

    /// One slice of the walk in progress, or starts one for the requests waiting.
    pub(super) fn snapshot_read_step(&mut self) {
        if !self.snapshotting.reads.busy() {
            return;
        }
        if self.snapshotting.reads.walk.is_none() {
            let walk = ReadWalk {
                position: self.read_position(),
                encoder: SnapshotEncoder::new(&self.kv),
                readers: std::mem::take(&mut self.snapshotting.reads.waiting),
            };
            self.snapshotting.reads.walk = Some(walk);
        }
        let walk = self.snapshotting.reads.walk.as_mut().expect("set above");
        let keys_max = self.cfg.snapshot_slice_keys;
        let Some((data, of_now)) = encode_slice(&mut walk.encoder, &self.kv, keys_max) else {
            return;
        };
        let mut walk = self.snapshotting.reads.walk.take().expect("in progress");
        if of_now {
            walk.position = self.read_position();
        }
        let (header, applied_index, applied_term) = walk.position;
        for reply in walk.readers {
            let _ = reply.send(StateSnapshot {
                header,
                applied_index,
                applied_term,
                data: data.clone(),
            });
        }
    }
}
