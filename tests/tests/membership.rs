//! Dynamic membership end to end, with real processes and the etcd `Cluster` service: list,
//! add a learner through a follower, start it with `--initial-cluster-state existing`, catch
//! it up, promote it, re-address a member with MemberUpdate, remove a member (whose process
//! then exits) and keep writing through the rest.

use std::time::Duration;

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_tests::{client, eventually, EtcdClient, ProcessCluster, Tuning};
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(20);

/// The leader every running member agrees on, and the index of a member that is not it.
async fn leader_and_follower(c: &ProcessCluster, running: &[usize]) -> (u64, usize) {
    let found = eventually(LIMIT, || async {
        let mut leaders = Vec::new();
        let mut ids = Vec::new();
        for &k in running {
            let mut cl = client(&c.members[k].client_url()).await;
            let s = cl.status().await.ok()?;
            leaders.push(s.leader);
            ids.push(s.header?.member_id);
        }
        let l = leaders[0];
        // The leader must be one of `running`: right after a leader is removed, the others
        // still name it until they time out and elect one of themselves.
        if l == 0 || leaders.iter().any(|x| *x != l) || !ids.contains(&l) {
            return None;
        }
        let follower = running[ids.iter().position(|id| *id != l)?];
        Some((l, follower))
    })
    .await;
    found.unwrap_or_else(|| panic!("no agreed leader\n{}", c.logs()))
}

/// Waits until `f` holds for a member's (serializable) member list.
async fn list_until(
    cl: &mut EtcdClient,
    what: &str,
    f: impl Fn(&[pb::Member]) -> bool,
) -> Vec<pb::Member> {
    let got = eventually(LIMIT, || {
        let mut cl = cl.clone();
        let f = &f;
        async move {
            let l = cl.member_list(false).await.ok()?;
            f(&l.members).then_some(l.members)
        }
    })
    .await;
    got.unwrap_or_else(|| panic!("member list never showed {what}"))
}

fn names(ms: &[pb::Member]) -> Vec<String> {
    let mut v: Vec<String> = ms.iter().map(|m| m.name.clone()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_promote_update_remove() {
    // Frequent snapshots and log compaction: the new member is caught up by a snapshot,
    // which must carry the member registry.
    let tuning = Tuning {
        snapshot_count: 20,
        ..Tuning::default()
    };
    let mut c = ProcessCluster::start(3, tuning);
    let (_, follower) = leader_and_follower(&c, &[0, 1, 2]).await;

    // Every member lists the three, with the names and client URLs they published.
    for k in 0..3 {
        let mut cl = client(&c.members[k].client_url()).await;
        let ms = list_until(&mut cl, "three published members", |ms| {
            ms.len() == 3
                && ms
                    .iter()
                    .all(|m| !m.name.is_empty() && !m.client_ur_ls.is_empty())
        })
        .await;
        assert_eq!(names(&ms), ["n1", "n2", "n3"]);
        for m in &ms {
            let h = c.members.iter().find(|h| h.name == m.name).unwrap();
            assert_eq!(m.peer_ur_ls, vec![h.peer_url()]);
            assert_eq!(m.client_ur_ls, vec![h.client_url()]);
            assert!(!m.is_learner);
        }
        let lin = cl.member_list(true).await.expect("linearizable list");
        assert_eq!(lin.members.len(), 3);
        let h = lin.header.expect("header");
        assert_ne!(h.cluster_id, 0);
        assert_ne!(h.raft_term, 0);
        assert_eq!(
            h.member_id,
            ms.iter().find(|m| m.name == c.members[k].name).unwrap().id
        );
    }

    let mut fc = client(&c.members[follower].client_url()).await;
    for i in 0..60 {
        fc.put(&format!("fill{i}"), "x").await.expect("fill");
    }
    fc.put("before", "1").await.expect("put before the add");

    // Add a learner through a follower (forwarded to the leader).
    let k4 = c.add_member();
    let peer4 = c.members[k4].peer_url();
    let mut cluster = fc.cluster();
    let added = cluster
        .member_add(pb::MemberAddRequest {
            peer_ur_ls: vec![peer4.clone()],
            is_learner: true,
        })
        .await
        .unwrap_or_else(|e| panic!("member add: {e}\n{}", c.logs()))
        .into_inner();
    let new = added.member.expect("added member");
    assert_eq!(
        new.id,
        sextant_net::server::member_id(std::slice::from_ref(&peer4), "e2e")
    );
    assert!(new.is_learner);
    assert_eq!(new.peer_ur_ls, vec![peer4.clone()]);
    assert_eq!(added.members.len(), 4);
    let h = added.header.expect("header");
    assert_ne!(h.cluster_id, 0);
    assert_ne!(h.raft_term, 0);

    // etcd's refusals.
    let again = cluster
        .member_add(pb::MemberAddRequest {
            peer_ur_ls: vec![peer4.clone()],
            is_learner: true,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(again.message(), "etcdserver: Peer URLs already exists");
    let bad = cluster
        .member_add(pb::MemberAddRequest {
            peer_ur_ls: vec!["not a url".into()],
            is_learner: false,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad.message(), "etcdserver: given member URLs are invalid");
    let voter = added.members.iter().find(|m| !m.is_learner).unwrap().id;
    let not_learner = cluster
        .member_promote(pb::MemberPromoteRequest { id: voter })
        .await
        .unwrap_err();
    assert_eq!(not_learner.code(), Code::FailedPrecondition);
    assert_eq!(
        not_learner.message(),
        "etcdserver: can only promote a learner member"
    );
    let missing = cluster
        .member_remove(pb::MemberRemoveRequest { id: 12345 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.message(), "etcdserver: member not found");

    // The new member joins the running cluster and catches up.
    c.launch(k4);
    let c4 = client(&c.members[k4].client_url()).await;
    let caught_up = eventually(LIMIT, || {
        let mut c4 = c4.clone();
        async move { (c4.get("before", true).await.ok()?.as_deref() == Some("1")).then_some(()) }
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the learner never caught up\n{}",
        c.logs()
    );
    assert!(
        c.members[k4]
            .log()
            .contains("installed a snapshot from the leader"),
        "the learner was expected to catch up by snapshot\n{}",
        c.members[k4].log()
    );
    // Its registry (from that snapshot) names every member.
    let mut c4l = c4.clone();
    let ms = list_until(&mut c4l, "the registry on the new member", |ms| {
        ms.len() == 4 && ms.iter().filter(|m| !m.client_ur_ls.is_empty()).count() == 4
    })
    .await;
    assert!(ms.iter().any(|m| m.id == new.id && m.is_learner));

    // Promote it (through a follower; retried while it is not yet in sync).
    let new_id = new.id;
    let promoted = eventually(LIMIT, || {
        let mut cluster = cluster.clone();
        async move {
            match cluster
                .member_promote(pb::MemberPromoteRequest { id: new_id })
                .await
            {
                Ok(r) => Some(Ok(r.into_inner())),
                Err(e) if e.message().contains("in sync") => None,
                Err(e) => Some(Err(e)),
            }
        }
    })
    .await
    .expect("promote: learner never in sync")
    .unwrap_or_else(|e| panic!("promote: {e}\n{}", c.logs()));
    assert!(promoted.members.iter().all(|m| !m.is_learner));
    for k in 0..4 {
        let mut cl = client(&c.members[k].client_url()).await;
        let ms = list_until(&mut cl, "four published voters", |ms| {
            ms.len() == 4 && ms.iter().all(|m| !m.is_learner && !m.name.is_empty())
        })
        .await;
        assert_eq!(names(&ms), ["n1", "n2", "n3", "n4"]);
    }

    // MemberUpdate: re-address a follower and back; every member sees it. Asked through
    // another member: one with a wrong address hears from no leader (and a leader with one
    // hears no answers). A write caught in a leadership change times out, and is retried
    // as etcd clients retry "unavailable".
    let (leader, _) = leader_and_follower(&c, &[0, 1, 2, 3]).await;
    let ids: Vec<u64> = c
        .members
        .iter()
        .map(|m| {
            promoted
                .members
                .iter()
                .find(|p| p.name == m.name)
                .unwrap()
                .id
        })
        .collect();
    let ku = (0..4).find(|&k| ids[k] != leader).unwrap();
    let via = (0..4).find(|&k| k != ku).unwrap();
    let idu = ids[ku];
    let mut via_cluster = client(&c.members[via].client_url()).await.cluster();
    let own_url = c.members[ku].peer_url();
    let other_url = c.members[(ku + 1) % 4].peer_url();
    let moved = format!(
        "http://{}:{}",
        c.members[ku].ip,
        c.members[ku].peer_port + 1
    );
    let taken = via_cluster
        .member_update(pb::MemberUpdateRequest {
            id: idu,
            peer_ur_ls: vec![other_url],
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::FailedPrecondition);
    assert_eq!(taken.message(), "etcdserver: Peer URLs already exists");
    // While its address is wrong, the member itself hears nothing: only the others see it.
    for (url, restored) in [(moved, false), (own_url, true)] {
        let updated = eventually(LIMIT, || {
            let mut via_cluster = via_cluster.clone();
            let url = url.clone();
            async move {
                let r = via_cluster
                    .member_update(pb::MemberUpdateRequest {
                        id: idu,
                        peer_ur_ls: vec![url],
                    })
                    .await;
                match r {
                    Err(e) if e.code() == Code::Unavailable => None,
                    other => Some(other),
                }
            }
        })
        .await
        .expect("member update kept timing out")
        .unwrap_or_else(|e| panic!("member update to {url}: {e}\n{}", c.logs()))
        .into_inner();
        let m = updated.members.iter().find(|m| m.id == idu).unwrap();
        assert_eq!(m.peer_ur_ls, vec![url.clone()]);
        for k in (0..4).filter(|&k| restored || k != ku) {
            let mut cl = client(&c.members[k].client_url()).await;
            list_until(&mut cl, "the new peer URL", |ms| {
                ms.iter()
                    .any(|m| m.id == idu && m.peer_ur_ls == vec![url.clone()])
            })
            .await;
        }
    }

    // Remove a follower, asked through another member. The leader stops replicating to it as
    // soon as it appends the removal, so the follower learns it by asking the others once it
    // has had no leader for a while; its process exits; the other three keep serving.
    let (leader, _) = leader_and_follower(&c, &[0, 1, 2, 3]).await;
    let kr = (0..3).find(|&k| ids[k] != leader).unwrap();
    let rest: Vec<usize> = (0..4).filter(|&k| k != kr).collect();
    remove_and_wait(&mut c, rest[0], kr, ids[kr]).await;
    leader_and_follower(&c, &rest).await;
    let mut expected: Vec<String> = rest.iter().map(|&k| c.members[k].name.clone()).collect();
    expected.sort();
    for (i, &k) in rest.iter().enumerate() {
        let mut cl = client(&c.members[k].client_url()).await;
        let key = format!("after{i}");
        cl.put(&key, "x")
            .await
            .unwrap_or_else(|e| panic!("put through {}: {e}\n{}", c.members[k].name, c.logs()));
        assert_eq!(cl.get(&key, false).await.unwrap().as_deref(), Some("x"));
        let ms = list_until(&mut cl, "three members after the removal", |ms| {
            ms.len() == 3
        })
        .await;
        assert_eq!(names(&ms), expected);
    }

    // The member that joined restarts from its data dir (keeping the cluster id it learned).
    c.members[k4].kill9();
    c.launch(k4);
    let mut c4 = client(&c.members[k4].client_url()).await;
    let back = eventually(LIMIT, || {
        let mut c4 = c4.clone();
        async move { (c4.get("after0", false).await.ok()?.as_deref() == Some("x")).then_some(()) }
    })
    .await;
    assert!(back.is_some(), "n4 did not come back\n{}", c.logs());
    assert_eq!(c4.member_list(true).await.unwrap().members.len(), 3);

    // Remove the leader: it applies its own removal, hands leadership over and exits; the
    // two left keep serving.
    let (leader, _) = leader_and_follower(&c, &rest).await;
    let kl = rest.iter().copied().find(|&k| ids[k] == leader).unwrap();
    let two: Vec<usize> = rest.iter().copied().filter(|&k| k != kl).collect();
    remove_and_wait(&mut c, two[0], kl, leader).await;
    leader_and_follower(&c, &two).await;
    for &k in &two {
        let mut cl = client(&c.members[k].client_url()).await;
        cl.put("last", &c.members[k].name)
            .await
            .unwrap_or_else(|e| panic!("put through {}: {e}\n{}", c.members[k].name, c.logs()));
        assert_eq!(cl.member_list(true).await.unwrap().members.len(), 2);
    }
}

/// Removes member `k` (id `id`) by asking member `via`, then waits for `k`'s process to exit
/// cleanly, saying why. As etcd, the leader refuses a removal that would leave fewer voters
/// than a quorum connected to it for at least 5 s (e.g. right after a member restarted):
/// that refusal is retried (bounded).
async fn remove_and_wait(c: &mut ProcessCluster, via: usize, k: usize, id: u64) {
    let cluster = client(&c.members[via].client_url()).await.cluster();
    let removed = eventually(LIMIT, || {
        let mut cluster = cluster.clone();
        async move {
            match cluster.member_remove(pb::MemberRemoveRequest { id }).await {
                Err(e) if e.message().contains("not enough started members") => None,
                other => Some(other),
            }
        }
    })
    .await
    .expect("member remove kept being refused for want of started members")
    .unwrap_or_else(|e| panic!("member remove: {e}\n{}", c.logs()))
    .into_inner();
    assert!(removed.members.iter().all(|m| m.id != id));
    let status = c.members[k].wait_exit(LIMIT);
    let log = c.members[k].log();
    let name = &c.members[k].name;
    let status = status.unwrap_or_else(|| panic!("{name} kept running after removal\n{log}"));
    assert!(status.success(), "{name} exited with {status}\n{log}");
    assert!(
        log.contains("the member has been permanently removed from the cluster"),
        "{log}"
    );
}
