//! A session for `lock` and `elect` (clientv3's `concurrency.Session`): a lease granted for
//! the command, kept alive in the background every third of its TTL, and revoked at the end
//! so whatever it holds is released at once.

use std::time::Duration;

use anyhow::bail;
use futures::StreamExt;
use sextant_net::grpc::pb::etcdserverpb as pb;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Connection;

pub struct Session {
    pub lease_id: i64,
    keep_alive: JoinHandle<()>,
    lost: oneshot::Receiver<String>,
}

impl Session {
    pub async fn start(conn: &Connection, ttl_secs: i64) -> anyhow::Result<Session> {
        let mut lease = conn.lease().await?;
        let granted = conn
            .call(lease.lease_grant(pb::LeaseGrantRequest {
                ttl: ttl_secs,
                id: 0,
            }))
            .await?;
        if !granted.error.is_empty() {
            bail!("{}", granted.error);
        }
        let (tx, rx) = futures::channel::mpsc::unbounded();
        // Queued before the stream opens: a grpc-go server (etcd) sends the response headers
        // only with its first answer, and opening the call waits for them.
        tx.unbounded_send(pb::LeaseKeepAliveRequest { id: granted.id })?;
        let mut responses = lease.lease_keep_alive(rx).await?.into_inner();
        let (lost_tx, lost) = oneshot::channel();
        let id = granted.id;
        let period = Duration::from_secs((granted.ttl as u64 / 3).max(1));
        let keep_alive = tokio::spawn(async move {
            let why = loop {
                match responses.next().await {
                    Some(Ok(r)) if r.ttl > 0 => {}
                    Some(Ok(_)) => break format!("lease {id:016x} expired"),
                    Some(Err(s)) => break s.message().to_string(),
                    None => break "keep-alive stream closed by the server".to_string(),
                }
                tokio::time::sleep(period).await;
                if tx.unbounded_send(pb::LeaseKeepAliveRequest { id }).is_err() {
                    break "keep-alive stream closed".to_string();
                }
            };
            let _ = lost_tx.send(why);
        });
        Ok(Session {
            lease_id: id,
            keep_alive,
            lost,
        })
    }

    /// Resolves when the lease can no longer be kept alive, with the reason.
    pub async fn lost(&mut self) -> String {
        (&mut self.lost)
            .await
            .unwrap_or_else(|_| "keep-alive task ended".to_string())
    }

    /// Stops the keep-alive and revokes the lease.
    pub async fn close(self, conn: &Connection) -> anyhow::Result<()> {
        self.keep_alive.abort();
        let mut lease = conn.lease().await?;
        conn.call(lease.lease_revoke(pb::LeaseRevokeRequest { id: self.lease_id }))
            .await?;
        Ok(())
    }
}
