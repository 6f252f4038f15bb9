//! `sextant lease grant|revoke|timetolive|keep-alive|list`: the Lease service, with lease
//! ids in hexadecimal as etcdctl prints and reads them.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use futures::StreamExt;
use sextant_net::grpc::pb::etcdserverpb as pb;

use super::keys::parse_lease_id;
use super::{json, Connection};

#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Grant a lease with a TTL in seconds.
    Grant(GrantArgs),
    /// Revoke a lease (deleting its keys).
    Revoke(IdArgs),
    /// Remaining and granted TTL of a lease.
    Timetolive(TimeToLiveArgs),
    /// Keep a lease alive until interrupted (or once with `--once`).
    KeepAlive(KeepAliveArgs),
    /// List the live leases.
    List,
}

#[derive(Args, Debug)]
pub struct GrantArgs {
    /// Time to live in seconds.
    pub ttl_secs: i64,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// Lease id (hexadecimal).
    #[arg(value_parser = parse_lease_id)]
    pub id: i64,
}

#[derive(Args, Debug)]
pub struct TimeToLiveArgs {
    /// Lease id (hexadecimal).
    #[arg(value_parser = parse_lease_id)]
    pub id: i64,
    /// Also list the keys attached to the lease.
    #[arg(long)]
    pub keys: bool,
}

#[derive(Args, Debug)]
pub struct KeepAliveArgs {
    /// Lease id (hexadecimal).
    #[arg(value_parser = parse_lease_id)]
    pub id: i64,
    /// Renew once and exit.
    #[arg(long)]
    pub once: bool,
}

pub async fn run(conn: &Connection, cmd: LeaseCommand) -> anyhow::Result<()> {
    let mut lease = conn.lease().await?;
    match cmd {
        LeaseCommand::Grant(a) => {
            let req = pb::LeaseGrantRequest {
                ttl: a.ttl_secs,
                id: 0,
            };
            let r = conn.call(lease.lease_grant(req)).await?;
            if !r.error.is_empty() {
                bail!("{}", r.error);
            }
            if conn.json() {
                json::print(&json::lease_grant(&r));
            } else {
                println!("lease {:016x} granted with TTL({}s)", r.id, r.ttl);
            }
        }
        LeaseCommand::Revoke(a) => {
            let r = conn
                .call(lease.lease_revoke(pb::LeaseRevokeRequest { id: a.id }))
                .await?;
            if conn.json() {
                json::print(&json::header_only(&r.header));
            } else {
                println!("lease {:016x} revoked", a.id);
            }
        }
        LeaseCommand::Timetolive(a) => {
            let req = pb::LeaseTimeToLiveRequest {
                id: a.id,
                keys: a.keys,
            };
            let r = conn.call(lease.lease_time_to_live(req)).await?;
            if conn.json() {
                json::print(&json::lease_time_to_live(&r));
            } else {
                println!("{}", time_to_live_line(&r, a.keys));
            }
        }
        LeaseCommand::KeepAlive(a) => keep_alive(conn, a).await?,
        LeaseCommand::List => {
            let r = conn
                .call(lease.lease_leases(pb::LeaseLeasesRequest {}))
                .await?;
            if conn.json() {
                json::print(&json::lease_leases(&r));
            } else {
                println!("found {} leases", r.leases.len());
                for l in &r.leases {
                    println!("{:016x}", l.id);
                }
            }
        }
    }
    Ok(())
}

/// etcdctl's `timetolive` line.
pub fn time_to_live_line(r: &pb::LeaseTimeToLiveResponse, keys: bool) -> String {
    if r.granted_ttl == 0 && r.ttl == -1 {
        return format!("lease {:016x} already expired", r.id);
    }
    let mut line = format!(
        "lease {:016x} granted with TTL({}s), remaining({}s)",
        r.id, r.granted_ttl, r.ttl
    );
    if keys {
        let names: Vec<String> = r
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        line.push_str(&format!(", attached keys([{}])", names.join(" ")));
    }
    line
}

/// Renews every third of the TTL (as clientv3 does) and prints each renewal; a renewal with
/// TTL 0 means the lease is gone.
async fn keep_alive(conn: &Connection, a: KeepAliveArgs) -> anyhow::Result<()> {
    let mut lease = conn.lease().await?;
    let (tx, rx) = futures::channel::mpsc::unbounded();
    // The first renewal is queued before the stream opens: a grpc-go server (etcd) sends the
    // response headers only with its first answer, and opening the call waits for them.
    tx.unbounded_send(pb::LeaseKeepAliveRequest { id: a.id })?;
    let mut responses = lease.lease_keep_alive(rx).await?.into_inner();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let resp = tokio::select! {
            _ = &mut interrupted => return Ok(()),
            r = tokio::time::timeout(conn.command_timeout(), responses.next()) => match r {
                Err(_) => bail!("context deadline exceeded"),
                Ok(None) => bail!("keep-alive stream closed by the server"),
                Ok(Some(r)) => r?,
            },
        };
        if resp.ttl <= 0 {
            if a.once {
                bail!("etcdserver: requested lease not found");
            }
            if !conn.json() {
                println!("lease {:016x} expired or revoked.", a.id);
            }
            return Ok(());
        }
        if conn.json() {
            json::print(&json::lease_keep_alive(&resp));
        } else {
            println!("lease {:016x} keepalived with TTL({})", resp.id, resp.ttl);
        }
        if a.once {
            return Ok(());
        }
        let period = Duration::from_secs((resp.ttl as u64 / 3).max(1));
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            _ = tokio::time::sleep(period) => {}
        }
        tx.unbounded_send(pb::LeaseKeepAliveRequest { id: a.id })?;
    }
}
