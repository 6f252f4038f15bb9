//! The `sextant` binary.

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a member (a single node by default, or one member of a cluster).
    Server(Box<server::ServerArgs>),
    /// Snapshot files: restore one into a new cluster's data dir.
    #[command(subcommand)]
    Snapshot(snapshot_restore::SnapshotCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::run(*args),
        Command::Snapshot(cmd) => snapshot_restore::run(cmd),
    }
}
