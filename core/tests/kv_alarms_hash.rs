//! Alarms refuse the writes etcd refuses, travel in snapshots, and hashes agree between equal
//! stores.

use bytes::Bytes;
use sextant_core::kv::{
    AlarmAction, AlarmKind, AlarmMember, AlarmRequest, Command, CommandResult, DeleteRangeRequest,
    KvError, KvStore, PutRequest,
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
