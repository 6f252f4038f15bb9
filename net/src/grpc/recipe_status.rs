//! The gRPC answer for each recipe failure. etcd's v3lock and v3election servers return the
//! client library's errors unchanged, which grpc-go sends as code `Unknown` with the error's
//! text (`election: not leader`, `election: no leader`, `mutex: session is expired`); node
//! failures keep their usual `etcdserver: …` status.

use tonic::{Code, Status};

use super::status::to_status;
use crate::recipes::RecipeError;

pub fn recipe_status(e: RecipeError) -> Status {
    match e {
        RecipeError::Client(c) => to_status(c),
        RecipeError::SessionExpired { .. } => {
            Status::new(Code::Unknown, "mutex: session is expired")
        }
        RecipeError::NotLeader => Status::new(Code::Unknown, "election: not leader"),
        RecipeError::NoLeader => Status::new(Code::Unknown, "election: no leader"),
        RecipeError::Contended { .. } => Status::new(Code::Aborted, format!("sextant: {e}")),
        RecipeError::WatchCancelled(_) => Status::new(Code::Unavailable, format!("sextant: {e}")),
    }
}
