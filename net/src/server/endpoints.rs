//! The member's HTTP endpoints, as etcd serves them on its client URLs and on
//! `--listen-metrics-urls`: `GET /metrics` (Prometheus text) and `GET /health` (etcd's JSON:
//! `{"health":"true","reason":""}`, or 503 with `"false"` and a reason when the node loop does
//! not answer, storage failed, there is no leader, or a linearizable read cannot be served).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use sextant_core::kv::RangeRequest;

use super::Metrics;
use crate::node::NodeHandle;
use crate::transport::TcpTransport;

/// How long `/metrics` waits for the node loop's status.
const STATUS_WAIT: Duration = Duration::from_secs(1);

/// What the endpoints read.
pub struct Endpoints {
    pub node: NodeHandle,
    pub transport: Arc<TcpTransport>,
    pub metrics: Arc<Metrics>,
    /// How long `/health` waits for its linearizable read.
    pub health_read_timeout: Duration,
}

impl Endpoints {
    /// `/metrics` and `/health`, for an axum router (merged into the gRPC routes on client
    /// listeners, alone on metrics listeners).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        let metrics = self.clone();
        let health = self.clone();
        axum::Router::new()
            .route(
                "/metrics",
                get(move || async move { metrics.scrape().await }),
            )
            .route("/health", get(move || async move { health.health().await }))
    }

    async fn scrape(&self) -> impl IntoResponse {
        let status = tokio::time::timeout(STATUS_WAIT, self.node.status())
            .await
            .ok()
            .and_then(Result::ok);
        self.metrics
            .refresh(status.as_ref(), &self.transport.stats());
        (
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            self.metrics.render(),
        )
    }

    async fn health(&self) -> impl IntoResponse {
        let (code, body) = match self.check().await {
            Ok(()) => (StatusCode::OK, health_json(true, "")),
            Err(reason) => {
                tracing::warn!(%reason, "serving /health: unhealthy");
                (StatusCode::SERVICE_UNAVAILABLE, health_json(false, &reason))
            }
        };
        (code, [(header::CONTENT_TYPE, "application/json")], body)
    }

    /// etcd's checks: a leader, then a linearizable read of key `health` (the "QGET").
    async fn check(&self) -> Result<(), String> {
        let status = tokio::time::timeout(STATUS_WAIT, self.node.status())
            .await
            .map_err(|_| "NODE NOT RESPONDING".to_string())?
            .map_err(|e| format!("NODE STOPPED: {e}"))?;
        if let Some(why) = &status.storage_failed {
            return Err(format!("STORAGE FAILED: {why}"));
        }
        if status.leader.is_none() {
            return Err("RAFT NO LEADER".into());
        }
        let read = RangeRequest {
            key: "health".into(),
            ..RangeRequest::default()
        };
        match tokio::time::timeout(self.health_read_timeout, self.node.range(read, false)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("QGET ERROR: {e}")),
            Err(_) => Err("QGET ERROR: timed out".into()),
        }
    }
}

fn health_json(healthy: bool, reason: &str) -> String {
    let reason: String = reason
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect();
    format!("{{\"health\":\"{healthy}\",\"reason\":\"{reason}\"}}")
}

#[cfg(test)]
mod tests {
    use super::health_json;

    #[test]
    fn health_json_is_etcds_shape_and_escapes_reasons() {
        assert_eq!(health_json(true, ""), r#"{"health":"true","reason":""}"#);
        assert_eq!(
            health_json(false, "QGET ERROR: \"x\"\n"),
            r#"{"health":"false","reason":"QGET ERROR: \"x\" "}"#
        );
    }
}
