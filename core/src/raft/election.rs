//! Elections: randomized timeouts, pre-vote (thesis §9.6), RequestVote with the up-to-date
//! check (§5.2, §5.4.1), becoming leader, and check-quorum (thesis §6.2).

use std::collections::BTreeMap;

use super::{LeaderState, Raft, ReadQueue, Role, Votes};
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::quorum::{joint_vote, VoteResult};
use crate::types::EntryPayload;

impl Raft {
    /// Follower / candidate tick: start an election when the randomized timeout passes.
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.is_promotable() && self.election_elapsed >= self.election_ticks_randomized {
            self.election_elapsed = 0;
            self.hup(false);
        }
    }

    /// Leader tick: heartbeats, check-quorum and the transfer timeout.
    pub(super) fn tick_leader(&mut self) {
        self.election_elapsed += 1;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.heartbeat_elapsed += 1;
        let mut abort_transfer = false;
        if let Some(t) = &mut l.transfer {
            t.elapsed_ticks += 1;
            abort_transfer = t.elapsed_ticks >= self.cfg.election_ticks_min;
        }
        if abort_transfer {
            l.transfer = None;
        }
        if self.election_elapsed >= self.cfg.election_ticks_min {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.quorum_recently_active() {
                // Thesis §6.2: a leader that cannot reach a quorum steps down, so clients
                // are not stuck with it and stale reads cannot be served.
                let term = self.term;
                self.become_follower(term, None);
                return;
            }
            if let Role::Leader(l) = &mut self.role {
                let me = self.cfg.id;
                for (id, p) in l.progress.iter_mut() {
                    if *id != me {
                        p.recent_active = false;
                    }
                }
            }
        }
        if abort_transfer {
            // A removed leader retries handing off until someone takes over.
            self.maybe_hand_off_leadership();
        }
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        if l.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            l.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    fn quorum_recently_active(&self) -> bool {
        let Role::Leader(l) = &self.role else {
            return false;
        };
        let votes: BTreeMap<_, _> = l
            .progress
            .iter()
            .map(|(id, p)| (*id, *id == self.cfg.id || p.recent_active))
            .collect();
        joint_vote(&self.conf, &votes) == VoteResult::Won
    }

    /// Starts an election: a pre-vote round first unless disabled or `transfer` forces it.
    pub(super) fn hup(&mut self, transfer: bool) {
        if self.is_leader() || !self.is_promotable() {
            return;
        }
        if self.cfg.pre_vote && !transfer {
            self.become_pre_candidate();
        } else {
            self.become_candidate(transfer);
        }
    }

    fn voters_except_me(&self) -> Vec<u64> {
        let me = self.cfg.id;
        let mut ids: Vec<u64> = self
            .conf
            .voters
            .union(&self.conf.voters_outgoing)
            .copied()
            .collect();
        ids.retain(|&id| id != me);
        ids
    }

    fn become_pre_candidate(&mut self) {
        if let Role::Leader(_) = self.role {
            self.abort_leader_reads();
        }
        self.abort_forwarded_reads();
        let mut granted = BTreeMap::new();
        granted.insert(self.cfg.id, true);
        self.role = Role::PreCandidate(Votes { granted });
        self.leader = None;
        self.reset_election_timeout();
        if self.tally() == VoteResult::Won {
            self.become_candidate(false);
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let term = self.term + 1;
        for to in self.voters_except_me() {
            self.send_with_term(
                to,
                term,
                MessageBody::PreVote {
                    last_index,
                    last_term,
                },
            );
        }
    }

    fn become_candidate(&mut self, transfer: bool) {
        self.abort_forwarded_reads();
        self.term += 1;
        self.vote = Some(self.cfg.id);
        let mut granted = BTreeMap::new();
        granted.insert(self.cfg.id, true);
        self.role = Role::Candidate(Votes { granted });
        self.leader = None;
        self.reset_election_timeout();
        if self.tally() == VoteResult::Won {
            self.become_leader();
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for to in self.voters_except_me() {
            // The vote for ourselves must be durable before anyone sees the request.
            self.send_after_persist(
                to,
                MessageBody::Vote {
                    last_index,
                    last_term,
                    transfer,
                },
            );
        }
    }

    pub(super) fn become_leader(&mut self) {
        let last = self.log.last_index();
        let me = self.cfg.id;
        let mut progress = BTreeMap::new();
        let mut session_next = 1;
        for id in self.conf.members() {
            let mut p = Progress::new(last + 1, session_next);
            session_next += 1;
            // Votes are not a heartbeat round (thesis §6.2): a peer counts as active for
            // check-quorum only once it answers this leader, so a leader cut off right after
            // its election steps down after one election timeout, not two (as etcd).
            p.recent_active = false;
            if id == me {
                p.match_index = self.log.persisted;
                p.next_index = p.match_index + 1;
                p.become_replicate();
            }
            progress.insert(id, p);
        }
        self.role = Role::Leader(Box::new(LeaderState {
            progress,
            heartbeat_elapsed: 0,
            transfer: None,
            pending_conf_index: last,
            uncommitted_bytes: 0,
            term_start_index: last + 1,
            reads: ReadQueue::default(),
            round: 0,
            round_ticks: Default::default(),
            lease_revoked: false,
            session_next,
            append_pending: true,
            commit_pending: false,
            read_broadcast_pending: false,
            forwarded: Default::default(),
        }));
        self.leader = Some(me);
        self.election_elapsed = 0;
        // §5.4.2 / §8: commit a no-op of the new term so earlier entries commit and reads can
        // be served.
        self.append_entry(EntryPayload::Empty);
        self.leader_state_mut().uncommitted_bytes = 0;
        self.maybe_commit();
    }

    fn tally(&self) -> VoteResult {
        match &self.role {
            Role::PreCandidate(v) | Role::Candidate(v) => joint_vote(&self.conf, &v.granted),
            _ => VoteResult::Pending,
        }
    }

    /// §5.2, §5.4.1, thesis §9.6: answer a (pre-)vote request at or above our term.
    pub(super) fn handle_vote_request(&mut self, m: Message) {
        let (last_index, last_term, pre) = match m.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => (last_index, last_term, true),
            MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => (last_index, last_term, false),
            _ => return,
        };
        let can_vote = self.vote == Some(m.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre && m.term > self.term);
        let grant = can_vote
            && (self.log.is_up_to_date(last_index, last_term)
                || crate::mutation::active(crate::mutation::Mutation::VoteWithoutLogCheck));
        if pre {
            // A granted pre-vote answers in the candidate's future term; a rejection in ours.
            let term = if grant { m.term } else { self.term };
            self.send_with_term(m.from, term, MessageBody::PreVoteResp { reject: !grant });
        } else {
            if grant {
                self.vote = Some(m.from);
                self.election_elapsed = 0;
            }
            self.send_after_persist(m.from, MessageBody::VoteResp { reject: !grant });
        }
    }

    /// Messages at our term while (pre-)candidate.
    pub(super) fn step_candidate(&mut self, m: Message) {
        match &m.body {
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                // Someone won this term (§5.2).
                self.become_follower(self.term, Some(m.from));
                self.step_follower(m);
            }
            MessageBody::PreVoteResp { reject } | MessageBody::VoteResp { reject } => {
                let pre = matches!(m.body, MessageBody::PreVoteResp { .. });
                let granted = !*reject;
                match &mut self.role {
                    Role::PreCandidate(v) if pre => {
                        v.granted.entry(m.from).or_insert(granted);
                    }
                    Role::Candidate(v) if !pre => {
                        v.granted.entry(m.from).or_insert(granted);
                    }
                    _ => return,
                }
                match self.tally() {
                    VoteResult::Won => {
                        if pre {
                            self.become_candidate(false);
                        } else {
                            self.become_leader();
                        }
                    }
                    VoteResult::Lost => {
                        let term = self.term;
                        self.become_follower(term, None);
                    }
                    VoteResult::Pending => {}
                }
            }
            MessageBody::ReadIndex { id } => {
                let id = *id;
                self.send(m.from, MessageBody::ReadIndexResp { id, index: None });
            }
            _ => {}
        }
    }
}
