//! `sextant bench`: a load generator speaking the etcd v3 API, in the spirit of etcd's own
//! `benchmark` tool, so the same binary drives Sextant and a real etcd side by side.
//! This module owns the flags and the dispatch; `driver` runs closed-loop clients over a set
//! of connections, `ops` builds each operation's requests, `watch_latency` measures
//! put→event delay across many watchers, `floor` measures the machine's floor for a
//! replicated write without any server, and `report` summarises latencies.

mod driver;
mod floor;
mod ops;
mod report;
mod watch_latency;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::client::GlobalArgs;

/// Flags shared by every benchmark (etcd `benchmark`'s global flags; given before or after
/// the benchmark's name).
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Concurrent clients (each waits for its answer before sending the next request).
    #[arg(
        long,
        global = true,
        help_heading = "Benchmark options",
        default_value_t = 1
    )]
    pub clients: usize,
    /// gRPC connections the clients share (spread over the endpoints in order).
    #[arg(
        long,
        global = true,
        help_heading = "Benchmark options",
        default_value_t = 1
    )]
    pub conns: usize,
    /// Requests to send in all.
    #[arg(
        long,
        global = true,
        help_heading = "Benchmark options",
        default_value_t = 10_000
    )]
    pub total: u64,
    /// Requests per second across all clients (0: as fast as answers come).
    #[arg(
        long,
        global = true,
        help_heading = "Benchmark options",
        default_value_t = 0.0
    )]
    pub rate: f64,
    /// Print one JSON object instead of the text report.
    #[arg(long, global = true, help_heading = "Benchmark options")]
    pub json: bool,
    /// No progress bar on stderr.
    #[arg(long, global = true, help_heading = "Benchmark options")]
    pub no_progress: bool,
    /// Seed for keys and values (the same seed gives the same request sequence per client).
    #[arg(
        long,
        global = true,
        help_heading = "Benchmark options",
        default_value_t = 1
    )]
    pub seed: u64,
    #[command(subcommand)]
    pub op: BenchOp,
}

/// Key and value shape of writes.
#[derive(Args, Debug, Clone)]
pub struct WriteShape {
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Distinct keys written (keys are drawn from `0..key-space-size`).
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Write keys in order (0, 1, 2, …, wrapping at the key space) instead of at random.
    #[arg(long)]
    pub sequential_keys: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable (ReadIndex through the leader).
    L,
    /// Serializable (the answering member's state).
    S,
}

/// The benchmarks.
#[derive(Subcommand, Debug, Clone)]
pub enum BenchOp {
    /// Put keys.
    Put(WriteShape),
    /// Range over KEY (or `[KEY, END)`).
    Range {
        /// The key, or the start of the range.
        key: String,
        /// End of the range (exclusive).
        end: Option<String>,
        /// `l` (linearizable) or `s` (serializable).
        #[arg(long, value_enum, default_value_t = Consistency::L)]
        consistency: Consistency,
        /// Return at most this many keys (0: all).
        #[arg(long, default_value_t = 0)]
        limit: i64,
    },
    /// Transactions of `--txn-ops` puts each (no compares).
    TxnPut {
        #[command(flatten)]
        shape: WriteShape,
        /// Puts per transaction (distinct keys).
        #[arg(long, default_value_t = 1)]
        txn_ops: usize,
    },
    /// Put→event latency seen by many watchers of one key (each put's delay to every watcher).
    WatchLatency {
        /// Watchers in all.
        #[arg(long, default_value_t = 1000)]
        watchers: usize,
        /// Watch streams the watchers are spread over (spread over the connections).
        #[arg(long, default_value_t = 10)]
        streams: usize,
        /// Puts to the watched key.
        #[arg(long, default_value_t = 100)]
        put_total: u64,
        /// Puts per second.
        #[arg(long, default_value_t = 100.0)]
        put_rate: f64,
        /// Value size of each put in bytes (at least 8: the put's number travels in it).
        #[arg(long, default_value_t = 32)]
        val_size: usize,
    },
    /// Lease keep-alive round trips (each client keeps its own lease alive).
    LeaseKeepalive,
    /// The machine's floor for a replicated write, with no server (no gRPC, no consensus)
    ///
    /// One client writes values one after another to a leader; the leader and its followers
    /// are processes linked by loopback TCP, each writes and fdatasyncs every value, and the
    /// client gets its answer once a majority holds it. What an etcd-API server's put, 1
    /// client, takes beyond this is the server's own cost. `--endpoints` is not used.
    ReplicationFloor {
        /// Members (the leader and its followers).
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// Value size in bytes.
        #[arg(long, default_value_t = 8)]
        val_size: usize,
        /// A directory on the disk to measure; the members' files go in a subdirectory that
        /// is removed afterwards.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// One member process of `replication-floor` (started by it).
    #[command(hide = true)]
    ReplicationFloorMember(floor::MemberPlan),
}

/// Runs the benchmark and prints its report.
pub fn run(global: &GlobalArgs, args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(args.conns > 0, "--conns must be at least 1");
    anyhow::ensure!(
        args.rate >= 0.0 && args.rate.is_finite(),
        "--rate must be a non-negative number"
    );
    let report = match &args.op {
        BenchOp::ReplicationFloor {
            members,
            val_size,
            dir,
        } => {
            anyhow::ensure!(
                args.clients == 1 && args.conns == 1 && args.rate == 0.0,
                "replication-floor measures one client writing as fast as answers come: \
                 --clients, --conns and --rate do not apply"
            );
            floor::run(&floor::Plan {
                members: *members,
                val_size: *val_size,
                total: args.total,
                dir: dir.clone(),
            })?
        }
        BenchOp::ReplicationFloorMember(plan) => return floor::member(plan),
        _ => run_against_endpoints(global, &args)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

fn run_against_endpoints(global: &GlobalArgs, args: &BenchArgs) -> anyhow::Result<report::Report> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let conns = driver::connect_all(global, args.conns).await?;
        let timeout = global.command_timeout.max(Duration::from_millis(1));
        match &args.op {
            BenchOp::WatchLatency {
                watchers,
                streams,
                put_total,
                put_rate,
                val_size,
            } => {
                watch_latency::run(
                    &conns,
                    watch_latency::Plan {
                        watchers: *watchers,
                        streams: *streams,
                        put_total: *put_total,
                        put_rate: *put_rate,
                        val_size: *val_size,
                        timeout,
                        progress: !args.no_progress && !args.json,
                    },
                )
                .await
            }
            op => {
                let op = ops::Op::new(op, args.seed)?;
                driver::run(&conns, args, op, timeout).await
            }
        }
    })
}
