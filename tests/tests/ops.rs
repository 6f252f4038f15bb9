//! Operating a cluster of real `sextant` processes: Prometheus metrics and etcd's `/health`
//! (on the client URLs and on `--listen-metrics-urls`), TLS for clients (`https://` client
//! URLs, with and without `--client-cert-auth`) and for peers (a 3-member cluster over
//! `https://` peer URLs with `--peer-client-cert-auth`), clear startup errors for bad
//! certificate files, and a server process without transparent huge pages.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use sextant_tests::{
    client, client_with, eventually, http_get, sextant_bin, try_client, ClusterOptions,
    ProcessCluster, TestCerts, Tuning,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

const HTTP_WAIT: Duration = Duration::from_secs(10);

/// GET on a blocking thread.
async fn get(addr: SocketAddr, path: &'static str) -> std::io::Result<(u16, String)> {
    tokio::task::spawn_blocking(move || http_get(addr, path, HTTP_WAIT))
        .await
        .expect("http thread")
}

/// A scrape, parsed as the Prometheus text format: every sample by `name{labels}`.
async fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (code, body) = get(addr, "/metrics").await.expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    parsed
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            let key = if labels.is_empty() {
                s.metric
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            (key, value)
        })
        .collect()
}

fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:#?}", m.keys().collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_with_etcds_names_and_move() {
    let opts = ClusterOptions {
        metrics_urls: true,
        ..Default::default()
    };
    let c = ProcessCluster::start_with(1, Tuning::default(), opts);
    let m = &c.members[0];
    let mut cl = client(&m.client_url()).await;
    let ready = eventually(Duration::from_secs(20), || {
        let mut cl = cl.clone();
        async move { cl.put("warm", "up").await.ok() }
    })
    .await;
    assert!(ready.is_some(), "no write succeeded\n{}", c.logs());

    // The client port serves /metrics too (etcdctl `check datascale` reads it there).
    let before = scrape(m.client_addr()).await;
    for family in [
        "etcd_server_has_leader",
        "etcd_server_is_leader",
        "etcd_server_leader_changes_seen_total",
        "etcd_server_proposals_committed_total",
        "etcd_server_proposals_applied_total",
        "etcd_server_proposals_pending",
        "etcd_server_proposals_failed_total",
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_debugging_mvcc_keys_total",
        "etcd_debugging_mvcc_watcher_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "sextant_node_loop_slow_turns_total",
    ] {
        assert!(
            before
                .keys()
                .any(|k| k == family || k.starts_with(&format!("{family}{{"))),
            "family {family} missing"
        );
    }
    assert_eq!(value(&before, "etcd_server_has_leader"), 1.0);
    assert_eq!(value(&before, "etcd_server_is_leader"), 1.0);
    assert!(value(&before, "etcd_server_leader_changes_seen_total") >= 1.0);
    assert!(value(&before, "process_resident_memory_bytes") > 0.0);
    assert!(value(&before, "etcd_disk_wal_fsync_duration_seconds") >= 1.0);
    // One series per threshold (`value` panics on a missing sample); how many turns were
    // slow depends on the machine, so no count is asserted.
    for over in ["0.01", "0.1", "1"] {
        value(
            &before,
            &format!("sextant_node_loop_slow_turns_total{{over={over}}}"),
        );
    }

    for i in 0..10 {
        cl.put(&format!("k{i}"), "v").await.expect("put");
    }
    let _ = cl.get("missing", false).await.expect("get");
    // The metrics listener serves the same registry.
    let after = scrape(m.metrics_addr()).await;
    let committed = "etcd_server_proposals_committed_total";
    assert!(
        value(&after, committed) >= value(&before, committed) + 10.0,
        "{committed}: {} then {}",
        value(&before, committed),
        value(&after, committed)
    );
    assert!(value(&after, "etcd_server_proposals_applied_total") >= value(&after, committed) - 1.0);
    assert_eq!(value(&after, "etcd_debugging_mvcc_keys_total"), 11.0);
    let puts =
        "grpc_server_handled_total{grpc_code=OK,grpc_method=Put,grpc_service=etcdserverpb.KV}";
    assert!(value(&after, puts) >= 10.0);
    let ranges =
        "grpc_server_handled_total{grpc_code=OK,grpc_method=Range,grpc_service=etcdserverpb.KV}";
    assert!(value(&after, ranges) >= 1.0);
    assert!(
        value(&after, "etcd_disk_wal_fsync_duration_seconds")
            > value(&before, "etcd_disk_wal_fsync_duration_seconds")
    );

    let (code, body) = get(m.metrics_addr(), "/health").await.expect("GET /health");
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"health":"true","reason":""}"#)
    );
    let (code, _) = get(m.metrics_addr(), "/nope").await.expect("GET /nope");
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_without_a_quorum() {
    let mut c = ProcessCluster::start(3, Tuning::default());
    let survivor = c.members[2].client_addr();
    let healthy = eventually(Duration::from_secs(20), || async move {
        let (code, body) = get(survivor, "/health").await.ok()?;
        (code == 200).then_some(body)
    })
    .await;
    assert_eq!(
        healthy.as_deref(),
        Some(r#"{"health":"true","reason":""}"#),
        "never healthy\n{}",
        c.logs()
    );
    c.members[0].kill9();
    c.members[1].kill9();
    let unhealthy = eventually(Duration::from_secs(30), || async move {
        let (code, body) = get(survivor, "/health").await.ok()?;
        (code == 503).then_some(body)
    })
    .await
    .unwrap_or_else(|| panic!("still healthy with 2 of 3 members dead\n{}", c.logs()));
    assert!(
        unhealthy.starts_with(r#"{"health":"false","reason":""#) && unhealthy.len() > 35,
        "{unhealthy}"
    );
    let m = c.members[2].client_addr();
    let metrics = scrape(m).await;
    assert_eq!(value(&metrics, "etcd_server_is_leader"), 0.0);
}

/// The server turns transparent huge pages off for itself before it starts (the kernel
/// zeroing 2 MiB at each first touch of mimalloc's arenas cost 8.7 % of a put benchmark's
/// CPU); Linux reports the process's setting in `/proc/PID/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_without_transparent_huge_pages() {
    let c = ProcessCluster::start(1, Tuning::default());
    let m = &c.members[0];
    let cl = client(&m.client_url()).await;
    let served = eventually(Duration::from_secs(20), || {
        let mut cl = cl.clone();
        async move { cl.put("k", "v").await.ok() }
    })
    .await;
    assert!(served.is_some(), "never served\n{}", c.logs());
    let pid = m.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let thp: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("THP_enabled:"))
        .collect();
    assert_eq!(thp, ["THP_enabled:\t0"], "{status}");
}

fn tls_to(certs: &TestCerts, with_cert: bool) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&certs.ca_pem))
        .domain_name("127.0.0.1");
    if with_cert {
        tls.identity(Identity::from_pem(&certs.cert_pem, &certs.key_pem))
    } else {
        tls
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_over_tls_and_plaintext_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = TestCerts::make(dir.path());
    let opts = ClusterOptions {
        client_https: true,
        extra_args: certs.client_flags(false),
        ..Default::default()
    };
    let c = ProcessCluster::start_with(1, Tuning::default(), opts);
    let m = &c.members[0];
    assert!(m.client_url().starts_with("https://"));
    let mut cl = client_with(&m.client_url(), Some(tls_to(&certs, false))).await;
    let put = eventually(Duration::from_secs(20), || {
        let mut cl = cl.clone();
        async move { cl.put("a", "b").await.ok() }
    })
    .await;
    assert!(put.is_some(), "no put over TLS\n{}", c.logs());
    assert_eq!(cl.get("a", false).await.expect("get").as_deref(), Some("b"));

    // Plaintext gRPC to the TLS port fails.
    let plain = format!("http://{}", m.client_addr());
    let r = try_client(&plain, None, Duration::from_secs(2)).await;
    assert!(r.is_err(), "plaintext client was served by a TLS port");
    // So does TLS that does not trust the server's CA.
    let wrong_ca = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&certs.untrusted_cert_pem))
        .domain_name("127.0.0.1");
    let r = try_client(&m.client_url(), Some(wrong_ca), Duration::from_secs(2)).await;
    assert!(r.is_err(), "a client trusting another CA connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_auth_refuses_clients_without_a_trusted_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = TestCerts::make(dir.path());
    let opts = ClusterOptions {
        client_https: true,
        extra_args: certs.client_flags(true),
        ..Default::default()
    };
    let c = ProcessCluster::start_with(1, Tuning::default(), opts);
    let url = c.members[0].client_url();
    let cl = client_with(&url, Some(tls_to(&certs, true))).await;
    let put = eventually(Duration::from_secs(20), || {
        let mut cl = cl.clone();
        async move { cl.put("a", "b").await.ok() }
    })
    .await;
    assert!(
        put.is_some(),
        "no put with a client certificate\n{}",
        c.logs()
    );

    let r = try_client(&url, Some(tls_to(&certs, false)), Duration::from_secs(2)).await;
    assert!(r.is_err(), "a client without a certificate was served");
    let untrusted = tls_to(&certs, false).identity(Identity::from_pem(
        &certs.untrusted_cert_pem,
        &certs.untrusted_key_pem,
    ));
    let r = try_client(&url, Some(untrusted), Duration::from_secs(2)).await;
    assert!(
        r.is_err(),
        "a client with an untrusted certificate was served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_and_replicate_over_peer_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = TestCerts::make(dir.path());
    let opts = ClusterOptions {
        peer_https: true,
        extra_args: certs.peer_flags(),
        ..Default::default()
    };
    let c = ProcessCluster::start_with(3, Tuning::default(), opts);
    assert!(c.members[0].peer_url().starts_with("https://"));
    let mut c1 = client(&c.members[0].client_url()).await;
    let put = eventually(Duration::from_secs(20), || {
        let mut cl = c1.clone();
        async move { cl.put("k0", "v").await.ok() }
    })
    .await;
    assert!(put.is_some(), "no write over peer TLS\n{}", c.logs());
    for i in 1..20 {
        c1.put(&format!("k{i}"), "v").await.expect("put");
    }
    for m in &c.members[1..] {
        let mut cl = client(&m.client_url()).await;
        assert_eq!(
            cl.count_prefix("k", false)
                .await
                .expect("linearizable count"),
            20,
            "{}\n{}",
            m.name,
            c.logs()
        );
    }
    // Peer traffic is counted per peer.
    let metrics = scrape(c.members[0].client_addr()).await;
    let sent: f64 = metrics
        .iter()
        .filter(|(k, _)| k.starts_with("etcd_network_peer_sent_bytes_total{"))
        .map(|(_, v)| v)
        .sum();
    assert!(sent > 0.0, "no peer bytes counted");
    drop(c1);
    assert!(
        !c.logs().contains("TLS handshake failed"),
        "a TLS handshake failed\n{}",
        c.logs()
    );
}

/// `sextant server` with `args`, expected to refuse to start: its stderr.
fn refused(args: &[String]) -> String {
    let out = Command::new(sextant_bin())
        .arg("server")
        .args(args)
        .output()
        .expect("run sextant");
    assert!(!out.status.success(), "started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_certificate_files_are_refused_at_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = TestCerts::make(&dir.path().join("certs"));
    let base = |flags: Vec<String>| {
        let mut a = vec![
            "--data-dir".to_string(),
            dir.path().join("data").to_str().unwrap().to_string(),
            "--listen-client-urls".into(),
            "https://127.0.0.1:0".into(),
            "--listen-peer-urls".into(),
            "http://127.0.0.1:0".into(),
        ];
        a.extend(flags);
        a
    };
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let missing = refused(&base(vec![
        "--cert-file".into(),
        s(&dir.path().join("nope.pem")),
        "--key-file".into(),
        s(&certs.key_file),
    ]));
    assert!(
        missing.contains("--cert-file") && missing.contains("cannot read"),
        "{missing}"
    );
    let mismatched = refused(&base(vec![
        "--cert-file".into(),
        s(&certs.cert_file),
        "--key-file".into(),
        s(&certs.other_key_file),
    ]));
    assert!(mismatched.contains("do not go together"), "{mismatched}");
    let not_pem = refused(&base(vec![
        "--cert-file".into(),
        s(&certs.key_file),
        "--key-file".into(),
        s(&certs.key_file),
    ]));
    assert!(not_pem.contains("no usable PEM certificate"), "{not_pem}");
    let no_ca = refused(&base(vec![
        "--cert-file".into(),
        s(&certs.cert_file),
        "--key-file".into(),
        s(&certs.key_file),
        "--client-cert-auth".into(),
    ]));
    assert!(
        no_ca.contains("--client-cert-auth needs --trusted-ca-file"),
        "{no_ca}"
    );
}
