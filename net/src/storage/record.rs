//! Record framing: a 12-byte header (payload length, payload checksum, header checksum) and
//! the payload.
//!
//! ```text
//! offset  size  field
//!      0     4  payload length, u32 little-endian (1 ..= MAX_RECORD_BYTES)
//!      4     4  crc32c(payload), u32 little-endian
//!      8     4  crc32c(bytes 0..8), u32 little-endian: protects the length against garbage
//!     12     n  payload
//! ```
//!
//! A length is only trusted once its header checksum matches, so a garbage length never makes
//! the reader skip over valid data or allocate wildly. Zero bytes (a file extended but never
//! written) never form a valid header: crc32c of eight zero bytes is not zero.

use thiserror::Error;

/// Bytes of the frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 12;
/// Largest payload a record may have (1 GiB): a sanity bound on top of the header checksum.
pub(crate) const MAX_RECORD_BYTES: usize = 1 << 30;

/// Why no valid frame starts at some offset.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub(crate) enum FrameError {
    #[error("record header cut short ({available} of {FRAME_HEADER_LEN} bytes before the end of the file)")]
    ShortHeader { available: usize },
    #[error("record header checksum mismatch")]
    BadHeader,
    #[error("record length {len} is out of range (1..={MAX_RECORD_BYTES})")]
    BadLength { len: u32 },
    #[error("record payload cut short ({available} of {len} bytes before the end of the file)")]
    ShortPayload { len: u32, available: usize },
    #[error("record payload checksum mismatch ({len} bytes)")]
    BadPayload { len: u32 },
}

impl FrameError {
    /// Where, after a frame failing at `offset`, another valid frame could start: past the
    /// payload when the header (and so the length) is trustworthy, else at the next byte.
    /// `None` when the failing frame runs to the end of the buffer.
    pub fn resume_at(&self, offset: usize) -> Option<usize> {
        match self {
            FrameError::ShortHeader { .. } | FrameError::ShortPayload { .. } => None,
            FrameError::BadHeader | FrameError::BadLength { .. } => Some(offset + 1),
            FrameError::BadPayload { len } => Some(offset + FRAME_HEADER_LEN + *len as usize),
        }
    }
}

fn header_crc(head: &[u8]) -> u32 {
    crc32c::crc32c(&head[..8])
}

/// Fills in the frame header of `buf`, whose first `FRAME_HEADER_LEN` bytes are reserved
/// and the rest is the payload. The caller has checked the payload size.
pub(crate) fn seal_frame(buf: &mut [u8]) {
    debug_assert!(buf.len() > FRAME_HEADER_LEN);
    let len = (buf.len() - FRAME_HEADER_LEN) as u32;
    let pcrc = crc32c::crc32c(&buf[FRAME_HEADER_LEN..]);
    buf[0..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&pcrc.to_le_bytes());
    let hcrc = header_crc(&buf[..8]);
    buf[8..12].copy_from_slice(&hcrc.to_le_bytes());
}

/// Appends one complete frame around `payload` to `out`.
#[cfg(test)]
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    out.extend_from_slice(payload);
    seal_frame(&mut out[start..]);
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

/// The frame starting at `offset` of `buf`: its payload and the offset just past it.
pub(crate) fn read_frame(buf: &[u8], offset: usize) -> Result<(&[u8], usize), FrameError> {
    let rest = buf.get(offset..).unwrap_or(&[]);
    if rest.len() < FRAME_HEADER_LEN {
        return Err(FrameError::ShortHeader {
            available: rest.len(),
        });
    }
    let len = u32_at(rest, 0);
    let pcrc = u32_at(rest, 4);
    if u32_at(rest, 8) != header_crc(rest) {
        return Err(FrameError::BadHeader);
    }
    if len == 0 || len as usize > MAX_RECORD_BYTES {
        return Err(FrameError::BadLength { len });
    }
    let body = &rest[FRAME_HEADER_LEN..];
    if body.len() < len as usize {
        return Err(FrameError::ShortPayload {
            len,
            available: body.len(),
        });
    }
    let payload = &body[..len as usize];
    if crc32c::crc32c(payload) != pcrc {
        return Err(FrameError::BadPayload { len });
    }
    Ok((payload, offset + FRAME_HEADER_LEN + len as usize))
}

/// The first offset at or after `from` where a complete, valid frame starts, if any. Used to
/// tell a torn tail (nothing valid after the damage) from damage in the middle of a log.
pub(crate) fn find_valid_frame(buf: &[u8], from: usize) -> Option<usize> {
    let last_start = buf.len().checked_sub(FRAME_HEADER_LEN)?;
    (from..=last_start).find(|&at| read_frame(buf, at).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_truncation_is_short() {
        let mut buf = Vec::new();
        encode_frame(b"hello", &mut buf);
        encode_frame(b"world!", &mut buf);
        let (p, next) = read_frame(&buf, 0).unwrap();
        assert_eq!(p, b"hello");
        let (p, end) = read_frame(&buf, next).unwrap();
        assert_eq!(p, b"world!");
        assert_eq!(end, buf.len());
        for cut in next..end {
            let err = read_frame(&buf[..cut], next).unwrap_err();
            assert!(err.resume_at(next).is_none(), "{err:?}");
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode_frame(b"some payload", &mut buf);
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                assert!(read_frame(&b, 0).is_err(), "flip {byte}.{bit} undetected");
            }
        }
    }

    #[test]
    fn zeros_are_not_a_frame() {
        assert_eq!(read_frame(&[0; 64], 0), Err(FrameError::BadHeader));
        assert_eq!(find_valid_frame(&[0; 64], 0), None);
    }

    #[test]
    fn finds_a_frame_after_garbage() {
        let mut buf = vec![7u8; 33];
        encode_frame(b"x", &mut buf);
        assert_eq!(find_valid_frame(&buf, 0), Some(33));
        assert_eq!(find_valid_frame(&buf, 34), None);
    }
}
