//! The interpreter's world and the machinery every verb shares: a `common::Cluster` plus the
//! per-node configuration the scripts choose, messages held back from the network, read-id
//! names, and the output being written. Verbs (in `verbs`) act through the helpers here:
//! handling one `Ready` and printing it, delivering one message, running to quiescence, and
//! reporting the role, term and leader changes each input causes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use sextant_core::{Config, Message, NodeId, RoleKind, Term};

use crate::common::{Cluster, PersistMode};
use crate::format::{self, ReadNames};

/// Rounds `stabilize` runs before giving up (a livelock is reported, not looped forever).
const STABILIZE_ROUNDS_MAX: usize = 1000;

/// What a state-change line reports.
#[derive(Clone, Copy, PartialEq, Eq)]
struct View {
    role: RoleKind,
    term: Term,
    leader: Option<NodeId>,
}

pub struct Env {
    pub cluster: Cluster,
    /// The configuration each node (re)starts with; `rng_seed` is set per boot.
    pub configs: Rc<RefCell<BTreeMap<NodeId, Config>>>,
    /// How many times each node has restarted.
    pub boots: BTreeMap<NodeId, u64>,
    /// Messages taken out of the network by `hold-msgs` (a delayed packet survives crashes).
    pub held: Vec<Message>,
    pub names: ReadNames,
    out: Vec<String>,
    /// Failed `expect`s; they fail the test.
    pub failures: Vec<String>,
}

impl Env {
    pub fn new() -> Env {
        let configs: Rc<RefCell<BTreeMap<NodeId, Config>>> = Rc::default();
        let lookup = configs.clone();
        let cluster = Cluster::new(&[], move |id, seed| {
            let mut cfg = lookup
                .borrow()
                .get(&id)
                .cloned()
                .unwrap_or_else(|| Config::new(id));
            cfg.rng_seed = seed;
            cfg
        });
        Env {
            cluster,
            configs,
            boots: BTreeMap::new(),
            held: Vec::new(),
            names: ReadNames::default(),
            out: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Appends one output line (indented under its command).
    pub fn line(&mut self, s: impl Into<String>) {
        self.out.push(format!("  {}", s.into()));
    }

    /// Appends a line verbatim (echoed commands and comments).
    pub fn raw(&mut self, s: impl Into<String>) {
        self.out.push(s.into());
    }

    pub fn output(&self) -> String {
        let mut s = self.out.join("\n");
        s.push('\n');
        s
    }

    /// Fails unless `id` is a live node.
    pub fn up(&self, id: NodeId) -> Result<NodeId, String> {
        if self.cluster.is_up(id) {
            Ok(id)
        } else if self.cluster.down.contains_key(&id) {
            Err(format!("node {id} is down"))
        } else {
            Err(format!("no node {id}"))
        }
    }

    /// Every node id, live or down.
    pub fn all_ids(&self) -> BTreeSet<NodeId> {
        self.cluster
            .nodes
            .keys()
            .chain(self.cluster.down.keys())
            .copied()
            .collect()
    }

    pub fn live_ids(&self) -> Vec<NodeId> {
        self.cluster.nodes.keys().copied().collect()
    }

    /// Registers the read-id epoch of `id`'s current incarnation.
    pub fn register_boot(&mut self, id: NodeId) {
        let boot = self.boots.get(&id).copied().unwrap_or(0) as usize;
        let epoch = self.cluster.raft(id).read_epoch();
        self.names.register(id, epoch, boot);
    }

    fn views(&self) -> BTreeMap<NodeId, View> {
        self.cluster
            .nodes
            .iter()
            .map(|(&id, n)| {
                let r = &n.raft;
                (
                    id,
                    View {
                        role: r.role(),
                        term: r.term(),
                        leader: r.leader(),
                    },
                )
            })
            .collect()
    }

    /// Runs `f` and prints a line for every live node whose role, term or leader it changed.
    pub fn observe<T>(&mut self, f: impl FnOnce(&mut Env) -> T) -> T {
        let before = self.views();
        let r = f(self);
        let after = self.views();
        for (id, v) in after {
            if before.get(&id).is_some_and(|b| *b != v) {
                self.line(format!(
                    "{id} becomes {} term={} leader={}",
                    format::role(v.role),
                    v.term,
                    format::opt_id(v.leader)
                ));
            }
        }
        r
    }

    /// Handles one `Ready` of `id` (if it has one) through the harness driver and prints it.
    /// Returns whether there was one.
    pub fn process_ready(&mut self, id: NodeId) -> bool {
        self.observe(|env| {
            let Some(rd) = env.cluster.handle_ready(id) else {
                return false;
            };
            env.line(format!("{id} ready:"));
            for l in format::ready(&rd, &env.names) {
                env.line(format!("  {l}"));
            }
            true
        })
    }

    /// Makes up to `n` of `id`'s pending writes durable (async persistence), printing them.
    pub fn persist(&mut self, id: NodeId, n: usize) -> usize {
        let mut done = Vec::new();
        self.observe(|env| {
            for _ in 0..n {
                let Some(w) = env.cluster.nodes.get(&id).and_then(|nd| nd.pending.front()) else {
                    break;
                };
                done.push(format!("#{}", w.id.get()));
                env.cluster.flush(id, 1);
            }
        });
        if !done.is_empty() {
            self.line(format!("{id} persisted {}", done.join(" ")));
        }
        done.len()
    }

    /// Delivers `m` unless its link is cut or its recipient is down. With `echo` the message is
    /// printed (it was not printed when sent).
    pub fn deliver(&mut self, m: Message, echo: bool) {
        let text = format::message(&m, &self.names);
        if !self.cluster.is_up(m.to) {
            self.line(format!("drop {text} (node {} down)", m.to));
            return;
        }
        if self.cluster.cut.contains(&(m.from, m.to)) {
            self.line(format!("drop {text} (partitioned)"));
            return;
        }
        if echo {
            self.line(format!("deliver {text}"));
        }
        let to = m.to;
        let r = self.observe(|env| env.cluster.raft_mut(to).step(m));
        if let Err(e) = r {
            self.line(format!("{to} refused {text}: {e}"));
        }
    }

    /// Handles readies and delivers messages among `only` (every node when `None`) until
    /// nothing is left to do. Writes handed out are made durable as they are handed out.
    pub fn stabilize(&mut self, only: Option<&BTreeSet<NodeId>>) -> Result<(), String> {
        let included = |id: &NodeId| only.is_none_or(|s| s.contains(id));
        for _ in 0..STABILIZE_ROUNDS_MAX {
            let mut progressed = false;
            for id in self.live_ids().into_iter().filter(included) {
                while self.process_ready(id) {
                    progressed = true;
                    if self.cluster.persist_mode == PersistMode::Async {
                        self.persist(id, usize::MAX);
                    }
                }
            }
            let (now, later): (Vec<Message>, Vec<Message>) =
                std::mem::take(&mut self.cluster.network)
                    .into_iter()
                    .partition(|m| included(&m.to));
            self.cluster.network = later;
            progressed |= !now.is_empty();
            for m in now {
                self.deliver(m, false);
            }
            self.cluster.check();
            if !progressed {
                return Ok(());
            }
        }
        Err(format!(
            "did not stabilize within {STABILIZE_ROUNDS_MAX} rounds"
        ))
    }
}
