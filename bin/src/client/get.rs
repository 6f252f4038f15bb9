//! `sextant get KEY [RANGE_END]`: one Range with etcdctl's flags (prefix, from-key,
//! revision, limit, sorting, keys/count only, consistency), printed as etcdctl prints it.

use clap::{Args, ValueEnum};
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::range_request::{SortOrder, SortTarget};

use super::keys::{check_range_flags, key_range};
use super::output::KvStyle;
use super::{json, output, Connection};

#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// The key, or the start of the range.
    pub key: String,
    /// End of the range `[KEY, RANGE_END)`.
    pub range_end: Option<String>,
    /// Get every key with the prefix KEY.
    #[arg(long)]
    pub prefix: bool,
    /// Get every key greater than or equal to KEY.
    #[arg(long)]
    pub from_key: bool,
    /// Read at this revision (0: the latest).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// At most this many keys (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Sort by this field.
    #[arg(long, value_enum, ignore_case = true)]
    pub sort_by: Option<SortBy>,
    /// Sort order (ascending when only `--sort-by` is given).
    #[arg(long, value_enum, ignore_case = true)]
    pub order: Option<Order>,
    /// Keys only, no values.
    #[arg(long)]
    pub keys_only: bool,
    /// Only the number of keys in the range.
    #[arg(long)]
    pub count_only: bool,
    /// Only the values, no keys.
    #[arg(long)]
    pub print_value_only: bool,
    /// `l` (linearizable) or `s` (serializable: this member's possibly stale view).
    #[arg(long, default_value = "l")]
    pub consistency: Consistency,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum SortBy {
    Create,
    Key,
    Modify,
    Value,
    Version,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Order {
    Ascend,
    Descend,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Consistency {
    L,
    S,
}

impl GetArgs {
    pub fn request(&self) -> anyhow::Result<pb::RangeRequest> {
        check_range_flags(self.range_end.as_deref(), self.prefix, self.from_key)?;
        let range = key_range(
            &self.key,
            self.range_end.as_deref(),
            self.prefix,
            self.from_key,
        );
        let sort_target = match self.sort_by {
            None | Some(SortBy::Key) => SortTarget::Key,
            Some(SortBy::Create) => SortTarget::Create,
            Some(SortBy::Modify) => SortTarget::Mod,
            Some(SortBy::Value) => SortTarget::Value,
            Some(SortBy::Version) => SortTarget::Version,
        };
        let sort_order = match (self.order, self.sort_by) {
            (Some(Order::Ascend), _) => SortOrder::Ascend,
            (Some(Order::Descend), _) => SortOrder::Descend,
            (None, Some(_)) => SortOrder::Ascend,
            (None, None) => SortOrder::None,
        };
        Ok(pb::RangeRequest {
            key: range.key,
            range_end: range.range_end,
            limit: self.limit,
            revision: self.rev,
            sort_order: sort_order.into(),
            sort_target: sort_target.into(),
            serializable: matches!(self.consistency, Consistency::S),
            keys_only: self.keys_only,
            count_only: self.count_only,
            ..Default::default()
        })
    }

    pub fn style(&self) -> KvStyle {
        KvStyle {
            value_only: self.print_value_only,
        }
    }
}

pub async fn run(conn: &Connection, args: GetArgs) -> anyhow::Result<()> {
    let req = args.request()?;
    let mut kv = conn.kv().await?;
    let resp = conn.call(kv.range(req)).await?;
    if conn.json() {
        json::print(&json::range(&resp));
    } else if args.count_only {
        println!("{}", resp.count);
    } else {
        output::print_range(&resp, args.style());
    }
    Ok(())
}
