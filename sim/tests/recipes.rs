//! The coordination recipes (`sextant_net::recipes`) on a simulated three-member cluster:
//! locks exclude each other and hand out growing fencing tokens, a waiter whose lease ends
//! leaves the queue, and elections elect, proclaim, are observed and resign — also while the
//! contenders talk to different members.
#![cfg(madsim)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use madsim::runtime::Runtime;
use sextant_core::kv::{Command, PutRequest};
use sextant_net::node::NodeHandle;
use sextant_net::recipes::{self, RecipeError};
use sextant_sim::harness::cluster::{ClusterSpec, SimCluster};

/// Starts a 3-member cluster and waits until it accepts a write; returns every member's handle.
async fn cluster() -> (SimCluster, Vec<NodeHandle>) {
    let c = SimCluster::start(ClusterSpec::default());
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let handles: Vec<NodeHandle> = c.ids().into_iter().filter_map(|id| c.handle(id)).collect();
        if handles.len() < 3 {
            continue;
        }
        let put = Command::Put(PutRequest {
            key: Bytes::from_static(b"ready"),
            value: Bytes::from_static(b"1"),
            ..Default::default()
        });
        if handles[0].write(put).await.is_ok() {
            return (c, handles);
        }
    }
    panic!("the cluster never accepted a write");
}

#[test]
fn locks_exclude_each_other_and_fencing_tokens_grow() {
    let rt = Runtime::with_seed_and_config(1, madsim::Config::default());
    rt.block_on(async {
        let (_c, handles) = cluster().await;
        let holder: Arc<Mutex<Option<usize>>> = Default::default();
        let tokens: Arc<Mutex<Vec<i64>>> = Default::default();
        let mut tasks = Vec::new();
        for who in 0..4usize {
            // Contenders talk to different members.
            let node = handles[who % handles.len()].clone();
            let (holder, tokens) = (holder.clone(), tokens.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..4 {
                    let lease = node.lease_grant(0, 10).await.expect("grant").id;
                    let held = recipes::lock(&node, b"jobs", lease).await.expect("lock");
                    {
                        let mut h = holder.lock().unwrap();
                        assert_eq!(*h, None, "{who} acquired while {h:?} holds the lock");
                        *h = Some(who);
                        tokens.lock().unwrap().push(held.fencing_token);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    *holder.lock().unwrap() = None;
                    recipes::unlock(&node, held.key).await.expect("unlock");
                    node.lease_revoke(lease).await.expect("revoke");
                }
            }));
        }
        for t in tasks {
            t.await.expect("contender");
        }
        let tokens = tokens.lock().unwrap().clone();
        assert_eq!(tokens.len(), 16);
        assert!(
            tokens.windows(2).all(|w| w[0] < w[1]),
            "fencing tokens must grow with every acquisition: {tokens:?}"
        );
    });
}

#[test]
fn a_waiter_whose_lease_ends_leaves_the_queue() {
    let rt = Runtime::with_seed_and_config(2, madsim::Config::default());
    rt.block_on(async {
        let (_c, h) = cluster().await;
        let a = h[0].lease_grant(0, 30).await.unwrap().id;
        let held = recipes::lock(&h[0], b"L", a).await.unwrap();
        // B waits on a short lease that nobody keeps alive: it must give up, not hang.
        let b = h[1].lease_grant(0, 2).await.unwrap().id;
        let waited = tokio::time::timeout(Duration::from_secs(15), recipes::lock(&h[1], b"L", b))
            .await
            .expect("the waiter must leave the queue when its lease ends");
        assert!(
            matches!(waited, Err(RecipeError::SessionExpired { .. })),
            "{waited:?}"
        );
        // C queues behind A, and gets the lock once A lets go.
        let c = h[2].lease_grant(0, 30).await.unwrap().id;
        let node = h[2].clone();
        let waiter = tokio::spawn(async move { recipes::lock(&node, b"L", c).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "C must wait while A holds the lock");
        recipes::unlock(&h[0], held.key).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("C acquires after A unlocks")
            .unwrap()
            .unwrap();
        assert!(got.fencing_token > held.fencing_token);
    });
}

#[test]
fn elections_elect_proclaim_observe_and_resign() {
    let rt = Runtime::with_seed_and_config(3, madsim::Config::default());
    rt.block_on(async {
        let (_c, h) = cluster().await;
        assert_eq!(
            recipes::leader(&h[0], b"e").await.unwrap_err(),
            RecipeError::NoLeader
        );
        let mut seen = recipes::observe(h[2].clone(), Bytes::from_static(b"e"), 16);
        let la = h[0].lease_grant(0, 30).await.unwrap().id;
        let (_, a) = recipes::campaign(&h[0], b"e", la, Bytes::from_static(b"a"))
            .await
            .unwrap();
        let next = |v: Option<Result<sextant_core::kv::KeyValue, RecipeError>>| {
            v.expect("observation").expect("no error").value
        };
        assert_eq!(next(seen.recv().await), "a");
        // B campaigns on another member and must wait.
        let lb = h[1].lease_grant(0, 30).await.unwrap().id;
        let node = h[1].clone();
        let b = tokio::spawn(async move {
            recipes::campaign(&node, b"e", lb, Bytes::from_static(b"b")).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!b.is_finished(), "B must wait while A leads");
        recipes::proclaim(&h[0], &a, Bytes::from_static(b"a2"))
            .await
            .unwrap();
        assert_eq!(next(seen.recv().await), "a2");
        let (_, kv) = recipes::leader(&h[1], b"e").await.unwrap();
        assert_eq!(kv.value, "a2");
        recipes::resign(&h[0], &a).await.unwrap();
        let (_, bk) = tokio::time::timeout(Duration::from_secs(5), b)
            .await
            .expect("B is elected once A resigns")
            .unwrap()
            .unwrap();
        assert!(bk.rev > a.rev);
        assert_eq!(next(seen.recv().await), "b");
        // A resigned: it may no longer proclaim.
        assert_eq!(
            recipes::proclaim(&h[0], &a, Bytes::from_static(b"late")).await,
            Err(RecipeError::NotLeader)
        );
    });
}

#[test]
fn sequential_keys_number_creations_in_order_and_ephemeral_ones_go_with_their_lease() {
    let rt = Runtime::with_seed_and_config(4, madsim::Config::default());
    rt.block_on(async {
        let (_c, h) = cluster().await;
        let created: Arc<Mutex<Vec<Bytes>>> = Default::default();
        let mut tasks = Vec::new();
        for (who, node) in h.iter().cloned().enumerate() {
            let created = created.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    let (key, _) = recipes::create_sequential(
                        &node,
                        b"queue",
                        Bytes::from(format!("{who}")),
                        0,
                    )
                    .await
                    .expect("create");
                    created.lock().unwrap().push(key);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut keys = created.lock().unwrap().clone();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "sequence numbers must be unique");
        assert_eq!(
            keys.first().unwrap(),
            &Bytes::from(format!("queue/{:020}", 0))
        );
        assert_eq!(
            keys.last().unwrap(),
            &Bytes::from(format!("queue/{:020}", n - 1))
        );
        // Ephemeral: on a lease nobody keeps alive, the key goes with it.
        let lease = h[0].lease_grant(0, 2).await.unwrap().id;
        let (key, _) =
            recipes::create_sequential(&h[0], b"services", Bytes::from("10.0.0.1"), lease)
                .await
                .unwrap();
        let get = |k: Bytes| sextant_core::kv::RangeRequest {
            key: k,
            ..Default::default()
        };
        assert_eq!(
            h[1].range(get(key.clone()), false)
                .await
                .unwrap()
                .range
                .kvs
                .len(),
            1
        );
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert!(h[1]
            .range(get(key), false)
            .await
            .unwrap()
            .range
            .kvs
            .is_empty());
    });
}
