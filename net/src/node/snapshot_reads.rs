//! Client reads of the whole state machine (etcd's `Maintenance.Snapshot`, and `Hash`, a
//! checksum of the same encoding that the caller computes): each is answered from an encoding
//! of this member's applied state, walked a slice of keys per turn of the loop like the state
//! machine's own snapshots (`snapshots`), so a client saving a snapshot of a million keys does
//! not stop the member for a second. The answer is the
//! state at the revision the walk started at, which is after the request arrived.
//!
//! Requests that arrive while a walk is in progress wait for the next one (a walk started
//! earlier would answer with a state from before them); all requests waiting when a walk
//! starts share it. A compaction that interrupts a walk, or a snapshot from the leader that
//! replaces the state machine, makes it answer from an encoding in one go of the state then.

use sextant_core::kv::{SnapshotEncoder, SnapshotInterrupted};
use sextant_core::{Index, Term};
use tokio::sync::oneshot;

use super::client::Header;
use super::event_loop::{NodeLoop, PeerSender};
use super::maintenance::StateSnapshot;
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
    /// One slice of the walk in progress, or starts one for the requests waiting.
    pub(super) fn snapshot_read_step(&mut self) {
        let position = (
            self.header(self.kv.revision()),
            self.kv_applied,
            self.applied_term,
        );
        let reads = &mut self.snapshotting.reads;
        if reads.walk.is_none() {
            if reads.waiting.is_empty() {
                return;
            }
            reads.walk = Some(ReadWalk {
                position,
                encoder: SnapshotEncoder::new(&self.kv),
                readers: std::mem::take(&mut reads.waiting),
            });
        }
        let walk = reads.walk.as_mut().expect("set above");
        let data = match walk.encoder.step(&self.kv, self.cfg.snapshot_slice_keys) {
            Ok(None) => return,
            Ok(Some(data)) => data,
            Err(e) => {
                if !matches!(e, SnapshotInterrupted::Compacted { .. }) {
                    tracing::warn!(error = %e, "snapshot for clients encoded again in one go");
                }
                walk.position = position;
                self.kv.snapshot()
            }
        };
        let walk = self.snapshotting.reads.walk.take().expect("in progress");
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
