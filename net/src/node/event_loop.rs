//! `NodeLoop`: the event loop of one member.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use sextant_core::kv::{AutoCompactionMode, Command, KvLimits, KvStore, RangeRequest, TxnRequest};
use sextant_core::lease::LessorConfig;
use sextant_core::watch::WatchConfig;
use sextant_core::{
    EntryPayload, Index, Message, NodeId, ProposeError, Proposed, Raft, ReadId, ReadIndexError,
    ReadState, Ready, RoleKind, Term,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::client::{
    ClientError, ClientRequest, Header, NodeHandle, ReadOutcome, TxnReadOutcome, WriteOutcome,
};
use super::clock::Clock;
use super::command::{LogCommand, RequestId};
use super::compaction::Compaction;
use super::leases::Leases;
use super::maintenance::Maintenance;
use super::members::{MemberList, Membership};
use super::raft_view::RaftView;
use super::snapshots::Snapshotting;
use super::storage_io::{StorageDone, StorageIo, StorageOp};
use super::turn_timing::SlowTurns;
use super::watches::Watches;

/// Sends Raft messages to peers. Must never block: a transport drops what it cannot queue
/// (Raft tolerates loss).
pub trait PeerSender: Send + 'static {
    fn send(&self, msg: Message);
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub cluster_id: u64,
    /// How long a client request may wait for a leader, replication and apply.
    pub request_timeout: Duration,
    /// Take a state-machine snapshot every this many applied entries, on average: members
    /// take theirs at staggered indexes (`snapshots::snapshot_due_at`).
    pub snapshot_every_entries: u64,
    /// Keys a snapshot's encoding (the member's own, or one a client asked for), or the
    /// sharing of its values with the stored copy, walks per turn of the loop (between them
    /// the loop serves everything else).
    pub snapshot_slice_keys: usize,
    /// How long the loop waits, with nothing else to do, before the next slice (zero: it
    /// only yields to the runtime's other tasks). The simulator spreads snapshots out over
    /// time with it, so that writes and faults land between slices.
    pub snapshot_slice_pause: Duration,
    /// Entries kept in the log behind a snapshot, so slightly slow followers catch up from
    /// the log instead of a snapshot.
    pub catch_up_entries: u64,
    pub client_queue_max: usize,
    pub pending_writes_max: usize,
    /// Random per boot: makes request ids unique across restarts.
    pub request_epoch: u64,
    /// Bounds every client write must pass before it is proposed (etcd's defaults).
    pub limits: KvLimits,
    /// The leader's lease expiry tracker (checkpoint interval, revoke rates).
    pub lessor: LessorConfig,
    /// Watch streams' queue limits, catch-up batches and progress interval.
    pub watch: WatchConfig,
    /// Responses buffered between the loop and one watch stream's reader; the rest wait in
    /// the watch hub's bounded queue.
    pub watch_channel_responses: usize,
    /// etcd's `--auto-compaction-mode` / `--auto-compaction-retention`; off by default.
    pub auto_compaction: Option<AutoCompactionMode>,
}

impl NodeConfig {
    pub fn new(cluster_id: u64, request_epoch: u64) -> NodeConfig {
        NodeConfig {
            cluster_id,
            request_timeout: Duration::from_secs(5),
            snapshot_every_entries: 10_000,
            snapshot_slice_keys: 2048,
            snapshot_slice_pause: Duration::ZERO,
            catch_up_entries: 5_000,
            client_queue_max: 4096,
            pending_writes_max: 64 * 1024,
            request_epoch,
            limits: KvLimits::default(),
            lessor: LessorConfig::default(),
            watch: WatchConfig::default(),
            watch_channel_responses: 64,
            auto_compaction: None,
        }
    }
}

/// Sees the core and the state machine (and its applied index) after every batch of work.
/// The simulator checks cluster-wide invariants with it; production runs without one.
pub type Observer = Box<dyn FnMut(&Raft, &KvStore, Index) + Send>;

/// A point-in-time view of the node, for status endpoints and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub cluster_id: u64,
    pub role: RoleKind,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub commit_index: Index,
    pub applied_index: Index,
    pub last_index: Index,
    pub snapshot_index: Index,
    pub revision: i64,
    pub keys: usize,
    /// Bytes of keys and values in the state machine.
    pub kv_bytes: u64,
    pub is_learner: bool,
    /// The membership in effect at this member.
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    pub storage_failed: Option<String>,
    /// Reads and watches below this revision are compacted away (0: never compacted).
    pub compact_revision: i64,
    pub leases: usize,
    /// Watchers on this member's watch streams.
    pub watchers: usize,
    /// Snapshots received from the leader and installed since this member started.
    pub snapshots_installed: u64,
    /// Value bytes the state machine reads from the latest stored snapshot (e.g. its file,
    /// memory-mapped) instead of holding them on the heap, as of when that snapshot was
    /// stored; 0 until this loop stores one, or when the storage keeps no such copy. (A
    /// restarted member's values shared from the snapshot it restored from are logged.)
    pub shared_value_bytes: u64,
    /// The loop's monotonic clock (ticks × tick interval since it started): what lease
    /// expiry, watch progress and auto-compaction measure time with.
    pub clock_ms: u64,
    /// Client writes proposed (or waiting for a leader) and not yet answered.
    pub proposals_pending: usize,
    /// Client writes that failed for want of a leader, a timeout or a storage failure.
    pub proposals_failed: u64,
    /// Times this member saw a new leader (the first one included), since it started.
    pub leader_changes: u64,
    /// Turns of the loop that took long, since it started.
    pub slow_turns: SlowTurns,
}

struct PendingWrite {
    reply: oneshot::Sender<Result<WriteOutcome, ClientError>>,
    deadline_tick: u64,
}

struct ParkedWrite {
    id: RequestId,
    cmd: Command,
    waiter: PendingWrite,
}

struct PendingRead {
    op: ReadOp,
    deadline_tick: u64,
}

/// What a linearizable read serves once its ReadIndex is applied.
enum ReadOp {
    Range {
        req: RangeRequest,
        reply: oneshot::Sender<Result<ReadOutcome, ClientError>>,
    },
    Txn {
        req: TxnRequest,
        reply: oneshot::Sender<Result<TxnReadOutcome, ClientError>>,
    },
    Members {
        reply: oneshot::Sender<Result<MemberList, ClientError>>,
    },
}

impl ReadOp {
    fn fail(self, err: ClientError) {
        match self {
            ReadOp::Range { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            ReadOp::Txn { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            ReadOp::Members { reply } => {
                let _ = reply.send(Err(err));
            }
        }
    }
}

/// The event loop of one member. Build it with `NodeLoop::new`, then `run` it.
pub struct NodeLoop<P: PeerSender, C: Clock> {
    pub(super) cfg: NodeConfig,
    pub(super) raft: Raft,
    pub(super) kv: KvStore,
    /// Highest index applied to `kv`.
    pub(super) kv_applied: Index,
    /// The term of the entry at `kv_applied`.
    pub(super) applied_term: Term,
    peers: P,
    clock: C,
    pub(super) storage: StorageIo,
    inbound: mpsc::Receiver<Message>,
    requests: mpsc::Receiver<ClientRequest>,
    pub(super) ticks: u64,
    /// Nominal milliseconds per tick: `ticks * tick_ms` is the monotonic time fed to the
    /// lessor, the watch hub and auto-compaction (never the wall clock: the loop also runs
    /// under the simulator).
    tick_ms: u64,
    timeout_ticks: u64,
    request_seq: u64,
    writes: BTreeMap<RequestId, PendingWrite>,
    /// Writes not yet accepted by any leader (none known, or transfer in progress).
    parked_writes: VecDeque<ParkedWrite>,
    reads_new: Vec<PendingRead>,
    reads_confirming: BTreeMap<ReadId, Vec<PendingRead>>,
    reads_applying: BTreeMap<Index, Vec<PendingRead>>,
    reads_retry: Vec<PendingRead>,
    /// A snapshot is with storage, being saved.
    pub(super) snapshot_in_progress: bool,
    pub(super) last_snapshot_index: Index,
    snapshots_installed: u64,
    slow_turns: SlowTurns,
    pub(super) shared_value_bytes: u64,
    pub(super) snapshotting: Snapshotting,
    /// Counters for [`NodeStatus`] (metrics).
    proposals_failed: u64,
    leader_changes: u64,
    pub(super) failed: Option<String>,
    pub(super) leases: Leases,
    pub(super) watches: Watches,
    pub(super) compaction: Compaction,
    pub(super) membership: Membership,
    pub(super) maintenance: Maintenance,
    /// (role, term, leader) last logged, to log changes.
    logged_role: (RoleKind, u64, Option<NodeId>),
    /// Term and leader as last published to handles.
    view: RaftView,
    observer: Option<Observer>,
}

/// Waits `pause` before the next snapshot slice; zero only lets the runtime's other tasks run.
async fn slice_pause(pause: Duration) {
    if pause.is_zero() {
        tokio::task::yield_now().await
    } else {
        tokio::time::sleep(pause).await
    }
}

/// What woke the loop for a turn.
enum Woke {
    Storage(Option<StorageDone>),
    Message(Message),
    Request(ClientRequest),
    Tick,
    /// Watch catch-up or delivery has more to do.
    Watches,
    /// A snapshot walk has slices left.
    Snapshot,
}

impl Woke {
    fn name(&self) -> &'static str {
        match self {
            Woke::Storage(_) => "storage",
            Woke::Message(_) => "peer message",
            Woke::Request(_) => "client request",
            Woke::Tick => "tick",
            Woke::Watches => "watches",
            Woke::Snapshot => "snapshot slice",
        }
    }
}

/// How many queued inputs of one kind the loop takes before looking at the others.
const DRAIN_MAX: usize = 256;

impl<P: PeerSender, C: Clock> NodeLoop<P, C> {
    /// A loop for `raft`, with `kv` holding the state machine as of `kv_applied` (the
    /// snapshot index on start). Returns the loop and a handle for clients.
    #[allow(clippy::too_many_arguments)]
    ///
    /// Panics if `cfg.watch` is invalid (a zero limit).
    pub fn new(
        cfg: NodeConfig,
        raft: Raft,
        mut kv: KvStore,
        kv_applied: Index,
        peers: P,
        clock: C,
        storage: StorageIo,
        inbound: mpsc::Receiver<Message>,
    ) -> (NodeLoop<P, C>, NodeHandle) {
        let (tx, requests) = mpsc::channel(cfg.client_queue_max);
        let tick = clock.tick_interval().as_millis().max(1);
        let timeout_ticks = (cfg.request_timeout.as_millis() / tick).max(1) as u64;
        if let Err(e) = cfg.watch.validate() {
            panic!("invalid NodeConfig::watch: {e}");
        }
        kv.set_limits(cfg.limits.clone());
        let applied_term = raft.term_at(kv_applied).unwrap_or(0);
        // etcd extends leases by the election timeout on promotion.
        let election = clock.tick_interval() * raft.config().election_ticks_min;
        let leases = Leases::new(cfg.lessor.clone(), election);
        let watches = Watches::new(
            cfg.watch.clone(),
            cfg.watch_channel_responses,
            kv.revision(),
        );
        let compaction = Compaction::new(cfg.auto_compaction, 0);
        let view = RaftView::default();
        view.publish(raft.term(), raft.leader());
        let (membership, membership_rx) = Membership::new();
        let handle = NodeHandle {
            tx,
            member_id: raft.id(),
            cluster_id: cfg.cluster_id,
            timeout: cfg.request_timeout,
            view: view.clone(),
            membership: membership_rx,
        };
        let last_snapshot_index = raft.latest_snapshot().map_or(0, |s| s.meta.index);
        let node = NodeLoop {
            cfg,
            raft,
            kv,
            kv_applied,
            applied_term,
            peers,
            clock,
            storage,
            inbound,
            requests,
            ticks: 0,
            tick_ms: tick as u64,
            timeout_ticks,
            request_seq: 0,
            writes: BTreeMap::new(),
            parked_writes: VecDeque::new(),
            reads_new: Vec::new(),
            reads_confirming: BTreeMap::new(),
            reads_applying: BTreeMap::new(),
            reads_retry: Vec::new(),
            snapshot_in_progress: false,
            last_snapshot_index,
            snapshots_installed: 0,
            slow_turns: SlowTurns::default(),
            shared_value_bytes: 0,
            snapshotting: Snapshotting::default(),
            proposals_failed: 0,
            leader_changes: 0,
            failed: None,
            leases,
            watches,
            compaction,
            membership,
            maintenance: Maintenance::default(),
            logged_role: (RoleKind::Follower, 0, None),
            view,
            observer: None,
        };
        (node, handle)
    }

    /// Installs an observer called after every batch of work (see [`Observer`]).
    pub fn set_observer(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    /// Runs until `shutdown` completes or every handle and peer input is gone.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // A sole voter need not wait out an election timeout to lead.
        if self.raft.conf_state().is_singleton(self.raft.id()) {
            let _ = self.raft.campaign();
        }
        self.drive();
        loop {
            let woke = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                done = self.storage.done.recv() => Woke::Storage(done),
                Some(m) = self.inbound.recv() => Woke::Message(m),
                Some(req) = self.requests.recv() => Woke::Request(req),
                _ = self.clock.tick() => Woke::Tick,
                // Lowest priority: more watch catch-up or delivery is ready. Yield once
                // first, so the tasks reading watch streams (and everything else on this
                // runtime thread) run between batches.
                _ = tokio::task::yield_now(), if self.watches.busy() => Woke::Watches,
                // Lowest too: the next slice of a snapshot's encoding or value sharing.
                _ = slice_pause(self.cfg.snapshot_slice_pause), if self.snapshotting.busy() => {
                    Woke::Snapshot
                }
            };
            let started = Instant::now();
            let woke_by = woke.name();
            let missed = self.clock.missed_ticks(started);
            if missed > 0 && self.failed.is_none() {
                self.raft.ticks_missed(missed);
            }
            self.handle(woke);
            self.drive();
            self.slow_turns
                .record(started.elapsed(), woke_by, self.kv_applied);
        }
        tracing::info!(id = self.raft.id(), "node loop stopped");
    }

    /// Takes in what woke the loop (and more of the same kind, up to [`DRAIN_MAX`]).
    fn handle(&mut self, woke: Woke) {
        match woke {
            Woke::Storage(Some(done)) => self.on_storage(done),
            Woke::Storage(None) => self.fail("storage worker stopped".into()),
            Woke::Message(m) => self.drain(m, |s| s.inbound.try_recv().ok(), Self::on_message),
            Woke::Request(req) => self.drain(req, |s| s.requests.try_recv().ok(), Self::on_request),
            Woke::Tick => self.on_tick(),
            // `drive` does the work.
            Woke::Watches | Woke::Snapshot => {}
        }
    }

    /// Handles `first`, then up to [`DRAIN_MAX`] more inputs of its kind already queued.
    fn drain<T>(&mut self, first: T, next: fn(&mut Self) -> Option<T>, on: fn(&mut Self, T)) {
        on(self, first);
        for _ in 0..DRAIN_MAX {
            let Some(more) = next(self) else {
                break;
            };
            on(self, more);
        }
    }

    /// Monotonic milliseconds since the loop started, in whole ticks.
    pub(super) fn now_ms(&self) -> u64 {
        self.ticks * self.tick_ms
    }

    pub(super) fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    pub(super) fn header(&self, revision: i64) -> Header {
        Header {
            cluster_id: self.cfg.cluster_id,
            member_id: self.raft.id(),
            revision,
            raft_term: self.raft.term(),
        }
    }

    fn status(&self) -> NodeStatus {
        NodeStatus {
            id: self.raft.id(),
            cluster_id: self.cfg.cluster_id,
            role: self.raft.role(),
            leader: self.raft.leader(),
            term: self.raft.term(),
            commit_index: self.raft.commit_index(),
            applied_index: self.kv_applied,
            last_index: self.raft.last_index(),
            snapshot_index: self.last_snapshot_index,
            revision: self.kv.revision(),
            keys: self.kv.len(),
            kv_bytes: self.kv.size_bytes(),
            is_learner: self.raft.conf_state().is_learner(self.raft.id()),
            voters: self.raft.conf_state().voters.iter().copied().collect(),
            learners: self.raft.conf_state().learners.iter().copied().collect(),
            storage_failed: self.failed.clone(),
            compact_revision: self.kv.compact_revision(),
            leases: self.kv.lease_count(),
            watchers: self.watches.watcher_count(),
            snapshots_installed: self.snapshots_installed,
            slow_turns: self.slow_turns,
            shared_value_bytes: self.shared_value_bytes,
            clock_ms: self.now_ms(),
            proposals_pending: self.writes.len() + self.parked_writes.len(),
            proposals_failed: self.proposals_failed,
            leader_changes: self.leader_changes,
        }
    }

    fn on_message(&mut self, m: Message) {
        if self.failed.is_some() {
            self.alarm_saw_message(&m);
            return;
        }
        let from = m.from;
        if let Err(e) = self.raft.step(m) {
            tracing::warn!(from, error = %e, "refused a peer message");
        }
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        if self.failed.is_none() {
            self.raft.tick();
        } else {
            self.alarm_tick();
        }
        // Writes that found no leader, and reads that were aborted, try again.
        let parked = std::mem::take(&mut self.parked_writes);
        for p in parked {
            self.propose(p.id, p.cmd, p.waiter);
        }
        let retry = std::mem::take(&mut self.reads_retry);
        self.reads_new.extend(retry);
        self.expire_requests();
        self.expire_member_changes();
        self.lease_tick();
        self.compaction_tick();
        self.watches.tick(self.now_ms());
    }

    fn expire_requests(&mut self) {
        let now = self.ticks;
        let expired: Vec<RequestId> = self
            .writes
            .iter()
            .filter(|(_, w)| w.deadline_tick <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let w = self.writes.remove(&id).expect("listed");
            self.proposals_failed += 1;
            let _ = w.reply.send(Err(ClientError::Timeout));
        }
        let (expired, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_new)
            .into_iter()
            .partition(|r| r.deadline_tick <= now);
        self.reads_new = keep;
        let no_leader = self.raft.leader().is_none();
        for r in expired {
            let err = if no_leader {
                ClientError::NoLeader
            } else {
                ClientError::Timeout
            };
            r.op.fail(err);
        }
        for batch in self
            .reads_confirming
            .values_mut()
            .chain(self.reads_applying.values_mut())
        {
            let (expired, keep): (Vec<_>, Vec<_>) = std::mem::take(batch)
                .into_iter()
                .partition(|r| r.deadline_tick <= now);
            *batch = keep;
            for r in expired {
                r.op.fail(ClientError::Timeout);
            }
        }
        self.reads_confirming.retain(|_, b| !b.is_empty());
        self.reads_applying.retain(|_, b| !b.is_empty());
    }

    fn on_request(&mut self, req: ClientRequest) {
        match req {
            ClientRequest::Write {
                mut cmd,
                timeout,
                reply,
            } => {
                if let Some(f) = &self.failed {
                    let _ = reply.send(Err(ClientError::StorageFailed(f.clone())));
                    return;
                }
                if let Err(e) = self.cfg.limits.admit(&mut cmd) {
                    let _ = reply.send(Err(ClientError::Kv(e)));
                    return;
                }
                if self.writes.len() + self.parked_writes.len() >= self.cfg.pending_writes_max {
                    let _ = reply.send(Err(ClientError::Busy));
                    return;
                }
                let id = self.next_request_id();
                let deadline_tick = self.ticks + self.ticks_for(timeout);
                self.propose(
                    id,
                    cmd,
                    PendingWrite {
                        reply,
                        deadline_tick,
                    },
                );
            }
            ClientRequest::Read {
                req,
                serializable,
                timeout,
                reply,
            } => self.on_read(ReadOp::Range { req, reply }, serializable, timeout),
            ClientRequest::ReadTxn {
                req,
                serializable,
                timeout,
                reply,
            } => self.on_read(ReadOp::Txn { req, reply }, serializable, timeout),
            ClientRequest::LeaseKeepAlive { id, timeout, reply } => {
                self.on_lease_keepalive(id, timeout, reply)
            }
            ClientRequest::LeaseTimeToLive {
                id,
                keys,
                timeout,
                reply,
            } => self.on_lease_time_to_live(id, keys, timeout, reply),
            ClientRequest::LeaseLeases { reply } => self.on_lease_leases(reply),
            ClientRequest::MemberChange {
                change,
                timeout,
                reply,
            } => self.on_member_change(change, timeout, reply),
            ClientRequest::MemberList {
                linearizable,
                timeout,
                reply,
            } => self.on_read(ReadOp::Members { reply }, !linearizable, timeout),
            ClientRequest::Watch(req) => {
                let now = self.now_ms();
                self.watches.on_request(req, now);
            }
            ClientRequest::Status { reply } => {
                let _ = reply.send(self.status());
            }
            ClientRequest::Maintenance(req) => self.on_maintenance(req),
            ClientRequest::TransferLeader { to, reply } => {
                let r = self.raft.transfer_leader(to).map_err(|e| match e {
                    sextant_core::TransferError::NotLeader { leader_hint } => {
                        ClientError::NotLeader {
                            leader: leader_hint,
                        }
                    }
                    other => ClientError::Refused(other.to_string()),
                });
                let _ = reply.send(r);
            }
            ClientRequest::ChangeMembership { change, reply } => {
                if let Some(f) = &self.failed {
                    let _ = reply.send(Err(ClientError::StorageFailed(f.clone())));
                    return;
                }
                let r = match self.raft.propose_conf_change(change) {
                    Ok(sextant_core::Proposed::Appended { index, .. }) => Ok(index),
                    Ok(sextant_core::Proposed::Forwarded { leader }) => {
                        Err(ClientError::NotLeader {
                            leader: Some(leader),
                        })
                    }
                    Err(sextant_core::ConfChangeError::NotLeader { leader_hint }) => {
                        Err(ClientError::NotLeader {
                            leader: leader_hint,
                        })
                    }
                    Err(e) => Err(ClientError::Refused(e.to_string())),
                };
                let _ = reply.send(r);
            }
        }
    }

    /// Serves a serializable read at once; queues a linearizable one for the next ReadIndex.
    fn on_read(&mut self, op: ReadOp, serializable: bool, timeout: Duration) {
        if serializable {
            self.serve_read(op);
            return;
        }
        let deadline_tick = self.ticks + self.ticks_for(timeout);
        self.reads_new.push(PendingRead { op, deadline_tick });
    }

    /// A request id for a proposal a failed member forwards itself (see `maintenance`).
    pub(super) fn next_alarm_request_id(&mut self) -> RequestId {
        self.next_request_id()
    }

    pub(super) fn request_epoch(&self) -> u64 {
        self.cfg.request_epoch
    }

    pub(super) fn send_peer(&self, m: Message) {
        self.peers.send(m);
    }

    fn next_request_id(&mut self) -> RequestId {
        self.request_seq += 1;
        RequestId {
            node: self.raft.id(),
            epoch: self.cfg.request_epoch,
            seq: self.request_seq,
        }
    }

    /// Proposes a command of the node's own (lease expiry, checkpoints, auto-compaction) as
    /// the leader only: never forwarded, parked or retried, so it can never be appended by a
    /// later leader that did not decide it. Nobody waits for its answer. Returns whether it
    /// was appended.
    pub(super) fn propose_internal(&mut self, cmd: Command) -> bool {
        if self.raft.role() != RoleKind::Leader || self.failed.is_some() {
            return false;
        }
        let id = self.next_request_id();
        let data = LogCommand { id, cmd }.encode();
        match self.raft.propose(data) {
            Ok(Proposed::Appended { .. }) => true,
            Ok(Proposed::Forwarded { .. }) => {
                tracing::error!("an internal proposal was forwarded by a leader");
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "internal proposal dropped");
                false
            }
        }
    }

    pub(super) fn ticks_for(&self, timeout: Duration) -> u64 {
        let tick = self.tick_ms.max(1);
        (timeout.as_millis() as u64 / tick).clamp(1, self.timeout_ticks.max(1) * 100)
    }

    fn propose(&mut self, id: RequestId, cmd: Command, waiter: PendingWrite) {
        if waiter.deadline_tick <= self.ticks {
            let err = if self.raft.leader().is_none() {
                ClientError::NoLeader
            } else {
                ClientError::Timeout
            };
            self.proposals_failed += 1;
            let _ = waiter.reply.send(Err(err));
            return;
        }
        let data = LogCommand {
            id,
            cmd: cmd.clone(),
        }
        .encode();
        match self.raft.propose(data) {
            Ok(_) => {
                self.writes.insert(id, waiter);
            }
            Err(ProposeError::TooLarge {
                size_bytes,
                max_bytes,
            }) => {
                let _ = waiter.reply.send(Err(ClientError::TooLarge {
                    size_bytes,
                    max_bytes,
                }));
            }
            Err(ProposeError::NotLeader { .. }) | Err(ProposeError::Dropped(_)) => {
                // Never appended anywhere, so retrying cannot apply it twice.
                self.parked_writes
                    .push_back(ParkedWrite { id, cmd, waiter });
            }
        }
    }

    fn serve(&self, req: &RangeRequest) -> Result<ReadOutcome, ClientError> {
        let range = self.kv.range(req)?;
        Ok(ReadOutcome {
            header: self.header(range.revision),
            range,
        })
    }

    fn serve_read(&self, op: ReadOp) {
        match op {
            ReadOp::Range { req, reply } => {
                let _ = reply.send(self.serve(&req));
            }
            ReadOp::Txn { req, reply } => {
                let out = self.kv.txn_read(&req).map(|txn| TxnReadOutcome {
                    header: self.header(txn.revision),
                    txn,
                });
                let _ = reply.send(out.map_err(ClientError::from));
            }
            ReadOp::Members { reply } => {
                let _ = reply.send(Ok(MemberList {
                    header: self.header(self.kv.revision()),
                    members: self.member_list(),
                }));
            }
        }
    }

    /// Starts one ReadIndex for every linearizable read that arrived since the last one.
    fn flush_reads(&mut self) {
        if self.reads_new.is_empty() {
            return;
        }
        match self.raft.read_index() {
            Ok(id) => {
                let batch = std::mem::take(&mut self.reads_new);
                self.reads_confirming.insert(id, batch);
            }
            Err(ReadIndexError::NoLeader) | Err(ReadIndexError::Aborted) => {
                let batch = std::mem::take(&mut self.reads_new);
                self.reads_retry.extend(batch);
            }
            Err(ReadIndexError::TooManyPending) => {
                for r in std::mem::take(&mut self.reads_new) {
                    r.op.fail(ClientError::Busy);
                }
            }
        }
    }

    fn on_read_state(&mut self, rs: ReadState) {
        let Some(batch) = self.reads_confirming.remove(&rs.id) else {
            self.on_lease_read_state(rs);
            return;
        };
        match rs.result {
            Ok(index) => self.reads_applying.entry(index).or_default().extend(batch),
            // Leader changed or the request was lost: start over with a fresh read id.
            Err(_) => self.reads_retry.extend(batch),
        }
    }

    fn serve_applied_reads(&mut self) {
        while let Some(entry) = self.reads_applying.first_entry() {
            if *entry.key() > self.kv_applied {
                break;
            }
            for r in entry.remove() {
                self.serve_read(r.op);
            }
        }
    }

    fn on_storage(&mut self, done: StorageDone) {
        match done {
            StorageDone::Persisted(id) => self.raft.persisted(id),
            StorageDone::SnapshotSaved { index, compact_to } => {
                self.snapshot_in_progress = false;
                self.last_snapshot_index = index;
                if let Err(e) = self.raft.compact(compact_to) {
                    tracing::warn!(compact_to, error = %e, "log compaction skipped");
                }
                self.defrag_snapshot_saved();
            }
            StorageDone::SnapshotStored { index, data } => self.snapshot_stored(index, data),
            StorageDone::Failed(f) => {
                let alarm = f.no_space.then_some(sextant_core::kv::AlarmKind::NoSpace);
                self.fail_with(f.message, alarm)
            }
        }
    }

    /// The disk failed: stop taking part (no ticks, no messages) so the rest of the cluster
    /// carries on without us, and refuse writes. Nothing acknowledged is lost: acknowledgements
    /// only ever follow durable writes.
    pub(super) fn fail(&mut self, why: String) {
        self.fail_with(why, None)
    }

    /// [`Self::fail`], raising `alarm` about this member (see `maintenance`).
    fn fail_with(&mut self, why: String, alarm: Option<sextant_core::kv::AlarmKind>) {
        if self.failed.is_some() {
            return;
        }
        self.maintenance_failed(&why, alarm);
        tracing::error!(error = %why, "storage failed; this node stops accepting writes");
        self.proposals_failed += (self.writes.len() + self.parked_writes.len()) as u64;
        for (_, w) in std::mem::take(&mut self.writes) {
            let _ = w.reply.send(Err(ClientError::StorageFailed(why.clone())));
        }
        for p in std::mem::take(&mut self.parked_writes) {
            let _ = p
                .waiter
                .reply
                .send(Err(ClientError::StorageFailed(why.clone())));
        }
        self.failed = Some(why);
    }

    /// Carries out every pending `Ready`.
    fn drive(&mut self) {
        if self.failed.is_some() {
            // Watches, snapshots and hashes are still served from the applied state.
            self.watches.pump(&self.kv);
            self.snapshot_read_step();
            self.hash_kv_step();
            return;
        }
        self.flush_reads();
        self.flush_lease_reads();
        while self.raft.has_ready() {
            let rd = self.raft.ready();
            self.handle_ready(rd);
            if self.failed.is_some() {
                return;
            }
            self.lease_leadership();
            self.serve_lease_queries();
            self.flush_lease_reads();
        }
        self.serve_applied_reads();
        self.serve_lease_queries();
        self.watches.pump(&self.kv);
        self.snapshot_step();
        self.publish_membership();
        self.log_role_change();
        if let Some(observe) = &mut self.observer {
            observe(&self.raft, &self.kv, self.kv_applied);
        }
    }

    fn log_role_change(&mut self) {
        let now = (self.raft.role(), self.raft.term(), self.raft.leader());
        if now == self.logged_role {
            return;
        }
        let (role, term, leader) = now;
        if leader.is_some() && leader != self.logged_role.2 {
            self.leader_changes += 1;
        }
        self.view.publish(term, leader);
        if role == RoleKind::Leader {
            tracing::info!(term, "became leader");
        } else if leader != self.logged_role.2 || role != self.logged_role.0 {
            let leader = leader.map(|l| format!("{l:x}"));
            tracing::info!(?role, term, leader, "raft role changed");
        }
        self.logged_role = now;
    }

    fn handle_ready(&mut self, rd: Ready) {
        if let Some(id) = rd.persist_id {
            let op = StorageOp::Write {
                id,
                hard_state: rd.hard_state,
                snapshot: rd.snapshot.clone(),
                entries: rd.entries,
                must_sync: rd.must_sync,
            };
            if self.storage.ops.send(op).is_err() {
                self.fail("storage worker stopped".into());
                return;
            }
        }
        for m in rd.messages {
            self.peers.send(m);
        }
        if let Some(snap) = rd.snapshot {
            match KvStore::restore_bytes(&snap.data) {
                Ok(kv) => {
                    tracing::info!(
                        index = snap.meta.index,
                        term = snap.meta.term,
                        "installed a snapshot from the leader"
                    );
                    self.kv = kv;
                    self.snapshotting.state_replaced();
                    self.kv.set_limits(self.cfg.limits.clone());
                    self.kv_applied = snap.meta.index;
                    self.applied_term = snap.meta.term;
                    self.last_snapshot_index = snap.meta.index;
                    self.snapshots_installed += 1;
                    self.watches.restored(self.kv.revision());
                    self.membership.registry_changed();
                }
                Err(e) => {
                    self.fail_with(
                        format!("snapshot from the leader cannot be restored: {e}"),
                        Some(sextant_core::kv::AlarmKind::Corrupt),
                    );
                    return;
                }
            }
        }
        for e in rd.committed {
            self.kv_applied = e.index;
            self.applied_term = e.term;
            match &e.payload {
                EntryPayload::Normal(data) => self.apply(e.index, data),
                EntryPayload::ConfChange(cc) => {
                    self.kv.apply_conf_change(cc);
                    self.member_change_applied(e.index, e.term, cc);
                }
                _ => {}
            }
        }
        for rs in rd.read_states {
            self.on_read_state(rs);
        }
    }

    fn apply(&mut self, index: Index, data: &[u8]) {
        let Some(lc) = LogCommand::decode(data) else {
            tracing::error!(
                index,
                "committed entry is not a command this version understands"
            );
            return;
        };
        let result = self.kv.apply(&lc.cmd);
        if matches!(
            lc.cmd,
            Command::MemberPublish { .. } | Command::MemberUpdate { .. }
        ) {
            self.membership.registry_changed();
        }
        if let Ok(applied) = &result {
            self.watches.applied(applied.revision, &applied.events);
        }
        self.lease_applied(&lc.cmd, &result);
        self.compaction_applied(&lc.cmd, &result);
        let Some(w) = self.writes.remove(&lc.id) else {
            return;
        };
        let out = result.map(|applied| WriteOutcome {
            header: self.header(applied.revision),
            result: applied.result,
        });
        let _ = w.reply.send(out.map_err(ClientError::from));
    }
}
