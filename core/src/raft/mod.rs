//! The Raft state machine of one node (`Raft`): roles, terms, the log, membership, and the
//! queues of output the driver drains. The submodules each own one part of the protocol:
//! `election` (§5.2, pre-vote, check-quorum), `replication` (the leader's side of §5.3, flow
//! control, snapshots out), `follower` (the follower's side of §5.3 and §7), `reads`
//! (ReadIndex and lease reads, thesis §6.4), `membership` (joint consensus, thesis §4.3),
//! `transfer` (leadership transfer, thesis §3.10) and `output` (`Ready` and persistence).

mod election;
mod follower;
mod forwarded;
mod membership;
mod output;
mod reads;
mod replication;
mod transfer;

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::conf::ConfChange;
use crate::config::Config;
use crate::error::{
    CampaignError, CompactError, ConfChangeError, DropReason, ProposeError, ReadIndexError,
    RestoreError, SnapshotError, StepError, TransferError,
};
use crate::log::RaftLog;
use crate::message::{Message, MessageBody, ReadId};
use crate::progress::{Progress, ProgressState};
use crate::ready::ReadState;
use crate::types::{
    ConfState, Entry, EntryPayload, HardState, Index, NodeId, Snapshot, SnapshotMeta, Term,
};

pub(crate) use reads::ReadQueue;

/// Durable state a node restarts from, as read back from storage.
#[derive(Clone, Debug, Default)]
pub struct RestoreState {
    pub hard_state: HardState,
    /// The latest snapshot; `None` for a log that was never compacted.
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// Highest index already applied to a durable state machine (at least the snapshot
    /// index; use the snapshot index when the state machine is rebuilt on start).
    pub applied: Index,
}

/// The role of a node, for callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleKind {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// The result of a successful proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proposed {
    /// Appended to the leader's log at this position.
    Appended { index: Index, term: Term },
    /// Sent to the leader; the outcome is learned when (if) the entry is applied.
    Forwarded { leader: NodeId },
}

/// The timers a node runs; the driver may sleep until the next one is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    Election,
    Heartbeat,
    CheckQuorum,
    TransferTimeout,
    ForwardedReadTimeout,
}

/// The next timer due, in ticks from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    pub timer: Timer,
    pub ticks: u32,
}

/// A read-only view of the leader's replication state for one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressView {
    pub match_index: Index,
    pub next_index: Index,
    pub state: ProgressKind,
    pub inflight_msgs: usize,
    pub recent_active: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressKind {
    Probe,
    Replicate,
    Snapshot { index: Index },
}

pub(crate) struct Votes {
    granted: BTreeMap<NodeId, bool>,
}

pub(crate) struct Transfer {
    to: NodeId,
    elapsed_ticks: u32,
    timeout_now_sent: bool,
}

pub(crate) struct LeaderState {
    progress: BTreeMap<NodeId, Progress>,
    heartbeat_elapsed: u32,
    transfer: Option<Transfer>,
    /// Index of the last membership change proposed; a new one waits until it is applied.
    pending_conf_index: Index,
    /// Bytes of entries this leader appended that are not committed yet.
    uncommitted_bytes: usize,
    /// First index of this leader's term (its no-op entry).
    term_start_index: Index,
    reads: ReadQueue,
    /// Heartbeat rounds: the last one broadcast and the tick each recent one was sent at.
    round: u64,
    round_ticks: VecDeque<(u64, u64)>,
    /// Set once leadership transfer sent `TimeoutNow`: the lease may be broken by the
    /// transferee's forced election, so lease reads stop for the rest of the term.
    lease_revoked: bool,
    session_next: u64,
    /// Work deferred to the next `ready()` so that it is batched.
    append_pending: bool,
    commit_pending: bool,
    read_broadcast_pending: bool,
    /// Forwarded proposals seen this term (at-most-once).
    forwarded: forwarded::ForwardedSeen,
}

pub(crate) enum Role {
    Follower,
    PreCandidate(Votes),
    Candidate(Votes),
    Leader(Box<LeaderState>),
}

/// Follower-side reassembly of a snapshot arriving in chunks.
pub(crate) struct SnapshotRecv {
    from: NodeId,
    term: Term,
    meta: SnapshotMeta,
    total_bytes: u64,
    buf: Vec<u8>,
}

/// Bookkeeping of one `Ready`'s persistent part.
pub(crate) struct PersistTicket {
    seq: u64,
    last_entry: Option<(Index, Term)>,
}

/// One Raft node, sans I/O. See the crate docs for the API families and `Ready` for the
/// driver contract.
pub struct Raft {
    cfg: Config,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    log: RaftLog,
    conf: ConfState,
    /// Configurations in effect from each index on (for snapshot metadata).
    conf_history: Vec<(Index, ConfState)>,
    role: Role,
    election_elapsed: u32,
    election_ticks_randomized: u32,
    /// Logical time: ticks since this node started.
    tick_count: u64,
    /// Restarted from durable state with lease reads on: before the crash this node may have
    /// acknowledged a leader's lease, which it must honour (refuse votes) for an election
    /// timeout after starting, having forgotten that leader (thesis §6.4.1).
    honours_forgotten_lease: bool,
    rng: StdRng,
    read_epoch: u64,
    read_seq: u64,
    /// Numbers this boot's forwarded proposals.
    propose_seq: u64,
    /// Reads this follower forwarded to the leader, with the tick they were sent at.
    forwarded_reads: BTreeMap<ReadId, u64>,
    /// Latest snapshot (sent to followers that fall behind the log).
    snapshot: Option<Snapshot>,
    snapshot_recv: Option<SnapshotRecv>,
    snapshot_install: Option<Snapshot>,
    msgs: Vec<Message>,
    msgs_after_persist: VecDeque<(u64, Message)>,
    read_states: Vec<ReadState>,
    handed_hard_state: HardState,
    persist_seq_next: u64,
    persist_acked: u64,
    persist_tickets: VecDeque<PersistTicket>,
}

impl Raft {
    /// A node restarting from (or starting with) `state`.
    pub fn new(cfg: Config, state: RestoreState) -> Result<Raft, RestoreError> {
        cfg.validate()?;
        let RestoreState {
            hard_state,
            snapshot,
            entries,
            applied,
        } = state;
        let meta = snapshot
            .as_ref()
            .map(|s| s.meta.clone())
            .unwrap_or_default();
        for (k, e) in entries.iter().enumerate() {
            if e.index != meta.index + 1 + k as u64 {
                return Err(RestoreError::Inconsistent(
                    "entries are not contiguous after the snapshot",
                ));
            }
            let prev = if k == 0 {
                meta.term
            } else {
                entries[k - 1].term
            };
            if e.term < prev {
                return Err(RestoreError::Inconsistent("entry terms decrease"));
            }
        }
        let log = RaftLog::new(meta.index, meta.term, entries);
        if hard_state.term < log.last_term() {
            return Err(RestoreError::Inconsistent(
                "hard state term is behind the log",
            ));
        }
        if hard_state.commit > log.last_index() {
            return Err(RestoreError::Inconsistent("commit index beyond the log"));
        }
        if applied < meta.index || applied > hard_state.commit.max(meta.index) {
            return Err(RestoreError::Inconsistent(
                "applied index outside [snapshot, commit]",
            ));
        }
        let mut rng = StdRng::seed_from_u64(cfg.rng_seed);
        let read_epoch = rng.random::<u64>();
        let mut raft = Raft {
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            log,
            conf: meta.conf.clone(),
            conf_history: vec![(meta.index, meta.conf.clone())],
            role: Role::Follower,
            election_elapsed: 0,
            election_ticks_randomized: cfg.election_ticks_min,
            tick_count: 0,
            honours_forgotten_lease: matches!(cfg.read_mode, crate::config::ReadMode::Lease { .. })
                && hard_state.term > 0,
            rng,
            read_epoch,
            read_seq: 0,
            propose_seq: 0,
            forwarded_reads: BTreeMap::new(),
            snapshot: snapshot.filter(|s| s.meta.index > 0),
            snapshot_recv: None,
            snapshot_install: None,
            msgs: Vec::new(),
            msgs_after_persist: VecDeque::new(),
            read_states: Vec::new(),
            handed_hard_state: hard_state,
            persist_seq_next: 1,
            persist_acked: 0,
            persist_tickets: VecDeque::new(),
            cfg,
        };
        raft.log.commit_to(hard_state.commit);
        // A server uses the latest configuration in its log (thesis §4.1).
        raft.sync_conf_from(meta.index + 1);
        raft.log.applied = applied;
        raft.reset_election_timeout();
        raft.check_invariants();
        Ok(raft)
    }

    /// A brand-new member of a brand-new cluster whose initial voters are `voters`. Every
    /// initial member bootstraps with the same voters; the first `Ready` persists the
    /// bootstrap entry.
    pub fn bootstrap(cfg: Config, voters: &[NodeId]) -> Result<Raft, RestoreError> {
        Raft::bootstrap_with_context(cfg, voters, Bytes::new())
    }

    /// [`Raft::bootstrap`] whose bootstrap entry carries `context` as its
    /// [`ConfChange::context`] (e.g. the initial members' addresses, which the state machine
    /// records when it applies the entry). Every initial member must pass the same context.
    pub fn bootstrap_with_context(
        cfg: Config,
        voters: &[NodeId],
        context: Bytes,
    ) -> Result<Raft, RestoreError> {
        if voters.is_empty() || voters.contains(&0) {
            return Err(RestoreError::Inconsistent(
                "bootstrap needs non-zero voter ids",
            ));
        }
        let mut raft = Raft::new(cfg, RestoreState::default())?;
        let cc = ConfChange::add_voters(voters, context);
        raft.log.truncate_and_append(&[Entry {
            term: 1,
            index: 1,
            payload: EntryPayload::ConfChange(cc),
        }]);
        raft.term = 1;
        raft.log.commit_to(1);
        raft.sync_conf_from(1);
        Ok(raft)
    }

    // ----- getters -----

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn role(&self) -> RoleKind {
        match self.role {
            Role::Follower => RoleKind::Follower,
            Role::PreCandidate(_) => RoleKind::PreCandidate,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// The membership in effect: that of the latest membership change in the log, committed
    /// or not (thesis §4.1).
    pub fn conf_state(&self) -> &ConfState {
        &self.conf
    }

    pub fn commit_index(&self) -> Index {
        self.log.committed
    }

    /// Highest index handed out for applying.
    pub fn applied_index(&self) -> Index {
        self.log.applied
    }

    pub fn persisted_index(&self) -> Index {
        self.log.persisted
    }

    pub fn first_index(&self) -> Index {
        self.log.first_index()
    }

    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    pub fn last_term(&self) -> Term {
        self.log.last_term()
    }

    /// The term of entry `i` while it is in the log (or is the compaction point).
    pub fn term_at(&self, i: Index) -> Option<Term> {
        self.log.term(i)
    }

    pub fn entry(&self, i: Index) -> Option<&Entry> {
        self.log.entry(i)
    }

    /// The latest snapshot this node holds.
    pub fn latest_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The epoch stamped on this incarnation's read ids (drawn from the seeded RNG).
    pub fn read_epoch(&self) -> u64 {
        self.read_epoch
    }

    /// Logical time: ticks since this node started.
    pub fn ticks(&self) -> u64 {
        self.tick_count
    }

    /// The leader's replication state for `id`, when this node is leader.
    pub fn progress(&self, id: NodeId) -> Option<ProgressView> {
        let Role::Leader(l) = &self.role else {
            return None;
        };
        l.progress.get(&id).map(|p| ProgressView {
            match_index: p.match_index,
            next_index: p.next_index,
            state: match &p.state {
                ProgressState::Probe => ProgressKind::Probe,
                ProgressState::Replicate => ProgressKind::Replicate,
                ProgressState::Snapshot(s) => ProgressKind::Snapshot { index: s.index },
            },
            inflight_msgs: p.inflights.count(),
            recent_active: p.recent_active,
        })
    }

    /// The peer a leadership transfer is under way to.
    pub fn transferee(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(l) => l.transfer.as_ref().map(|t| t.to),
            _ => None,
        }
    }

    /// Whether this node may campaign: a voter of its latest configuration, or of the
    /// committed one while a change that removes it is uncommitted (thesis §4.2.2: such a
    /// server may still be needed to commit that change; its own vote only counts where it is
    /// a voter).
    pub fn is_promotable(&self) -> bool {
        let me = self.cfg.id;
        self.conf.is_voter(me)
            || self
                .conf_history
                .iter()
                .rev()
                .find(|(i, _)| *i <= self.log.committed)
                .is_some_and(|(_, c)| c.is_voter(me))
    }

    /// The next timer due.
    pub fn next_deadline(&self) -> Deadline {
        let mut best = Deadline {
            timer: Timer::Election,
            ticks: u32::MAX,
        };
        let mut consider = |timer, ticks: u32| {
            if ticks < best.ticks {
                best = Deadline { timer, ticks };
            }
        };
        match &self.role {
            Role::Leader(l) => {
                consider(
                    Timer::Heartbeat,
                    self.cfg
                        .heartbeat_ticks
                        .saturating_sub(l.heartbeat_elapsed)
                        .max(1),
                );
                consider(
                    Timer::CheckQuorum,
                    self.cfg
                        .election_ticks_min
                        .saturating_sub(self.election_elapsed)
                        .max(1),
                );
                if let Some(t) = &l.transfer {
                    consider(
                        Timer::TransferTimeout,
                        self.cfg
                            .election_ticks_min
                            .saturating_sub(t.elapsed_ticks)
                            .max(1),
                    );
                }
            }
            _ => {
                if self.is_promotable() {
                    consider(
                        Timer::Election,
                        self.election_ticks_randomized
                            .saturating_sub(self.election_elapsed)
                            .max(1),
                    );
                }
                if let Some(&sent) = self.forwarded_reads.values().min() {
                    let due = sent + u64::from(self.cfg.election_ticks_max);
                    let left = due.saturating_sub(self.tick_count).max(1);
                    consider(
                        Timer::ForwardedReadTimeout,
                        left.min(u64::from(u32::MAX)) as u32,
                    );
                }
            }
        }
        best
    }

    // ----- inputs -----

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.tick_count += 1;
        if self.is_leader() {
            self.tick_leader();
        } else {
            self.tick_election();
            self.expire_forwarded_reads();
        }
        self.check_invariants();
    }

    /// Time the driver's clock saw pass without delivering it as ticks: `ticks` whole periods
    /// lost to a stall (a paused process, a loop turn longer than a tick). They count as
    /// elapsed time, so a leader's lease (thesis §6.4.1), measured from when its heartbeat
    /// round was sent, never outlasts real time after a pause; they fire no timers, since a
    /// burst of ticks after every stall would start elections. Call it before handling what
    /// arrived during the stall.
    pub fn ticks_missed(&mut self, ticks: u64) {
        self.tick_count = self.tick_count.saturating_add(ticks);
        self.check_invariants();
    }

    /// Handles one message from a peer. Malformed messages are refused with an error and change
    /// nothing.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        self.validate(&m)?;
        self.step_inner(m);
        self.check_invariants();
        Ok(())
    }

    // ----- commands -----

    /// Proposes application data. At a follower the proposal is forwarded to the leader
    /// when `forward_proposals` is on.
    pub fn propose(&mut self, data: Bytes) -> Result<Proposed, ProposeError> {
        let r = self.propose_payload(EntryPayload::Normal(data));
        self.check_invariants();
        r
    }

    /// Proposes a membership change (leader only; one at a time).
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<Proposed, ConfChangeError> {
        let r = self.propose_conf_change_inner(cc);
        self.check_invariants();
        r
    }

    /// Starts a linearizable read; its `ReadState` arrives in a later `Ready`.
    pub fn read_index(&mut self) -> Result<ReadId, ReadIndexError> {
        let r = self.read_index_inner();
        self.check_invariants();
        r
    }

    /// Hands leadership to `to` (thesis §3.10).
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), TransferError> {
        let r = self.transfer_leader_inner(to);
        self.check_invariants();
        r
    }

    /// Starts an election now.
    pub fn campaign(&mut self) -> Result<(), CampaignError> {
        if self.is_leader() {
            return Err(CampaignError::AlreadyLeader);
        }
        if !self.is_promotable() {
            return Err(CampaignError::NotPromotable);
        }
        self.hup(false);
        self.check_invariants();
        Ok(())
    }

    /// The state machine took a snapshot of everything up to `index` (which it has applied).
    /// The core keeps it to send to followers that fall behind the log.
    pub fn snapshot_taken(&mut self, index: Index, data: Bytes) -> Result<(), SnapshotError> {
        if index > self.log.applied {
            return Err(SnapshotError::NotApplied {
                index,
                applied: self.log.applied,
            });
        }
        let current = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
        let Some(term) = self.log.term(index) else {
            return Err(SnapshotError::Stale {
                index,
                current: current.max(self.log.snapshot_index()),
            });
        };
        if index <= current {
            return Err(SnapshotError::Stale { index, current });
        }
        let conf = self.conf_at(index);
        self.snapshot = Some(Snapshot {
            meta: SnapshotMeta { index, term, conf },
            data,
        });
        Ok(())
    }

    /// The driver stored the snapshot at `index` and hands back the same data read from
    /// storage (e.g. a memory-mapped file), so the core keeps that instead of its in-memory
    /// copy: the copy can be as large as the whole state machine. Ignored (returns false)
    /// unless the core's latest snapshot is at `index` and has the same length.
    pub fn snapshot_stored(&mut self, index: Index, data: Bytes) -> bool {
        match &mut self.snapshot {
            Some(s) if s.meta.index == index && s.data.len() == data.len() => {
                debug_assert!(
                    s.data == data,
                    "stored snapshot data differs from the core's"
                );
                s.data = data;
                true
            }
            _ => false,
        }
    }

    /// Drops log entries up to `index`, which a snapshot must cover. The driver compacts its
    /// storage to the same point.
    pub fn compact(&mut self, index: Index) -> Result<(), CompactError> {
        let snap = self
            .snapshot
            .as_ref()
            .map_or(self.log.snapshot_index(), |s| s.meta.index);
        if index > snap {
            return Err(CompactError::BeyondSnapshot {
                index,
                snapshot: snap,
            });
        }
        if index > self.log.persisted {
            return Err(CompactError::NotPersisted {
                index,
                persisted: self.log.persisted,
            });
        }
        self.log.compact(index);
        let keep_from = self
            .conf_history
            .iter()
            .rposition(|(i, _)| *i <= index)
            .unwrap_or(0);
        self.conf_history.drain(..keep_from);
        self.check_invariants();
        Ok(())
    }

    // ----- internals shared by the submodules -----

    fn conf_at(&self, index: Index) -> ConfState {
        self.conf_history
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }

    fn reset_election_timeout(&mut self) {
        self.election_elapsed = 0;
        self.election_ticks_randomized = self
            .rng
            .random_range(self.cfg.election_ticks_min..self.cfg.election_ticks_max);
    }

    /// Queues a message that is safe to send at once.
    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    fn send_with_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term,
            body,
        });
    }

    /// Queues a message that may only leave once everything in memory now is durable.
    fn send_after_persist(&mut self, to: NodeId, body: MessageBody) {
        let m = Message {
            from: self.cfg.id,
            to,
            term: self.term,
            body,
        };
        self.msgs_after_persist
            .push_back((self.persist_seq_next, m));
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if let Role::Leader(_) = self.role {
            self.abort_leader_reads();
        }
        if term != self.term {
            self.term = term;
            self.vote = None;
        }
        if self.leader != leader || self.leader.is_none() {
            self.abort_forwarded_reads();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.reset_election_timeout();
    }

    fn validate(&self, m: &Message) -> Result<(), StepError> {
        let from = m.from;
        let bad = |what| Err(StepError::Malformed { from, what });
        if m.to != self.cfg.id {
            return Err(StepError::WrongRecipient {
                to: m.to,
                me: self.cfg.id,
            });
        }
        if m.from == 0 || m.from == self.cfg.id {
            return Err(StepError::InvalidSender(m.from));
        }
        match &m.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                ..
            } => {
                let mut prev = *prev_term;
                for (k, e) in entries.iter().enumerate() {
                    if e.index != prev_index + 1 + k as u64 {
                        return bad("append entries are not contiguous");
                    }
                    if e.term < prev || e.term > m.term {
                        return bad("append entry terms out of order");
                    }
                    prev = e.term;
                }
                if *prev_term > m.term {
                    return bad("append prev_term beyond the sender's term");
                }
            }
            MessageBody::InstallSnapshot {
                meta,
                total_bytes,
                offset,
                chunk,
                ..
            } => {
                let end = offset.checked_add(chunk.len() as u64);
                if end.is_none_or(|end| end > *total_bytes) {
                    return bad("snapshot chunk beyond the snapshot size");
                }
                if meta.term > m.term || meta.index == 0 {
                    return bad("snapshot position is invalid");
                }
            }
            MessageBody::ReadIndexResp { id, .. } if id.node != self.cfg.id => {
                return bad("read index answer for another node");
            }
            _ => {}
        }
        Ok(())
    }

    fn step_inner(&mut self, m: Message) {
        if m.term > self.term {
            let vote_request = matches!(
                m.body,
                MessageBody::PreVote { .. } | MessageBody::Vote { .. }
            );
            if vote_request {
                let forced = matches!(m.body, MessageBody::Vote { transfer: true, .. });
                // Thesis §9.6 makes this check part of pre-vote itself: a pre-vote is granted
                // only by a node that has not heard from a leader for an election timeout.
                let pre = matches!(m.body, MessageBody::PreVote { .. });
                let min = self.cfg.election_ticks_min;
                let forgotten_lease =
                    self.honours_forgotten_lease && self.tick_count < u64::from(min);
                let in_lease = (self.cfg.check_quorum || pre)
                    && (self.leader.is_some() || forgotten_lease)
                    && self.election_elapsed < min;
                if !forced && in_lease {
                    // §9.6 / check-quorum: we heard from a live leader recently; a
                    // disruptive candidate must not depose it.
                    return;
                }
            }
            match &m.body {
                MessageBody::PreVote { .. } => {}
                MessageBody::PreVoteResp { reject: false } => {}
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => self.become_follower(m.term, Some(m.from)),
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term
            && !(matches!(m.body, MessageBody::AppendResp { .. })
                && crate::mutation::active(crate::mutation::Mutation::AppendRespWithoutTermCheck))
        {
            match &m.body {
                MessageBody::Append { .. } | MessageBody::Heartbeat { .. }
                    if self.cfg.check_quorum || self.cfg.pre_vote =>
                {
                    // A stale leader (e.g. after a partition) learns our term and steps down;
                    // without this, pre-vote could leave it stuck (etcd #8501 class).
                    self.send(
                        m.from,
                        MessageBody::AppendResp {
                            session: 0,
                            reject: false,
                            index: 0,
                            hint_index: 0,
                            hint_term: 0,
                        },
                    );
                }
                MessageBody::PreVote { .. } => {
                    self.send(m.from, MessageBody::PreVoteResp { reject: true });
                }
                _ => {}
            }
            return;
        }
        match m.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.handle_vote_request(m),
            _ => match self.role {
                Role::Leader(_) => self.step_leader(m),
                Role::PreCandidate(_) | Role::Candidate(_) => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
    }

    fn propose_payload(&mut self, payload: EntryPayload) -> Result<Proposed, ProposeError> {
        let size = payload.size_bytes() + crate::types::ENTRY_OVERHEAD_BYTES;
        if size > self.cfg.entry_bytes_max {
            return Err(ProposeError::TooLarge {
                size_bytes: size,
                max_bytes: self.cfg.entry_bytes_max,
            });
        }
        let Role::Leader(l) = &self.role else {
            return match self.leader {
                Some(leader) if self.cfg.forward_proposals => {
                    self.propose_seq += 1;
                    let (epoch, seq) = (self.read_epoch, self.propose_seq);
                    self.send(
                        leader,
                        MessageBody::Propose {
                            epoch,
                            seq,
                            payloads: vec![payload],
                        },
                    );
                    Ok(Proposed::Forwarded { leader })
                }
                hint => Err(ProposeError::NotLeader { leader_hint: hint }),
            };
        };
        if l.transfer.is_some() {
            return Err(ProposeError::Dropped(DropReason::LeaderTransfer));
        }
        if l.uncommitted_bytes > 0 && l.uncommitted_bytes + size > self.cfg.uncommitted_bytes_max {
            return Err(ProposeError::Dropped(DropReason::UncommittedLimit));
        }
        let index = self.append_entry(payload);
        Ok(Proposed::Appended {
            index,
            term: self.term,
        })
    }

    /// Leader only: appends one entry of the current term and schedules replication.
    fn append_entry(&mut self, payload: EntryPayload) -> Index {
        let index = self.log.last_index() + 1;
        let cc = match &payload {
            EntryPayload::ConfChange(cc) => Some(cc.clone()),
            _ => None,
        };
        let e = Entry {
            term: self.term,
            index,
            payload,
        };
        let size = e.size_bytes();
        self.log.append_one(e);
        if let Role::Leader(l) = &mut self.role {
            l.uncommitted_bytes += size;
            l.append_pending = true;
        }
        if let Some(cc) = cc {
            self.on_conf_entry_appended(index, &cc);
        }
        index
    }

    /// Debug checks of node-local invariants after every input.
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        self.log.check();
        debug_assert!(self.log.applied <= self.log.committed);
        debug_assert!(self.term >= self.log.last_term(), "term behind the log");
        match &self.role {
            Role::Leader(l) => {
                debug_assert_eq!(self.leader, Some(self.cfg.id));
                debug_assert_eq!(self.vote, Some(self.cfg.id));
                debug_assert!(
                    l.progress.contains_key(&self.cfg.id) || !self.conf.contains(self.cfg.id)
                );
                for (id, p) in &l.progress {
                    debug_assert!(
                        p.match_index < p.next_index || *id == self.cfg.id,
                        "match >= next for {id}"
                    );
                }
            }
            Role::Candidate(_) => debug_assert_eq!(self.vote, Some(self.cfg.id)),
            _ => debug_assert!(self.leader != Some(self.cfg.id)),
        }
        debug_assert!(self.conf_history.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
