//! One outbound peer: a bounded send queue and the task that dials the peer, handshakes,
//! writes queued messages in order, and reconnects with jittered exponential backoff.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sextant_core::{Message, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::backoff::{self, Backoff};
use super::error::{ConnectionError, DialError};
use super::frame::encode_frame;
use super::handshake::{self, Hello};
use super::stats::{PeerCounters, PeerStats};
use super::tcp::Shared;
use super::tls::{self, Conn};

/// Messages are written in batches of about this many bytes (one syscall for many small
/// messages).
const BATCH_BYTES: usize = 256 << 10;

/// The transport's handle on one peer's task.
#[derive(Debug)]
pub(super) struct PeerHandle {
    pub(super) tx: mpsc::Sender<Message>,
    addr: watch::Sender<SocketAddr>,
    pub(super) counters: Arc<PeerCounters>,
    pub(super) task: JoinHandle<()>,
}

impl PeerHandle {
    pub(super) fn spawn(shared: Arc<Shared>, peer: NodeId, addr: SocketAddr) -> Self {
        let (tx, rx) = mpsc::channel(shared.queue_msgs_max);
        let (addr_tx, addr_rx) = watch::channel(addr);
        let counters = Arc::new(PeerCounters::default());
        let redial = Arc::new(Notify::new());
        shared.redial().insert(peer, redial.clone());
        let runtime = shared.runtime.clone();
        let task = runtime.spawn(run(shared, peer, rx, addr_rx, redial, counters.clone()));
        PeerHandle {
            tx,
            addr: addr_tx,
            counters,
            task,
        }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        *self.addr.borrow()
    }

    pub(super) fn set_addr(&self, addr: SocketAddr) {
        self.addr.send_replace(addr);
    }

    pub(super) fn stats(&self) -> PeerStats {
        let queued = self.tx.max_capacity() - self.tx.capacity();
        self.counters.snapshot(self.addr(), queued)
    }
}

/// Why a connection ended, from the sending task's point of view.
enum Ended {
    /// The transport dropped the queue: the task ends.
    QueueClosed,
    /// The peer's address changed: dial the new one at once.
    AddrChanged,
    Failed(ConnectionError),
}

async fn run(
    shared: Arc<Shared>,
    peer: NodeId,
    mut rx: mpsc::Receiver<Message>,
    mut addr_rx: watch::Receiver<SocketAddr>,
    redial: Arc<Notify>,
    counters: Arc<PeerCounters>,
) {
    let mut backoff = Backoff::new(
        shared.backoff_min,
        shared.backoff_max,
        backoff::seed(shared.node_id, peer),
    );
    let mut wait_first = false;
    let mut failures_in_a_row = 0u64;
    loop {
        if wait_first {
            let delay = backoff.next_delay();
            match discard_for(delay, &mut rx, &mut addr_rx, &redial, &counters).await {
                Waited::Elapsed => {}
                Waited::AddrChanged => backoff.reset(),
                Waited::PeerSeen => {
                    debug!(peer, "peer connected to us; dialing it now");
                    backoff.reset();
                }
                Waited::QueueClosed => return,
            }
        }
        wait_first = true;
        let addr = *addr_rx.borrow_and_update();
        let attempt = tokio::select! {
            r = connect(&shared, peer, addr) => r,
            changed = addr_rx.changed() => {
                // A new address while connecting: give up on the old one, dial the new.
                if changed.is_err() {
                    return;
                }
                wait_first = false;
                continue;
            }
        };
        let stream = match attempt {
            Ok(s) => s,
            Err(e) => {
                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                failures_in_a_row += 1;
                if e.is_rejection() {
                    warn!(peer, %addr, reason = %e, "peer rejected the connection");
                } else if failures_in_a_row == 1 {
                    info!(peer, %addr, reason = %e, "cannot connect to peer; will retry");
                } else {
                    let attempt = failures_in_a_row;
                    debug!(peer, %addr, reason = %e, attempt, "cannot connect to peer");
                }
                continue;
            }
        };
        failures_in_a_row = 0;
        backoff.reset();
        counters.connects.fetch_add(1, Ordering::Relaxed);
        counters.connected.store(true, Ordering::Relaxed);
        info!(peer, %addr, "connected to peer");
        let ended = pump(&shared, peer, stream, &mut rx, &mut addr_rx, &counters).await;
        counters.connected.store(false, Ordering::Relaxed);
        match ended {
            Ended::QueueClosed => return,
            Ended::AddrChanged => {
                info!(peer, "peer address changed; reconnecting");
                wait_first = false;
            }
            Ended::Failed(e) => info!(peer, %addr, reason = %e, "connection to peer lost"),
        }
    }
}

/// Dials `addr`, wraps the stream in TLS when configured, and handshakes, all within
/// `connect_timeout`.
async fn connect(shared: &Shared, peer: NodeId, addr: SocketAddr) -> Result<Conn, DialError> {
    let attempt = async {
        let stream = TcpStream::connect(addr).await.map_err(DialError::Connect)?;
        stream.set_nodelay(true).map_err(DialError::Connect)?;
        let mut stream = tls::dial(shared.tls.as_ref(), stream, addr)
            .await
            .map_err(DialError::Tls)?;
        handshake::dial(
            &mut stream,
            Hello::new(shared.cluster_id, shared.node_id, peer),
        )
        .await?;
        Ok::<_, DialError>(stream)
    };
    tokio::time::timeout(shared.connect_timeout, attempt)
        .await
        .unwrap_or(Err(DialError::Timeout))
}

enum Waited {
    Elapsed,
    AddrChanged,
    /// The peer completed a handshake with us: it is up.
    PeerSeen,
    QueueClosed,
}

/// Sleeps `delay` while the peer is unreachable, discarding (and counting) what is queued so
/// the first messages after a reconnect are fresh. Wakes early when the address changes or
/// the peer connects to us.
async fn discard_for(
    delay: Duration,
    rx: &mut mpsc::Receiver<Message>,
    addr_rx: &mut watch::Receiver<SocketAddr>,
    redial: &Notify,
    counters: &PeerCounters,
) -> Waited {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    // Registered before the first poll, so a handshake from here on is not missed.
    let seen = redial.notified();
    tokio::pin!(seen);
    seen.as_mut().enable();
    loop {
        tokio::select! {
            () = &mut sleep => return Waited::Elapsed,
            () = &mut seen => return Waited::PeerSeen,
            m = rx.recv() => match m {
                Some(_) => counters.add_dropped(1),
                None => return Waited::QueueClosed,
            },
            changed = addr_rx.changed() => {
                return if changed.is_ok() { Waited::AddrChanged } else { Waited::QueueClosed };
            }
        }
    }
}

/// Writes queued messages to an established connection until it fails, the address changes
/// or the queue is closed.
async fn pump(
    shared: &Shared,
    peer: NodeId,
    stream: Conn,
    rx: &mut mpsc::Receiver<Message>,
    addr_rx: &mut watch::Receiver<SocketAddr>,
    counters: &PeerCounters,
) -> Ended {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = Vec::new();
    let mut probe = [0u8; 1];
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return Ended::QueueClosed,
            },
            // The acceptor never writes after the handshake: a read returning is the peer
            // closing the connection (or misbehaving).
            r = rd.read(&mut probe) => {
                return Ended::Failed(match r {
                    Ok(0) => ConnectionError::Closed,
                    Ok(_) => ConnectionError::UnexpectedData,
                    Err(e) => ConnectionError::Io(e),
                });
            }
            changed = addr_rx.changed() => {
                return if changed.is_ok() { Ended::AddrChanged } else { Ended::QueueClosed };
            }
        };
        buf.clear();
        let mut batch = 0u64;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match encode_frame(&msg, shared.frame_bytes_max, &mut buf) {
                Ok(()) => batch += 1,
                Err(e) => {
                    counters.add_dropped(1);
                    let kind = msg.body.kind();
                    warn!(peer, kind, reason = %e, "cannot send message; dropped");
                }
            }
            if buf.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if buf.is_empty() {
            continue;
        }
        if let Err(e) = write_all(&mut wr, &buf, shared.write_timeout).await {
            counters.add_dropped(batch);
            return Ended::Failed(e);
        }
        counters.sent.fetch_add(batch, Ordering::Relaxed);
        counters
            .sent_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        if buf.capacity() > 4 * BATCH_BYTES {
            buf = Vec::new();
        }
    }
}

/// Writes all of `buf` and flushes (TLS may hold back a partial record), failing if one
/// write makes no progress for `stall`.
async fn write_all(
    wr: &mut WriteHalf<Conn>,
    buf: &[u8],
    stall: Duration,
) -> Result<(), ConnectionError> {
    let mut pos = 0;
    while pos < buf.len() {
        match tokio::time::timeout(stall, wr.write(&buf[pos..])).await {
            Err(_) => return Err(ConnectionError::WriteStalled(stall)),
            Ok(Ok(0)) => return Err(ConnectionError::Io(std::io::ErrorKind::WriteZero.into())),
            Ok(Ok(n)) => pos += n,
            Ok(Err(e)) => return Err(ConnectionError::Io(e)),
        }
    }
    match tokio::time::timeout(stall, wr.flush()).await {
        Err(_) => Err(ConnectionError::WriteStalled(stall)),
        Ok(r) => r.map_err(ConnectionError::Io),
    }
}
