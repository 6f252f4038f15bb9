//! `sextant del KEY [RANGE_END]`: one DeleteRange; prints the number of deleted keys (and
//! the deleted pairs with `--prev-kv`).

use clap::Args;
use sextant_net::grpc::pb::etcdserverpb as pb;

use super::keys::{check_range_flags, key_range};
use super::{json, output, Connection};

#[derive(Args, Debug, Clone)]
pub struct DelArgs {
    /// The key, or the start of the range.
    pub key: String,
    /// End of the range `[KEY, RANGE_END)`.
    pub range_end: Option<String>,
    /// Delete every key with the prefix KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Return the deleted key-value pairs.
    #[arg(long)]
    pub prev_kv: bool,
    /// Delete every key greater than or equal to KEY.
    #[arg(long)]
    pub from_key: bool,
}

impl DelArgs {
    pub fn request(&self) -> anyhow::Result<pb::DeleteRangeRequest> {
        check_range_flags(self.range_end.as_deref(), self.prefix, self.from_key)?;
        let range = key_range(
            &self.key,
            self.range_end.as_deref(),
            self.prefix,
            self.from_key,
        );
        Ok(pb::DeleteRangeRequest {
            key: range.key,
            range_end: range.range_end,
            prev_kv: self.prev_kv,
        })
    }
}

pub async fn run(conn: &Connection, args: DelArgs) -> anyhow::Result<()> {
    let req = args.request()?;
    let mut kv = conn.kv().await?;
    let resp = conn.call(kv.delete_range(req)).await?;
    if conn.json() {
        json::print(&json::delete(&resp));
    } else {
        output::print_delete(&resp);
    }
    Ok(())
}
