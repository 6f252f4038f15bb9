//! The chaos test's clients, on the host, over the etcd v3 gRPC API: key/value workers doing
//! put / get / delete / compare-and-set (a txn comparing the value, or `create_revision == 0`
//! for "absent", then putting) with unique values on a few keys, recorded in the history the
//! linearizability checker judges; and lock workers taking the v3lock `Lock` with a lease,
//! reading their fencing token (the owner key's create revision) and recording when they
//! held it. Every call is bounded by a timeout.
//!
//! Outcomes: a get that fails had no effect (recorded failed). A write refused with a clean
//! etcd error (`InvalidArgument`, `ResourceExhausted` such as NOSPACE, `FailedPrecondition`,
//! `NotFound`, `OutOfRange`) was refused by the state machine or before being proposed and is
//! recorded failed; any other error (`Unavailable`, a timeout, a broken connection) may or may
//! not have applied and is recorded unknown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::v3lockpb as lockpb;
use sextant_sim::checker::{HistoryRecorder, KvInput, KvOutput};
use tonic::transport::{Channel, Endpoint};

use super::Rng;

/// A key/value call gives up after this long (its outcome is then unknown).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The TTL of a lock worker's lease; holds are far shorter.
pub const LOCK_TTL_SECS: i64 = 10;
/// The lock every lock worker takes.
const LOCK_NAME: &str = "chaos-lock";

/// Microseconds since the run started, the history's clock.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn micros(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).expect("fits")
    }
}

/// One member's gRPC services, on one lazily connected channel.
#[derive(Clone)]
pub struct MemberClient {
    pub kv: pb::kv_client::KvClient<Channel>,
    pub lease: pb::lease_client::LeaseClient<Channel>,
    pub lock: lockpb::lock_client::LockClient<Channel>,
    pub maintenance: pb::maintenance_client::MaintenanceClient<Channel>,
}

impl MemberClient {
    /// A client that connects on first use and reconnects after failures.
    pub fn new(url: &str) -> MemberClient {
        let ch = Endpoint::from_shared(url.to_string())
            .expect("valid url")
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        MemberClient {
            kv: pb::kv_client::KvClient::new(ch.clone()),
            lease: pb::lease_client::LeaseClient::new(ch.clone()),
            lock: lockpb::lock_client::LockClient::new(ch.clone()),
            maintenance: pb::maintenance_client::MaintenanceClient::new(ch),
        }
    }
}

/// The shared history; times are taken under its lock so they never go back.
#[derive(Clone, Default)]
pub struct History(Arc<Mutex<HistoryRecorder>>);

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, HistoryRecorder> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn call(&self, clock: Clock, client: u64, input: KvInput) -> sextant_sim::checker::OpId {
        let mut h = self.lock();
        h.call(client, clock.micros(), input).expect("record call")
    }

    /// Records the outcome of `op`.
    pub fn complete(
        &self,
        clock: Clock,
        op: sextant_sim::checker::OpId,
        is_read: bool,
        outcome: Result<KvOutput, Failure>,
    ) {
        let mut h = self.lock();
        let t = clock.micros();
        let r = match outcome {
            Ok(out) => h.ret(op, t, out),
            Err(f) if is_read || f.definite => h.fail(op, t, f.message),
            Err(f) => h.unknown(op, t, f.message),
        };
        r.expect("record completion");
    }

    pub fn snapshot(&self) -> HistoryRecorder {
        self.lock().clone()
    }
}

/// A failed call: whether it certainly had no effect, and why.
#[derive(Debug)]
pub struct Failure {
    pub definite: bool,
    pub message: String,
}

impl Failure {
    fn timeout() -> Failure {
        Failure {
            definite: false,
            message: "client timeout".into(),
        }
    }

    fn status(s: &tonic::Status) -> Failure {
        use tonic::Code;
        let definite = matches!(
            s.code(),
            Code::InvalidArgument
                | Code::ResourceExhausted
                | Code::FailedPrecondition
                | Code::NotFound
                | Code::OutOfRange
        );
        Failure {
            definite,
            message: format!("{:?}: {}", s.code(), s.message()),
        }
    }
}

/// Runs `fut` with [`CALL_TIMEOUT`], turning errors into [`Failure`]s.
async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(Failure::status(&s)),
        Err(_) => Err(Failure::timeout()),
    }
}

/// Performs one key/value operation.
pub async fn perform(c: &mut MemberClient, input: &KvInput) -> Result<KvOutput, Failure> {
    match input {
        KvInput::Put { key, value } => {
            let req = pb::PutRequest {
                key: key.clone().into_bytes(),
                value: value.clone().into_bytes(),
                ..Default::default()
            };
            bounded(c.kv.put(req)).await.map(|_| KvOutput::Put)
        }
        KvInput::Get { key } => {
            let req = pb::RangeRequest {
                key: key.clone().into_bytes(),
                serializable: false,
                ..Default::default()
            };
            let r = bounded(c.kv.range(req)).await?;
            Ok(KvOutput::Get(
                r.kvs
                    .first()
                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
            ))
        }
        KvInput::Delete { key } => {
            let req = pb::DeleteRangeRequest {
                key: key.clone().into_bytes(),
                ..Default::default()
            };
            let r = bounded(c.kv.delete_range(req)).await?;
            Ok(KvOutput::Delete {
                deleted: Some(r.deleted > 0),
            })
        }
        KvInput::Cas { key, expected, new } => {
            use pb::compare::{CompareResult, CompareTarget, TargetUnion};
            let (target, union) = match expected {
                Some(v) => (
                    CompareTarget::Value,
                    TargetUnion::Value(v.clone().into_bytes()),
                ),
                None => (CompareTarget::Create, TargetUnion::CreateRevision(0)),
            };
            let req = pb::TxnRequest {
                compare: vec![pb::Compare {
                    result: CompareResult::Equal as i32,
                    target: target as i32,
                    key: key.clone().into_bytes(),
                    range_end: Vec::new(),
                    target_union: Some(union),
                }],
                success: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                        key: key.clone().into_bytes(),
                        value: new.clone().into_bytes(),
                        ..Default::default()
                    })),
                }],
                failure: Vec::new(),
            };
            let r = bounded(c.kv.txn(req)).await?;
            Ok(KvOutput::Cas {
                swapped: r.succeeded,
            })
        }
    }
}

/// The key the workers use for index `k`.
pub fn key(k: u64) -> String {
    format!("chaos/k{k}")
}

/// Counts of key/value operations by outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpCounts {
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
}

/// One key/value worker: random operations on random members until `stop`.
pub async fn kv_worker(
    id: u64,
    keys: u64,
    members: Vec<MemberClient>,
    history: History,
    clock: Clock,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> OpCounts {
    let mut rng = Rng::new(seed);
    let mut counts = OpCounts::default();
    let mut seq = 0u64;
    // The last value this worker saw per key: what its compare-and-sets expect.
    let mut seen: Vec<Option<String>> = vec![None; usize::try_from(keys).expect("few keys")];
    while !stop.load(Ordering::SeqCst) {
        let mut c = members[rng.below(members.len() as u64) as usize].clone();
        let k = rng.below(keys);
        seq += 1;
        let value = format!("w{id}-{seq}");
        let input = match rng.below(12) {
            0..=3 => KvInput::put(key(k), value),
            4..=7 => KvInput::get(key(k)),
            8 => KvInput::delete(key(k)),
            _ => KvInput::Cas {
                key: key(k),
                expected: seen[k as usize].clone(),
                new: value,
            },
        };
        let is_read = matches!(input, KvInput::Get { .. });
        let op = history.call(clock, id, input.clone());
        let outcome = perform(&mut c, &input).await;
        match (&input, &outcome) {
            (KvInput::Get { .. }, Ok(KvOutput::Get(v))) => seen[k as usize] = v.clone(),
            (KvInput::Cas { new, .. }, Ok(KvOutput::Cas { swapped: true })) => {
                seen[k as usize] = Some(new.clone());
            }
            _ => {}
        }
        match &outcome {
            Ok(_) => counts.ok += 1,
            Err(f) if is_read || f.definite => counts.failed += 1,
            Err(_) => counts.unknown += 1,
        }
        history.complete(clock, op, is_read, outcome);
        tokio::time::sleep(Duration::from_millis(5 + rng.below(15))).await;
    }
    counts
}

/// One lock hold, as its worker saw it. Times are [`Clock`] microseconds.
#[derive(Clone, Debug)]
pub struct LockHold {
    pub worker: u64,
    /// The owner key's create revision.
    pub token: i64,
    /// When the lease was asked for: the lease cannot end before this plus its TTL.
    pub grant_call: u64,
    pub ttl_secs: i64,
    pub acquire_call: u64,
    pub acquire_return: u64,
    /// When the worker stopped relying on the lock (and asked to unlock).
    pub release_call: u64,
}

/// Counts of lock attempts by outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct LockCounts {
    pub held: u64,
    /// The lease grant or the lock call failed or timed out.
    pub failed: u64,
    /// Acquired, but the fencing token could not be read (not judged).
    pub token_unread: u64,
}

/// One lock worker: lease, lock, read the token, hold briefly, unlock, revoke; until `stop`.
pub async fn lock_worker(
    id: u64,
    members: Vec<MemberClient>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> (Vec<LockHold>, LockCounts) {
    let mut rng = Rng::new(seed);
    let mut holds = Vec::new();
    let mut counts = LockCounts::default();
    while !stop.load(Ordering::SeqCst) {
        let mut c = members[rng.below(members.len() as u64) as usize].clone();
        let grant_call = clock.micros();
        let grant = bounded(c.lease.lease_grant(pb::LeaseGrantRequest {
            ttl: LOCK_TTL_SECS,
            id: 0,
        }))
        .await;
        let Ok(grant) = grant else {
            counts.failed += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let lease = grant.id;
        let acquire_call = clock.micros();
        let locked = tokio::time::timeout(
            Duration::from_secs(5),
            c.lock.lock(lockpb::LockRequest {
                name: LOCK_NAME.as_bytes().to_vec(),
                lease,
            }),
        )
        .await;
        let acquire_return = clock.micros();
        match locked {
            Ok(Ok(resp)) => {
                let key = resp.into_inner().key;
                let token = bounded(c.kv.range(pb::RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                }))
                .await
                .ok()
                .and_then(|r| r.kvs.first().map(|kv| kv.create_revision));
                tokio::time::sleep(Duration::from_millis(20 + rng.below(80))).await;
                let release_call = clock.micros();
                match token {
                    Some(token) => {
                        counts.held += 1;
                        holds.push(LockHold {
                            worker: id,
                            token,
                            grant_call,
                            ttl_secs: grant.ttl.min(LOCK_TTL_SECS),
                            acquire_call,
                            acquire_return,
                            release_call,
                        });
                    }
                    None => counts.token_unread += 1,
                }
                let _ = bounded(c.lock.unlock(lockpb::UnlockRequest { key })).await;
            }
            _ => counts.failed += 1,
        }
        let _ = bounded(c.lease.lease_revoke(pb::LeaseRevokeRequest { id: lease })).await;
    }
    (holds, counts)
}
