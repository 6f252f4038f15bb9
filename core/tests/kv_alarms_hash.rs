//! Alarms refuse the writes etcd refuses, travel in snapshots, and hashes agree between equal
//! stores, whether computed in one go or a slice of keys at a time between later writes.

use bytes::Bytes;
use sextant_core::kv::{
    AlarmAction, AlarmKind, AlarmMember, AlarmRequest, Command, CommandResult, DeleteRangeRequest,
    KvError, KvHasher, KvStore, PutRequest, WalkInterrupted,
};

fn put(k: &str, v: &str) -> Command {
    Command::Put(PutRequest {
        key: Bytes::from(k.to_string()),
        value: Bytes::from(v.to_string()),
        ..Default::default()
    })
}

fn alarm(action: AlarmAction, member_id: u64, kind: Option<AlarmKind>) -> Command {
    Command::Alarm(AlarmRequest {
        action,
        member_id,
        kind,
    })
}

fn alarms_of(r: CommandResult) -> Vec<AlarmMember> {
    match r {
        CommandResult::Alarm { alarms } => alarms,
        other => panic!("{other:?}"),
    }
}

#[test]
fn nospace_refuses_growth_but_not_deletes_and_survives_snapshots() {
    let mut kv = KvStore::new();
    kv.apply(&put("a", "1")).unwrap();
    let raised = kv
        .apply(&alarm(AlarmAction::Activate, 9, Some(AlarmKind::NoSpace)))
        .unwrap();
    let nospace = AlarmMember {
        member_id: 9,
        kind: AlarmKind::NoSpace,
    };
    assert_eq!(alarms_of(raised.result), vec![nospace]);
    assert_eq!(kv.apply(&put("b", "2")), Err(KvError::NoSpace));
    assert_eq!(
        kv.apply(&Command::LeaseGrant {
            id: 5,
            ttl_secs: 10
        }),
        Err(KvError::NoSpace)
    );
    let rev = kv.revision();
    kv.apply(&Command::DeleteRange(DeleteRangeRequest {
        key: Bytes::from_static(b"a"),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(kv.revision(), rev + 1);

    let restored = KvStore::restore(&kv.snapshot()).unwrap();
    assert_eq!(restored.alarms(), vec![nospace]);
    assert_eq!(restored.hash(), kv.hash());

    let listed = kv.apply(&alarm(AlarmAction::Get, 0, None)).unwrap();
    assert_eq!(alarms_of(listed.result), vec![nospace]);
    let cleared = kv
        .apply(&alarm(AlarmAction::Deactivate, 9, Some(AlarmKind::NoSpace)))
        .unwrap();
    assert_eq!(alarms_of(cleared.result), vec![nospace]);
    kv.apply(&put("b", "2")).unwrap();
    // No alarm left: the snapshot is the first version's encoding again.
    assert!(KvStore::restore(&kv.snapshot())
        .unwrap()
        .alarms()
        .is_empty());
}

#[test]
fn corrupt_refuses_every_write() {
    let mut kv = KvStore::new();
    kv.apply(&alarm(AlarmAction::Activate, 1, Some(AlarmKind::Corrupt)))
        .unwrap();
    assert_eq!(kv.apply(&put("a", "1")), Err(KvError::Corrupt));
    assert_eq!(
        kv.apply(&Command::Compact {
            revision: 1,
            physical: false
        }),
        Err(KvError::Corrupt)
    );
}

#[test]
fn hash_kv_covers_history_up_to_a_revision() {
    let mut a = KvStore::new();
    for i in 0..5 {
        a.apply(&put("k", &format!("v{i}"))).unwrap();
    }
    let at4 = a.hash_kv(4).unwrap();
    assert_eq!(at4.hash_revision, 4);
    let mut b = a.clone();
    b.apply(&put("other", "x")).unwrap();
    // A replica further ahead agrees on the hash of an earlier revision.
    assert_eq!(b.hash_kv(4).unwrap(), at4);
    assert_ne!(b.hash_kv(0).unwrap().hash, a.hash_kv(0).unwrap().hash);
    assert_ne!(a.hash_kv(3).unwrap().hash, at4.hash);
    assert_eq!(a.hash_kv(100), Err(KvError::FutureRevision));
    a.apply(&Command::Compact {
        revision: 4,
        physical: false,
    })
    .unwrap();
    assert!(matches!(a.hash_kv(2), Err(KvError::Compacted { .. })));
    assert_eq!(a.hash_kv(0).unwrap().compact_revision, 4);
}

/// Keys `k00`..`k39`, each written `1 + i % 3` times, every fifth deleted: versions, tombstones
/// and keys that are gone at the end.
fn store_with_history() -> KvStore {
    let mut s = KvStore::new();
    for i in 0..40 {
        for round in 0..=(i % 3) {
            s.apply(&put(&format!("k{i:02}"), &format!("v{round}")))
                .unwrap();
        }
        if i % 5 == 0 {
            s.apply(&Command::DeleteRange(DeleteRangeRequest {
                key: Bytes::from(format!("k{i:02}")),
                ..Default::default()
            }))
            .unwrap();
        }
    }
    s
}

#[test]
fn hash_kv_in_slices_between_later_writes_equals_the_hash_in_one_go() {
    for keys_max in [0, 1, 2, 3, 7, 39, 40, 41, 1000] {
        for revision in [0, 30] {
            let mut s = store_with_history();
            let expected = s.hash_kv(revision).unwrap();
            let mut hasher = KvHasher::new(&s, revision).unwrap();
            assert_eq!(hasher.revision(), expected.hash_revision);
            let mut steps = 0;
            let found = loop {
                steps += 1;
                if let Some(h) = hasher.step(&s, keys_max).unwrap() {
                    break h;
                }
                // Between slices: overwrites before and after the cursor, new keys on both
                // sides, a delete: none of it is at or below the revision being hashed.
                let n = steps;
                for key in [format!("k{:02}", n % 40), format!("a{n}"), format!("z{n}")] {
                    s.apply(&put(&key, "later")).unwrap();
                }
                s.apply(&Command::DeleteRange(DeleteRangeRequest {
                    key: Bytes::from(format!("k{:02}", (n * 7) % 40)),
                    ..Default::default()
                }))
                .unwrap();
            };
            assert_eq!(found, expected, "slices of {keys_max}, revision {revision}");
            // A slice per `keys_max` keys of the index, which grows by a key after the
            // cursor a slice (the `z` keys, visited but with nothing to hash), and perhaps one
            // that finds the end.
            let per_slice = keys_max.max(1);
            assert!(
                steps >= 40 / per_slice && steps <= (40 + steps) / per_slice + 2,
                "{steps} steps of {keys_max}"
            );
            if steps > 1 {
                assert_ne!(
                    s.hash_kv(0).unwrap().hash,
                    expected.hash,
                    "later writes count now"
                );
            }
        }
    }
}

#[test]
fn a_compaction_or_another_store_interrupts_a_hash_in_slices() {
    let mut s = store_with_history();
    let revision = s.revision();
    let mut hasher = KvHasher::new(&s, 0).unwrap();
    assert_eq!(hasher.step(&s, 5), Ok(None));
    let behind = KvStore::new();
    assert_eq!(
        hasher.step(&behind, 5),
        Err(WalkInterrupted::Replaced { revision })
    );

    let mut hasher = KvHasher::new(&s, 0).unwrap();
    assert_eq!(hasher.step(&s, 5), Ok(None));
    s.apply(&Command::Compact {
        revision: 10,
        physical: false,
    })
    .unwrap();
    assert_eq!(
        hasher.step(&s, 5),
        Err(WalkInterrupted::Compacted {
            revision,
            compacted_at: 10
        })
    );
    assert!(matches!(
        KvHasher::new(&s, 9),
        Err(KvError::Compacted {
            compact_revision: 10
        })
    ));
    assert!(matches!(
        KvHasher::new(&s, revision + 1),
        Err(KvError::FutureRevision)
    ));
}
