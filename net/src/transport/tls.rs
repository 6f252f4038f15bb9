//! TLS on peer connections: the rustls configurations a transport is given
//! ([`PeerTls`]), and wrapping a freshly connected or accepted TCP stream in TLS before the
//! sextant handshake runs over it. Without a [`PeerTls`] the stream is used as it is.
//!
//! The dialer checks the acceptor's certificate against the peer CA for the IP address it
//! dialed (peer URLs are resolved to socket addresses before the transport sees them, so
//! peer certificates need IP subject alternative names), and always presents its own
//! certificate; the acceptor asks for one only when built with client verification
//! (etcd's `--peer-client-cert-auth`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A peer connection's byte stream: plain TCP or TLS over TCP.
pub(super) trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerStream for T {}

/// A connected (and, with TLS, handshaken) peer stream.
pub(super) type Conn = Pin<Box<dyn PeerStream>>;

/// The TLS side of a transport: how it accepts and how it dials.
#[derive(Clone)]
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

impl PeerTls {
    /// `server` serves inbound connections (with or without client verification); `client`
    /// dials peers (trusting the peer CA, presenting this member's certificate).
    pub fn new(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> PeerTls {
        PeerTls {
            acceptor: TlsAcceptor::from(server),
            connector: TlsConnector::from(client),
        }
    }
}

/// The dialer's side: TLS to `addr` when configured.
pub(super) async fn dial(
    tls: Option<&PeerTls>,
    stream: TcpStream,
    addr: SocketAddr,
) -> io::Result<Conn> {
    match tls {
        None => Ok(Box::pin(stream)),
        Some(tls) => {
            let name = ServerName::IpAddress(addr.ip().into());
            let s = tls.connector.connect(name, stream).await?;
            Ok(Box::pin(s))
        }
    }
}

/// The acceptor's side: TLS when configured.
pub(super) async fn accept(tls: Option<&PeerTls>, stream: TcpStream) -> io::Result<Conn> {
    match tls {
        None => Ok(Box::pin(stream)),
        Some(tls) => {
            let s = tls.acceptor.accept(stream).await?;
            Ok(Box::pin(s))
        }
    }
}
