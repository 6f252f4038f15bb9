//! What a client write looks like in the Raft log: the command plus a request id, so the node
//! that accepted the request can answer it when the entry is applied (on the leader or, for a
//! forwarded proposal, on the follower that received it).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sextant_core::kv::Command;
use sextant_core::NodeId;

/// Unique across the cluster and across restarts: `epoch` is random per boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    pub node: NodeId,
    pub epoch: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCommand {
    pub id: RequestId,
    pub cmd: Command,
}

impl LogCommand {
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("in-memory encoding cannot fail"))
    }

    /// `None` for data that is not a command of ours (never written by this version).
    pub fn decode(data: &[u8]) -> Option<LogCommand> {
        postcard::from_bytes(data).ok()
    }
}
