//! A 3-member cluster of real `sextant` processes on 127.0.0.1-3, exercised with an
//! independent etcd v3 client: replication, `kill -9` of the leader, restart and catch-up by
//! log and by snapshot, and clean shutdown.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sextant_tests::{client, eventually, EtcdClient, ProcessCluster, Tuning};

/// The leader as every running member reports it, once they agree on one other than `not`.
async fn agreed_leader(c: &mut ProcessCluster, limit: Duration, not: Option<u64>) -> Option<u64> {
    let urls: Vec<String> = c
        .members
        .iter_mut()
        .filter_map(|m| m.is_running().then(|| m.client_url()))
        .collect();
    eventually(limit, || {
        let urls = urls.clone();
        async move {
            let mut seen = None;
            for u in &urls {
                let mut cl = client(u).await;
                let st = cl.status().await.ok()?;
                if st.leader == 0 || Some(st.leader) == not || seen.is_some_and(|l| l != st.leader)
                {
                    return None;
                }
                seen = Some(st.leader);
            }
            seen
        }
    })
    .await
}

/// Index of the member whose id is `id`.
async fn member_index(c: &ProcessCluster, id: u64) -> usize {
    for (k, m) in c.members.iter().enumerate() {
        let mut cl = client(&m.client_url()).await;
        if let Ok(st) = cl.status().await {
            if st.header.map(|h| h.member_id) == Some(id) {
                return k;
            }
        }
    }
    panic!("no member has id {id:x}");
}

async fn get(cl: &mut EtcdClient, key: &str, serializable: bool) -> Option<String> {
    cl.get(key, serializable).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_and_survive_leader_kill() {
    let mut c = ProcessCluster::start(3, Tuning::default());
    let leader = agreed_leader(&mut c, Duration::from_secs(20), None).await;
    let leader = leader.unwrap_or_else(|| panic!("no leader elected\n{}", c.logs()));

    // Writes through one member are read (linearizably) from the others.
    let mut c1 = client(&c.members[0].client_url()).await;
    let mut acked = BTreeMap::new();
    for i in 0..50 {
        let (k, v) = (format!("key{i:03}"), format!("value{i}"));
        c1.put(&k, &v)
            .await
            .unwrap_or_else(|e| panic!("put {k}: {e}\n{}", c.logs()));
        acked.insert(k, v);
    }
    for m in &c.members[1..] {
        let mut cl = client(&m.client_url()).await;
        for (k, v) in &acked {
            assert_eq!(
                get(&mut cl, k, false).await.as_deref(),
                Some(v.as_str()),
                "{} reading {k}",
                m.name
            );
        }
    }

    // kill -9 the leader right after more acknowledged writes.
    let lk = member_index(&c, leader).await;
    let mut lc = client(&c.members[lk].client_url()).await;
    for i in 50..80 {
        let (k, v) = (format!("key{i:03}"), format!("value{i}"));
        lc.put(&k, &v).await.unwrap();
        acked.insert(k, v);
    }
    let killed_at = Instant::now();
    c.members[lk].kill9();

    // A new leader within a few election timeouts.
    let new_leader = agreed_leader(&mut c, Duration::from_secs(10), Some(leader)).await;
    let new_leader = new_leader.unwrap_or_else(|| panic!("no new leader\n{}", c.logs()));
    let took = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    assert!(
        took < Duration::from_millis(c.tuning.election_ms * 8),
        "new leader after {took:?} (election timeout {} ms)",
        c.tuning.election_ms
    );

    // No acknowledged write lost, read through a survivor.
    let survivor = (0..3).find(|&k| k != lk).unwrap();
    let mut sc = client(&c.members[survivor].client_url()).await;
    for (k, v) in &acked {
        assert_eq!(
            get(&mut sc, k, false).await.as_deref(),
            Some(v.as_str()),
            "lost {k}\n{}",
            c.logs()
        );
    }
    // The cluster keeps taking writes with one member down.
    for i in 80..100 {
        let (k, v) = (format!("key{i:03}"), format!("value{i}"));
        sc.put(&k, &v).await.unwrap();
        acked.insert(k, v);
    }

    // The killed member restarts from its data dir and catches up by log.
    c.launch(lk);
    let mut rc = client(&c.members[lk].client_url()).await;
    let caught_up =
        eventually(Duration::from_secs(15), || {
            let mut rc = rc.clone();
            async move {
                (get(&mut rc, "key099", true).await.as_deref() == Some("value99")).then_some(())
            }
        })
        .await;
    assert!(
        caught_up.is_some(),
        "restarted member did not catch up\n{}",
        c.logs()
    );
    for (k, v) in &acked {
        assert_eq!(
            get(&mut rc, k, true).await.as_deref(),
            Some(v.as_str()),
            "restarted member lacks {k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_catches_up_by_snapshot_after_compaction() {
    // Snapshot every 20 entries, keeping 10 behind: a member that misses 200 writes can only
    // catch up from a snapshot.
    let tuning = Tuning {
        snapshot_count: 20,
        ..Tuning::default()
    };
    let mut c = ProcessCluster::start(3, tuning);
    let leader = agreed_leader(&mut c, Duration::from_secs(20), None)
        .await
        .expect("leader");
    let lk = member_index(&c, leader).await;
    let fk = (0..3).find(|&k| k != lk).unwrap();
    c.members[fk].kill9();

    let mut lc = client(&c.members[lk].client_url()).await;
    for i in 0..200 {
        lc.put(&format!("k{i:03}"), &format!("v{i}")).await.unwrap();
    }
    c.launch(fk);
    let mut fc = client(&c.members[fk].client_url()).await;
    let caught_up = eventually(Duration::from_secs(20), || {
        let mut fc = fc.clone();
        async move { (get(&mut fc, "k199", true).await.as_deref() == Some("v199")).then_some(()) }
    })
    .await;
    assert!(caught_up.is_some(), "member did not catch up\n{}", c.logs());
    assert_eq!(fc.count_prefix("k", true).await.unwrap(), 200);
    assert!(
        c.members[fk]
            .log()
            .contains("installed a snapshot from the leader"),
        "catch-up did not go through a snapshot\n{}",
        c.members[fk].log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_clean_shutdown_and_restart_keeps_data() {
    let mut c = ProcessCluster::start(1, Tuning::default());
    let mut cl = client(&c.members[0].client_url()).await;
    for i in 0..20 {
        cl.put(&format!("k{i}"), &format!("v{i}")).await.unwrap();
    }
    let status = c.members[0].terminate().expect("was running");
    assert!(
        status.success(),
        "unclean exit on SIGTERM: {status:?}\n{}",
        c.logs()
    );
    assert!(
        c.members[0].log().contains("member stopped"),
        "{}",
        c.logs()
    );
    c.launch(0);
    let mut cl = client(&c.members[0].client_url()).await;
    let v = eventually(Duration::from_secs(10), || {
        let mut cl = cl.clone();
        async move { get(&mut cl, "k19", false).await }
    })
    .await;
    assert_eq!(v.as_deref(), Some("v19"), "{}", c.logs());
    assert_eq!(cl.count_prefix("k", false).await.unwrap(), 20);
}
