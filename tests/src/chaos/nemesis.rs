//! The chaos test's nemesis: injects one fault at a time on the real cluster, holds it a few
//! seconds, heals it and lets the cluster settle, in a seeded order that cycles through every
//! kind that fits the cluster size. Kinds: isolate one member (random, or the leader), random
//! halves, a majorities ring (5+ members: each member reaches only its ring neighbours, a
//! majority, and no two see the same majority), a one-way cut, packet loss with a slow link,
//! `SIGKILL` and restart, `SIGSTOP`/`SIGCONT`, and a full disk on member 0 (its tmpfs filled:
//! writes through it must get an error answer while the other members keep serving; healed by
//! freeing the space, restarting it and disarming the NOSPACE alarm).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sextant_net::grpc::pb::etcdserverpb as pb;

use super::members::NsCluster;
use super::net::Topology;
use super::workload::MemberClient;
use super::Rng;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    IsolateOne,
    IsolateLeader,
    RandomHalves,
    MajoritiesRing,
    OneWay,
    LossySlow,
    Kill,
    Pause,
    DiskFull,
}

impl Fault {
    pub fn label(self) -> &'static str {
        match self {
            Fault::IsolateOne => "isolate one",
            Fault::IsolateLeader => "isolate leader",
            Fault::RandomHalves => "random halves",
            Fault::MajoritiesRing => "majorities ring",
            Fault::OneWay => "one-way cut",
            Fault::LossySlow => "loss + slow link",
            Fault::Kill => "SIGKILL + restart",
            Fault::Pause => "SIGSTOP/SIGCONT",
            Fault::DiskFull => "disk full",
        }
    }

    /// The kinds that fit a cluster of `n` members.
    fn all(n: usize) -> Vec<Fault> {
        let mut v = vec![
            Fault::IsolateOne,
            Fault::IsolateLeader,
            Fault::RandomHalves,
            Fault::OneWay,
            Fault::LossySlow,
            Fault::Kill,
            Fault::Pause,
            Fault::DiskFull,
        ];
        if n >= 5 {
            v.push(Fault::MajoritiesRing);
        }
        v
    }
}

/// What the disk-full fault observed.
#[derive(Clone, Debug)]
pub struct DiskFullCheck {
    /// The first error a write through the full member answered.
    pub write_error: Option<String>,
    /// Writes through it that hung until the client's timeout before that error.
    pub write_timeouts: u32,
    /// A linearizable read through another member succeeded while the disk was full.
    pub others_serve: bool,
    /// Whether the full member's process was still running (failed safe, not crashed).
    pub still_running: bool,
    /// Whether another member listed a NOSPACE alarm (raised by the full member through the
    /// leader, as etcd does).
    pub nospace_alarm: bool,
}

/// What the nemesis did.
#[derive(Clone, Debug, Default)]
pub struct NemesisLog {
    pub injected: BTreeMap<Fault, u32>,
    pub disk_full: Vec<DiskFullCheck>,
    /// Lines describing each fault, in order.
    pub timeline: Vec<String>,
}

/// What a fault left to undo.
enum Undo {
    Network,
    Restart(usize),
    Resume(usize),
    Disk,
}

/// Runs faults until `until`, then heals everything (the caller revives members).
pub async fn run(
    topo: &Topology,
    cluster: &mut NsCluster,
    clients: &[MemberClient],
    until: Instant,
    start: Instant,
    seed: u64,
) -> Result<NemesisLog, String> {
    let mut rng = Rng::new(seed);
    let n = clients.len();
    let mut log = NemesisLog::default();
    let mut order: Vec<Fault> = Vec::new();
    // Bounded by time; each round takes several seconds.
    for round in 0..10_000u32 {
        let hold = Duration::from_millis(2000 + rng.below(2000));
        if Instant::now() + hold >= until {
            break;
        }
        if order.is_empty() {
            order = Fault::all(n);
            rng.shuffle(&mut order);
        }
        let fault = order.pop().expect("refilled");
        let at = start.elapsed().as_secs_f64();
        let (undo, what) = inject(fault, topo, cluster, clients, &mut rng).await?;
        *log.injected.entry(fault).or_default() += 1;
        log.timeline
            .push(format!("{at:7.1}s #{round} {}: {what}", fault.label()));
        if fault == Fault::DiskFull {
            log.disk_full.push(disk_full_probe(cluster, clients).await);
        } else {
            tokio::time::sleep(hold).await;
        }
        heal(undo, topo, cluster, clients).await?;
        tokio::time::sleep(Duration::from_millis(1500 + rng.below(1500))).await;
    }
    Ok(log)
}

/// Which member leads, as the members report it (`None` if they do not answer).
pub async fn leader(clients: &[MemberClient]) -> Option<usize> {
    let mut ids = Vec::new();
    let mut leader = None;
    for c in clients {
        let mut m = c.maintenance.clone();
        let s = tokio::time::timeout(Duration::from_secs(1), m.status(pb::StatusRequest {})).await;
        match s {
            Ok(Ok(s)) => {
                let s = s.into_inner();
                ids.push(s.header.map(|h| h.member_id));
                if s.leader != 0 {
                    leader = Some(s.leader);
                }
            }
            _ => ids.push(None),
        }
    }
    let leader = leader?;
    ids.iter().position(|id| *id == Some(leader))
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Half the time the leader (any member when none is known), else any member.
async fn leader_or_any(clients: &[MemberClient], rng: &mut Rng) -> usize {
    if rng.below(2) == 0 {
        if let Some(i) = leader(clients).await {
            return i;
        }
    }
    rng.below(clients.len() as u64) as usize
}

async fn inject(
    fault: Fault,
    topo: &Topology,
    cluster: &mut NsCluster,
    clients: &[MemberClient],
    rng: &mut Rng,
) -> Result<(Undo, String), String> {
    let n = clients.len();
    let pick = |rng: &mut Rng| rng.below(n as u64) as usize;
    let others = |i: usize| (0..n).filter(|&j| j != i).collect::<Vec<_>>();
    Ok(match fault {
        Fault::IsolateOne | Fault::IsolateLeader => {
            let i = if fault == Fault::IsolateLeader {
                leader(clients).await.unwrap_or_else(|| pick(rng))
            } else {
                pick(rng)
            };
            blocking(|| topo.partition(&[vec![i], others(i)]))?;
            (Undo::Network, format!("m{i} alone"))
        }
        Fault::RandomHalves => {
            let mut all: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut all);
            let (a, b) = all.split_at(n / 2);
            blocking(|| topo.partition(&[a.to_vec(), b.to_vec()]))?;
            (Undo::Network, format!("{a:?} | {b:?}"))
        }
        Fault::MajoritiesRing => {
            let mut ring: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut ring);
            // Each member reaches the `reach` nearest on either side: with itself, a majority
            // (3 of 5), and its neighbours each see a different one.
            let reach = (n / 2).div_ceil(2);
            blocking(|| {
                for (p, &i) in ring.iter().enumerate() {
                    let far: Vec<usize> = (0..n)
                        .filter(|&q| {
                            let d = (q + n - p) % n;
                            d > reach && d < n - reach
                        })
                        .map(|q| ring[q])
                        .collect();
                    topo.drop_to(i, &far)?;
                }
                Ok::<(), String>(())
            })?;
            (Undo::Network, format!("ring {ring:?}"))
        }
        Fault::OneWay => {
            let i = pick(rng);
            if rng.below(2) == 0 {
                blocking(|| topo.drop_to(i, &others(i)))?;
                (Undo::Network, format!("m{i} cannot send to its peers"))
            } else {
                blocking(|| {
                    for j in others(i) {
                        topo.drop_to(j, &[i])?;
                    }
                    Ok::<(), String>(())
                })?;
                (Undo::Network, format!("m{i} hears no peer"))
            }
        }
        Fault::LossySlow => {
            let mut all: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut all);
            let k = 1 + rng.below(n as u64) as usize;
            let chosen = all[..k].to_vec();
            blocking(|| {
                for &i in &chosen {
                    topo.degrade(i, 10)?;
                }
                Ok::<(), String>(())
            })?;
            let how = if topo.has_netem {
                "netem delay 40±20ms"
            } else {
                "tbf 2mbit"
            };
            (Undo::Network, format!("{chosen:?}: 10% loss, {how}"))
        }
        Fault::Kill => {
            let i = leader_or_any(clients, rng).await;
            blocking(|| cluster.kill9(i));
            (Undo::Restart(i), format!("m{i} killed"))
        }
        Fault::Pause => {
            let i = leader_or_any(clients, rng).await;
            blocking(|| cluster.pause(i));
            (Undo::Resume(i), format!("m{i} stopped"))
        }
        Fault::DiskFull => {
            let bytes = blocking(|| cluster.fill_disk())?;
            (Undo::Disk, format!("m0's tmpfs filled (+{bytes} bytes)"))
        }
    })
}

/// While member 0's disk is full: writes through it must get an error answer (bounded), and
/// another member must serve a linearizable read. The writes carry 64 KiB values: the member
/// keeps writing into log space it preallocated before the disk filled (1 MiB by default,
/// as etcd writes into its preallocated segment), and the probe must get past that.
async fn disk_full_probe(cluster: &mut NsCluster, clients: &[MemberClient]) -> DiskFullCheck {
    let mut check = DiskFullCheck {
        write_error: None,
        write_timeouts: 0,
        others_serve: false,
        still_running: false,
        nospace_alarm: false,
    };
    let mut full = clients[0].kv.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0..100u32 {
        if Instant::now() >= deadline {
            break;
        }
        let put = pb::PutRequest {
            key: b"chaos/probe".to_vec(),
            value: format!("p{i:05}").into_bytes().repeat(64 * 1024 / 6),
            ..Default::default()
        };
        match tokio::time::timeout(Duration::from_secs(3), full.put(put)).await {
            Ok(Ok(_)) => {}
            Ok(Err(s)) => {
                check.write_error = Some(format!("{:?}: {}", s.code(), s.message()));
                break;
            }
            Err(_) => check.write_timeouts += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut other = clients[1].kv.clone();
    for _ in 0..20u32 {
        let get = pb::RangeRequest {
            key: b"chaos/probe".to_vec(),
            ..Default::default()
        };
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), other.range(get)).await {
            check.others_serve = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut m = clients[1].maintenance.clone();
    for _ in 0..30u32 {
        let get = pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Get as i32,
            member_id: 0,
            alarm: pb::AlarmType::None as i32,
        };
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(3), m.alarm(get)).await {
            let alarms = r.into_inner().alarms;
            if alarms
                .iter()
                .any(|a| a.alarm == pb::AlarmType::Nospace as i32)
            {
                check.nospace_alarm = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    check.still_running = blocking(|| cluster.members[0].is_running());
    check
}

async fn heal(
    undo: Undo,
    topo: &Topology,
    cluster: &mut NsCluster,
    clients: &[MemberClient],
) -> Result<(), String> {
    match undo {
        Undo::Network => blocking(|| topo.heal()),
        Undo::Restart(i) => blocking(|| cluster.launch(i)),
        Undo::Resume(i) => {
            blocking(|| cluster.resume(i));
            Ok(())
        }
        Undo::Disk => {
            blocking(|| {
                cluster.free_disk()?;
                cluster.kill9(0);
                cluster.launch(0)
            })?;
            disarm_alarms(clients, Duration::from_secs(15)).await
        }
    }
}

/// Deactivates every active alarm (a NOSPACE alarm stays until an operator disarms it, as in
/// etcd), retrying through any member for at most `limit`.
pub async fn disarm_alarms(clients: &[MemberClient], limit: Duration) -> Result<(), String> {
    use pb::alarm_request::AlarmAction;
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    for attempt in 0..1000usize {
        if Instant::now() >= deadline {
            break;
        }
        let mut m = clients[attempt % clients.len()].maintenance.clone();
        let get = pb::AlarmRequest {
            action: AlarmAction::Get as i32,
            member_id: 0,
            alarm: pb::AlarmType::None as i32,
        };
        let listed = tokio::time::timeout(Duration::from_secs(3), m.alarm(get)).await;
        match listed {
            Ok(Ok(r)) => {
                let alarms = r.into_inner().alarms;
                if alarms.is_empty() {
                    return Ok(());
                }
                for a in alarms {
                    let off = pb::AlarmRequest {
                        action: AlarmAction::Deactivate as i32,
                        member_id: a.member_id,
                        alarm: a.alarm,
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(3), m.alarm(off)).await;
                }
            }
            Ok(Err(s)) => last = format!("{:?}: {}", s.code(), s.message()),
            Err(_) => last = "timeout".into(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!("alarms still active after {limit:?}: {last}"))
}
