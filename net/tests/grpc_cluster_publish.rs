//! A member serves clients only once its `publish` (name and client URLs, through the log) is
//! applied, as etcd does (`ReadyNotify`): whoever reaches a member finds it listed with its
//! client URLs. In-process three-member cluster over real storage and TCP on 127.0.0.1.

#![cfg(not(madsim))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::cluster_client::ClusterClient;
use sextant_net::server::Server;
use tonic::transport::Channel;

async fn member_list(client_url: &str) -> Result<pb::MemberListResponse, tonic::Status> {
    let ch = Channel::from_shared(client_url.to_string())
        .unwrap()
        .connect_lazy();
    ClusterClient::new(ch)
        .member_list(pb::MemberListRequest {
            linearizable: false,
        })
        .await
        .map(|r| r.into_inner())
}

fn client_urls_of(list: &pb::MemberListResponse, id: u64) -> Vec<String> {
    list.members
        .iter()
        .find(|m| m.id == id)
        .map(|m| m.client_ur_ls.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_served_only_after_the_member_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<SocketAddr> = (0..3).map(|_| common::free_addr()).collect();
    let clients: Vec<SocketAddr> = (0..3).map(|_| common::free_addr()).collect();
    let initial = common::initial_cluster(&peers);
    let config = |i: usize| {
        let mut cfg = common::test_config(
            &format!("m{i}"),
            dir.path().join(format!("m{i}")),
            peers[i],
            initial.clone(),
            "grpc-cluster-publish-test",
        );
        cfg.listen_client = vec![clients[i]];
        cfg.advertise_client_urls = vec![format!("http://{}", clients[i])];
        cfg
    };

    // Alone, the first member has no quorum: its publish cannot commit, so it must not answer
    // (it would list itself without client URLs).
    let first = Server::start(config(0)).await.expect("member starts");
    let first_url = format!("http://{}", clients[0]);
    let early = tokio::spawn({
        let url = first_url.clone();
        async move { member_list(&url).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !early.is_finished(),
        "a member without quorum answered before publishing: {:?}",
        early.await
    );

    let mut servers = vec![first];
    for i in 1..3 {
        servers.push(Server::start(config(i)).await.expect("member starts"));
    }
    let list = tokio::time::timeout(Duration::from_secs(20), early)
        .await
        .expect("answered once published")
        .unwrap()
        .expect("member list");
    assert_eq!(
        client_urls_of(&list, servers[0].member_id),
        [first_url.as_str()]
    );

    // Every member, as soon as it answers, lists itself with its client URLs.
    for (i, s) in servers.iter().enumerate() {
        let url = format!("http://{}", clients[i]);
        let list = tokio::time::timeout(Duration::from_secs(20), member_list(&url))
            .await
            .expect("answered")
            .expect("member list");
        assert_eq!(
            client_urls_of(&list, s.member_id),
            [url.as_str()],
            "{list:?}"
        );
    }

    // A restarted member's attributes are already applied: it serves at once, even without
    // quorum.
    let mut servers = servers.into_iter();
    let first = servers.next().unwrap();
    for s in servers {
        s.shutdown().await;
    }
    first.shutdown().await;
    let again = Server::start(config(0)).await.expect("member restarts");
    let list = tokio::time::timeout(Duration::from_secs(10), member_list(&first_url))
        .await
        .expect("a restarted member serves without quorum")
        .expect("member list");
    assert_eq!(client_urls_of(&list, again.member_id), [first_url.as_str()]);
    again.shutdown().await;
}
