//! Leases, watches and compaction on simulated three-member clusters (the production node
//! loop under madsim), through leader crashes, restarts, isolation and snapshot installs.
//!
//! Lease bounds asserted (see `net/src/node/leases.rs`), with members' clocks not drifting:
//! - lower bound, in real time: a lease is revoked no sooner than its TTL after the last
//!   keepalive that was answered, measured from when that keepalive was *sent* — observed as:
//!   every linearizable read that returned before that instant saw its key;
//! - upper bound, in the clock of the leader that expires it (`NodeStatus::clock_ms`; the
//!   simulated tick clocks run slow under load): once nobody keeps it alive, the key is gone
//!   within TTL (plus the election timeout a new leader adds) plus `CLOCK_SLACK_MS`, plus
//!   `PROBE_SLACK` of real time for the reads to notice.
#![cfg(madsim)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sextant_core::kv::{AutoCompactionMode, Command, KvError, PutRequest, RangeRequest};
use sextant_core::watch::WatchCreateRequest;
use sextant_core::{NodeId, RoleKind};
use sextant_net::node::{ClientError, NodeHandle};
use sextant_sim::harness::cluster::{ClusterSpec, SimCluster};
use tokio::time::Instant;

/// `SEXTANT_SIM_SEEDS=a..b` widens (or narrows) every test's seeds.
fn seeds(default: std::ops::Range<u64>) -> std::ops::Range<u64> {
    match std::env::var("SEXTANT_SIM_SEEDS") {
        Ok(s) => {
            let (a, b) = s.split_once("..").expect("SEXTANT_SIM_SEEDS=a..b");
            a.parse().expect("seed")..b.parse().expect("seed")
        }
        Err(_) => default,
    }
}

fn simulate<F: Future<Output = ()> + 'static>(seed: u64, f: impl FnOnce() -> F) {
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.block_on(f());
}

type Cluster = Arc<Mutex<SimCluster>>;

fn start(spec: ClusterSpec) -> Cluster {
    Arc::new(Mutex::new(SimCluster::start(spec)))
}

fn handles(c: &Cluster) -> Vec<(NodeId, NodeHandle)> {
    let c = c.lock().unwrap();
    c.ids()
        .into_iter()
        .filter_map(|id| c.handle(id).map(|h| (id, h)))
        .collect()
}

fn handle(c: &Cluster, id: NodeId) -> Option<NodeHandle> {
    c.lock().unwrap().handle(id)
}

/// The leader of the highest term among running members, waiting for one.
async fn leader(c: &Cluster) -> NodeId {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut best: Option<(u64, NodeId)> = None;
        for (id, h) in handles(c) {
            if let Ok(Ok(st)) = tokio::time::timeout(Duration::from_millis(50), h.status()).await {
                if st.role == RoleKind::Leader && best.is_none_or(|(t, _)| st.term > t) {
                    best = Some((st.term, id));
                }
            }
        }
        if let Some((_, id)) = best {
            return id;
        }
        assert!(Instant::now() < deadline, "no leader within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `op` against the members until one succeeds, following `NotLeader` hints.
async fn anywhere<T, F, Fut>(c: &Cluster, what: &str, op: F) -> T
where
    F: Fn(NodeHandle) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut hint: Option<NodeId> = None;
    loop {
        let mut targets: Vec<(NodeId, NodeHandle)> = handles(c);
        if let Some(l) = hint.take() {
            targets.sort_by_key(|(id, _)| *id != l);
        }
        for (_, h) in targets {
            match tokio::time::timeout(Duration::from_secs(1), op(h)).await {
                Ok(Ok(v)) => return v,
                Ok(Err(ClientError::NotLeader { leader })) => hint = leader.or(hint),
                Ok(Err(ClientError::Kv(e))) => panic!("{what}: {e}"),
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "{what}: no member answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn put_cmd(key: &str, value: &str, lease: i64) -> Command {
    Command::Put(PutRequest {
        key: Bytes::from(key.to_string()),
        value: Bytes::from(value.to_string()),
        lease,
        ..Default::default()
    })
}

/// One linearizable read of `key` at any member: `(returned at, present)`.
async fn probe(c: &Cluster, key: &str) -> Option<(Instant, bool)> {
    for (_, h) in handles(c) {
        let req = RangeRequest {
            key: Bytes::from(key.to_string()),
            ..Default::default()
        };
        if let Ok(Ok(r)) =
            tokio::time::timeout(Duration::from_millis(500), h.range(req, false)).await
        {
            return Some((Instant::now(), !r.range.kvs.is_empty()));
        }
    }
    None
}

/// A keepalive at whichever member leads: (sent, answered, by whom).
async fn keepalive(c: &Cluster, id: i64) -> (Instant, Instant, NodeId) {
    let sent = Instant::now();
    let r = anywhere(
        c,
        "keepalive",
        |h| async move { h.lease_keepalive(id).await },
    )
    .await;
    (sent, Instant::now(), r.header.member_id)
}

/// Reads of a key over time.
#[derive(Default)]
struct Probes(Vec<(Instant, bool)>);

impl Probes {
    /// Every read that returned before `until` saw the key.
    fn present_until(&self, until: Instant, what: &str, t0: Instant) {
        for (at, present) in &self.0 {
            assert!(
                *present || *at >= until,
                "{what}: gone at {:?}, before {:?}",
                *at - t0,
                until - t0
            );
        }
    }

    /// The first read that did not see the key.
    fn gone_at(&self) -> Option<Instant> {
        self.0.iter().find(|(_, p)| !p).map(|(at, _)| *at)
    }
}

/// Members' loop clocks (`NodeStatus::clock_ms`, what leases are timed with) and roles over
/// time. The simulated clocks run slow under load (each tick is a sleep started after the
/// loop's last wake-up), so upper bounds are checked in the deciding leader's own clock.
#[derive(Clone, Default)]
struct Clocks(Arc<Mutex<Vec<ClockPoll>>>);

/// When, which member, whether it led, its clock.
type ClockPoll = (Instant, NodeId, bool, u64);

impl Clocks {
    async fn poll(&self, c: &Cluster) {
        for (id, h) in handles(c) {
            if let Ok(Ok(st)) = tokio::time::timeout(Duration::from_millis(50), h.status()).await {
                let leads = st.role == RoleKind::Leader;
                let now = Instant::now();
                self.0.lock().unwrap().push((now, id, leads, st.clock_ms));
            }
        }
    }

    /// An upper bound on `id`'s clock at `at`: its clock at the first poll after.
    fn clock_after(&self, id: NodeId, at: Instant) -> u64 {
        let polls = self.0.lock().unwrap();
        polls
            .iter()
            .find(|p| p.1 == id && p.0 >= at)
            .map(|p| p.3)
            .expect("a clock poll after the instant")
    }

    /// When `id`'s clock was seen at or past `clock_ms`.
    fn reached(&self, id: NodeId, clock_ms: u64) -> Option<Instant> {
        let polls = self.0.lock().unwrap();
        polls
            .iter()
            .find(|p| p.1 == id && p.3 >= clock_ms)
            .map(|p| p.0)
    }

    /// The first member seen leading after `after`, with its clock then.
    fn first_leader_after(&self, after: Instant) -> (NodeId, u64) {
        let polls = self.0.lock().unwrap();
        polls
            .iter()
            .find(|p| p.0 >= after && p.2)
            .map(|p| (p.1, p.3))
            .expect("a leader after the crash")
    }
}

/// Lease expiry across a leader crash, for each of a few seeds:
/// - lease A (TTL 3 s), kept alive through the old leader until it crashes: its key outlives
///   the last keepalive by at least the TTL (real time), and is gone within TTL + slack of
///   the new leader's clock after it took over;
/// - lease B (TTL 3 s), kept alive at whichever member leads, through the crash: its key stays
///   throughout, and goes within TTL + slack (in the answering leader's clock) after the last
///   keepalive;
/// - lease C (TTL 10 s), never kept alive, checkpointed every second by the old leader: it
///   lives at least 10 s after its grant, and the new leader restarts it from the checkpointed
///   remaining time, not from its full TTL.
#[test]
fn lease_expiry_across_leader_change() {
    for seed in seeds(0..8) {
        simulate(seed, lease_expiry_scenario);
    }
}

/// Clock ms after a leader takes office within which it has promoted its lessor, or after a
/// lease's expiry within which its revoke has applied (an election's last steps, a commit,
/// one tick of margin).
const CLOCK_SLACK_MS: u64 = 600;
/// Real time between probes of a key, and for a probe to return.
const PROBE_SLACK: Duration = Duration::from_millis(700);

async fn lease_expiry_scenario() {
    let spec = ClusterSpec {
        tune_node: |cfg| cfg.lessor.checkpoint_interval_ms = 1000,
        ..ClusterSpec::default()
    };
    let c = start(spec);
    let t0 = Instant::now();
    let clocks = Clocks::default();
    let poller = {
        let (c, clocks) = (c.clone(), clocks.clone());
        tokio::spawn(async move {
            loop {
                clocks.poll(&c).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let old = leader(&c).await;
    let grant = |id: i64, ttl: i64| {
        let c = c.clone();
        async move {
            anywhere(&c, "grant", |h| async move { h.lease_grant(id, ttl).await }).await;
        }
    };
    let c_granted = Instant::now();
    grant(3, 10).await;
    grant(1, 3).await;
    grant(2, 3).await;
    for (key, lease) in [("a", 1), ("b", 2), ("c", 3)] {
        anywhere(&c, "put", |h| async move {
            h.write(put_cmd(key, "v", lease)).await
        })
        .await;
    }
    // Eight rounds of keepalives at the first leader, then it crashes.
    let mut a_last = (t0, t0, 0);
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        a_last = keepalive(&c, 1).await;
        keepalive(&c, 2).await;
    }
    assert_eq!(leader(&c).await, old, "no leader change expected yet");
    assert_eq!(a_last.2, old);
    c.lock().unwrap().crash(old);
    let crashed = Instant::now();

    // B is kept alive through the change; every key is probed meanwhile.
    let b_last = Arc::new(Mutex::new(None));
    let keeper = {
        let (c, b_last) = (c.clone(), b_last.clone());
        tokio::spawn(async move {
            while crashed.elapsed() < Duration::from_secs(8) {
                let r = tokio::time::timeout(Duration::from_secs(2), keepalive(&c, 2)).await;
                if let Ok(k) = r {
                    *b_last.lock().unwrap() = Some(k);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let mut probes: BTreeMap<&str, Probes> = BTreeMap::new();
    // Until every key is gone (and then a little longer), or a deadline well past the bounds.
    let end = crashed + Duration::from_secs(60);
    let mut restarted = false;
    let mut all_gone: Option<Instant> = None;
    while Instant::now() < end && all_gone.is_none_or(|t| t.elapsed() < Duration::from_secs(1)) {
        if !restarted && crashed.elapsed() > Duration::from_secs(4) {
            // The old leader comes back as a follower; it must not expire anything.
            c.lock().unwrap().restart(old);
            restarted = true;
        }
        for key in ["a", "b", "c"] {
            if let Some(p) = probe(&c, key).await {
                probes.entry(key).or_default().0.push(p);
            }
        }
        let gone = ["a", "b", "c"]
            .iter()
            .all(|k| probes.get(k).is_some_and(|p| p.gone_at().is_some()));
        if gone && keeper.is_finished() && all_gone.is_none() {
            all_gone = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    keeper.await.unwrap();
    poller.abort();
    let (b_sent, b_answered, b_by) = b_last.lock().unwrap().expect("B kept alive");
    assert!(
        b_sent > crashed + Duration::from_secs(7),
        "keepalives at the new leader stopped early: {:?}",
        b_sent - t0
    );
    let (new, took_over) = clocks.first_leader_after(crashed);
    assert_ne!(new, old);

    // Lower bounds, in real time: the simulated clocks never run fast here.
    let a = &probes["a"];
    a.present_until(a_last.0 + Duration::from_secs(3), "a", t0);
    let b = &probes["b"];
    b.present_until(b_sent + Duration::from_secs(3), "b", t0);
    let cp = &probes["c"];
    cp.present_until(c_granted + Duration::from_secs(10), "c", t0);

    // Upper bounds, in the clock of the leader that expires the lease.
    let extend_ms = 100;
    let a_gone = a.gone_at().expect("lease A expires");
    let a_by = took_over + extend_ms + 3000 + CLOCK_SLACK_MS;
    let a_by = clocks.reached(new, a_by).expect("clock polled") + PROBE_SLACK;
    assert!(
        a_gone <= a_by,
        "a lived until {:?}, bound {:?}",
        a_gone - t0,
        a_by - t0
    );
    let b_gone = b.gone_at().expect("lease B expires");
    let b_deadline = clocks.clock_after(b_by, b_answered) + 3000 + CLOCK_SLACK_MS;
    let b_until = clocks.reached(b_by, b_deadline).expect("clock polled") + PROBE_SLACK;
    assert!(
        b_gone <= b_until,
        "b lived until {:?}, bound {:?}",
        b_gone - t0,
        b_until - t0
    );
    // C: restarted from its checkpoint (at most about 10 - 4 s left after eight seconds at the
    // old leader, plus a checkpoint interval and rounding), not from its full 10 s.
    let c_gone = cp.gone_at().expect("lease C expires");
    let c_clock = clocks.clock_after(new, c_gone);
    assert!(
        c_clock < took_over + 9000,
        "c revoked at the new leader's {c_clock} ms, it took over at {took_over} ms: not \
         restarted from its checkpoint"
    );
    let leases = anywhere(&c, "leases", |h| async move { h.lease_leases().await }).await;
    assert!(leases.ids.is_empty(), "{:?}", leases.ids);
}

/// A watcher on a member that is cut off while the others move on (and then installs the
/// leader's snapshot), and later crashes and restarts, re-creating its watch from the last
/// revision it saw plus one (as etcd clients do): it receives every event exactly once, in
/// order — the same sequence an undisturbed watcher on the leader sees.
#[test]
fn watch_across_snapshot_install_and_restart() {
    for seed in seeds(0..8) {
        simulate(seed, watch_resume_scenario);
    }
}

type Seen = Arc<Mutex<Vec<(i64, String, String)>>>;

/// Watches prefix `w/` on member `id` until `stop`, resuming after stream loss.
async fn resuming_watcher(c: Cluster, id: NodeId, seen: Seen, reopened: Arc<Mutex<u32>>) {
    loop {
        let Some(h) = handle(&c, id) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let boot = c.lock().unwrap().boots.lock().unwrap()[&id];
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_millis(200), h.watch_stream()).await
        else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let from = seen.lock().unwrap().last().map_or(1, |e| e.0 + 1);
        let req = WatchCreateRequest::prefix("w/").with_start_revision(from);
        if stream.create(req).await.is_err() {
            continue;
        }
        *reopened.lock().unwrap() += 1;
        loop {
            match tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
                Ok(Some(r)) => {
                    assert!(!r.canceled, "watch cancelled: {r:?}");
                    let mut seen = seen.lock().unwrap();
                    for e in r.events {
                        seen.push((
                            e.kv.mod_revision,
                            String::from_utf8(e.kv.key.to_vec()).unwrap(),
                            String::from_utf8(e.kv.value.to_vec()).unwrap(),
                        ));
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    // A crash may leave the stream silent rather than closed.
                    let now = c.lock().unwrap().boots.lock().unwrap()[&id];
                    if now != boot || handle(&c, id).is_none() {
                        break;
                    }
                }
            }
        }
    }
}

async fn watch_resume_scenario() {
    let spec = ClusterSpec {
        snapshot_every: 16,
        ..ClusterSpec::default()
    };
    let c = start(spec);
    let lead = leader(&c).await;
    let w = c
        .lock()
        .unwrap()
        .ids()
        .into_iter()
        .find(|&id| id != lead)
        .unwrap();
    let seen: Seen = Default::default();
    let reopened = Arc::new(Mutex::new(0u32));
    let watcher = tokio::spawn(resuming_watcher(
        c.clone(),
        w,
        seen.clone(),
        reopened.clone(),
    ));
    const WRITES: usize = 300;
    let mut last_rev = 0;
    let mut installed = 0;
    for i in 0..WRITES {
        if i == 60 {
            c.lock().unwrap().isolate(w);
        }
        if i == 160 {
            c.lock().unwrap().reconnect(w);
        }
        if i == 220 {
            let st = handle(&c, w).unwrap().status().await.unwrap();
            installed = st.snapshots_installed;
            c.lock().unwrap().crash(w);
        }
        if i == 240 {
            c.lock().unwrap().restart(w);
        }
        let v = i.to_string();
        let key = format!("w/{i:03}");
        let out = anywhere(&c, "put", |h| {
            let (key, v) = (key.clone(), v.clone());
            async move { h.write(put_cmd(&key, &v, 0)).await }
        })
        .await;
        last_rev = out.header.revision;
    }

    // The watcher catches up to the last write.
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.lock().unwrap().last().map(|e| e.0) != Some(last_rev) {
        assert!(
            Instant::now() < deadline,
            "watcher stuck at {:?} of {last_rev}",
            seen.lock().unwrap().last()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    // Cut off long enough to need the leader's snapshot, which it installed under a live
    // stream; then the restart made the watcher re-create its watch.
    assert!(installed >= 1, "no snapshot was installed at member {w}");
    assert!(*reopened.lock().unwrap() >= 2, "the watch never resumed");

    // Ground truth: an undisturbed watch from the start on the current leader.
    let h = handle(&c, leader(&c).await).unwrap();
    let mut stream = h.watch_stream().await.unwrap();
    stream
        .create(WatchCreateRequest::prefix("w/").with_start_revision(1))
        .await
        .unwrap();
    let mut truth = Vec::new();
    while truth.last().map(|e: &(i64, String, String)| e.0) != Some(last_rev) {
        let r = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("ground truth watch")
            .expect("open");
        truth.extend(r.events.into_iter().map(|e| {
            (
                e.kv.mod_revision,
                String::from_utf8(e.kv.key.to_vec()).unwrap(),
                String::from_utf8(e.kv.value.to_vec()).unwrap(),
            )
        }));
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), truth.len(), "events lost or repeated");
    assert_eq!(seen, truth);
    // Every write is there (a retried write may appear twice in the truth, never missing).
    for i in 0..WRITES {
        let key = format!("w/{i:03}");
        assert!(seen.iter().any(|e| e.1 == key), "{key} missing");
    }
    assert!(seen.windows(2).all(|p| p[0].0 < p[1].0), "out of order");
}

/// Watches asking for compacted revisions get etcd's answer, at any member, after an explicit
/// compaction and after the leader's periodic auto-compaction.
#[test]
fn watch_across_compaction() {
    for seed in seeds(0..8) {
        simulate(seed, compaction_scenario);
    }
}

async fn compaction_scenario() {
    let spec = ClusterSpec {
        tune_node: |cfg| {
            cfg.auto_compaction = Some(AutoCompactionMode::Periodic { retention_ms: 2000 })
        },
        ..ClusterSpec::default()
    };
    let c = start(spec);
    let lead = leader(&c).await;
    let follower = c
        .lock()
        .unwrap()
        .ids()
        .into_iter()
        .find(|&id| id != lead)
        .unwrap();
    let fh = handle(&c, follower).unwrap();
    // A live watcher on the follower, from the start.
    let mut live = fh.watch_stream().await.unwrap();
    live.create(WatchCreateRequest::prefix("c/")).await.unwrap();
    assert!(live.next().await.unwrap().created);

    let mut revs = Vec::new();
    for i in 0..20 {
        let key = format!("c/{i}");
        let out = anywhere(&c, "put", |h| {
            let key = key.clone();
            async move { h.write(put_cmd(&key, "v", 0)).await }
        })
        .await;
        revs.push(out.header.revision);
    }
    // Explicit compaction, then errors for compacted and future revisions.
    let at = revs[10];
    anywhere(&c, "compact", |h| async move { h.compact(at, false).await }).await;
    let h = handle(&c, lead).unwrap();
    assert!(matches!(
        h.compact(revs[5], false).await,
        Err(ClientError::Kv(KvError::Compacted { .. })) | Err(ClientError::NotLeader { .. })
    ));

    // Wait until the follower applied the compaction, then ask it for compacted history.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fh.status().await.unwrap().compact_revision < at {
        assert!(
            Instant::now() < deadline,
            "compaction not applied at the follower"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut s = fh.watch_stream().await.unwrap();
    s.create(WatchCreateRequest::prefix("c/").with_start_revision(revs[2]))
        .await
        .unwrap();
    assert!(s.next().await.unwrap().created);
    let r = s.next().await.unwrap();
    assert!(r.canceled, "{r:?}");
    assert_eq!(r.compact_revision, at);
    // From the compaction point, the kept history is replayed.
    s.create(WatchCreateRequest::prefix("c/").with_start_revision(at))
        .await
        .unwrap();
    assert!(s.next().await.unwrap().created);
    let mut replayed = Vec::new();
    while replayed.len() < revs.len() - 10 {
        let r = s.next().await.unwrap();
        replayed.extend(r.events.iter().map(|e| e.kv.mod_revision));
    }
    assert_eq!(replayed, revs[10..]);
    // The live watcher saw all 20, compaction or not.
    let mut got = Vec::new();
    while got.len() < revs.len() {
        let r = live.next().await.unwrap();
        assert!(!r.canceled, "{r:?}");
        got.extend(r.events.iter().map(|e| e.kv.mod_revision));
    }
    assert_eq!(got, revs);

    // Auto-compaction (periodic, 2 s retention) on the leader: every member follows.
    let target = revs[19];
    for i in 0..40 {
        let key = format!("d/{i}");
        anywhere(&c, "put", |h| {
            let key = key.clone();
            async move { h.write(put_cmd(&key, "v", 0)).await }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut all = true;
        for (_, h) in handles(&c) {
            all &= h.status().await.unwrap().compact_revision >= target;
        }
        if all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "auto-compaction did not reach {target}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut s = fh.watch_stream().await.unwrap();
    s.create(WatchCreateRequest::prefix("c/").with_start_revision(at))
        .await
        .unwrap();
    assert!(s.next().await.unwrap().created);
    let r = s.next().await.unwrap();
    assert!(r.canceled && r.compact_revision >= target, "{r:?}");
}
