//! The requests each benchmark sends: keys and values drawn per client from a seeded RNG,
//! one [`ClientOp`] per client holding its gRPC clients and any per-client state (a lease
//! and its keep-alive stream).

use futures::channel::mpsc;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::{kv_client::KvClient, lease_client::LeaseClient};
use tonic::transport::Channel;

use super::{BenchOp, Consistency, WriteShape};

/// One benchmark's request recipe (shared by all clients).
#[derive(Clone, Debug)]
pub enum Op {
    Put {
        shape: WriteShape,
        value: Vec<u8>,
    },
    Range(pb::RangeRequest),
    TxnPut {
        shape: WriteShape,
        value: Vec<u8>,
        txn_ops: usize,
    },
    LeaseKeepalive,
}

impl Op {
    pub fn new(op: &BenchOp, seed: u64) -> anyhow::Result<Op> {
        let value = |size: usize| {
            let mut v = vec![0u8; size];
            StdRng::seed_from_u64(seed ^ 0x5eed_7a1e).fill_bytes(&mut v);
            v
        };
        let check = |s: &WriteShape| -> anyhow::Result<()> {
            anyhow::ensure!(s.key_size > 0, "--key-size must be at least 1");
            anyhow::ensure!(s.key_space_size > 0, "--key-space-size must be at least 1");
            Ok(())
        };
        Ok(match op {
            BenchOp::Put(shape) => {
                check(shape)?;
                Op::Put {
                    shape: shape.clone(),
                    value: value(shape.val_size),
                }
            }
            BenchOp::Range {
                key,
                end,
                consistency,
                limit,
            } => Op::Range(pb::RangeRequest {
                key: key.clone().into_bytes(),
                range_end: end.clone().map(String::into_bytes).unwrap_or_default(),
                limit: *limit,
                serializable: *consistency == Consistency::S,
                ..Default::default()
            }),
            BenchOp::TxnPut { shape, txn_ops } => {
                check(shape)?;
                anyhow::ensure!(*txn_ops > 0, "--txn-ops must be at least 1");
                anyhow::ensure!(
                    *txn_ops as u64 <= shape.key_space_size,
                    "--txn-ops must not exceed --key-space-size (keys in a txn are distinct)"
                );
                Op::TxnPut {
                    shape: shape.clone(),
                    value: value(shape.val_size),
                    txn_ops: *txn_ops,
                }
            }
            BenchOp::LeaseKeepalive => Op::LeaseKeepalive,
            BenchOp::WatchLatency { .. }
            | BenchOp::ReplicationFloor { .. }
            | BenchOp::ReplicationFloorMember(_) => {
                unreachable!("watch-latency and replication-floor have their own drivers")
            }
        })
    }

    /// Client `index`'s state over `channel` (grants its lease for keep-alive).
    pub async fn client(
        &self,
        index: usize,
        seed: u64,
        channel: Channel,
    ) -> Result<ClientOp, tonic::Status> {
        let lease = match self {
            Op::LeaseKeepalive => {
                let mut lc = LeaseClient::new(channel.clone());
                let grant = lc
                    .lease_grant(pb::LeaseGrantRequest { ttl: 600, id: 0 })
                    .await?
                    .into_inner();
                let (mut tx, rx) = mpsc::channel(1);
                // One renewal goes out before the stream opens and its answer is not timed:
                // a grpc-go server (etcd) sends the response headers only with its first
                // answer, and opening the call waits for them.
                tx.try_send(pb::LeaseKeepAliveRequest { id: grant.id })
                    .map_err(|e| tonic::Status::internal(e.to_string()))?;
                let mut answers = lc.lease_keep_alive(rx).await?.into_inner();
                match answers.next().await {
                    Some(Ok(_)) => {}
                    Some(Err(s)) => return Err(s),
                    None => return Err(tonic::Status::unavailable("keep-alive stream ended")),
                }
                Some(KeepAlive {
                    id: grant.id,
                    tx,
                    answers,
                    client: lc,
                })
            }
            _ => None,
        };
        Ok(ClientOp {
            op: self.clone(),
            kv: KvClient::new(channel),
            rng: StdRng::seed_from_u64(seed.wrapping_add(index as u64)),
            lease,
        })
    }
}

struct KeepAlive {
    id: i64,
    tx: mpsc::Sender<pb::LeaseKeepAliveRequest>,
    answers: tonic::Streaming<pb::LeaseKeepAliveResponse>,
    client: LeaseClient<Channel>,
}

/// One client's gRPC clients and state.
pub struct ClientOp {
    op: Op,
    kv: KvClient<Channel>,
    rng: StdRng,
    lease: Option<KeepAlive>,
}

impl ClientOp {
    /// Sends request number `ticket` (of all clients') and waits for its answer.
    pub async fn step(&mut self, ticket: u64) -> Result<(), String> {
        let status = |s: tonic::Status| format!("{:?}: {}", s.code(), s.message());
        match &self.op {
            Op::Put { shape, value } => {
                let key = key_for(shape, ticket, &mut self.rng);
                self.kv
                    .put(pb::PutRequest {
                        key,
                        value: value.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(status)?;
            }
            Op::Range(req) => {
                self.kv.range(req.clone()).await.map_err(status)?;
            }
            Op::TxnPut {
                shape,
                value,
                txn_ops,
            } => {
                let mut keys: Vec<Vec<u8>> = Vec::with_capacity(*txn_ops);
                let mut n = 0u64;
                while keys.len() < *txn_ops {
                    let k = key_for(shape, ticket * (*txn_ops as u64) + n, &mut self.rng);
                    n += 1;
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                let success = keys
                    .into_iter()
                    .map(|key| pb::RequestOp {
                        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                            key,
                            value: value.clone(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                self.kv
                    .txn(pb::TxnRequest {
                        success,
                        ..Default::default()
                    })
                    .await
                    .map_err(status)?;
            }
            Op::LeaseKeepalive => {
                let ka = self
                    .lease
                    .as_mut()
                    .expect("keep-alive clients hold a lease");
                ka.tx
                    .try_send(pb::LeaseKeepAliveRequest { id: ka.id })
                    .map_err(|e| format!("keep-alive stream closed: {e}"))?;
                match ka.answers.next().await {
                    Some(Ok(r)) if r.ttl > 0 => {}
                    Some(Ok(_)) => return Err(format!("lease {:x} not found", ka.id)),
                    Some(Err(s)) => return Err(status(s)),
                    None => return Err("keep-alive stream ended".into()),
                }
            }
        }
        Ok(())
    }

    /// Revokes the client's lease, if it holds one (best effort, at the end of a run).
    pub async fn finish(&mut self) {
        if let Some(ka) = &mut self.lease {
            let _ = ka
                .client
                .lease_revoke(pb::LeaseRevokeRequest { id: ka.id })
                .await;
        }
    }
}

/// The key of request `ticket`: its number (in order, or drawn at random) in the key space,
/// big-endian and right-aligned in `key_size` bytes (the low bytes when the key is shorter).
fn key_for(shape: &WriteShape, ticket: u64, rng: &mut StdRng) -> Vec<u8> {
    let n = if shape.sequential_keys {
        ticket % shape.key_space_size
    } else {
        rng.random_range(0..shape.key_space_size)
    };
    let be = n.to_be_bytes();
    let mut key = vec![0u8; shape.key_size];
    let take = shape.key_size.min(8);
    key[shape.key_size - take..].copy_from_slice(&be[8 - take..]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(key_size: usize, space: u64, sequential: bool) -> WriteShape {
        WriteShape {
            key_size,
            val_size: 8,
            key_space_size: space,
            sequential_keys: sequential,
        }
    }

    #[test]
    fn sequential_keys_wrap_at_the_key_space_and_fill_the_key_size() {
        let mut rng = StdRng::seed_from_u64(0);
        let s = shape(10, 3, true);
        let keys: Vec<Vec<u8>> = (0..4).map(|t| key_for(&s, t, &mut rng)).collect();
        assert_eq!(keys[0], vec![0; 10]);
        assert_eq!(keys[1], [vec![0; 9], vec![1]].concat());
        assert_eq!(keys[3], keys[0]);
        let short = shape(2, 1 << 20, true);
        assert_eq!(key_for(&short, 0x0102_0304, &mut rng), vec![0x03, 0x04]);
    }

    #[test]
    fn random_keys_stay_in_the_key_space() {
        let mut rng = StdRng::seed_from_u64(7);
        let s = shape(8, 5, false);
        for t in 0..200 {
            let k = key_for(&s, t, &mut rng);
            assert!(u64::from_be_bytes(k.try_into().unwrap()) < 5);
        }
    }
}
