//! Learning an existing cluster's id from one of its members, for a member that joins it
//! (`--initial-cluster-state existing`): the id of a cluster is derived from its *initial*
//! members, which a later member cannot know, as etcd's joining member asks its peers.
//!
//! It uses the ordinary handshake: a hello with cluster id 0 (no cluster has it) is refused
//! with `ClusterMismatch`, and that ack carries the acceptor's cluster id. Nothing else is
//! sent, and the acceptor just logs a refused connection.

use std::net::SocketAddr;
use std::time::Duration;

use sextant_core::NodeId;
use tokio::net::TcpStream;

use super::error::{DialError, HandshakeError};
use super::handshake::{self, Hello};

/// Asks the member `to` at `addr` for its cluster id, within `timeout`.
pub async fn discover_cluster_id(
    addr: SocketAddr,
    from: NodeId,
    to: NodeId,
    timeout: Duration,
) -> Result<u64, DialError> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(DialError::Connect)?;
        match handshake::dial(&mut stream, Hello::new(0, from, to)).await {
            Err(HandshakeError::Cluster { theirs, .. }) if theirs != 0 => Ok(theirs),
            Err(e) => Err(DialError::Handshake(e)),
            Ok(ack) => Err(DialError::Handshake(HandshakeError::Cluster {
                ours: 0,
                theirs: ack.cluster_id,
            })),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(DialError::Timeout))
}
