//! The chaos test's judges, run once everything healed:
//!
//! - **Linearizability**: the whole key/value history, ending with a linearizable read of
//!   every key after healing, goes through the checker (`sextant_sim::checker`, [`KvModel`]).
//!   So an acknowledged write that went missing, a stale read or a lost compare-and-set all
//!   fail it.
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
    check, explain, CheckOptions, CheckResult, HistoryRecorder, KvModel, Verdict,
};

use super::workload::{LockHold, MemberClient};

/// Checks the history with the linearizability checker (bounded by `budget`).
pub fn linearizability(history: &HistoryRecorder, budget: Duration) -> CheckResult {
    check(
        &KvModel,
        &history.history(),
        &CheckOptions::with_budget(budget),
    )
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
    result: &CheckResult,
    holds: &[LockHold],
    logs: &[(String, std::path::PathBuf)],
    summary: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut f = std::fs::File::create(dir.join("history.jsonl"))?;
    history.write_jsonl(&mut f)?;
    explain(&KvModel, &history.history(), result, "chaos history")
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
