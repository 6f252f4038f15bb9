//! Closed-loop clients: `--clients` tasks share `--conns` connections (spread over the
//! endpoints in order) and take request numbers from one counter until `--total` are sent,
//! optionally paced by a shared `--rate`; each task records its latencies in its own
//! histogram, merged at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;
use tonic::transport::Channel;

use super::ops::Op;
use super::report::{new_histogram, Report};
use super::BenchArgs;
use crate::client::{Connection, GlobalArgs};

/// `n` connections, the i-th to endpoint `i mod endpoints`.
pub async fn connect_all(global: &GlobalArgs, n: usize) -> anyhow::Result<Vec<Channel>> {
    let conn = Connection::new(global)?;
    let endpoints = conn.endpoints().to_vec();
    let mut channels = Vec::with_capacity(n);
    for i in 0..n {
        let url = &endpoints[i % endpoints.len()];
        channels.push(
            conn.connect(url)
                .await
                .with_context(|| format!("connection {i} to {url}"))?,
        );
    }
    Ok(channels)
}

/// Spaces requests `1/rate` apart across all clients (no bursts).
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(per_second: f64) -> Option<Pacer> {
        (per_second > 0.0).then(|| Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(Instant::now()),
        })
    }

    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().expect("pacer lock");
            let at = (*next).max(Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

pub fn progress_bar(total: u64, shown: bool) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
            .expect("progress template"),
    );
    pb
}

/// Runs `op` with the flags' clients, total and rate; the report of every answered request.
pub async fn run(
    conns: &[Channel],
    args: &BenchArgs,
    op: Op,
    timeout: Duration,
) -> anyhow::Result<Report> {
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let channel = conns[i % conns.len()].clone();
        clients.push(
            op.client(i, args.seed, channel)
                .await
                .with_context(|| format!("setting up client {i}"))?,
        );
    }
    let next = Arc::new(AtomicU64::new(0));
    let pacer = Pacer::new(args.rate).map(Arc::new);
    let bar = progress_bar(args.total, !args.no_progress && !args.json);
    let total = args.total;
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let next = next.clone();
            let pacer = pacer.clone();
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut hist = new_histogram();
                let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                loop {
                    let ticket = next.fetch_add(1, Ordering::Relaxed);
                    if ticket >= total {
                        break;
                    }
                    if let Some(p) = &pacer {
                        p.wait().await;
                    }
                    let sent = Instant::now();
                    match tokio::time::timeout(timeout, client.step(ticket)).await {
                        Ok(Ok(())) => hist.saturating_record(micros(sent.elapsed())),
                        Ok(Err(e)) => *errors.entry(e).or_default() += 1,
                        Err(_) => *errors.entry("timeout".into()).or_default() += 1,
                    }
                    bar.inc(1);
                }
                let done = Instant::now();
                client.finish().await;
                (hist, errors, done)
            })
        })
        .collect();
    let mut report = Report::new(op_name(&args.op));
    let mut last = start;
    for t in tasks {
        let (hist, errors, done) = t.await.context("a client task failed")?;
        report.merge(&hist, errors);
        last = last.max(done);
    }
    bar.finish_and_clear();
    report.elapsed = last - start;
    Ok(report)
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn op_name(op: &super::BenchOp) -> String {
    use super::{BenchOp, Consistency};
    match op {
        BenchOp::Put(_) => "put".into(),
        BenchOp::Range { consistency, .. } => match consistency {
            Consistency::L => "range-linearizable".into(),
            Consistency::S => "range-serializable".into(),
        },
        BenchOp::TxnPut { .. } => "txn-put".into(),
        BenchOp::WatchLatency { .. } => "watch-latency".into(),
        BenchOp::LeaseKeepalive => "lease-keepalive".into(),
        BenchOp::ReplicationFloor { .. } | BenchOp::ReplicationFloorMember(_) => {
            "replication-floor".into()
        }
    }
}
