//! `sextant put KEY [VALUE]`: one Put, `OK` on success (and the previous pair with
//! `--prev-kv`). The value is read from stdin when it is not given.

use std::io::Read;

use anyhow::{bail, Context};
use clap::Args;
use sextant_net::grpc::pb::etcdserverpb as pb;

use super::keys::parse_lease_id;
use super::{json, output, Connection};

#[derive(Args, Debug, Clone)]
pub struct PutArgs {
    /// The key.
    pub key: String,
    /// The value; read from stdin when omitted (not with `--ignore-value`).
    pub value: Option<String>,
    /// Attach the key to this lease (hexadecimal id).
    #[arg(long, value_parser = parse_lease_id)]
    pub lease: Option<i64>,
    /// Return the previous key-value pair.
    #[arg(long)]
    pub prev_kv: bool,
    /// Keep the current value (change only the lease).
    #[arg(long)]
    pub ignore_value: bool,
    /// Keep the current lease (change only the value).
    #[arg(long)]
    pub ignore_lease: bool,
}

impl PutArgs {
    /// The request; `stdin_value` supplies the value when it was not given.
    pub fn request(
        &self,
        stdin_value: impl FnOnce() -> anyhow::Result<String>,
    ) -> anyhow::Result<pb::PutRequest> {
        let value = match (&self.value, self.ignore_value) {
            (Some(_), true) => bail!("value is provided with --ignore-value"),
            (Some(v), false) => v.clone(),
            (None, true) => String::new(),
            (None, false) => stdin_value()?,
        };
        Ok(pb::PutRequest {
            key: self.key.clone().into_bytes(),
            value: value.into_bytes(),
            lease: self.lease.unwrap_or(0),
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        })
    }
}

/// The whole of stdin, as etcdctl takes a value that was not given as an argument.
pub fn read_stdin_value() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the value from stdin")?;
    Ok(s)
}

pub async fn run(conn: &Connection, args: PutArgs) -> anyhow::Result<()> {
    let req = args.request(read_stdin_value)?;
    let mut kv = conn.kv().await?;
    let resp = conn.call(kv.put(req)).await?;
    if conn.json() {
        json::print(&json::put(&resp));
    } else {
        output::print_put(&resp);
    }
    Ok(())
}
