//! Lease expiry on the leader: [`Lessor`], a sans-IO tracker of when each lease expires. The
//! replicated half of leases (which exist, their TTLs, attached keys) is state-machine state in
//! [`crate::kv`]; this module only decides, from the leader's clock (`now_ms` inputs), which
//! leases to revoke and which remaining TTLs to checkpoint — both proposed through the log as
//! [`crate::kv::Command::LeaseRevoke`] / [`crate::kv::Command::LeaseCheckpoint`]. Only a
//! current leader ever expires a lease.
//!
//! **TTL is a lower bound.** A lease is never revoked sooner than its TTL after its grant or
//! its last acknowledged keepalive, measured on the leader's clock, provided that
//! - the driver answers a keepalive only after the checkpoint [`Lessor::renew`] returns (if
//!   any) has applied, so a later leader does not restart the lease from a stale remaining
//!   TTL, and only while it is sure to be leader (e.g. within its leader lease);
//! - clocks advance at roughly the same rate on every member.
//!
//! It may live longer: a new leader restarts every lease from its checkpointed remaining TTL
//! (or its full TTL) plus `extend_ms` (etcd passes the election timeout), expired leases are
//! reported at a bounded rate and revoked only once the revoke commits, and piled-up expiries
//! are spread out on promotion. This is etcd's contract (`lessor.go`).

mod config;
mod lessor;
mod spread;

pub use config::LessorConfig;
pub use lessor::{Lessor, RenewError, Renewed};
