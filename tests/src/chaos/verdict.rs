//! The chaos test's judges, run once everything healed:
//!
//! - **Linearizability** ([`linearizability`]): the whole key/value history, ending with a
//!   linearizable read of every key after healing, goes through the checker
//!   (`sextant_sim::checker`, [`KvModel`]). So an acknowledged write that went missing, a stale
//!   read or a lost compare-and-set all fail it.
//! - **Locks** ([`check_locks`]): each hold is judged on `[acquire return, end]` where `end`
//!   is the earlier of the release call and the lease's earliest possible expiry (lease grant
//!   call + TTL; a holder past it may have lost the lock legitimately). Two holds whose
//!   intervals overlap had the lock at once: a violation. Fencing tokens must be unique, and a
//!   hold acquired (call) after another returned must have a larger token.
//! - **Convergence** ([`converge`]): every member reports the same `HashKV` at the same
//!   revision (bounded wait).
//!
//! On failure, [`save_artifacts`] keeps the history (JSON lines), the checker's HTML
//! explanation, the lock holds and the members' logs.

use std::path::Path;
use std::time::{Duration, Instant};

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_sim::checker::{
    check, explain, CheckOptions, CheckResult, HistoryRecorder, KvInput, KvModel, KvOutput,
    Operation, Verdict,
};

use super::workload::{LockHold, MemberClient};

/// The operations of a chaos history, as the checker takes them.
pub type Ops = Vec<Operation<KvInput, KvOutput>>;

/// What [`linearizability`] checked and found.
pub struct Linearizability {
    /// The history the result is about (to explain it).
    pub checked: Ops,
    pub result: CheckResult,
    /// Unknown writes left out of the first check (see [`linearizability`]).
    pub dropped: usize,
    /// Keys checked again with every operation because the first check did not pass them;
    /// `checked` and `result` are then about those keys only.
    pub rechecked_keys: usize,
}

/// Checks the history with the linearizability checker (bounded by `budget`).
///
/// Unknown-outcome writes make the search expensive (each may take effect anywhere after its
/// call), so the history is first checked without the unknown puts and compare-and-sets whose
/// unique value nobody observed (no read returned it, no successful compare-and-set expected
/// it). That is sound for a pass: an unknown operation may also never have happened, so if
/// a key's history without some of them is linearizable, so is the whole of it. It can fail
/// where the whole passes (a failed compare-and-set may need one of those writes to have
/// happened), so the keys it did not pass are checked again with all their operations, with
/// the rest of the budget, and that verdict is the answer. Per key, because a history is
/// linearizable if and only if each key's is: checking the whole history again would put
/// every key's unknown writes back into the search, which can exhaust the budget on a key
/// the first check had already passed.
pub fn linearizability(history: &HistoryRecorder, budget: Duration) -> Linearizability {
    let full = history.history();
    let mut observed = std::collections::HashSet::new();
    for op in &full {
        match (&op.input, &op.output) {
            (KvInput::Get { .. }, Some(KvOutput::Get(Some(v)))) => {
                observed.insert(v.clone());
            }
            (
                KvInput::Cas {
                    expected: Some(v), ..
                },
                Some(KvOutput::Cas { swapped: true }),
            ) => {
                observed.insert(v.clone());
            }
            _ => {}
        }
    }
    let unobserved = |op: &Operation<KvInput, KvOutput>| {
        op.output.is_none()
            && match &op.input {
                KvInput::Put { value, .. } => !observed.contains(value),
                KvInput::Cas { new, .. } => !observed.contains(new),
                KvInput::Get { .. } | KvInput::Delete { .. } => false,
            }
    };
    let pruned: Ops = full.iter().filter(|op| !unobserved(op)).cloned().collect();
    let dropped = full.len() - pruned.len();
    let started = Instant::now();
    let result = check(&KvModel, &pruned, &CheckOptions::with_budget(budget / 2));
    if result.verdict == Verdict::Linearizable || dropped == 0 {
        return Linearizability {
            checked: pruned,
            result,
            dropped,
            rechecked_keys: 0,
        };
    }
    let again: std::collections::BTreeSet<&str> = result
        .partitions
        .iter()
        .filter(|p| p.verdict != Verdict::Linearizable)
        .filter_map(|p| p.ops.first().map(|&i| pruned[i].input.key()))
        .collect();
    let subset: Ops = full
        .iter()
        .filter(|op| again.contains(op.input.key()))
        .cloned()
        .collect();
    let rest = budget.saturating_sub(started.elapsed());
    let result = check(&KvModel, &subset, &CheckOptions::with_budget(rest));
    Linearizability {
        checked: subset,
        result,
        dropped,
        rechecked_keys: again.len(),
    }
}

/// Mutual exclusion and fencing-token order of the lock holds; one line per violation.
pub fn check_locks(holds: &[LockHold]) -> Vec<String> {
    let mut bad = Vec::new();
    let end = |h: &LockHold| {
        let expiry = h.grant_call + u64::try_from(h.ttl_secs).unwrap_or(0) * 1_000_000;
        h.release_call.min(expiry)
    };
    for (i, a) in holds.iter().enumerate() {
        for b in &holds[i + 1..] {
            if a.token == b.token {
                bad.push(format!(
                    "two holds with fencing token {}: {a:?} {b:?}",
                    a.token
                ));
            }
            let overlap = a.acquire_return < end(b) && b.acquire_return < end(a);
            if overlap {
                bad.push(format!(
                    "holds overlap (tokens {} and {}): {a:?} {b:?}",
                    a.token, b.token
                ));
            }
            for (x, y) in [(a, b), (b, a)] {
                if x.acquire_return < y.acquire_call && x.token >= y.token {
                    bad.push(format!(
                        "token went back: {} acquired before {} was asked for: {x:?} {y:?}",
                        x.token, y.token
                    ));
                }
            }
        }
    }
    bad
}

/// Waits (bounded by `limit`) until every member answers `HashKV` with the same revision and
/// hash; returns them, or what the members said last.
pub async fn converge(clients: &[MemberClient], limit: Duration) -> Result<(i64, u32), String> {
    let deadline = Instant::now() + limit;
    let mut last = Vec::new();
    for _ in 0..10_000u32 {
        last.clear();
        for c in clients {
            let mut m = c.maintenance.clone();
            let r = tokio::time::timeout(
                Duration::from_secs(3),
                m.hash_kv(pb::HashKvRequest { revision: 0 }),
            )
            .await;
            last.push(match r {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    Ok((r.header.map_or(0, |h| h.revision), r.hash))
                }
                Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
                Err(_) => Err("timeout".to_string()),
            });
        }
        if let Some(Ok(first)) = last.first() {
            if last.iter().all(|r| r.as_ref() == Ok(first)) {
                return Ok(*first);
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(format!("members did not converge: {last:?}"))
}

/// Writes the history, its explanation, the lock holds and the member logs into `dir`.
pub fn save_artifacts(
    dir: &Path,
    history: &HistoryRecorder,
    lin: &Linearizability,
    holds: &[LockHold],
    logs: &[(String, std::path::PathBuf)],
    summary: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut f = std::fs::File::create(dir.join("history.jsonl"))?;
    history.write_jsonl(&mut f)?;
    explain(&KvModel, &lin.checked, &lin.result, "chaos history")
        .write_html(&dir.join("history.html"))?;
    let holds: String = holds.iter().map(|h| format!("{h:?}\n")).collect();
    std::fs::write(dir.join("locks.txt"), holds)?;
    std::fs::write(dir.join("summary.txt"), summary)?;
    for (name, path) in logs {
        let _ = std::fs::copy(path, dir.join(format!("{name}.log")));
    }
    Ok(())
}

/// Whether a verdict passes.
pub fn passes(v: Verdict) -> bool {
    v == Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key `a`: a compare-and-set failed because an unknown put nobody read took effect, so
    /// the first check (without that put) fails it and only `a` is checked again, with the
    /// put; key `b`'s unknown put stays out of the second search.
    #[test]
    fn keys_the_first_check_fails_are_checked_again_alone() {
        let mut h = HistoryRecorder::new();
        let put = h.call(1, 0, KvInput::put("a", "x")).unwrap();
        h.ret(put, 10, KvOutput::Put).unwrap();
        let lost = h.call(2, 20, KvInput::put("a", "u")).unwrap();
        h.unknown(lost, 30, "timed out").unwrap();
        let cas = h
            .call(
                3,
                100,
                KvInput::Cas {
                    key: "a".into(),
                    expected: Some("x".into()),
                    new: "y".into(),
                },
            )
            .unwrap();
        h.ret(cas, 110, KvOutput::Cas { swapped: false }).unwrap();
        let other = h.call(4, 120, KvInput::put("b", "p")).unwrap();
        h.unknown(other, 130, "timed out").unwrap();
        let read = h.call(5, 140, KvInput::get("b")).unwrap();
        h.ret(read, 150, KvOutput::Get(None)).unwrap();

        let lin = linearizability(&h, Duration::from_secs(10));
        assert_eq!(lin.result.verdict, Verdict::Linearizable);
        assert_eq!(lin.dropped, 2);
        assert_eq!(lin.rechecked_keys, 1);
        assert_eq!(lin.checked.len(), 3);
        assert!(lin.checked.iter().all(|op| op.input.key() == "a"));
    }
}
