//! Errors as etcd clients expect them: the same gRPC codes and `etcdserver: …` messages, so
//! client libraries' retry and error handling work unchanged.

use sextant_core::kv::KvError;
use tonic::{Code, Status};

use crate::node::{ClientError, MemberError};

pub fn to_status(e: ClientError) -> Status {
    match e {
        ClientError::Kv(k) => kv_status(k),
        ClientError::NoLeader => Status::new(Code::Unavailable, "etcdserver: no leader"),
        ClientError::Timeout => Status::new(Code::Unavailable, "etcdserver: request timed out"),
        ClientError::TooLarge { .. } => {
            Status::new(Code::InvalidArgument, "etcdserver: request is too large")
        }
        ClientError::Busy => Status::new(Code::ResourceExhausted, "etcdserver: too many requests"),
        ClientError::StorageFailed(why) => Status::new(
            Code::Unavailable,
            format!("etcdserver: storage failed on this member: {why}"),
        ),
        ClientError::Stopped => Status::new(Code::Unavailable, "etcdserver: server stopped"),
        ClientError::NotLeader { .. } => {
            Status::new(Code::FailedPrecondition, "etcdserver: not leader")
        }
        ClientError::Refused(why) => {
            Status::new(Code::FailedPrecondition, format!("etcdserver: {why}"))
        }
        ClientError::Member(m) => member_status(m),
    }
}

/// etcd's gRPC code and message for each membership refusal (`rpctypes/error.go`, mapped as
/// etcd's `v3rpc` maps its membership errors).
fn member_status(e: MemberError) -> Status {
    let code = match e {
        MemberError::IdRemoved | MemberError::NotFound => {
            return Status::new(Code::NotFound, "etcdserver: member not found")
        }
        MemberError::LeaderChanged | MemberError::ChangeInProgress => Code::Unavailable,
        MemberError::IdExists
        | MemberError::PeerUrlExists
        | MemberError::NotLearner
        | MemberError::LearnerNotReady
        | MemberError::TooManyLearners
        | MemberError::NotEnoughStarted => Code::FailedPrecondition,
    };
    Status::new(code, format!("etcdserver: {e}"))
}

/// etcd's gRPC code and message for each state-machine refusal (`rpctypes/error.go`).
fn kv_status(e: KvError) -> Status {
    let invalid = |m: &str| Status::new(Code::InvalidArgument, format!("etcdserver: {m}"));
    match e {
        KvError::EmptyKey => invalid("key is not provided"),
        KvError::KeyNotFound => invalid("key not found"),
        KvError::ValueProvided => invalid("value is provided"),
        KvError::LeaseProvided => invalid("lease is provided"),
        KvError::TooManyOps { .. } => invalid("too many operations in txn request"),
        KvError::DuplicateKey => invalid("duplicate key given in txn request"),
        KvError::RequestTooLarge { .. } | KvError::ValueTooLarge { .. } => {
            invalid("request is too large")
        }
        KvError::LeaseNotFound => {
            Status::new(Code::NotFound, "etcdserver: requested lease not found")
        }
        KvError::LeaseExists => {
            Status::new(Code::FailedPrecondition, "etcdserver: lease already exists")
        }
        KvError::LeaseTtlTooLarge => {
            Status::new(Code::OutOfRange, "etcdserver: too large lease TTL")
        }
        KvError::Compacted { .. } => Status::new(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        KvError::FutureRevision => Status::new(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        KvError::NoSpace => Status::new(
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        ),
        KvError::Corrupt => Status::new(Code::DataLoss, "etcdserver: corrupt cluster"),
        KvError::TxnTooDeep { .. } | KvError::RangeTooLarge { .. } | KvError::TxnNotReadOnly => {
            Status::new(Code::InvalidArgument, format!("sextant: {e}"))
        }
        KvError::Member(sextant_core::MemberError::NotFound) => {
            Status::new(Code::NotFound, "etcdserver: member not found")
        }
        KvError::Member(sextant_core::MemberError::PeerUrlExists) => Status::new(
            Code::FailedPrecondition,
            "etcdserver: Peer URLs already exists",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal with an etcd counterpart answers exactly etcd 3.5's `rpctypes` error
    /// (`api/v3rpc/rpctypes/error.go`): the same code and description.
    #[test]
    fn kv_errors_answer_as_etcd_rpctypes() {
        let etcd = [
            (
                KvError::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                KvError::KeyNotFound,
                Code::InvalidArgument,
                "etcdserver: key not found",
            ),
            (
                KvError::ValueProvided,
                Code::InvalidArgument,
                "etcdserver: value is provided",
            ),
            (
                KvError::LeaseProvided,
                Code::InvalidArgument,
                "etcdserver: lease is provided",
            ),
            (
                KvError::TooManyOps {
                    ops: 129,
                    ops_max: 128,
                },
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                KvError::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                KvError::Compacted {
                    compact_revision: 3,
                },
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                KvError::FutureRevision,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                KvError::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                KvError::LeaseExists,
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                KvError::LeaseTtlTooLarge,
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (
                KvError::NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                KvError::Corrupt,
                Code::DataLoss,
                "etcdserver: corrupt cluster",
            ),
            (
                KvError::RequestTooLarge {
                    size_bytes: 2,
                    bytes_max: 1,
                },
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                KvError::ValueTooLarge {
                    size_bytes: 2,
                    bytes_max: 1,
                },
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
        ];
        for (e, code, message) in etcd {
            let s = to_status(ClientError::Kv(e.clone()));
            assert_eq!((s.code(), s.message()), (code, message), "{e:?}");
        }
        let node = [
            (
                ClientError::NoLeader,
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                ClientError::Timeout,
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                ClientError::Stopped,
                Code::Unavailable,
                "etcdserver: server stopped",
            ),
            (
                ClientError::TooLarge {
                    size_bytes: 2,
                    max_bytes: 1,
                },
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                ClientError::Busy,
                Code::ResourceExhausted,
                "etcdserver: too many requests",
            ),
            (
                ClientError::NotLeader { leader: None },
                Code::FailedPrecondition,
                "etcdserver: not leader",
            ),
            (
                MemberError::IdExists.into(),
                Code::FailedPrecondition,
                "etcdserver: member ID already exist",
            ),
            (
                MemberError::PeerUrlExists.into(),
                Code::FailedPrecondition,
                "etcdserver: Peer URLs already exists",
            ),
            (
                MemberError::NotEnoughStarted.into(),
                Code::FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            (
                MemberError::NotFound.into(),
                Code::NotFound,
                "etcdserver: member not found",
            ),
            (
                MemberError::IdRemoved.into(),
                Code::NotFound,
                "etcdserver: member not found",
            ),
            (
                MemberError::NotLearner.into(),
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member",
            ),
            (
                MemberError::LearnerNotReady.into(),
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (
                MemberError::TooManyLearners.into(),
                Code::FailedPrecondition,
                "etcdserver: too many learner members in cluster",
            ),
            (
                MemberError::LeaderChanged.into(),
                Code::Unavailable,
                "etcdserver: leader changed",
            ),
            (
                ClientError::Kv(KvError::Member(sextant_core::MemberError::NotFound)),
                Code::NotFound,
                "etcdserver: member not found",
            ),
            (
                ClientError::Kv(KvError::Member(sextant_core::MemberError::PeerUrlExists)),
                Code::FailedPrecondition,
                "etcdserver: Peer URLs already exists",
            ),
        ];
        for (e, code, message) in node {
            let s = to_status(e.clone());
            assert_eq!((s.code(), s.message()), (code, message), "{e:?}");
        }
    }
}
