//! `sextant watch KEY [RANGE_END]`: one watch stream; prints every event as etcdctl does
//! (`PUT`/`DELETE`, then the key and value lines) until interrupted (Ctrl-C) or canceled.

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::watch_request::RequestUnion;

use super::keys::{check_range_flags, key_range};
use super::{json, output, Connection};

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The key, or the start of the range.
    pub key: String,
    /// End of the range `[KEY, RANGE_END)`.
    pub range_end: Option<String>,
    /// Watch every key with the prefix KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Start at this revision (0: from now on); older events are replayed.
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Also print each event's previous key-value pair.
    #[arg(long)]
    pub prev_kv: bool,
}

impl WatchArgs {
    pub fn request(&self) -> anyhow::Result<pb::WatchCreateRequest> {
        check_range_flags(self.range_end.as_deref(), self.prefix, false)?;
        let range = key_range(&self.key, self.range_end.as_deref(), self.prefix, false);
        Ok(pb::WatchCreateRequest {
            key: range.key,
            range_end: range.range_end,
            start_revision: self.rev,
            prev_kv: self.prev_kv,
            ..Default::default()
        })
    }
}

pub async fn run(conn: &Connection, args: WatchArgs) -> anyhow::Result<()> {
    let create = args.request()?;
    let mut client = conn.watch().await?;
    // The request stream stays open (the sender is kept) so the server keeps the watch.
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tx.unbounded_send(pb::WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(create)),
    })?;
    let mut responses = client.watch(rx).await?.into_inner();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            msg = responses.next() => {
                let resp = match msg {
                    Some(r) => r?,
                    None => bail!("watch closed by the server"),
                };
                if resp.compact_revision != 0 {
                    bail!(
                        "watch was canceled (etcdserver: mvcc: required revision has been compacted; compacted revision {})",
                        resp.compact_revision
                    );
                }
                if resp.canceled {
                    let reason = if resp.cancel_reason.is_empty() {
                        "canceled by the server"
                    } else {
                        &resp.cancel_reason
                    };
                    bail!("watch was canceled ({reason})");
                }
                if resp.events.is_empty() {
                    continue;
                }
                if conn.json() {
                    json::print(&json::watch(&resp));
                } else {
                    output::print_events(&resp);
                }
            }
        }
    }
}
