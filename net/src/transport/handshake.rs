//! The connection handshake.
//!
//! The dialer opens the connection and writes a 30-byte **hello**; the acceptor answers with a
//! 23-byte **ack**. All integers are big-endian.
//!
//! ```text
//! hello: magic "SXTN" (4) | version u16 (2) | cluster_id u64 (8) | from u64 (8) | to u64 (8)
//! ack:   magic "SXTN" (4) | version u16 (2) | status u8 (1) | cluster_id u64 (8) | node_id u64 (8)
//! ```
//!
//! The acceptor reads the magic and version first (6 bytes), so a dialer of another version
//! is answered without reading a hello whose layout it may not know; every future version
//! must keep these 6 bytes and the version-1 ack. The acceptor rejects:
//! - bad magic (garbage, or not a Sextant peer): closed without an answer;
//! - another version, another cluster id, a `to` that is not this node, or a `from` equal to
//!   this node: answered with the matching non-zero status, then closed.
//!
//! The dialer checks the ack in turn: status `Ok`, same version, same cluster, and that the
//! node answering is the node it meant to dial (an address may be reused by another node
//! after a membership change). Timeouts are the caller's business.

use std::fmt;

use sextant_core::NodeId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::HandshakeError;

/// First bytes of every hello and ack.
pub const MAGIC: [u8; 4] = *b"SXTN";
/// The protocol version this code speaks.
pub const VERSION: u16 = 1;
/// Bytes of an encoded [`Hello`].
pub const HELLO_BYTES: usize = 30;
/// Bytes of an encoded [`Ack`].
pub const ACK_BYTES: usize = 23;

/// The dialer's greeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    pub cluster_id: u64,
    /// The dialer.
    pub from: NodeId,
    /// The node the dialer means to reach.
    pub to: NodeId,
}

impl Hello {
    /// A hello of this code's version.
    pub fn new(cluster_id: u64, from: NodeId, to: NodeId) -> Self {
        Hello {
            version: VERSION,
            cluster_id,
            from,
            to,
        }
    }

    pub fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut b = [0; HELLO_BYTES];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_be_bytes());
        b[6..14].copy_from_slice(&self.cluster_id.to_be_bytes());
        b[14..22].copy_from_slice(&self.from.to_be_bytes());
        b[22..30].copy_from_slice(&self.to.to_be_bytes());
        b
    }

    /// Checks a received hello against the acceptor's identity.
    pub fn check(&self, cluster_id: u64, node_id: NodeId) -> Result<(), HandshakeError> {
        if self.version != VERSION {
            return Err(HandshakeError::Version {
                ours: VERSION,
                theirs: self.version,
            });
        }
        if self.cluster_id != cluster_id {
            return Err(HandshakeError::Cluster {
                ours: cluster_id,
                theirs: self.cluster_id,
            });
        }
        if self.to != node_id {
            return Err(HandshakeError::WrongReceiver {
                to: self.to,
                node: node_id,
            });
        }
        if self.from == node_id {
            return Err(HandshakeError::SelfSender(node_id));
        }
        Ok(())
    }
}

/// The acceptor's answer.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckStatus {
    Ok = 0,
    VersionMismatch = 1,
    ClusterMismatch = 2,
    WrongReceiver = 3,
    SelfSender = 4,
}

impl AckStatus {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => AckStatus::Ok,
            1 => AckStatus::VersionMismatch,
            2 => AckStatus::ClusterMismatch,
            3 => AckStatus::WrongReceiver,
            4 => AckStatus::SelfSender,
            _ => return None,
        })
    }
}

impl fmt::Display for AckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AckStatus::Ok => "ok",
            AckStatus::VersionMismatch => "protocol version mismatch",
            AckStatus::ClusterMismatch => "cluster id mismatch",
            AckStatus::WrongReceiver => "wrong receiver",
            AckStatus::SelfSender => "sender claims the receiver's id",
        })
    }
}

/// The acceptor's answer to a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub version: u16,
    pub status: AckStatus,
    /// The acceptor's cluster.
    pub cluster_id: u64,
    /// The acceptor.
    pub node_id: NodeId,
}

impl Ack {
    /// An ack of this code's version.
    pub fn new(status: AckStatus, cluster_id: u64, node_id: NodeId) -> Self {
        Ack {
            version: VERSION,
            status,
            cluster_id,
            node_id,
        }
    }

    pub fn encode(&self) -> [u8; ACK_BYTES] {
        let mut b = [0; ACK_BYTES];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.version.to_be_bytes());
        b[6] = self.status as u8;
        b[7..15].copy_from_slice(&self.cluster_id.to_be_bytes());
        b[15..23].copy_from_slice(&self.node_id.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8; ACK_BYTES]) -> Result<Self, HandshakeError> {
        check_magic(&b[0..4])?;
        let status = AckStatus::from_u8(b[6]).ok_or(HandshakeError::UnknownStatus(b[6]))?;
        Ok(Ack {
            version: u16::from_be_bytes([b[4], b[5]]),
            status,
            cluster_id: u64_at(b, 7),
            node_id: u64_at(b, 15),
        })
    }
}

fn check_magic(b: &[u8]) -> Result<(), HandshakeError> {
    let magic: [u8; 4] = b.try_into().expect("4 magic bytes");
    if magic != MAGIC {
        return Err(HandshakeError::BadMagic(magic));
    }
    Ok(())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads a hello. Fails on bad magic or another version after reading only their 6 bytes.
pub async fn read_hello<R: AsyncRead + Unpin>(r: &mut R) -> Result<Hello, HandshakeError> {
    let mut b = [0u8; HELLO_BYTES];
    r.read_exact(&mut b[..6]).await?;
    check_magic(&b[0..4])?;
    let version = u16::from_be_bytes([b[4], b[5]]);
    if version != VERSION {
        return Err(HandshakeError::Version {
            ours: VERSION,
            theirs: version,
        });
    }
    r.read_exact(&mut b[6..]).await?;
    Ok(Hello {
        version,
        cluster_id: u64_at(&b, 6),
        from: u64_at(&b, 14),
        to: u64_at(&b, 22),
    })
}

/// The acceptor's side: reads and checks the hello, answers with an ack (best effort when
/// rejecting), and returns the accepted hello.
pub async fn accept<S>(s: &mut S, cluster_id: u64, node_id: NodeId) -> Result<Hello, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let checked = match read_hello(s).await {
        Ok(hello) => hello.check(cluster_id, node_id).map(|()| hello),
        Err(e) => Err(e),
    };
    match checked {
        Ok(hello) => {
            s.write_all(&Ack::new(AckStatus::Ok, cluster_id, node_id).encode())
                .await?;
            s.flush().await?;
            Ok(hello)
        }
        Err(e) => {
            if let Some(status) = e.ack_status() {
                // Best effort: the reason is logged here whether or not the dialer hears it.
                let _ = s
                    .write_all(&Ack::new(status, cluster_id, node_id).encode())
                    .await;
                let _ = s.flush().await;
            }
            Err(e)
        }
    }
}

/// The dialer's side: sends `hello` and checks the acceptor's ack.
pub async fn dial<S>(s: &mut S, hello: Hello) -> Result<Ack, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    s.write_all(&hello.encode()).await?;
    s.flush().await?;
    let mut b = [0u8; ACK_BYTES];
    s.read_exact(&mut b).await?;
    let ack = Ack::decode(&b)?;
    match ack.status {
        AckStatus::Ok => {}
        AckStatus::VersionMismatch => {
            return Err(HandshakeError::Version {
                ours: hello.version,
                theirs: ack.version,
            })
        }
        AckStatus::ClusterMismatch => {
            return Err(HandshakeError::Cluster {
                ours: hello.cluster_id,
                theirs: ack.cluster_id,
            })
        }
        status => return Err(HandshakeError::Rejected(status)),
    }
    if ack.version != hello.version {
        return Err(HandshakeError::Version {
            ours: hello.version,
            theirs: ack.version,
        });
    }
    if ack.cluster_id != hello.cluster_id {
        return Err(HandshakeError::Cluster {
            ours: hello.cluster_id,
            theirs: ack.cluster_id,
        });
    }
    if ack.node_id != hello.to {
        return Err(HandshakeError::UnexpectedPeer {
            expected: hello.to,
            actual: ack.node_id,
        });
    }
    Ok(ack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_layout() {
        let b = Hello::new(0xAABB, 1, 2).encode();
        assert_eq!(&b[0..4], b"SXTN");
        assert_eq!(&b[4..6], &[0, 1]);
        assert_eq!(&b[6..14], &0xAABBu64.to_be_bytes());
        assert_eq!(&b[14..22], &1u64.to_be_bytes());
        assert_eq!(&b[22..30], &2u64.to_be_bytes());
    }

    #[test]
    fn ack_roundtrip_and_garbage() {
        let ack = Ack::new(AckStatus::WrongReceiver, 9, 3);
        assert_eq!(Ack::decode(&ack.encode()).unwrap(), ack);
        let mut b = ack.encode();
        b[6] = 200;
        assert!(matches!(
            Ack::decode(&b),
            Err(HandshakeError::UnknownStatus(200))
        ));
        b[0] = b'X';
        assert!(matches!(Ack::decode(&b), Err(HandshakeError::BadMagic(_))));
    }

    #[test]
    fn check_rejects_each_mismatch() {
        let ok = Hello::new(7, 1, 2);
        assert!(ok.check(7, 2).is_ok());
        assert!(matches!(
            ok.check(8, 2),
            Err(HandshakeError::Cluster { .. })
        ));
        assert!(matches!(
            ok.check(7, 3),
            Err(HandshakeError::WrongReceiver { .. })
        ));
        assert!(matches!(
            Hello::new(7, 2, 2).check(7, 2),
            Err(HandshakeError::SelfSender(2))
        ));
        let old = Hello { version: 0, ..ok };
        assert!(matches!(
            old.check(7, 2),
            Err(HandshakeError::Version { .. })
        ));
    }

    #[tokio::test]
    async fn dial_and_accept_over_a_pipe() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let (dialed, accepted) =
            tokio::join!(dial(&mut a, Hello::new(5, 1, 2)), accept(&mut b, 5, 2));
        assert_eq!(accepted.unwrap(), Hello::new(5, 1, 2));
        assert_eq!(dialed.unwrap(), Ack::new(AckStatus::Ok, 5, 2));

        let (mut a, mut b) = tokio::io::duplex(256);
        let (dialed, accepted) =
            tokio::join!(dial(&mut a, Hello::new(5, 1, 2)), accept(&mut b, 6, 2));
        assert!(matches!(
            accepted,
            Err(HandshakeError::Cluster { ours: 6, theirs: 5 })
        ));
        assert!(matches!(
            dialed,
            Err(HandshakeError::Cluster { ours: 5, theirs: 6 })
        ));

        // The node at the dialed address is not the one expected (and it refuses too).
        let (mut a, mut b) = tokio::io::duplex(256);
        let (dialed, accepted) =
            tokio::join!(dial(&mut a, Hello::new(5, 1, 2)), accept(&mut b, 5, 3));
        assert!(matches!(
            accepted,
            Err(HandshakeError::WrongReceiver { to: 2, node: 3 })
        ));
        assert!(matches!(
            dialed,
            Err(HandshakeError::Rejected(AckStatus::WrongReceiver))
        ));
    }
}
