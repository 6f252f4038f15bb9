//! The member's current Raft term and leader, published by the loop for readers outside it
//! that need them on every response (etcd's `Term()` and `Leader()`, read without a round
//! trip through the loop): watch response headers carry the term at send time, and the gRPC
//! layer forwards leader-only requests to the leader it names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sextant_core::NodeId;

/// Shared between the loop (writer) and every [`super::NodeHandle`] (readers).
#[derive(Clone, Debug, Default)]
pub(crate) struct RaftView {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    term: AtomicU64,
    /// 0: no leader known (0 is never a member id).
    leader: AtomicU64,
}

impl RaftView {
    pub fn publish(&self, term: u64, leader: Option<NodeId>) {
        self.inner.term.store(term, Ordering::Release);
        self.inner
            .leader
            .store(leader.unwrap_or(0), Ordering::Release);
    }

    pub fn term(&self) -> u64 {
        self.inner.term.load(Ordering::Acquire)
    }

    pub fn leader(&self) -> Option<NodeId> {
        Some(self.inner.leader.load(Ordering::Acquire)).filter(|&l| l != 0)
    }
}
