//! Chaos on real processes, with the linearizability checker as the judge (Jepsen-style).
//!
//! [`run`] starts `n` real `sextant` processes, each in its own network namespace joined to a
//! bridge by a veth pair ([`net`], [`members`]), so partitions are real packet drops on a real
//! kernel and real TCP. Host-side clients ([`workload`]) record put / get / delete /
//! compare-and-set and lock holds with fencing tokens while the [`nemesis`] injects one fault
//! at a time. Then everything heals and the [`verdict`]s run: the history (plus a final read of
//! every key) must be linearizable, lock holds must never overlap, every member must reach the
//! same `HashKV`.
//!
//! Needs root, `ip` (iproute2), `nft` (nftables), `tc` and tmpfs mounts; [`preflight`] says
//! why a run cannot happen (the test then skips). Every process, namespace, bridge and mount
//! is removed when the run ends, also when it fails; the namespaces and bridges of a run that
//! was killed are swept by the next one. Every loop is bounded in count and time.

pub mod members;
pub mod nemesis;
pub mod net;
pub mod verdict;
pub mod workload;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use members::NsCluster;
use nemesis::NemesisLog;
use net::Topology;
use sextant_sim::checker::{KvInput, Verdict};
use workload::{Clock, History, LockCounts, MemberClient, OpCounts};

/// A small seeded generator (xorshift64*), so a run's fault order can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Why chaos runs cannot happen here, if they cannot.
pub fn preflight() -> Result<(), String> {
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("cannot run `id -u`: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root (network namespaces, nftables and tmpfs mounts need it)".into());
    }
    for tool in ["ip", "nft", "tc", "mount", "umount", "kill"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Err(format!(
                "`{tool}` is not installed (`tests/run --deps` installs the prerequisites)"
            ));
        }
    }
    let probe = format!("sx{}probe", std::process::id());
    net::run("ip", &["netns", "add", &probe])
        .map_err(|e| format!("cannot create a network namespace: {e}"))?;
    let nft = net::run(
        "ip",
        &[
            "netns", "exec", &probe, "nft", "add", "table", "inet", "probe",
        ],
    );
    let _ = net::run("ip", &["netns", "del", &probe]);
    nft.map_err(|e| format!("nftables does not work here: {e}"))
}

/// One chaos run's settings.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub members: usize,
    /// Tells apart the clusters of one test process (names, subnets).
    pub cluster: u32,
    /// How long faults are injected.
    pub duration: Duration,
    pub seed: u64,
    pub kv_workers: u64,
    pub lock_workers: u64,
    pub keys: u64,
    /// Where failure artifacts go (a subdirectory per run).
    pub artifacts: PathBuf,
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub members: usize,
    pub seed: u64,
    pub elapsed: Duration,
    /// The Raft term before the faults and after healing (elections the faults caused).
    pub terms: (u64, u64),
    pub ops: OpCounts,
    pub locks: LockCounts,
    pub nemesis: NemesisLog,
    pub linearizability: String,
    pub lock_violations: Vec<String>,
    pub convergence: String,
    /// Everything that failed; empty when the run passed.
    pub failures: Vec<String>,
    /// Where the history and its explanation were kept (on failure).
    pub kept: Option<PathBuf>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.ops;
        writeln!(
            f,
            "== chaos: {} members, seed {}, {:.0?}",
            self.members, self.seed, self.elapsed
        )?;
        writeln!(
            f,
            "  kv ops        {} ok, {} failed (no effect), {} unknown outcome",
            o.ok, o.failed, o.unknown
        )?;
        let l = &self.locks;
        writeln!(
            f,
            "  lock holds    {} judged, {} attempts failed, {} tokens unread",
            l.held, l.failed, l.token_unread
        )?;
        writeln!(
            f,
            "  raft term     {} before the faults, {} after healing",
            self.terms.0, self.terms.1
        )?;
        writeln!(f, "  faults injected:")?;
        for (fault, count) in &self.nemesis.injected {
            writeln!(f, "    {:<20} {count}", fault.label())?;
        }
        for d in &self.nemesis.disk_full {
            writeln!(
                f,
                "  disk full: write error {:?} (after {} hung writes), others serve: {}, \
                 NOSPACE alarm listed: {}, member still running: {}",
                d.write_error, d.write_timeouts, d.others_serve, d.nospace_alarm, d.still_running
            )?;
        }
        writeln!(f, "  linearizable  {}", self.linearizability)?;
        writeln!(
            f,
            "  locks         {}",
            if self.lock_violations.is_empty() {
                "no overlap, tokens increase".to_string()
            } else {
                format!("{} violations", self.lock_violations.len())
            }
        )?;
        writeln!(f, "  convergence   {}", self.convergence)?;
        if self.failures.is_empty() {
            writeln!(f, "  PASS")?;
        } else {
            for x in &self.failures {
                writeln!(f, "  FAIL: {x}")?;
            }
        }
        if let Some(dir) = &self.kept {
            writeln!(
                f,
                "  history, HTML explanation and logs kept in {}",
                dir.display()
            )?;
        }
        Ok(())
    }
}

/// Waits (bounded) until every member names the same leader; returns the highest Raft term
/// they report.
async fn wait_leader(clients: &[MemberClient], limit: Duration) -> Result<u64, String> {
    let deadline = Instant::now() + limit;
    for _ in 0..10_000u32 {
        let mut leaders = Vec::new();
        let mut term = 0;
        for c in clients {
            let mut m = c.maintenance.clone();
            let s = tokio::time::timeout(
                Duration::from_secs(1),
                m.status(sextant_net::grpc::pb::etcdserverpb::StatusRequest {}),
            )
            .await;
            leaders.push(match s {
                Ok(Ok(s)) => {
                    let s = s.into_inner();
                    term = term.max(s.raft_term);
                    s.leader
                }
                _ => 0,
            });
        }
        if leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) {
            return Ok(term);
        }
        if Instant::now() >= deadline {
            return Err(format!("no common leader after {limit:?}: {leaders:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("no common leader".into())
}

/// The client id of the final reads.
const FINAL_READER: u64 = 1_000_000;

/// A linearizable read of every key, recorded, through members in turn (bounded retries).
async fn final_reads(
    clients: &[MemberClient],
    keys: u64,
    history: &History,
    clock: Clock,
) -> Vec<String> {
    let mut missing = Vec::new();
    for k in 0..keys {
        let mut done = false;
        for attempt in 0..20usize {
            let mut c = clients[(k as usize + attempt) % clients.len()].clone();
            let input = KvInput::get(workload::key(k));
            let op = history.call(clock, FINAL_READER, input.clone());
            let outcome = workload::perform(&mut c, &input).await;
            let ok = outcome.is_ok();
            history.complete(clock, op, true, outcome);
            if ok {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if !done {
            missing.push(workload::key(k));
        }
    }
    missing
}

/// Heals every fault and brings every member back.
fn heal_all(topo: &Topology, cluster: &mut NsCluster) -> Result<(), String> {
    topo.heal()?;
    cluster.free_disk()?;
    cluster.revive_all()
}

/// One chaos run. `Err` is a harness failure (setup); verdict failures are in
/// [`Report::failures`].
pub async fn run(cfg: &RunConfig) -> Result<Report, String> {
    let wall = Instant::now();
    let mut report = Report {
        members: cfg.members,
        seed: cfg.seed,
        ..Report::default()
    };
    tokio::task::block_in_place(net::sweep_stale);
    let topo = tokio::task::block_in_place(|| Topology::create(cfg.members, cfg.cluster))?;
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let mut cluster = tokio::task::block_in_place(|| {
        NsCluster::start(dir.path(), &topo.namespaces, &topo.addrs, 100, 1000)
    })?;
    let clients: Vec<MemberClient> = cluster
        .members
        .iter()
        .map(|m| MemberClient::new(&m.client_url()))
        .collect();
    report.terms.0 = wait_leader(&clients, Duration::from_secs(30)).await?;

    let start = Instant::now();
    let clock = Clock(start);
    let history = History::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut kv_tasks = Vec::new();
    for w in 0..cfg.kv_workers {
        kv_tasks.push(tokio::spawn(workload::kv_worker(
            w,
            cfg.keys,
            clients.clone(),
            history.clone(),
            clock,
            stop.clone(),
            cfg.seed ^ (w + 1).wrapping_mul(0x9E37_79B9),
        )));
    }
    let mut lock_tasks = Vec::new();
    for w in 0..cfg.lock_workers {
        lock_tasks.push(tokio::spawn(workload::lock_worker(
            w,
            clients.clone(),
            clock,
            stop.clone(),
            cfg.seed ^ (w + 101).wrapping_mul(0x9E37_79B9),
        )));
    }
    let nemesis = nemesis::run(
        &topo,
        &mut cluster,
        &clients,
        start + cfg.duration,
        start,
        cfg.seed,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let healed = tokio::task::block_in_place(|| heal_all(&topo, &mut cluster));
    report.nemesis = nemesis?;
    healed?;

    let join_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for mut t in kv_tasks {
        let joined = tokio::time::timeout_at(join_deadline, &mut t).await;
        t.abort();
        match joined {
            Ok(Ok(c)) => {
                report.ops.ok += c.ok;
                report.ops.failed += c.failed;
                report.ops.unknown += c.unknown;
            }
            _ => report
                .failures
                .push("a kv worker did not stop in time".into()),
        }
    }
    let mut holds = Vec::new();
    for mut t in lock_tasks {
        let joined = tokio::time::timeout_at(join_deadline, &mut t).await;
        t.abort();
        match joined {
            Ok(Ok((h, c))) => {
                holds.extend(h);
                report.locks.held += c.held;
                report.locks.failed += c.failed;
                report.locks.token_unread += c.token_unread;
            }
            _ => report
                .failures
                .push("a lock worker did not stop in time".into()),
        }
    }

    match wait_leader(&clients, Duration::from_secs(60)).await {
        Ok(term) => report.terms.1 = term,
        Err(e) => report.failures.push(format!("after healing: {e}")),
    }
    if let Err(e) = nemesis::disarm_alarms(&clients, Duration::from_secs(20)).await {
        report.failures.push(e);
    }
    let missing = final_reads(&clients, cfg.keys, &history, clock).await;
    if !missing.is_empty() {
        report
            .failures
            .push(format!("no final read succeeded for {missing:?}"));
    }
    match verdict::converge(&clients, Duration::from_secs(60)).await {
        Ok((rev, hash)) => {
            report.convergence = format!("all members at revision {rev}, hash {hash:#010x}")
        }
        Err(e) => {
            report.convergence = "diverged".into();
            report.failures.push(e);
        }
    }
    for d in &report.nemesis.disk_full {
        if d.write_error.is_none() {
            report
                .failures
                .push("disk full: no write through the full member got an error".into());
        }
        if !d.nospace_alarm {
            report
                .failures
                .push("disk full: no member listed a NOSPACE alarm".into());
        }
        if !d.others_serve {
            report
                .failures
                .push("disk full: the other members stopped serving reads".into());
        }
    }

    let recorded = history.snapshot();
    let lin = tokio::task::block_in_place(|| {
        verdict::linearizability(&recorded, Duration::from_secs(120))
    });
    let result = &lin.result;
    report.linearizability = format!(
        "{} ({} operations{}, {} keys, {} search steps{})",
        result.verdict,
        lin.checked.len(),
        if lin.rechecked_keys > 0 {
            format!(
                " of the keys that did not pass without {} unobserved unknown writes, \
                 checked again with them",
                lin.dropped
            )
        } else if lin.dropped > 0 {
            format!(
                " after leaving out {} unobserved unknown writes",
                lin.dropped
            )
        } else {
            String::new()
        },
        result.partitions.len(),
        result.steps(),
        if result.budget_exceeded {
            ", budget exceeded"
        } else {
            ""
        }
    );
    if !verdict::passes(result.verdict) {
        let why = match result.verdict {
            Verdict::Unknown => "the checker ran out of budget",
            _ => "the history is not linearizable",
        };
        report.failures.push(why.into());
    }
    report.lock_violations = verdict::check_locks(&holds);
    report
        .failures
        .extend(report.lock_violations.iter().cloned());
    report.elapsed = wall.elapsed();

    if !report.failures.is_empty() {
        let kept = cfg.artifacts.join(format!(
            "{}-{}",
            topo.tag(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ));
        report.kept = Some(kept.clone());
        let mut summary = report.to_string();
        for line in &report.nemesis.timeline {
            let _ = writeln!(summary, "{line}");
        }
        verdict::save_artifacts(&kept, &recorded, &lin, &holds, &cluster.logs(), &summary)
            .map_err(|e| format!("saving artifacts in {}: {e}", kept.display()))?;
    }
    drop(cluster);
    drop(topo);
    Ok(report)
}

/// `target/chaos`, next to the test executable's profile directory.
pub fn default_artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("chaos")
}
