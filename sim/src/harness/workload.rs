//! Workload clients: concurrent put / get / delete / compare-and-set (a txn comparing the
//! value, or `create_revision == 0` for "absent", then putting) against random members, each
//! call bounded
//! by a timeout, recorded in the history the linearizability checker judges. A write whose
//! outcome the client cannot know (timeout, member crashed mid-request) is recorded as such;
//! one refused before it was ever proposed is recorded as failed (no effect). Reads are
//! linearizable (ReadIndex at the leader, or forwarded by a follower and served once applied).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use madsim::rand::Rng;
use sextant_core::kv::{
    Command, CommandResult, Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};
use sextant_core::NodeId;
use sextant_net::node::ClientError;

use super::cluster::SimCluster;
use crate::checker::{HistoryRecorder, KvInput, KvOutput};

/// Microseconds of simulated time since the run started.
pub fn now_micros(start: tokio::time::Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub clients: u64,
    pub keys: u64,
    /// A client gives up on a call after this long (its outcome is then unknown).
    pub call_timeout: Duration,
}

/// Whether a failed write certainly had no effect (it was never proposed).
fn write_had_no_effect(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Kv(_)
            | ClientError::NoLeader
            | ClientError::TooLarge { .. }
            | ClientError::Busy
    )
}

/// Runs one client until `stop`.
pub async fn client(
    client_id: u64,
    spec: WorkloadSpec,
    cluster: Arc<Mutex<SimCluster>>,
    history: Arc<Mutex<HistoryRecorder>>,
    stop: Arc<AtomicBool>,
    start: tokio::time::Instant,
) {
    let mut seq = 0u64;
    // The last value this client saw per key: what its compare-and-sets expect.
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    while !stop.load(Ordering::SeqCst) {
        let (target, key, pick) = {
            let mut rng = madsim::rand::thread_rng();
            let c = cluster.lock().expect("cluster");
            let ids: Vec<NodeId> = c.ids();
            let target = ids[rng.gen_range(0..ids.len())];
            (
                c.handle(target),
                format!("k{}", rng.gen_range(0..spec.keys)),
                rng.gen_range(0..12u32),
            )
        };
        let Some(node) = target else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        seq += 1;
        let value = format!("c{client_id}-{seq}");
        let input = match pick {
            0..=3 => KvInput::put(key.clone(), value),
            4..=8 => KvInput::get(key.clone()),
            9 => KvInput::delete(key.clone()),
            _ => KvInput::Cas {
                key: key.clone(),
                expected: seen.get(&key).cloned().flatten(),
                new: value,
            },
        };
        let op = history
            .lock()
            .expect("history")
            .call(client_id, now_micros(start), input.clone())
            .expect("record call");
        let outcome = match &input {
            KvInput::Put { key, value } => {
                let cmd = Command::Put(PutRequest {
                    key: Bytes::from(key.clone()),
                    value: Bytes::from(value.clone()),
                    ..Default::default()
                });
                tokio::time::timeout(spec.call_timeout, node.write(cmd))
                    .await
                    .map(|r| r.map(|_| KvOutput::Put))
            }
            KvInput::Delete { key } => {
                let cmd = Command::DeleteRange(DeleteRangeRequest {
                    key: Bytes::from(key.clone()),
                    range_end: Bytes::new(),
                    prev_kv: false,
                });
                tokio::time::timeout(spec.call_timeout, node.write(cmd))
                    .await
                    .map(|r| {
                        r.map(|out| match out.result {
                            CommandResult::DeleteRange { deleted, .. } => KvOutput::Delete {
                                deleted: Some(deleted > 0),
                            },
                            _ => KvOutput::Delete { deleted: None },
                        })
                    })
            }
            KvInput::Get { key } => {
                let req = RangeRequest {
                    key: Bytes::from(key.clone()),
                    ..Default::default()
                };
                tokio::time::timeout(spec.call_timeout, node.range(req, false))
                    .await
                    .map(|r| {
                        r.map(|out| {
                            KvOutput::Get(
                                out.range
                                    .kvs
                                    .first()
                                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                            )
                        })
                    })
            }
            KvInput::Cas { key, expected, new } => {
                let k = Bytes::from(key.clone());
                let target = match expected {
                    Some(v) => CompareTarget::Value(Bytes::from(v.clone())),
                    None => CompareTarget::Create(0),
                };
                let cmd = Command::Txn(TxnRequest {
                    compare: vec![Compare {
                        key: k.clone(),
                        range_end: Bytes::new(),
                        target,
                        result: CompareResult::Equal,
                    }],
                    success: vec![RequestOp::Put(PutRequest {
                        key: k,
                        value: Bytes::from(new.clone()),
                        ..Default::default()
                    })],
                    failure: vec![],
                });
                tokio::time::timeout(spec.call_timeout, node.write(cmd))
                    .await
                    .map(|r| {
                        r.map(|out| match out.result {
                            CommandResult::Txn(t) => KvOutput::Cas {
                                swapped: t.succeeded,
                            },
                            other => panic!("a txn answered {other:?}"),
                        })
                    })
            }
        };
        match (&input, &outcome) {
            (KvInput::Get { key }, Ok(Ok(KvOutput::Get(v)))) => {
                seen.insert(key.clone(), v.clone());
            }
            (KvInput::Cas { key, new, .. }, Ok(Ok(KvOutput::Cas { swapped: true }))) => {
                seen.insert(key.clone(), Some(new.clone()));
            }
            _ => {}
        }
        let t = now_micros(start);
        let is_read = matches!(input, KvInput::Get { .. });
        {
            let mut h = history.lock().expect("history");
            let r = match outcome {
                Ok(Ok(out)) => h.ret(op, t, out),
                // Reads have no effect; a failed one constrains nothing.
                Ok(Err(e)) if is_read => h.fail(op, t, e.to_string()),
                Ok(Err(e)) if write_had_no_effect(&e) => h.fail(op, t, e.to_string()),
                Ok(Err(e)) => h.unknown(op, t, e.to_string()),
                Err(_) if is_read => h.fail(op, t, "client timeout"),
                Err(_) => h.unknown(op, t, "client timeout"),
            };
            r.expect("record return");
        }
        let think = madsim::rand::thread_rng().gen_range(0..5u64);
        tokio::time::sleep(Duration::from_millis(think)).await;
    }
}
