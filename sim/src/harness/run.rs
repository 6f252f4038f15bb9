//! One seed of one scenario: build the madsim runtime from the seed, start the cluster, run the
//! workload under the nemesis (safety phase), heal everything and require progress (liveness
//! phase), then judge: cluster invariants, the history's linearizability, liveness. The whole
//! run is a pure function of (scenario, seed); `trace_hash` proves it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sextant_core::kv::{AutoCompactionMode, Command, PutRequest, RangeRequest};

use super::cluster::{ClusterSpec, SimCluster};
use super::nemesis::{self, FaultLog};
use super::scenario::{FaultRates, Scenario};
use super::timeline::{self, Timeline, TimelineInput};
use super::workload::{self, WorkloadSpec};
use crate::checker::{CheckOptions, CheckResult, HistoryRecorder, Verdict};
use sextant_core::mutation::Mutation;
use sextant_core::NodeId;

/// Search steps the checker may take per seed (deterministic, unlike a wall-clock budget).
const CHECK_STEPS_MAX: u64 = 50_000_000;

pub struct SeedOutcome {
    pub seed: u64,
    pub swarm: FaultRates,
    pub ops: usize,
    pub faults: FaultLog,
    pub elections: u64,
    pub observations: u64,
    pub violations: Vec<String>,
    pub liveness: Result<(), String>,
    pub check: CheckResult,
    pub history: HistoryRecorder,
    pub sim_secs: f64,
    pub wall: Duration,
    /// Hash of everything observable about the run; equal for equal (scenario, seed).
    pub trace_hash: u64,
    /// Every committed entry (index, term, description).
    pub committed_log: Vec<(u64, u64, String)>,
    /// Members' roles and what happened to them over time.
    pub timeline: Timeline,
    /// Members that refused to start on a corrupt disk (the corruption fault at work).
    pub corruptions_detected: Vec<String>,
    pub members: Vec<NodeId>,
}

impl SeedOutcome {
    /// The run's timeline as a self-contained HTML page.
    pub fn timeline_html(&self, title: &str) -> String {
        timeline::render_html(
            &self.timeline,
            &TimelineInput {
                title,
                members: &self.members,
                end_micros: (self.sim_secs * 1e6) as u64,
                faults: &self.faults.events,
                ops: &self.history.history(),
            },
        )
    }
}

impl SeedOutcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
            && self.liveness.is_ok()
            && self.check.verdict == Verdict::Linearizable
    }

    pub fn verdict(&self) -> &'static str {
        if !self.violations.is_empty() {
            "invariant violated"
        } else if self.check.verdict != Verdict::Linearizable {
            self.check.verdict.as_str()
        } else if self.liveness.is_err() {
            "no progress after healing"
        } else {
            "ok"
        }
    }
}

struct Raw {
    swarm: FaultRates,
    history: HistoryRecorder,
    faults: FaultLog,
    elections: u64,
    observations: u64,
    violations: Vec<String>,
    liveness: Result<(), String>,
    sim_secs: f64,
    committed_log: Vec<(u64, u64, String)>,
    timeline: Timeline,
    members: Vec<NodeId>,
    corruptions_detected: Vec<String>,
}

pub fn run_seed(s: &Scenario, seed: u64) -> SeedOutcome {
    run_seed_mutated(s, seed, None)
}

/// Runs a seed with a planted bug enabled (see `sextant_core::mutation`). A panic anywhere in
/// the simulated cluster (a broken internal assertion) counts as a detection.
pub fn run_seed_mutated(s: &Scenario, seed: u64, mutation: Option<Mutation>) -> SeedOutcome {
    let wall = Instant::now();
    sextant_core::mutation::set(mutation);
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let s2 = s.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move { simulate(s2).await })
    }));
    sextant_core::mutation::set(None);
    let raw = match result {
        Ok(raw) => raw,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Raw {
                swarm: FaultRates::default(),
                history: HistoryRecorder::new(),
                faults: FaultLog::default(),
                elections: 0,
                observations: 0,
                violations: vec![format!("panic in the simulated cluster: {msg}")],
                liveness: Ok(()),
                sim_secs: 0.0,
                committed_log: Vec::new(),
                timeline: Timeline::default(),
                members: Vec::new(),
                corruptions_detected: Vec::new(),
            }
        }
    };
    let check = raw.history.check(&CheckOptions {
        max_steps: Some(CHECK_STEPS_MAX),
        ..Default::default()
    });
    let mut h = DefaultHasher::new();
    raw.history.to_jsonl().hash(&mut h);
    raw.faults.events.hash(&mut h);
    raw.elections.hash(&mut h);
    raw.observations.hash(&mut h);
    raw.violations.hash(&mut h);
    raw.timeline.roles.hash(&mut h);
    raw.timeline.marks.hash(&mut h);
    raw.corruptions_detected.hash(&mut h);
    SeedOutcome {
        seed,
        ops: raw.history.history().len(),
        swarm: raw.swarm,
        faults: raw.faults,
        elections: raw.elections,
        observations: raw.observations,
        violations: raw.violations,
        liveness: raw.liveness,
        check,
        history: raw.history,
        sim_secs: raw.sim_secs,
        wall: wall.elapsed(),
        trace_hash: h.finish(),
        committed_log: raw.committed_log,
        timeline: raw.timeline,
        members: raw.members,
        corruptions_detected: raw.corruptions_detected,
    }
}

async fn simulate(s: Scenario) -> Raw {
    let start = tokio::time::Instant::now();
    let swarm = s.faults.draw(s.swarm_keep);
    let spec = ClusterSpec {
        members: s.members,
        lease_reads: s.lease_reads,
        fsync_micros: s.fsync_micros,
        delay_ms_max: s.delay_ms_max,
        clock_mode: s.clock_mode,
        auto_compaction: s
            .auto_compaction_ms
            .map(|retention_ms| AutoCompactionMode::Periodic { retention_ms }),
        ..ClusterSpec::default()
    };
    let cluster = Arc::new(Mutex::new(SimCluster::start(spec)));
    let history = Arc::new(Mutex::new(HistoryRecorder::new()));
    let faults = Arc::new(Mutex::new(FaultLog::default()));
    let stop_clients = Arc::new(AtomicBool::new(false));
    let stop_nemesis = Arc::new(AtomicBool::new(false));
    let handle = madsim::runtime::Handle::current();
    let client_node = handle
        .create_node()
        .name("clients")
        .ip("10.1.0.1".parse().expect("ip"))
        .build();
    if s.faults.replay > 0.0 {
        // Only scenarios that replay get the network's replay node (others run as before).
        let c = cluster.lock().expect("cluster");
        super::transport::start_replayer(&handle, &c.net);
    }
    let wl = WorkloadSpec {
        clients: s.clients,
        keys: s.keys,
        call_timeout: Duration::from_secs(2),
    };
    let mut tasks = Vec::new();
    for c in 0..s.clients {
        tasks.push(client_node.spawn(workload::client(
            c,
            wl.clone(),
            cluster.clone(),
            history.clone(),
            stop_clients.clone(),
            start,
        )));
    }
    let nem = client_node.spawn(nemesis::run(
        swarm.clone(),
        cluster.clone(),
        stop_nemesis.clone(),
        faults.clone(),
        start,
    ));

    // Safety phase.
    tokio::time::sleep(Duration::from_secs_f64(s.duration_s)).await;
    stop_nemesis.store(true, Ordering::SeqCst);
    let _ = nem.await;
    cluster.lock().expect("cluster").heal_all();
    // Liveness phase: the healed cluster must serve a write and a linearizable read.
    let liveness = liveness(&cluster, Duration::from_secs_f64(s.liveness_s)).await;
    stop_clients.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    let sim_secs = start.elapsed().as_secs_f64();
    let (inv, timeline, members, corrupted) = {
        let c = cluster.lock().expect("cluster");
        (
            c.invariants.clone(),
            c.timeline.clone(),
            c.ids(),
            c.corrupted.clone(),
        )
    };
    let timeline = std::mem::take(&mut *timeline.lock().expect("timeline"));
    let inv = inv.lock().expect("inv");
    let mut violations = inv.violations.clone();
    for d in &inv.corruptions_detected {
        // Only a disk the nemesis damaged may be found corrupt.
        if !corrupted
            .iter()
            .any(|id| d.starts_with(&format!("member {id}:")))
        {
            violations.push(format!("corruption on an undamaged disk: {d}"));
        }
    }
    let history = std::mem::take(&mut *history.lock().expect("history"));
    let faults = std::mem::take(&mut *faults.lock().expect("faults"));
    Raw {
        swarm,
        history,
        faults,
        elections: inv.elections,
        observations: inv.observations,
        violations,
        corruptions_detected: inv.corruptions_detected.clone(),
        liveness,
        sim_secs,
        committed_log: inv.committed_log.clone(),
        timeline,
        members,
    }
}

async fn liveness(cluster: &Arc<Mutex<SimCluster>>, limit: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_err = String::from("no member answered");
    while tokio::time::Instant::now() < deadline {
        let handles: Vec<_> = {
            let c = cluster.lock().expect("cluster");
            c.ids().into_iter().filter_map(|id| c.handle(id)).collect()
        };
        for h in handles {
            let put = Command::Put(PutRequest {
                key: Bytes::from_static(b"liveness"),
                value: Bytes::from_static(b"ok"),
                ..Default::default()
            });
            let w = tokio::time::timeout(Duration::from_secs(1), h.write(put)).await;
            match w {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    last_err = e.to_string();
                    continue;
                }
                Err(_) => {
                    last_err = "write timed out".into();
                    continue;
                }
            }
            let req = RangeRequest {
                key: Bytes::from_static(b"liveness"),
                ..Default::default()
            };
            match tokio::time::timeout(Duration::from_secs(1), h.range(req, false)).await {
                Ok(Ok(r)) if r.range.kvs.first().is_some_and(|kv| kv.value == "ok") => {
                    return Ok(())
                }
                Ok(Ok(_)) => last_err = "read did not see the write".into(),
                Ok(Err(e)) => last_err = e.to_string(),
                Err(_) => last_err = "read timed out".into(),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "no write and read within {limit:?} after healing: {last_err}"
    ))
}
