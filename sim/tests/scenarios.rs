//! Every scenario in `scenarios/` over a range of seeds (`SEXTANT_SIM_SEEDS=a..b`, default
//! 0..32): each seed must keep the cluster invariants, produce a linearizable history and make
//! progress once healed. Scenarios that break an assumption on purpose (`expect_violation`)
//! must instead be caught by the checker within a bounded number of seeds. And the
//! determinism self-check: a seed run twice yields the same trace hash, so any failure replays
//! bit for bit.
#![cfg(madsim)]

use sextant_sim::checker::Verdict;
use sextant_sim::harness::run::run_seed;
use sextant_sim::harness::scenario::{list, load, scenario_dir};

fn seeds() -> std::ops::Range<u64> {
    match std::env::var("SEXTANT_SIM_SEEDS") {
        Ok(s) => {
            let (a, b) = s.split_once("..").expect("SEXTANT_SIM_SEEDS=a..b");
            a.parse().expect("seed")..b.parse().expect("seed")
        }
        Err(_) => 0..32,
    }
}

#[test]
fn every_scenario_passes_its_seeds() {
    let dir = scenario_dir();
    let names = list(&dir);
    assert!(
        names.len() >= 12,
        "expected the scenario catalogue in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut ops = 0;
    for name in &names {
        let s = load(&dir, name).unwrap_or_else(|e| panic!("{e}"));
        if s.expect_violation {
            continue;
        }
        for seed in seeds() {
            let o = run_seed(&s, seed);
            ops += o.ops;
            if !o.passed() {
                failures.push(format!(
                    "{name} seed {seed}: {} {:?} {:?} — replay: cargo sim replay --scenario {name} --seed {seed}",
                    o.verdict(),
                    o.violations.first(),
                    o.liveness.as_ref().err()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ops > 1000, "the workload barely ran ({ops} ops)");
}

#[test]
fn a_seed_replays_bit_for_bit() {
    let dir = scenario_dir();
    let s = load(&dir, "mixed-chaos").unwrap();
    for seed in [1, 7] {
        let a = run_seed(&s, seed);
        let b = run_seed(&s, seed);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} did not replay");
        assert_eq!(a.history.to_jsonl(), b.history.to_jsonl());
    }
    let other = run_seed(&s, 2);
    assert_ne!(
        other.trace_hash,
        run_seed(&s, 1).trace_hash,
        "different seeds, same run"
    );
}

/// Seeds a deliberately broken scenario gets before the test gives up on the checker.
const VIOLATION_SEEDS_MAX: u64 = 100;

#[test]
fn deliberately_broken_scenarios_are_caught_by_the_checker() {
    let dir = scenario_dir();
    let broken: Vec<String> = list(&dir)
        .into_iter()
        .filter(|n| load(&dir, n).is_ok_and(|s| s.expect_violation))
        .collect();
    assert!(
        broken.contains(&"lease-read-beyond-bound".to_string()),
        "the lease bound must have a deliberately violated scenario"
    );
    for name in broken {
        let s = load(&dir, &name).unwrap();
        let caught = (0..VIOLATION_SEEDS_MAX)
            .find(|&seed| run_seed(&s, seed).check.verdict == Verdict::NotLinearizable);
        eprintln!(
            "{name}: checker caught it after {:?} seeds",
            caught.map(|s| s + 1)
        );
        assert!(
            caught.is_some(),
            "{name}: no stale read caught in {VIOLATION_SEEDS_MAX} seeds"
        );
    }
}

#[test]
fn corrupted_disks_are_detected_and_the_cluster_carries_on() {
    let s = load(&scenario_dir(), "disk-corruption").unwrap();
    let mut detected = 0;
    for seed in 0..6 {
        let o = run_seed(&s, seed);
        assert!(
            o.passed(),
            "disk-corruption seed {seed}: {} {:?} {:?}",
            o.verdict(),
            o.violations.first(),
            o.liveness.as_ref().err()
        );
        detected += o.corruptions_detected.len();
    }
    assert!(detected > 0, "no corrupted disk was ever detected");
}
