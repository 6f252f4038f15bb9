//! The node's client interface: a cloneable handle whose async methods send a request into
//! the node loop and wait for its answer. The gRPC server is a thin layer over this.

use std::time::Duration;

use sextant_core::kv::{Command, CommandResult, KvError, RangeRequest, RangeResponse};
use sextant_core::NodeId;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// etcd's response header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub cluster_id: u64,
    pub member_id: u64,
    pub revision: i64,
    pub raft_term: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    pub header: Header,
    pub result: CommandResult,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOutcome {
    pub header: Header,
    pub range: RangeResponse,
}

/// Why a client request failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ClientError {
    /// The state machine refused the request (the same answer on every replica).
    #[error(transparent)]
    Kv(#[from] KvError),
    #[error("no leader")]
    NoLeader,
    /// The outcome is unknown: the write may or may not have been applied.
    #[error("request timed out")]
    Timeout,
    #[error("request is too large ({size_bytes} bytes, limit {max_bytes})")]
    TooLarge { size_bytes: usize, max_bytes: usize },
    #[error("too many requests in flight")]
    Busy,
    /// The node's storage failed; it accepts no writes until restarted.
    #[error("storage failed: {0}; this node accepts no writes")]
    StorageFailed(String),
    #[error("the node is shutting down")]
    Stopped,
    /// Admin requests go to the leader; this member is not it.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// The request was refused by the cluster's rules (e.g. an invalid membership change).
    #[error("refused: {0}")]
    Refused(String),
}

pub(crate) enum ClientRequest {
    Write {
        cmd: Command,
        timeout: Duration,
        reply: oneshot::Sender<Result<WriteOutcome, ClientError>>,
    },
    Read {
        req: RangeRequest,
        serializable: bool,
        timeout: Duration,
        reply: oneshot::Sender<Result<ReadOutcome, ClientError>>,
    },
    Status {
        reply: oneshot::Sender<super::NodeStatus>,
    },
    TransferLeader {
        to: NodeId,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    ChangeMembership {
        change: sextant_core::ConfChange,
        reply: oneshot::Sender<Result<sextant_core::Index, ClientError>>,
    },
}

/// A handle to a running node loop.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) tx: mpsc::Sender<ClientRequest>,
    pub(crate) member_id: NodeId,
    pub(crate) cluster_id: u64,
    pub(crate) timeout: Duration,
}

impl NodeHandle {
    pub fn member_id(&self) -> NodeId {
        self.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> ClientRequest,
    ) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// Replicates a write and returns its result once applied (linearizable).
    pub async fn write(&self, cmd: Command) -> Result<WriteOutcome, ClientError> {
        let timeout = self.timeout;
        self.call(|reply| ClientRequest::Write {
            cmd,
            timeout,
            reply,
        })
        .await
    }

    /// Reads a range: linearizable (ReadIndex, then wait until applied) unless
    /// `serializable`, which reads this member's applied state at once.
    pub async fn range(
        &self,
        req: RangeRequest,
        serializable: bool,
    ) -> Result<ReadOutcome, ClientError> {
        let timeout = self.timeout;
        self.call(|reply| ClientRequest::Read {
            req,
            serializable,
            timeout,
            reply,
        })
        .await
    }

    /// Asks this member, which must be the leader, to hand leadership to `to`.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), ClientError> {
        self.call(|reply| ClientRequest::TransferLeader { to, reply })
            .await
    }

    /// Proposes a membership change at this member, which must be the leader. Returns the log
    /// index of the change; it takes effect when that entry is appended (Raft thesis §4.1).
    pub async fn change_membership(
        &self,
        change: sextant_core::ConfChange,
    ) -> Result<sextant_core::Index, ClientError> {
        self.call(|reply| ClientRequest::ChangeMembership { change, reply })
            .await
    }

    pub async fn status(&self) -> Result<super::NodeStatus, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(ClientRequest::Status { reply: tx })
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }
}
