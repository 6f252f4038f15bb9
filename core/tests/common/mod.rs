//! An in-memory cluster of `Raft` cores for tests: a driver per node that follows the `Ready`
//! contract, a durable-storage model in which writes become durable only when flushed (a crash
//! loses the rest), a toy state machine whose snapshots are real, and a network of in-flight
//! messages with drops and partitions. Deterministic: no clocks, no OS randomness.
#![allow(dead_code)]

pub mod checker;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use sextant_core::{
    Config, Entry, EntryPayload, HardState, Index, Message, NodeId, PersistId, Raft, ReadState,
    Ready, RestoreState, Snapshot,
};

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Durable {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

/// One write handed out by a `Ready`, not yet durable.
#[derive(Clone, Debug)]
pub struct PendingWrite {
    pub id: PersistId,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Durable {
    fn apply(&mut self, w: &PendingWrite) {
        if let Some(s) = &w.snapshot {
            self.entries.clear();
            self.snapshot = Some(s.clone());
        }
        if let Some(first) = w.entries.first() {
            let base = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
            let keep = first.index.saturating_sub(base + 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(w.entries.iter().cloned());
        }
        if let Some(hs) = w.hard_state {
            self.hard_state = hs;
        }
    }

    fn compact(&mut self, snap: Snapshot) {
        let base = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
        let drop = (snap.meta.index - base) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = Some(snap);
    }
}

/// The toy replicated state machine: the sequence of applied application payloads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateMachine {
    pub applied_index: Index,
    pub data: Vec<(Index, Bytes)>,
}

impl StateMachine {
    pub fn encode(&self) -> Bytes {
        let v: Vec<(Index, Vec<u8>)> = self.data.iter().map(|(i, b)| (*i, b.to_vec())).collect();
        Bytes::from(postcard::to_stdvec(&(self.applied_index, v)).expect("encode"))
    }

    pub fn decode(b: &[u8]) -> StateMachine {
        if b.is_empty() {
            return StateMachine::default();
        }
        let (applied_index, v): (Index, Vec<(Index, Vec<u8>)>) =
            postcard::from_bytes(b).expect("decode snapshot");
        StateMachine {
            applied_index,
            data: v.into_iter().map(|(i, d)| (i, Bytes::from(d))).collect(),
        }
    }
}

pub struct Node {
    pub raft: Raft,
    pub durable: Durable,
    pub pending: VecDeque<PendingWrite>,
    pub sm: StateMachine,
    pub read_states: Vec<ReadState>,
    /// Every entry this incarnation applied (index order), for the checker.
    pub applied_log: Vec<Entry>,
    pub boots: u64,
}

/// How the driver treats persistence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersistMode {
    /// Every write is durable before the next step (like a synchronous fsync).
    Sync,
    /// Writes stay pending until `flush` (the async, §10.2.1 style); a crash loses them.
    Async,
}

pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    /// Nodes that are down, with their durable state.
    pub down: BTreeMap<NodeId, Durable>,
    pub network: Vec<Message>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    pub persist_mode: PersistMode,
    pub make_config: Box<dyn Fn(NodeId, u64) -> Config>,
    /// Snapshot and compact a node's log once this many entries are applied past its
    /// snapshot (0 = never).
    pub compact_every: u64,
    pub checker: checker::Checker,
    /// When set, every event is recorded here (for debugging a failing seed).
    pub trace: Option<Vec<String>>,
}

pub fn default_config(id: NodeId, seed: u64) -> Config {
    let mut c = Config::new(id);
    c.rng_seed = seed;
    c
}

impl Cluster {
    /// A new cluster whose members all bootstrap with `ids` as voters.
    pub fn new(ids: &[NodeId], make_config: impl Fn(NodeId, u64) -> Config + 'static) -> Cluster {
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            down: BTreeMap::new(),
            network: Vec::new(),
            cut: BTreeSet::new(),
            persist_mode: PersistMode::Sync,
            make_config: Box::new(make_config),
            compact_every: 0,
            checker: checker::Checker::default(),
            trace: std::env::var("SEXTANT_TRACE").ok().map(|_| Vec::new()),
        };
        for &id in ids {
            let raft = Raft::bootstrap((c.make_config)(id, id * 1000), ids).expect("bootstrap");
            c.nodes.insert(
                id,
                Node::new(raft, Durable::default(), StateMachine::default(), 0),
            );
            // A node makes its bootstrap state durable before it starts serving.
            c.handle_ready(id);
        }
        c
    }

    /// Adds a node with empty state that waits to be contacted by a leader (a joiner).
    pub fn add_empty_node(&mut self, id: NodeId) {
        let raft =
            Raft::new((self.make_config)(id, id * 1000), RestoreState::default()).expect("new");
        self.nodes.insert(
            id,
            Node::new(raft, Durable::default(), StateMachine::default(), 0),
        );
    }

    pub fn raft(&self, id: NodeId) -> &Raft {
        &self.nodes[&id].raft
    }

    pub fn raft_mut(&mut self, id: NodeId) -> &mut Raft {
        &mut self.nodes.get_mut(&id).expect("node is up").raft
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }

    /// Drains one `Ready` from `id` and carries it out. Returns it for inspection.
    pub fn handle_ready(&mut self, id: NodeId) -> Option<Ready> {
        let mode = self.persist_mode;
        let compact_every = self.compact_every;
        let node = self.nodes.get_mut(&id)?;
        if !node.raft.has_ready() {
            return None;
        }
        let rd = node.raft.ready();
        if let Some(t) = &mut self.trace {
            t.push(format!(
                "ready {id}: role={:?} term={} commit={} last={} hs={:?} ents={:?} snap={:?} committed={:?} msgs={:?}",
                node.raft.role(),
                node.raft.term(),
                node.raft.commit_index(),
                node.raft.last_index(),
                rd.hard_state,
                rd.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
                rd.snapshot.as_ref().map(|s| (s.meta.index, s.meta.term)),
                rd.committed.iter().map(|e| e.index).collect::<Vec<_>>(),
                rd.messages.iter().map(|m| format!("{}->{} t{} {:?}", m.from, m.to, m.term, m.body)).collect::<Vec<_>>(),
            ));
        }
        if let Some(pid) = rd.persist_id {
            node.pending.push_back(PendingWrite {
                id: pid,
                hard_state: rd.hard_state,
                snapshot: rd.snapshot.clone(),
                entries: rd.entries.clone(),
            });
        }
        self.network.extend(rd.messages.iter().cloned());
        if let Some(s) = &rd.snapshot {
            node.sm = StateMachine::decode(&s.data);
            node.sm.applied_index = s.meta.index;
        }
        for e in &rd.committed {
            node.apply(e);
        }
        node.read_states.extend(rd.read_states.iter().copied());
        if mode == PersistMode::Sync {
            node.flush_all();
        }
        if compact_every > 0 {
            node.maybe_compact(compact_every);
        }
        Some(rd)
    }

    /// Makes the oldest `n` pending writes of `id` durable.
    pub fn flush(&mut self, id: NodeId, n: usize) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.flush(n);
        }
    }

    /// Crashes `id`: pending writes and in-memory state are lost.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(t) = &mut self.trace {
            t.push(format!("crash {id}"));
        }
        if let Some(node) = self.nodes.remove(&id) {
            self.down.insert(id, node.durable);
            self.network.retain(|m| m.to != id && m.from != id);
        }
    }

    /// Restarts a crashed node from its durable state.
    pub fn restart(&mut self, id: NodeId, boots: u64) {
        let Some(durable) = self.down.remove(&id) else {
            return;
        };
        let snap_index = durable.snapshot.as_ref().map_or(0, |s| s.meta.index);
        let sm = durable
            .snapshot
            .as_ref()
            .map(|s| {
                let mut sm = StateMachine::decode(&s.data);
                sm.applied_index = s.meta.index;
                sm
            })
            .unwrap_or_default();
        let state = RestoreState {
            hard_state: durable.hard_state,
            snapshot: durable.snapshot.clone(),
            entries: durable.entries.clone(),
            applied: snap_index,
        };
        let cfg = (self.make_config)(id, id * 1000 + boots);
        let raft = Raft::new(cfg, state).expect("restart from durable state");
        self.nodes.insert(id, Node::new(raft, durable, sm, boots));
    }

    fn link_ok(&self, m: &Message) -> bool {
        self.nodes.contains_key(&m.to) && !self.cut.contains(&(m.from, m.to))
    }

    /// Delivers the in-flight message at `k`. Returns false if it was dropped.
    pub fn deliver_at(&mut self, k: usize) -> bool {
        let m = self.network.remove(k);
        self.deliver(m)
    }

    /// Steps `m` into its recipient unless the link is cut or the recipient is down.
    fn deliver(&mut self, m: Message) -> bool {
        if !self.link_ok(&m) {
            return false;
        }
        if let Some(t) = &mut self.trace {
            t.push(format!(
                "deliver {}->{} t{} {:?}",
                m.from, m.to, m.term, m.body
            ));
        }
        let to = m.to;
        self.nodes
            .get_mut(&to)
            .expect("checked")
            .raft
            .step(m)
            .expect("well-formed message");
        true
    }

    /// Cuts `id` off from every other node in both directions.
    pub fn isolate(&mut self, id: NodeId, all: &[NodeId]) {
        for &o in all {
            if o != id {
                self.cut.insert((id, o));
                self.cut.insert((o, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Processes readies and delivers messages until nothing is left to do.
    pub fn stabilize(&mut self) {
        for _ in 0..10_000 {
            let mut progressed = false;
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                while self.handle_ready(id).is_some() {
                    progressed = true;
                }
            }
            if !self.network.is_empty() {
                progressed = true;
                let msgs = std::mem::take(&mut self.network);
                for m in msgs {
                    self.deliver(m);
                }
            }
            self.check();
            if !progressed {
                return;
            }
        }
        panic!("cluster did not stabilize");
    }

    /// Ticks every live node once.
    pub fn tick_all(&mut self) {
        for node in self.nodes.values_mut() {
            node.raft.tick();
        }
    }

    /// Ticks and stabilizes until some node is leader (bounded).
    pub fn elect(&mut self) -> NodeId {
        for _ in 0..1000 {
            if let Some(l) = self.leader() {
                return l;
            }
            self.tick_all();
            self.stabilize();
        }
        panic!("no leader elected");
    }

    /// The leader of the highest term among live nodes, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.raft.is_leader())
            .max_by_key(|(_, n)| n.raft.term())
            .map(|(id, _)| *id)
    }

    /// Runs the cluster-wide invariant checks.
    pub fn check(&mut self) {
        let mut checker = std::mem::take(&mut self.checker);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| checker.check(self)));
        if let Err(e) = r {
            if let Some(t) = &self.trace {
                let skip = t.len().saturating_sub(400);
                for line in &t[skip..] {
                    eprintln!("{line}");
                }
            }
            std::panic::resume_unwind(e);
        }
        self.checker = checker;
    }
}

impl Node {
    fn new(raft: Raft, durable: Durable, sm: StateMachine, boots: u64) -> Node {
        Node {
            raft,
            durable,
            pending: VecDeque::new(),
            sm,
            read_states: Vec::new(),
            applied_log: Vec::new(),
            boots,
        }
    }

    fn apply(&mut self, e: &Entry) {
        assert!(e.index > self.sm.applied_index, "applied out of order");
        if let EntryPayload::Normal(d) = &e.payload {
            self.sm.data.push((e.index, d.clone()));
        }
        self.sm.applied_index = e.index;
        self.applied_log.push(e.clone());
    }

    pub fn flush(&mut self, n: usize) {
        for _ in 0..n {
            let Some(w) = self.pending.pop_front() else {
                return;
            };
            self.durable.apply(&w);
            self.raft.persisted(w.id);
        }
    }

    pub fn flush_all(&mut self) {
        let n = self.pending.len();
        self.flush(n);
    }

    fn maybe_compact(&mut self, every: u64) {
        let snap_index = self.raft.latest_snapshot().map_or(0, |s| s.meta.index);
        let applied = self.sm.applied_index;
        if applied < snap_index + every || applied > self.raft.persisted_index() {
            return;
        }
        if self.raft.snapshot_taken(applied, self.sm.encode()).is_err() {
            return;
        }
        let snap = self.raft.latest_snapshot().cloned().expect("just taken");
        // The snapshot is durable before the log is compacted.
        self.raft
            .compact(applied)
            .expect("compact within persisted");
        self.durable.compact(snap);
    }
}

/// Helpers for tests that build a cluster node by node (the interaction-test interpreter).
impl Cluster {
    /// Adds a brand-new member that bootstraps with `voters` as the initial configuration, as
    /// `Cluster::new` does for each of its nodes (bootstrap state made durable at once).
    pub fn add_bootstrapped_node(&mut self, id: NodeId, voters: &[NodeId]) {
        let raft = Raft::bootstrap((self.make_config)(id, id * 1000), voters).expect("bootstrap");
        self.nodes.insert(
            id,
            Node::new(raft, Durable::default(), StateMachine::default(), 0),
        );
        self.handle_ready(id);
    }

    /// Adds a node that starts from `durable`, as if it had been down with that storage (e.g. a
    /// member of a cluster created from a snapshot).
    pub fn add_node_from_storage(&mut self, id: NodeId, durable: Durable) {
        self.down.insert(id, durable);
        self.restart(id, 0);
    }

    /// `id`'s state machine takes a snapshot at its applied index, which the core keeps to send
    /// to followers that fall behind. Returns the snapshot's index.
    pub fn take_snapshot(&mut self, id: NodeId) -> Result<Index, sextant_core::SnapshotError> {
        let node = self.nodes.get_mut(&id).expect("node is up");
        let index = node.sm.applied_index;
        node.raft.snapshot_taken(index, node.sm.encode())?;
        Ok(index)
    }

    /// Compacts `id`'s log up to `index`, which its latest snapshot must cover. Storage drops
    /// the same prefix when `index` is the snapshot's index (otherwise it keeps its log, which
    /// is allowed: storage may hold more than the core).
    pub fn compact_log(
        &mut self,
        id: NodeId,
        index: Index,
    ) -> Result<(), sextant_core::CompactError> {
        let node = self.nodes.get_mut(&id).expect("node is up");
        node.raft.compact(index)?;
        if let Some(snap) = node.raft.latest_snapshot() {
            if snap.meta.index == index {
                node.durable.compact(snap.clone());
            }
        }
        Ok(())
    }
}
