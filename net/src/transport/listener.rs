//! The accept loop and the inbound readers: one task per accepted connection, which
//! handshakes, then decodes frames and hands the messages to the inbound channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sextant_core::{Message, NodeId};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::error::{ConnectionError, HandshakeError};
use super::frame::FrameDecoder;
use super::handshake;
use super::stats::bump;
use super::tcp::Shared;
use super::tls::{self, Conn};

/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts connections until `stop` fires (or its sender is dropped), then closes every
/// inbound connection and waits for their readers.
pub(super) async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    readers.spawn(serve(shared.clone(), stream, remote));
                }
                Err(e) => {
                    warn!(reason = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(joined) = readers.join_next() => {
                if let Err(e) = joined {
                    if e.is_panic() {
                        warn!(reason = %e, "inbound reader panicked");
                    }
                }
            }
        }
    }
    readers.shutdown().await;
}

/// Removes a reader's registration when it ends, unless a newer connection took its place.
struct Registration<'a> {
    shared: &'a Shared,
    sender: NodeId,
    conn_id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut conns = self.shared.inbound_conns();
        if conns
            .get(&self.sender)
            .is_some_and(|(id, _)| *id == self.conn_id)
        {
            conns.remove(&self.sender);
        }
    }
}

/// Serves one inbound connection until it closes or misbehaves.
async fn serve(shared: Arc<Shared>, stream: TcpStream, remote: SocketAddr) {
    let _ = stream.set_nodelay(true);
    // TLS (when configured) and the handshake share the connect timeout.
    let accepted = tokio::time::timeout(shared.connect_timeout, async {
        let mut stream = match tls::accept(shared.tls.as_ref(), stream).await {
            Ok(s) => s,
            Err(e) => return Err(Rejected::Tls(e)),
        };
        match handshake::accept(&mut stream, shared.cluster_id, shared.node_id).await {
            Ok(hello) => Ok((stream, hello)),
            Err(e) => Err(Rejected::Handshake(e)),
        }
    })
    .await
    .unwrap_or(Err(Rejected::Handshake(HandshakeError::Timeout)));
    let (mut stream, hello) = match accepted {
        Ok(accepted) => accepted,
        Err(Rejected::Handshake(e)) => {
            bump(&shared.counters.rejected_connections);
            warn!(%remote, reason = %e, "rejected inbound connection");
            return;
        }
        Err(Rejected::Tls(e)) => {
            bump(&shared.counters.rejected_connections);
            warn!(%remote, reason = %e, "rejected inbound connection: TLS handshake failed");
            return;
        }
    };
    let sender = hello.from;
    let conn_id = shared.conn_id();
    let (superseded_tx, superseded_rx) = oneshot::channel();
    let older = shared
        .inbound_conns()
        .insert(sender, (conn_id, superseded_tx));
    // Dropping the older connection's sender tells its reader to stop.
    drop(older);
    let _registration = Registration {
        shared: &shared,
        sender,
        conn_id,
    };
    debug!(%remote, peer = sender, "accepted inbound connection");
    shared.peer_seen(sender);

    match read_loop(&shared, &mut stream, sender, superseded_rx).await {
        Ok(()) => debug!(peer = sender, "inbound channel closed; closing connection"),
        Err(e @ (ConnectionError::Closed | ConnectionError::Superseded)) => {
            debug!(%remote, peer = sender, reason = %e, "inbound connection closed");
        }
        Err(ConnectionError::Io(e)) => {
            info!(%remote, peer = sender, reason = %e, "inbound connection failed");
        }
        Err(e) => {
            bump(&shared.counters.protocol_errors);
            let reason = e.to_string();
            warn!(%remote, peer = sender, %reason, "protocol error; closing inbound connection");
        }
    }
}

/// Why an inbound connection was not accepted.
enum Rejected {
    Tls(std::io::Error),
    Handshake(HandshakeError),
}

/// Reads frames and delivers their messages. `Ok(())` when the inbound channel is closed
/// (the node is going away).
async fn read_loop(
    shared: &Shared,
    stream: &mut Conn,
    sender: NodeId,
    mut superseded: oneshot::Receiver<()>,
) -> Result<(), ConnectionError> {
    let received_bytes = shared.counters.received_bytes_of(sender);
    let mut decoder = FrameDecoder::new(shared.frame_bytes_max);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let n = tokio::select! {
            r = stream.read(&mut chunk) => r?,
            _ = &mut superseded => return Err(ConnectionError::Superseded),
        };
        if n == 0 {
            return Err(ConnectionError::Closed);
        }
        received_bytes.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        decoder.push(&chunk[..n]);
        while let Some(msg) = decoder.next_frame()? {
            if msg.from != sender {
                return Err(ConnectionError::WrongSender {
                    from: msg.from,
                    sender,
                });
            }
            if msg.to != shared.node_id {
                return Err(ConnectionError::WrongReceiver {
                    to: msg.to,
                    node: shared.node_id,
                });
            }
            if !deliver(shared, msg).await {
                return Ok(());
            }
        }
    }
}

/// Hands `msg` to the node, waiting at most `inbound_wait` for room. Returns false when the
/// inbound channel is closed.
async fn deliver(shared: &Shared, msg: Message) -> bool {
    let counters = &shared.counters;
    let msg = match shared.inbound.try_send(msg) {
        Ok(()) => {
            bump(&counters.received);
            return true;
        }
        Err(mpsc::error::TrySendError::Closed(_)) => return false,
        Err(mpsc::error::TrySendError::Full(msg)) => msg,
    };
    let (from, kind) = (msg.from, msg.body.kind());
    match tokio::time::timeout(shared.inbound_wait, shared.inbound.send(msg)).await {
        Ok(Ok(())) => {
            bump(&counters.received);
            true
        }
        Ok(Err(_closed)) => false,
        Err(_elapsed) => {
            bump(&counters.inbound_dropped);
            debug!(from, kind, "inbound channel full; message dropped");
            true
        }
    }
}
