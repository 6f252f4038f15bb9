//! `sextant move-leader`, `defrag` and `alarm list|disarm`: the Maintenance service's
//! administrative calls, printed as etcdctl prints them.

use anyhow::bail;
use clap::{Args, Subcommand};
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::{
    alarm_request::AlarmAction, maintenance_client::MaintenanceClient, AlarmType,
};

use super::endpoint::{status_of, targets};
use super::keys::parse_hex_id;
use super::{json, Connection};

#[derive(Args, Debug)]
pub struct MoveLeaderArgs {
    /// The member to hand leadership to (hexadecimal id).
    #[arg(value_parser = parse_hex_id)]
    pub target: u64,
}

#[derive(Args, Debug)]
pub struct DefragArgs {
    /// Defragment every member (client URLs from the member list) instead of `--endpoints`.
    #[arg(long)]
    pub cluster: bool,
}

#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// List the active alarms.
    List,
    /// Disarm every active alarm.
    Disarm,
}

/// Finds the leader among the endpoints (by their status) and asks it to transfer.
pub async fn move_leader(conn: &Connection, args: MoveLeaderArgs) -> anyhow::Result<()> {
    for url in conn.endpoints() {
        let s = status_of(conn, url).await?;
        let member_id = s.header.as_ref().map_or(0, |h| h.member_id);
        if member_id == 0 || s.leader != member_id {
            continue;
        }
        let mut m = MaintenanceClient::new(conn.connect(url).await?);
        let r = conn
            .call(m.move_leader(pb::MoveLeaderRequest {
                target_id: args.target,
            }))
            .await?;
        if conn.json() {
            json::print(&json::header_only(&r.header));
        } else {
            println!(
                "Leadership transferred from {:x} to {:x}",
                s.leader, args.target
            );
        }
        return Ok(());
    }
    bail!("no leader endpoint given at {:?}", conn.endpoints())
}

pub async fn defrag(conn: &Connection, args: DefragArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for url in targets(conn, args.cluster).await? {
        let outcome = async {
            let mut m = MaintenanceClient::new(conn.connect(&url).await?);
            conn.call(m.defragment(pb::DefragmentRequest {})).await
        }
        .await;
        match outcome {
            Ok(_) => println!("Finished defragmenting etcd member[{url}]"),
            Err(e) => {
                failed = true;
                eprintln!(
                    "Failed to defragment etcd member[{url}] ({})",
                    super::error_message(&e)
                );
            }
        }
    }
    if failed {
        bail!("failed to defragment some members");
    }
    Ok(())
}

fn alarm_name(alarm: i32) -> &'static str {
    match AlarmType::try_from(alarm) {
        Ok(AlarmType::None) => "NONE",
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        Err(_) => "UNKNOWN",
    }
}

/// etcdctl's line for an alarm (the Go text form of `AlarmMember`).
pub fn alarm_line(a: &pb::AlarmMember) -> String {
    format!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm))
}

fn print_alarms(conn: &Connection, r: &pb::AlarmResponse) {
    if conn.json() {
        json::print(&json::alarms(r));
    } else {
        for a in &r.alarms {
            println!("{}", alarm_line(a));
        }
    }
}

pub async fn alarm(conn: &Connection, cmd: AlarmCommand) -> anyhow::Result<()> {
    let mut m = conn.maintenance().await?;
    let list = conn
        .call(m.alarm(pb::AlarmRequest {
            action: AlarmAction::Get.into(),
            member_id: 0,
            alarm: AlarmType::None.into(),
        }))
        .await?;
    match cmd {
        AlarmCommand::List => print_alarms(conn, &list),
        AlarmCommand::Disarm => {
            // clientv3's AlarmDisarm of "everything": deactivate each listed alarm.
            let mut disarmed = pb::AlarmResponse {
                header: list.header,
                alarms: Vec::new(),
            };
            for a in &list.alarms {
                let r = conn
                    .call(m.alarm(pb::AlarmRequest {
                        action: AlarmAction::Deactivate.into(),
                        member_id: a.member_id,
                        alarm: a.alarm,
                    }))
                    .await?;
                disarmed.header = r.header;
                disarmed.alarms.extend(r.alarms);
            }
            print_alarms(conn, &disarmed);
        }
    }
    Ok(())
}
