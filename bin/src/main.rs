//! The `sextant` binary: the server, and etcdctl's client subcommands.

mod allocator;
mod bench;
mod client;
mod server;
mod snapshot_restore;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sextant",
    version,
    about = "A Raft-based configuration and coordination service speaking the etcd v3 API"
)]
struct Cli {
    #[command(flatten)]
    client: client::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a member (a single node by default, or one member of a cluster).
    Server(Box<server::ServerArgs>),
    /// Save (and restore) snapshots of the key-value store.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Load-test any etcd v3 endpoint (Sextant or etcd): throughput and latency percentiles.
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Stream a snapshot from one endpoint into FILE (atomically).
    Save(client::snapshot::SaveArgs),
    /// Write a new member's data dir from a snapshot file (disaster recovery).
    Restore(snapshot_restore::RestoreArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::run(*args),
        Command::Snapshot(SnapshotCommand::Save(args)) => client::snapshot::save(&cli.client, args),
        Command::Snapshot(SnapshotCommand::Restore(args)) => snapshot_restore::restore(args),
        Command::Bench(args) => bench::run(&cli.client, args),
        Command::Client(cmd) => client::run(&cli.client, cmd),
    }
}
