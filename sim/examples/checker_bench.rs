//! Times the checker on Porcupine's corpus, to compare with Porcupine's own benchmarks.
//!
//! `cargo run --release -p sextant-sim --example checker_bench [-- RUNS]` prints, for each
//! case, the best time of RUNS runs (default 5) of the check alone (files are parsed once,
//! outside the timing), with Porcupine's figure on the same kind of machine for reference.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sextant_sim::checker::{
    check, parse_jepsen_etcd, parse_porcupine_kv, CheckOptions, Model, Operation, PorcupineKvModel,
    PorcupineKvUnpartitioned, RegisterModel, Verdict,
};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/porcupine")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(corpus().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn best_of<F: FnMut() -> Vec<Verdict>>(runs: usize, mut f: F) -> (Duration, Vec<Verdict>) {
    let mut best = Duration::MAX;
    let mut verdicts = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        verdicts = f();
        best = best.min(t.elapsed());
    }
    (best, verdicts)
}

fn check_all<M: Model>(
    model: &M,
    histories: &[Vec<Operation<M::Input, M::Output>>],
) -> Vec<Verdict> {
    histories
        .iter()
        .map(|h| check(model, h, &CheckOptions::default()).verdict)
        .collect()
}

fn report(name: &str, porcupine: &str, (time, verdicts): (Duration, Vec<Verdict>)) {
    let lin = verdicts
        .iter()
        .filter(|v| **v == Verdict::Linearizable)
        .count();
    let not = verdicts
        .iter()
        .filter(|v| **v == Verdict::NotLinearizable)
        .count();
    let unknown = verdicts.len() - lin - not;
    println!(
        "{name:<40} {:>10.2} ms   (Porcupine {porcupine:>7})   {lin} linearizable, {not} not, {unknown} unknown",
        time.as_secs_f64() * 1e3
    );
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(5, |a| a.parse().expect("RUNS must be a number"));
    println!("best of {runs} runs");

    let etcd: Vec<_> = (0..=102)
        .filter(|i| *i != 95)
        .map(|i| {
            let file = format!("jepsen/etcd_{i:03}.log");
            parse_jepsen_etcd(&file, &read(&file)).expect("parses")
        })
        .collect();
    report(
        "all 102 etcd logs",
        "0.57 s",
        best_of(runs, || check_all(&RegisterModel, &etcd)),
    );
    report(
        "jepsen/etcd_002.log",
        "0.20 s",
        best_of(runs, || check_all(&RegisterModel, &etcd[2..3])),
    );

    let kv = |file: &str| vec![parse_porcupine_kv(file, &read(file)).expect("parses")];
    let (c50_ok, c50_bad) = (kv("kv/c50-ok.txt"), kv("kv/c50-bad.txt"));
    let (c10_ok, c10_bad) = (kv("kv/c10-ok.txt"), kv("kv/c10-bad.txt"));
    report(
        "kv/c50-ok.txt",
        "0.16 s",
        best_of(runs, || check_all(&PorcupineKvModel, &c50_ok)),
    );
    report(
        "kv/c10-ok.txt (no partitioning)",
        "2.3 s",
        best_of(runs, || check_all(&PorcupineKvUnpartitioned, &c10_ok)),
    );
    report(
        "kv/c10-bad.txt (no partitioning)",
        "3.0 s",
        best_of(runs, || check_all(&PorcupineKvUnpartitioned, &c10_bad)),
    );
    report(
        "kv/c50-bad.txt",
        "-",
        best_of(runs, || check_all(&PorcupineKvModel, &c50_bad)),
    );
}
