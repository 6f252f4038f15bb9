//! `WriteTxn`: every change one command makes, at one revision — etcd's `storeTxnWrite` plus
//! the applier's put and delete. Changes of the same command share the main revision
//! `begin + 1` and take sub-revisions 0, 1, …; the store's revision moves only if something
//! changed. Events carry the key's state before the command as `prev_kv` (what etcd's watch
//! reads at `mod_revision - 1`).

use bytes::Bytes;

use super::key_history::Version;
use super::lease_table::LeaseTable;
use super::mvcc::Mvcc;
use super::range::{RangeRequest, RangeResponse};
use super::{
    DeleteRangeRequest, DeleteRangeResponse, Event, EventKind, KeyValue, KvError, PutRequest,
    PutResponse, Revision,
};

pub(crate) struct WriteTxn<'a> {
    mvcc: &'a mut Mvcc,
    leases: &'a mut LeaseTable,
    /// The store's revision when the command began.
    begin: i64,
    events: Vec<Event>,
}

impl<'a> WriteTxn<'a> {
    pub fn new(mvcc: &'a mut Mvcc, leases: &'a mut LeaseTable) -> WriteTxn<'a> {
        let begin = mvcc.revision();
        WriteTxn {
            mvcc,
            leases,
            begin,
            events: Vec::new(),
        }
    }

    fn changed(&self) -> bool {
        !self.events.is_empty()
    }

    /// The revision reads inside the command see: the command's own once it changed something.
    pub fn current(&self) -> i64 {
        self.begin + i64::from(self.changed())
    }

    fn next_revision(&self) -> Revision {
        Revision::new(self.begin + 1, self.events.len() as u32)
    }

    /// Ends the command: the store's revision and the events, in order.
    pub fn finish(self) -> (i64, Vec<Event>) {
        let rev = self.current();
        self.mvcc.set_revision(rev);
        (rev, self.events)
    }

    pub fn range(&self, req: &RangeRequest) -> RangeResponse {
        self.mvcc
            .range(req, self.current(), usize::MAX)
            .expect("txn reads are checked before the txn applies")
    }

    /// etcd's `applierV3backend.Put` inside a write txn; the caller checked the request
    /// (`ignore_*` on an existing key, lease exists).
    pub fn put(&mut self, p: &PutRequest) -> PutResponse {
        let existing = self.mvcc.get_at(&p.key, self.current());
        if p.ignore_value || p.ignore_lease {
            debug_assert!(existing.is_some(), "checked before applying");
        }
        let value = match (&existing, p.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => Bytes::copy_from_slice(&p.value),
        };
        let lease = match (&existing, p.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => p.lease,
        };
        let rev = self.next_revision();
        let version = Version {
            main: rev.main,
            create_revision: existing.as_ref().map_or(rev.main, |e| e.create_revision),
            version: existing.as_ref().map_or(1, |e| e.version + 1),
            lease,
            value,
            sub: rev.sub,
        };
        let old_lease = existing.as_ref().map_or(0, |e| e.lease);
        if old_lease != lease {
            if old_lease != 0 {
                self.leases.detach(old_lease, &p.key);
            }
            if lease != 0 {
                self.leases.attach(lease, &p.key);
            }
        }
        let kv = version.to_kv(&p.key);
        // Before the command's first change, the state it read is the one it began with.
        let prev_kv = if self.changed() {
            self.mvcc.get_at(&p.key, self.begin)
        } else {
            existing.clone()
        };
        self.mvcc.write(&p.key, version);
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv,
        });
        PutResponse {
            revision: rev.main,
            prev_kv: if p.prev_kv { existing } else { None },
        }
    }

    /// etcd's `applierV3backend.DeleteRange` inside a write txn.
    pub fn delete_range(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let doomed: Vec<KeyValue> = self
            .mvcc
            .scan_at(&d.key, &d.range_end, self.current())
            .map(|(k, v)| v.to_kv(k))
            .collect();
        for kv in &doomed {
            self.delete(kv);
        }
        // etcd: the txn's revision once anything changed, else the unchanged one.
        DeleteRangeResponse {
            revision: self.current(),
            deleted: doomed.len() as i64,
            prev_kvs: if d.prev_kv { doomed } else { Vec::new() },
        }
    }

    fn delete(&mut self, kv: &KeyValue) {
        let rev = self.next_revision();
        if kv.lease != 0 {
            self.leases.detach(kv.lease, &kv.key);
        }
        self.mvcc.write(&kv.key, Version::tombstone(rev));
        self.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: kv.key.clone(),
                mod_revision: rev.main,
                ..KeyValue::default()
            },
            prev_kv: self.mvcc.get_at(&kv.key, self.begin),
        });
    }

    /// Deletes every key attached to lease `id` (ascending, as etcd), then the lease.
    pub fn revoke(&mut self, id: i64) -> Result<(), KvError> {
        let keys = self.leases.keys(id).ok_or(KvError::LeaseNotFound)?;
        for key in keys {
            let kv = self
                .mvcc
                .get_at(&key, self.current())
                .expect("attached keys are alive");
            self.delete(&kv);
        }
        self.leases.remove(id);
        Ok(())
    }
}
