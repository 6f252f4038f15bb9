//! Errors as etcd clients expect them: the same gRPC codes and `etcdserver: …` messages, so
//! client libraries' retry and error handling work unchanged.

use sextant_core::kv::KvError;
use tonic::{Code, Status};

use crate::node::ClientError;

pub fn to_status(e: ClientError) -> Status {
    match e {
        ClientError::Kv(k) => match k {
            KvError::EmptyKey => {
                Status::new(Code::InvalidArgument, "etcdserver: key is not provided")
            }
            KvError::KeyNotFound => Status::new(Code::InvalidArgument, "etcdserver: key not found"),
            KvError::LeaseNotFound => {
                Status::new(Code::NotFound, "etcdserver: requested lease not found")
            }
            KvError::FutureRevision => Status::new(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            KvError::HistoricalRead => Status::new(
                Code::Unimplemented,
                "sextant: reads at a past revision are not supported by this version",
            ),
        },
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
