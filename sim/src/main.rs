//! `cargo sim …`: the simulator's command line.
//!
//! - `cargo sim run --scenario NAME [--seeds A..B]`: run seeds of a scenario, print a summary,
//!   exit non-zero on any failure with the exact replay command.
//! - `cargo sim replay --scenario NAME --seed N`: rerun one seed bit for bit and write its
//!   history (JSON lines), the checker's HTML visualization, the fault log and the run's
//!   timeline (one lane per member: role and term over time, crashes, pauses, clock changes;
//!   the nemesis's faults; the clients' operations beneath).
//! - `cargo sim check FILE…`: judge history files (ours, or Porcupine's formats).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sextant-sim",
    about = "Deterministic simulation of Sextant clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario over a range of seeds.
    Run {
        #[arg(long)]
        scenario: String,
        /// Seeds as `A..B` (B excluded) or a single seed.
        #[arg(long, default_value = "0..10")]
        seeds: String,
        /// Where failing seeds' histories and visualizations go.
        #[arg(long, default_value = "target/sim-failures")]
        out: PathBuf,
        /// Enable a planted bug (e.g. figure8-commit) to see the simulator catch it.
        #[arg(long)]
        mutation: Option<String>,
    },
    /// Rerun one seed and write everything it produced.
    Replay {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value = "target/sim-replay")]
        out: PathBuf,
        /// Print the fault log as the run goes.
        #[arg(long)]
        trace: bool,
        #[arg(long)]
        mutation: Option<String>,
    },
    /// Check history files for linearizability.
    Check {
        files: Vec<PathBuf>,
        #[arg(long, default_value = "target/sim-check")]
        out: PathBuf,
        /// Wall-clock budget per file, in seconds.
        #[arg(long, default_value_t = 60.0)]
        budget: f64,
    },
}

fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, String> {
    match s.split_once("..") {
        Some((a, b)) => {
            let a: u64 = a.parse().map_err(|_| format!("bad seed range {s:?}"))?;
            let b: u64 = b.parse().map_err(|_| format!("bad seed range {s:?}"))?;
            if a >= b {
                return Err(format!("empty seed range {s:?}"));
            }
            Ok(a..b)
        }
        None => {
            let a: u64 = s.parse().map_err(|_| format!("bad seed {s:?}"))?;
            Ok(a..a + 1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Check { files, out, budget } => {
            if files.is_empty() {
                eprintln!("check: name at least one history file");
                return ExitCode::from(2);
            }
            match sextant_sim::checker::check_files(&files, &out, Duration::from_secs_f64(budget)) {
                Ok(reports) => {
                    let all_ok = reports.iter().all(|r| {
                        matches!(
                            r.outcome,
                            Ok((sextant_sim::checker::Verdict::Linearizable, _))
                        )
                    });
                    if all_ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("check: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Run {
            scenario,
            seeds,
            out,
            mutation,
        } => {
            let seeds = match parse_seeds(&seeds) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("run: {e}");
                    return ExitCode::from(2);
                }
            };
            sim::run(&scenario, seeds, &out, mutation.as_deref())
        }
        Cmd::Replay {
            scenario,
            seed,
            out,
            trace,
            mutation,
        } => sim::replay(&scenario, seed, &out, trace, mutation.as_deref()),
    }
}

#[cfg(madsim)]
mod sim {
    use std::path::Path;
    use std::process::ExitCode;

    use indicatif::{ProgressBar, ProgressStyle};
    use sextant_core::mutation::Mutation;
    use sextant_sim::harness::run::{run_seed_mutated, SeedOutcome};

    /// The cargo alias of this build: a seed's run depends on the build profile.
    const ALIAS: &str = if cfg!(debug_assertions) {
        "sim"
    } else {
        "sim-release"
    };

    fn mutation(name: Option<&str>) -> Result<Option<Mutation>, ExitCode> {
        match name {
            None => Ok(None),
            Some(n) => Mutation::from_name(n).map(Some).ok_or_else(|| {
                let all: Vec<&str> = Mutation::ALL.iter().map(|m| m.name()).collect();
                eprintln!("unknown mutation {n:?}; known: {}", all.join(", "));
                ExitCode::from(2)
            }),
        }
    }
    use sextant_sim::harness::scenario::{self, Scenario};

    fn load(name: &str) -> Option<Scenario> {
        match scenario::load(&scenario::scenario_dir(), name) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("{e}");
                None
            }
        }
    }

    fn write_artifacts(o: &SeedOutcome, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("history.jsonl"), o.history.to_jsonl())?;
        let faults: String = o
            .faults
            .events
            .iter()
            .map(|(t, e)| format!("{:>12} us  {e}\n", t))
            .collect();
        std::fs::write(dir.join("faults.txt"), faults)?;
        let log: String = o
            .committed_log
            .iter()
            .map(|(i, t, d)| format!("{i:>6} @{t:<3} {d}\n"))
            .collect();
        std::fs::write(dir.join("committed-log.txt"), log)?;
        let title = format!("seed {} — {}", o.seed, o.verdict());
        let expl = sextant_sim::checker::explain(
            &sextant_sim::checker::KvModel,
            &o.history.history(),
            &o.check,
            &title,
        );
        expl.write_html(&dir.join("history.html"))?;
        std::fs::write(dir.join("timeline.html"), o.timeline_html(&title))?;
        let mut report = format!(
            "seed {}\nverdict {}\nswarm {:?}\nops {}\nfaults {}\nelections {}\nliveness {:?}\ntrace hash {:016x}\n",
            o.seed,
            o.verdict(),
            o.swarm,
            o.ops,
            o.faults.events.len(),
            o.elections,
            o.liveness,
            o.trace_hash
        );
        for v in &o.violations {
            report += &format!("violation: {v}\n");
        }
        for c in &o.corruptions_detected {
            report += &format!("corruption detected: {c}\n");
        }
        std::fs::write(dir.join("report.txt"), report)
    }

    pub fn run(
        name: &str,
        seeds: std::ops::Range<u64>,
        out: &Path,
        mutation_name: Option<&str>,
    ) -> ExitCode {
        let Some(s) = load(name) else {
            return ExitCode::from(2);
        };
        let m = match mutation(mutation_name) {
            Ok(m) => m,
            Err(code) => return code,
        };
        if let Some(m) = m {
            println!("planted bug: {}", m.name());
        }
        println!(
            "scenario {} — {} ({} members, {} s faults + {} s liveness)",
            s.name, s.description, s.members, s.duration_s, s.liveness_s
        );
        let bar = ProgressBar::new(seeds.end - seeds.start);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {msg}").expect("template"),
        );
        let (mut ops, mut faults, mut elections, mut sim, mut wall) =
            (0usize, 0usize, 0u64, 0.0f64, 0.0f64);
        let mut failed = Vec::new();
        for seed in seeds.clone() {
            let o = run_seed_mutated(&s, seed, m);
            ops += o.ops;
            faults += o.faults.events.len();
            elections += o.elections;
            sim += o.sim_secs;
            wall += o.wall.as_secs_f64();
            if !o.passed() {
                let dir = out.join(format!("{}-{}", s.name, seed));
                if let Err(e) = write_artifacts(&o, &dir) {
                    eprintln!("cannot write {}: {e}", dir.display());
                }
                bar.suspend(|| {
                    println!("seed {seed}: {} (swarm {:?})", o.verdict(), o.swarm);
                    for v in o.violations.iter().take(5) {
                        println!("  {v}");
                    }
                    if let Err(e) = &o.liveness {
                        println!("  {e}");
                    }
                });
                failed.push(seed);
            }
            bar.set_message(format!("{} failed", failed.len()));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let n = seeds.end - seeds.start;
        println!("| scenario | seeds | ops | faults | elections | failed | sim s / wall s |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {} | {}..{} ({n}) | {ops} | {faults} | {elections} | {} | {:.1} |",
            s.name,
            seeds.start,
            seeds.end,
            failed.len(),
            if wall > 0.0 { sim / wall } else { 0.0 }
        );
        if failed.is_empty() {
            return ExitCode::SUCCESS;
        }
        let flag = m
            .map(|m| format!(" --mutation {}", m.name()))
            .unwrap_or_default();
        for seed in failed {
            println!(
                "replay: cargo {} replay --scenario {} --seed {seed}{flag}",
                ALIAS, s.name
            );
        }
        ExitCode::FAILURE
    }

    pub fn replay(
        name: &str,
        seed: u64,
        out: &Path,
        trace: bool,
        mutation_name: Option<&str>,
    ) -> ExitCode {
        let Some(s) = load(name) else {
            return ExitCode::from(2);
        };
        let m = match mutation(mutation_name) {
            Ok(m) => m,
            Err(code) => return code,
        };
        let o = run_seed_mutated(&s, seed, m);
        let dir = out.join(format!("{}-{}", s.name, seed));
        if trace {
            for (t, e) in &o.faults.events {
                println!("{:>12} us  {e}", t);
            }
        }
        if let Err(e) = write_artifacts(&o, &dir) {
            eprintln!("cannot write {}: {e}", dir.display());
            return ExitCode::from(2);
        }
        println!(
            "seed {seed}: {} — {} ops, {} faults, {} elections, trace hash {:016x}; wrote {}",
            o.verdict(),
            o.ops,
            o.faults.events.len(),
            o.elections,
            o.trace_hash,
            dir.display()
        );
        if o.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(madsim))]
mod sim {
    use std::path::Path;
    use std::process::ExitCode;

    fn unavailable() -> ExitCode {
        eprintln!("running scenarios needs the simulator build: use `cargo sim run …` / `cargo sim replay …`");
        ExitCode::from(2)
    }

    pub fn run(_: &str, _: std::ops::Range<u64>, _: &Path, _: Option<&str>) -> ExitCode {
        unavailable()
    }

    pub fn replay(_: &str, _: u64, _: &Path, _: bool, _: Option<&str>) -> ExitCode {
        unavailable()
    }
}
