//! Clients' `HashKV` requests (etcd's `Maintenance.HashKV`, the hash of every retained
//! version up to a revision): each is answered from a [`KvHasher`] walk over the applied
//! state, a slice of keys per turn of the loop like the member's snapshots, so that hashing a
//! million keys (~150 ms in one go) does not stop the member.
//!
//! One walk at a time, in arrival order; waiting requests for the same revision share it
//! (a request for revision 0, "the current one", takes the revision its walk starts at). A
//! compaction interrupts a walk: its requests are then answered in one go from the state then
//! (a revision compacted meanwhile gets etcd's "compacted" error, as it would have if the
//! request came later). A snapshot from the leader that replaces the state machine starts
//! the walk's requests again on the new state.

use std::collections::VecDeque;

use sextant_core::kv::{KvHash, KvHasher};
use tokio::sync::oneshot;

use super::client::{ClientError, Header};
use super::event_loop::{NodeLoop, PeerSender};
use super::Clock;

/// Requests waiting for a walk, at most; more are refused at once (a busy error the client
/// may retry).
const HASH_KV_WAITING_MAX: usize = 1024;

/// Where a `HashKV` answer goes.
pub(super) type HashKvReply = oneshot::Sender<Result<(Header, KvHash), ClientError>>;

/// The walk in progress and the requests waiting for theirs.
#[derive(Default)]
pub(super) struct HashKvWalks {
    /// Requested revision (0: the current one) and where the answer goes.
    waiting: VecDeque<(i64, HashKvReply)>,
    walk: Option<HashWalk>,
}

struct HashWalk {
    hasher: KvHasher,
    replies: Vec<HashKvReply>,
}

impl std::fmt::Debug for HashKvWalks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashKvWalks")
            .field("waiting", &self.waiting.len())
            .field("walk", &self.walk.as_ref().map(|w| w.hasher.revision()))
            .finish()
    }
}

impl HashKvWalks {
    /// Whether a walk is in progress or requests wait for one.
    pub(super) fn busy(&self) -> bool {
        self.walk.is_some() || !self.waiting.is_empty()
    }

    pub(super) fn push(&mut self, revision: i64, reply: HashKvReply) {
        if self.waiting.len() >= HASH_KV_WAITING_MAX {
            tracing::warn!(
                waiting = self.waiting.len(),
                "too many HashKV requests waiting: one refused"
            );
            let _ = reply.send(Err(ClientError::Busy));
            return;
        }
        self.waiting.push_back((revision, reply));
    }

    /// The state machine was replaced (a snapshot from the leader): the walk's requests start
    /// again on the new state, first in line. (A new state at or past the walk's revision
    /// would not interrupt the walk by itself: its keys would be mixed with the old ones.)
    pub(super) fn state_replaced(&mut self) {
        if let Some(walk) = self.walk.take() {
            let revision = walk.hasher.revision();
            for reply in walk.replies.into_iter().rev() {
                self.waiting.push_front((revision, reply));
            }
        }
    }
}

impl<P: PeerSender, C: Clock> NodeLoop<P, C> {
    /// One slice of the walk in progress, or starts one for the first request waiting.
    pub(super) fn hash_kv_step(&mut self) {
        if self.snapshotting.hash_kv.walk.is_none() && !self.start_hash_walk() {
            return;
        }
        let walk = self.snapshotting.hash_kv.walk.as_mut().expect("started");
        let revision = walk.hasher.revision();
        let answer = match walk.hasher.step(&self.kv, self.cfg.snapshot_slice_keys) {
            Ok(None) => return,
            Ok(Some(hash)) => Ok(hash),
            Err(e) => {
                tracing::info!(error = %e, "HashKV computed again, in one go");
                self.kv.hash_kv(revision).map_err(ClientError::from)
            }
        };
        let walk = self.snapshotting.hash_kv.walk.take().expect("in progress");
        let header = self.header(self.kv.revision());
        for reply in walk.replies {
            let _ = reply.send(answer.clone().map(|h| (header, h)));
        }
    }

    /// Starts a walk for the first waiting request that names a revision that can be hashed
    /// (the others are answered with their error), joined by every waiting request for the
    /// same revision. False when none waits.
    fn start_hash_walk(&mut self) -> bool {
        let walks = &mut self.snapshotting.hash_kv;
        while let Some((requested, reply)) = walks.waiting.pop_front() {
            let hasher = match KvHasher::new(&self.kv, requested) {
                Ok(h) => h,
                Err(e) => {
                    let _ = reply.send(Err(ClientError::from(e)));
                    continue;
                }
            };
            let revision = hasher.revision();
            let mut replies = vec![reply];
            let mut others = VecDeque::with_capacity(walks.waiting.len());
            for (r, reply) in walks.waiting.drain(..) {
                if KvHasher::revision_for(&self.kv, r) == revision {
                    replies.push(reply);
                } else {
                    others.push_back((r, reply));
                }
            }
            walks.waiting = others;
            walks.walk = Some(HashWalk { hasher, replies });
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sextant_core::kv::{Command, KvStore, PutRequest};

    /// A walk over a state that gets replaced gives its requests back, ahead of the ones
    /// waiting, for the revision the walk was hashing (not "the current one" of the new
    /// state, nor an answer computed over two states).
    #[test]
    fn a_replaced_state_puts_the_walks_requests_first_in_line() {
        let mut kv = KvStore::new();
        for i in 0..3 {
            kv.apply(&Command::Put(PutRequest {
                key: Bytes::from(format!("k{i}")),
                value: Bytes::from_static(b"v"),
                ..Default::default()
            }))
            .unwrap();
        }
        let (first, mut first_rx) = oneshot::channel();
        let (second, mut second_rx) = oneshot::channel();
        let (later, mut later_rx) = oneshot::channel();
        let mut walks = HashKvWalks::default();
        let hasher = KvHasher::new(&kv, 0).unwrap();
        let revision = hasher.revision();
        walks.walk = Some(HashWalk {
            hasher,
            replies: vec![first, second],
        });
        walks.push(0, later);

        walks.state_replaced();
        assert!(walks.walk.is_none());
        let waiting: Vec<(i64, HashKvReply)> = walks.waiting.drain(..).collect();
        assert_eq!(
            waiting.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            [revision, revision, 0]
        );
        // In their order: the walk's two, then the one that waited.
        let mut replies = waiting.into_iter().map(|(_, reply)| reply);
        for rx in [&mut first_rx, &mut second_rx, &mut later_rx] {
            let _ = replies.next().unwrap().send(Err(ClientError::Stopped));
            assert_eq!(rx.try_recv(), Ok(Err(ClientError::Stopped)));
        }
    }
}
