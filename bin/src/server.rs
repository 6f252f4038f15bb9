//! `sextant server`: etcd-style flags, an optional TOML config file (flags win over the file,
//! the file over defaults), structured logs, and a clean shutdown on SIGINT/SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use sextant_net::core::kv::AutoCompactionMode;
use sextant_net::server::{
    is_https, parse_url_list, resolve_listen, ClusterState, Server, ServerConfig, TlsFiles,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateArg {
    New,
    Existing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompactionModeArg {
    /// Keep `--auto-compaction-retention` of history (a duration like `30m`, or hours).
    Periodic,
    /// Keep the latest `--auto-compaction-retention` revisions.
    Revision,
}

/// Flags as etcd names them. Every flag can also be set in the `--config-file` (same names).
#[derive(Args, Debug, Default)]
pub struct ServerArgs {
    /// TOML file with any of the settings below (keys as the flag names, e.g. `data-dir`).
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// Human-readable name of this member [default: default].
    #[arg(long)]
    name: Option<String>,
    /// Where the log, snapshots and identity are kept [default: ./sextant.data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// URLs to serve clients on [default: http://127.0.0.1:2379].
    #[arg(long)]
    listen_client_urls: Option<String>,
    /// Client URLs advertised to the cluster [default: the listen URLs].
    #[arg(long)]
    advertise_client_urls: Option<String>,
    /// URL to listen for peers on [default: http://127.0.0.1:2380].
    #[arg(long)]
    listen_peer_urls: Option<String>,
    /// This member's peer URLs as the others reach them [default: the listen URL].
    #[arg(long)]
    initial_advertise_peer_urls: Option<String>,
    /// Initial members: `name=http://host:port,...` [default: this member alone].
    #[arg(long)]
    initial_cluster: Option<String>,
    /// `new` bootstraps a cluster; `existing` joins one [default: new].
    #[arg(long, value_enum)]
    initial_cluster_state: Option<StateArg>,
    /// Distinguishes clusters bootstrapped with the same members [default: sextant-cluster].
    #[arg(long)]
    initial_cluster_token: Option<String>,
    /// Leader heartbeat period in milliseconds (one Raft tick) [default: 100].
    #[arg(long)]
    heartbeat_interval: Option<u64>,
    /// Election timeout in milliseconds [default: 1000].
    #[arg(long)]
    election_timeout: Option<u64>,
    /// Entries applied between state-machine snapshots [default: 100000, as etcd 3.4].
    #[arg(long)]
    snapshot_count: Option<u64>,
    /// Largest client request in bytes [default: 1572864].
    #[arg(long)]
    max_request_bytes: Option<usize>,
    /// How long a request may wait for a leader and replication, in milliseconds [default: 5000].
    #[arg(long)]
    request_timeout: Option<u64>,
    /// Serve linearizable reads from the leader's lease (needs bounded clock drift).
    #[arg(long)]
    experimental_lease_reads: bool,
    /// Most compares, and most ops per branch, in one txn [default: 128].
    #[arg(long)]
    max_txn_ops: Option<usize>,
    /// `periodic` or `revision` [default: periodic].
    #[arg(long, value_enum)]
    auto_compaction_mode: Option<CompactionModeArg>,
    /// History to keep: a duration (`1h`, `30m`, or a number of hours) in periodic mode, a
    /// number of revisions in revision mode; 0 turns auto-compaction off [default: 0].
    #[arg(long)]
    auto_compaction_retention: Option<String>,
    /// Plain-HTTP URLs serving only /metrics and /health (they are on the client URLs too).
    #[arg(long)]
    listen_metrics_urls: Option<String>,
    /// Certificate (PEM) for https client URLs.
    #[arg(long)]
    cert_file: Option<PathBuf>,
    /// Private key (PEM) of --cert-file.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// CA certificates (PEM) that sign client certificates.
    #[arg(long)]
    trusted_ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate signed by --trusted-ca-file.
    #[arg(long)]
    client_cert_auth: bool,
    /// Certificate (PEM) for https peer URLs, presented both when accepting and dialing.
    #[arg(long)]
    peer_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --peer-cert-file.
    #[arg(long)]
    peer_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that sign the peers' certificates.
    #[arg(long)]
    peer_trusted_ca_file: Option<PathBuf>,
    /// Refuse peers without a certificate signed by --peer-trusted-ca-file.
    #[arg(long)]
    peer_client_cert_auth: bool,
    /// Log filter (e.g. `info`, `sextant_net=debug`) [default: info, or RUST_LOG].
    #[arg(long)]
    log_level: Option<String>,
}

/// The config file: the same settings, by flag name.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    name: Option<String>,
    data_dir: Option<PathBuf>,
    listen_client_urls: Option<String>,
    advertise_client_urls: Option<String>,
    listen_peer_urls: Option<String>,
    initial_advertise_peer_urls: Option<String>,
    initial_cluster: Option<String>,
    initial_cluster_state: Option<StateArg>,
    initial_cluster_token: Option<String>,
    heartbeat_interval: Option<u64>,
    election_timeout: Option<u64>,
    snapshot_count: Option<u64>,
    max_request_bytes: Option<usize>,
    request_timeout: Option<u64>,
    experimental_lease_reads: Option<bool>,
    max_txn_ops: Option<usize>,
    auto_compaction_mode: Option<CompactionModeArg>,
    auto_compaction_retention: Option<String>,
    listen_metrics_urls: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    trusted_ca_file: Option<PathBuf>,
    client_cert_auth: Option<bool>,
    peer_cert_file: Option<PathBuf>,
    peer_key_file: Option<PathBuf>,
    peer_trusted_ca_file: Option<PathBuf>,
    peer_client_cert_auth: Option<bool>,
    log_level: Option<String>,
}

fn resolve(args: ServerArgs) -> anyhow::Result<(ServerConfig, String)> {
    let file: FileConfig = match &args.config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let name = args.name.or(file.name).unwrap_or_else(|| "default".into());
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./sextant.data"));
    let listen_client = args
        .listen_client_urls
        .or(file.listen_client_urls)
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let listen_client_urls = parse_url_list(&listen_client).context("--listen-client-urls")?;
    let advertise_client_urls = match args.advertise_client_urls.or(file.advertise_client_urls) {
        Some(s) => parse_url_list(&s).context("--advertise-client-urls")?,
        None => listen_client_urls.clone(),
    };
    let listen_peer = args
        .listen_peer_urls
        .or(file.listen_peer_urls)
        .unwrap_or_else(|| "http://127.0.0.1:2380".into());
    let listen_peer_urls = parse_url_list(&listen_peer).context("--listen-peer-urls")?;
    if listen_peer_urls.len() != 1 {
        bail!("--listen-peer-urls: exactly one URL is supported");
    }
    let advertise_peer = match args
        .initial_advertise_peer_urls
        .or(file.initial_advertise_peer_urls)
    {
        Some(s) => parse_url_list(&s).context("--initial-advertise-peer-urls")?,
        None => listen_peer_urls.clone(),
    };
    let initial_cluster = match args.initial_cluster.or(file.initial_cluster) {
        Some(s) => parse_initial_cluster(&s)?,
        None => BTreeMap::from([(name.clone(), advertise_peer.clone())]),
    };
    match initial_cluster.get(&name) {
        None => bail!("--initial-cluster has no entry for this member's --name {name:?}"),
        Some(urls) if urls != &advertise_peer => bail!(
            "--initial-cluster lists {name}={} but --initial-advertise-peer-urls is {}",
            urls.join(","),
            advertise_peer.join(",")
        ),
        Some(_) => {}
    }
    let state = match args.initial_cluster_state.or(file.initial_cluster_state) {
        Some(StateArg::Existing) => ClusterState::Existing,
        _ => ClusterState::New,
    };
    let heartbeat = args
        .heartbeat_interval
        .or(file.heartbeat_interval)
        .unwrap_or(100);
    let election = args
        .election_timeout
        .or(file.election_timeout)
        .unwrap_or(1000);
    if heartbeat == 0 || election < heartbeat * 5 {
        bail!("--election-timeout ({election} ms) must be at least 5x --heartbeat-interval ({heartbeat} ms)");
    }
    let max_request_bytes = args
        .max_request_bytes
        .or(file.max_request_bytes)
        .unwrap_or(1536 * 1024);
    if max_request_bytes == 0 {
        bail!("--max-request-bytes must be positive");
    }
    let max_txn_ops = args.max_txn_ops.or(file.max_txn_ops).unwrap_or(128);
    if max_txn_ops == 0 {
        bail!("--max-txn-ops must be positive");
    }
    let auto_compaction = auto_compaction(
        args.auto_compaction_mode
            .or(file.auto_compaction_mode)
            .unwrap_or(CompactionModeArg::Periodic),
        args.auto_compaction_retention
            .or(file.auto_compaction_retention)
            .as_deref()
            .unwrap_or("0"),
    )?;
    let listen_metrics = match args.listen_metrics_urls.or(file.listen_metrics_urls) {
        None => Vec::new(),
        Some(s) => {
            let urls = parse_url_list(&s).context("--listen-metrics-urls")?;
            if let Some(u) = urls.iter().find(|u| is_https(u)) {
                bail!("--listen-metrics-urls: {u}: metrics are served over plain http only");
            }
            urls.iter()
                .map(|u| resolve_listen(u))
                .collect::<Result<_, _>>()
                .context("--listen-metrics-urls")?
        }
    };
    let client_tls = tls_files(
        "--listen-client-urls",
        &listen_client_urls,
        "",
        TlsFlags {
            cert_file: args.cert_file.or(file.cert_file),
            key_file: args.key_file.or(file.key_file),
            trusted_ca_file: args.trusted_ca_file.or(file.trusted_ca_file),
            client_cert_auth: args.client_cert_auth || file.client_cert_auth.unwrap_or(false),
        },
    )?;
    let every_peer_url: Vec<String> = initial_cluster.values().flatten().cloned().collect();
    let peer_tls = tls_files(
        "--listen-peer-urls",
        &listen_peer_urls,
        "peer-",
        TlsFlags {
            cert_file: args.peer_cert_file.or(file.peer_cert_file),
            key_file: args.peer_key_file.or(file.peer_key_file),
            trusted_ca_file: args.peer_trusted_ca_file.or(file.peer_trusted_ca_file),
            client_cert_auth: args.peer_client_cert_auth
                || file.peer_client_cert_auth.unwrap_or(false),
        },
    )?;
    let peer_scheme_https = peer_tls.is_some();
    if let Some(u) = every_peer_url
        .iter()
        .find(|u| is_https(u) != peer_scheme_https)
    {
        bail!(
            "--initial-cluster: {u}: every peer URL must use the scheme of --listen-peer-urls \
             ({}), since this member dials peers as it accepts them",
            if peer_scheme_https { "https" } else { "http" }
        );
    }
    let cfg = ServerConfig {
        name,
        data_dir,
        listen_client: listen_client_urls
            .iter()
            .map(|u| resolve_listen(u))
            .collect::<Result<_, _>>()
            .context("--listen-client-urls")?,
        advertise_client_urls,
        listen_peer: resolve_listen(&listen_peer_urls[0]).context("--listen-peer-urls")?,
        initial_advertise_peer_urls: advertise_peer,
        initial_cluster,
        initial_cluster_state: state,
        initial_cluster_token: args
            .initial_cluster_token
            .or(file.initial_cluster_token)
            .unwrap_or_else(|| "sextant-cluster".into()),
        heartbeat_interval: Duration::from_millis(heartbeat),
        election_timeout: Duration::from_millis(election),
        snapshot_count: args
            .snapshot_count
            .or(file.snapshot_count)
            .unwrap_or(100_000),
        max_request_bytes,
        request_timeout: Duration::from_millis(
            args.request_timeout
                .or(file.request_timeout)
                .unwrap_or(5000),
        ),
        lease_reads: args.experimental_lease_reads
            || file.experimental_lease_reads.unwrap_or(false),
        listen_metrics,
        client_tls,
        peer_tls,
        auto_compaction,
        max_txn_ops,
    };
    let log = args
        .log_level
        .or(file.log_level)
        .unwrap_or_else(|| std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
    Ok((cfg, log))
}

/// One listener's TLS flags as given.
struct TlsFlags {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    trusted_ca_file: Option<PathBuf>,
    client_cert_auth: bool,
}

/// TLS for a listener whose URLs are all https; none for all http; mixed schemes, or
/// https without a certificate and key, or certificate flags for http URLs, are refused.
/// `prefix` is the flags' prefix (`peer-` for the peer listener).
fn tls_files(
    urls_flag: &str,
    urls: &[String],
    prefix: &str,
    flags: TlsFlags,
) -> anyhow::Result<Option<TlsFiles>> {
    let https = urls.iter().filter(|u| is_https(u)).count();
    if https != 0 && https != urls.len() {
        bail!("{urls_flag}: mixing http:// and https:// URLs is not supported");
    }
    if https == 0 {
        if flags.cert_file.is_some() || flags.key_file.is_some() {
            bail!(
                "--{prefix}cert-file/--{prefix}key-file are set but {urls_flag} are http://; \
                 use https:// URLs to serve TLS"
            );
        }
        return Ok(None);
    }
    let (Some(cert_file), Some(key_file)) = (flags.cert_file, flags.key_file) else {
        bail!("{urls_flag} are https:// and need --{prefix}cert-file and --{prefix}key-file");
    };
    Ok(Some(TlsFiles {
        cert_file,
        key_file,
        trusted_ca_file: flags.trusted_ca_file,
        client_cert_auth: flags.client_cert_auth,
    }))
}

/// etcd's `--auto-compaction-mode` and `--auto-compaction-retention`; retention 0 is off.
fn auto_compaction(
    mode: CompactionModeArg,
    retention: &str,
) -> anyhow::Result<Option<AutoCompactionMode>> {
    let retention = retention.trim();
    match mode {
        CompactionModeArg::Revision => {
            let revisions: i64 = retention.parse().with_context(|| {
                format!("--auto-compaction-retention {retention:?}: revision mode takes a number of revisions")
            })?;
            match revisions {
                0 => Ok(None),
                n if n < 0 => bail!("--auto-compaction-retention must not be negative"),
                n => Ok(Some(AutoCompactionMode::Revision {
                    retained_revisions: n,
                })),
            }
        }
        CompactionModeArg::Periodic => {
            // A bare number is hours (etcd's rule); otherwise a Go-style duration.
            let retention_ms = match retention.parse::<u64>() {
                Ok(hours) => hours as f64 * 3_600_000.0,
                Err(_) => go_duration_ms(retention).with_context(|| {
                    format!("--auto-compaction-retention {retention:?}: expected hours or a duration like 30m, 1h30m, 10s")
                })?,
            };
            if retention_ms == 0.0 {
                return Ok(None);
            }
            if retention_ms < 10.0 {
                bail!("--auto-compaction-retention must be at least 10ms");
            }
            Ok(Some(AutoCompactionMode::Periodic {
                retention_ms: retention_ms.round() as u64,
            }))
        }
    }
}

/// A Go duration (`1h30m`, `90s`, `1.5h`, `500ms`) in milliseconds.
fn go_duration_ms(s: &str) -> anyhow::Result<f64> {
    let mut rest = s;
    let mut total_ms = 0f64;
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("{s:?}: expected a number at {rest:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ms = match unit {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            "" => bail!("{s:?}: {num} has no unit (ns, us, ms, s, m, h)"),
            other => bail!("{s:?}: unknown unit {other:?}"),
        };
        total_ms += value * unit_ms;
        rest = tail;
    }
    Ok(total_ms)
}

/// `name=url,name=url` (a name may repeat for several URLs, as in etcd).
pub(crate) fn parse_initial_cluster(s: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, url)) = part.split_once('=') else {
            bail!("--initial-cluster: {part:?} is not name=url");
        };
        let url = parse_url_list(url).with_context(|| format!("--initial-cluster entry {name}"))?;
        out.entry(name.trim().to_string()).or_default().extend(url);
    }
    if out.is_empty() {
        bail!("--initial-cluster is empty");
    }
    Ok(out)
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let (cfg, log) = resolve(args)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&log).context("--log-level")?)
        .with_target(false)
        .init();
    if let Err(e) = crate::allocator::no_transparent_huge_pages() {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off; running with them");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(crate::allocator::collect_when_idle)
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let server = Server::start(cfg).await.context("starting the member")?;
        tracing::info!(
            member = format!("{:x}", server.member_id),
            cluster = format!("{:x}", server.cluster_id),
            clients = ?server.client_addrs,
            "ready to serve"
        );
        tokio::select! {
            _ = wait_for_signal() => tracing::info!("shutting down"),
            _ = server.removed() => tracing::warn!(
                "the member has been permanently removed from the cluster; shutting down"
            ),
        }
        server.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_a_single_local_member() {
        let (cfg, _) = resolve(ServerArgs::default()).unwrap();
        assert_eq!(cfg.name, "default");
        assert_eq!(cfg.data_dir, PathBuf::from("./sextant.data"));
        assert_eq!(cfg.listen_client, vec!["127.0.0.1:2379".parse().unwrap()]);
        assert_eq!(cfg.listen_peer, "127.0.0.1:2380".parse().unwrap());
        assert_eq!(cfg.initial_cluster.len(), 1);
        assert_eq!(cfg.initial_cluster_state, ClusterState::New);
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = std::env::temp_dir().join(format!("sextant-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "name = \"n1\"\ndata-dir = \"/tmp/x\"\nheartbeat-interval = 50\nelection-timeout = 500\n\
             listen-peer-urls = \"http://127.0.0.1:12380\"\n",
        )
        .unwrap();
        let args = ServerArgs {
            config_file: Some(path.clone()),
            name: Some("n2".into()),
            ..Default::default()
        };
        let (cfg, _) = resolve(args).unwrap();
        assert_eq!(cfg.name, "n2");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(50));
        assert_eq!(
            cfg.initial_cluster["n2"],
            vec!["http://127.0.0.1:12380".to_string()]
        );
        std::fs::write(&path, "nmae = \"typo\"\n").unwrap();
        let err = resolve(ServerArgs {
            config_file: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn auto_compaction_flags_follow_etcd() {
        use CompactionModeArg::{Periodic, Revision};
        assert_eq!(auto_compaction(Periodic, "0").unwrap(), None);
        assert_eq!(
            auto_compaction(Periodic, "1").unwrap(),
            Some(AutoCompactionMode::Periodic {
                retention_ms: 3_600_000
            })
        );
        assert_eq!(
            auto_compaction(Periodic, "1h30m").unwrap(),
            Some(AutoCompactionMode::Periodic {
                retention_ms: 5_400_000
            })
        );
        assert_eq!(
            auto_compaction(Periodic, "500ms").unwrap(),
            Some(AutoCompactionMode::Periodic { retention_ms: 500 })
        );
        assert_eq!(
            auto_compaction(Revision, "1000").unwrap(),
            Some(AutoCompactionMode::Revision {
                retained_revisions: 1000
            })
        );
        assert!(auto_compaction(Revision, "1h").is_err());
        assert!(auto_compaction(Periodic, "5x").is_err());
        assert!(auto_compaction(Periodic, "1ns").is_err());
        let args = ServerArgs {
            auto_compaction_mode: Some(Revision),
            auto_compaction_retention: Some("10".into()),
            max_txn_ops: Some(64),
            ..Default::default()
        };
        let (cfg, _) = resolve(args).unwrap();
        assert_eq!(
            cfg.auto_compaction,
            Some(AutoCompactionMode::Revision {
                retained_revisions: 10
            })
        );
        assert_eq!(cfg.max_txn_ops, 64);
    }

    #[test]
    fn tls_flags_must_match_the_url_schemes() {
        let https = ServerArgs {
            listen_client_urls: Some("https://127.0.0.1:2379".into()),
            ..Default::default()
        };
        let err = resolve(https).unwrap_err().to_string();
        assert!(err.contains("need --cert-file and --key-file"), "{err}");
        let plain_with_cert = ServerArgs {
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            ..Default::default()
        };
        assert!(resolve(plain_with_cert).is_err());
        let mixed = ServerArgs {
            listen_client_urls: Some("https://127.0.0.1:2379,http://127.0.0.1:2381".into()),
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            ..Default::default()
        };
        assert!(resolve(mixed).unwrap_err().to_string().contains("mixing"));
        let ok = ServerArgs {
            listen_client_urls: Some("https://127.0.0.1:2379".into()),
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            trusted_ca_file: Some("ca.pem".into()),
            client_cert_auth: true,
            listen_metrics_urls: Some("http://127.0.0.1:2381".into()),
            ..Default::default()
        };
        let (cfg, _) = resolve(ok).unwrap();
        let tls = cfg.client_tls.expect("client TLS");
        assert!(tls.client_cert_auth);
        assert_eq!(tls.trusted_ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(cfg.listen_metrics, vec!["127.0.0.1:2381".parse().unwrap()]);
        assert!(cfg.peer_tls.is_none());
        // Peer TLS: every initial-cluster URL must be https too.
        let peer = ServerArgs {
            listen_peer_urls: Some("https://127.0.0.1:2380".into()),
            peer_cert_file: Some("c.pem".into()),
            peer_key_file: Some("k.pem".into()),
            initial_cluster: Some(
                "default=https://127.0.0.1:2380,other=http://127.0.0.2:2380".into(),
            ),
            ..Default::default()
        };
        let err = resolve(peer).unwrap_err().to_string();
        assert!(err.contains("every peer URL"), "{err}");
    }

    #[test]
    fn inconsistent_cluster_flags_are_refused() {
        let args = ServerArgs {
            name: Some("a".into()),
            initial_cluster: Some("b=http://127.0.0.1:2380".into()),
            ..Default::default()
        };
        assert!(resolve(args).unwrap_err().to_string().contains("no entry"));
        let args = ServerArgs {
            initial_cluster: Some("default=nope".into()),
            ..Default::default()
        };
        assert!(resolve(args).is_err());
        let args = ServerArgs {
            heartbeat_interval: Some(100),
            election_timeout: Some(200),
            ..Default::default()
        };
        assert!(resolve(args).is_err());
    }
}
