//! The transport's errors: one enum per operation.
//!
//! - [`StartError`]: [`TcpTransport::start`](super::TcpTransport::start) could not start.
//! - [`SendError`]: [`TcpTransport::send`](super::TcpTransport::send) dropped the message (the
//!   caller may ignore it: Raft tolerates loss; every drop is also counted).
//! - [`SetPeerError`]: [`TcpTransport::set_peer`](super::TcpTransport::set_peer) refused the peer.
//! - [`EncodeError`] / [`FrameError`]: one frame could not be encoded / decoded.
//! - [`HandshakeError`]: the handshake of one connection failed (either side).
//! - [`DialError`]: an outbound connection attempt failed.
//! - [`ConnectionError`]: why an established connection was closed.

use std::io;
use std::net::SocketAddr;

use sextant_core::NodeId;
use thiserror::Error;

use super::handshake::AckStatus;

/// Why the transport could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// `start` was called outside a tokio runtime.
    #[error("the TCP transport must be started from within a tokio runtime")]
    NoRuntime,
    /// The configuration is unusable.
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(&'static str),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The listener handed in could not be used.
    #[error("cannot use the given listener: {0}")]
    Listener(#[source] io::Error),
}

/// Why a message was not queued for sending. Every case is also counted in
/// [`TransportStats`](super::TransportStats).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No peer with this id is configured (see `set_peer`).
    #[error("no peer {0} is configured; message dropped")]
    UnknownPeer(NodeId),
    /// The peer's send queue is full (the peer is slow, stalled or unreachable).
    #[error("send queue of peer {0} is full; message dropped")]
    QueueFull(NodeId),
    /// The message is addressed to this node itself.
    #[error("message addressed to this node ({0}); dropped")]
    ToSelf(NodeId),
    /// `msg.from` is not this node: the receiver would reject the whole connection.
    #[error("message claims to be from {from}, but this node is {node}; dropped")]
    WrongSender { from: NodeId, node: NodeId },
    /// The transport has been shut down.
    #[error("the transport is shut down")]
    Shutdown,
}

/// Why `set_peer` refused a peer.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SetPeerError {
    /// A node does not dial itself.
    #[error("peer id {0} is this node's own id")]
    SelfPeer(NodeId),
    /// The transport has been shut down.
    #[error("the transport is shut down")]
    Shutdown,
}

/// Why a message could not be encoded into a frame.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// The encoded message is larger than the frame limit.
    #[error("encoded message is {len} bytes, over the frame limit of {max} bytes")]
    TooLarge { len: usize, max: u32 },
    /// postcard failed to serialize the message.
    #[error("cannot serialize message: {0}")]
    Serialize(#[source] postcard::Error),
}

/// Why a byte stream is not a valid sequence of frames. Any of these closes the connection.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A frame declared a length of zero.
    #[error("frame declares length 0")]
    Empty,
    /// A frame declared a length over the limit (the bytes are never allocated).
    #[error("frame declares {len} bytes, over the limit of {max} bytes")]
    TooLarge { len: u32, max: u32 },
    /// The frame's payload is not a postcard-encoded `Message`.
    #[error("frame payload is not a valid message: {0}")]
    Decode(#[source] postcard::Error),
    /// The payload decoded to a message but did not use all of the frame's bytes.
    #[error("frame payload has {0} trailing bytes after the message")]
    TrailingBytes(usize),
}

/// Why a handshake failed.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// I/O error (including the peer closing the connection mid-handshake).
    #[error("i/o error during handshake: {0}")]
    Io(#[from] io::Error),
    /// The handshake did not finish within the configured timeout.
    #[error("handshake timed out")]
    Timeout,
    /// The first bytes are not this protocol's magic: not a Sextant peer.
    #[error("bad magic bytes {0:02x?}: not a sextant peer")]
    BadMagic([u8; 4]),
    /// The other side speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    Version { ours: u16, theirs: u16 },
    /// The other side belongs to another cluster.
    #[error("cluster id mismatch: ours {ours:#x}, theirs {theirs:#x}")]
    Cluster { ours: u64, theirs: u64 },
    /// The dialer addressed another node than this one.
    #[error("connection is for node {to}, but this node is {node}")]
    WrongReceiver { to: NodeId, node: NodeId },
    /// The dialer claims to be this node itself.
    #[error("dialer claims this node's own id {0}")]
    SelfSender(NodeId),
    /// The dialed address is served by another node than the one expected.
    #[error("dialed node {expected}, but {actual} answered")]
    UnexpectedPeer { expected: NodeId, actual: NodeId },
    /// The acceptor rejected our hello.
    #[error("rejected by the peer: {0}")]
    Rejected(AckStatus),
    /// The acceptor answered with an unknown status byte.
    #[error("unknown handshake status {0}")]
    UnknownStatus(u8),
}

impl HandshakeError {
    /// The status an acceptor answers with for this rejection, if it answers at all (garbage,
    /// I/O errors and timeouts are answered by closing the connection).
    pub fn ack_status(&self) -> Option<AckStatus> {
        match self {
            HandshakeError::Version { .. } => Some(AckStatus::VersionMismatch),
            HandshakeError::Cluster { .. } => Some(AckStatus::ClusterMismatch),
            HandshakeError::WrongReceiver { .. } => Some(AckStatus::WrongReceiver),
            HandshakeError::SelfSender(_) => Some(AckStatus::SelfSender),
            _ => None,
        }
    }
}

/// Why an attempt to connect to a peer failed.
#[derive(Debug, Error)]
pub enum DialError {
    /// The TCP connection could not be opened (refused, unreachable, ...).
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// The TLS handshake failed (untrusted or mismatched certificate, or the peer does not
    /// speak TLS).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    /// TCP connect plus handshake did not finish within the configured timeout.
    #[error("connect and handshake timed out")]
    Timeout,
    /// The handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
}

impl DialError {
    /// Whether the peer answered but refused us (or is not who we meant to dial), as opposed
    /// to being unreachable.
    pub fn is_rejection(&self) -> bool {
        match self {
            DialError::Handshake(e) => {
                !matches!(e, HandshakeError::Io(_) | HandshakeError::Timeout)
            }
            DialError::Tls(_) => true,
            DialError::Connect(_) | DialError::Timeout => false,
        }
    }
}

/// Why an established connection was closed.
#[derive(Debug, Error)]
pub enum ConnectionError {
    /// I/O error on the socket.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The other side closed the connection.
    #[error("closed by the peer")]
    Closed,
    /// The peer sent bytes that are not valid frames.
    #[error("protocol error: {0}")]
    Frame(#[from] FrameError),
    /// A message's `from` differs from the sender named in the handshake.
    #[error("message from {from} on the connection of node {sender}")]
    WrongSender { from: NodeId, sender: NodeId },
    /// A message's `to` is not this node.
    #[error("message to {to} on a connection to node {node}")]
    WrongReceiver { to: NodeId, node: NodeId },
    /// The receiving side sent data on an outbound (send-only) connection.
    #[error("unexpected data from the peer on a send-only connection")]
    UnexpectedData,
    /// A write made no progress for the configured write timeout (the peer stopped reading).
    #[error("write stalled for {0:?}")]
    WriteStalled(std::time::Duration),
    /// A newer connection from the same sender replaced this one.
    #[error("superseded by a newer connection from the same node")]
    Superseded,
}
