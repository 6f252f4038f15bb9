//! The node's client interface: a cloneable handle whose async methods send a request into
//! the node loop and wait for its answer. The gRPC server is a thin layer over this.

use std::time::Duration;

use bytes::Bytes;
use sextant_core::kv::{
    Command, CommandResult, KvError, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use sextant_core::NodeId;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

use super::members::{
    Member, MemberChange, MemberChanged, MemberError, MemberList, MembershipView,
};

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

/// A read-only txn served without the log (see [`NodeHandle::txn_read`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnReadOutcome {
    pub header: Header,
    pub txn: TxnResponse,
}

/// A lease granted (etcd `LeaseGrantResponse`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseGranted {
    pub header: Header,
    /// The lease's id (allocated by the state machine when 0 was asked for).
    pub id: i64,
    /// The TTL granted (raised to the member's minimum).
    pub ttl_secs: i64,
}

/// A keepalive's answer (etcd `LeaseKeepAliveResponse`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseKeptAlive {
    pub header: Header,
    pub id: i64,
    /// The lease's TTL: it lives at least this long after the keepalive was sent.
    pub ttl_secs: i64,
}

/// etcd `LeaseTimeToLiveResponse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTimeToLive {
    pub header: Header,
    pub id: i64,
    /// Whole seconds until the leader expires the lease, rounded down.
    pub ttl_secs: i64,
    pub granted_ttl_secs: i64,
    /// The keys attached, when asked for.
    pub keys: Vec<Bytes>,
}

/// etcd `LeaseLeasesResponse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseList {
    pub header: Header,
    pub ids: Vec<i64>,
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
    /// A membership change was refused by etcd's rules (see [`MemberError`]).
    #[error(transparent)]
    Member(#[from] MemberError),
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
    /// A read-only txn, served like `Read`.
    ReadTxn {
        req: TxnRequest,
        serializable: bool,
        timeout: Duration,
        reply: oneshot::Sender<Result<TxnReadOutcome, ClientError>>,
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
    LeaseKeepAlive {
        id: i64,
        timeout: Duration,
        reply: oneshot::Sender<Result<LeaseKeptAlive, ClientError>>,
    },
    LeaseTimeToLive {
        id: i64,
        keys: bool,
        timeout: Duration,
        reply: oneshot::Sender<Result<LeaseTimeToLive, ClientError>>,
    },
    LeaseLeases {
        reply: oneshot::Sender<Result<LeaseList, ClientError>>,
    },
    MemberChange {
        change: MemberChange,
        timeout: Duration,
        reply: oneshot::Sender<Result<MemberChanged, ClientError>>,
    },
    MemberList {
        linearizable: bool,
        timeout: Duration,
        reply: oneshot::Sender<Result<MemberList, ClientError>>,
    },
    Watch(super::watch_stream::WatchRequest),
    Maintenance(super::maintenance::MaintenanceRequest),
}

/// A handle to a running node loop.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) tx: mpsc::Sender<ClientRequest>,
    pub(crate) member_id: NodeId,
    pub(crate) cluster_id: u64,
    pub(crate) timeout: Duration,
    pub(crate) view: super::raft_view::RaftView,
    pub(crate) membership: watch::Receiver<MembershipView>,
}

impl NodeHandle {
    pub fn member_id(&self) -> NodeId {
        self.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// The member's current Raft term (as of the loop's last batch of work).
    pub fn raft_term(&self) -> u64 {
        self.view.term()
    }

    /// The leader this member currently knows, if any (itself when it leads).
    pub fn leader(&self) -> Option<NodeId> {
        self.view.leader()
    }

    /// Completes once the node loop has stopped (requests would answer `Stopped`).
    pub async fn stopped(&self) {
        self.tx.closed().await
    }

    /// How long the node waits for a request before answering `Timeout`.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// Every member as this member sees it now: attributes (name, peer and client URLs) from
    /// its applied member registry, learner flags from its Raft configuration. Answered at
    /// once, without a round trip to the node loop (see [`NodeHandle::member_list`] for a
    /// linearizable list). Members that have not started yet have no name or client URLs.
    pub fn members(&self) -> Vec<Member> {
        self.membership.borrow().members.clone()
    }

    /// The leader this member knows of, with its attributes (e.g. its client URLs, to forward
    /// a request that only the leader serves). `None` while no leader is known, or before the
    /// leader's membership entry is applied here.
    pub fn leader_member(&self) -> Option<Member> {
        let view = self.membership.borrow();
        let leader = view.leader?;
        view.member(leader).cloned()
    }

    /// The membership view, updated whenever the member list, the Raft configuration or the
    /// leader changes; `removed` turns true when this member applied its own removal.
    pub fn membership(&self) -> watch::Receiver<MembershipView> {
        self.membership.clone()
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

    /// Serves a txn that only reads ([`TxnRequest::is_read_only`]) as [`NodeHandle::range`]
    /// serves a range: linearizable (batched into the same ReadIndex as ranges, then served
    /// once applied) unless `serializable`. A txn that writes is refused with
    /// [`KvError::TxnNotReadOnly`]: send it through [`NodeHandle::write`].
    pub async fn txn_read(
        &self,
        req: TxnRequest,
        serializable: bool,
    ) -> Result<TxnReadOutcome, ClientError> {
        let timeout = self.timeout;
        self.call(|reply| ClientRequest::ReadTxn {
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

    /// etcd's `MemberAdd`, `MemberRemove`, `MemberPromote`: decided by this member, which
    /// must be the leader (others answer `NotLeader`), and answered once the change is
    /// applied here. Refusals are [`ClientError::Member`].
    pub async fn change_member(&self, change: MemberChange) -> Result<MemberChanged, ClientError> {
        let timeout = self.timeout;
        self.call(|reply| ClientRequest::MemberChange {
            change,
            timeout,
            reply,
        })
        .await
    }

    /// etcd's `MemberList`: linearizable (after a ReadIndex, from the state applied up to it)
    /// or this member's current view.
    pub async fn member_list(&self, linearizable: bool) -> Result<MemberList, ClientError> {
        let timeout = self.timeout;
        self.call(|reply| ClientRequest::MemberList {
            linearizable,
            timeout,
            reply,
        })
        .await
    }

    /// etcd's `MemberUpdate`: new peer URLs for member `id`, through the log (any member may
    /// propose it). Unknown members and URLs another member uses are refused by the state
    /// machine (`Kv(Member(..))`).
    pub async fn member_update(
        &self,
        id: NodeId,
        peer_urls: Vec<String>,
    ) -> Result<Header, ClientError> {
        let out = self.write(Command::MemberUpdate { id, peer_urls }).await?;
        Ok(out.header)
    }

    /// etcd's `publish`: records this member's name and client URLs in the registry, through
    /// the log.
    pub async fn member_publish(
        &self,
        name: String,
        client_urls: Vec<String>,
    ) -> Result<Header, ClientError> {
        let id = self.member_id;
        let out = self
            .write(Command::MemberPublish {
                id,
                name,
                client_urls,
            })
            .await?;
        Ok(out.header)
    }

    /// etcd's `Compact`: drops history below `revision`, through the log. Compacted and future
    /// revisions are refused by the state machine (`KvError::Compacted`,
    /// `KvError::FutureRevision`).
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<Header, ClientError> {
        let out = self.write(Command::Compact { revision, physical }).await?;
        Ok(out.header)
    }

    /// etcd's `LeaseGrant`, through the log. `id` 0 lets the state machine pick one; the TTL is
    /// raised to the member's minimum (`KvLimits::lease_ttl_min_secs`).
    pub async fn lease_grant(&self, id: i64, ttl_secs: i64) -> Result<LeaseGranted, ClientError> {
        let out = self.write(Command::LeaseGrant { id, ttl_secs }).await?;
        match out.result {
            CommandResult::LeaseGrant { id, ttl_secs } => Ok(LeaseGranted {
                header: out.header,
                id,
                ttl_secs,
            }),
            other => unreachable!("a lease grant answered {other:?}"),
        }
    }

    /// etcd's `LeaseRevoke`, through the log: the lease and every key attached to it go, at
    /// one revision.
    pub async fn lease_revoke(&self, id: i64) -> Result<Header, ClientError> {
        let out = self.write(Command::LeaseRevoke { id }).await?;
        Ok(out.header)
    }

    /// One keepalive (etcd's `LeaseKeepAlive` request). Answered by the leader only, once it
    /// has confirmed its leadership after renewing and made the renewal durable where that
    /// matters (see `node::leases`); any other member answers `NotLeader` (forwarding is the
    /// gRPC layer's job). An unknown or expired lease is `Kv(LeaseNotFound)`.
    pub async fn lease_keepalive(&self, id: i64) -> Result<LeaseKeptAlive, ClientError> {
        let timeout = self.timeout;
        self.call(|reply| ClientRequest::LeaseKeepAlive { id, timeout, reply })
            .await
    }

    /// etcd's `LeaseTimeToLive`. The remaining time is known only to the leader, so other
    /// members answer `NotLeader`; an unknown lease is `Kv(LeaseNotFound)` (etcd answers TTL
    /// -1).
    pub async fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLive, ClientError> {
        let timeout = self.timeout;
        self.call(|reply| ClientRequest::LeaseTimeToLive {
            id,
            keys,
            timeout,
            reply,
        })
        .await
    }

    /// etcd's `LeaseLeases`: the leases in this member's applied state.
    pub async fn lease_leases(&self) -> Result<LeaseList, ClientError> {
        self.call(|reply| ClientRequest::LeaseLeases { reply })
            .await
    }

    /// Opens a watch stream on this member (served from its applied state; nothing goes
    /// through the log). See [`super::WatchStream`].
    pub async fn watch_stream(&self) -> Result<super::WatchStream, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(ClientRequest::Watch(
                super::watch_stream::WatchRequest::Open { reply: tx },
            ))
            .await
            .map_err(|_| ClientError::Stopped)?;
        let opened = rx.await.map_err(|_| ClientError::Stopped)?;
        Ok(super::WatchStream::new(self.tx.clone(), opened))
    }

    async fn maintenance<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> super::maintenance::MaintenanceRequest,
    ) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(ClientRequest::Maintenance(make(tx)))
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    /// This member's applied state machine, encoded, with the Raft position it reflects
    /// (etcd's `Snapshot` serves the member's own backend the same way).
    pub async fn state_snapshot(&self) -> Result<super::StateSnapshot, ClientError> {
        self.maintenance(|reply| super::maintenance::MaintenanceRequest::Snapshot { reply })
            .await
    }

    /// etcd's `Hash`: a CRC-32C of this member's whole applied state.
    /// Computed here, off the node loop, from [`NodeHandle::state_snapshot`].
    pub async fn hash(&self) -> Result<(Header, u32), ClientError> {
        let snapshot = self.state_snapshot().await?;
        let hash = sextant_core::kv::KvStore::snapshot_hash(&snapshot.data);
        Ok((snapshot.header, hash))
    }

    /// etcd's `HashKV` at `revision` (0: the current one) of this member's applied state.
    pub async fn hash_kv(
        &self,
        revision: i64,
    ) -> Result<(Header, sextant_core::kv::KvHash), ClientError> {
        self.maintenance(|reply| super::maintenance::MaintenanceRequest::HashKv { revision, reply })
            .await?
    }

    /// etcd's `Defragment`: snapshot the state machine now and compact the log behind it;
    /// answers once both are durable.
    pub async fn defragment(&self) -> Result<Header, ClientError> {
        self.maintenance(|reply| super::maintenance::MaintenanceRequest::Defragment { reply })
            .await?
    }

    /// The alarms this member raised about itself that it could not replicate (its storage
    /// failed); the replicated ones come from `Command::Alarm` with `AlarmAction::Get`.
    pub async fn local_alarms(&self) -> Result<Vec<sextant_core::kv::AlarmMember>, ClientError> {
        self.maintenance(|reply| super::maintenance::MaintenanceRequest::LocalAlarms { reply })
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
