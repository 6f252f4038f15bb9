//! `sextant elect NAME [PROPOSAL]`: campaigns in election NAME on a session lease, prints the
//! leader key and the proposal once elected (as etcdctl does) and holds leadership until
//! Ctrl-C, then resigns. `--listen` instead prints every leader as it is proclaimed.

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::mvccpb;
use sextant_net::grpc::pb::v3electionpb as epb;

use super::output::{print_kv, KvStyle};
use super::session::Session;
use super::{json, Connection};

#[derive(Args, Debug)]
pub struct ElectArgs {
    /// The election's name.
    pub name: String,
    /// The value to proclaim when elected (required unless `--listen`).
    #[arg(required_unless_present = "listen")]
    pub proposal: Option<String>,
    /// Observe the election: print each leader's proclamation.
    #[arg(short, long, conflicts_with = "proposal")]
    pub listen: bool,
    /// TTL in seconds of the session lease (leadership is lost if it cannot be renewed).
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
}

pub async fn run(conn: &Connection, args: ElectArgs) -> anyhow::Result<()> {
    match args.proposal {
        Some(proposal) if !args.listen => campaign(conn, &args.name, proposal, args.ttl).await,
        _ => observe(conn, &args.name).await,
    }
}

fn print_leader(conn: &Connection, header: Option<pb::ResponseHeader>, kv: mvccpb::KeyValue) {
    if conn.json() {
        json::print(&json::range(&pb::RangeResponse {
            header,
            kvs: vec![kv],
            more: false,
            count: 1,
        }));
    } else {
        print_kv(&kv, KvStyle::default());
    }
}

async fn campaign(conn: &Connection, name: &str, proposal: String, ttl: i64) -> anyhow::Result<()> {
    let mut session = Session::start(conn, ttl).await?;
    let result = lead(conn, name, proposal, &mut session).await;
    let closed = session.close(conn).await;
    result?;
    closed
}

async fn lead(
    conn: &Connection,
    name: &str,
    proposal: String,
    session: &mut Session,
) -> anyhow::Result<()> {
    let mut election = conn.election().await?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // Campaigning has no deadline: it waits for the current leader to go.
    let lease_id = session.lease_id;
    let elected = tokio::select! {
        _ = &mut interrupted => bail!("interrupted while campaigning"),
        why = session.lost() => bail!("session lost while campaigning: {why}"),
        r = election.campaign(epb::CampaignRequest {
            name: name.as_bytes().to_vec(),
            lease: lease_id,
            value: proposal.clone().into_bytes(),
        }) => r?.into_inner(),
    };
    let Some(leader) = elected.leader else {
        bail!("campaign answered without a leader key");
    };
    print_leader(
        conn,
        elected.header,
        mvccpb::KeyValue {
            key: leader.key.clone(),
            create_revision: leader.rev,
            mod_revision: leader.rev,
            version: 1,
            value: proposal.into_bytes(),
            lease: leader.lease,
        },
    );
    let held = tokio::select! {
        _ = &mut interrupted => Ok(()),
        why = session.lost() => Err(anyhow::anyhow!("leadership lost: {why}")),
    };
    let resigned = conn
        .call(election.resign(epb::ResignRequest {
            leader: Some(leader),
        }))
        .await;
    held?;
    resigned?;
    Ok(())
}

async fn observe(conn: &Connection, name: &str) -> anyhow::Result<()> {
    let mut election = conn.election().await?;
    let mut leaders = election
        .observe(epb::LeaderRequest {
            name: name.as_bytes().to_vec(),
        })
        .await?
        .into_inner();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            msg = leaders.next() => match msg {
                None => bail!("observe stream closed by the server"),
                Some(r) => {
                    let r = r?;
                    if let Some(kv) = r.kv {
                        print_leader(conn, r.header, kv);
                    }
                }
            },
        }
    }
}
