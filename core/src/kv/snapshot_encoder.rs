//! `SnapshotEncoder`: the snapshot of a store as of one revision, encoded a slice of keys at a
//! time, so a driver can go on applying commands between slices instead of stopping for the
//! whole encoding (a second or more with a million keys). The bytes are exactly
//! `snapshot.rs`'s format, as [`super::KvStore::snapshot`] would have written them at that
//! revision.
//!
//! The state at the start revision can still be read after later writes; a compaction applied
//! meanwhile interrupts the encoding (see `walk`; the caller starts again, or encodes in one
//! go). The lease table, member registry and alarms are small and encoded at the start.
//!
//! Two passes over the keys, each in slices: the first sizes the encoding, the second writes
//! it into one allocation of that size (growing a vector to hundreds of megabytes copied it
//! over and over).

use bytes::Bytes;
use serde::Serialize;
use thiserror::Error;

use super::key_history::Version;
use super::snapshot::TAG_V2;
use super::store::KvStore;
use super::walk::{KeyWalk, WalkInterrupted};
use crate::mutation::{self, Mutation};

/// Why an encoding cannot go on; the caller starts a new one.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SnapshotInterrupted {
    /// A compaction, or another store (see `walk`).
    #[error("snapshot encoding: {0}")]
    Walk(#[from] WalkInterrupted),
    /// A key count that does not add up: a bug, never corrupt output.
    #[error("snapshot at revision {revision}: {expected} keys at the start, {found} encoded")]
    KeyCount {
        revision: i64,
        expected: usize,
        found: usize,
    },
    /// Written bytes that differ from the sizing pass: a bug, never corrupt output.
    #[error("snapshot at revision {revision}: sized {sized} bytes, wrote {written}")]
    Size {
        revision: i64,
        sized: usize,
        written: usize,
    },
}

/// An encoding in progress; see the module docs. Feed it the same store each step.
#[derive(Debug)]
pub struct SnapshotEncoder {
    /// Over the state at the store's revision when the encoding started.
    walk: KeyWalk,
    /// Keys in the index at the start: exactly the keys that have versions at `revision`.
    key_count: usize,
    /// Everything before the keys (format tag, revisions, key count), encoded at the start.
    head: Vec<u8>,
    /// Everything after them (leases, member registry, alarms), encoded at the start.
    tail: Vec<u8>,
    keys_done: usize,
    pass: Pass,
}

#[derive(Debug)]
enum Pass {
    /// Adding up the encoded size of the keys.
    Sizing { keys_bytes: usize },
    /// Writing into a buffer of the final size, `len`.
    Writing { buf: Vec<u8>, len: usize },
}

impl SnapshotEncoder {
    /// Starts encoding `store` as it is now.
    pub fn new(store: &KvStore) -> SnapshotEncoder {
        let mvcc = store.mvcc();
        let key_count = mvcc.keys().len();
        let head = (TAG_V2, mvcc.revision(), mvcc.compact_revision(), key_count);
        let tail = (
            store.leases(),
            store.next_lease_id(),
            store.members(),
            store.alarms(),
        );
        SnapshotEncoder {
            walk: KeyWalk::new(mvcc.revision(), mvcc.compact_revision()),
            key_count,
            head: to_vec(&head),
            tail: to_vec(&tail),
            keys_done: 0,
            pass: Pass::Sizing { keys_bytes: 0 },
        }
    }

    /// Encodes up to `keys_max` more keys of `store` (at least one). Returns the snapshot once
    /// both passes are through, `None` while work remains.
    pub fn step(
        &mut self,
        store: &KvStore,
        keys_max: usize,
    ) -> Result<Option<Bytes>, SnapshotInterrupted> {
        let revision = self.walk.revision();
        let (keys_done, pass) = (&mut self.keys_done, &mut self.pass);
        let through = self.walk.slice(store.mvcc(), keys_max, |key, h| {
            // Versions up to the snapshot's revision; none: the key was created since.
            let n = h.versions().partition_point(|v| v.main <= revision);
            if n == 0 {
                return;
            }
            let n = if mutation::active(Mutation::SnapshotSlicesSeeLaterWrites) {
                h.versions().len()
            } else {
                n
            };
            *keys_done += 1;
            let item: (&Bytes, &[Version]) = (key, &h.versions()[..n]);
            match pass {
                Pass::Sizing { keys_bytes } => *keys_bytes += encoded_len(&item),
                Pass::Writing { buf, .. } => append(buf, &item),
            }
        })?;
        if !through {
            return Ok(None);
        }
        self.pass_done()
    }

    /// The keys are through: sized (start writing) or written (the snapshot is done).
    fn pass_done(&mut self) -> Result<Option<Bytes>, SnapshotInterrupted> {
        if self.keys_done != self.key_count {
            debug_assert!(
                false,
                "{} keys at the start, {} encoded",
                self.key_count, self.keys_done
            );
            return Err(SnapshotInterrupted::KeyCount {
                revision: self.walk.revision(),
                expected: self.key_count,
                found: self.keys_done,
            });
        }
        self.keys_done = 0;
        match &mut self.pass {
            Pass::Sizing { keys_bytes } => {
                let len = self.head.len() + *keys_bytes + self.tail.len();
                let mut buf = Vec::with_capacity(len);
                buf.extend_from_slice(&self.head);
                self.pass = Pass::Writing { buf, len };
                Ok(None)
            }
            Pass::Writing { buf, len } => {
                let mut buf = std::mem::take(buf);
                buf.extend_from_slice(&self.tail);
                if buf.len() != *len {
                    debug_assert!(false, "sized {len} bytes, wrote {}", buf.len());
                    return Err(SnapshotInterrupted::Size {
                        revision: self.walk.revision(),
                        sized: *len,
                        written: buf.len(),
                    });
                }
                Ok(Some(Bytes::from(buf)))
            }
        }
    }

    /// Encodes all of `store` in one go (it is not changed meanwhile).
    pub fn encode_now(store: &KvStore) -> Bytes {
        let mut enc = SnapshotEncoder::new(store);
        loop {
            match enc.step(store, usize::MAX) {
                Ok(Some(data)) => return data,
                Ok(None) => {}
                Err(e) => unreachable!("the store did not change: {e}"),
            }
        }
    }
}

fn to_vec<T: Serialize>(item: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    append(&mut buf, item);
    buf
}

fn encoded_len<T: Serialize>(item: &T) -> usize {
    postcard::serialize_with_flavor(item, postcard::ser_flavors::Size::default())
        .expect("in-memory encoding cannot fail")
}

fn append<T: Serialize>(buf: &mut Vec<u8>, item: &T) {
    postcard::serialize_with_flavor(item, Append(buf)).expect("in-memory encoding cannot fail")
}

/// Postcard output appended to a vector (postcard's own extending flavor copies byte by
/// byte).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::snapshot::serde_format;
    use crate::kv::{AlarmAction, AlarmKind, AlarmRequest, Command, DeleteRangeRequest};
    use crate::kv::{PutRequest, RequestOp, TxnRequest};
    use crate::{ConfChange, MemberAttrs, MemberContext};

    fn put(k: &str, v: &str, lease: i64) -> Command {
        Command::Put(PutRequest {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Bytes::copy_from_slice(v.as_bytes()),
            lease,
            ..Default::default()
        })
    }

    fn delete(k: &str) -> Command {
        Command::DeleteRange(DeleteRangeRequest {
            key: Bytes::copy_from_slice(k.as_bytes()),
            ..Default::default()
        })
    }

    /// A store with every kind of state a snapshot holds: keys with several versions,
    /// tombstones and new lifetimes, a txn's sub-revisions, keys on leases, history cut by a
    /// compaction, members and an alarm.
    fn varied_store() -> KvStore {
        let mut s = KvStore::new();
        let members = MemberContext {
            members: vec![(
                1,
                MemberAttrs {
                    name: "a".into(),
                    peer_urls: vec!["http://a:2380".into()],
                    client_urls: Vec::new(),
                },
            )],
        };
        s.apply_conf_change(&ConfChange::add_voters(&[1], members.encode()));
        let mut cmds = vec![
            Command::LeaseGrant {
                id: 7,
                ttl_secs: 30,
            },
            Command::LeaseGrant {
                id: 9,
                ttl_secs: 60,
            },
        ];
        for i in 0..40 {
            cmds.push(put(&format!("k{:02}", i % 13), &"v".repeat(i % 5), 0));
        }
        cmds.extend([
            delete("k03"),
            put("k03", "again", 7),
            put("leased", "x", 9),
            Command::Txn(TxnRequest {
                success: vec![
                    RequestOp::Put(PutRequest {
                        key: Bytes::from_static(b"t1"),
                        value: Bytes::from_static(b"one"),
                        ..Default::default()
                    }),
                    RequestOp::Put(PutRequest {
                        key: Bytes::from_static(b"t2"),
                        value: Bytes::from_static(b"two"),
                        ..Default::default()
                    }),
                ],
                ..Default::default()
            }),
            Command::Compact {
                revision: 20,
                physical: false,
            },
            delete("k05"),
            Command::Alarm(AlarmRequest {
                action: AlarmAction::Activate,
                member_id: 1,
                kind: Some(AlarmKind::NoSpace),
            }),
        ]);
        for c in &cmds {
            s.apply(c).unwrap();
        }
        s
    }

    /// The encoder writes exactly the format serde derives from the types, in one go and in
    /// slices of any size.
    #[test]
    fn writes_the_serde_format() {
        let s = varied_store();
        let expected = serde_format::encode(&s);
        assert_eq!(&SnapshotEncoder::encode_now(&s)[..], &expected[..]);
        for keys_max in [1, 2, 3, 7, 100] {
            let mut enc = SnapshotEncoder::new(&s);
            let data = loop {
                if let Some(d) = enc.step(&s, keys_max).unwrap() {
                    break d;
                }
            };
            assert_eq!(&data[..], &expected[..], "{keys_max} keys per step");
        }
        assert_eq!(
            SnapshotEncoder::encode_now(&KvStore::new()),
            serde_format::encode(&KvStore::new())
        );
    }

    /// Writes applied between slices (overwrites, new keys before and after the cursor,
    /// deletes, a lease revoked with its keys, a new lease, alarms cleared and raised) do not show: the
    /// result is the snapshot of the store as it was at the start.
    #[test]
    fn slices_encode_the_state_at_the_start() {
        for keys_max in [1, 2, 3] {
            let mut s = varied_store();
            let expected = s.snapshot();
            let mut enc = SnapshotEncoder::new(&s);
            let mut later = vec![
                Command::Alarm(AlarmRequest {
                    action: AlarmAction::Deactivate,
                    member_id: 1,
                    kind: Some(AlarmKind::NoSpace),
                }),
                put("k01", "new", 0),
                put("a-first", "before every key", 0),
                put("zz-last", "after every key", 0),
                delete("k07"),
                Command::LeaseRevoke { id: 9 },
                Command::LeaseGrant {
                    id: 11,
                    ttl_secs: 5,
                },
                put("k12", "on a new lease", 11),
                Command::Alarm(AlarmRequest {
                    action: AlarmAction::Activate,
                    member_id: 1,
                    kind: Some(AlarmKind::Corrupt),
                }),
            ]
            .into_iter();
            let data = loop {
                if let Some(d) = enc.step(&s, keys_max).unwrap() {
                    break d;
                }
                if let Some(c) = later.next() {
                    s.apply(&c).unwrap();
                }
            };
            assert!(later.next().is_none(), "every write went in between slices");
            assert_ne!(s.snapshot(), expected, "the writes changed the store");
            assert_eq!(data, expected, "{keys_max} keys per step");
            let restored = KvStore::restore(&data).unwrap();
            assert_eq!(restored.snapshot(), expected);
        }
    }

    /// A compaction removes versions the snapshot needs, and a store that is behind the
    /// snapshot's revision is another store: the encoding stops, with the reason.
    #[test]
    fn compaction_or_another_store_interrupts() {
        let mut s = varied_store();
        let revision = s.revision();
        let mut enc = SnapshotEncoder::new(&s);
        assert_eq!(enc.step(&s, 2), Ok(None));
        s.apply(&Command::Compact {
            revision: revision - 1,
            physical: false,
        })
        .unwrap();
        assert_eq!(
            enc.step(&s, 2),
            Err(SnapshotInterrupted::Walk(WalkInterrupted::Compacted {
                revision,
                compacted_at: revision - 1
            }))
        );

        // Another store compacted at the same point, but behind.
        let s = varied_store();
        let mut behind = KvStore::new();
        for i in 0..25 {
            behind.apply(&put("x", &i.to_string(), 0)).unwrap();
        }
        behind
            .apply(&Command::Compact {
                revision: 20,
                physical: false,
            })
            .unwrap();
        assert_eq!(behind.compact_revision(), s.compact_revision());
        assert!(behind.revision() < revision);
        let mut enc = SnapshotEncoder::new(&s);
        assert_eq!(enc.step(&s, 2), Ok(None));
        assert_eq!(
            enc.step(&behind, 2),
            Err(SnapshotInterrupted::Walk(WalkInterrupted::Replaced {
                revision
            }))
        );
    }
}
