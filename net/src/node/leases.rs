//! Leases in the node loop: the leader's [`Lessor`] and the lease requests that need it.
//!
//! The replicated half of leases (grants, revokes, checkpoints and attached keys) is
//! state-machine state: grants and revokes are ordinary writes. Time is the leader's business:
//! only a member that leads, and has applied every entry of earlier terms (its first entry of
//! its own term applied, as etcd promotes on its leader's empty entry), runs a primary
//! `Lessor`. Every tick it proposes `LeaseRevoke` for expired leases and `LeaseCheckpoint` for
//! due checkpoints, as the leader itself (never forwarded: a proposal forwarded by a deposed
//! leader could revoke a lease its successor is keeping alive). Promotion restarts every lease
//! from its checkpointed remaining TTL (or its TTL) plus the election timeout, so leases do
//! not all expire right after an election.
//!
//! # The TTL is a lower bound
//!
//! A keepalive is answered `ttl_secs` only once the lease is sure to live that long after the
//! keepalive was sent, on any leader (assuming clocks that run at about the same rate):
//! 1. `renew` at time `t` on the leader sets its expiry to `t + ttl`; this leader never revokes
//!    earlier.
//! 2. A ReadIndex issued after the renew must confirm leadership: a quorum acknowledged this
//!    leader's term after `t`, so any later leader was elected, and promoted, after `t`.
//! 3. Before answering, the member waits until it has applied everything in its log at renew
//!    time (including the checkpoint clearing a recorded remaining TTL, proposed by the renew)
//!    and checks that the applied lease records no remaining TTL. So a later leader, which
//!    promotes only after applying the committed log, restarts the lease from its full TTL
//!    after `t` — or from a checkpoint this leader computed after `t` from the renewed expiry;
//!    a checkpoint computed before `t` is either applied before the check (and cleared) or
//!    never committed.
//!
//! Hence etcd's contract: the lease is revoked no sooner than `ttl` after the last keepalive
//! that was answered (measured from when it was sent), and no later than about
//! `ttl + election timeout` (plus an election) after it when the leader fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sextant_core::kv::{Applied, Command, KvError, LeaseCheckpoint};
use sextant_core::lease::{Lessor, LessorConfig, RenewError};
use sextant_core::{Index, ReadId, ReadIndexError, ReadState, RoleKind};
use tokio::sync::oneshot;

use super::client::{ClientError, LeaseKeptAlive, LeaseList, LeaseTimeToLive};
use super::clock::Clock;
use super::event_loop::{NodeLoop, PeerSender};

pub(super) struct Leases {
    lessor: Lessor,
    /// Added to every lease's remaining time on promotion (etcd: the election timeout).
    extend_ms: u64,
    /// Promotions so far: a query may be answered only in the stint it renewed in.
    stint: u64,
    awaiting_promotion: Vec<LeaseQuery>,
    /// Queries waiting for the next ReadIndex.
    reads_new: Vec<LeaseQuery>,
    confirming: BTreeMap<ReadId, Vec<LeaseQuery>>,
    /// Confirmed queries, by the applied index they wait for.
    applying: BTreeMap<Index, Vec<LeaseQuery>>,
    /// Leases with a clearing checkpoint (remaining TTL 0) proposed in this stint, not yet
    /// applied.
    clearing: BTreeSet<i64>,
}

pub(super) struct LeaseQuery {
    id: i64,
    kind: QueryKind,
    deadline_tick: u64,
    stint: u64,
    /// Applied index to wait for before answering (the log's end when renewed).
    min_applied: Index,
    /// A keepalive for a lease the leader did not know yet, waiting for the leader to apply
    /// what is committed (the grant may be there) before renewing once more.
    renew_after_apply: bool,
    retried: bool,
}

enum QueryKind {
    KeepAlive {
        ttl_secs: i64,
        reply: oneshot::Sender<Result<LeaseKeptAlive, ClientError>>,
    },
    TimeToLive {
        keys: bool,
        reply: oneshot::Sender<Result<LeaseTimeToLive, ClientError>>,
    },
}

impl LeaseQuery {
    fn fail(self, err: ClientError) {
        match self.kind {
            QueryKind::KeepAlive { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            QueryKind::TimeToLive { reply, .. } => {
                let _ = reply.send(Err(err));
            }
        }
    }
}

impl Leases {
    pub fn new(config: LessorConfig, extend: Duration) -> Leases {
        Leases {
            lessor: Lessor::new(config),
            extend_ms: extend.as_millis() as u64,
            stint: 0,
            awaiting_promotion: Vec::new(),
            reads_new: Vec::new(),
            confirming: BTreeMap::new(),
            applying: BTreeMap::new(),
            clearing: BTreeSet::new(),
        }
    }

    /// Takes out the queries whose deadline has passed, leaving every other where it is.
    fn take_expired(&mut self, now_tick: u64) -> Vec<LeaseQuery> {
        fn split(batch: &mut Vec<LeaseQuery>, now_tick: u64, out: &mut Vec<LeaseQuery>) {
            let (expired, keep) = std::mem::take(batch)
                .into_iter()
                .partition(|q| q.deadline_tick <= now_tick);
            *batch = keep;
            out.extend::<Vec<LeaseQuery>>(expired);
        }
        let mut out = Vec::new();
        split(&mut self.awaiting_promotion, now_tick, &mut out);
        split(&mut self.reads_new, now_tick, &mut out);
        for batch in self
            .confirming
            .values_mut()
            .chain(self.applying.values_mut())
        {
            split(batch, now_tick, &mut out);
        }
        self.confirming.retain(|_, b| !b.is_empty());
        self.applying.retain(|_, b| !b.is_empty());
        out
    }
}

impl<P: PeerSender, C: Clock> NodeLoop<P, C> {
    pub(super) fn on_lease_keepalive(
        &mut self,
        id: i64,
        timeout: Duration,
        reply: oneshot::Sender<Result<LeaseKeptAlive, ClientError>>,
    ) {
        let kind = QueryKind::KeepAlive { ttl_secs: 0, reply };
        self.lease_query(id, kind, timeout);
    }

    pub(super) fn on_lease_time_to_live(
        &mut self,
        id: i64,
        keys: bool,
        timeout: Duration,
        reply: oneshot::Sender<Result<LeaseTimeToLive, ClientError>>,
    ) {
        let kind = QueryKind::TimeToLive { keys, reply };
        self.lease_query(id, kind, timeout);
    }

    /// etcd's `LeaseLeases`: from this member's applied state.
    pub(super) fn on_lease_leases(&self, reply: oneshot::Sender<Result<LeaseList, ClientError>>) {
        let ids = self.kv.leases().iter().map(|l| l.id).collect();
        let _ = reply.send(Ok(LeaseList {
            header: self.header(self.kv.revision()),
            ids,
        }));
    }

    fn lease_query(&mut self, id: i64, kind: QueryKind, timeout: Duration) {
        let q = LeaseQuery {
            id,
            kind,
            deadline_tick: self.ticks + self.ticks_for(timeout),
            stint: 0,
            min_applied: 0,
            renew_after_apply: false,
            retried: false,
        };
        if let Some(f) = &self.failed {
            q.fail(ClientError::StorageFailed(f.clone()));
            return;
        }
        self.start_lease_query(q);
    }

    fn not_leader(&self) -> ClientError {
        ClientError::NotLeader {
            leader: self.raft.leader().filter(|&l| l != self.raft.id()),
        }
    }

    /// Renews (for a keepalive) and queues the query for a ReadIndex; on a leader that has not
    /// promoted its lessor yet, waits for the promotion.
    fn start_lease_query(&mut self, mut q: LeaseQuery) {
        if self.raft.role() != RoleKind::Leader {
            q.fail(self.not_leader());
            return;
        }
        if !self.leases.lessor.is_primary() {
            self.leases.awaiting_promotion.push(q);
            return;
        }
        let now = self.now_ms();
        q.stint = self.leases.stint;
        if let QueryKind::KeepAlive { ttl_secs, .. } = &mut q.kind {
            match self.leases.lessor.renew(q.id, now) {
                Ok(renewed) => {
                    *ttl_secs = renewed.ttl_secs;
                    if let Some(c) = renewed.checkpoint {
                        self.propose_clearing(c.id);
                    }
                }
                Err(RenewError::NotPrimary) => {
                    q.fail(self.not_leader());
                    return;
                }
                // A grant committed but not applied yet: renew once it has applied (etcd
                // waits for the applied index to catch up before renewing).
                Err(RenewError::NotFound)
                    if !q.retried && self.kv_applied < self.raft.commit_index() =>
                {
                    q.retried = true;
                    q.renew_after_apply = true;
                    let at = self.raft.commit_index();
                    self.leases.applying.entry(at).or_default().push(q);
                    return;
                }
                // An expired lease's revoke is on its way (etcd waits for it, then answers
                // the same).
                Err(RenewError::NotFound) | Err(RenewError::Expired) => {
                    q.fail(ClientError::Kv(KvError::LeaseNotFound));
                    return;
                }
            }
        }
        q.min_applied = self.raft.last_index();
        self.leases.reads_new.push(q);
    }

    /// Proposes a checkpoint clearing `id`'s recorded remaining TTL, unless one is on its way.
    /// Returns whether one is on its way now.
    fn propose_clearing(&mut self, id: i64) -> bool {
        if self.leases.clearing.contains(&id) {
            return true;
        }
        let cmd = Command::LeaseCheckpoint {
            checkpoints: vec![LeaseCheckpoint {
                id,
                remaining_ttl_secs: 0,
            }],
        };
        let proposed = self.propose_internal(cmd);
        if proposed {
            self.leases.clearing.insert(id);
        }
        proposed
    }

    /// Starts one ReadIndex for the lease queries that arrived since the last one.
    pub(super) fn flush_lease_reads(&mut self) {
        if self.leases.reads_new.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.leases.reads_new);
        match self.raft.read_index() {
            Ok(id) => {
                self.leases.confirming.insert(id, batch);
            }
            Err(ReadIndexError::TooManyPending) => {
                for q in batch {
                    q.fail(ClientError::Busy);
                }
            }
            Err(ReadIndexError::NoLeader) | Err(ReadIndexError::Aborted) => {
                for q in batch {
                    q.fail(self.not_leader());
                }
            }
        }
    }

    /// A ReadState that is not a range read's. Leadership lost: `NotLeader`.
    pub(super) fn on_lease_read_state(&mut self, rs: ReadState) {
        let Some(batch) = self.leases.confirming.remove(&rs.id) else {
            return;
        };
        match rs.result {
            Ok(index) => {
                for q in batch {
                    let at = index.max(q.min_applied);
                    self.leases.applying.entry(at).or_default().push(q);
                }
            }
            Err(_) => {
                for q in batch {
                    q.fail(self.not_leader());
                }
            }
        }
    }

    /// Answers the confirmed queries whose index has been applied.
    pub(super) fn serve_lease_queries(&mut self) {
        while let Some(entry) = self.leases.applying.first_entry() {
            if *entry.key() > self.kv_applied {
                break;
            }
            for q in entry.remove() {
                self.serve_lease_query(q);
            }
        }
    }

    fn serve_lease_query(&mut self, mut q: LeaseQuery) {
        if q.renew_after_apply {
            q.renew_after_apply = false;
            self.start_lease_query(q);
            return;
        }
        let Some(info) = self.kv.lease(q.id) else {
            q.fail(ClientError::Kv(KvError::LeaseNotFound));
            return;
        };
        let header = self.header(self.kv.revision());
        let leading = self.raft.role() == RoleKind::Leader && self.leases.lessor.is_primary();
        match q.kind {
            QueryKind::KeepAlive { ttl_secs, reply } if info.remaining_ttl_secs == 0 => {
                let _ = reply.send(Ok(LeaseKeptAlive {
                    header,
                    id: q.id,
                    ttl_secs,
                }));
            }
            QueryKind::KeepAlive { .. } => {
                // A remaining TTL is still recorded (the clearing checkpoint was not proposed,
                // or a checkpoint followed it): clear it, in the same stint, before answering.
                if !leading || q.stint != self.leases.stint {
                    q.fail(self.not_leader());
                    return;
                }
                if !self.propose_clearing(q.id) {
                    q.fail(ClientError::Timeout);
                    return;
                }
                let at = self.raft.last_index().max(self.kv_applied + 1);
                self.leases.applying.entry(at).or_default().push(q);
            }
            QueryKind::TimeToLive { keys, reply } => {
                if !leading {
                    let _ = reply.send(Err(self.not_leader()));
                    return;
                }
                let remaining_ms = self
                    .leases
                    .lessor
                    .remaining_ms(q.id, self.now_ms())
                    .unwrap_or(info.ttl_secs as u64 * 1000);
                let _ = reply.send(Ok(LeaseTimeToLive {
                    header,
                    id: q.id,
                    ttl_secs: (remaining_ms / 1000) as i64,
                    granted_ttl_secs: info.ttl_secs,
                    keys: if keys { info.keys } else { Vec::new() },
                }));
            }
        }
    }

    /// Promotes the lessor once this leader has applied an entry of its own term (so every
    /// lease command of earlier terms is applied); demotes it when leadership is lost.
    pub(super) fn lease_leadership(&mut self) {
        let leader = self.raft.role() == RoleKind::Leader;
        let primary = self.leases.lessor.is_primary();
        if leader && !primary && self.applied_term == self.raft.term() {
            let now = self.now_ms();
            let extend = self.leases.extend_ms;
            self.leases.lessor.promote(now, extend, self.kv.leases());
            self.leases.stint += 1;
            self.leases.clearing.clear();
            tracing::debug!(leases = self.kv.lease_count(), "lessor promoted");
            for q in std::mem::take(&mut self.leases.awaiting_promotion) {
                self.start_lease_query(q);
            }
        } else if !leader && primary {
            self.leases.lessor.demote();
            self.leases.clearing.clear();
            tracing::debug!("lessor demoted");
        }
        if !leader && !self.leases.awaiting_promotion.is_empty() {
            for q in std::mem::take(&mut self.leases.awaiting_promotion) {
                q.fail(self.not_leader());
            }
        }
    }

    /// Per tick: propose revokes of expired leases and due checkpoints (as the leader only),
    /// and time out lease queries.
    pub(super) fn lease_tick(&mut self) {
        self.lease_leadership();
        if self.leases.lessor.is_primary() && self.failed.is_none() {
            // One tick earlier than the tick clock says: `now_ms` counts whole ticks, so a
            // renew or grant may have happened up to a tick later than it was stamped. With
            // this margin the TTL holds in real time too (for a clock that does not run fast).
            let now = self.now_ms().saturating_sub(self.tick_ms());
            for id in self.leases.lessor.expired(now) {
                // Not proposed now: reported again after the retry interval.
                self.propose_internal(Command::LeaseRevoke { id });
            }
            let checkpoints = self.leases.lessor.checkpoints_due(now);
            if !checkpoints.is_empty() {
                self.propose_internal(Command::LeaseCheckpoint { checkpoints });
            }
        }
        for q in self.leases.take_expired(self.ticks) {
            q.fail(ClientError::Timeout);
        }
    }

    /// An applied command, as far as leases care.
    pub(super) fn lease_applied(&mut self, cmd: &Command, result: &Result<Applied, KvError>) {
        let now = self.now_ms();
        match result {
            Ok(applied) => self.leases.lessor.observe(cmd, applied, now),
            Err(_) => {
                if let Command::LeaseRevoke { id } = cmd {
                    self.leases.lessor.revoked(*id);
                }
            }
        }
        if let Command::LeaseCheckpoint { checkpoints } = cmd {
            for c in checkpoints {
                if c.remaining_ttl_secs == 0 {
                    self.leases.clearing.remove(&c.id);
                }
            }
        }
    }
}
