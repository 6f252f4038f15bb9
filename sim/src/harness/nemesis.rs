//! The nemesis: injects this seed's fault mix at random times during the safety phase —
//! partitions (random halves, one member isolated, a majorities ring, a bridge, one-way),
//! crashes with restarts (losing unsynced writes), pauses, message loss, duplication, delay
//! (reordering) and stale replays (copies delivered seconds later), and clock drift and jumps.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::rand::Rng;
use sextant_core::NodeId;

use super::cluster::SimCluster;
use super::scenario::{ClockMode, FaultRates};
use super::timeline::MarkKind;

/// What the nemesis did, for the run report.
#[derive(Clone, Debug, Default)]
pub struct FaultLog {
    pub events: Vec<(u64, String)>,
}

fn shuffled(ids: &[NodeId]) -> Vec<NodeId> {
    let mut v = ids.to_vec();
    let mut rng = madsim::rand::thread_rng();
    for i in (1..v.len()).rev() {
        let j = rng.gen_range(0..=i);
        v.swap(i, j);
    }
    v
}

/// A fault level drawn from `range`, or off (0) three times in ten.
fn level_or_off(rng: &mut impl Rng, range: std::ops::Range<u32>) -> u32 {
    if rng.gen_bool(0.3) {
        0
    } else {
        rng.gen_range(range)
    }
}

/// Resumes a paused member if there is one (one pause at a time), otherwise pauses `id`.
fn pause_or_resume(c: &mut SimCluster, id: NodeId, what: &str) -> String {
    let paused: Vec<NodeId> = c
        .members
        .values()
        .filter(|m| m.paused)
        .map(|m| m.id)
        .collect();
    if let Some(&p) = paused.first() {
        c.resume(p);
        format!("resume {p}")
    } else {
        c.pause(id);
        format!("{what} {id}")
    }
}

/// Cuts every link between `a` and `b` (both directions unless `one_way`).
fn split(c: &SimCluster, a: &[NodeId], b: &[NodeId], one_way: bool) {
    for &x in a {
        for &y in b {
            c.cut(x, y);
            if !one_way {
                c.cut(y, x);
            }
        }
    }
}

fn partition(c: &SimCluster) -> String {
    let ids = shuffled(&c.ids());
    let n = ids.len();
    let kind = madsim::rand::thread_rng().gen_range(0..5u32);
    c.heal_network_links();
    match kind {
        0 => {
            let k = madsim::rand::thread_rng().gen_range(1..n);
            split(c, &ids[..k], &ids[k..], false);
            format!("partition halves {:?} | {:?}", &ids[..k], &ids[k..])
        }
        1 => {
            c.isolate(ids[0]);
            format!("isolate {}", ids[0])
        }
        2 => {
            // Majorities ring: each member hears only its ring neighbours.
            let all: BTreeSet<NodeId> = ids.iter().copied().collect();
            for (k, &x) in ids.iter().enumerate() {
                let near: BTreeSet<NodeId> = [ids[(k + 1) % n], ids[(k + n - 1) % n], x]
                    .into_iter()
                    .collect();
                for &y in all.difference(&near) {
                    c.cut(x, y);
                }
            }
            format!("majorities ring {ids:?}")
        }
        3 => {
            // Bridge: two halves that only one member connects.
            let half = n / 2;
            let (a, rest) = ids.split_at(half);
            let (bridge, b) = rest.split_at(1);
            split(c, a, b, false);
            format!("bridge {a:?} -{}- {b:?}", bridge[0])
        }
        _ => {
            let k = madsim::rand::thread_rng().gen_range(1..n);
            split(c, &ids[..k], &ids[k..], true);
            format!("one-way {:?} -/-> {:?}", &ids[..k], &ids[k..])
        }
    }
}

/// Runs until `stop`, injecting faults at `rates` (events per simulated second).
pub async fn run(
    rates: FaultRates,
    cluster: Arc<Mutex<SimCluster>>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<FaultLog>>,
    start: tokio::time::Instant,
) {
    if rates.leader_churn > 0.0 {
        tokio::spawn(leader_churn(
            rates.leader_churn,
            cluster.clone(),
            stop.clone(),
            log.clone(),
            start,
        ));
    }
    // Leader churn runs in its own loop (above); the rest share one Poisson process.
    let total = rates.total() - rates.leader_churn;
    if total <= 0.0 {
        return;
    }
    let kinds = [
        (rates.partition, 0u8),
        (rates.crash, 1),
        (rates.pause, 2),
        (rates.loss, 3),
        (rates.duplicate, 4),
        (rates.delay, 5),
        (rates.clock, 6),
        (rates.leader_partition, 7),
        (rates.leader_pause, 8),
        (rates.swizzle, 9),
        (rates.transfer, 10),
        (rates.membership, 11),
        (rates.corruption, 12),
        (rates.replay, 13),
    ];
    while !stop.load(Ordering::SeqCst) {
        // Exponential inter-arrival times with the summed rate.
        tokio::time::sleep(poisson_wait(total)).await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let mut r = madsim::rand::thread_rng().gen_range(0.0..total);
        let mut kind = 0;
        for (w, k) in kinds {
            if r < w {
                kind = k;
                break;
            }
            r -= w;
        }
        let what = if (7..=11).contains(&kind) {
            targeted(kind, &cluster).await
        } else {
            let mut c = cluster.lock().expect("cluster");
            let ids = c.ids();
            let mut rng = madsim::rand::thread_rng();
            let id = ids[rng.gen_range(0..ids.len())];
            match kind {
                0 => {
                    if rng.gen_bool(0.3) {
                        c.heal_network_links();
                        "heal partitions".to_string()
                    } else {
                        partition(&c)
                    }
                }
                1 => {
                    let down: Vec<NodeId> =
                        c.members.values().filter(|m| !m.up).map(|m| m.id).collect();
                    if !down.is_empty() {
                        for &d in &down {
                            c.restart(d);
                        }
                        format!("restart {down:?}")
                    } else if rng.gen_bool(0.25) {
                        // A correlated failure (power loss): several members at once, each
                        // losing its unsynced writes.
                        let n = rng.gen_range(2..=ids.len());
                        let victims: Vec<NodeId> = shuffled(&ids).into_iter().take(n).collect();
                        for &v in &victims {
                            c.crash(v);
                        }
                        format!("power loss {victims:?}")
                    } else {
                        c.crash(id);
                        format!("crash {id}")
                    }
                }
                2 => pause_or_resume(&mut c, id, "pause"),
                12 => {
                    if c.corrupt_disk(id) {
                        format!("corrupt a durable record of {id} and restart it")
                    } else {
                        "corrupt: no member left to corrupt".to_string()
                    }
                }
                3 => {
                    let pm = level_or_off(&mut rng, 10..300);
                    c.net.loss_pm.store(pm, Ordering::SeqCst);
                    format!("loss {pm}‰")
                }
                4 => {
                    let pm = level_or_off(&mut rng, 10..300);
                    c.net.dup_pm.store(pm, Ordering::SeqCst);
                    format!("duplicate {pm}‰")
                }
                5 => {
                    let ms = level_or_off(&mut rng, 5..c.spec.delay_ms_max.max(6));
                    c.net.delay_max_ms.store(ms, Ordering::SeqCst);
                    format!("delay up to {ms} ms")
                }
                13 => {
                    let pm = level_or_off(&mut rng, 10..300);
                    c.net.replay_pm.store(pm, Ordering::SeqCst);
                    format!("replay {pm}‰ of messages 0.5–3 s late")
                }
                6 => {
                    let m = &c.members[&id];
                    let safe = c.spec.lease_safe_drift_ppm();
                    let mode = c.spec.clock_mode;
                    if mode == ClockMode::Bounded {
                        // Strictly inside the bound, rounding included.
                        let ppm = rng.gen_range(-(safe * 9 / 10)..=safe * 9 / 10);
                        m.clock.set_drift_ppm(ppm);
                        c.mark(id, MarkKind::Clock(format!("drift {ppm} ppm")));
                        format!("clock {id} drift {ppm} ppm (bounded)")
                    } else if mode == ClockMode::BeyondBound && rng.gen_bool(0.7) {
                        let ppm = rng.gen_range(2 * safe..=4 * safe).min(450_000)
                            * if rng.gen_bool(0.5) { 1 } else { -1 };
                        m.clock.set_drift_ppm(ppm);
                        c.mark(id, MarkKind::Clock(format!("drift {ppm} ppm")));
                        format!("clock {id} drift {ppm} ppm (beyond bound)")
                    } else if rng.gen_bool(0.5) {
                        let ppm = rng.gen_range(-200_000..200_000);
                        m.clock.set_drift_ppm(ppm);
                        c.mark(id, MarkKind::Clock(format!("drift {ppm} ppm")));
                        format!("clock {id} drift {ppm} ppm")
                    } else {
                        let ticks = rng.gen_range(-20..20);
                        m.clock.jump(ticks);
                        c.mark(id, MarkKind::Clock(format!("jump {ticks} ticks")));
                        format!("clock {id} jump {ticks} ticks")
                    }
                }
                _ => unreachable!("targeted kinds are handled above"),
            }
        };
        note(&log, start, what);
    }
}

/// Records `what` in the fault log at the current simulated time.
fn note(log: &Mutex<FaultLog>, start: tokio::time::Instant, what: String) {
    let t = start.elapsed().as_micros() as u64;
    log.lock().expect("log").events.push((t, what));
}

/// Exponentially distributed wait for a Poisson process of `rate` events per second.
fn poisson_wait(rate: f64) -> Duration {
    let u: f64 = madsim::rand::thread_rng().gen_range(1e-6..1.0);
    Duration::from_secs_f64((-u.ln() / rate).min(5.0))
}

/// Leader churn: the adversary of Raft's Figure 8. `rate` times per second it strikes the
/// newest leader (one not struck before) a log-uniform 0.1–200 ms after that leader took
/// office — at once if that moment has passed — by crashing it (losing unsynced writes) or
/// cutting it off; 0.1–1 s later the victim comes back. Leaders that fall this quickly leave
/// half-replicated tails of many terms behind, which is where commit rules go wrong.
async fn leader_churn(
    rate: f64,
    cluster: Arc<Mutex<SimCluster>>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<FaultLog>>,
    start: tokio::time::Instant,
) {
    let newest = |c: &Arc<Mutex<SimCluster>>| {
        let inv = c.lock().expect("cluster").invariants.clone();
        let n = inv.lock().expect("inv").newest_leader();
        n
    };
    let mut struck_term = 0;
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(poisson_wait(rate)).await;
        // The next leader not yet struck (bounded wait: faults may leave none for a while).
        let mut found = None;
        for _ in 0..2_000 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match newest(&cluster) {
                Some((t, id, at)) if t > struck_term => {
                    found = Some((t, id, at));
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
        let Some((term, victim, elected_us)) = found else {
            continue;
        };
        struck_term = term;
        // Log-uniform 0.1–200 ms after the election: some leaders fall before their first
        // entry leaves them, others mid-way through repairing followers' logs.
        let aim_us = 10f64.powf(madsim::rand::thread_rng().gen_range(2.0..5.3)) as u64;
        let now_us = start.elapsed().as_micros() as u64;
        let wait_us = (elected_us + aim_us).saturating_sub(now_us);
        tokio::time::sleep(Duration::from_micros(wait_us)).await;
        let crash = madsim::rand::thread_rng().gen_bool(0.5);
        {
            let mut c = cluster.lock().expect("cluster");
            if crash {
                c.crash(victim);
            } else {
                c.isolate(victim);
            }
        }
        let how = if crash { "crash" } else { "isolate" };
        note(
            &log,
            start,
            format!("leader churn: {how} leader {victim} of term {term}"),
        );
        let back = Duration::from_millis(madsim::rand::thread_rng().gen_range(100..1_000));
        let (cluster2, log2) = (cluster.clone(), log.clone());
        tokio::spawn(async move {
            tokio::time::sleep(back).await;
            let mut c = cluster2.lock().expect("cluster");
            if crash {
                c.restart(victim);
            } else {
                c.reconnect(victim);
            }
            drop(c);
            let how = if crash { "restart" } else { "reconnect" };
            note(&log2, start, format!("leader churn: {how} {victim}"));
        });
    }
}

/// The member that reports itself leader in the highest term, if any answers in time.
async fn current_leader(
    cluster: &Arc<Mutex<SimCluster>>,
) -> Option<(NodeId, sextant_net::node::NodeStatus)> {
    let handles: Vec<(NodeId, sextant_net::node::NodeHandle)> = {
        let c = cluster.lock().expect("cluster");
        c.ids()
            .into_iter()
            .filter_map(|id| c.handle(id).map(|h| (id, h)))
            .collect()
    };
    let mut best: Option<(NodeId, sextant_net::node::NodeStatus)> = None;
    for (id, h) in handles {
        let Ok(Ok(st)) = tokio::time::timeout(Duration::from_millis(50), h.status()).await else {
            continue;
        };
        if st.role == sextant_core::RoleKind::Leader
            && best.as_ref().is_none_or(|(_, b)| st.term > b.term)
        {
            best = Some((id, st));
        }
    }
    best
}

/// Faults aimed at the leader, swizzle-clog, transfers and membership changes.
async fn targeted(kind: u8, cluster: &Arc<Mutex<SimCluster>>) -> String {
    let leader = current_leader(cluster).await;
    let ids = cluster.lock().expect("cluster").ids();
    let pick_other = |not: NodeId| {
        let others: Vec<NodeId> = ids.iter().copied().filter(|&i| i != not).collect();
        others[madsim::rand::thread_rng().gen_range(0..others.len())]
    };
    match (kind, leader) {
        (7, Some((l, _))) => {
            let c = cluster.lock().expect("cluster");
            c.heal_network_links();
            c.isolate(l);
            format!("isolate leader {l}")
        }
        (8, Some((l, _))) => {
            let mut c = cluster.lock().expect("cluster");
            pause_or_resume(&mut c, l, "pause leader")
        }
        (9, _) => {
            let c = cluster.lock().expect("cluster");
            let net = madsim::net::NetSim::current();
            let id = ids[madsim::rand::thread_rng().gen_range(0..ids.len())];
            let node = c.members[&id].node.id();
            if madsim::rand::thread_rng().gen_bool(0.5) {
                net.clog_node(node);
                format!("swizzle: clog {id}")
            } else {
                net.unclog_node(node);
                format!("swizzle: unclog {id}")
            }
        }
        (10, Some((l, _))) => {
            let to = pick_other(l);
            let h = cluster.lock().expect("cluster").handle(l);
            match h {
                Some(h) => {
                    match tokio::time::timeout(Duration::from_millis(50), h.transfer_leader(to))
                        .await
                    {
                        Ok(Ok(())) => format!("transfer leadership {l} -> {to}"),
                        Ok(Err(e)) => format!("transfer {l} -> {to} refused: {e}"),
                        Err(_) => format!("transfer {l} -> {to}: no answer"),
                    }
                }
                None => "transfer: leader gone".to_string(),
            }
        }
        (11, Some((l, st))) => {
            use sextant_core::{ConfChange, ConfChangeKind};
            let voters = st.voters.clone();
            let learners = st.learners.clone();
            let absent: Vec<NodeId> = ids
                .iter()
                .copied()
                .filter(|i| !voters.contains(i) && !learners.contains(i))
                .collect();
            let mut rng = madsim::rand::thread_rng();
            let change = if let Some(&x) = learners.first() {
                ConfChange::single(ConfChangeKind::AddVoter, x)
            } else if let Some(&x) = absent.first() {
                ConfChange::single(ConfChangeKind::AddLearner, x)
            } else if voters.len() > 3 {
                ConfChange::single(
                    ConfChangeKind::Remove,
                    voters[rng.gen_range(0..voters.len())],
                )
            } else {
                return "membership: nothing to change".to_string();
            };
            let what = format!("{:?} {}", change.changes[0].kind, change.changes[0].node);
            let h = cluster.lock().expect("cluster").handle(l);
            match h {
                Some(h) => match tokio::time::timeout(
                    Duration::from_millis(50),
                    h.change_membership(change),
                )
                .await
                {
                    Ok(Ok(i)) => format!("membership: {what} at index {i}"),
                    Ok(Err(e)) => format!("membership: {what} refused: {e}"),
                    Err(_) => format!("membership: {what}: no answer"),
                },
                None => "membership: leader gone".to_string(),
            }
        }
        _ => "no leader to target".to_string(),
    }
}
