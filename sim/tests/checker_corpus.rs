//! Checks every history of Porcupine's test corpus (`shared/data/porcupine/EXPECTED.tsv`) and
//! compares the verdict with the one Porcupine's own tests expect.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sextant_sim::checker::{
    check, check_file, parse_porcupine_kv, CheckOptions, HistoryFormat, PorcupineKvUnpartitioned,
    Verdict,
};

fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/porcupine");
    assert!(
        dir.join("EXPECTED.tsv").is_file(),
        "Porcupine corpus not found at {} (the project's shared/ folder must sit beside the repository)",
        dir.display()
    );
    dir
}

/// `(file, expected verdict)` for every row with a verdict.
fn expected() -> Vec<(String, Verdict)> {
    let tsv = std::fs::read_to_string(corpus().join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let file_col = header
        .iter()
        .position(|h| *h == "file")
        .expect("file column");
    let verdict_col = header
        .iter()
        .position(|h| *h == "expected_verdict")
        .expect("expected_verdict column");
    lines
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let verdict = match cols[verdict_col] {
                "true" => Verdict::Linearizable,
                "false" => Verdict::NotLinearizable,
                _ => return None, // etcd_095.log: empty, no verdict
            };
            Some((cols[file_col].to_string(), verdict))
        })
        .collect()
}

#[test]
fn corpus_verdicts_match_porcupine() {
    let rows = expected();
    assert_eq!(rows.len(), 108, "102 etcd logs and 6 kv files");
    let options = CheckOptions::with_budget(Duration::from_secs(60));
    let start = Instant::now();
    let mut mismatches = Vec::new();
    for (file, want) in &rows {
        let t = Instant::now();
        let fc = check_file(&corpus().join(file), &options).unwrap_or_else(|e| panic!("{e}"));
        let expected_format = if file.starts_with("jepsen/") {
            HistoryFormat::JepsenEtcd
        } else {
            HistoryFormat::PorcupineKv
        };
        assert_eq!(fc.format, expected_format, "{file}");
        if fc.result.verdict != *want {
            mismatches.push(format!("{file}: got {}, want {want}", fc.result.verdict));
        }
        if fc.result.verdict == Verdict::NotLinearizable {
            // A failing history explains itself.
            let failing: Vec<_> = fc.result.failing_partitions().collect();
            assert!(!failing.is_empty(), "{file}");
            for p in failing {
                assert!(p.blocking.is_some(), "{file}: no blocking operation");
                assert!(p.unplaceable.contains(&p.blocking.unwrap()), "{file}");
            }
        }
        eprintln!(
            "{file}: {} in {:?} ({} steps)",
            fc.result.verdict,
            t.elapsed(),
            fc.result.steps()
        );
    }
    eprintln!("{} files in {:?}", rows.len(), start.elapsed());
    assert!(
        mismatches.is_empty(),
        "verdicts differ from Porcupine's:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn empty_etcd_log_is_linearizable() {
    let fc = check_file(
        &corpus().join("jepsen/etcd_095.log"),
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(fc.ops, 0);
    assert_eq!(fc.result.verdict, Verdict::Linearizable);
}

/// Porcupine's `TestKvNoPartition*`: the kv files checked as one object.
#[test]
fn small_kv_files_without_partitioning() {
    for (file, want) in [
        ("kv/c01-ok.txt", Verdict::Linearizable),
        ("kv/c01-bad.txt", Verdict::NotLinearizable),
        ("kv/c10-ok.txt", Verdict::Linearizable),
        ("kv/c10-bad.txt", Verdict::NotLinearizable),
    ] {
        let path = corpus().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let history = parse_porcupine_kv(file, &text).unwrap();
        let t = Instant::now();
        let result = check(
            &PorcupineKvUnpartitioned,
            &history,
            &CheckOptions::with_budget(Duration::from_secs(60)),
        );
        eprintln!(
            "{file} (unpartitioned): {} in {:?} ({} steps)",
            result.verdict,
            t.elapsed(),
            result.steps()
        );
        assert_eq!(result.verdict, want, "{file}");
    }
}
