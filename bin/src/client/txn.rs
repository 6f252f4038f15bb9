//! `sextant txn`: reads a transaction in etcdctl's syntax (see `txn_parse`) from stdin or
//! `--file`, optionally with etcdctl's interactive prompts, runs it and prints the outcome.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::txn_parse::parse_txn_from;
use super::{json, output, Connection};

#[derive(Args, Debug)]
pub struct TxnArgs {
    /// Prompt for each section (compares, success requests, failure requests).
    #[arg(short, long)]
    pub interactive: bool,
    /// Read the transaction from this file instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

pub async fn run(conn: &Connection, args: TxnArgs) -> anyhow::Result<()> {
    let interactive = args.interactive;
    let prompt = |s: super::txn_parse::Section| {
        if interactive {
            println!("{}", s.prompt());
            let _ = std::io::stdout().flush();
        }
    };
    let req = match &args.file {
        Some(path) => {
            let f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            parse_txn_from(std::io::BufReader::new(f), prompt)?
        }
        None => parse_txn_from(std::io::stdin().lock(), prompt)?,
    };
    let mut kv = conn.kv().await?;
    let resp = conn.call(kv.txn(req)).await?;
    if conn.json() {
        json::print(&json::txn(&resp));
    } else {
        output::print_txn(&resp);
    }
    Ok(())
}
