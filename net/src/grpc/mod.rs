//! The etcd v3 gRPC API over tonic (real tokio only; the simulator drives the node loop
//! directly). The generated types keep etcd's package names, so every etcd client works.

mod cluster;
mod convert;
mod election;
mod kv;
mod lock;
mod maintenance;
mod recipe_status;
mod status;

pub use cluster::{ClusterService, FORWARDED_HEADER};
pub use election::ElectionService;
pub use kv::{KvService, GRPC_OVERHEAD_BYTES};
pub use lock::LockService;
pub use maintenance::{MaintenanceService, ETCD_API_VERSION};
pub use status::to_status;

/// Generated etcd v3 types and services.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod pb {
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod v3lockpb {
        tonic::include_proto!("v3lockpb");
    }
    pub mod v3electionpb {
        tonic::include_proto!("v3electionpb");
    }
}
