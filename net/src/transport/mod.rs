//! The real TCP transport between Sextant peers.
//!
//! [`TcpTransport`] moves [`Message`](sextant_core::Message)s between nodes over TCP. The
//! node event loop hands it messages with [`TcpTransport::send`], which never blocks and never
//! awaits, and receives the peers' messages from a bounded `tokio::sync::mpsc` channel given
//! to [`TcpTransport::start`]. Raft tolerates lost messages, so wherever a queue is full the
//! transport drops and counts rather than waits.
//!
//! # Connection rule
//!
//! Every node **dials every peer it knows and uses that connection only for sending**; it
//! receives each peer's messages on the connection that peer dialed. So between two nodes
//! there is exactly one connection per direction, no tie-breaking is needed, and a connection
//! has one writer and one reader. The acceptor sends nothing after the handshake: bytes from
//! it on a send-only connection are a protocol error, and its closing the connection tells
//! the dialer at once (even when idle) to reconnect. If a node accepts a second connection
//! from the same sender (say the peer restarted before the old connection timed out), the
//! newer one replaces the older.
//!
//! Inbound connections are accepted from any node of the same cluster, configured as a peer
//! or not: during a membership change a new member may speak before this node knows its
//! address, and the Raft core judges every message itself.
//!
//! # Wire format
//!
//! With [`TransportConfig::tls`] set, every connection is first wrapped in TLS (module
//! `tls`: the dialer verifies the acceptor against the peer CA, the acceptor verifies
//! the dialer's certificate when configured to); everything below then runs inside TLS.
//! A connection starts with the handshake described in [`handshake`]: a 30-byte hello from
//! the dialer (magic `SXTN`, protocol version, cluster id, sender id, receiver id) and a
//! 23-byte ack from the acceptor (magic, version, status, its cluster id, its node id). Then
//! the dialer writes frames as described in [`frame`]: a big-endian `u32` length followed by
//! that many bytes of postcard-encoded [`Message`](sextant_core::Message), at most
//! `frame_bytes_max` bytes.
//!
//! A connection is closed, logged, and the node carries on, when a peer: fails the handshake
//! (garbage, another cluster, another protocol version, wrong receiver, claims our id), does
//! not finish it within `connect_timeout`, declares a zero or over-limit frame length (never
//! allocated), sends a payload that is not exactly one postcard `Message`, or sends a
//! message whose `from` is not the handshake's sender or whose `to` is not this node.
//!
//! # Per-peer sending
//!
//! Each configured peer has a task owning a bounded queue (`queue_msgs_max` messages). The
//! task dials the peer, handshakes, and writes queued messages in batches, in order. When a
//! connection fails it reconnects with jittered exponential backoff (`backoff_min` doubling
//! up to `backoff_max`, each delay drawn from the upper half of its step), and while the peer
//! is unreachable it discards what is queued (counted as dropped), so the first messages
//! after a reconnect are fresh. A handshake accepted from the peer ends the wait at once
//! with the backoff reset (the peer is evidently up: a restarted member is heard from in
//! milliseconds, not after up to `backoff_max`). A write that makes no progress for `write_timeout` (a peer
//! that stopped reading) closes the connection. Peers are added, re-addressed and removed
//! at runtime with [`TcpTransport::set_peer`] and [`TcpTransport::remove_peer`].
//!
//! # Runtime
//!
//! This module uses the `tokio` names (madsim-tokio). The TCP transport itself runs only on
//! real tokio (the simulator has its own transport), so [`TcpTransport`] and its config are
//! not built under `--cfg madsim`; the frame and handshake codecs and the error types are.

pub mod error;
pub mod frame;
pub mod handshake;

#[cfg(not(madsim))]
mod backoff;
#[cfg(not(madsim))]
mod discover;
#[cfg(not(madsim))]
mod listener;
#[cfg(not(madsim))]
mod peer;
#[cfg(not(madsim))]
mod stats;
#[cfg(not(madsim))]
mod tcp;
#[cfg(not(madsim))]
mod tls;

#[cfg(not(madsim))]
pub use discover::discover_cluster_id;
pub use error::{
    ConnectionError, DialError, EncodeError, FrameError, HandshakeError, SendError, SetPeerError,
    StartError,
};
pub use frame::{FrameDecoder, DEFAULT_FRAME_BYTES_MAX};
#[cfg(not(madsim))]
pub use stats::{PeerStats, TransportStats};

#[cfg(not(madsim))]
pub use self::tcp::{ListenOn, TcpTransport, TransportConfig};
#[cfg(not(madsim))]
pub use self::tls::PeerTls;
