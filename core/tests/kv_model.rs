//! Model-based test of the key-value state machine: random sequences of puts, deletes, ranges
//! (all options, past revisions), txns (nested, with compares), compactions, lease grants,
//! revokes and checkpoints, history queries, and snapshot+restore midway, checked against a
//! deliberately simple reference model that keeps a full copy of the keyspace per revision.
//!
//! `KV_MODEL_SEEDS=n` widens the run (default 300 seeds of 300 steps).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sextant_core::kv::{
    Applied, Command, CommandResult, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, Event, EventKind, HistoryBatch, HistoryRequest, KeyValue, KvError,
    KvStore, LeaseCheckpoint, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse, LEASE_TTL_MAX_SECS,
};

type State = BTreeMap<Bytes, KeyValue>;
/// Keys put and `(key, range_end)` deleted by a list of ops.
type Intervals = (BTreeSet<Bytes>, Vec<(Bytes, Bytes)>);

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        _ => k >= key && k < end,
    }
}

/// The reference: every revision's whole keyspace, the events ever emitted, the leases.
struct Model {
    /// `states[r]` is the keyspace at revision r (0 and 1 are empty).
    states: Vec<State>,
    compact: i64,
    /// id -> (ttl, remaining ttl)
    leases: BTreeMap<i64, (i64, i64)>,
    next_lease_id: i64,
    events: Vec<Event>,
}

impl Model {
    fn new() -> Model {
        Model {
            states: vec![State::new(), State::new()],
            compact: -1,
            leases: BTreeMap::new(),
            next_lease_id: 1,
            events: Vec::new(),
        }
    }

    fn rev(&self) -> i64 {
        self.states.len() as i64 - 1
    }

    fn compacted(&self) -> KvError {
        KvError::Compacted {
            compact_revision: self.compact.max(0),
        }
    }

    fn lease_keys(&self, id: i64) -> Vec<Bytes> {
        self.states[self.rev() as usize]
            .values()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key.clone())
            .collect()
    }

    /// Range as of `current`, where `now` is the keyspace at `current`.
    fn range(
        &self,
        req: &RangeRequest,
        current: i64,
        now: &State,
    ) -> Result<RangeResponse, KvError> {
        if req.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        if req.revision > current {
            return Err(KvError::FutureRevision);
        }
        let rev = if req.revision <= 0 {
            current
        } else {
            req.revision
        };
        if rev < self.compact {
            return Err(self.compacted());
        }
        let state = if rev == current {
            now
        } else {
            &self.states[rev as usize]
        };
        let all: Vec<KeyValue> = state
            .values()
            .filter(|kv| in_range(&kv.key, &req.key, &req.range_end))
            .cloned()
            .collect();
        let count = all.len() as i64;
        if req.count_only {
            return Ok(RangeResponse {
                kvs: vec![],
                more: false,
                count,
                revision: current,
            });
        }
        // etcd fetches only limit + 1 keys (in key order) unless the request sorts or filters;
        // a non-key target with no order then sorts just those.
        let filters = req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        let mut all = all;
        if req.sort_order == SortOrder::None && !filters && req.limit > 0 {
            all.truncate(req.limit as usize + 1);
        }
        let mut kvs: Vec<KeyValue> = all
            .into_iter()
            .filter(|kv| {
                (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                    && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                    && (req.min_create_revision == 0
                        || kv.create_revision >= req.min_create_revision)
                    && (req.max_create_revision == 0
                        || kv.create_revision <= req.max_create_revision)
            })
            .collect();
        let order = match (req.sort_order, req.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (o, _) => o,
        };
        if order != SortOrder::None {
            kvs.sort_by(|a, b| {
                let o = match req.sort_target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                };
                if order == SortOrder::Descend {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        Ok(RangeResponse {
            kvs,
            more,
            count,
            revision: current,
        })
    }

    /// The retained events from `start`, batched as the store promises.
    fn history(&self, req: &HistoryRequest) -> Result<HistoryBatch, KvError> {
        if req.start_revision < self.compact {
            return Err(self.compacted());
        }
        let retained: Vec<&Event> = self
            .events
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                let main = e.kv.mod_revision;
                if main < self.compact.max(req.start_revision) {
                    return false;
                }
                if main > self.compact {
                    return true;
                }
                let last_of_key = !self.events[i + 1..]
                    .iter()
                    .any(|l| l.kv.mod_revision == main && l.kv.key == e.kv.key);
                e.kind == EventKind::Put && last_of_key
            })
            .map(|(_, e)| e)
            .collect();
        let mut events = Vec::new();
        let mut last = None;
        for e in retained {
            let main = e.kv.mod_revision;
            if last != Some(main) {
                if !events.is_empty() && events.len() >= req.events_max {
                    return Ok(HistoryBatch {
                        events,
                        next_revision: main,
                    });
                }
                last = Some(main);
            }
            if in_range(&e.kv.key, &req.key, &req.range_end) {
                let mut e = e.clone();
                e.prev_kv = if main > self.compact {
                    self.states[(main - 1) as usize].get(&e.kv.key).cloned()
                } else {
                    None
                };
                events.push(e);
            }
        }
        Ok(HistoryBatch {
            events,
            next_revision: (self.rev() + 1).max(req.start_revision),
        })
    }

    fn apply(&mut self, cmd: &Command) -> Result<Applied, KvError> {
        let begin = self.rev();
        match cmd {
            Command::Put(p) => {
                check_put_request(p)?;
                if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                    return Err(KvError::LeaseNotFound);
                }
                if (p.ignore_value || p.ignore_lease)
                    && !self.states[begin as usize].contains_key(&p.key)
                {
                    return Err(KvError::KeyNotFound);
                }
                let mut w = Write::new(self);
                let r = w.put(p);
                Ok(w.finish(self, r.into()))
            }
            Command::DeleteRange(d) => {
                if d.key.is_empty() {
                    return Err(KvError::EmptyKey);
                }
                let mut w = Write::new(self);
                let r = w.delete(d);
                Ok(w.finish(self, r.into()))
            }
            Command::Txn(t) => {
                check_txn_request(t)?;
                check_intervals(&t.success)?;
                check_intervals(&t.failure)?;
                let path = self.decide(t);
                self.check_puts(t, &path)?;
                self.check_ranges(t, &path)?;
                let mut w = Write::new(self);
                let mut resp = w.txn(self, t, &path);
                let applied = w.finish(self, CommandResult::Compact);
                resp.revision = applied.revision;
                Ok(Applied {
                    result: CommandResult::Txn(resp),
                    ..applied
                })
            }
            Command::Compact { revision, .. } => {
                if *revision <= self.compact {
                    return Err(self.compacted());
                }
                if *revision > begin {
                    return Err(KvError::FutureRevision);
                }
                self.compact = *revision;
                Ok(Applied {
                    revision: begin,
                    result: CommandResult::Compact,
                    events: vec![],
                })
            }
            Command::LeaseGrant { id, ttl_secs } => {
                if *ttl_secs > LEASE_TTL_MAX_SECS {
                    return Err(KvError::LeaseTtlTooLarge);
                }
                let id = if *id != 0 {
                    *id
                } else {
                    loop {
                        let id = self.next_lease_id;
                        self.next_lease_id += 1;
                        if !self.leases.contains_key(&id) {
                            break id;
                        }
                    }
                };
                if self.leases.contains_key(&id) {
                    return Err(KvError::LeaseExists);
                }
                let ttl_secs = (*ttl_secs).max(1);
                self.leases.insert(id, (ttl_secs, 0));
                Ok(Applied {
                    revision: begin,
                    result: CommandResult::LeaseGrant { id, ttl_secs },
                    events: vec![],
                })
            }
            Command::LeaseRevoke { id } => {
                if !self.leases.contains_key(id) {
                    return Err(KvError::LeaseNotFound);
                }
                let keys = self.lease_keys(*id);
                let mut w = Write::new(self);
                for k in keys {
                    w.delete(&DeleteRangeRequest {
                        key: k,
                        range_end: Bytes::new(),
                        prev_kv: false,
                    });
                }
                let applied = w.finish(self, CommandResult::LeaseRevoke);
                self.leases.remove(id);
                Ok(applied)
            }
            Command::LeaseCheckpoint { checkpoints } => {
                for c in checkpoints {
                    if let Some(l) = self.leases.get_mut(&c.id) {
                        l.1 = c.remaining_ttl_secs;
                    }
                }
                Ok(Applied {
                    revision: begin,
                    result: CommandResult::LeaseCheckpoint,
                    events: vec![],
                })
            }
            Command::MemberPublish { .. } | Command::MemberUpdate { .. } => {
                unreachable!("the keyspace model generates no member registry commands")
            }
            Command::Alarm(_) => unreachable!("the model's workload raises no alarms"),
        }
    }

    fn holds(&self, c: &Compare) -> bool {
        let state = &self.states[self.rev() as usize];
        let kvs: Vec<&KeyValue> = state
            .values()
            .filter(|kv| in_range(&kv.key, &c.key, &c.range_end))
            .collect();
        let one = |kv: &KeyValue| {
            let o = match &c.target {
                CompareTarget::Version(v) => kv.version.cmp(v),
                CompareTarget::Create(v) => kv.create_revision.cmp(v),
                CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
                CompareTarget::Value(v) => kv.value.cmp(v),
                CompareTarget::Lease(v) => kv.lease.cmp(v),
            };
            match c.result {
                CompareResult::Equal => o.is_eq(),
                CompareResult::NotEqual => o.is_ne(),
                CompareResult::Greater => o.is_gt(),
                CompareResult::Less => o.is_lt(),
            }
        };
        if kvs.is_empty() {
            return !matches!(c.target, CompareTarget::Value(_)) && one(&KeyValue::default());
        }
        kvs.into_iter().all(one)
    }

    /// The branch of each txn on the path, in pre-order.
    fn decide(&self, t: &TxnRequest) -> Vec<bool> {
        let ok = t.compare.iter().all(|c| self.holds(c));
        let mut path = vec![ok];
        for op in if ok { &t.success } else { &t.failure } {
            if let RequestOp::Txn(n) = op {
                path.extend(self.decide(n));
            }
        }
        path
    }

    /// Visits the non-txn ops on the path in order.
    fn walk<'a>(
        t: &'a TxnRequest,
        path: &mut std::slice::Iter<'_, bool>,
        f: &mut dyn FnMut(&'a RequestOp) -> Result<(), KvError>,
    ) -> Result<(), KvError> {
        let ok = *path.next().unwrap();
        for op in if ok { &t.success } else { &t.failure } {
            match op {
                RequestOp::Txn(n) => Self::walk(n, path, f)?,
                op => f(op)?,
            }
        }
        Ok(())
    }

    /// Also refuses `ignore_*` on a key an earlier op deletes (etcd panics there).
    fn check_puts(&self, t: &TxnRequest, path: &[bool]) -> Result<(), KvError> {
        let state = &self.states[self.rev() as usize];
        let mut deleted: Vec<(Bytes, Bytes)> = vec![];
        Self::walk(t, &mut path.iter(), &mut |op| {
            match op {
                RequestOp::Put(p) => {
                    let gone = deleted.iter().any(|(k, e)| in_range(&p.key, k, e));
                    if (p.ignore_value || p.ignore_lease) && (!state.contains_key(&p.key) || gone) {
                        return Err(KvError::KeyNotFound);
                    }
                    if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                        return Err(KvError::LeaseNotFound);
                    }
                }
                RequestOp::DeleteRange(d) => deleted.push((d.key.clone(), d.range_end.clone())),
                _ => {}
            }
            Ok(())
        })
    }

    fn check_ranges(&self, t: &TxnRequest, path: &[bool]) -> Result<(), KvError> {
        Self::walk(t, &mut path.iter(), &mut |op| {
            if let RequestOp::Range(r) = op {
                if r.revision != 0 && r.revision > self.rev() {
                    return Err(KvError::FutureRevision);
                }
                if r.revision != 0 && r.revision < self.compact {
                    return Err(self.compacted());
                }
            }
            Ok(())
        })
    }
}

fn check_put_request(p: &PutRequest) -> Result<(), KvError> {
    if p.key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(KvError::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(KvError::LeaseProvided);
    }
    Ok(())
}

fn check_txn_request(t: &TxnRequest) -> Result<(), KvError> {
    if t.compare.iter().any(|c| c.key.is_empty()) {
        return Err(KvError::EmptyKey);
    }
    for op in t.success.iter().chain(&t.failure) {
        match op {
            RequestOp::Range(r) if r.key.is_empty() => return Err(KvError::EmptyKey),
            RequestOp::DeleteRange(d) if d.key.is_empty() => return Err(KvError::EmptyKey),
            RequestOp::Put(p) => check_put_request(p)?,
            RequestOp::Txn(n) => check_txn_request(n)?,
            _ => {}
        }
    }
    Ok(())
}

/// etcd's checkIntervals, written plainly.
fn check_intervals(ops: &[RequestOp]) -> Result<Intervals, KvError> {
    let hits = |dels: &[(Bytes, Bytes)], k: &Bytes| {
        dels.iter().any(|(key, end)| {
            if end.is_empty() {
                k == key
            } else {
                key <= k && k < end
            }
        })
    };
    let mut dels: Vec<(Bytes, Bytes)> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some((d.key.clone(), d.range_end.clone())),
            _ => None,
        })
        .collect();
    let mut puts = BTreeSet::new();
    for op in ops {
        if let RequestOp::Txn(t) = op {
            let (then_puts, then_dels) = check_intervals(&t.success)?;
            let (else_puts, else_dels) = check_intervals(&t.failure)?;
            for k in &then_puts {
                if puts.contains(k) || hits(&dels, k) {
                    return Err(KvError::DuplicateKey);
                }
                puts.insert(k.clone());
            }
            for k in &else_puts {
                if (puts.contains(k) && !then_puts.contains(k)) || hits(&dels, k) {
                    return Err(KvError::DuplicateKey);
                }
                puts.insert(k.clone());
            }
            dels.extend(then_dels);
            dels.extend(else_dels);
        }
    }
    for op in ops {
        if let RequestOp::Put(p) = op {
            if puts.contains(&p.key) || hits(&dels, &p.key) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(p.key.clone());
        }
    }
    Ok((puts, dels))
}

/// One command's writes against a copy of the latest keyspace.
struct Write {
    begin: i64,
    before: State,
    now: State,
    events: Vec<Event>,
}

impl Write {
    fn new(m: &Model) -> Write {
        let before = m.states[m.rev() as usize].clone();
        Write {
            begin: m.rev(),
            now: before.clone(),
            before,
            events: vec![],
        }
    }

    fn current(&self) -> i64 {
        self.begin + i64::from(!self.events.is_empty())
    }

    fn put(&mut self, p: &PutRequest) -> PutResponse {
        let existing = self.now.get(&p.key).cloned();
        let rev = self.begin + 1;
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: existing.as_ref().map_or(rev, |e| e.create_revision),
            mod_revision: rev,
            version: existing.as_ref().map_or(1, |e| e.version + 1),
            value: if p.ignore_value {
                existing.as_ref().unwrap().value.clone()
            } else {
                p.value.clone()
            },
            lease: if p.ignore_lease {
                existing.as_ref().unwrap().lease
            } else {
                p.lease
            },
        };
        self.now.insert(p.key.clone(), kv.clone());
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: self.before.get(&p.key).cloned(),
        });
        PutResponse {
            revision: rev,
            prev_kv: if p.prev_kv { existing } else { None },
        }
    }

    fn delete(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let doomed: Vec<KeyValue> = self
            .now
            .values()
            .filter(|kv| in_range(&kv.key, &d.key, &d.range_end))
            .cloned()
            .collect();
        for kv in &doomed {
            self.now.remove(&kv.key);
            self.events.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: kv.key.clone(),
                    mod_revision: self.begin + 1,
                    ..Default::default()
                },
                prev_kv: self.before.get(&kv.key).cloned(),
            });
        }
        DeleteRangeResponse {
            revision: self.current(),
            deleted: doomed.len() as i64,
            prev_kvs: if d.prev_kv { doomed } else { vec![] },
        }
    }

    fn txn(&mut self, m: &Model, t: &TxnRequest, path: &[bool]) -> TxnResponse {
        let mut path = path.iter();
        self.txn_at(m, t, &mut path)
    }

    fn txn_at(
        &mut self,
        m: &Model,
        t: &TxnRequest,
        path: &mut std::slice::Iter<'_, bool>,
    ) -> TxnResponse {
        let ok = *path.next().unwrap();
        let mut responses = vec![];
        for op in if ok { &t.success } else { &t.failure } {
            responses.push(match op {
                RequestOp::Range(r) => {
                    ResponseOp::Range(m.range(r, self.current(), &self.now).unwrap())
                }
                RequestOp::Put(p) => ResponseOp::Put(self.put(p)),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete(d)),
                RequestOp::Txn(n) => ResponseOp::Txn(self.txn_at(m, n, path)),
            });
        }
        TxnResponse {
            revision: 0,
            succeeded: ok,
            responses,
        }
    }

    fn finish(self, m: &mut Model, result: CommandResult) -> Applied {
        if !self.events.is_empty() {
            m.states.push(self.now);
            m.events.extend(self.events.iter().cloned());
        }
        Applied {
            revision: m.rev(),
            result,
            events: self.events,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generation

const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

fn key(rng: &mut StdRng) -> Bytes {
    if rng.random_bool(0.01) {
        return Bytes::new();
    }
    Bytes::from_static(KEYS[rng.random_range(0..KEYS.len())].as_bytes())
}

fn key_range(rng: &mut StdRng) -> (Bytes, Bytes) {
    let k = key(rng);
    let end = match rng.random_range(0..6) {
        0..=2 => Bytes::new(),
        3 => Bytes::from_static(b"\0"),
        _ => Bytes::from_static(KEYS[rng.random_range(0..KEYS.len())].as_bytes()),
    };
    (k, end)
}

fn lease_id(rng: &mut StdRng, m: &Model) -> i64 {
    let ids: Vec<i64> = m.leases.keys().copied().collect();
    if !ids.is_empty() && rng.random_bool(0.85) {
        ids[rng.random_range(0..ids.len())]
    } else {
        rng.random_range(1..6)
    }
}

fn revision(rng: &mut StdRng, m: &Model) -> i64 {
    match rng.random_range(0..10) {
        0..=4 => 0,
        5 => rng.random_range(-2..1),
        6 => m.rev() + rng.random_range(0..3),
        _ => rng.random_range(1..=m.rev()),
    }
}

fn gen_put(rng: &mut StdRng, m: &Model) -> PutRequest {
    let mut p = PutRequest {
        key: key(rng),
        value: Bytes::from(format!("v{}", rng.random_range(0..5))),
        prev_kv: rng.random_bool(0.5),
        ..Default::default()
    };
    if rng.random_bool(0.3) {
        p.lease = lease_id(rng, m);
    }
    if rng.random_bool(0.1) {
        p.ignore_value = true;
        if rng.random_bool(0.8) {
            p.value = Bytes::new();
        }
    }
    if rng.random_bool(0.1) {
        p.ignore_lease = true;
        if rng.random_bool(0.8) {
            p.lease = 0;
        }
    }
    p
}

fn gen_delete(rng: &mut StdRng) -> DeleteRangeRequest {
    let (key, range_end) = key_range(rng);
    DeleteRangeRequest {
        key,
        range_end,
        prev_kv: rng.random_bool(0.5),
    }
}

fn gen_range(rng: &mut StdRng, m: &Model) -> RangeRequest {
    let (key, range_end) = key_range(rng);
    let small = |rng: &mut StdRng| {
        if rng.random_bool(0.2) {
            rng.random_range(1..=m.rev())
        } else {
            0
        }
    };
    RangeRequest {
        key,
        range_end,
        limit: [0, 0, 1, 2, 3, -1][rng.random_range(0..6)],
        revision: revision(rng, m),
        sort_order: [SortOrder::None, SortOrder::Ascend, SortOrder::Descend]
            [rng.random_range(0..3)],
        sort_target: [
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ][rng.random_range(0..5)],
        keys_only: rng.random_bool(0.2),
        count_only: rng.random_bool(0.1),
        min_mod_revision: small(rng),
        max_mod_revision: small(rng),
        min_create_revision: small(rng),
        max_create_revision: small(rng),
    }
}

fn gen_compare(rng: &mut StdRng, m: &Model) -> Compare {
    let (key, range_end) = key_range(rng);
    let n = rng.random_range(0..=m.rev().min(8));
    let target = match rng.random_range(0..5) {
        0 => CompareTarget::Version(rng.random_range(0..4)),
        1 => CompareTarget::Create(n),
        2 => CompareTarget::Mod(n),
        3 => CompareTarget::Value(Bytes::from(format!("v{}", rng.random_range(0..5)))),
        _ => CompareTarget::Lease(if rng.random_bool(0.5) {
            0
        } else {
            lease_id(rng, m)
        }),
    };
    let result = [
        CompareResult::Equal,
        CompareResult::Greater,
        CompareResult::Less,
        CompareResult::NotEqual,
    ][rng.random_range(0..4)];
    Compare {
        key,
        range_end,
        target,
        result,
    }
}

fn gen_ops(rng: &mut StdRng, m: &Model, depth: u32, n: usize) -> Vec<RequestOp> {
    (0..n)
        .map(|_| match rng.random_range(0..10) {
            0..=2 => RequestOp::Range(gen_range(rng, m)),
            3..=6 => RequestOp::Put(gen_put(rng, m)),
            7..=8 => RequestOp::DeleteRange(gen_delete(rng)),
            _ if depth < 2 => RequestOp::Txn(gen_txn(rng, m, depth + 1)),
            _ => RequestOp::Put(gen_put(rng, m)),
        })
        .collect()
}

fn gen_txn(rng: &mut StdRng, m: &Model, depth: u32) -> TxnRequest {
    let compare = (0..rng.random_range(0..3))
        .map(|_| gen_compare(rng, m))
        .collect();
    let ns = rng.random_range(0..4);
    let nf = rng.random_range(0..3);
    TxnRequest {
        compare,
        success: gen_ops(rng, m, depth, ns),
        failure: gen_ops(rng, m, depth, nf),
    }
}

fn gen_command(rng: &mut StdRng, m: &Model) -> Command {
    match rng.random_range(0..100) {
        0..=34 => Command::Put(gen_put(rng, m)),
        35..=46 => Command::DeleteRange(gen_delete(rng)),
        47..=74 => Command::Txn(gen_txn(rng, m, 0)),
        75..=81 => {
            let revision = match rng.random_range(0..4) {
                0 => m.compact + rng.random_range(-1..2),
                1 => m.rev() + 1,
                _ => rng.random_range(m.compact.max(0)..=m.rev()),
            };
            Command::Compact {
                revision,
                physical: rng.random_bool(0.5),
            }
        }
        82..=89 => Command::LeaseGrant {
            id: if rng.random_bool(0.6) {
                0
            } else {
                rng.random_range(1..6)
            },
            ttl_secs: if rng.random_bool(0.05) {
                LEASE_TTL_MAX_SECS + 1
            } else {
                rng.random_range(0..100)
            },
        },
        90..=95 => Command::LeaseRevoke {
            id: lease_id(rng, m),
        },
        _ => Command::LeaseCheckpoint {
            checkpoints: (0..rng.random_range(1..3))
                .map(|_| LeaseCheckpoint {
                    id: lease_id(rng, m),
                    remaining_ttl_secs: rng.random_range(0..50),
                })
                .collect(),
        },
    }
}

// ---------------------------------------------------------------------------------------
// The run

fn check_all_revisions(s: &KvStore, m: &Model, seed: u64) {
    let all = RangeRequest {
        key: Bytes::from_static(b"\0"),
        range_end: Bytes::from_static(b"\0"),
        ..Default::default()
    };
    for rev in m.compact.max(1)..=m.rev() {
        let req = RangeRequest {
            revision: rev,
            ..all.clone()
        };
        let now = &m.states[m.rev() as usize];
        assert_eq!(
            s.range(&req),
            m.range(&req, m.rev(), now),
            "seed {seed}: keyspace at {rev}"
        );
    }
    assert_eq!(
        s.len(),
        m.states[m.rev() as usize].len(),
        "seed {seed}: live keys"
    );
    let leases: Vec<_> = s
        .leases()
        .iter()
        .map(|l| (l.id, l.ttl_secs, l.remaining_ttl_secs))
        .collect();
    let want: Vec<_> = m
        .leases
        .iter()
        .map(|(&id, &(ttl, rem))| (id, ttl, rem))
        .collect();
    assert_eq!(leases, want, "seed {seed}: leases");
    for &id in m.leases.keys() {
        assert_eq!(
            s.lease(id).unwrap().keys,
            m.lease_keys(id),
            "seed {seed}: keys of lease {id}"
        );
    }
}

/// How much of the interesting ground a run covered.
#[derive(Debug, Default)]
struct Coverage {
    applied: usize,
    refused: usize,
    txns_writing_several_keys: usize,
    nested_txns_applied: usize,
    compactions: usize,
    revokes_deleting_keys: usize,
    history_events: usize,
}

fn run(seed: u64, steps: usize, cov: &mut Coverage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = KvStore::new();
    let mut m = Model::new();
    for step in 0..steps {
        match rng.random_range(0..100) {
            0..=69 => {
                let cmd = gen_command(&mut rng, &m);
                let got = s.apply(&cmd);
                let want = m.apply(&cmd);
                assert_eq!(got, want, "seed {seed} step {step}: {cmd:?}");
                match (&cmd, &got) {
                    (_, Err(_)) => cov.refused += 1,
                    (Command::Txn(t), Ok(a)) => {
                        cov.applied += 1;
                        if a.events.len() > 1 {
                            cov.txns_writing_several_keys += 1;
                        }
                        let CommandResult::Txn(r) = &a.result else {
                            unreachable!()
                        };
                        if r.responses.iter().any(|r| matches!(r, ResponseOp::Txn(_)))
                            && !t.compare.is_empty()
                        {
                            cov.nested_txns_applied += 1;
                        }
                    }
                    (Command::Compact { .. }, Ok(_)) => {
                        cov.applied += 1;
                        cov.compactions += 1;
                    }
                    (Command::LeaseRevoke { .. }, Ok(a)) => {
                        cov.applied += 1;
                        if !a.events.is_empty() {
                            cov.revokes_deleting_keys += 1;
                        }
                    }
                    (_, Ok(_)) => cov.applied += 1,
                }
                assert_eq!(s.revision(), m.rev(), "seed {seed} step {step}");
            }
            70..=84 => {
                let req = gen_range(&mut rng, &m);
                let now = &m.states[m.rev() as usize];
                assert_eq!(
                    s.range(&req),
                    m.range(&req, m.rev(), now),
                    "seed {seed} step {step}: {req:?}"
                );
            }
            85..=89 => {
                let t = gen_txn(&mut rng, &m, 0);
                if t.is_read_only() {
                    let mut probe = Model {
                        states: m.states.clone(),
                        compact: m.compact,
                        leases: m.leases.clone(),
                        next_lease_id: m.next_lease_id,
                        events: vec![],
                    };
                    let want = probe
                        .apply(&Command::Txn(t.clone()))
                        .map(|a| match a.result {
                            CommandResult::Txn(r) => r,
                            _ => unreachable!(),
                        });
                    assert_eq!(s.txn_read(&t), want, "seed {seed} step {step}: {t:?}");
                }
            }
            90..=97 => {
                let (key, range_end) = key_range(&mut rng);
                let req = HistoryRequest {
                    key: if key.is_empty() {
                        Bytes::from_static(b"\0")
                    } else {
                        key
                    },
                    range_end,
                    start_revision: rng.random_range(m.compact.max(1) - 1..=m.rev() + 1),
                    events_max: rng.random_range(1..6),
                };
                let got = s.history(&req);
                assert_eq!(got, m.history(&req), "seed {seed} step {step}: {req:?}");
                cov.history_events += got.map_or(0, |b| b.events.len());
            }
            _ => {
                let snap = s.snapshot();
                let restored = KvStore::restore(&snap).expect("restores");
                assert_eq!(
                    restored, s,
                    "seed {seed} step {step}: restored store differs"
                );
                assert_eq!(
                    restored.snapshot(),
                    snap,
                    "seed {seed} step {step}: re-encoding differs"
                );
                s = restored;
            }
        }
        if step % 25 == 0 {
            check_all_revisions(&s, &m, seed);
        }
    }
    check_all_revisions(&s, &m, seed);
}

#[test]
fn the_store_agrees_with_the_model() {
    let seeds: u64 = std::env::var("KV_MODEL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut cov = Coverage::default();
    for seed in 0..seeds {
        run(seed, 300, &mut cov);
    }
    eprintln!("{cov:?}");
    // The generator must keep exercising the interesting cases.
    let per_seed = |n: usize| n as u64 * 1000 / seeds;
    assert!(
        per_seed(cov.applied) > 60_000 && per_seed(cov.refused) > 10_000,
        "{cov:?}"
    );
    assert!(per_seed(cov.txns_writing_several_keys) > 2_000, "{cov:?}");
    assert!(per_seed(cov.nested_txns_applied) > 1_000, "{cov:?}");
    assert!(per_seed(cov.compactions) > 2_000, "{cov:?}");
    assert!(per_seed(cov.revokes_deleting_keys) > 500, "{cov:?}");
    assert!(per_seed(cov.history_events) > 10_000, "{cov:?}");
}
