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

/// The payload (without the checksum) for `state` taken at `header`.
pub fn encode_payload(header: &SnapshotHeader, state: &[u8]) -> Vec<u8> {
    let head = postcard::to_stdvec(header).expect("in-memory encoding cannot fail");
    let mut out = Vec::with_capacity(MAGIC.len() + 20 + head.len() + state.len() + BLOCK_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(state);
    out.resize(out.len().div_ceil(BLOCK_BYTES) * BLOCK_BYTES, 0);
    out
}

/// The SHA-256 trailer of `payload`.
pub fn checksum(payload: &[u8]) -> [u8; CHECKSUM_BYTES] {
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

    fn file(state: &[u8]) -> Vec<u8> {
        let header = SnapshotHeader {
            cluster_id: 1,
            member_id: 2,
            applied_index: 3,
            applied_term: 4,
            revision: 5,
        };
        let mut f = encode_payload(&header, state);
        let sum = checksum(&f);
        f.extend_from_slice(&sum);
        f
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
