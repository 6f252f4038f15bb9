//! Taking a snapshot back from storage: once the storage holds the latest snapshot (e.g. its
//! file, memory-mapped), the core keeps that copy instead of its heap one, and the state
//! machine reads the values the snapshot holds from it too. One step for every way a snapshot
//! reaches storage: taken by the loop, installed from the leader, found on restart.

use bytes::Bytes;
use sextant_core::kv::ValueSharing;
use sextant_core::{Index, Raft};

/// `stored` is the core's latest snapshot, at `index`, as the storage holds it: the core keeps
/// it instead of its own copy. Returns the walk that moves the state machine's values onto it
/// (run it in one go, or a slice at a time between other work); `None` (nothing changed)
/// unless that snapshot is the core's latest (an older one read back is just dropped).
pub fn adopt_stored_snapshot(raft: &mut Raft, index: Index, stored: Bytes) -> Option<ValueSharing> {
    let held = raft.latest_snapshot()?.data.clone();
    if !raft.snapshot_stored(index, stored.clone()) {
        return None;
    }
    Some(ValueSharing::new(held, stored))
}
