//! Chaos on real processes: a 3-member and a 5-member cluster of real `sextant` processes in
//! network namespaces, under partitions (isolate one or the leader, random halves, majorities
//! ring, one-way), packet loss with a slow link, `SIGKILL` + restart, `SIGSTOP`/`SIGCONT` and a
//! full disk, while host-side clients record a history; then the linearizability checker, the
//! lock check and the convergence check judge it (see `sextant_tests::chaos`).
//!
//! ```text
//! cargo test -p sextant-tests --test chaos                      # CI: 45 s of faults per cluster
//! cargo test -p sextant-tests --test chaos -- --duration 1800   # soak: 30 min per cluster
//! cargo test -p sextant-tests --test chaos -- --members 5 --seed 42 --duration 300
//! ```
//!
//! `SEXTANT_CHAOS_SECS` sets the duration too (the flag wins). The run needs root, `ip`, `nft`
//! and `tc` (`tests/run --deps` installs nftables); elsewhere it prints why and passes. On a
//! failure, the history (JSON lines, `cargo sim check` reads it), its HTML explanation, the
//! lock holds, the fault timeline and the members' logs are kept under `target/chaos/`, and
//! the path is printed. A libtest harness would refuse `--duration`, so this test has its own
//! `main` (`harness = false`); it honours libtest's name filters, `--skip`, `--ignored` and
//! `--list`, and accepts and ignores its other flags (`--nocapture`, `--test-threads 1`).

use std::time::Duration;

use sextant_tests::chaos::{self, RunConfig};

/// Faults are injected this long per cluster unless told otherwise.
const DEFAULT_SECS: u64 = 45;

struct Args {
    secs: u64,
    members: Vec<usize>,
    seed: Option<u64>,
    /// Why libtest's own arguments rule this test out (a name filter, `--skip`, `--ignored`).
    filtered_out: Option<String>,
    /// `--list`: name the test, run nothing.
    list: bool,
}

/// libtest flags that take a value (`--flag value`).
const LIBTEST_VALUED: &[&str] = &[
    "--test-threads",
    "--skip",
    "--format",
    "--color",
    "--logfile",
    "--shuffle-seed",
    "-Z",
];

fn parse_args() -> Args {
    let mut args = Args {
        secs: std::env::var("SEXTANT_CHAOS_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SECS),
        members: vec![3, 5],
        seed: None,
        filtered_out: None,
        list: false,
    };
    let mut filters = Vec::new();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
                .clone()
        };
        match a.as_str() {
            "--duration" => args.secs = value("--duration").parse().expect("--duration SECS"),
            "--members" => {
                args.members = value("--members")
                    .split(',')
                    .map(|n| n.parse().expect("--members 3,5"))
                    .collect();
            }
            "--seed" => args.seed = Some(value("--seed").parse().expect("--seed N")),
            "--list" => args.list = true,
            "--ignored" => args.filtered_out = Some("only ignored tests asked for".into()),
            "--skip" => {
                let skip = value("--skip");
                if "chaos".contains(skip.as_str()) {
                    args.filtered_out = Some(format!("--skip {skip}"));
                }
            }
            flag if LIBTEST_VALUED.contains(&flag) => {
                value(flag);
            }
            // Other libtest flags (`--nocapture`, `--exact`, `--test-threads=1`).
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter.to_string()),
        }
    }
    if !filters.is_empty() && !filters.iter().any(|f| "chaos".contains(f.as_str())) {
        args.filtered_out = Some(format!("filter {filters:?}"));
    }
    args
}

/// Runs `cfg`, or stops it on `SIGINT`/`SIGTERM` (a CI timeout, Ctrl-C): dropping the run
/// kills its processes and removes its namespaces, bridge and mount before the process exits.
async fn run_or_interrupted(cfg: &RunConfig) -> Result<chaos::Report, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    tokio::select! {
        r = chaos::run(cfg) => r,
        _ = term.recv() => Err("interrupted by SIGTERM (cleaned up)".into()),
        _ = int.recv() => Err("interrupted by SIGINT (cleaned up)".into()),
    }
}

fn main() {
    let args = parse_args();
    if args.list {
        println!("chaos: test");
        return;
    }
    if let Some(why) = args.filtered_out {
        println!("chaos: filtered out ({why})");
        return;
    }
    if let Err(why) = chaos::preflight() {
        println!("chaos: SKIPPED: {why}");
        return;
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut failed = Vec::new();
    for (k, &members) in args.members.iter().enumerate() {
        let cfg = RunConfig {
            members,
            cluster: u32::try_from(k).expect("few clusters"),
            duration: Duration::from_secs(args.secs),
            seed: seed.wrapping_add(k as u64),
            kv_workers: 6,
            lock_workers: 2,
            keys: 16,
            artifacts: chaos::default_artifacts_dir(),
        };
        println!(
            "chaos: {members} members, {}s of faults, seed {}",
            args.secs, cfg.seed
        );
        match runtime.block_on(run_or_interrupted(&cfg)) {
            Ok(report) => {
                println!("{report}");
                for line in &report.nemesis.timeline {
                    println!("    {line}");
                }
                if !report.failures.is_empty() {
                    let kept = report
                        .kept
                        .as_ref()
                        .map_or(String::new(), |d| format!(" (kept in {})", d.display()));
                    failed.push(format!("{members} members: {:?}{kept}", report.failures));
                }
            }
            Err(e) => failed.push(format!("{members} members: harness error: {e}")),
        }
    }
    assert!(failed.is_empty(), "chaos failed:\n{}", failed.join("\n"));
    println!("chaos: PASS");
}
