//! The member's Prometheus metrics, under etcd's names where etcd has an equivalent (so
//! etcd dashboards and alerts work; the few without one are named `sextant_*`), plus the
//! process collector (`process_*`: resident
//! memory, CPU, file descriptors) on Linux.
//!
//! Hot-path metrics are updated where they happen, at the cost of an atomic add: the WAL
//! fsync histogram (by the storage thread, [`super::MeteredStorage`]) and the gRPC request
//! counters ([`super::GrpcMetricsLayer`]). Everything the node loop and the peer transport
//! already keep (role, indexes, revision, keys, watchers, bytes per peer) is read once per
//! scrape ([`Metrics::refresh`]) instead, so the loop pays nothing for metrics.

use std::sync::Mutex;

use prometheus::core::{AtomicU64, GenericCounter};
use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use sextant_core::RoleKind;

use crate::node::{NodeStatus, SLOW_TURN_THRESHOLDS};
use crate::transport::TransportStats;

/// Every metric of one member, registered in its own registry.
pub struct Metrics {
    registry: Registry,
    has_leader: IntGauge,
    is_leader: IntGauge,
    is_learner: IntGauge,
    leader_changes: IntCounter,
    proposals_committed: IntGauge,
    proposals_applied: IntGauge,
    proposals_pending: IntGauge,
    proposals_failed: IntCounter,
    snapshots_installed: IntCounter,
    term: IntGauge,
    db_size: IntGauge,
    db_size_in_use: IntGauge,
    keys: IntGauge,
    watchers: IntGauge,
    current_revision: IntGauge,
    compact_revision: IntGauge,
    leases: IntGauge,
    peer_sent_bytes: IntCounterVec,
    peer_received_bytes: IntCounterVec,
    peer_sent_failures: IntCounterVec,
    slow_turns: IntCounterVec,
    pub(super) wal_fsync: Histogram,
    pub(super) grpc_started: IntCounterVec,
    pub(super) grpc_handled: IntCounterVec,
    /// Scrapes refresh the mirrored counters one at a time.
    refreshing: Mutex<()>,
}

/// Why the metrics could not be set up (a programming error: names or labels).
#[derive(Debug, thiserror::Error)]
#[error("setting up metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    pub fn new(member_id: u64) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| -> Result<IntGauge, MetricsError> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, MetricsError> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let id = IntGaugeVec::new(
            Opts::new("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID."),
            &["server_id"],
        )?;
        id.with_label_values(&[&format!("{member_id:x}")]).set(1);
        registry.register(Box::new(id))?;
        let version = IntGaugeVec::new(
            Opts::new("etcd_server_version", "Which version of the etcd API is served. 1 for 'server_version' label with current version."),
            &["server_version"],
        )?;
        version
            .with_label_values(&[crate::grpc::ETCD_API_VERSION])
            .set(1);
        registry.register(Box::new(version))?;
        // etcd's buckets: 1 ms to about 8 s.
        let wal_fsync = Histogram::with_opts(
            HistogramOpts::new(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            )
            .buckets(exponential_buckets(0.001, 2.0, 14)?),
        )?;
        registry.register(Box::new(wal_fsync.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let grpc_labels = ["grpc_service", "grpc_method"];
        let grpc_code_labels = ["grpc_service", "grpc_method", "grpc_code"];
        Ok(Metrics {
            has_leader: gauge(
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            )?,
            is_leader: gauge(
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            )?,
            is_learner: gauge(
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            )?,
            leader_changes: counter(
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            )?,
            proposals_committed: gauge(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            )?,
            proposals_applied: gauge(
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            )?,
            proposals_pending: gauge(
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            )?,
            proposals_failed: counter(
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            )?,
            snapshots_installed: counter(
                "sextant_server_snapshots_installed_total",
                "The number of snapshots received from the leader and installed since start.",
            )?,
            term: gauge(
                "sextant_server_term",
                "The current raft term of this member.",
            )?,
            db_size: gauge(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the state machine's keys and values in bytes.",
            )?,
            db_size_in_use: gauge(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the state machine's keys and values in use in bytes.",
            )?,
            keys: gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.")?,
            watchers: gauge(
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            )?,
            current_revision: gauge(
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
            )?,
            compact_revision: gauge(
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
            )?,
            leases: gauge(
                "sextant_leases",
                "The number of leases in the state machine.",
            )?,
            peer_sent_bytes: counter_vec(
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
                &["To"],
            )?,
            peer_received_bytes: counter_vec(
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
                &["From"],
            )?,
            peer_sent_failures: counter_vec(
                "etcd_network_peer_sent_failures_total",
                "The total number of messages to peers that could not be sent.",
                &["To"],
            )?,
            slow_turns: counter_vec(
                "sextant_node_loop_slow_turns_total",
                "Turns of the member's node loop (handling an input, then applying, replicating and answering) that took longer than `over` seconds.",
                &["over"],
            )?,
            grpc_started: counter_vec(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                &grpc_labels,
            )?,
            grpc_handled: counter_vec(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &grpc_code_labels,
            )?,
            wal_fsync,
            refreshing: Mutex::new(()),
            registry,
        })
    }

    /// Brings the mirrored values up to date: the node's (`None` when the node loop did not
    /// answer) and the transport's.
    pub fn refresh(&self, status: Option<&NodeStatus>, transport: &TransportStats) {
        let _one_at_a_time = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        match status {
            Some(s) => {
                let has_leader = s.leader.is_some() && s.storage_failed.is_none();
                self.has_leader.set(has_leader.into());
                self.is_leader.set((s.role == RoleKind::Leader).into());
                self.is_learner.set(s.is_learner.into());
                mirror(&self.leader_changes, s.leader_changes);
                self.proposals_committed.set(gauge_value(s.commit_index));
                self.proposals_applied.set(gauge_value(s.applied_index));
                self.proposals_pending
                    .set(gauge_value(s.proposals_pending as u64));
                mirror(&self.proposals_failed, s.proposals_failed);
                mirror(&self.snapshots_installed, s.snapshots_installed);
                for (over, count) in SLOW_TURN_THRESHOLDS.iter().zip(s.slow_turns.over) {
                    let label = over.as_secs_f64().to_string();
                    mirror(&self.slow_turns.with_label_values(&[&label]), count);
                }
                self.term.set(gauge_value(s.term));
                self.db_size.set(gauge_value(s.kv_bytes));
                self.db_size_in_use.set(gauge_value(s.kv_bytes));
                self.keys.set(gauge_value(s.keys as u64));
                self.watchers.set(gauge_value(s.watchers as u64));
                self.current_revision.set(s.revision);
                self.compact_revision.set(s.compact_revision);
                self.leases.set(gauge_value(s.leases as u64));
            }
            None => {
                self.has_leader.set(0);
                self.is_leader.set(0);
            }
        }
        for (id, p) in &transport.peers {
            let to = format!("{id:x}");
            mirror(
                &self.peer_sent_bytes.with_label_values(&[&to]),
                p.sent_bytes,
            );
            mirror(
                &self.peer_sent_failures.with_label_values(&[&to]),
                p.dropped,
            );
        }
        for (id, bytes) in &transport.received_bytes {
            let from = format!("{id:x}");
            mirror(
                &self.peer_received_bytes.with_label_values(&[&from]),
                *bytes,
            );
        }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Raises a counter to a monotonic value kept elsewhere.
fn mirror(c: &GenericCounter<AtomicU64>, value: u64) {
    let have = c.get();
    if value > have {
        c.inc_by(value - have);
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
