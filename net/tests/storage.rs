//! Durable file storage: round trips, torn tails, corruption, power cuts, disk full and fuzzed
//! logs. Every random test is seeded.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sextant_net::core::{
    ConfState, Config, Entry, EntryPayload, HardState, Index, Raft, Snapshot, SnapshotMeta, Term,
};
use sextant_net::storage::{
    FaultInjector, FileStorage, OpenError, Recovered, StorageOptions, TornTail, WriteError,
};

// ----- a model of what the storage must return -----

#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    hs: HardState,
    snap: Option<Snapshot>,
    entries: Vec<Entry>,
}

impl Model {
    fn append(&mut self, hs: Option<HardState>, snap: Option<&Snapshot>, entries: &[Entry]) {
        if let Some(s) = snap {
            self.snap = Some(s.clone());
            self.entries.clear();
        }
        if let Some(first) = entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend_from_slice(entries);
        }
        if let Some(hs) = hs {
            self.hs = hs;
        }
    }

    fn save_snapshot(&mut self, s: &Snapshot) {
        self.entries.retain(|e| e.index > s.meta.index);
        self.snap = Some(s.clone());
    }

    fn snap_index(&self) -> Index {
        self.snap.as_ref().map_or(0, |s| s.meta.index)
    }

    fn last(&self) -> (Index, Term) {
        match (self.entries.last(), &self.snap) {
            (Some(e), _) => (e.index, e.term),
            (None, Some(s)) => (s.meta.index, s.meta.term),
            (None, None) => (0, 0),
        }
    }

    fn term_at(&self, i: Index) -> Term {
        if i == self.snap_index() {
            return self.snap.as_ref().map_or(0, |s| s.meta.term);
        }
        self.entries
            .iter()
            .find(|e| e.index == i)
            .map(|e| e.term)
            .expect("index in the log")
    }
}

fn observed(r: &Recovered) -> Model {
    assert_eq!(
        r.state.applied,
        r.state.snapshot.as_ref().map_or(0, |s| s.meta.index),
        "applied is the snapshot index"
    );
    Model {
        hs: r.state.hard_state,
        snap: r.state.snapshot.clone(),
        entries: r.state.entries.clone(),
    }
}

fn entry(index: Index, term: Term, rng: &mut StdRng) -> Entry {
    let len = rng.random_range(0..40);
    let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    Entry {
        term,
        index,
        payload: EntryPayload::Normal(Bytes::from(data)),
    }
}

fn snapshot(index: Index, term: Term, data: &[u8]) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            conf: ConfState::with_voters([1, 2, 3]),
        },
        data: Bytes::copy_from_slice(data),
    }
}

/// One write to the storage.
#[derive(Clone, Debug)]
enum Op {
    Append(Option<HardState>, Option<Snapshot>, Vec<Entry>),
    SaveSnapshot(Snapshot),
}

/// Generates writes that respect what the Raft core hands out: entries replace only
/// uncommitted suffixes, terms never decrease, snapshots cover committed entries, installed
/// snapshots lie beyond the log.
struct Workload {
    rng: StdRng,
    model: Model,
    term: Term,
    commit: Index,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Workload {
            rng: StdRng::seed_from_u64(seed),
            model: Model::default(),
            term: 1,
            commit: 0,
        }
    }

    fn next(&mut self, allow_save: bool) -> Op {
        let rng = &mut self.rng;
        let snap = self.model.snap_index();
        let (last, _) = self.model.last();
        let roll = rng.random_range(0..100);
        if allow_save && roll < 6 && self.commit > snap {
            let index = rng.random_range(snap + 1..=self.commit);
            let data = format!("state machine at {index}");
            return Op::SaveSnapshot(snapshot(index, self.model.term_at(index), data.as_bytes()));
        }
        if rng.random_bool(0.1) {
            self.term += 1;
        }
        let install = (roll >= 97).then(|| {
            self.term += 1;
            let index = last + rng.random_range(1..6);
            snapshot(
                index,
                self.term,
                format!("from leader at {index}").as_bytes(),
            )
        });
        let (base, last) = match &install {
            Some(s) => (s.meta.index, s.meta.index),
            None => (snap.max(self.commit), last),
        };
        let entries = if rng.random_bool(0.8) {
            let from = rng.random_range(base + 1..=last + 1);
            let n = rng.random_range(1..6);
            (from..from + n).map(|i| entry(i, self.term, rng)).collect()
        } else {
            Vec::new()
        };
        let new_last = entries.last().map_or(last, |e| e.index);
        if let Some(s) = &install {
            self.commit = s.meta.index;
        }
        // The core hands out a hard state with every term change, and every write has
        // something in it.
        let force_hs = install.is_some() || entries.is_empty() || self.term != self.model.hs.term;
        let hs = (force_hs || rng.random_bool(0.6)).then(|| {
            self.commit = rng.random_range(self.commit..=new_last.max(self.commit));
            HardState {
                term: self.term,
                vote: Some(rng.random_range(1..4)),
                commit: self.commit,
            }
        });
        Op::Append(hs, install, entries)
    }

    /// The next write, applied to `storage` and the model.
    fn step(&mut self, storage: &mut FileStorage, allow_save: bool) -> Op {
        let op = self.next(allow_save);
        match &op {
            Op::Append(hs, snap, entries) => {
                storage.append(*hs, snap.as_ref(), entries).unwrap();
                self.model.append(*hs, snap.as_ref(), entries);
            }
            Op::SaveSnapshot(s) => {
                storage.save_snapshot(s).unwrap();
                self.model.save_snapshot(s);
            }
        }
        op
    }
}

fn opts(segment_bytes: u64) -> StorageOptions {
    StorageOptions {
        segment_bytes,
        ..StorageOptions::default()
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn truncate(path: &Path, to: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(to)
        .unwrap();
}

/// Total bytes of all segment files.
fn wal_bytes(dir: &Path) -> u64 {
    segments(dir).iter().map(|p| len(p)).sum()
}

fn reopen(dir: &Path, o: StorageOptions) -> (FileStorage, Recovered) {
    FileStorage::open(dir, o).unwrap_or_else(|e| panic!("reopen failed: {e}"))
}

/// The recovered state is one the core accepts.
fn assert_core_accepts(r: &Recovered) {
    Raft::new(Config::new(1), r.state.clone())
        .unwrap_or_else(|e| panic!("core refuses the recovered state: {e:?}"));
}

// ----- round trips -----

#[test]
fn missing_dir_is_created_and_starts_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/node1");
    let (_s, r) = reopen(&dir, StorageOptions::default());
    assert_eq!(observed(&r), Model::default());
    assert!(r.repaired_tail.is_none());
    assert!(dir.join("FORMAT").is_file());
    assert_eq!(segments(&dir).len(), 1);
    // An existing empty directory (a fresh volume) is initialised too.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let (_s, r) = reopen(&empty, StorageOptions::default());
    assert_eq!(observed(&r), Model::default());
}

#[test]
fn round_trip_with_replacement_rotation_snapshots_and_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = Workload::new(1);
    let (mut s, _) = reopen(dir, opts(700));
    let mut max_segments = 0;
    let mut compactions = 0;
    for round in 0..8 {
        for _ in 0..60 {
            w.step(&mut s, true);
            if w.rng.random_bool(0.5) {
                s.sync().unwrap();
            }
            max_segments = max_segments.max(segments(dir).len());
            if w.rng.random_bool(0.05) && w.model.snap_index() > 0 {
                let before = segments(dir).len();
                s.compact(w.model.snap_index()).unwrap();
                compactions += usize::from(segments(dir).len() < before);
            }
        }
        s.sync().unwrap();
        drop(s);
        let (s2, r) = reopen(dir, opts(700));
        assert_eq!(observed(&r), w.model, "round {round}");
        assert!(r.repaired_tail.is_none());
        assert_core_accepts(&r);
        assert_eq!(s2.last_index(), w.model.last().0);
        s = s2;
    }
    assert!(
        max_segments >= 5,
        "rotation exercised ({max_segments} segments)"
    );
    assert!(
        compactions >= 2,
        "compaction exercised ({compactions} times)"
    );
    // Only the latest few snapshot files are kept.
    assert!(fs::read_dir(dir.join("snap")).unwrap().count() <= 3);
}

#[test]
fn suffix_replacement_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let (mut s, _) = reopen(tmp.path(), opts(200));
    let mut m = Model::default();
    let batches: Vec<Vec<Entry>> = vec![
        (1..=10).map(|i| entry(i, 1, &mut rng)).collect(),
        (6..=8).map(|i| entry(i, 2, &mut rng)).collect(), // cuts 9..10 and replaces 6..8
        (9..=12).map(|i| entry(i, 2, &mut rng)).collect(),
        (3..=3).map(|i| entry(i, 3, &mut rng)).collect(), // log is now 1..=3
    ];
    for b in &batches {
        s.append(None, None, b).unwrap();
        m.append(None, None, b);
    }
    let hs = HardState {
        term: 3,
        vote: Some(2),
        commit: 2,
    };
    s.append(Some(hs), None, &[]).unwrap();
    m.append(Some(hs), None, &[]);
    s.sync().unwrap();
    drop(s);
    let (_, r) = reopen(tmp.path(), opts(200));
    assert_eq!(observed(&r), m);
    assert_eq!(r.state.entries.len(), 3);
    assert!(segments(tmp.path()).len() > 1, "rotated");
    assert_core_accepts(&r);
}

#[test]
fn snapshot_from_leader_replaces_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let (mut s, _) = reopen(tmp.path(), StorageOptions::default());
    let old: Vec<Entry> = (1..=20).map(|i| entry(i, 1, &mut rng)).collect();
    s.append(None, None, &old).unwrap();
    let snap = snapshot(50, 3, b"leader state");
    let after: Vec<Entry> = (51..=55).map(|i| entry(i, 3, &mut rng)).collect();
    let hs = HardState {
        term: 3,
        vote: None,
        commit: 50,
    };
    s.append(Some(hs), Some(&snap), &after).unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, r) = reopen(tmp.path(), StorageOptions::default());
    assert_eq!(r.state.snapshot.as_ref(), Some(&snap));
    assert_eq!(r.state.entries, after);
    assert_eq!(r.state.hard_state, hs);
    assert_eq!(r.state.applied, 50);
    assert_core_accepts(&r);
}

#[test]
fn compaction_removes_whole_segments_below_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = StdRng::seed_from_u64(4);
    let (mut s, _) = reopen(dir, opts(300));
    let all: Vec<Entry> = (1..=100).map(|i| entry(i, 1, &mut rng)).collect();
    for chunk in all.chunks(5) {
        s.append(None, None, chunk).unwrap();
    }
    let hs = HardState {
        term: 1,
        vote: Some(1),
        commit: 100,
    };
    s.append(Some(hs), None, &[]).unwrap();
    s.sync().unwrap();
    let before = segments(dir).len();
    // Compaction needs a snapshot covering the index.
    let err = s.compact(10).unwrap_err();
    assert!(matches!(err, WriteError::Invalid(_)), "{err}");
    assert!(
        s.failure().is_none(),
        "a refused compaction does not poison"
    );
    let snap = snapshot(80, 1, b"sm@80");
    s.save_snapshot(&snap).unwrap();
    s.compact(80).unwrap();
    let after = segments(dir).len();
    assert!(after < before, "{before} -> {after} segments");
    assert!(matches!(s.compact(90), Err(WriteError::Invalid(_))));
    drop(s);
    let (_, r) = reopen(dir, opts(300));
    assert_eq!(r.state.snapshot, Some(snap));
    assert_eq!(r.state.entries, all[80..].to_vec());
    assert_eq!(r.state.hard_state, hs);
    assert_core_accepts(&r);
}

/// The snapshot data handed back to the core is the file's, memory-mapped: equal to what was
/// saved (taken locally or received from the leader), still readable after the file is
/// removed as old, and refused when the file is not a snapshot file.
#[test]
fn saved_snapshots_are_handed_back_mapped_from_their_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = StdRng::seed_from_u64(9);
    let o = StorageOptions {
        keep_snapshots: 1,
        ..opts(4096)
    };
    let (mut s, _) = reopen(dir, o.clone());
    let all: Vec<Entry> = (1..=30).map(|i| entry(i, 1, &mut rng)).collect();
    s.append(None, None, &all).unwrap();
    s.sync().unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let first = snapshot(10, 1, &data);
    s.save_snapshot(&first).unwrap();
    let mapped = s.mapped_snapshot(&first.meta).unwrap();
    assert_eq!(mapped, first.data);
    assert_ne!(
        mapped.as_ptr(),
        first.data.as_ptr(),
        "a copy, not the caller's buffer"
    );

    // A newer snapshot and compaction remove the first file; its mapping stays valid.
    let second = snapshot(20, 1, b"second");
    s.save_snapshot(&second).unwrap();
    s.compact(20).unwrap();
    let snap_files = fs::read_dir(dir.join("snap")).unwrap().count();
    assert_eq!(snap_files, 1, "the first snapshot file was removed");
    assert_eq!(mapped, first.data);
    assert_eq!(s.mapped_snapshot(&second.meta).unwrap(), second.data);
    assert!(s.mapped_snapshot(&first.meta).is_err(), "its file is gone");

    // One received from the leader, appended with the log that follows it.
    let leader = snapshot(40, 2, b"leader state");
    let hs = HardState {
        term: 2,
        vote: None,
        commit: 40,
    };
    s.append(Some(hs), Some(&leader), &[]).unwrap();
    s.sync().unwrap();
    assert_eq!(s.mapped_snapshot(&leader.meta).unwrap(), leader.data);

    // A file that is not a snapshot (damaged header) is refused, not mapped.
    let path = fs::read_dir(dir.join("snap"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("0000000000000028-"))
        .unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[3] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let err = s.mapped_snapshot(&leader.meta).unwrap_err();
    assert!(err.contains("not a snapshot file"), "{err}");
}

// ----- torn tails -----

#[test]
fn truncated_tail_is_cut_and_reported() {
    for seed in 0..40 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut w = Workload::new(100 + seed);
        let (mut s, _) = reopen(dir, StorageOptions::default());
        for _ in 0..w.rng.random_range(1..30) {
            w.step(&mut s, true);
        }
        s.sync().unwrap();
        let before = w.model.clone();
        let seg = segments(dir).pop().unwrap();
        let l0 = len(&seg);
        // The last record: a batch with entries, so it has some bytes to cut.
        let (last, _) = w.model.last();
        let from = last + 1;
        let batch: Vec<Entry> = (from..from + 3)
            .map(|i| entry(i, w.term, &mut w.rng))
            .collect();
        s.append(None, None, &batch).unwrap();
        s.sync().unwrap();
        drop(s);
        let l1 = len(&seg);
        let cut = w.rng.random_range(l0 + 1..l1);
        truncate(&seg, cut);

        let (mut s, r) = reopen(dir, StorageOptions::default());
        assert_eq!(observed(&r), before, "seed {seed}");
        let torn = r.repaired_tail.clone().expect("repair reported");
        assert_eq!(
            torn,
            TornTail {
                file: seg.clone(),
                offset: l0,
                dropped_bytes: cut - l0,
                removed_file: false,
                reason: torn.reason.clone(),
            }
        );
        assert!(torn.to_string().contains(&l0.to_string()));
        assert_eq!(len(&seg), l0, "file cut back to the last whole record");
        // Writing continues after the cut and survives the next reopen.
        s.append(None, None, &batch).unwrap();
        s.sync().unwrap();
        drop(s);
        let (_, r) = reopen(dir, StorageOptions::default());
        assert!(r.repaired_tail.is_none());
        let mut expect = before;
        expect.append(None, None, &batch);
        assert_eq!(observed(&r), expect);
    }
}

#[test]
fn torn_new_segment_is_removed() {
    for seed in 0..10 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut w = Workload::new(200 + seed);
        let (mut s, _) = reopen(dir, opts(400));
        while segments(dir).len() < 3 {
            w.step(&mut s, false);
        }
        s.sync().unwrap();
        drop(s);
        // Keep only a prefix of the newest segment's magic and header, as if the crash came
        // while the segment was being created: the records in it are lost (they were never
        // synced in this scenario), everything before stays.
        let newest = segments(dir).pop().unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        truncate(&newest, rng.random_range(0..20));
        let (_, r) = reopen(dir, opts(400));
        let torn = r.repaired_tail.clone().expect("reported");
        assert!(torn.removed_file);
        assert_eq!(torn.file, newest);
        assert!(!newest.exists());
        assert_core_accepts(&r);
    }
}

// ----- corruption -----

/// Builds a log, syncing after every write, and returns the record boundaries as
/// `(segment, offset)` of each record's start.
fn log_with_boundaries(
    dir: &Path,
    seed: u64,
    segment_bytes: u64,
    writes: usize,
) -> Vec<(PathBuf, u64)> {
    let mut w = Workload::new(seed);
    let (mut s, _) = reopen(dir, opts(segment_bytes));
    let mut starts = Vec::new();
    for _ in 0..writes {
        let before: Vec<(PathBuf, u64)> = segments(dir)
            .into_iter()
            .map(|p| (p.clone(), len(&p)))
            .collect();
        w.step(&mut s, false);
        s.sync().unwrap();
        let after = segments(dir);
        let seg = after.last().unwrap().clone();
        let start = match before.iter().find(|(p, _)| *p == seg) {
            Some((_, l)) => *l,
            // A new segment: the record follows the magic and the header record.
            None => header_end(&seg),
        };
        starts.push((seg, start));
    }
    starts
}

/// Where the header record of a segment ends: 8-byte magic, 12-byte frame header, payload.
fn header_end(seg: &Path) -> u64 {
    let bytes = fs::read(seg).unwrap();
    let payload = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as u64;
    8 + 12 + payload
}

#[test]
fn flipped_byte_in_the_middle_is_refused_with_file_and_offset() {
    for seed in 0..30 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let segment_bytes = if seed % 2 == 0 { 1 << 20 } else { 600 };
        let starts = log_with_boundaries(dir, 300 + seed, segment_bytes, 25);
        let mut rng = StdRng::seed_from_u64(seed);
        // A record that is followed by another one (in its own or a later segment).
        let k = rng.random_range(0..starts.len() - 1);
        let (seg, start) = starts[k].clone();
        let end = match starts.get(k + 1) {
            Some((p, s)) if *p == seg => *s,
            _ => len(&seg),
        };
        let at = rng.random_range(start..end);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[at as usize] ^= 1 << rng.random_range(0..8);
        fs::write(&seg, &bytes).unwrap();
        let sizes: Vec<u64> = segments(dir).iter().map(|p| len(p)).collect();

        let err = FileStorage::open(dir, opts(segment_bytes)).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, OpenError::Corrupt { .. }),
            "seed {seed}: {msg}"
        );
        assert!(
            msg.contains(&seg.display().to_string()),
            "seed {seed}: {msg}"
        );
        assert!(
            msg.contains(&format!("offset {start}")),
            "seed {seed}: expected offset {start}: {msg}"
        );
        let after: Vec<u64> = segments(dir).iter().map(|p| len(p)).collect();
        assert_eq!(sizes, after, "a refused open changes nothing");
    }
}

#[test]
fn damaged_non_last_segment_is_refused_even_at_its_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    log_with_boundaries(dir, 7, 500, 40);
    let segs = segments(dir);
    assert!(segs.len() >= 3);
    let victim = &segs[1];
    let l = len(victim);
    truncate(victim, l - 3);
    let err = FileStorage::open(dir, opts(500)).unwrap_err().to_string();
    assert!(err.contains(&victim.display().to_string()), "{err}");
    assert!(err.contains("not the last"), "{err}");
}

// ----- power cut -----

#[test]
fn power_cut_keeps_everything_synced_and_a_prefix_of_the_rest() {
    let (mut torn, mut partial) = (0, 0);
    for seed in 0..40 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let segment_bytes = [1 << 20, 900, 300][seed as usize % 3];
        let mut w = Workload::new(400 + seed);
        let (mut s, _) = reopen(dir, opts(segment_bytes));
        for _ in 0..w.rng.random_range(0..40) {
            w.step(&mut s, true);
            if w.rng.random_bool(0.3) {
                s.sync().unwrap();
            }
        }
        s.sync().unwrap();
        let synced_files: Vec<(PathBuf, u64)> = segments(dir)
            .into_iter()
            .map(|p| (p.clone(), len(&p)))
            .collect();
        let synced_total = wal_bytes(dir);
        // Unsynced writes; remember the state and the unsynced byte count after each.
        let mut states = vec![(0u64, w.model.clone())];
        for _ in 0..w.rng.random_range(1..15) {
            w.step(&mut s, false);
            states.push((wal_bytes(dir) - synced_total, w.model.clone()));
        }
        drop(s);
        // The cut: the synced bytes survive, then a random prefix of the unsynced stream
        // (the tail of the synced segment, then the new segments in order).
        let unsynced = states.last().unwrap().0;
        let mut keep = w.rng.random_range(0..=unsynced);
        let cut = keep;
        for seg in segments(dir) {
            let base = synced_files
                .iter()
                .find(|(p, _)| *p == seg)
                .map_or(0, |f| f.1);
            let extra = len(&seg) - base;
            if base == 0 && keep == 0 {
                fs::remove_file(&seg).unwrap();
                continue;
            }
            let take = extra.min(keep);
            truncate(&seg, base + take);
            keep -= take;
        }
        let (_, r) = FileStorage::open(dir, opts(segment_bytes))
            .unwrap_or_else(|e| panic!("seed {seed}: open after power cut failed: {e}"));
        // Exactly the records wholly before the cut survive.
        let expect = &states.iter().rev().find(|(end, _)| *end <= cut).unwrap().1;
        assert_eq!(
            &observed(&r),
            expect,
            "seed {seed}, cut {cut} of {unsynced}"
        );
        assert_core_accepts(&r);
        torn += usize::from(r.repaired_tail.is_some());
        partial += usize::from(*expect != w.model);
    }
    // Not vacuous: most cuts tear a record, many lose some unsynced writes.
    assert!(
        torn >= 20 && partial >= 20,
        "{torn} torn, {partial} partial"
    );
}

// ----- disk full and fsync failures -----

#[test]
fn disk_full_poisons_and_reopen_recovers_the_synced_state() {
    let mut torn = 0;
    for seed in 0..30 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let faults = FaultInjector::new();
        let o = StorageOptions {
            segment_bytes: 500,
            faults: Some(faults.clone()),
            ..StorageOptions::default()
        };
        let mut w = Workload::new(500 + seed);
        let (mut s, _) = reopen(dir, o.clone());
        for _ in 0..w.rng.random_range(0..20) {
            w.step(&mut s, true);
        }
        s.sync().unwrap();
        let synced = w.model.clone();
        let mut candidates = vec![synced.clone()];
        faults.disk_full_after(w.rng.random_range(0..600));
        // Write until the disk is full.
        let err = loop {
            let op = w.next(true);
            let result = match &op {
                Op::Append(hs, snap, entries) => s.append(*hs, snap.as_ref(), entries),
                Op::SaveSnapshot(snap) => s.save_snapshot(snap),
            };
            match result {
                Ok(()) => {
                    match &op {
                        Op::Append(hs, snap, entries) => {
                            w.model.append(*hs, snap.as_ref(), entries)
                        }
                        Op::SaveSnapshot(snap) => w.model.save_snapshot(snap),
                    }
                    candidates.push(w.model.clone());
                    if w.rng.random_bool(0.2) {
                        match s.sync() {
                            Ok(()) => candidates = vec![w.model.clone()],
                            Err(e) => break e,
                        }
                    }
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(err, WriteError::Io { .. }), "seed {seed}: {err}");
        assert!(err.to_string().contains("no space left"), "{err}");
        assert!(s.failure().is_some());
        // Poisoned: every later write fails, naming the first failure.
        let again = s.append(Some(HardState::default()), None, &[]).unwrap_err();
        assert!(matches!(again, WriteError::Poisoned(_)));
        assert!(
            again.to_string().starts_with("storage failed earlier: "),
            "{again}"
        );
        assert!(again.to_string().contains("no space left"), "{again}");
        assert!(matches!(s.sync(), Err(WriteError::Poisoned(_))));
        assert!(matches!(s.compact(0), Err(WriteError::Poisoned(_))));
        drop(s);
        faults.heal();
        let (_, r) = reopen(dir, o);
        let got = observed(&r);
        assert!(
            candidates.contains(&got),
            "seed {seed}: reopened state is not the synced state or a later appended one"
        );
        assert_core_accepts(&r);
        let leftovers = fs::read_dir(dir.join("snap"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0, "temporary files cleaned up");
        torn += usize::from(r.repaired_tail.is_some());
    }
    assert!(torn >= 10, "partial writes exercised ({torn})");
}

#[test]
fn failed_fsync_poisons_and_is_never_reported_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = FaultInjector::new();
    let o = StorageOptions {
        faults: Some(faults.clone()),
        ..StorageOptions::default()
    };
    let mut w = Workload::new(600);
    let (mut s, _) = reopen(dir, o.clone());
    for _ in 0..10 {
        w.step(&mut s, false);
    }
    s.sync().unwrap();
    let synced = w.model.clone();
    w.step(&mut s, false);
    let appended = w.model.clone();
    faults.fail_syncs(true);
    let err = s.sync().unwrap_err();
    assert!(matches!(err, WriteError::Io { .. }), "{err}");
    assert!(
        matches!(s.sync(), Err(WriteError::Poisoned(_))),
        "no second chance"
    );
    let snap = snapshot(1, 1, b"x");
    assert!(matches!(
        s.save_snapshot(&snap),
        Err(WriteError::Poisoned(_))
    ));
    drop(s);
    faults.heal();
    let (_, r) = reopen(dir, o);
    let got = observed(&r);
    assert!(got == synced || got == appended);
}

// ----- fuzzed logs through open -----

#[test]
fn fuzzed_logs_open_to_an_error_or_a_valid_prefix() {
    let mut rng = StdRng::seed_from_u64(700);
    let (mut prefixes, mut refused) = (0, 0);
    for case in 0..150 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let segment_bytes = if case % 2 == 0 { 1 << 20 } else { 400 };
        let mut w = Workload::new(rng.random());
        let (mut s, _) = reopen(dir, opts(segment_bytes));
        let mut states = vec![w.model.clone()];
        for _ in 0..rng.random_range(1..25) {
            w.step(&mut s, true);
            states.push(w.model.clone());
        }
        s.sync().unwrap();
        drop(s);
        let segs = segments(dir);
        let victim = &segs[rng.random_range(0..segs.len())];
        let mut bytes = fs::read(victim).unwrap();
        match rng.random_range(0..4) {
            0 => {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 => bytes.truncate(rng.random_range(0..bytes.len())),
            2 => {
                let i = rng.random_range(0..bytes.len());
                let n = rng.random_range(1..32).min(bytes.len() - i);
                rng.fill(&mut bytes[i..i + n]);
            }
            _ => {
                bytes = (0..rng.random_range(0..200))
                    .map(|_| rng.random())
                    .collect()
            }
        }
        fs::write(victim, &bytes).unwrap();
        match FileStorage::open(dir, opts(segment_bytes)) {
            Ok((_, r)) => {
                let got = observed(&r);
                assert!(
                    states.contains(&got),
                    "case {case}: a state that never existed"
                );
                assert_core_accepts(&r);
                prefixes += 1;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused += 1;
            }
        }
    }
    assert!(
        prefixes > 10 && refused > 10,
        "{prefixes} prefixes, {refused} refused"
    );
}

// ----- the data directory -----

#[test]
fn foreign_and_wrong_version_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();

    let foreign = base.join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("notes.txt"), "hello").unwrap();
    let err = FileStorage::open(&foreign, StorageOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::NotOurs { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"), "{err}");

    let file = base.join("plain-file");
    fs::write(&file, "x").unwrap();
    assert!(matches!(
        FileStorage::open(&file, StorageOptions::default()),
        Err(OpenError::NotOurs { .. })
    ));

    let store = base.join("store");
    drop(reopen(&store, StorageOptions::default()));
    fs::write(store.join("FORMAT"), "sextant-storage format 2\n").unwrap();
    let err = FileStorage::open(&store, StorageOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::UnsupportedFormat { .. }), "{err}");
    assert!(err.to_string().contains("\"2\""), "{err}");
    fs::write(store.join("FORMAT"), "something else entirely").unwrap();
    assert!(matches!(
        FileStorage::open(&store, StorageOptions::default()),
        Err(OpenError::NotOurs { .. })
    ));
    fs::write(store.join("FORMAT"), "sextant-storage format 1\n").unwrap();

    fs::write(store.join("wal/junk.log"), "x").unwrap();
    let err = FileStorage::open(&store, StorageOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::UnexpectedFile { .. }), "{err}");
    fs::remove_file(store.join("wal/junk.log")).unwrap();
    fs::write(store.join("extra"), "x").unwrap();
    assert!(matches!(
        FileStorage::open(&store, StorageOptions::default()),
        Err(OpenError::UnexpectedFile { .. })
    ));
    fs::remove_file(store.join("extra")).unwrap();
    // Leftover temporary files from an interrupted atomic write are cleaned up.
    fs::write(store.join("FORMAT.tmp"), "half").unwrap();
    fs::write(
        store.join("snap/0000000000000001-0000000000000001.snap.tmp"),
        "half",
    )
    .unwrap();
    drop(reopen(&store, StorageOptions::default()));
    assert!(!store.join("FORMAT.tmp").exists());
    assert_eq!(fs::read_dir(store.join("snap")).unwrap().count(), 0);
}

#[test]
fn interrupted_initialisation_is_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n");
    drop(reopen(&dir, StorageOptions::default()));
    // As if the crash came before FORMAT was written, with the first segment half done.
    fs::remove_file(dir.join("FORMAT")).unwrap();
    let seg = segments(&dir).pop().unwrap();
    truncate(&seg, 11);
    let (_, r) = reopen(&dir, StorageOptions::default());
    assert_eq!(observed(&r), Model::default());
    assert!(dir.join("FORMAT").is_file());
    // But a store with data and no FORMAT file is not taken for one.
    let (mut s, _) = reopen(&dir, StorageOptions::default());
    s.append(
        Some(HardState {
            term: 1,
            vote: Some(1),
            commit: 0,
        }),
        None,
        &[],
    )
    .unwrap();
    s.sync().unwrap();
    drop(s);
    fs::remove_file(dir.join("FORMAT")).unwrap();
    assert!(matches!(
        FileStorage::open(&dir, StorageOptions::default()),
        Err(OpenError::NotOurs { .. })
    ));
}

#[test]
fn missing_segment_or_snapshot_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    log_with_boundaries(dir, 9, 400, 40);
    let segs = segments(dir);
    assert!(segs.len() >= 3);
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("moved-away");
    fs::rename(&segs[1], &moved).unwrap();
    let err = FileStorage::open(dir, opts(400)).unwrap_err();
    assert!(matches!(err, OpenError::Inconsistent { .. }), "{err}");
    fs::rename(&moved, &segs[1]).unwrap();

    let (mut s, r) = reopen(dir, opts(400));
    let m = observed(&r);
    let (last, _) = m.last();
    let next = last + 1;
    let term = m.hs.term;
    let mut rng = StdRng::seed_from_u64(9);
    let hs = HardState {
        term,
        vote: None,
        commit: next,
    };
    s.append(Some(hs), None, &[entry(next, term, &mut rng)])
        .unwrap();
    s.save_snapshot(&snapshot(next, term, b"sm")).unwrap();
    drop(s);
    let snap_file = dir.join(format!("snap/{next:016x}-{term:016x}.snap"));
    fs::remove_file(&snap_file).unwrap();
    let err = FileStorage::open(dir, opts(400)).unwrap_err();
    assert!(matches!(err, OpenError::Snapshot { .. }), "{err}");
    assert!(
        err.to_string().contains(&snap_file.display().to_string()),
        "{err}"
    );
}

#[test]
fn invalid_writes_are_refused_without_poisoning() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(10);
    let (mut s, _) = reopen(tmp.path(), StorageOptions::default());
    let e: Vec<Entry> = (1..=5).map(|i| entry(i, 2, &mut rng)).collect();
    s.append(None, None, &e).unwrap();
    let gap = [entry(8, 2, &mut rng)];
    assert!(matches!(
        s.append(None, None, &gap),
        Err(WriteError::Invalid(_))
    ));
    let older_term = [entry(6, 1, &mut rng)];
    assert!(matches!(
        s.append(None, None, &older_term),
        Err(WriteError::Invalid(_))
    ));
    assert!(matches!(
        s.save_snapshot(&snapshot(9, 2, b"")),
        Err(WriteError::Invalid(_))
    ));
    assert!(matches!(
        s.save_snapshot(&snapshot(3, 1, b"")),
        Err(WriteError::Invalid(_))
    ));
    assert!(s.failure().is_none());
    s.save_snapshot(&snapshot(3, 2, b"ok")).unwrap();
    assert!(matches!(
        s.save_snapshot(&snapshot(3, 2, b"")),
        Err(WriteError::Invalid(_))
    ));
    drop(s);
    let (_, r) = reopen(tmp.path(), StorageOptions::default());
    assert_eq!(r.state.entries, e[3..].to_vec());
}

// ----- preallocation -----

fn prealloc_opts(segment_bytes: u64, preallocate_bytes: u64) -> StorageOptions {
    StorageOptions {
        segment_bytes,
        preallocate_bytes,
        ..StorageOptions::default()
    }
}

/// Where the frames of a segment end: walks the frame headers (4-byte length, 12-byte
/// header) from after the 8-byte magic until a zero length or the end of the file.
fn frames_end(bytes: &[u8]) -> usize {
    let mut off = 8;
    while off + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        if len == 0 || off + 12 + len > bytes.len() {
            break;
        }
        off += 12 + len;
    }
    off
}

#[test]
fn preallocated_zeros_read_as_the_clean_end_of_the_log() {
    for seed in 0..20 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let o = prealloc_opts(1 << 20, 16 * 1024);
        let mut w = Workload::new(700 + seed);
        let (mut s, _) = reopen(dir, o.clone());
        for round in 0..3 {
            for _ in 0..w.rng.random_range(1..40) {
                w.step(&mut s, true);
                if w.rng.random_bool(0.3) {
                    s.sync().unwrap();
                    s.preallocate().unwrap();
                }
            }
            s.sync().unwrap();
            s.preallocate().unwrap();
            drop(s);
            let seg = segments(dir).pop().unwrap();
            let bytes = fs::read(&seg).unwrap();
            let end = frames_end(&bytes);
            assert!(
                bytes[end..].iter().all(|&b| b == 0),
                "seed {seed}: only zeros follow the records"
            );
            assert!(bytes.len() > end, "seed {seed}: space was preallocated");
            let (s2, r) = reopen(dir, o.clone());
            assert!(
                r.repaired_tail.is_none(),
                "seed {seed} round {round}: {:?}",
                r.repaired_tail
            );
            assert_eq!(observed(&r), w.model, "seed {seed} round {round}");
            assert_eq!(len(&seg), bytes.len() as u64, "opening changes nothing");
            s = s2;
        }
    }
}

#[test]
fn older_segments_are_cut_back_to_their_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = prealloc_opts(3000, 8192);
    let mut w = Workload::new(800);
    let (mut s, _) = reopen(dir, o.clone());
    while segments(dir).len() < 6 {
        w.step(&mut s, false);
        s.sync().unwrap();
        s.preallocate().unwrap();
    }
    drop(s);
    let segs = segments(dir);
    let last = fs::read(segs.last().unwrap()).unwrap();
    assert!(
        last.len() > frames_end(&last),
        "the active segment is preallocated"
    );
    for seg in &segs[..segs.len() - 1] {
        let bytes = fs::read(seg).unwrap();
        assert_eq!(frames_end(&bytes), bytes.len(), "{}", seg.display());
    }
    let (_, r) = reopen(dir, o);
    assert_eq!(observed(&r), w.model);
}

#[test]
fn power_cut_losing_unsynced_pages_in_any_order_keeps_a_prefix() {
    let (mut lost, mut behind_a_lost_page) = (0, 0);
    for seed in 0..40 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let o = prealloc_opts(4 << 20, 1 << 20);
        let mut w = Workload::new(900 + seed);
        let (mut s, _) = reopen(dir, o.clone());
        for _ in 0..w.rng.random_range(0..30) {
            w.step(&mut s, true);
        }
        s.sync().unwrap();
        s.preallocate().unwrap();
        let seg = segments(dir).pop().unwrap();
        let synced = fs::read(&seg).unwrap();
        // Unsynced writes over several pages, all inside the preallocated space.
        let mut states = vec![w.model.clone()];
        let start = frames_end(&synced);
        while frames_end(&fs::read(&seg).unwrap()) < start + 5 * 4096 {
            w.step(&mut s, false);
            states.push(w.model.clone());
        }
        drop(s);
        assert_eq!(segments(dir).len(), 1);
        let written = fs::read(&seg).unwrap();
        assert_eq!(
            written.len(),
            synced.len(),
            "no write went past the preallocation"
        );
        // The crash: each page that changed reached the disk, or did not, independently.
        let mut image = synced.clone();
        let mut rng = StdRng::seed_from_u64(seed);
        for (k, page) in written.chunks(4096).enumerate() {
            let at = k * 4096;
            if page != &synced[at..at + page.len()] && rng.random_bool(0.6) {
                image[at..at + page.len()].copy_from_slice(page);
            }
        }
        fs::write(&seg, &image).unwrap();
        let (_, r) = FileStorage::open(dir, o.clone())
            .unwrap_or_else(|e| panic!("seed {seed}: open after the crash failed: {e}"));
        let got = observed(&r);
        assert!(
            states.contains(&got),
            "seed {seed}: the recovered log is not a prefix of the writes"
        );
        assert_core_accepts(&r);
        lost += usize::from(got != w.model);
        let reason = r.repaired_tail.as_ref().map_or("", |t| t.reason.as_str());
        behind_a_lost_page += usize::from(reason.contains("never written"));
        // What was kept is whole again: the next writes survive a clean reopen.
        let (mut s, _) = reopen(dir, o.clone());
        let mut w2 = Workload::new(seed);
        w2.model = got.clone();
        w2.term = got
            .hs
            .term
            .max(got.entries.last().map_or(0, |e| e.term))
            .max(1);
        w2.commit = got.hs.commit;
        for _ in 0..5 {
            w2.step(&mut s, false);
        }
        s.sync().unwrap();
        drop(s);
        let (_, r) = reopen(dir, o);
        assert_eq!(
            observed(&r),
            w2.model,
            "seed {seed}: writes after the repair"
        );
    }
    assert!(
        lost >= 15 && behind_a_lost_page >= 5,
        "{lost} lost writes, {behind_a_lost_page} with records behind a lost page"
    );
}

#[test]
fn preallocation_on_a_full_disk_is_skipped_without_harm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = FaultInjector::new();
    let o = StorageOptions {
        faults: Some(faults.clone()),
        ..prealloc_opts(1 << 20, 64 * 1024)
    };
    let mut w = Workload::new(1000);
    let (mut s, _) = reopen(dir, o.clone());
    for _ in 0..20 {
        w.step(&mut s, false);
    }
    s.sync().unwrap();
    let seg = segments(dir).pop().unwrap();
    let before = len(&seg);
    faults.disk_full_after(1000);
    assert_eq!(s.preallocate().unwrap(), 0);
    assert!(
        s.failure().is_none(),
        "a failed preallocation poisons nothing"
    );
    assert_eq!(
        len(&seg),
        before,
        "the partial preallocation was given back"
    );
    faults.heal();
    assert_eq!(s.preallocate().unwrap(), 0, "not retried in this segment");
    for _ in 0..5 {
        w.step(&mut s, false);
    }
    s.sync().unwrap();
    drop(s);
    let (_, r) = reopen(dir, o);
    assert!(r.repaired_tail.is_none());
    assert_eq!(observed(&r), w.model);
}
