//! Certificates for TLS tests, made with rcgen: a CA, and one certificate it signs for
//! 127.0.0.1 ..= 127.0.0.9 and `localhost`, good for serving and as a client certificate
//! (every member and client of a test shares it); plus a CA and certificate nobody trusts.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// PEM files in a directory, and their contents.
pub struct TestCerts {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// A key that does not belong to `cert_file`.
    pub other_key_file: PathBuf,
    /// A certificate (and its key) signed by another CA, which `ca_file` does not vouch for.
    pub untrusted_cert_file: PathBuf,
    pub untrusted_key_file: PathBuf,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub untrusted_cert_pem: String,
    pub untrusted_key_pem: String,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(issuer: &Issuer<'static, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let mut names: Vec<String> = (1..=9).map(|i| format!("127.0.0.{i}")).collect();
    names.push("localhost".into());
    let mut params = CertificateParams::new(names).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, "sextant");
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, issuer).expect("sign the leaf");
    (cert.pem(), key.serialize_pem())
}

impl TestCerts {
    /// Makes the certificates and writes them into `dir`.
    pub fn make(dir: &Path) -> TestCerts {
        std::fs::create_dir_all(dir).expect("cert dir");
        let (ca_pem, issuer) = ca("sextant test CA");
        let (cert_pem, key_pem) = leaf(&issuer);
        let (_, other_key_pem) = leaf(&issuer);
        let (_, other_issuer) = ca("untrusted CA");
        let (untrusted_cert_pem, untrusted_key_pem) = leaf(&other_issuer);
        let write = |name: &str, pem: &str| {
            let p = dir.join(name);
            std::fs::write(&p, pem).expect("write a PEM file");
            p
        };
        TestCerts {
            ca_file: write("ca.pem", &ca_pem),
            cert_file: write("cert.pem", &cert_pem),
            key_file: write("key.pem", &key_pem),
            other_key_file: write("other-key.pem", &other_key_pem),
            untrusted_cert_file: write("untrusted-cert.pem", &untrusted_cert_pem),
            untrusted_key_file: write("untrusted-key.pem", &untrusted_key_pem),
            ca_pem,
            cert_pem,
            key_pem,
            untrusted_cert_pem,
            untrusted_key_pem,
        }
    }

    /// Flags for TLS on client URLs (`--client-cert-auth` when `client_cert_auth`).
    pub fn client_flags(&self, client_cert_auth: bool) -> Vec<String> {
        let mut f = vec![
            "--cert-file".to_string(),
            path(&self.cert_file),
            "--key-file".into(),
            path(&self.key_file),
            "--trusted-ca-file".into(),
            path(&self.ca_file),
        ];
        if client_cert_auth {
            f.push("--client-cert-auth".into());
        }
        f
    }

    /// Flags for TLS between peers, with `--peer-client-cert-auth`.
    pub fn peer_flags(&self) -> Vec<String> {
        vec![
            "--peer-cert-file".to_string(),
            path(&self.cert_file),
            "--peer-key-file".into(),
            path(&self.key_file),
            "--peer-trusted-ca-file".into(),
            path(&self.ca_file),
            "--peer-client-cert-auth".into(),
        ]
    }
}

fn path(p: &Path) -> String {
    p.to_str().expect("UTF-8 temp path").to_string()
}
