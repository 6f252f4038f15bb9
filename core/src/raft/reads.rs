//! Linearizable reads (thesis §6.4): ReadIndex confirmed by a heartbeat round to a quorum,
//! lease reads (thesis §6.4.1) when configured, reads forwarded by followers ("sync, then
//! read"), and the rule that a new leader serves no read before it has committed an entry of
//! its own term.

use std::collections::VecDeque;

use super::{Raft, Role};
use crate::config::ReadMode;
use crate::error::ReadIndexError;
use crate::message::{MessageBody, ReadId};
use crate::quorum::joint_value;
use crate::ready::ReadState;
use crate::types::{Index, NodeId};

struct PendingRead {
    id: ReadId,
    from: NodeId,
    index: Index,
    /// Confirmed once a quorum acknowledged a heartbeat round `>= round`.
    round: u64,
}

/// The leader's queue of reads awaiting confirmation.
#[derive(Default)]
pub(crate) struct ReadQueue {
    /// Reads that arrived before this leader committed an entry of its term.
    waiting: Vec<(ReadId, NodeId)>,
    confirming: VecDeque<PendingRead>,
}

impl ReadQueue {
    fn len(&self) -> usize {
        self.waiting.len() + self.confirming.len()
    }
}

impl Raft {
    fn next_read_id(&mut self) -> ReadId {
        self.read_seq += 1;
        ReadId {
            node: self.cfg.id,
            epoch: self.read_epoch,
            seq: self.read_seq,
        }
    }

    pub(super) fn read_index_inner(&mut self) -> Result<ReadId, ReadIndexError> {
        match &self.role {
            Role::Leader(l) => {
                if l.reads.len() >= self.cfg.pending_reads_max {
                    return Err(ReadIndexError::TooManyPending);
                }
                let id = self.next_read_id();
                self.leader_read(id, self.cfg.id);
                Ok(id)
            }
            Role::Follower => {
                let Some(leader) = self.leader else {
                    return Err(ReadIndexError::NoLeader);
                };
                if self.forwarded_reads.len() >= self.cfg.pending_reads_max {
                    return Err(ReadIndexError::TooManyPending);
                }
                let id = self.next_read_id();
                self.forwarded_reads.insert(id, self.tick_count);
                self.send(leader, MessageBody::ReadIndex { id });
                Ok(id)
            }
            Role::PreCandidate(_) | Role::Candidate(_) => Err(ReadIndexError::NoLeader),
        }
    }

    fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.committed) == Some(self.term)
    }

    /// A read request at the leader, from itself or forwarded by `from`.
    pub(super) fn leader_read(&mut self, id: ReadId, from: NodeId) {
        let committed = self.log.committed;
        let in_term = self.committed_in_current_term();
        let singleton = self.conf.is_singleton(self.cfg.id);
        let lease = self.lease_valid()
            || crate::mutation::active(crate::mutation::Mutation::ReadIndexWithoutQuorum);
        let max = self.cfg.pending_reads_max;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.reads.len() >= max {
            self.answer_read(id, from, Err(ReadIndexError::TooManyPending));
            return;
        }
        if !in_term {
            // Thesis §6.4 step 1: until an entry of this term commits, the leader may not
            // know the latest commit index.
            l.reads.waiting.push((id, from));
        } else if singleton || lease {
            self.answer_read(id, from, Ok(committed));
        } else {
            let round = l.round + 1;
            l.reads.confirming.push_back(PendingRead {
                id,
                from,
                index: committed,
                round,
            });
            l.read_broadcast_pending = true;
        }
    }

    fn answer_read(&mut self, id: ReadId, from: NodeId, result: Result<Index, ReadIndexError>) {
        if from == self.cfg.id {
            self.read_states.push(ReadState { id, result });
        } else {
            self.send(
                from,
                MessageBody::ReadIndexResp {
                    id,
                    index: result.ok(),
                },
            );
        }
    }

    /// Called when the leader's commit index moves: releases reads held for the term's first
    /// commit.
    pub(super) fn on_commit_advanced(&mut self) {
        if let Role::Leader(l) = &mut self.role {
            l.commit_pending = true;
        }
        if !self.committed_in_current_term() {
            return;
        }
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let waiting = std::mem::take(&mut l.reads.waiting);
        for (id, from) in waiting {
            self.leader_read(id, from);
        }
    }

    /// Answers every read whose heartbeat round a quorum has acknowledged.
    pub(super) fn advance_reads(&mut self) {
        let me = self.cfg.id;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let confirmed = joint_value(&self.conf, |id| {
            if id == me {
                l.round
            } else {
                l.progress.get(&id).map_or(0, |p| p.acked_round)
            }
        });
        let mut done = Vec::new();
        while l
            .reads
            .confirming
            .front()
            .is_some_and(|r| r.round <= confirmed)
        {
            done.push(l.reads.confirming.pop_front().expect("checked"));
        }
        for r in done {
            self.answer_read(r.id, r.from, Ok(r.index));
        }
    }

    /// Whether the leader holds a lease: a quorum acknowledged a heartbeat sent less than
    /// `election_ticks_min - drift_ticks_max` ticks ago, and followers that heard from a leader
    /// within `election_ticks_min` grant no votes (check-quorum), so no other leader can exist.
    pub fn lease_valid(&self) -> bool {
        let ReadMode::Lease { drift_ticks_max } = self.cfg.read_mode else {
            return false;
        };
        let Role::Leader(l) = &self.role else {
            return false;
        };
        if l.lease_revoked || l.transfer.is_some() || !self.cfg.check_quorum {
            return false;
        }
        let me = self.cfg.id;
        let now = self.tick_count;
        // Ticks are shifted by one so that "never acknowledged" (0) is below every real tick.
        let since = joint_value(&self.conf, |id| {
            if id == me {
                now + 1
            } else {
                l.progress
                    .get(&id)
                    .and_then(|p| p.acked_round_tick)
                    .map_or(0, |t| t + 1)
            }
        });
        if since == 0 || since == u64::MAX {
            return false;
        }
        let lease_ticks =
            if crate::mutation::active(crate::mutation::Mutation::LeaseWithoutDriftBound) {
                u64::from(self.cfg.election_ticks_max)
            } else {
                u64::from(self.cfg.election_ticks_min - drift_ticks_max)
            };
        now < since - 1 + lease_ticks
    }

    /// The leader is stepping down: every pending read fails so clients retry elsewhere.
    pub(super) fn abort_leader_reads(&mut self) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let waiting = std::mem::take(&mut l.reads.waiting);
        let confirming = std::mem::take(&mut l.reads.confirming);
        for (id, from) in waiting {
            self.answer_read(id, from, Err(ReadIndexError::Aborted));
        }
        for r in confirming {
            self.answer_read(r.id, r.from, Err(ReadIndexError::Aborted));
        }
    }

    /// The leader we forwarded reads to is gone: fail them so clients retry.
    pub(super) fn abort_forwarded_reads(&mut self) {
        let reads = std::mem::take(&mut self.forwarded_reads);
        for id in reads.into_keys() {
            self.read_states.push(ReadState {
                id,
                result: Err(ReadIndexError::Aborted),
            });
        }
    }

    /// Forwarded reads unanswered for `election_ticks_max` ticks were lost; fail them.
    pub(super) fn expire_forwarded_reads(&mut self) {
        let limit = u64::from(self.cfg.election_ticks_max);
        let now = self.tick_count;
        let expired: Vec<ReadId> = self
            .forwarded_reads
            .iter()
            .filter(|(_, &sent)| now >= sent + limit)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.forwarded_reads.remove(&id);
            self.read_states.push(ReadState {
                id,
                result: Err(ReadIndexError::Aborted),
            });
        }
    }

    pub(super) fn handle_read_index_resp(&mut self, id: ReadId, index: Option<Index>) {
        if self.forwarded_reads.remove(&id).is_some() {
            let result = index.ok_or(ReadIndexError::Aborted);
            self.read_states.push(ReadState { id, result });
        }
    }
}
