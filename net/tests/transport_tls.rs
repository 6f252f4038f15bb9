//! The TCP peer transport over TLS on 127.0.0.1, with certificates made by rcgen: two nodes
//! with peer certificates from one CA exchange messages (bytes counted both ways), while a
//! node dialing without TLS, and one presenting a certificate from another CA, are refused
//! by a node that verifies its peers (`--peer-client-cert-auth`). The PEM files go through
//! the server's loader (`server::peer_tls`), as in production.
#![cfg(not(madsim))]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use sextant_net::core::{Message, MessageBody, NodeId};
use sextant_net::server::{peer_tls, TlsFiles};
use sextant_net::transport::{PeerTls, TcpTransport, TransportConfig};
use tokio::sync::mpsc;
use tokio::time::timeout;

const CLUSTER: u64 = 0x715;
const EVENT_LIMIT: Duration = Duration::from_secs(5);

/// A CA's certificate (PEM) and the issuer that signs with it.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// Writes a certificate for 127.0.0.1 signed by `issuer`, its key, and `ca_pem` as the
/// trusted CA, into `dir`; returns the files as the server's flags name them.
fn files(dir: &Path, issuer: &Issuer<'static, KeyPair>, ca_pem: &str) -> TlsFiles {
    std::fs::create_dir_all(dir).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, issuer).unwrap();
    let (c, k, a) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    std::fs::write(&a, ca_pem).unwrap();
    TlsFiles {
        cert_file: c,
        key_file: k,
        trusted_ca_file: Some(a),
        client_cert_auth: true,
    }
}

fn start(
    node: NodeId,
    listen: std::net::TcpListener,
    peers: &[(NodeId, SocketAddr)],
    tls: Option<PeerTls>,
) -> (TcpTransport, mpsc::Receiver<Message>) {
    let mut cfg = TransportConfig::new(CLUSTER, node, listen);
    cfg.peers = peers.iter().copied().collect();
    cfg.backoff_min = Duration::from_millis(10);
    cfg.backoff_max = Duration::from_millis(100);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.tls = tls;
    let (tx, rx) = mpsc::channel(64);
    (TcpTransport::start(cfg, tx).expect("transport starts"), rx)
}

fn heartbeat(from: NodeId, to: NodeId, round: u64) -> Message {
    Message {
        from,
        to,
        term: 1,
        body: MessageBody::Heartbeat {
            session: 1,
            commit: 0,
            round,
        },
    }
}

/// Sends heartbeats from `t` to `to` every 20 ms until `rx` (the receiver's) gets one.
async fn delivered(t: &TcpTransport, rx: &mut mpsc::Receiver<Message>, to: NodeId) -> bool {
    let from = t.node_id();
    let deadline = Instant::now() + EVENT_LIMIT;
    let mut round = 0;
    while Instant::now() < deadline {
        round += 1;
        let _ = t.send(heartbeat(from, to, round));
        if let Ok(Some(m)) = timeout(Duration::from_millis(20), rx.recv()).await {
            if m.from == from {
                return true;
            }
        }
    }
    false
}

fn listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_the_cas_certificates_talk_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, issuer) = ca("cluster CA");
    let (_, other_issuer) = ca("another CA");
    let tls1 = peer_tls(&files(&dir.path().join("1"), &issuer, &ca_pem)).unwrap();
    let tls2 = peer_tls(&files(&dir.path().join("2"), &issuer, &ca_pem)).unwrap();
    // Trusts the cluster CA (so it could verify node 1), but its own certificate is not
    // from it.
    let tls4 = peer_tls(&files(&dir.path().join("4"), &other_issuer, &ca_pem)).unwrap();

    let (l1, l2) = (listener(), listener());
    let (a1, a2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
    let (t1, mut rx1) = start(1, l1, &[(2, a2)], Some(tls1));
    let (t2, mut rx2) = start(2, l2, &[(1, a1)], Some(tls2));
    assert!(delivered(&t1, &mut rx2, 2).await, "1 -> 2 over TLS");
    assert!(delivered(&t2, &mut rx1, 1).await, "2 -> 1 over TLS");
    let s1 = t1.stats();
    assert!(s1.peers[&2].sent_bytes > 0);
    assert!(s1.received_bytes.get(&2).copied().unwrap_or(0) > 0);
    assert_eq!(s1.rejected_connections, 0);

    // Plain TCP to a TLS node: refused, nothing delivered.
    let (t3, _rx3) = start(3, listener(), &[(1, a1)], None);
    assert!(
        !delivered(&t3, &mut rx1, 1).await,
        "plaintext peer was served"
    );
    // A certificate from another CA: refused by a node verifying its peers.
    let (t4, _rx4) = start(4, listener(), &[(1, a1)], Some(tls4));
    assert!(
        !delivered(&t4, &mut rx1, 1).await,
        "untrusted peer was served"
    );
    assert!(t1.stats().rejected_connections >= 2);
    assert_eq!(t3.stats().peers[&1].connects, 0);
    assert_eq!(t4.stats().peers[&1].connects, 0);
    // The good pair still talks.
    assert!(delivered(&t2, &mut rx1, 1).await);
    for t in [t1, t2, t3, t4] {
        t.shutdown().await;
    }
}

#[test]
fn peer_tls_needs_a_trusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, issuer) = ca("cluster CA");
    let mut f = files(dir.path(), &issuer, &ca_pem);
    f.trusted_ca_file = None;
    let err = peer_tls(&f).unwrap_err().to_string();
    assert!(err.contains("--peer-trusted-ca-file"), "{err}");
    f.client_cert_auth = false;
    let err = peer_tls(&f).unwrap_err().to_string();
    assert_eq!(
        err,
        "peer TLS (https peer URLs) needs --peer-trusted-ca-file"
    );
}
