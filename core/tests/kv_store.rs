//! Store behaviours beyond etcd's: snapshot encoding and restore, bounds that etcd lacks, and
//! the lessor driven from the store as a leader's driver would.

mod kv_support;

use std::collections::BTreeMap;

use bytes::Bytes;
use kv_support::*;
use sextant_core::kv::{
    Command, CommandResult, HistoryRequest, KeyValue, KvError, KvStore, RangeRequest, RequestOp,
    TxnRequest, ValueSharing, TXN_DEPTH_MAX,
};
use sextant_core::lease::{Lessor, LessorConfig};

fn busy_store() -> KvStore {
    let mut s = KvStore::new();
    apply(
        &mut s,
        Command::LeaseGrant {
            id: 0,
            ttl_secs: 30,
        },
    );
    for i in 0..20 {
        apply(&mut s, put(&format!("k{:02}", i % 7), &format!("v{i}")));
        if i % 5 == 0 {
            apply(&mut s, put_lease(&format!("l{i}"), "x", 1));
        }
        if i % 6 == 0 {
            apply(&mut s, del(&format!("k{:02}", i % 4), ""));
        }
    }
    apply(
        &mut s,
        Command::Compact {
            revision: 12,
            physical: false,
        },
    );
    apply(
        &mut s,
        Command::LeaseGrant {
            id: 40,
            ttl_secs: 60,
        },
    );
    s
}

#[test]
fn snapshots_restore_exactly_and_encode_deterministically() {
    let s = busy_store();
    let snap = s.snapshot();
    let r = KvStore::restore(&snap).unwrap();
    assert_eq!(r, s);
    assert_eq!(r.snapshot(), snap);
    assert_eq!(busy_store().snapshot(), snap, "same history, same bytes");
    // The restored store answers history and past reads like the original.
    let all = RangeRequest {
        revision: 12,
        ..range_req("a", "\0")
    };
    assert_eq!(r.range(&all), s.range(&all));
    let h = HistoryRequest {
        key: b("a"),
        range_end: b("\0"),
        start_revision: 12,
        events_max: 1000,
    };
    assert_eq!(r.history(&h), s.history(&h));
    assert_eq!(r.lease(1), s.lease(1));
    assert_eq!(KvStore::restore(&[]).unwrap(), KvStore::new());
}

/// `restore_bytes` does not copy the values: they are slices of the snapshot's buffer (which
/// `share_values` then moves onto the stored copy); `restore` copies the buffer first.
#[test]
fn restored_values_are_slices_of_the_snapshot() {
    let s = busy_store();
    let data = s.snapshot();
    let r = KvStore::restore_bytes(&data).unwrap();
    assert_eq!(r, s);
    let all = r.range(&range_req("\0", "\0")).unwrap();
    assert!(!all.kvs.is_empty());
    for kv in &all.kvs {
        assert!(data.as_ptr_range().contains(&kv.value.as_ptr()), "{kv:?}");
        assert!(
            !data.as_ptr_range().contains(&kv.key.as_ptr()),
            "keys are copied"
        );
    }
    let copied = KvStore::restore(&data).unwrap();
    let kv = copied.get(b"k03").unwrap();
    assert!(!data.as_ptr_range().contains(&kv.value.as_ptr()));
}

/// After the driver stores a snapshot, the store's values of the versions it holds point into
/// the stored copy (the file, memory-mapped) instead of the heap. Nothing a client can see
/// changes; versions written since keep their own bytes, and a value whose bytes differ from
/// the encoding is never replaced.
#[test]
fn values_are_shared_from_the_stored_snapshot() {
    let mut s = busy_store();
    let encoded = s.snapshot();
    let at_snapshot = s.revision();
    // The store moves on before the storage hands the snapshot back.
    apply(&mut s, put("k01", "rewritten"));
    apply(&mut s, put("fresh", "new"));
    apply(&mut s, del("k02", ""));
    let before = s.clone();
    let stored = Bytes::from(encoded.to_vec());
    let shared = s.share_values(&encoded, &stored);
    assert!(shared.complete);
    assert!(shared.versions > 0 && shared.bytes > 0);
    assert_eq!(s, before, "same contents");
    assert_eq!(s.snapshot(), before.snapshot());

    let inside = |v: &Bytes| stored.as_ptr_range().contains(&v.as_ptr());
    let all = s.range(&range_req("\0", "\0")).unwrap();
    assert!(all.kvs.len() > 5);
    for kv in &all.kvs {
        assert_eq!(
            inside(&kv.value),
            kv.mod_revision <= at_snapshot,
            "{kv:?} (snapshot at {at_snapshot})"
        );
    }
    // A past version is shared too.
    let old = s
        .range(&RangeRequest {
            revision: at_snapshot,
            ..range_req("k01", "")
        })
        .unwrap();
    assert!(inside(&old.kvs[0].value));

    // Bytes that differ from the store's are left alone: k03's latest value, tampered with.
    let mut again = before.clone();
    let mut tampered = encoded.to_vec();
    let v = before.get(b"k03").unwrap().value;
    let at = tampered.windows(v.len()).position(|w| w == &v[..]).unwrap();
    tampered[at] ^= 1;
    let tampered = Bytes::from(tampered);
    let partial = again.share_values(&tampered, &tampered.clone());
    assert_eq!(partial.versions, shared.versions - 1);
    assert_eq!(again, before);
    let in_tampered = |k: &[u8]| {
        let v = again.get(k).unwrap().value;
        tampered.as_ptr_range().contains(&v.as_ptr())
    };
    assert!(!in_tampered(b"k03"));
    assert!(in_tampered(b"k04"));
    // A copy of another length is not this snapshot: nothing is shared.
    let short = Bytes::from(encoded[..encoded.len() - 1].to_vec());
    assert_eq!(before.clone().share_values(&encoded, &short).versions, 0);
}

/// Sharing a slice of keys at a time, with writes and a compaction applied between slices
/// (as a driver interleaves them): the store ends exactly as the same writes leave an
/// unshared store, and the versions the snapshot holds that are still there point into the
/// stored copy, whichever slice they were in.
#[test]
fn values_are_shared_in_slices_between_writes() {
    for keys_max in [1, 2] {
        let mut s = busy_store();
        let encoded = s.snapshot();
        let at_snapshot = s.revision();
        let stored = Bytes::from(encoded.to_vec());
        let mut plain = s.clone();
        let mut later = vec![
            put("k05", "rewritten"),
            put("a-before-all", "new"),
            del("k06", ""),
            Command::Compact {
                revision: at_snapshot,
                physical: false,
            },
            put("zz-after-all", "new"),
        ]
        .into_iter();
        let mut sharing = ValueSharing::new(encoded.clone(), stored.clone());
        let shared = loop {
            if let Some(shared) = sharing.step(&mut s, keys_max) {
                break shared;
            }
            if let Some(c) = later.next() {
                apply(&mut s, c.clone());
                apply(&mut plain, c);
            }
        };
        assert!(later.next().is_none(), "every write went in between slices");
        assert!(shared.complete && shared.versions > 0);
        assert_eq!(s, plain, "{keys_max} keys per step");
        let all = s.range(&range_req("\0", "\0")).unwrap();
        for kv in &all.kvs {
            assert_eq!(
                stored.as_ptr_range().contains(&kv.value.as_ptr()),
                kv.mod_revision <= at_snapshot && !kv.value.is_empty(),
                "{kv:?}, {keys_max} keys per step"
            );
        }
    }
    // Not a snapshot of this length: nothing to walk, nothing shared.
    let mut s = busy_store();
    let encoded = s.snapshot();
    let mut sharing = ValueSharing::new(encoded.clone(), encoded.slice(1..));
    assert_eq!(sharing.step(&mut s, 1), Some(Default::default()));
}

#[test]
fn corrupt_snapshots_are_refused() {
    let snap = busy_store().snapshot();
    assert!(KvStore::restore(&snap[..snap.len() / 2]).is_err());
    assert!(KvStore::restore(&[0xff, 0xff, 0xff]).is_err());
}

/// The first version stored `(revision, key -> latest KeyValue)`; such snapshots still restore,
/// with their history unreadable (compacted at their revision).
#[test]
fn first_version_snapshots_restore() {
    #[derive(serde::Serialize)]
    struct Legacy {
        revision: i64,
        keys: BTreeMap<Bytes, KeyValue>,
    }
    let kv = |k: &str, rev| KeyValue {
        key: b(k),
        create_revision: rev,
        mod_revision: rev,
        version: 1,
        value: b("old"),
        lease: 0,
    };
    let legacy = Legacy {
        revision: 7,
        keys: [(b("a"), kv("a", 3)), (b("b"), kv("b", 6))]
            .into_iter()
            .collect(),
    };
    let mut s = KvStore::restore(&postcard::to_stdvec(&legacy).unwrap()).unwrap();
    assert_eq!(s.revision(), 7);
    assert_eq!(s.get(b"a"), Some(kv("a", 3)));
    assert_eq!(
        s.range(&RangeRequest {
            revision: 6,
            ..range_req("a", "")
        }),
        Err(KvError::Compacted {
            compact_revision: 7
        })
    );
    apply(&mut s, put("a", "new"));
    assert_eq!(s.get(b"a").unwrap().version, 2);
}

#[test]
fn txn_nesting_is_bounded() {
    let mut t = txn(vec![], vec![op_put("a", "1")], vec![]);
    for _ in 0..TXN_DEPTH_MAX {
        t = txn(vec![], vec![RequestOp::Txn(t)], vec![]);
    }
    let mut s = KvStore::new();
    assert_eq!(
        refused(&mut s, Command::Txn(t.clone())),
        KvError::TxnTooDeep {
            depth_max: TXN_DEPTH_MAX
        }
    );
    let RequestOp::Txn(inner) = &t.success[0] else {
        panic!()
    };
    let inner: TxnRequest = inner.clone();
    assert_eq!(apply(&mut s, Command::Txn(inner)).revision, 2);
}

/// A leader's driver: promote from the store's leases, feed applied commands, propose what the
/// lessor returns.
#[test]
fn the_lessor_expires_leases_through_the_store() {
    let mut s = KvStore::new();
    let mut lessor = Lessor::new(LessorConfig::default());
    let mut now = 0u64;
    let propose = |s: &mut KvStore, lessor: &mut Lessor, cmd: Command, now: u64| {
        let a = s.apply(&cmd).unwrap();
        lessor.observe(&cmd, &a, now);
        a
    };
    let a = propose(
        &mut s,
        &mut lessor,
        Command::LeaseGrant {
            id: 0,
            ttl_secs: 10,
        },
        now,
    );
    let CommandResult::LeaseGrant { id, .. } = a.result else {
        panic!()
    };
    assert_eq!(lessor.next_deadline_ms(), None, "a follower tracks nothing");

    // Becoming leader at t=1s, with a 1s election timeout as extension.
    now = 1_000;
    lessor.promote(now, 1_000, s.leases());
    propose(&mut s, &mut lessor, put_lease("session", "alive", id), now);
    now = 5_000;
    lessor.renew(id, now).unwrap();
    assert_eq!(lessor.next_deadline_ms(), Some(15_000));
    now = 15_000;
    let expired = lessor.expired(now);
    assert_eq!(expired, [id]);
    let a = propose(&mut s, &mut lessor, Command::LeaseRevoke { id }, now);
    assert_eq!(a.events.len(), 1);
    assert!(s.get(b"session").is_none());
    assert!(lessor.expired(100_000).is_empty());
}
