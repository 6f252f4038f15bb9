//! The snapshot file format, as the `Snapshot` RPC streams it and `sextant snapshot restore`
//! reads it. Like etcd's, the payload is a whole number of 512-byte blocks followed by the
//! SHA-256 of the payload (etcd's clients check `size % 512 == 32` to know a checksum is
//! there, and `etcdutl snapshot restore` verifies it):
//!
//! ```text
//! "sextant-snapshot" | format u32 LE | header length u64 LE | header (postcard)
//!   | state length u64 LE | state (KvStore::snapshot) | zero padding to 512-byte blocks
//!   | SHA-256 of everything before it (32 bytes)
//! ```

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

const MAGIC: &[u8; 16] = b"sextant-snapshot";
/// The format this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;
const BLOCK_BYTES: usize = 512;
/// Bytes of the trailing SHA-256.
pub const CHECKSUM_BYTES: usize = 32;

/// Where the state came from (informational; restore starts a new cluster).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub cluster_id: u64,
    pub member_id: u64,
    /// The Raft position of the last entry applied to the state.
    pub applied_index: u64,
    pub applied_term: u64,
    pub revision: i64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotFileError {
    #[error("{size_bytes} bytes is not a snapshot with a SHA-256 checksum (the size must be a multiple of 512 plus 32)")]
    NoChecksum { size_bytes: usize },
    #[error("SHA-256 checksum mismatch: the file is damaged or incomplete")]
    ChecksumMismatch,
    #[error("not a sextant snapshot (no `sextant-snapshot` header)")]
    NotASnapshot,
    #[error("snapshot format {found}, but this build reads format {SNAPSHOT_FORMAT}")]
    UnsupportedFormat { found: u32 },
    #[error("snapshot is truncated or malformed: {0}")]
    Malformed(String),
}

/// What goes before and after the state in the payload: magic, format, header and state
/// length; then the zero padding to whole blocks.
fn payload_frame(header: &SnapshotHeader, state_len: usize) -> (Vec<u8>, Vec<u8>) {
    let encoded = postcard::to_stdvec(header).expect("in-memory encoding cannot fail");
    let mut head = Vec::with_capacity(MAGIC.len() + 20 + encoded.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    head.extend_from_slice(&(encoded.len() as u64).to_le_bytes());
    head.extend_from_slice(&encoded);
    head.extend_from_slice(&(state_len as u64).to_le_bytes());
    let payload = head.len() + state_len;
    let padding = vec![0; payload.div_ceil(BLOCK_BYTES) * BLOCK_BYTES - payload];
    (head, padding)
}

/// A snapshot file produced a chunk at a time, hashed as it goes: the payload in chunks of at
/// most `chunk_bytes`, then the checksum as the last chunk. Streaming a state of hundreds of
/// megabytes this way neither copies it whole nor hashes it in one go.
pub struct FileChunks {
    /// Head, state and padding: the payload.
    parts: [Bytes; 3],
    part: usize,
    offset: usize,
    chunk_bytes: usize,
    payload_remaining: usize,
    /// `None` once the checksum went out.
    hasher: Option<Sha256>,
}

/// One chunk of a snapshot file.
#[derive(Debug, PartialEq, Eq)]
pub struct FileChunk {
    pub bytes: Vec<u8>,
    /// Payload bytes after this chunk (zero for the last payload chunk and the checksum).
    pub payload_remaining: usize,
}

impl FileChunks {
    pub fn new(header: &SnapshotHeader, state: Bytes, chunk_bytes: usize) -> FileChunks {
        let (head, padding) = payload_frame(header, state.len());
        let payload_remaining = head.len() + state.len() + padding.len();
        FileChunks {
            parts: [head.into(), state, padding.into()],
            part: 0,
            offset: 0,
            chunk_bytes: chunk_bytes.max(1),
            payload_remaining,
            hasher: Some(Sha256::new()),
        }
    }
}

impl Iterator for FileChunks {
    type Item = FileChunk;

    fn next(&mut self) -> Option<FileChunk> {
        let hasher = self.hasher.as_mut()?;
        if self.payload_remaining == 0 {
            let sum: [u8; CHECKSUM_BYTES] = self.hasher.take().expect("checked").finalize().into();
            return Some(FileChunk {
                bytes: sum.to_vec(),
                payload_remaining: 0,
            });
        }
        let mut bytes = Vec::with_capacity(self.chunk_bytes.min(self.payload_remaining));
        while bytes.len() < self.chunk_bytes && self.part < self.parts.len() {
            let part = &self.parts[self.part][self.offset..];
            let n = part.len().min(self.chunk_bytes - bytes.len());
            bytes.extend_from_slice(&part[..n]);
            self.offset += n;
            if self.offset == self.parts[self.part].len() {
                self.part += 1;
                self.offset = 0;
            }
        }
        hasher.update(&bytes);
        self.payload_remaining -= bytes.len();
        Some(FileChunk {
            bytes,
            payload_remaining: self.payload_remaining,
        })
    }
}

/// The SHA-256 trailer of `payload`.
fn checksum(payload: &[u8]) -> [u8; CHECKSUM_BYTES] {
    Sha256::digest(payload).into()
}

/// Verifies a whole file (payload and trailer) and returns its header and state.
pub fn decode(file: &[u8]) -> Result<(SnapshotHeader, Bytes), SnapshotFileError> {
    let size_bytes = file.len();
    if size_bytes < CHECKSUM_BYTES || size_bytes % BLOCK_BYTES != CHECKSUM_BYTES {
        return Err(SnapshotFileError::NoChecksum { size_bytes });
    }
    let (payload, sum) = file.split_at(size_bytes - CHECKSUM_BYTES);
    if checksum(payload)[..] != *sum {
        return Err(SnapshotFileError::ChecksumMismatch);
    }
    let mut rest = payload
        .strip_prefix(MAGIC.as_slice())
        .ok_or(SnapshotFileError::NotASnapshot)?;
    let found = u32::from_le_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes"));
    if found != SNAPSHOT_FORMAT {
        return Err(SnapshotFileError::UnsupportedFormat { found });
    }
    let head_len = read_len(&mut rest)?;
    let header: SnapshotHeader = postcard::from_bytes(take(&mut rest, head_len)?)
        .map_err(|e| SnapshotFileError::Malformed(format!("header: {e}")))?;
    let state_len = read_len(&mut rest)?;
    let state = Bytes::copy_from_slice(take(&mut rest, state_len)?);
    if rest.iter().any(|b| *b != 0) {
        return Err(SnapshotFileError::Malformed("data after the state".into()));
    }
    Ok((header, state))
}

fn read_len(rest: &mut &[u8]) -> Result<usize, SnapshotFileError> {
    let n = u64::from_le_bytes(take(rest, 8)?.try_into().expect("8 bytes"));
    usize::try_from(n).map_err(|_| SnapshotFileError::Malformed(format!("length {n}")))
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], SnapshotFileError> {
    if rest.len() < n {
        return Err(SnapshotFileError::Malformed(format!(
            "{n} bytes wanted, {} left",
            rest.len()
        )));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SnapshotHeader {
        SnapshotHeader {
            cluster_id: 1,
            member_id: 2,
            applied_index: 3,
            applied_term: 4,
            revision: 5,
        }
    }

    /// The whole file in one allocation: the oracle for [`FileChunks`].
    fn file(state: &[u8]) -> Vec<u8> {
        let (head, padding) = payload_frame(&header(), state.len());
        let mut f = [&head[..], state, &padding[..]].concat();
        let sum = checksum(&f);
        f.extend_from_slice(&sum);
        f
    }

    #[test]
    fn chunks_make_the_same_file() {
        let header = header();
        for state_len in [0, 1, 400, 511, 512, 3000] {
            let state: Vec<u8> = (0..state_len).map(|i| (i % 251) as u8).collect();
            let whole = file(&state);
            for chunk_bytes in [1, 7, 64, 512, 100_000] {
                let chunks: Vec<FileChunk> =
                    FileChunks::new(&header, Bytes::from(state.clone()), chunk_bytes).collect();
                let payload = whole.len() - CHECKSUM_BYTES;
                let mut sent = 0;
                for c in &chunks[..chunks.len() - 1] {
                    assert!(!c.bytes.is_empty() && c.bytes.len() <= chunk_bytes);
                    sent += c.bytes.len();
                    assert_eq!(c.payload_remaining, payload - sent);
                }
                assert_eq!(chunks.last().unwrap().bytes.len(), CHECKSUM_BYTES);
                let joined: Vec<u8> = chunks.into_iter().flat_map(|c| c.bytes).collect();
                assert_eq!(
                    joined, whole,
                    "{state_len} bytes of state in chunks of {chunk_bytes}"
                );
            }
        }
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let f = file(b"state bytes");
        assert_eq!(f.len() % 512, 32);
        let (h, state) = decode(&f).unwrap();
        assert_eq!((h.revision, &state[..]), (5, &b"state bytes"[..]));
        let mut damaged = f.clone();
        damaged[40] ^= 1;
        assert_eq!(decode(&damaged), Err(SnapshotFileError::ChecksumMismatch));
        assert!(matches!(
            decode(&f[..f.len() - 1]),
            Err(SnapshotFileError::NoChecksum { .. })
        ));
    }
}
