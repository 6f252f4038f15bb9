//! `sextant compaction REV`: discards the key-value history before a revision.

use clap::Args;
use sextant_net::grpc::pb::etcdserverpb as pb;

use super::{json, Connection};

#[derive(Args, Debug)]
pub struct CompactionArgs {
    /// Compact the history before this revision.
    pub revision: i64,
    /// Wait until the compaction is physically applied to the storage.
    #[arg(long)]
    pub physical: bool,
}

pub async fn run(conn: &Connection, args: CompactionArgs) -> anyhow::Result<()> {
    let mut kv = conn.kv().await?;
    let req = pb::CompactionRequest {
        revision: args.revision,
        physical: args.physical,
    };
    let resp = conn.call(kv.compact(req)).await?;
    if conn.json() {
        json::print(&json::header_only(&resp.header));
    } else {
        println!("compacted revision {}", args.revision);
    }
    Ok(())
}
