//! `bench watch-latency`: `--watchers` watches of one key spread over `--streams` watch
//! streams (and those over the connections); then `--put-total` puts at `--put-rate`, each
//! value carrying the put's number, and for every event a watcher receives the delay since
//! that put was sent. The report holds one latency per (put, watcher); events not received
//! within the request timeout after the last put count as errors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::channel::mpsc;
use futures::StreamExt;
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::watch_request::RequestUnion;
use sextant_net::grpc::pb::etcdserverpb::{kv_client::KvClient, watch_client::WatchClient};
use tokio::time::Instant;
use tonic::transport::Channel;

use super::driver::{micros, progress_bar, Pacer};
use super::report::{new_histogram, Report};

pub struct Plan {
    pub watchers: usize,
    pub streams: usize,
    pub put_total: u64,
    pub put_rate: f64,
    pub val_size: usize,
    pub timeout: Duration,
    pub progress: bool,
}

/// The watched key: one per run, so an earlier run's puts are never seen.
fn watched_key() -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("sextant-bench/watch-latency/{nanos}").into_bytes()
}

pub async fn run(conns: &[Channel], plan: Plan) -> anyhow::Result<Report> {
    anyhow::ensure!(plan.watchers > 0, "--watchers must be at least 1");
    anyhow::ensure!(
        plan.streams > 0 && plan.streams <= plan.watchers,
        "--streams must be between 1 and --watchers"
    );
    anyhow::ensure!(
        plan.put_rate > 0.0 && plan.put_rate.is_finite(),
        "--put-rate must be positive"
    );
    anyhow::ensure!(plan.val_size >= 8, "--val-size must be at least 8");
    let key = watched_key();
    let base = Instant::now();
    // sent[i]: microseconds from `base` to the sending of put i (0 until sent).
    let sent: Arc<Vec<AtomicU64>> =
        Arc::new((0..plan.put_total).map(|_| AtomicU64::new(0)).collect());

    let mut readers = Vec::new();
    for s in 0..plan.streams {
        let n = plan.watchers / plan.streams + usize::from(s < plan.watchers % plan.streams);
        let mut wc = WatchClient::new(conns[s % conns.len()].clone());
        let (tx, rx) = mpsc::unbounded();
        for _ in 0..n {
            tx.unbounded_send(pb::WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
                    key: key.clone(),
                    ..Default::default()
                })),
            })?;
        }
        let mut answers = wc
            .watch(rx)
            .await
            .context("opening a watch stream")?
            .into_inner();
        let mut created = 0;
        while created < n {
            let r = tokio::time::timeout(plan.timeout, answers.next())
                .await
                .context("waiting for watches to be created")?
                .context("watch stream ended")??;
            if r.canceled {
                anyhow::bail!("watch refused: {}", r.cancel_reason);
            }
            created += usize::from(r.created);
        }
        let sent = sent.clone();
        let expected = plan.put_total * n as u64;
        readers.push(tokio::spawn(async move {
            let _keep_open = tx;
            let mut hist = new_histogram();
            let mut errors = BTreeMap::new();
            let mut seen = 0u64;
            while seen < expected {
                match answers.next().await {
                    Some(Ok(r)) => {
                        let now = micros(base.elapsed());
                        for ev in r.events {
                            let Some(kv) = ev.kv else { continue };
                            let Some(i) = kv.value.get(..8) else { continue };
                            let i = u64::from_be_bytes(i.try_into().expect("8 bytes"));
                            let Some(at) = sent.get(i as usize) else {
                                continue;
                            };
                            let at = at.load(Ordering::Acquire);
                            hist.saturating_record(now.saturating_sub(at).max(1));
                            seen += 1;
                        }
                    }
                    Some(Err(s)) => {
                        *errors
                            .entry(format!("{:?}: {}", s.code(), s.message()))
                            .or_default() += 1;
                        break;
                    }
                    None => break,
                }
            }
            (hist, errors, seen, expected)
        }));
    }

    let mut kv = KvClient::new(conns[0].clone());
    let pacer = Pacer::new(plan.put_rate).expect("positive rate");
    let bar = progress_bar(plan.put_total, plan.progress);
    let mut put_errors: BTreeMap<String, u64> = BTreeMap::new();
    let start = Instant::now();
    for i in 0..plan.put_total {
        pacer.wait().await;
        let mut value = vec![b'v'; plan.val_size];
        value[..8].copy_from_slice(&i.to_be_bytes());
        sent[i as usize].store(micros(base.elapsed()), Ordering::Release);
        let put = kv.put(pb::PutRequest {
            key: key.clone(),
            value,
            ..Default::default()
        });
        match tokio::time::timeout(plan.timeout, put).await {
            Ok(Ok(_)) => {}
            Ok(Err(s)) => {
                *put_errors
                    .entry(format!("put: {:?}: {}", s.code(), s.message()))
                    .or_default() += 1
            }
            Err(_) => *put_errors.entry("put: timeout".into()).or_default() += 1,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let mut report = Report::new("watch-latency".into());
    report.merge(&new_histogram(), put_errors);
    let deadline = Instant::now() + plan.timeout;
    for r in readers {
        match tokio::time::timeout_at(deadline, r).await {
            Ok(joined) => {
                let (hist, mut errors, seen, expected) = joined.context("a watch reader failed")?;
                if seen < expected {
                    errors.insert("event not received".into(), expected - seen);
                }
                report.merge(&hist, errors);
            }
            Err(_) => {
                *report
                    .errors
                    .entry("events not received before the timeout".into())
                    .or_default() += 1;
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
