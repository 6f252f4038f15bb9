//! etcd 3.5 behaviours of the key-value state machine, each test naming the etcd code it
//! follows (paths in etcd's `server/` tree: `etcdserver/apply.go`, `etcdserver/api/v3rpc/key.go`,
//! `mvcc/kvstore_txn.go`, `mvcc/kvstore.go`, `mvcc/key_index.go`, `lease/lessor.go`).

mod kv_support;

use bytes::Bytes;
use kv_support::*;
use sextant_core::kv::{
    Command, CommandResult, CompareResult as R, CompareTarget as T, EventKind, HistoryRequest,
    KeyValue, KvError, KvLimits, KvStore, PutRequest, RangeRequest, RequestOp, ResponseOp,
    SortOrder, SortTarget, LEASE_TTL_MAX_SECS,
};

// mvcc/kvstore.go NewStore: currentRev 1. kvstore_txn.go put: create = mod = the new revision
// for a new key, version counts puts in the key's lifetime and restarts after a delete.
#[test]
fn revisions_versions_and_lifetimes() {
    let mut s = KvStore::new();
    assert_eq!(s.revision(), 1);
    assert_eq!(apply(&mut s, put("a", "1")).revision, 2);
    let a = apply(
        &mut s,
        Command::Put(PutRequest {
            prev_kv: true,
            ..put_req("a", "2")
        }),
    );
    let CommandResult::Put { revision, prev_kv } = a.result else {
        panic!()
    };
    assert_eq!((revision, prev_kv.unwrap().value), (3, b("1")));
    let kv = s.get(b"a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    apply(&mut s, del("a", ""));
    apply(&mut s, put("a", "3"));
    let kv = s.get(b"a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

// kvstore_txn.go storeTxnWrite.End: the revision moves only when the txn changed something;
// DeleteRange answers the unchanged revision when it deleted nothing.
#[test]
fn deleting_nothing_bumps_nothing() {
    let mut s = store_with(&["a"]);
    let a = apply(&mut s, del("zz", "\0"));
    assert_eq!(a.revision, 2);
    assert_eq!(
        a.result,
        CommandResult::DeleteRange {
            revision: 2,
            deleted: 0,
            prev_kvs: vec![]
        }
    );
    assert!(a.events.is_empty());
}

// apply.go Range + kvstore_txn.go rangeKeys: count is the total in range (Revisions' total),
// not capped by limit and taken before the min/max filters; more is decided after filtering.
#[test]
fn range_count_ignores_limit_and_filters_more_follows_filters() {
    let s = store_with(&["a", "b", "c", "d", "e"]); // mod revisions 2..=6
    let r = s
        .range(&RangeRequest {
            limit: 2,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!(
        (keys_of(&r.kvs), r.more, r.count),
        (vec!["a".into(), "b".into()], true, 5)
    );
    let r = s
        .range(&RangeRequest {
            limit: 2,
            min_mod_revision: 5,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!(
        (keys_of(&r.kvs), r.more, r.count),
        (vec!["d".into(), "e".into()], false, 5)
    );
    let r = s
        .range(&RangeRequest {
            limit: 1,
            min_mod_revision: 5,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (1, true, 5));
    let r = s
        .range(&RangeRequest {
            count_only: true,
            limit: 1,
            min_mod_revision: 5,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.more, r.count), (0, false, 5));
    let r = s
        .range(&RangeRequest {
            limit: 5,
            ..range_req("a", "z")
        })
        .unwrap();
    assert!(!r.more, "exactly limit keys: no more");
    let r = s
        .range(&RangeRequest {
            limit: -1,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!(r.kvs.len(), 5, "a negative limit is no limit");
}

// apply.go Range: a sort target other than KEY with SortOrder NONE sorts ascending.
#[test]
fn range_sorting() {
    let mut s = store_with(&["a", "b", "c"]);
    apply(&mut s, put("a", "again"));
    let by_version = |order| {
        let r = s
            .range(&RangeRequest {
                sort_target: SortTarget::Version,
                sort_order: order,
                ..range_req("a", "z")
            })
            .unwrap();
        keys_of(&r.kvs)
    };
    assert_eq!(by_version(SortOrder::None), ["b", "c", "a"]);
    assert_eq!(by_version(SortOrder::Descend), ["a", "b", "c"]);
    let r = s
        .range(&RangeRequest {
            sort_order: SortOrder::Descend,
            limit: 2,
            keys_only: true,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!(
        (keys_of(&r.kvs), r.more),
        (vec!["c".into(), "b".into()], true)
    );
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    // apply.go drops the limit from the fetch only when the *requested* order is not NONE: a
    // non-key target with NONE and a limit sorts just the first limit + 1 keys.
    let r = s
        .range(&RangeRequest {
            sort_target: SortTarget::Version,
            limit: 1,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!(
        (keys_of(&r.kvs), r.more, r.count),
        (vec!["b".into()], true, 3)
    );
    let r = s
        .range(&RangeRequest {
            sort_target: SortTarget::Version,
            sort_order: SortOrder::Ascend,
            limit: 1,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!(keys_of(&r.kvs), ["b"]);
    let r = s
        .range(&RangeRequest {
            sort_target: SortTarget::Version,
            sort_order: SortOrder::Descend,
            limit: 1,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!(keys_of(&r.kvs), ["a"], "all keys sorted");
    let r = s
        .range(&RangeRequest {
            sort_target: SortTarget::Mod,
            limit: 1,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!(
        keys_of(&r.kvs),
        ["b"],
        "only a and b were fetched; b has the older mod revision"
    );
}

// kvstore_txn.go rangeKeys: future first, then compacted (rev < compactMainRev); reading at
// the compaction point works; the response revision is the current one.
#[test]
fn range_at_past_revisions_and_compaction() {
    let mut s = store_with(&["a"]); // 2
    apply(&mut s, put("a", "x")); // 3
    apply(&mut s, del("a", "")); // 4
    apply(&mut s, put("b", "y")); // 5
    let at = |s: &KvStore, rev| {
        s.range(&RangeRequest {
            revision: rev,
            ..range_req("a", "z")
        })
    };
    assert_eq!(keys_of(&at(&s, 2).unwrap().kvs), ["a"]);
    assert_eq!(at(&s, 3).unwrap().kvs[0].value, b("x"));
    assert!(at(&s, 4).unwrap().kvs.is_empty());
    assert_eq!(at(&s, 2).unwrap().revision, 5);
    assert_eq!(at(&s, 6), Err(KvError::FutureRevision));
    apply(
        &mut s,
        Command::Compact {
            revision: 3,
            physical: false,
        },
    );
    assert_eq!(
        at(&s, 2),
        Err(KvError::Compacted {
            compact_revision: 3
        })
    );
    assert_eq!(at(&s, 3).unwrap().kvs[0].value, b("x"));
    assert_eq!(at(&s, 6), Err(KvError::FutureRevision));
}

// kvstore.go updateCompactRev: rev <= compactMainRev is ErrCompacted, rev > currentRev is
// ErrFutureRev; compactMainRev starts at -1, so a first compaction at 0 is accepted.
#[test]
fn compaction_errors() {
    let mut s = store_with(&["a", "b"]);
    let compact = |r| Command::Compact {
        revision: r,
        physical: true,
    };
    assert_eq!(refused(&mut s, compact(4)), KvError::FutureRevision);
    assert_eq!(apply(&mut s, compact(0)).revision, 3);
    assert_eq!(
        refused(&mut s, compact(0)),
        KvError::Compacted {
            compact_revision: 0
        }
    );
    apply(&mut s, compact(3));
    assert_eq!(s.compact_revision(), 3);
    assert_eq!(
        refused(&mut s, compact(2)),
        KvError::Compacted {
            compact_revision: 3
        }
    );
    assert_eq!(
        refused(&mut s, compact(3)),
        KvError::Compacted {
            compact_revision: 3
        }
    );
    assert_eq!(s.revision(), 3, "compaction never moves the revision");
}

// key_index.go compact: each key keeps its newest version at or before the compaction point,
// unless that is a tombstone; keys whose history empties disappear.
#[test]
fn compaction_keeps_the_latest_live_versions() {
    let mut s = KvStore::new();
    apply(&mut s, put("a", "1")); // 2
    apply(&mut s, put("a", "2")); // 3
    apply(&mut s, put("b", "1")); // 4
    apply(&mut s, del("b", "")); // 5
    apply(&mut s, put("a", "3")); // 6
    let before = s.size_bytes();
    apply(
        &mut s,
        Command::Compact {
            revision: 5,
            physical: false,
        },
    );
    assert!(s.size_bytes() < before);
    let r = s
        .range(&RangeRequest {
            revision: 5,
            ..range_req("a", "z")
        })
        .unwrap();
    assert_eq!(keys_of(&r.kvs), ["a"]);
    assert_eq!(r.kvs[0].value, b("2"));
    assert_eq!(s.get(b"a").unwrap().value, b("3"));
    assert_eq!(s.len(), 1);
}

// apply.go Txn/newTxnResp/applyTxn, kvstore_txn.go: one revision for the whole txn, sub
// revisions in op order; reads inside the txn see its earlier writes; nested responses carry
// no header revision.
#[test]
fn txn_applies_at_one_revision_and_reads_its_own_writes() {
    let mut s = store_with(&["a"]); // 2
    let (a, r) = apply_txn(
        &mut s,
        txn(
            vec![cmp("a", T::Version(1), R::Equal)],
            vec![
                op_del("nothing", ""),
                op_put("b", "1"),
                op_range("a", "z"),
                op_del("a", ""),
                RequestOp::Txn(txn(vec![], vec![op_put("c", "1")], vec![])),
            ],
            vec![],
        ),
    );
    assert_eq!(a.revision, 3);
    assert_eq!(r.revision, 3);
    assert!(r.succeeded);
    let ResponseOp::DeleteRange(d) = &r.responses[0] else {
        panic!()
    };
    assert_eq!(d.revision, 2, "nothing deleted and nothing written yet");
    let ResponseOp::Range(rr) = &r.responses[2] else {
        panic!()
    };
    assert_eq!(keys_of(&rr.kvs), ["a", "b"]);
    assert_eq!(rr.revision, 3);
    let ResponseOp::Txn(nested) = &r.responses[4] else {
        panic!()
    };
    assert_eq!(nested.revision, 0);
    let revs: Vec<_> = a
        .events
        .iter()
        .map(|e| (e.kind, e.kv.mod_revision))
        .collect();
    assert_eq!(
        revs,
        [
            (EventKind::Put, 3),
            (EventKind::Delete, 3),
            (EventKind::Put, 3)
        ]
    );
    assert_eq!(s.revision(), 3);
    // A txn that changes nothing keeps the revision.
    let (a, _) = apply_txn(&mut s, txn(vec![], vec![op_range("a", "z")], vec![]));
    assert_eq!(a.revision, 3);
}

// apply.go compareKV/applyCompare: a missing key compares as a zero KeyValue, except that a
// value compare on no key always fails; a range compare needs every key to hold.
#[test]
fn compares_on_missing_keys_and_ranges() {
    let mut s = store_with(&["k1", "k2"]);
    let check = |s: &mut KvStore, c| apply_txn(s, txn(vec![c], vec![], vec![])).1.succeeded;
    assert!(check(&mut s, cmp("nope", T::Version(0), R::Equal)));
    assert!(check(&mut s, cmp("nope", T::Create(0), R::Equal)));
    assert!(check(&mut s, cmp("nope", T::Lease(0), R::Equal)));
    assert!(!check(
        &mut s,
        cmp("nope", T::Value(Bytes::new()), R::Equal)
    ));
    assert!(!check(&mut s, cmp("nope", T::Value(b("x")), R::NotEqual)));
    let mut range_cmp = cmp("k", T::Mod(3), R::Less);
    range_cmp.range_end = b("l");
    assert!(!check(&mut s, range_cmp.clone()), "k2 has mod revision 3");
    range_cmp.result = R::NotEqual;
    range_cmp.target = T::Mod(4);
    assert!(check(&mut s, range_cmp.clone()));
    range_cmp.range_end = Bytes::from_static(b"\0");
    range_cmp.target = T::Value(b("v-k"));
    range_cmp.result = R::Greater;
    assert!(check(&mut s, range_cmp));
}

// apply.go compareToPath: nested txns' compares are evaluated before anything is written.
#[test]
fn nested_compares_see_the_state_before_the_txn() {
    let mut s = KvStore::new();
    let (_, r) = apply_txn(
        &mut s,
        txn(
            vec![],
            vec![
                op_put("a", "1"),
                RequestOp::Txn(txn(
                    vec![cmp("a", T::Version(0), R::Equal)],
                    vec![op_put("saw-nothing", "1")],
                    vec![op_put("saw-a", "1")],
                )),
            ],
            vec![],
        ),
    );
    let ResponseOp::Txn(n) = &r.responses[1] else {
        panic!()
    };
    assert!(n.succeeded);
    assert!(s.get(b"saw-nothing").is_some());
}

// v3rpc/key.go checkIntervals.
#[test]
fn duplicate_keys_in_txns() {
    let limits = KvLimits::default();
    let check = |t| limits.admit(&mut Command::Txn(t));
    let dup = Err(KvError::DuplicateKey);
    assert_eq!(
        check(txn(
            vec![],
            vec![op_put("a", "1"), op_put("a", "2")],
            vec![]
        )),
        dup
    );
    assert_eq!(
        check(txn(
            vec![],
            vec![op_del("a", "c"), op_put("b", "2")],
            vec![]
        )),
        dup
    );
    assert_eq!(
        check(txn(vec![], vec![op_put("b", "2"), op_del("b", "")], vec![])),
        dup
    );
    // Deletes may overlap; success and failure are separate lists.
    assert_eq!(
        check(txn(vec![], vec![op_del("a", "c"), op_del("b", "")], vec![])),
        Ok(())
    );
    assert_eq!(
        check(txn(vec![], vec![op_put("a", "1")], vec![op_put("a", "2")])),
        Ok(())
    );
    let nested = |s, f| RequestOp::Txn(txn(vec![], s, f));
    // One nested txn's branches may put the same key (only one runs)...
    assert_eq!(
        check(txn(
            vec![],
            vec![nested(vec![op_put("a", "1")], vec![op_put("a", "2")])],
            vec![]
        )),
        Ok(())
    );
    // ...but not a key the outer level puts or deletes.
    assert_eq!(
        check(txn(
            vec![],
            vec![op_put("a", "0"), nested(vec![op_put("a", "1")], vec![])],
            vec![]
        )),
        dup
    );
    assert_eq!(
        check(txn(
            vec![],
            vec![op_del("a", ""), nested(vec![], vec![op_put("a", "1")])],
            vec![]
        )),
        dup
    );
    assert_eq!(
        check(txn(
            vec![],
            vec![op_put("a", "0"), nested(vec![op_del("a", "")], vec![])],
            vec![]
        )),
        dup
    );
    // Quirks kept: a nested put before a sibling's delete of the same key passes, and a
    // from-key delete (range_end "\0") is an empty interval to the check.
    assert_eq!(
        check(txn(
            vec![],
            vec![
                nested(vec![op_put("a", "1")], vec![]),
                nested(vec![op_del("a", "")], vec![])
            ],
            vec![]
        )),
        Ok(())
    );
    assert_eq!(
        check(txn(
            vec![],
            vec![op_del("a", "\0"), op_put("b", "1")],
            vec![]
        )),
        Ok(())
    );
}

// The from-key quirk applies: the delete runs first, then the put, both at one revision.
#[test]
fn a_key_deleted_and_put_in_one_txn() {
    let mut s = store_with(&["b"]);
    let (a, r) = apply_txn(
        &mut s,
        txn(
            vec![],
            vec![
                op_del("a", "\0"),
                RequestOp::Put(PutRequest {
                    prev_kv: true,
                    ..put_req("b", "new")
                }),
            ],
            vec![],
        ),
    );
    let ResponseOp::Put(p) = &r.responses[1] else {
        panic!()
    };
    assert_eq!(p.prev_kv, None, "the put sees the txn's own delete");
    let kv = s.get(b"b").unwrap();
    assert_eq!((kv.create_revision, kv.version), (3, 1));
    let kinds: Vec<_> = a.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Delete, EventKind::Put]);
    assert_eq!(a.events[1].prev_kv.as_ref().unwrap().value, b("v-b"));
    assert_eq!(
        s.history(&HistoryRequest {
            key: b("b"),
            start_revision: 3,
            events_max: 10,
            ..Default::default()
        })
        .unwrap()
        .events,
        a.events
    );
}

// v3rpc/key.go checkTxnRequest: at most maxTxnOps (128) compares and ops per branch; a nested
// txn gets maxTxnOps minus its parent's largest list.
#[test]
fn too_many_ops() {
    let limits = KvLimits::default();
    let puts = |n: usize| {
        (0..n)
            .map(|i| op_put(&format!("k{i}"), "v"))
            .collect::<Vec<_>>()
    };
    let check = |t| limits.admit(&mut Command::Txn(t));
    assert_eq!(check(txn(vec![], puts(128), vec![])), Ok(()));
    assert_eq!(
        check(txn(vec![], puts(129), vec![])),
        Err(KvError::TooManyOps {
            ops: 129,
            ops_max: 128
        })
    );
    let cmps = (0..129)
        .map(|_| cmp("a", T::Version(0), R::Equal))
        .collect();
    assert!(matches!(
        check(txn(cmps, vec![], vec![])),
        Err(KvError::TooManyOps { .. })
    ));
    let nested_puts = (0..28).map(|i| op_put(&format!("n{i}"), "v")).collect();
    let nested = RequestOp::Txn(txn(vec![], nested_puts, vec![]));
    let mut ops = puts(99);
    ops.push(nested.clone());
    // 100 ops at the top leave 28 for the nested txn.
    assert_eq!(check(txn(vec![], ops, vec![])), Ok(()));
    let mut ops = puts(101);
    ops.push(nested);
    assert_eq!(
        check(txn(vec![], ops, vec![])),
        Err(KvError::TooManyOps {
            ops: 28,
            ops_max: 26
        })
    );
}

// v3rpc/key.go checkPutRequest; apply.go Put (outside a txn the lease is checked before the
// key) and checkRequestPut (inside: key first).
#[test]
fn put_flag_errors() {
    let mut s = KvStore::new();
    let p = |f: fn(&mut PutRequest)| {
        let mut r = put_req("k", "");
        f(&mut r);
        Command::Put(r)
    };
    assert_eq!(
        refused(&mut s, p(|r| r.key = Bytes::new())),
        KvError::EmptyKey
    );
    assert_eq!(
        refused(
            &mut s,
            p(|r| {
                r.ignore_value = true;
                r.value = b("x")
            })
        ),
        KvError::ValueProvided
    );
    assert_eq!(
        refused(
            &mut s,
            p(|r| {
                r.ignore_lease = true;
                r.lease = 5
            })
        ),
        KvError::LeaseProvided
    );
    assert_eq!(
        refused(&mut s, p(|r| r.ignore_value = true)),
        KvError::KeyNotFound
    );
    assert_eq!(
        refused(
            &mut s,
            p(|r| {
                r.ignore_value = true;
                r.lease = 5
            })
        ),
        KvError::LeaseNotFound
    );
    let in_txn = |r: PutRequest| Command::Txn(txn(vec![], vec![RequestOp::Put(r)], vec![]));
    let mut r = put_req("k", "");
    r.ignore_value = true;
    r.lease = 5;
    assert_eq!(refused(&mut s, in_txn(r)), KvError::KeyNotFound);
    // ignore_value keeps the value, ignore_lease the lease.
    apply(
        &mut s,
        Command::LeaseGrant {
            id: 5,
            ttl_secs: 10,
        },
    );
    apply(&mut s, put_lease("k", "v", 5));
    apply(
        &mut s,
        p(|r| {
            r.ignore_value = true;
            r.ignore_lease = true
        }),
    );
    let kv = s.get(b"k").unwrap();
    assert_eq!((kv.value, kv.lease, kv.version), (b("v"), 5, 2));
}

// apply.go Txn: checkRequests(checkPut) then checkRequests(checkRange) on the path before any
// write; a failure leaves the store untouched. checkRequestRange compares against the read
// view: the txn's own revision is "future", a revision below compactMainRev (which starts at
// -1) is "compacted" even when negative.
#[test]
fn txn_checks_refuse_the_whole_txn() {
    let mut s = store_with(&["a"]);
    let with_range = |rev| {
        Command::Txn(txn(
            vec![],
            vec![
                op_put("b", "1"),
                RequestOp::Range(RangeRequest {
                    revision: rev,
                    ..range_req("a", "")
                }),
            ],
            vec![],
        ))
    };
    assert_eq!(refused(&mut s, with_range(3)), KvError::FutureRevision);
    // compactMainRev starts at -1, so -1 passes and -2 does not.
    assert_eq!(
        refused(&mut s, with_range(-2)),
        KvError::Compacted {
            compact_revision: 0
        }
    );
    apply(&mut s, with_range(-1));
    apply(&mut s, with_range(2));
    // Only the branch taken is checked.
    let t = txn(
        vec![cmp("a", T::Version(0), R::Greater)],
        vec![op_put("c", "1")],
        vec![RequestOp::Put(PutRequest {
            lease: 99,
            ..put_req("c", "1")
        })],
    );
    apply(&mut s, Command::Txn(t.clone()));
    let mut t = t;
    t.compare[0].result = R::Equal;
    assert_eq!(refused(&mut s, Command::Txn(t)), KvError::LeaseNotFound);
}

// Read-only txns are served locally and answer what applying them would.
#[test]
fn read_only_txn_matches_applying_it() {
    let mut s = store_with(&["a", "b"]);
    let t = txn(
        vec![cmp("a", T::Value(b("v-a")), R::Equal)],
        vec![
            op_range("a", "z"),
            RequestOp::Txn(txn(vec![], vec![op_range("b", "")], vec![])),
        ],
        vec![],
    );
    let local = s.txn_read(&t).unwrap();
    let (_, applied) = apply_txn(&mut s, t);
    assert_eq!(local, applied);
    assert_eq!(
        s.txn_read(&txn(vec![], vec![op_put("a", "1")], vec![])),
        Err(KvError::TxnNotReadOnly)
    );
}

// lease/lessor.go Grant/Revoke/Checkpoint and kvstore_txn.go put/delete attach and detach.
#[test]
fn leases() {
    let mut s = KvStore::new();
    let grant = |id, ttl| Command::LeaseGrant { id, ttl_secs: ttl };
    let a = apply(&mut s, grant(0, 30));
    assert_eq!(
        a.result,
        CommandResult::LeaseGrant {
            id: 1,
            ttl_secs: 30
        }
    );
    assert_eq!(a.revision, 1, "granting writes no key");
    apply(&mut s, grant(2, 30));
    let a = apply(&mut s, grant(0, 30));
    assert_eq!(
        a.result,
        CommandResult::LeaseGrant {
            id: 3,
            ttl_secs: 30
        },
        "2 is taken"
    );
    assert_eq!(refused(&mut s, grant(2, 10)), KvError::LeaseExists);
    assert_eq!(
        refused(&mut s, grant(9, LEASE_TTL_MAX_SECS + 1)),
        KvError::LeaseTtlTooLarge
    );
    let mut g = grant(0, 1);
    KvLimits::default().admit(&mut g).unwrap();
    assert_eq!(g, grant(0, 2), "raised to the minimum TTL");

    apply(&mut s, put_lease("x", "1", 1));
    apply(&mut s, put_lease("y", "1", 1));
    apply(&mut s, put_lease("z", "1", 1));
    apply(&mut s, put_lease("z", "2", 2)); // moves z to lease 2
    apply(&mut s, del("y", ""));
    assert_eq!(s.lease(1).unwrap().keys, [b("x")]);
    assert_eq!(s.lease(2).unwrap().keys, [b("z")]);
    apply(&mut s, put_lease("w", "1", 1));
    apply(&mut s, put("x", "no lease"));
    assert_eq!(s.lease(1).unwrap().keys, [b("w")]);

    apply(&mut s, put_lease("a", "1", 2));
    let rev = s.revision();
    let a = apply(&mut s, Command::LeaseRevoke { id: 2 });
    assert_eq!(a.revision, rev + 1, "all keys go in one revision");
    let deleted: Vec<_> = a
        .events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision))
        .collect();
    assert_eq!(
        deleted,
        [
            (EventKind::Delete, b("a"), rev + 1),
            (EventKind::Delete, b("z"), rev + 1)
        ],
        "sorted by key, as etcd"
    );
    assert_eq!(
        a.events[0].kv,
        KeyValue {
            key: b("a"),
            mod_revision: rev + 1,
            ..KeyValue::default()
        }
    );
    assert!(s.get(b"a").is_none() && s.lease(2).is_none());
    assert_eq!(
        refused(&mut s, Command::LeaseRevoke { id: 2 }),
        KvError::LeaseNotFound
    );
    assert_eq!(
        refused(&mut s, put_lease("q", "1", 2)),
        KvError::LeaseNotFound
    );
    // A lease without keys is revoked without a revision.
    let rev = s.revision();
    assert_eq!(apply(&mut s, Command::LeaseRevoke { id: 3 }).revision, rev);

    // Checkpoints of unknown leases are ignored.
    let cp = |id, r| sextant_core::kv::LeaseCheckpoint {
        id,
        remaining_ttl_secs: r,
    };
    apply(
        &mut s,
        Command::LeaseCheckpoint {
            checkpoints: vec![cp(1, 12), cp(77, 5)],
        },
    );
    assert_eq!(s.lease(1).unwrap().remaining_ttl_secs, 12);
    assert_eq!(s.leases().len(), 1);
}

// watchable_store.go syncWatchers / kvsToEvents and the watch server's prev_kv read at
// mod_revision - 1: history below the compaction point fails with it; at it, deletes are gone.
#[test]
fn history_and_compaction() {
    let mut s = KvStore::new();
    let mut all = Vec::new();
    for c in [
        put("a", "1"),
        put("b", "1"),
        del("a", ""),
        put("b", "2"),
        put("c", "1"),
    ] {
        all.extend(apply(&mut s, c).events);
    }
    let h = |s: &KvStore, start, max| {
        s.history(&HistoryRequest {
            key: b("a"),
            range_end: b("z"),
            start_revision: start,
            events_max: max,
        })
    };
    assert_eq!(h(&s, 1, 100).unwrap().events, all);
    let batch = h(&s, 2, 2).unwrap();
    assert_eq!((batch.events.len(), batch.next_revision), (2, 4));
    assert_eq!(h(&s, 7, 10).unwrap().next_revision, 7);
    apply(
        &mut s,
        Command::Compact {
            revision: 4,
            physical: false,
        },
    );
    assert_eq!(
        h(&s, 3, 10),
        Err(KvError::Compacted {
            compact_revision: 4
        })
    );
    let after = h(&s, 4, 10).unwrap();
    assert_eq!(
        after.events,
        all[3..],
        "the delete at the compaction point is gone"
    );
    assert_eq!(after.next_revision, 7);
    // Events at the revision after the compaction point still carry prev_kv.
    assert_eq!(after.events[0].prev_kv.as_ref().unwrap().value, b("1"));
}

// mvcc/watchable_store_txn.go: a delete event carries the key and the deleting revision only.
#[test]
fn event_shapes() {
    let mut s = store_with(&["a"]);
    let a = apply(&mut s, put("a", "2"));
    assert_eq!(a.events[0].kind, EventKind::Put);
    assert_eq!(a.events[0].prev_kv.as_ref().unwrap().value, b("v-a"));
    let a = apply(&mut s, del("a", ""));
    assert_eq!(
        a.events[0].kv,
        KeyValue {
            key: b("a"),
            mod_revision: 4,
            ..KeyValue::default()
        }
    );
    assert_eq!(a.events[0].prev_kv.as_ref().unwrap().value, b("2"));
}

#[test]
fn limits() {
    let limits = KvLimits {
        request_bytes_max: 100,
        value_bytes_max: 50,
        range_keys_max: 2,
        ..KvLimits::default()
    };
    let mut big = put("k", &"x".repeat(60));
    assert_eq!(
        limits.admit(&mut big),
        Err(KvError::ValueTooLarge {
            size_bytes: 60,
            bytes_max: 50
        })
    );
    let mut big = Command::Txn(txn(
        vec![],
        (0..3)
            .map(|i| op_put(&format!("k{i}"), &"x".repeat(40)))
            .collect(),
        vec![],
    ));
    assert!(matches!(
        limits.admit(&mut big),
        Err(KvError::RequestTooLarge { bytes_max: 100, .. })
    ));
    let mut s = store_with(&["a", "b", "c"]);
    s.set_limits(limits);
    assert_eq!(
        s.range(&range_req("a", "z")),
        Err(KvError::RangeTooLarge {
            keys: 3,
            keys_max: 2
        })
    );
    assert_eq!(
        s.range(&RangeRequest {
            limit: 2,
            ..range_req("a", "z")
        })
        .unwrap()
        .kvs
        .len(),
        2
    );
    assert_eq!(
        s.range(&RangeRequest {
            count_only: true,
            ..range_req("a", "z")
        })
        .unwrap()
        .count,
        3
    );
}
