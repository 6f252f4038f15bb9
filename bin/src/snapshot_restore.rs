//! `sextant snapshot restore FILE`: etcd's `etcdutl snapshot restore` — verify a snapshot file
//! (SHA-256, format, state) and write a new member's data dir from it, from which `sextant
//! server` with the same `--name`, `--initial-cluster`, `--initial-cluster-token` and
//! `--initial-advertise-peer-urls` starts a new cluster holding the snapshot's data.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use sextant_net::server::{parse_url_list, restore_snapshot, RestoreOptions};

use crate::server::parse_initial_cluster;

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Write a new member's data dir from a snapshot file (disaster recovery).
    Restore(RestoreArgs),
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot file (as `Snapshot` / `snapshot save` wrote it).
    file: PathBuf,
    /// The data dir to create; it must not exist or be empty [default: ./sextant.data].
    #[arg(long, default_value = "sextant.data")]
    data_dir: PathBuf,
    /// This member's name in the new cluster.
    #[arg(long, default_value = "default")]
    name: String,
    /// Members of the new cluster: `name=http://host:port,...` [default: this member alone].
    #[arg(long)]
    initial_cluster: Option<String>,
    /// The new cluster's token.
    #[arg(long, default_value = "sextant-cluster")]
    initial_cluster_token: String,
    /// This member's peer URLs.
    #[arg(long, default_value = "http://127.0.0.1:2380")]
    initial_advertise_peer_urls: String,
}

pub fn run(cmd: SnapshotCommand) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Restore(args) => restore(args),
    }
}

fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let advertise = parse_url_list(&args.initial_advertise_peer_urls)
        .context("--initial-advertise-peer-urls")?;
    let initial_cluster = match &args.initial_cluster {
        Some(s) => parse_initial_cluster(s)?,
        None => BTreeMap::from([(args.name.clone(), advertise.clone())]),
    };
    let opts = RestoreOptions {
        data_dir: args.data_dir,
        name: args.name,
        initial_cluster,
        initial_advertise_peer_urls: advertise,
        initial_cluster_token: args.initial_cluster_token,
    };
    let restored = restore_snapshot(&args.file, &opts)
        .with_context(|| format!("restoring {}", args.file.display()))?;
    println!(
        "restored {} keys at revision {} into {} (member {:x} of new cluster {:x})",
        restored.keys,
        restored.revision,
        opts.data_dir.display(),
        restored.member_id,
        restored.cluster_id
    );
    Ok(())
}
