//! The client subcommands (`put`, `get`, `txn`, `watch`, `lease`, `member`, …): an etcdctl
//! for users without one. Each speaks the etcd v3 gRPC API through the generated tonic
//! clients; this module owns the global flags, the command list and the shared runtime.

mod compaction;
mod conn;
mod del;
mod elect;
mod endpoint;
mod get;
mod json;
mod keys;
mod lease;
mod lock;
mod maintenance;
mod member;
mod output;
mod put;
mod session;
pub mod snapshot;
mod table;
mod txn;
mod txn_parse;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

pub use conn::Connection;

/// etcdctl's global flags (they may be given before or after the subcommand).
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// gRPC endpoints, comma-separated; the next one is tried when one cannot be reached.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379",
        help_heading = "Client options"
    )]
    pub endpoints: Vec<String>,
    /// How long to wait for a connection to an endpoint (e.g. `2s`, `500ms`).
    #[arg(long, global = true, default_value = "2s", value_parser = humantime::parse_duration, help_heading = "Client options")]
    pub dial_timeout: Duration,
    /// How long one request may take, connection excluded (e.g. `5s`).
    #[arg(long, global = true, default_value = "5s", value_parser = humantime::parse_duration, help_heading = "Client options")]
    pub command_timeout: Duration,
    /// Output format: `simple` (etcdctl's), `json` (the response message, etcd field names) or
    /// `table` (etcdctl's tables, for `member list` and `endpoint status|health|hashkv`).
    #[arg(
        short = 'w',
        long,
        global = true,
        value_enum,
        default_value_t = WriteOut::Simple,
        help_heading = "Client options"
    )]
    pub write_out: WriteOut,
    /// Verify servers with this CA bundle (PEM) instead of the system roots.
    #[arg(long, global = true, help_heading = "Client options")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `--key`.
    #[arg(long = "cert", global = true, help_heading = "Client options")]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS; needs `--cert`.
    #[arg(long = "key", global = true, help_heading = "Client options")]
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WriteOut {
    Simple,
    Json,
    Table,
}

/// The client subcommands (flattened into the binary's top-level command list).
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Put a key (the value is read from stdin when omitted).
    Put(put::PutArgs),
    /// Get a key or a range of keys.
    Get(get::GetArgs),
    /// Delete a key or a range of keys.
    Del(del::DelArgs),
    /// Run a transaction read in etcdctl's syntax from stdin (or `--file`).
    Txn(txn::TxnArgs),
    /// Watch a key or a range for changes, printing events until interrupted.
    Watch(watch::WatchArgs),
    /// Grant, revoke, inspect, keep alive and list leases.
    #[command(subcommand)]
    Lease(lease::LeaseCommand),
    /// Acquire a distributed lock (and run a command while holding it).
    Lock(lock::LockArgs),
    /// Campaign in an election, or observe its leaders with `--listen`.
    Elect(elect::ElectArgs),
    /// List, add, remove, update and promote cluster members.
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// Status, health and history hashes of the endpoints.
    #[command(subcommand)]
    Endpoint(endpoint::EndpointCommand),
    /// Compact the key-value history up to a revision.
    Compaction(compaction::CompactionArgs),
    /// Transfer leadership to another member.
    MoveLeader(maintenance::MoveLeaderArgs),
    /// Defragment the storage of the endpoints.
    Defrag(maintenance::DefragArgs),
    /// List or disarm alarms.
    #[command(subcommand)]
    Alarm(maintenance::AlarmCommand),
}

/// Runs one client subcommand; errors are printed as etcdctl does (`Error: …` on stderr)
/// and end the process with a non-zero status.
pub fn run(global: &GlobalArgs, cmd: ClientCommand) -> ! {
    if global.write_out == WriteOut::Table && !has_table(&cmd) {
        // etcdctl's message and status 4 (its ExitBadFeature), but refused before anything
        // is sent: etcdctl makes a put and only then fails to print it.
        eprintln!("Error: table not supported as output format");
        std::process::exit(4);
    }
    exit_with(global, |conn| async move {
        match cmd {
            ClientCommand::Put(a) => put::run(&conn, a).await,
            ClientCommand::Get(a) => get::run(&conn, a).await,
            ClientCommand::Del(a) => del::run(&conn, a).await,
            ClientCommand::Txn(a) => txn::run(&conn, a).await,
            ClientCommand::Watch(a) => watch::run(&conn, a).await,
            ClientCommand::Lease(c) => lease::run(&conn, c).await,
            ClientCommand::Lock(a) => lock::run(&conn, a).await,
            ClientCommand::Elect(a) => elect::run(&conn, a).await,
            ClientCommand::Member(c) => member::run(&conn, c).await,
            ClientCommand::Endpoint(c) => endpoint::run(&conn, c).await,
            ClientCommand::Compaction(a) => compaction::run(&conn, a).await,
            ClientCommand::MoveLeader(a) => maintenance::move_leader(&conn, a).await,
            ClientCommand::Defrag(a) => maintenance::defrag(&conn, a).await,
            ClientCommand::Alarm(c) => maintenance::alarm(&conn, c).await,
        }
    })
}

/// The commands etcdctl prints as tables.
fn has_table(cmd: &ClientCommand) -> bool {
    matches!(
        cmd,
        ClientCommand::Member(member::MemberCommand::List)
            | ClientCommand::Endpoint(
                endpoint::EndpointCommand::Status(_)
                    | endpoint::EndpointCommand::Health(_)
                    | endpoint::EndpointCommand::Hashkv(_)
            )
    )
}

/// Runs `body` on a fresh runtime with a (lazily connecting) [`Connection`] and exits: 0 on
/// success, otherwise `Error: <message>` on stderr and status 1.
pub fn exit_with<F, Fut>(global: &GlobalArgs, body: F) -> !
where
    F: FnOnce(Connection) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                let conn = Connection::new(global)?;
                body(conn).await
            })
        });
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("Error: {}", error_message(&e));
            std::process::exit(1)
        }
    }
}

/// An etcd server error prints as its message (`etcdserver: key not found`), as etcdctl
/// prints the errors it knows; any other gRPC status in gRPC-Go's form (`rpc error: code =
/// Unimplemented desc = …`); other errors with their causes on one line.
fn error_message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<tonic::Status>() {
        Some(s) if s.message().starts_with("etcdserver: ") => s.message().to_string(),
        Some(s) => format!("rpc error: code = {:?} desc = {}", s.code(), s.message()),
        None => format!("{e:#}"),
    }
}
