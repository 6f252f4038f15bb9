//! TLS for the client and peer listeners, from etcd's flags: reading the PEM files
//! (`--cert-file`, `--key-file`, `--trusted-ca-file`, and the `--peer-*` ones), checking
//! them at startup (unreadable files, files without PEM items, a key that does not match its
//! certificate, client verification without a CA) with the flag and path in the error, and
//! building the rustls configurations: tonic's for the gRPC listeners, the transport's
//! [`PeerTls`] for peers. Uses the ring provider throughout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::transport::PeerTls;

/// The PEM files of one listener, as etcd's flags name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// This member's certificate chain (leaf first).
    pub cert_file: PathBuf,
    /// The private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates that sign the other side's certificates.
    pub trusted_ca_file: Option<PathBuf>,
    /// Refuse connections without a certificate signed by `trusted_ca_file`.
    pub client_cert_auth: bool,
}

/// Which listener's flags a [`TlsError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsSide {
    Client,
    Peer,
}

impl TlsSide {
    fn flag(self, name: &str) -> String {
        match self {
            TlsSide::Client => format!("--{name}"),
            TlsSide::Peer => format!("--peer-{name}"),
        }
    }
}

/// Why a listener's TLS could not be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{flag} {path}: cannot read: {source}")]
    Read {
        flag: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{flag} {path}: no usable PEM {what}: {why}")]
    Pem {
        flag: String,
        path: PathBuf,
        what: &'static str,
        why: String,
    },
    #[error("{cert_flag} {cert} and {key_flag} {key} do not go together: {why}")]
    KeyMismatch {
        cert_flag: String,
        cert: PathBuf,
        key_flag: String,
        key: PathBuf,
        why: String,
    },
    #[error("{flag} {path}: bad CA certificate: {why}")]
    BadCa {
        flag: String,
        path: PathBuf,
        why: String,
    },
    #[error("{needs} needs {flag}")]
    Missing { needs: String, flag: String },
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// A client that has not finished its TLS handshake by then is disconnected.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the PEM files hold, checked.
struct Loaded {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca_pem: Option<Vec<u8>>,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Option<Arc<RootCertStore>>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn read(side: TlsSide, flag: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        flag: side.flag(flag),
        path: path.to_path_buf(),
        source,
    })
}

fn parse_certs(
    side: TlsSide,
    flag: &str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| TlsError::Pem {
        flag: side.flag(flag),
        path: path.to_path_buf(),
        what: "certificate",
        why,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("the file has no CERTIFICATE section".into()));
    }
    Ok(certs)
}

fn load(side: TlsSide, files: &TlsFiles) -> Result<Loaded, TlsError> {
    let cert_pem = read(side, "cert-file", &files.cert_file)?;
    let key_pem = read(side, "key-file", &files.key_file)?;
    let certs = parse_certs(side, "cert-file", &files.cert_file, &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        flag: side.flag("key-file"),
        path: files.key_file.clone(),
        what: "private key",
        why: e.to_string(),
    })?;
    // The key must be usable and belong to the certificate.
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| TlsError::KeyMismatch {
            cert_flag: side.flag("cert-file"),
            cert: files.cert_file.clone(),
            key_flag: side.flag("key-file"),
            key: files.key_file.clone(),
            why: e.to_string(),
        })?;
    let (ca_pem, roots) = match &files.trusted_ca_file {
        None => (None, None),
        Some(path) => {
            let pem = read(side, "trusted-ca-file", path)?;
            let mut roots = RootCertStore::empty();
            for c in parse_certs(side, "trusted-ca-file", path, &pem)? {
                roots.add(c).map_err(|e| TlsError::BadCa {
                    flag: side.flag("trusted-ca-file"),
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            }
            (Some(pem), Some(Arc::new(roots)))
        }
    };
    if files.client_cert_auth && roots.is_none() {
        return Err(TlsError::Missing {
            needs: side.flag("client-cert-auth"),
            flag: side.flag("trusted-ca-file"),
        });
    }
    Ok(Loaded {
        cert_pem,
        key_pem,
        ca_pem,
        certs,
        key,
        roots,
    })
}

/// tonic's TLS for the client listeners: this member's certificate, and with
/// `client_cert_auth` a required client certificate signed by the trusted CA.
pub fn client_tls(files: &TlsFiles) -> Result<tonic::transport::ServerTlsConfig, TlsError> {
    let loaded = load(TlsSide::Client, files)?;
    let identity = tonic::transport::Identity::from_pem(loaded.cert_pem, loaded.key_pem);
    let mut cfg = tonic::transport::ServerTlsConfig::new()
        .identity(identity)
        .timeout(HANDSHAKE_TIMEOUT);
    if files.client_cert_auth {
        let ca = loaded.ca_pem.expect("checked by load");
        cfg = cfg.client_ca_root(tonic::transport::Certificate::from_pem(ca));
    }
    Ok(cfg)
}

/// The peer transport's TLS: accept with this member's certificate (verifying the dialer's
/// with `client_cert_auth`), dial trusting the peer CA and presenting this member's
/// certificate.
pub fn peer_tls(files: &TlsFiles) -> Result<PeerTls, TlsError> {
    let loaded = load(TlsSide::Peer, files)?;
    let Some(roots) = loaded.roots else {
        return Err(TlsError::Missing {
            needs: "peer TLS (https peer URLs)".into(),
            flag: TlsSide::Peer.flag("trusted-ca-file"),
        });
    };
    let rustls = |e: tokio_rustls::rustls::Error| TlsError::Rustls(e.to_string());
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls)?;
    let server = if files.client_cert_auth {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        server.with_client_cert_verifier(verifier)
    } else {
        server.with_no_client_auth()
    };
    let server = server
        .with_single_cert(loaded.certs.clone(), loaded.key.clone_key())
        .map_err(rustls)?;
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(loaded.certs, loaded.key)
        .map_err(rustls)?;
    Ok(PeerTls::new(Arc::new(server), Arc::new(client)))
}
