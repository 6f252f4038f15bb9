//! The `v3lockpb.Lock` service (etcd's `v3lock`): `Lock` and `Unlock` over
//! [`crate::recipes::lock`]. A `Lock` waits behind earlier holders; when the client goes away
//! tonic drops the handler's future, and the recipe deletes the waiter's key, so it leaves the
//! queue as etcd's server does.

use bytes::Bytes;
use tonic::{Request, Response, Status};

use super::convert;
use super::pb::v3lockpb as pb;
use super::pb::v3lockpb::lock_server::Lock;
use super::recipe_status::recipe_status;
use crate::node::NodeHandle;
use crate::recipes;

pub struct LockService {
    node: NodeHandle,
}

impl LockService {
    pub fn server(node: NodeHandle) -> pb::lock_server::LockServer<LockService> {
        pb::lock_server::LockServer::new(LockService { node })
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(
        &self,
        req: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockResponse>, Status> {
        let r = req.into_inner();
        let locked = recipes::lock(&self.node, &r.name, r.lease)
            .await
            .map_err(recipe_status)?;
        Ok(Response::new(pb::LockResponse {
            header: convert::header(locked.header),
            key: locked.key.to_vec(),
        }))
    }

    async fn unlock(
        &self,
        req: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        let r = req.into_inner();
        let header = recipes::unlock(&self.node, Bytes::from(r.key))
            .await
            .map_err(recipe_status)?;
        Ok(Response::new(pb::UnlockResponse {
            header: convert::header(header),
        }))
    }
}
