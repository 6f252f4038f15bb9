//! Golden responses of the key-value state machine (insta): what clients would see for
//! representative requests. Review changes with `cargo insta review` (or `INSTA_UPDATE=always`
//! and `git diff`).

mod kv_support;

use bytes::Bytes;
use kv_support::*;
use sextant_core::kv::{
    Command, CompareResult as R, CompareTarget as T, HistoryRequest, KvStore, PutRequest,
    RangeRequest, RequestOp, SortOrder, SortTarget,
};

/// a..e put at 2..=6, then a and c rewritten (7, 8), b deleted (9).
fn history_store() -> KvStore {
    let mut s = store_with(&["a", "b", "c", "d", "e"]);
    apply(&mut s, put("a", "a2"));
    apply(&mut s, put("c", "c2"));
    apply(&mut s, del("b", ""));
    s
}

#[test]
fn range_with_options() {
    let s = history_store();
    let all = range_req("a", "\0");
    let responses = vec![
        (
            "limit 2, sorted by mod revision descending, keys only",
            s.range(&RangeRequest {
                limit: 2,
                sort_order: SortOrder::Descend,
                sort_target: SortTarget::Mod,
                keys_only: true,
                ..all.clone()
            }),
        ),
        (
            "count only, with a filter (count ignores it)",
            s.range(&RangeRequest {
                count_only: true,
                min_create_revision: 4,
                ..all.clone()
            }),
        ),
        (
            "created at 3 or later, modified at 6 or earlier, limit 1",
            s.range(&RangeRequest {
                min_create_revision: 3,
                max_mod_revision: 6,
                limit: 1,
                ..all.clone()
            }),
        ),
        (
            "at revision 6 (before the rewrites)",
            s.range(&RangeRequest {
                revision: 6,
                ..all.clone()
            }),
        ),
        (
            "at a future revision",
            s.range(&RangeRequest {
                revision: 10,
                ..all.clone()
            }),
        ),
        (
            "prefix b..c at revision 8",
            s.range(&RangeRequest {
                revision: 8,
                ..range_req("b", "c")
            }),
        ),
    ];
    insta::assert_debug_snapshot!(responses);
}

#[test]
fn txn_success_with_nested_txn() {
    let mut s = history_store();
    apply(
        &mut s,
        Command::LeaseGrant {
            id: 7,
            ttl_secs: 60,
        },
    );
    let t = txn(
        vec![
            cmp("a", T::Value(b("a2")), R::Equal),
            cmp("b", T::Version(0), R::Equal),
        ],
        vec![
            RequestOp::Put(PutRequest {
                lease: 7,
                prev_kv: true,
                ..put_req("a", "a3")
            }),
            op_range("a", "c"),
            RequestOp::Txn(txn(
                vec![cmp("d", T::Mod(5), R::Greater)],
                vec![op_put("d", "unreachable")],
                vec![op_del("d", "f"), op_range("c", "\0")],
            )),
        ],
        vec![op_put("z", "failure branch")],
    );
    let applied = s.apply(&Command::Txn(t));
    insta::assert_debug_snapshot!(applied);
}

#[test]
fn txn_failure_branch() {
    let mut s = history_store();
    let t = txn(
        vec![cmp("a", T::Create(2), R::NotEqual)],
        vec![op_put("x", "success branch")],
        vec![
            op_range("a", ""),
            op_put("x", "failure branch"),
            op_del("nothing", ""),
        ],
    );
    let applied = s.apply(&Command::Txn(t));
    insta::assert_debug_snapshot!(applied);
}

#[test]
fn events_of_a_txn() {
    let mut s = history_store();
    let t = txn(
        vec![],
        vec![
            op_put("new", "1"),
            op_del("c", "e"),
            op_put("a", "a3"),
            op_put("e", "e2"),
        ],
        vec![],
    );
    let applied = apply(&mut s, Command::Txn(t));
    let replayed = s
        .history(&HistoryRequest {
            key: b("a"),
            range_end: Bytes::from_static(b"\0"),
            start_revision: applied.revision,
            events_max: 100,
        })
        .unwrap();
    assert_eq!(
        replayed.events, applied.events,
        "history replays what apply returned"
    );
    insta::assert_debug_snapshot!(applied.events);
}

#[test]
fn lease_revoke_events() {
    let mut s = KvStore::new();
    apply(&mut s, Command::LeaseGrant { id: 0, ttl_secs: 5 });
    for k in ["session/3", "session/1", "session/2"] {
        apply(&mut s, put_lease(k, "alive", 1));
    }
    apply(&mut s, put("other", "kept"));
    let before = s.lease(1);
    let applied = s.apply(&Command::LeaseRevoke { id: 1 });
    insta::assert_debug_snapshot!((before, applied, s.lease(1)));
}

#[test]
fn compaction_errors() {
    let mut s = history_store();
    let compact = |r| Command::Compact {
        revision: r,
        physical: false,
    };
    let outcomes = vec![
        (
            "compact to a future revision",
            s.apply(&compact(10))
                .map(|a| a.revision)
                .map_err(|e| e.to_string()),
        ),
        (
            "compact to 7",
            s.apply(&compact(7))
                .map(|a| a.revision)
                .map_err(|e| e.to_string()),
        ),
        (
            "compact to 7 again",
            s.apply(&compact(7))
                .map(|a| a.revision)
                .map_err(|e| e.to_string()),
        ),
        (
            "compact to 5",
            s.apply(&compact(5))
                .map(|a| a.revision)
                .map_err(|e| e.to_string()),
        ),
    ];
    let reads = vec![
        (
            "read at 6",
            s.range(&RangeRequest {
                revision: 6,
                ..range_req("a", "\0")
            })
            .map_err(|e| format!("{e} ({e:?})")),
        ),
        (
            "read at 7",
            s.range(&RangeRequest {
                revision: 7,
                ..range_req("a", "\0")
            })
            .map_err(|e| format!("{e} ({e:?})")),
        ),
    ];
    let watch = s
        .history(&HistoryRequest {
            key: b("a"),
            range_end: b("z"),
            start_revision: 3,
            events_max: 10,
        })
        .map_err(|e| format!("{e} ({e:?})"));
    insta::assert_debug_snapshot!((outcomes, reads, watch));
}
