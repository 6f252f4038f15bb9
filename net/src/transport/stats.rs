//! Counters the transport keeps for metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sextant_core::NodeId;

/// A snapshot of one outbound peer's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// Where the peer is dialed.
    pub addr: SocketAddr,
    /// Whether an outbound connection is established (handshake done) right now.
    pub connected: bool,
    /// Messages waiting in the send queue.
    pub queued: usize,
    /// Messages written to the socket.
    pub sent: u64,
    /// Frame bytes (length prefixes included, TLS overhead not) written to the socket.
    pub sent_bytes: u64,
    /// Messages dropped: queue full, discarded while the peer was unreachable, lost with a
    /// broken connection, or too large for a frame.
    pub dropped: u64,
    /// Successful connections (handshake done).
    pub connects: u64,
    /// Successful connections after the first: `connects - 1` (0 before any).
    pub reconnects: u64,
    /// Connection attempts that failed (refused, timed out, or rejected handshake).
    pub connect_failures: u64,
}

/// A snapshot of the whole transport's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages received and handed to the inbound channel.
    pub received: u64,
    /// Bytes read from each sender's connections (after TLS), since the transport started.
    pub received_bytes: BTreeMap<NodeId, u64>,
    /// Received messages dropped because the inbound channel stayed full.
    pub inbound_dropped: u64,
    /// `send` calls for a node that is not a configured peer.
    pub unknown_peer_dropped: u64,
    /// Inbound connections rejected at the handshake.
    pub rejected_connections: u64,
    /// Established inbound connections closed for a protocol violation.
    pub protocol_errors: u64,
    /// Inbound connections currently established (one per sending peer).
    pub inbound_connections: usize,
    /// Per outbound peer.
    pub peers: BTreeMap<NodeId, PeerStats>,
}

/// The live counters of one outbound peer.
#[derive(Debug, Default)]
pub(super) struct PeerCounters {
    pub(super) sent: AtomicU64,
    pub(super) sent_bytes: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) connect_failures: AtomicU64,
    pub(super) connected: AtomicBool,
}

impl PeerCounters {
    pub(super) fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self, addr: SocketAddr, queued: usize) -> PeerStats {
        let connects = self.connects.load(Ordering::Relaxed);
        PeerStats {
            addr,
            connected: self.connected.load(Ordering::Relaxed),
            queued,
            sent: self.sent.load(Ordering::Relaxed),
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            connects,
            reconnects: connects.saturating_sub(1),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
        }
    }
}

/// The live transport-wide counters.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) received: AtomicU64,
    pub(super) inbound_dropped: AtomicU64,
    pub(super) unknown_peer_dropped: AtomicU64,
    pub(super) rejected_connections: AtomicU64,
    pub(super) protocol_errors: AtomicU64,
    /// Bytes read per sender; a reader takes its sender's counter once per connection.
    pub(super) received_bytes: Mutex<BTreeMap<NodeId, Arc<AtomicU64>>>,
}

impl Counters {
    /// The byte counter of `sender`'s connections.
    pub(super) fn received_bytes_of(&self, sender: NodeId) -> Arc<AtomicU64> {
        let mut m = self
            .received_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.entry(sender).or_default().clone()
    }

    pub(super) fn received_bytes_by_sender(&self) -> BTreeMap<NodeId, u64> {
        let m = self
            .received_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|(id, c)| (*id, c.load(Ordering::Relaxed)))
            .collect()
    }
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
