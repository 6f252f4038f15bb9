//! # sextant-net
//!
//! Will own the one node event loop that drives `sextant-core` (persist, send, apply) and the
//! real adapters: TCP peer transport, the etcd-compatible gRPC server and file storage. This
//! crate has no content yet; the node loop arrives with the node issue. It exists now so the
//! workspace layout is fixed.

pub use sextant_core as core;
