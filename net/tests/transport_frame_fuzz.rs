//! Fuzz-style test of the transport's frame decoder: thousands of seeded cases of random bytes
//! and of mutated valid frame streams, fed in random pieces. The decoder must return valid
//! messages or an error, never panic, and never allocate much: a counting global allocator
//! records the largest single allocation of the whole test binary.
//!
//! Replay or widen with `SEXTANT_FUZZ_SEED=<n>` and `SEXTANT_FUZZ_CASES=<n>`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use sextant_net::core::{
    ConfChange, ConfChangeKind, ConfChangeSingle, ConfState, ConfTransition, Entry, EntryPayload,
    Message, MessageBody, ReadId, SnapshotMeta,
};
use sextant_net::transport::frame::{encode_frame, FrameDecoder, LEN_BYTES};
use sextant_net::transport::{FrameError, DEFAULT_FRAME_BYTES_MAX};

struct Counting;

static LARGEST_ALLOC: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// No input in this test exceeds a few KiB; serde caps speculative preallocation for a
/// declared sequence length at 1 MiB, so anything near a declared frame length (up to 4 GiB)
/// would show up here.
const ALLOC_BOUND_BYTES: usize = 2 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn random_bytes(rng: &mut StdRng, max_len: usize) -> Bytes {
    let mut b = vec![0u8; rng.random_range(0..=max_len)];
    rng.fill_bytes(&mut b);
    b.into()
}

fn random_set(rng: &mut StdRng) -> BTreeSet<u64> {
    (0..rng.random_range(0..4))
        .map(|_| rng.random_range(1..8))
        .collect()
}

fn random_payload(rng: &mut StdRng) -> EntryPayload {
    match rng.random_range(0..3) {
        0 => EntryPayload::Empty,
        1 => EntryPayload::Normal(random_bytes(rng, 64)),
        _ => EntryPayload::ConfChange(ConfChange {
            changes: (0..rng.random_range(0..3))
                .map(|_| ConfChangeSingle {
                    kind: [
                        ConfChangeKind::AddVoter,
                        ConfChangeKind::AddLearner,
                        ConfChangeKind::Remove,
                    ][rng.random_range(0..3)],
                    node: rng.random(),
                })
                .collect(),
            transition: [
                ConfTransition::Auto,
                ConfTransition::JointAuto,
                ConfTransition::JointExplicit,
            ][rng.random_range(0..3)],
            context: random_bytes(rng, 16),
        }),
    }
}

/// A message of any kind with random fields (the decoder does not care about meaning).
fn random_message(rng: &mut StdRng) -> Message {
    let body = match rng.random_range(0..14) {
        0 => MessageBody::PreVote {
            last_index: rng.random(),
            last_term: rng.random(),
        },
        1 => MessageBody::PreVoteResp {
            reject: rng.random(),
        },
        2 => MessageBody::Vote {
            last_index: rng.random(),
            last_term: rng.random(),
            transfer: rng.random(),
        },
        3 => MessageBody::VoteResp {
            reject: rng.random(),
        },
        4 => MessageBody::Append {
            session: rng.random(),
            prev_index: rng.random(),
            prev_term: rng.random(),
            entries: (0..rng.random_range(0..4))
                .map(|_| Entry {
                    term: rng.random(),
                    index: rng.random(),
                    payload: random_payload(rng),
                })
                .collect(),
            commit: rng.random(),
        },
        5 => MessageBody::AppendResp {
            session: rng.random(),
            reject: rng.random(),
            index: rng.random(),
            hint_index: rng.random(),
            hint_term: rng.random(),
        },
        6 => MessageBody::Heartbeat {
            session: rng.random(),
            commit: rng.random(),
            round: rng.random(),
        },
        7 => MessageBody::HeartbeatResp {
            session: rng.random(),
            round: rng.random(),
        },
        8 => MessageBody::InstallSnapshot {
            session: rng.random(),
            meta: SnapshotMeta {
                index: rng.random(),
                term: rng.random(),
                conf: ConfState {
                    voters: random_set(rng),
                    voters_outgoing: random_set(rng),
                    learners: random_set(rng),
                    learners_next: random_set(rng),
                    auto_leave: rng.random(),
                },
            },
            total_bytes: rng.random(),
            offset: rng.random(),
            chunk: random_bytes(rng, 256),
        },
        9 => MessageBody::InstallSnapshotResp {
            session: rng.random(),
            snapshot_index: rng.random(),
            next_offset: rng.random(),
            done: rng.random(),
            reject: rng.random(),
        },
        10 => MessageBody::TimeoutNow,
        11 => MessageBody::ReadIndex {
            id: ReadId {
                node: rng.random(),
                epoch: rng.random(),
                seq: rng.random(),
            },
        },
        12 => MessageBody::ReadIndexResp {
            id: ReadId {
                node: rng.random(),
                epoch: rng.random(),
                seq: rng.random(),
            },
            index: rng.random::<bool>().then(|| rng.random()),
        },
        _ => MessageBody::Propose {
            epoch: rng.random(),
            seq: rng.random(),
            payloads: (0..rng.random_range(0..3))
                .map(|_| random_payload(rng))
                .collect(),
        },
    };
    Message {
        from: rng.random(),
        to: rng.random(),
        term: rng.random(),
        body,
    }
}

/// Applies one random mutation to a byte stream.
fn mutate(rng: &mut StdRng, wire: &mut Vec<u8>, frame_starts: &[usize]) {
    let len = wire.len();
    match rng.random_range(0..8) {
        0 if len > 0 => {
            let i = rng.random_range(0..len);
            wire[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.random_range(0..len);
            wire[i] = rng.random();
        }
        2 => {
            let i = rng.random_range(0..=len);
            wire.insert(i, rng.random());
        }
        3 if len > 0 => {
            let i = rng.random_range(0..len);
            wire.remove(i);
        }
        4 => wire.truncate(rng.random_range(0..=len)),
        // Rewrite a length prefix: random, just over the limit, the maximum, zero, or off by one.
        _ if !frame_starts.is_empty() => {
            let at = frame_starts[rng.random_range(0..frame_starts.len())];
            if at + LEN_BYTES <= wire.len() {
                let old = u32::from_be_bytes(wire[at..at + LEN_BYTES].try_into().unwrap());
                let new = match rng.random_range(0..6) {
                    0 => rng.random(),
                    1 => DEFAULT_FRAME_BYTES_MAX + 1,
                    2 => u32::MAX,
                    3 => 0,
                    4 => old.wrapping_add(1),
                    _ => old.wrapping_sub(1),
                };
                wire[at..at + LEN_BYTES].copy_from_slice(&new.to_be_bytes());
            }
        }
        _ => wire.push(rng.random()),
    }
}

/// Feeds `wire` to a decoder in random pieces and returns the messages decoded before the
/// end of input or the first error.
fn decode_in_pieces(rng: &mut StdRng, wire: &[u8], max: u32) -> (Vec<Message>, Option<FrameError>) {
    let mut dec = FrameDecoder::new(max);
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let n = rng.random_range(1..=rest.len().min(97));
        dec.push(&rest[..n]);
        rest = &rest[n..];
        assert!(dec.buffered() <= wire.len());
        assert!(
            dec.capacity() <= 2 * wire.len().max(64),
            "decoder buffer grew past its input"
        );
        loop {
            match dec.next_frame() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => {
                    // An error sticks: the stream is out of sync for good.
                    assert_eq!(dec.next_frame(), Err(e.clone()));
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}

#[test]
fn frame_decoder_survives_random_and_mutated_input() {
    let seed = env_u64("SEXTANT_FUZZ_SEED", 0x5e47_a417);
    let cases = env_u64("SEXTANT_FUZZ_CASES", 4000);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut outcomes = [0u64; 3]; // [clean, error, valid-but-changed]

    for case in 0..cases {
        // Random bytes, against the default limit and a small one.
        let garbage = random_bytes(&mut rng, 2048);
        for max in [DEFAULT_FRAME_BYTES_MAX, 256] {
            let (msgs, _err) = decode_in_pieces(&mut rng, &garbage, max);
            for m in msgs {
                // Whatever decodes is a real message: it encodes back within the limit.
                let mut again = Vec::new();
                encode_frame(&m, max, &mut again).expect("decoded message re-encodes");
            }
        }

        // Valid streams, then mutated.
        let originals: Vec<Message> = (0..rng.random_range(1..6))
            .map(|_| random_message(&mut rng))
            .collect();
        let mut wire = Vec::new();
        let mut starts = Vec::new();
        for m in &originals {
            starts.push(wire.len());
            encode_frame(m, DEFAULT_FRAME_BYTES_MAX, &mut wire).unwrap();
        }
        let (clean, err) = decode_in_pieces(&mut rng, &wire, DEFAULT_FRAME_BYTES_MAX);
        assert_eq!(err, None, "case {case}: valid stream rejected");
        assert_eq!(clean, originals, "case {case}: valid stream changed");

        for _ in 0..rng.random_range(1..4) {
            mutate(&mut rng, &mut wire, &starts);
        }
        let (msgs, err) = decode_in_pieces(&mut rng, &wire, DEFAULT_FRAME_BYTES_MAX);
        if err.is_some() {
            outcomes[1] += 1;
        } else if msgs == originals {
            outcomes[0] += 1;
        } else {
            outcomes[2] += 1;
        }
    }

    let largest = LARGEST_ALLOC.load(Ordering::Relaxed);
    eprintln!(
        "seed {seed:#x}, {cases} cases: mutated streams unchanged {}, rejected {}, \
         decoded differently {}; largest allocation {largest} bytes",
        outcomes[0], outcomes[1], outcomes[2]
    );
    assert!(
        outcomes[1] > cases / 4,
        "mutations should mostly be caught: {outcomes:?}"
    );
    assert!(
        largest <= ALLOC_BOUND_BYTES,
        "largest single allocation {largest} bytes"
    );
}

#[test]
fn declared_lengths_up_to_u32_max_are_never_allocated() {
    for len in [DEFAULT_FRAME_BYTES_MAX + 1, u32::MAX / 2, u32::MAX] {
        let mut dec = FrameDecoder::new(DEFAULT_FRAME_BYTES_MAX);
        dec.push(&len.to_be_bytes());
        dec.push(&[0xAB; 100]);
        assert_eq!(
            dec.next_frame(),
            Err(FrameError::TooLarge {
                len,
                max: DEFAULT_FRAME_BYTES_MAX
            })
        );
    }
    // A length within the limit whose bytes never come: the buffer holds only what arrived.
    let mut dec = FrameDecoder::new(DEFAULT_FRAME_BYTES_MAX);
    dec.push(&DEFAULT_FRAME_BYTES_MAX.to_be_bytes());
    dec.push(&[0; 1000]);
    assert_eq!(dec.next_frame(), Ok(None));
    assert!(dec.capacity() < 64 << 10, "capacity {}", dec.capacity());
    assert!(LARGEST_ALLOC.load(Ordering::Relaxed) <= ALLOC_BOUND_BYTES);
}
