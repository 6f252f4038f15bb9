//! Errors as etcd clients expect them: the same gRPC codes and `etcdserver: …` messages, so
//! client libraries' retry and error handling work unchanged.

use sextant_core::kv::KvError;
use tonic::{Code, Status};

use crate::node::ClientError;

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
    }
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
        KvError::TxnTooDeep { .. } | KvError::RangeTooLarge { .. } | KvError::TxnNotReadOnly => {
            Status::new(Code::InvalidArgument, format!("sextant: {e}"))
        }
    }
}
