//! `KvLimits`: the bounds a member puts on requests, checked before a command is proposed
//! ([`KvLimits::admit`]) or a read is served. They are member configuration, like etcd's
//! `--max-request-bytes` and `--max-txn-ops`, so the state machine never applies them to
//! commands from the log: replicas with different settings still apply identically.

use serde::{Deserialize, Serialize};

use super::validate::validate;
use super::{Command, KvError, RequestOp};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvLimits {
    /// Largest encoded command (etcd `--max-request-bytes`, default 1.5 MiB).
    pub request_bytes_max: usize,
    /// Largest value in one put (etcd has no separate limit; by default the request limit).
    pub value_bytes_max: usize,
    /// Compares, and ops per branch, in one txn level (etcd `--max-txn-ops`, default 128).
    pub txn_ops_max: usize,
    /// Keys one range response may carry (not in etcd): larger reads must page with `limit`.
    /// Applies to reads served by the member ([`super::KvStore::range`],
    /// [`super::KvStore::txn_read`]), not to ranges inside txns applied from the log.
    pub range_keys_max: usize,
    /// Lease grants with a shorter TTL are raised to this (etcd's `minLeaseTTL`: 1.5 × the
    /// election timeout, rounded up to whole seconds — 2 s with the default 1 s timeout).
    pub lease_ttl_min_secs: i64,
}

/// etcd's default `--max-request-bytes`.
const REQUEST_BYTES_MAX_DEFAULT: usize = 1536 * 1024;

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            request_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            value_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
            txn_ops_max: 128,
            range_keys_max: 1_000_000,
            lease_ttl_min_secs: 2,
        }
    }
}

impl KvLimits {
    /// Readies `cmd` for proposing, in etcd's order: the gRPC checks (ops per txn, empty keys,
    /// `ignore_*` misuse, keys written twice in a txn), then sizes; a lease grant's TTL is
    /// raised to the minimum.
    pub fn admit(&self, cmd: &mut Command) -> Result<(), KvError> {
        validate(cmd, Some(self.txn_ops_max))?;
        self.check_values(cmd)?;
        let size_bytes =
            postcard::experimental::serialized_size(&*cmd).expect("in-memory encoding cannot fail");
        if size_bytes > self.request_bytes_max {
            return Err(KvError::RequestTooLarge {
                size_bytes,
                bytes_max: self.request_bytes_max,
            });
        }
        if let Command::LeaseGrant { ttl_secs, .. } = cmd {
            *ttl_secs = (*ttl_secs).max(self.lease_ttl_min_secs);
        }
        Ok(())
    }

    fn check_values(&self, cmd: &Command) -> Result<(), KvError> {
        fn largest(ops: &[RequestOp]) -> usize {
            ops.iter()
                .map(|op| match op {
                    RequestOp::Put(p) => p.value.len(),
                    RequestOp::Txn(t) => largest(&t.success).max(largest(&t.failure)),
                    RequestOp::Range(_) | RequestOp::DeleteRange(_) => 0,
                })
                .max()
                .unwrap_or(0)
        }
        let size_bytes = match cmd {
            Command::Put(p) => p.value.len(),
            Command::Txn(t) => largest(&t.success).max(largest(&t.failure)),
            _ => 0,
        };
        if size_bytes > self.value_bytes_max {
            return Err(KvError::ValueTooLarge {
                size_bytes,
                bytes_max: self.value_bytes_max,
            });
        }
        Ok(())
    }
}
