//! `sextant member list|add|remove|update|promote`: the Cluster service, with member ids in
//! hexadecimal and etcdctl's output (including the `ETCD_*` settings for a new member).

use clap::{Args, Subcommand};
use sextant_net::grpc::pb::etcdserverpb as pb;

use super::keys::parse_hex_id;
use super::{json, table, Connection};

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// List the members.
    List,
    /// Add a member (start it afterwards with the printed settings).
    Add(AddArgs),
    /// Remove a member.
    Remove(IdArgs),
    /// Change a member's peer URLs.
    Update(UpdateArgs),
    /// Promote a learner to a voting member.
    Promote(IdArgs),
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The new member's name.
    pub name: String,
    /// The new member's peer URLs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub peer_urls: Vec<String>,
    /// Add as a learner (non-voting until promoted).
    #[arg(long)]
    pub learner: bool,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// Member id (hexadecimal).
    #[arg(value_parser = parse_hex_id)]
    pub id: u64,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Member id (hexadecimal).
    #[arg(value_parser = parse_hex_id)]
    pub id: u64,
    /// The member's new peer URLs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub peer_urls: Vec<String>,
}

/// `ID, status, name, peer URLs, client URLs, is learner` (etcdctl's simple row).
pub fn member_row(m: &pb::Member) -> String {
    member_cells(m).join(", ")
}

/// The member's fields as etcdctl prints them (in rows and in tables).
fn member_cells(m: &pb::Member) -> Vec<String> {
    let status = if m.name.is_empty() {
        "unstarted"
    } else {
        "started"
    };
    vec![
        format!("{:x}", m.id),
        status.to_string(),
        m.name.clone(),
        m.peer_ur_ls.join(","),
        m.client_ur_ls.join(","),
        m.is_learner.to_string(),
    ]
}

fn cluster_id(h: &Option<pb::ResponseHeader>) -> u64 {
    h.as_ref().map_or(0, |h| h.cluster_id)
}

/// The members, linearizably (as etcdctl asks by default).
pub async fn list(conn: &Connection) -> anyhow::Result<pb::MemberListResponse> {
    let mut cluster = conn.cluster().await?;
    conn.call(cluster.member_list(pb::MemberListRequest { linearizable: true }))
        .await
}

pub async fn run(conn: &Connection, cmd: MemberCommand) -> anyhow::Result<()> {
    let mut cluster = conn.cluster().await?;
    match cmd {
        MemberCommand::List => {
            let r = list(conn).await?;
            if conn.json() {
                json::print(&json::members(&r.header, None, &r.members));
            } else if conn.table() {
                let rows: Vec<Vec<String>> = r.members.iter().map(member_cells).collect();
                print!("{}", table::render(&table::MEMBER_LIST, &rows));
            } else {
                for m in &r.members {
                    println!("{}", member_row(m));
                }
            }
        }
        MemberCommand::Add(a) => {
            let req = pb::MemberAddRequest {
                peer_ur_ls: a.peer_urls.clone(),
                is_learner: a.learner,
            };
            let r = conn.call(cluster.member_add(req)).await?;
            if conn.json() {
                json::print(&json::members(&r.header, r.member.as_ref(), &r.members));
            } else {
                print_added(&a, &r);
            }
        }
        MemberCommand::Remove(a) => {
            let r = conn
                .call(cluster.member_remove(pb::MemberRemoveRequest { id: a.id }))
                .await?;
            if conn.json() {
                json::print(&json::members(&r.header, None, &r.members));
            } else {
                println!(
                    "Member {:16x} removed from cluster {:16x}",
                    a.id,
                    cluster_id(&r.header)
                );
            }
        }
        MemberCommand::Update(a) => {
            let req = pb::MemberUpdateRequest {
                id: a.id,
                peer_ur_ls: a.peer_urls,
            };
            let r = conn.call(cluster.member_update(req)).await?;
            if conn.json() {
                json::print(&json::members(&r.header, None, &r.members));
            } else {
                println!(
                    "Member {:16x} updated in cluster {:16x}",
                    a.id,
                    cluster_id(&r.header)
                );
            }
        }
        MemberCommand::Promote(a) => {
            let r = conn
                .call(cluster.member_promote(pb::MemberPromoteRequest { id: a.id }))
                .await?;
            if conn.json() {
                json::print(&json::members(&r.header, None, &r.members));
            } else {
                println!(
                    "Member {:16x} promoted in cluster {:16x}",
                    a.id,
                    cluster_id(&r.header)
                );
            }
        }
    }
    Ok(())
}

/// etcdctl's report of an added member and the settings to start it with.
fn print_added(a: &AddArgs, r: &pb::MemberAddResponse) {
    let new_id = r.member.as_ref().map_or(0, |m| m.id);
    let as_learner = if a.learner { " as learner " } else { " " };
    println!(
        "Member {new_id:16x} added{as_learner}to cluster {:16x}",
        cluster_id(&r.header)
    );
    let initial: Vec<String> = r
        .members
        .iter()
        .flat_map(|m| {
            let name = if m.id == new_id { &a.name } else { &m.name };
            m.peer_ur_ls.iter().map(move |u| format!("{name}={u}"))
        })
        .collect();
    println!();
    println!("ETCD_NAME={:?}", a.name);
    println!("ETCD_INITIAL_CLUSTER={:?}", initial.join(","));
    println!(
        "ETCD_INITIAL_ADVERTISE_PEER_URLS={:?}",
        a.peer_urls.join(",")
    );
    println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
}
