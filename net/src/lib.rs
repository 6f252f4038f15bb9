//! # sextant-net
//!
//! The node event loop that drives `sextant-core` (`node`: persist, send, apply, answer
//! clients), and the real adapters it runs with in production: file storage (`storage`), the
//! TCP peer transport (`transport`), the etcd v3 gRPC API (`grpc`) and their assembly into a
//! running member (`server`), plus the coordination recipes the server runs for clients
//! (`recipes`: locks with fencing tokens, elections). The node loop uses only `tokio` names (madsim-tokio), so the
//! simulator runs the same loop with simulated adapters; `grpc` and `server` exist only on real
//! tokio.

pub use sextant_core as core;

#[cfg(not(madsim))]
pub mod grpc;
pub mod node;
pub mod recipes;
#[cfg(not(madsim))]
pub mod server;
pub mod storage;
pub mod transport;
