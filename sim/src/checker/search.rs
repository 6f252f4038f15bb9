//! The search for one partition: Wing & Gong's algorithm with Lowe's cache, as in Porcupine's
//! `checkSingle`, made resumable (so that partitions can take turns) and with one extra
//! pruning rule for observers (see [`Search`]).

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use super::model::{Model, Operation};

/// Limits shared by all partitions of one check.
#[derive(Debug)]
pub(crate) struct Budget {
    deadline: Option<Instant>,
    max_steps: Option<u64>,
    steps: u64,
    exhausted: bool,
}

/// How often (in search steps) the clock is read.
const CLOCK_EVERY: u64 = 1024;

impl Budget {
    pub(crate) fn new(time: Option<Duration>, max_steps: Option<u64>) -> Self {
        // A budget too large to add to `now` is no budget.
        let deadline = time.and_then(|d| Instant::now().checked_add(d));
        Budget {
            deadline,
            max_steps,
            steps: 0,
            exhausted: false,
        }
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted
    }

    /// Counts one step; returns `false` once the budget is used up.
    #[inline]
    fn tick(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        self.steps += 1;
        if let Some(max) = self.max_steps {
            if self.steps > max {
                self.exhausted = true;
                return false;
            }
        }
        if self.steps % CLOCK_EVERY == 0 {
            if let Some(deadline) = self.deadline {
                if Instant::now() >= deadline {
                    self.exhausted = true;
                    return false;
                }
            }
        }
        true
    }
}

/// How the search of one partition ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Linearizable,
    NotLinearizable,
}

/// What the search found so far. Operation numbers index the slice given to [`Search::new`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Findings {
    /// `None` while unfinished.
    pub(crate) status: Option<Status>,
    /// A complete linearization if linearizable, else the longest partial linearization found.
    pub(crate) linearization: Vec<usize>,
    /// The operations that could be linearized next after `linearization` (their call precedes
    /// the earliest pending return) but none of which led anywhere. Empty when linearizable.
    pub(crate) unplaceable: Vec<usize>,
    /// The operation whose return was reached without being able to linearize it.
    pub(crate) blocking: Option<usize>,
    /// Search steps used.
    pub(crate) steps: u64,
}

const HEAD: u32 = 0;

/// A 64-bit hasher for states (FxHash's mixing).
struct StateHasher(u64);

const SEED: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for StateHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(SEED);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        mix(self.0)
    }
}

/// SplitMix64's finalizer: a good avalanche for 64-bit values.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Gives every distinct state a number, so that the stack and the cache hold numbers.
struct Interner<S> {
    table: HashTable<u32>,
    states: Vec<S>,
    hashes: Vec<u64>,
}

impl<S: Hash + Eq> Interner<S> {
    fn new() -> Self {
        Interner {
            table: HashTable::new(),
            states: Vec::new(),
            hashes: Vec::new(),
        }
    }

    #[inline]
    fn intern(&mut self, state: S) -> u32 {
        let mut h = StateHasher(0);
        state.hash(&mut h);
        let hash = h.finish();
        let (states, hashes) = (&self.states, &self.hashes);
        if let Some(&id) = self.table.find(hash, |&i| {
            hashes[i as usize] == hash && states[i as usize] == state
        }) {
            return id;
        }
        let id = u32::try_from(self.states.len()).expect("fewer than 2^32 distinct states");
        self.states.push(state);
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.table.insert_unique(hash, id, |&i| hashes[i as usize]);
        id
    }
}

/// The (linearized operations, state) pairs already explored. A pair that was explored and is
/// not on the current path led to no linearization, so meeting it again prunes.
struct Cache {
    table: HashTable<(u64, u32)>,
    words: usize,
    bits: Vec<u64>,
    states: Vec<u32>,
}

impl Cache {
    fn new(words: usize) -> Self {
        Cache {
            table: HashTable::new(),
            words,
            bits: Vec::new(),
            states: Vec::new(),
        }
    }

    /// Inserts the pair unless present; returns whether it was inserted.
    #[inline]
    fn insert(&mut self, hash: u64, bits: &[u64], state: u32) -> bool {
        let words = self.words;
        let (stored_bits, states) = (&self.bits, &self.states);
        let found = self.table.find(hash, |&(h, i)| {
            let i = i as usize;
            h == hash && states[i] == state && stored_bits[i * words..(i + 1) * words] == *bits
        });
        if found.is_some() {
            return false;
        }
        let index = u32::try_from(self.states.len()).expect("fewer than 2^32 cache entries");
        self.bits.extend_from_slice(bits);
        self.states.push(state);
        self.table.insert_unique(hash, (hash, index), |&(h, _)| h);
        true
    }
}

#[derive(Clone, Copy)]
struct Frame {
    /// The call entry that was linearized.
    entry: u32,
    /// The state before it.
    state: u32,
    /// Linearized by the observer rule: the configuration below it fails if this one does.
    forced: bool,
    /// The scan pass it was linearized in (see [`Search::deferred`]).
    deferred: bool,
}

/// The search of one partition, which can run in slices.
///
/// The history becomes a doubly linked list of call and return entries in time order (a call
/// before a return at the same time; operations with an unknown outcome get a return after
/// every other entry, so they may take effect anywhere after their call, or at the very end,
/// which is the same as never). The search walks the list from the head: a call entry whose
/// operation the model accepts in the current state is *lifted* (its call and return are
/// unlinked) and pushed on a stack, and the walk restarts at the head; reaching a return entry
/// means its operation should have been linearized already, so the search backtracks (pops,
/// unlifts, and goes on with the entry after the one popped). Each (set of linearized
/// operations, state) pair is remembered, and meeting one again prunes. The history is
/// linearizable when the list empties, and not linearizable when the stack is empty at a
/// return entry.
///
/// Beyond Porcupine: an *observer* (see [`Model::is_observer`]) that the model accepts in the
/// current configuration is linearized at once without trying alternatives: moving an observer
/// to the front of any linearization of the remaining operations keeps it valid (it is
/// accepted now, changes nothing, and no remaining operation returned before its call), so the
/// configuration is linearizable exactly when the one with the observer linearized is. When
/// that fails, the configuration below fails too, so backtracking goes on through it. And the
/// candidates of a configuration are tried in two passes, those with a known outcome first:
/// an operation with an unknown outcome never has to come before anything, so trying it last
/// finds linearizations sooner (every candidate is still tried, so this only reorders).
pub(crate) struct Search<'a, M: Model> {
    model: &'a M,
    ops: Vec<&'a Operation<M::Input, M::Output>>,
    /// Entry 0 is the head, `1..=2n` the events, `2n + 1` the tail.
    next: Vec<u32>,
    prev: Vec<u32>,
    /// `info[e]` = operation << 1 | is_return.
    info: Vec<u32>,
    ret_entry: Vec<u32>,
    tail: u32,
    observer: Vec<bool>,
    /// Whether the operation's outcome is unknown.
    unknown: Vec<bool>,
    zobrist: Vec<u64>,
    bits: Vec<u64>,
    zob: u64,
    cache: Cache,
    states: Interner<M::State>,
    calls: Vec<Frame>,
    state: u32,
    /// The entry to look at next.
    e: u32,
    /// Whether the configuration is new (observers not tried yet).
    fresh: bool,
    /// The scan of a configuration's candidates goes in two passes: first the operations with
    /// a known outcome, then (`deferred`) those with an unknown outcome, which need not be
    /// linearized before anything and are best tried last.
    deferred: bool,
    findings: Findings,
    best_len: Option<usize>,
}

impl<'a, M: Model> Search<'a, M> {
    /// Prepares the search of `ops` (observers with an unknown outcome already removed).
    pub(crate) fn new(model: &'a M, ops: Vec<&'a Operation<M::Input, M::Output>>) -> Self {
        let n = ops.len();
        assert!(
            n < (u32::MAX / 2 - 2) as usize,
            "too many operations in one partition"
        );
        let mut order: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, false, i as u32));
            let ret = match (op.output.as_ref(), op.ret) {
                (Some(_), Some(r)) => r.max(op.call),
                _ => u64::MAX,
            };
            order.push((ret, true, i as u32));
        }
        order.sort_unstable();

        let tail = (2 * n + 1) as u32;
        let mut next: Vec<u32> = (1..=tail + 1).collect();
        let mut prev: Vec<u32> = (0..=tail).map(|i| i.wrapping_sub(1)).collect();
        next[tail as usize] = tail;
        prev[0] = 0;
        let mut info = vec![0u32; 2 * n + 2];
        let mut ret_entry = vec![0u32; n];
        for (k, &(_, is_ret, op)) in order.iter().enumerate() {
            let e = k + 1;
            info[e] = (op << 1) | u32::from(is_ret);
            if is_ret {
                ret_entry[op as usize] = e as u32;
            }
        }
        let observer = ops
            .iter()
            .map(|op| model.is_observer(&op.input, op.output.as_ref()))
            .collect();
        let unknown = ops.iter().map(|op| op.output.is_none()).collect();
        let zobrist = (0..n as u64)
            .map(|i| mix(i.wrapping_add(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let words = n.div_ceil(64);
        let mut states = Interner::new();
        let state = states.intern(model.init());
        let first = next[HEAD as usize];
        let findings = Findings {
            status: (n == 0).then_some(Status::Linearizable),
            ..Findings::default()
        };
        Search {
            model,
            ops,
            next,
            prev,
            info,
            ret_entry,
            tail,
            observer,
            unknown,
            zobrist,
            bits: vec![0; words],
            zob: 0,
            cache: Cache::new(words),
            states,
            calls: Vec::new(),
            state,
            e: first,
            fresh: true,
            deferred: false,
            findings,
            best_len: None,
        }
    }

    /// What was found so far.
    pub(crate) fn findings(&self) -> &Findings {
        &self.findings
    }

    #[inline]
    fn op_of(&self, e: u32) -> usize {
        (self.info[e as usize] >> 1) as usize
    }

    #[inline]
    fn is_call(&self, e: u32) -> bool {
        self.info[e as usize] & 1 == 0
    }

    #[inline]
    fn lift(&mut self, e: u32) {
        let r = self.ret_entry[self.op_of(e)];
        for x in [e as usize, r as usize] {
            let (p, q) = (self.prev[x], self.next[x]);
            self.next[p as usize] = q;
            self.prev[q as usize] = p;
        }
    }

    #[inline]
    fn unlift(&mut self, e: u32) {
        let r = self.ret_entry[self.op_of(e)];
        for x in [r, e] {
            let (p, q) = (self.prev[x as usize], self.next[x as usize]);
            self.next[p as usize] = x;
            self.prev[q as usize] = x;
        }
    }

    /// Linearizes the operation of call entry `e`, leading to `state`, unless that pair was
    /// explored already; returns whether it did.
    #[inline]
    fn try_push(&mut self, e: u32, state: u32, forced: bool) -> bool {
        let op = self.op_of(e);
        self.bits[op / 64] |= 1 << (op % 64);
        let z = self.zob ^ self.zobrist[op];
        let hash = mix(z ^ u64::from(state).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        if !self.cache.insert(hash, &self.bits, state) {
            self.bits[op / 64] &= !(1 << (op % 64));
            return false;
        }
        self.zob = z;
        self.calls.push(Frame {
            entry: e,
            state: self.state,
            forced,
            deferred: self.deferred,
        });
        self.state = state;
        self.lift(e);
        self.fresh = true;
        true
    }

    fn current_linearization(&self) -> Vec<usize> {
        self.calls.iter().map(|f| self.op_of(f.entry)).collect()
    }

    /// Runs at most `slice` steps (and within `budget`). Returns the status once finished.
    pub(crate) fn run(&mut self, slice: u64, budget: &mut Budget) -> Option<Status> {
        if let Some(status) = self.findings.status {
            return Some(status);
        }
        let mut left = slice;
        loop {
            if self.next[HEAD as usize] == self.tail {
                self.findings.linearization = self.current_linearization();
                self.findings.unplaceable.clear();
                self.findings.blocking = None;
                self.findings.status = Some(Status::Linearizable);
                return self.findings.status;
            }
            if left == 0 || !budget.tick() {
                return None;
            }
            left -= 1;
            self.findings.steps += 1;

            // `true` when the current configuration is known to fail.
            let mut dead_end = false;
            if self.fresh {
                // A new configuration: linearize an accepted observer first, if there is one.
                self.fresh = false;
                let mut x = self.next[HEAD as usize];
                let mut forced = None;
                while self.is_call(x) {
                    let op = self.op_of(x);
                    if self.observer[op] {
                        let o = self.ops[op];
                        let state = &self.states.states[self.state as usize];
                        if self
                            .model
                            .step(state, &o.input, o.output.as_ref())
                            .is_some()
                        {
                            forced = Some(x);
                            break;
                        }
                    }
                    x = self.next[x as usize];
                }
                match forced {
                    // An observer leaves the state as it is.
                    Some(x) if self.try_push(x, self.state, true) => continue,
                    Some(_) => dead_end = true,
                    None => {
                        self.e = self.next[HEAD as usize];
                        self.deferred = false;
                    }
                }
            }

            if !dead_end {
                let e = self.e;
                if self.is_call(e) {
                    let op = self.op_of(e);
                    if !self.observer[op] && self.unknown[op] == self.deferred {
                        let o = self.ops[op];
                        let state = &self.states.states[self.state as usize];
                        if let Some(s) = self.model.step(state, &o.input, o.output.as_ref()) {
                            let s = self.states.intern(s);
                            if self.try_push(e, s, false) {
                                continue;
                            }
                        }
                    }
                    self.e = self.next[e as usize];
                    continue;
                }
                // A return entry: its operation should have been linearized by now. First try
                // the candidates with an unknown outcome, if any.
                if !self.deferred {
                    let mut x = self.next[HEAD as usize];
                    while x != e && !self.unknown[self.op_of(x)] {
                        x = self.next[x as usize];
                    }
                    if x != e {
                        self.deferred = true;
                        self.e = x;
                        continue;
                    }
                }
                if self.best_len.is_none_or(|l| self.calls.len() > l) {
                    self.best_len = Some(self.calls.len());
                    self.findings.linearization = self.current_linearization();
                    let mut unplaceable = Vec::new();
                    let mut x = self.next[HEAD as usize];
                    while x != e {
                        unplaceable.push(self.op_of(x));
                        x = self.next[x as usize];
                    }
                    unplaceable.sort_unstable();
                    self.findings.unplaceable = unplaceable;
                    self.findings.blocking = Some(self.op_of(e));
                }
            }

            // Backtrack: undo the last linearized operation and go on after it. Undoing an
            // observer linearized by the observer rule means the configuration below fails too.
            loop {
                let Some(frame) = self.calls.pop() else {
                    self.findings.status = Some(Status::NotLinearizable);
                    return self.findings.status;
                };
                let op = self.op_of(frame.entry);
                self.state = frame.state;
                self.bits[op / 64] &= !(1 << (op % 64));
                self.zob ^= self.zobrist[op];
                self.unlift(frame.entry);
                if !frame.forced {
                    self.e = self.next[frame.entry as usize];
                    self.deferred = frame.deferred;
                    break;
                }
            }
        }
    }
}
