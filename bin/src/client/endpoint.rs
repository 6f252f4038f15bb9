//! `sextant endpoint status|health|hashkv`: asks every endpoint (or with `--cluster`, every
//! member's client URLs from the member list) for its status, health or history hash, printed
//! as etcdctl prints them.

use std::time::Instant;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::Value;
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::{
    alarm_request::AlarmAction, kv_client::KvClient, maintenance_client::MaintenanceClient,
    AlarmType,
};

use super::json::{self, Obj};
use super::output::{go_duration, humanize_bytes};
use super::table;
use super::{member, Connection};

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// Status of each endpoint (member id, version, db size, leadership, raft indexes).
    Status(EndpointArgs),
    /// Whether each endpoint can commit a read and has no active alarm.
    Health(EndpointArgs),
    /// The hash of each endpoint's key-value history up to a revision (etcd's `HashKV`):
    /// members that applied the same writes agree on it.
    Hashkv(HashKvArgs),
}

#[derive(Args, Debug)]
pub struct HashKvArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    /// The highest revision to hash (0: each endpoint's current revision).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
}

#[derive(Args, Debug)]
pub struct EndpointArgs {
    /// Use every member's client URLs from the member list instead of `--endpoints`.
    #[arg(long)]
    pub cluster: bool,
}

/// The endpoints to ask: the given ones, or every member's client URLs.
pub async fn targets(conn: &Connection, cluster: bool) -> anyhow::Result<Vec<String>> {
    if !cluster {
        return Ok(conn.endpoints().to_vec());
    }
    let members = member::list(conn).await?;
    let mut urls: Vec<String> = members
        .members
        .iter()
        .flat_map(|m| m.client_ur_ls.iter().cloned())
        .collect();
    urls.sort();
    urls.dedup();
    Ok(urls)
}

pub async fn run(conn: &Connection, cmd: EndpointCommand) -> anyhow::Result<()> {
    match cmd {
        EndpointCommand::Status(a) => status(conn, &targets(conn, a.cluster).await?).await,
        EndpointCommand::Health(a) => health(conn, &targets(conn, a.cluster).await?).await,
        EndpointCommand::Hashkv(a) => {
            hash_kv(conn, &targets(conn, a.endpoints.cluster).await?, a.rev).await
        }
    }
}

/// etcdctl's `endpoint hashkv`: `endpoint, hash` rows, an ENDPOINT/HASH table, or a JSON
/// list of `{"Endpoint", "HashKV"}`.
async fn hash_kv(conn: &Connection, urls: &[String], revision: i64) -> anyhow::Result<()> {
    let (rows, failed) = ask_each(urls, "hash", |url| async move {
        let mut m = MaintenanceClient::new(conn.connect(&url).await?);
        conn.call(m.hash_kv(pb::HashKvRequest { revision })).await
    })
    .await;
    let shape = RowShape {
        json_field: "HashKV",
        json: json::hash_kv,
        header: &table::ENDPOINT_HASHKV,
        cells: |url, h| vec![url.to_string(), h.hash.to_string()],
    };
    print_rows(conn, &rows, &shape);
    if failed {
        bail!("failed to get the hash of some endpoints");
    }
    Ok(())
}

/// How one kind of per-endpoint answer prints, in etcdctl's three formats: its cells joined
/// by `, ` (simple), a table of the cells, or a JSON list of `{"Endpoint", json_field}`.
struct RowShape<T> {
    json_field: &'static str,
    json: fn(&T) -> Value,
    header: &'static [&'static str],
    cells: fn(&str, &T) -> Vec<String>,
}

fn print_rows<T>(conn: &Connection, rows: &[(String, T)], shape: &RowShape<T>) {
    if conn.json() {
        let list = rows
            .iter()
            .map(|(url, answer)| {
                Obj::new()
                    .always("Endpoint", url.as_str().into())
                    .always(shape.json_field, (shape.json)(answer))
                    .done()
            })
            .collect();
        json::print(&Value::Array(list));
        return;
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(url, answer)| (shape.cells)(url, answer))
        .collect();
    if conn.table() {
        print!("{}", table::render(shape.header, &cells));
    } else {
        for row in cells {
            println!("{}", row.join(", "));
        }
    }
}

/// Asks each endpoint in turn: the answers in order, and whether any failed (each failure
/// printed as etcdctl does, `Failed to get the {what} of endpoint {url} ({error})`).
async fn ask_each<T, Fut>(
    urls: &[String],
    what: &str,
    ask: impl Fn(String) -> Fut,
) -> (Vec<(String, T)>, bool)
where
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut failed = false;
    let mut rows = Vec::new();
    for url in urls {
        match ask(url.clone()).await {
            Ok(answer) => rows.push((url.clone(), answer)),
            Err(e) => {
                failed = true;
                let e = super::error_message(&e);
                eprintln!("Failed to get the {what} of endpoint {url} ({e})");
            }
        }
    }
    (rows, failed)
}

/// One endpoint's status.
pub async fn status_of(conn: &Connection, url: &str) -> anyhow::Result<pb::StatusResponse> {
    let mut m = MaintenanceClient::new(conn.connect(url).await?);
    conn.call(m.status(pb::StatusRequest {})).await
}

/// etcdctl's status cells: endpoint, ID, version, db size, is leader, is learner, raft term,
/// raft index, raft applied index, errors.
fn status_cells(url: &str, s: &pb::StatusResponse) -> Vec<String> {
    let member_id = s.header.as_ref().map_or(0, |h| h.member_id);
    vec![
        url.to_string(),
        format!("{member_id:x}"),
        s.version.clone(),
        humanize_bytes(s.db_size.max(0) as u64),
        (s.leader == member_id).to_string(),
        s.is_learner.to_string(),
        s.raft_term.to_string(),
        s.raft_index.to_string(),
        s.raft_applied_index.to_string(),
        s.errors.join(", "),
    ]
}

async fn status(conn: &Connection, urls: &[String]) -> anyhow::Result<()> {
    let (rows, failed) = ask_each(
        urls,
        "status",
        |url| async move { status_of(conn, &url).await },
    )
    .await;
    let shape = RowShape {
        json_field: "Status",
        json: json::status,
        header: &table::ENDPOINT_STATUS,
        cells: status_cells,
    };
    print_rows(conn, &rows, &shape);
    if failed {
        bail!("failed to get the status of some endpoints");
    }
    Ok(())
}

/// One endpoint's health as etcdctl judges it: a linearizable read of the key `health`
/// commits, and the alarm list is readable and empty.
struct Health {
    url: String,
    healthy: bool,
    took: String,
    error: String,
}

async fn health_of(conn: &Connection, url: &str) -> Health {
    let start = Instant::now();
    let (healthy, error) = match check(conn, url).await {
        Ok(()) => (true, String::new()),
        Err(e) => (false, e),
    };
    Health {
        url: url.to_string(),
        healthy,
        took: go_duration(start.elapsed()),
        error,
    }
}

async fn check(conn: &Connection, url: &str) -> Result<(), String> {
    let ch = conn.connect(url).await.map_err(|e| e.to_string())?;
    let mut kv = KvClient::new(ch.clone());
    let read = conn
        .call(kv.range(pb::RangeRequest {
            key: b"health".to_vec(),
            ..Default::default()
        }))
        .await;
    if let Err(e) = read {
        let denied = e
            .downcast_ref::<tonic::Status>()
            .is_some_and(|s| s.code() == tonic::Code::PermissionDenied);
        if !denied {
            return Err(super::error_message(&e));
        }
    }
    let mut m = MaintenanceClient::new(ch);
    let alarms = conn
        .call(m.alarm(pb::AlarmRequest {
            action: AlarmAction::Get.into(),
            member_id: 0,
            alarm: AlarmType::None.into(),
        }))
        .await
        .map_err(|_| "Unable to fetch the alarm list".to_string())?;
    if alarms.alarms.is_empty() {
        return Ok(());
    }
    let names: String = alarms
        .alarms
        .iter()
        .map(|a| match AlarmType::try_from(a.alarm) {
            Ok(AlarmType::Nospace) => "NOSPACE ",
            Ok(AlarmType::Corrupt) => "CORRUPT ",
            _ => "UNKNOWN ",
        })
        .collect();
    Err(format!("Active Alarm(s): {names}"))
}

async fn health(conn: &Connection, urls: &[String]) -> anyhow::Result<()> {
    let results = futures::future::join_all(urls.iter().map(|u| health_of(conn, u))).await;
    if conn.json() {
        let list = results
            .iter()
            .map(|h| {
                Obj::new()
                    .always("endpoint", h.url.as_str().into())
                    .always("health", h.healthy.into())
                    .always("took", h.took.as_str().into())
                    .str("error", &h.error)
                    .done()
            })
            .collect();
        json::print(&Value::Array(list));
    } else if conn.table() {
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|h| {
                vec![
                    h.url.clone(),
                    h.healthy.to_string(),
                    h.took.clone(),
                    h.error.clone(),
                ]
            })
            .collect();
        print!("{}", table::render(&table::ENDPOINT_HEALTH, &rows));
    } else {
        for h in &results {
            if h.healthy {
                println!(
                    "{} is healthy: successfully committed proposal: took = {}",
                    h.url, h.took
                );
            } else {
                eprintln!(
                    "{} is unhealthy: failed to commit proposal: {}",
                    h.url, h.error
                );
            }
        }
    }
    if results.iter().any(|h| !h.healthy) {
        bail!("unhealthy cluster");
    }
    Ok(())
}
