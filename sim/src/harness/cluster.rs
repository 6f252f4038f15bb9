//! A cluster of simulated members. Each member is a madsim node running the production node
//! loop (`sextant_net::node::NodeLoop`) with the simulated transport, disk and clock. Its disk,
//! clock knobs and client handle live outside the node, so they survive crashes; madsim re-runs
//! the node's init on restart, which recovers from the disk exactly as a real member recovers
//! from its data dir.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::rand::Rng;
use madsim::runtime::{Handle, NodeHandle as SimNodeHandle};
use sextant_core::kv::{AutoCompactionMode, KvStore};
use sextant_core::{Config, NodeId, Raft, ReadMode};
use sextant_net::node::{adopt_stored_snapshot, NodeConfig, NodeHandle, NodeLoop};

use super::clock::{ClockControl, SkewedClock};
use super::disk::{spawn_storage_task, SharedDisk};
use super::invariants::Invariants;
use super::scenario::ClockMode;
use super::timeline::{MarkKind, Timeline};
use super::transport::{self, member_ip, NetFaults};

/// Settings of a simulated cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub members: u64,
    pub tick: Duration,
    pub election_ticks: u32,
    pub lease_reads: bool,
    /// Clock drift (in ticks per election timeout) the lease tolerates.
    pub lease_drift_ticks: u32,
    pub snapshot_every: u64,
    /// Keys per slice of a snapshot's encoding and value sharing, and the pause between
    /// slices: small slices spread over time, so the workloads' few keys still take many
    /// turns of the loop, with writes, installs, compactions and crashes landing between
    /// slices (without a pause, every slice would run at the same simulated instant).
    pub snapshot_slice_keys: usize,
    pub snapshot_slice_pause: Duration,
    pub fsync_micros: (u64, u64),
    pub request_timeout: Duration,
    /// The longest message delay the nemesis's delay fault may choose.
    pub delay_ms_max: u32,
    pub clock_mode: ClockMode,
    /// etcd's auto-compaction, on every member (only the leader's proposes).
    pub auto_compaction: Option<AutoCompactionMode>,
    /// Adjusts every member's node configuration after the harness has set its own fields
    /// (lessor intervals, auto-compaction, watch limits, …).
    pub tune_node: fn(&mut NodeConfig),
}

impl ClusterSpec {
    /// The largest clock drift (ppm, either way) under which lease reads stay safe: a
    /// leader's `election_ticks_min - drift_ticks_max` ticks must never outlast a follower's
    /// `election_ticks_min` ticks, i.e. (1 + d) / (1 - d) <= r with r = min / (min - drift).
    pub fn lease_safe_drift_ppm(&self) -> i64 {
        let min = f64::from(self.election_ticks);
        let r = min / (min - f64::from(self.lease_drift_ticks));
        ((r - 1.0) / (r + 1.0) * 1e6) as i64
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            members: 3,
            tick: Duration::from_millis(10),
            election_ticks: 10,
            lease_reads: false,
            lease_drift_ticks: 2,
            snapshot_every: 64,
            snapshot_slice_keys: 1,
            snapshot_slice_pause: Duration::from_millis(5),
            fsync_micros: (100, 2_000),
            request_timeout: Duration::from_millis(1_000),
            delay_ms_max: 200,
            clock_mode: ClockMode::Unbounded,
            auto_compaction: None,
            tune_node: |_| {},
        }
    }
}

/// One member as the harness sees it.
pub struct Member {
    pub id: NodeId,
    pub node: SimNodeHandle,
    pub disk: SharedDisk,
    pub clock: Arc<ClockControl>,
    pub up: bool,
    pub paused: bool,
}

pub struct SimCluster {
    pub spec: ClusterSpec,
    pub members: BTreeMap<NodeId, Member>,
    /// The client handle of each member's current incarnation.
    pub handles: Arc<Mutex<BTreeMap<NodeId, NodeHandle>>>,
    pub invariants: Arc<Mutex<Invariants>>,
    pub timeline: Arc<Mutex<Timeline>>,
    /// Members cut off by `isolate` (for the timeline).
    isolated: Mutex<std::collections::BTreeSet<NodeId>>,
    /// Members whose disk was corrupted on purpose.
    pub corrupted: std::collections::BTreeSet<NodeId>,
    pub net: Arc<NetFaults>,
    pub boots: Arc<Mutex<BTreeMap<NodeId, u64>>>,
}

impl SimCluster {
    /// Creates and starts every member (must run inside a madsim runtime).
    pub fn start(spec: ClusterSpec) -> SimCluster {
        let handle = Handle::current();
        let voters: Vec<NodeId> = (1..=spec.members).collect();
        let handles: Arc<Mutex<BTreeMap<NodeId, NodeHandle>>> = Default::default();
        let invariants: Arc<Mutex<Invariants>> = Arc::new(Mutex::new(Invariants::starting_now()));
        let timeline = Arc::new(Mutex::new(Timeline::starting_now()));
        let net: Arc<NetFaults> = Default::default();
        let boots: Arc<Mutex<BTreeMap<NodeId, u64>>> = Default::default();
        let mut members = BTreeMap::new();
        for &id in &voters {
            let disk: SharedDisk = Default::default();
            let clock: Arc<ClockControl> = Default::default();
            let (spec2, voters2, disk2, clock2, handles2, inv2, net2, boots2) = (
                spec.clone(),
                voters.clone(),
                disk.clone(),
                clock.clone(),
                handles.clone(),
                (invariants.clone(), timeline.clone()),
                net.clone(),
                boots.clone(),
            );
            let node = handle
                .create_node()
                .name(format!("member-{id}"))
                .ip(member_ip(id))
                .init(move || {
                    boot(
                        id,
                        spec2.clone(),
                        voters2.clone(),
                        disk2.clone(),
                        clock2.clone(),
                        handles2.clone(),
                        inv2.clone(),
                        net2.clone(),
                        boots2.clone(),
                    )
                })
                .build();
            members.insert(
                id,
                Member {
                    id,
                    node,
                    disk,
                    clock,
                    up: true,
                    paused: false,
                },
            );
        }
        SimCluster {
            spec,
            members,
            handles,
            invariants,
            timeline,
            isolated: Default::default(),
            corrupted: Default::default(),
            net,
            boots,
        }
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    /// Crashes `id`: its tasks die at once and a random part of its unsynced writes is lost.
    pub fn crash(&mut self, id: NodeId) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if !m.up {
            return;
        }
        Handle::current().kill(m.node.id());
        let keep = {
            let d = m.disk.lock().expect("disk");
            madsim::rand::thread_rng().gen_range(0..=d.unsynced_len())
        };
        m.disk.lock().expect("disk").crash(keep);
        self.handles.lock().expect("handles").remove(&id);
        m.up = false;
        m.paused = false;
        self.mark(id, MarkKind::Down);
    }

    /// Notes something done to `id` on the run's timeline.
    pub fn mark(&self, id: NodeId, kind: MarkKind) {
        self.timeline.lock().expect("timeline").mark(id, kind);
    }

    pub fn restart(&mut self, id: NodeId) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if m.up {
            return;
        }
        Handle::current().restart(m.node.id());
        m.up = true;
        self.mark(id, MarkKind::Up);
    }

    pub fn pause(&mut self, id: NodeId) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if !m.up || m.paused {
            return;
        }
        Handle::current().pause(m.node.id());
        m.paused = true;
        self.mark(id, MarkKind::Paused);
    }

    pub fn resume(&mut self, id: NodeId) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if !m.paused {
            return;
        }
        Handle::current().resume(m.node.id());
        m.paused = false;
        self.mark(id, MarkKind::Resumed);
    }

    /// Cuts the directed link `from -> to`.
    pub fn cut(&self, from: NodeId, to: NodeId) {
        let net = madsim::net::NetSim::current();
        net.clog_link(self.members[&from].node.id(), self.members[&to].node.id());
    }

    /// Silent disk corruption: crashes `id`, flips a bit in one of its durable records and
    /// restarts it, which must detect the damage by checksum and refuse to start. At most a
    /// minority ((n - 1) / 2 members) is ever corrupted, so the rest still form a quorum.
    /// Returns whether it did anything.
    pub fn corrupt_disk(&mut self, id: NodeId) -> bool {
        let budget = (self.members.len() - 1) / 2;
        if self.corrupted.contains(&id) || self.corrupted.len() + 1 > budget {
            return false;
        }
        let (pick, bit) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen::<u32>() as usize, rng.gen::<u32>() as usize)
        };
        self.crash(id);
        let done = self.members[&id]
            .disk
            .lock()
            .expect("disk")
            .corrupt(pick, bit);
        self.restart(id);
        if done {
            self.corrupted.insert(id);
        }
        done
    }

    /// Restores the directed link `from -> to`.
    pub fn uncut(&self, from: NodeId, to: NodeId) {
        let net = madsim::net::NetSim::current();
        net.unclog_link(self.members[&from].node.id(), self.members[&to].node.id());
    }

    /// Cuts `id` off from every other member (marked on the timeline until reconnected).
    pub fn isolate(&self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.cut(id, other);
                self.cut(other, id);
            }
        }
        self.isolated.lock().expect("isolated").insert(id);
        self.mark(id, MarkKind::Isolated);
    }

    /// Restores every link of `id`.
    pub fn reconnect(&self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.uncut(id, other);
                self.uncut(other, id);
            }
        }
        if self.isolated.lock().expect("isolated").remove(&id) {
            self.mark(id, MarkKind::Reconnected);
        }
    }

    /// Restores every link (partitions end; loss, duplication and delay stay).
    pub fn heal_network_links(&self) {
        let was = std::mem::take(&mut *self.isolated.lock().expect("isolated"));
        for id in was {
            self.mark(id, MarkKind::Reconnected);
        }
        let net = madsim::net::NetSim::current();
        for a in self.members.values() {
            net.unclog_node(a.node.id());
            for b in self.members.values() {
                if a.id != b.id {
                    net.unclog_link(a.node.id(), b.node.id());
                }
            }
        }
    }

    /// Restores every link and clears loss, duplication and delay.
    pub fn heal_network(&self) {
        self.heal_network_links();
        self.net.clear();
    }

    /// Everything back to normal: network healed, members restarted and resumed, clocks true.
    pub fn heal_all(&mut self) {
        self.heal_network();
        for id in self.ids() {
            self.resume(id);
            self.restart(id);
            let m = &self.members[&id];
            m.clock.set_drift_ppm(0);
            m.clock
                .jump_ticks
                .store(0, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The client handle of a running member.
    pub fn handle(&self, id: NodeId) -> Option<NodeHandle> {
        self.handles.lock().expect("handles").get(&id).cloned()
    }
}

#[allow(clippy::too_many_arguments)]
async fn boot(
    id: NodeId,
    spec: ClusterSpec,
    voters: Vec<NodeId>,
    disk: SharedDisk,
    clock: Arc<ClockControl>,
    handles: Arc<Mutex<BTreeMap<NodeId, NodeHandle>>>,
    (invariants, timeline): (Arc<Mutex<Invariants>>, Arc<Mutex<Timeline>>),
    net: Arc<NetFaults>,
    boots: Arc<Mutex<BTreeMap<NodeId, u64>>>,
) {
    let boot_no = {
        let mut b = boots.lock().expect("boots");
        let n = b.entry(id).or_insert(0);
        *n += 1;
        *n
    };
    let mut cfg = Config::new(id);
    cfg.election_ticks_min = spec.election_ticks;
    cfg.election_ticks_max = spec.election_ticks * 2;
    let mut rng = madsim::rand::thread_rng();
    cfg.rng_seed = rng.gen();
    // Each boot draws its flow-control limits: small appends and windows open the races
    // (entries trickling in one by one) that whole-batch replication hides.
    cfg.inflight_msgs_max = [1, 4, 64][rng.gen_range(0..3)];
    cfg.append_bytes_max = [64, 1024, 1 << 20][rng.gen_range(0..3)];
    if spec.lease_reads {
        cfg.read_mode = ReadMode::Lease {
            drift_ticks_max: spec.lease_drift_ticks,
        };
    }
    let (blank, state) = {
        let d = disk.lock().expect("disk");
        (d.is_blank(), d.recover())
    };
    let state = match state {
        Ok(s) => s,
        Err(e) => {
            // Refusing to start is the right answer to a corrupt disk: the member stays down
            // until an operator replaces it; the rest of the cluster carries on.
            invariants
                .lock()
                .expect("inv")
                .corruptions_detected
                .push(format!("member {id}: {e}; it stays down"));
            timeline.lock().expect("timeline").mark(id, MarkKind::Down);
            return;
        }
    };
    let raft = if blank {
        Raft::bootstrap(cfg, &voters)
    } else {
        Raft::new(cfg, state.clone())
    };
    let mut raft = match raft {
        Ok(r) => r,
        Err(e) => {
            invariants
                .lock()
                .expect("inv")
                .violations
                .push(format!("member {id} cannot restart: {e}"));
            return;
        }
    };
    let (kv, applied) = match &state.snapshot {
        Some(s) if !blank => match KvStore::restore_bytes(&s.data) {
            Ok(mut kv) => {
                // As a real member does: the core and the values use the disk's copy.
                if let Some(stored) = disk.lock().expect("disk").stored_snapshot(&s.meta) {
                    if let Some(walk) = adopt_stored_snapshot(&mut raft, s.meta.index, stored) {
                        walk.run(&mut kv);
                    }
                }
                (kv, s.meta.index)
            }
            Err(e) => {
                invariants
                    .lock()
                    .expect("inv")
                    .violations
                    .push(format!("member {id}: bad snapshot: {e}"));
                return;
            }
        },
        _ => (KvStore::new(), 0),
    };
    let (inbound_tx, inbound_rx) = tokio::sync::mpsc::channel(4096);
    let sender = match transport::start(net, inbound_tx).await {
        Ok(s) => s,
        Err(e) => {
            invariants
                .lock()
                .expect("inv")
                .violations
                .push(format!("member {id}: bind failed: {e}"));
            return;
        }
    };
    let storage = spawn_storage_task(disk, spec.fsync_micros);
    let mut node_cfg = NodeConfig::new(1, (id << 32) | boot_no);
    node_cfg.request_timeout = spec.request_timeout;
    node_cfg.snapshot_every_entries = spec.snapshot_every;
    node_cfg.catch_up_entries = spec.snapshot_every / 2;
    node_cfg.snapshot_slice_keys = spec.snapshot_slice_keys;
    node_cfg.snapshot_slice_pause = spec.snapshot_slice_pause;
    node_cfg.auto_compaction = spec.auto_compaction;
    (spec.tune_node)(&mut node_cfg);
    let clock = SkewedClock::new(spec.tick, clock);
    let (mut node, handle) = NodeLoop::new(
        node_cfg, raft, kv, applied, sender, clock, storage, inbound_rx,
    );
    node.set_observer(Box::new(move |raft, kv, applied| {
        timeline
            .lock()
            .expect("timeline")
            .observe_role(id, raft.role(), raft.term());
        invariants
            .lock()
            .expect("inv")
            .observe(id, raft, kv, applied);
    }));
    handles.lock().expect("handles").insert(id, handle);
    node.run(std::future::pending::<()>()).await;
}
