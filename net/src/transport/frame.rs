//! Length-prefixed postcard frames.
//!
//! After the handshake, a connection carries a sequence of frames, each
//!
//! ```text
//! +----------------------+---------------------------------------------+
//! | len: u32, big-endian | len bytes: postcard encoding of one Message |
//! +----------------------+---------------------------------------------+
//! ```
//!
//! with `1 <= len <= frame_bytes_max`. The payload must decode to exactly one
//! [`Message`] with no bytes left over. A declared length of zero or over the limit is a
//! protocol error reported as soon as the 4-byte header has arrived: the declared bytes are
//! never allocated. The decoder's buffer only grows with bytes actually received, so a peer
//! that declares 64 MiB and then sends nothing costs nothing.

use sextant_core::Message;

use super::error::{EncodeError, FrameError};

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;

/// Default limit on one frame's payload: 64 MiB.
pub const DEFAULT_FRAME_BYTES_MAX: u32 = 64 << 20;

/// A decoder buffer left empty with more capacity than this is released, so one large
/// snapshot chunk does not pin its memory for the life of the connection.
const SHRINK_ABOVE_BYTES: usize = 1 << 20;

/// Appends one frame holding `msg` to `out`. On error `out` is left as it was.
pub fn encode_frame(
    msg: &Message,
    frame_bytes_max: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    if let Err(e) = postcard::to_extend(msg, ExtendVec(out)) {
        out.truncate(start);
        return Err(EncodeError::Serialize(e));
    }
    let len = out.len() - start - LEN_BYTES;
    match u32::try_from(len) {
        Ok(len32) if len32 <= frame_bytes_max => {
            out[start..start + LEN_BYTES].copy_from_slice(&len32.to_be_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(EncodeError::TooLarge {
                len,
                max: frame_bytes_max,
            })
        }
    }
}

/// Decodes one frame payload (the bytes after the length prefix) into a message.
pub fn decode_payload(payload: &[u8]) -> Result<Message, FrameError> {
    let (msg, rest) = postcard::take_from_bytes::<Message>(payload).map_err(FrameError::Decode)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Incremental frame decoder: feed it bytes as they arrive with [`push`](Self::push), take
/// complete messages out with [`next_frame`](Self::next_frame).
///
/// After an error the stream is out of sync and the connection must be closed; the decoder
/// keeps returning that error.
#[derive(Debug)]
pub struct FrameDecoder {
    frame_bytes_max: u32,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    pub fn new(frame_bytes_max: u32) -> Self {
        FrameDecoder {
            frame_bytes_max,
            buf: Vec::new(),
            pos: 0,
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            // Consumed frames are removed before new bytes arrive, so every byte is moved at
            // most once (after the frame before it completes).
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE_BYTES {
            self.buf = Vec::new();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or the protocol error
    /// that makes the stream unusable.
    pub fn next_frame(&mut self) -> Result<Option<Message>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.parse();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn parse(&mut self) -> Result<Option<Message>, FrameError> {
        let avail = &self.buf[self.pos..];
        let Some(header) = avail.first_chunk::<LEN_BYTES>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header);
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                len,
                max: self.frame_bytes_max,
            });
        }
        let end = LEN_BYTES + len as usize;
        if avail.len() < end {
            return Ok(None);
        }
        let msg = decode_payload(&avail[LEN_BYTES..end])?;
        self.pos += end;
        Ok(Some(msg))
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes currently allocated for the buffer.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// Lets postcard append straight into a borrowed `Vec` (its `to_extend` takes the writer by
/// value).
struct ExtendVec<'a>(&'a mut Vec<u8>);

impl Extend<u8> for ExtendVec<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use sextant_core::{Entry, EntryPayload, MessageBody};

    use super::*;

    fn msg(i: u64) -> Message {
        Message {
            from: 1,
            to: 2,
            term: i,
            body: MessageBody::Append {
                session: 7,
                prev_index: i,
                prev_term: 3,
                entries: vec![Entry {
                    term: 3,
                    index: i + 1,
                    payload: EntryPayload::Normal(vec![i as u8; 10].into()),
                }],
                commit: i,
            },
        }
    }

    #[test]
    fn roundtrip_many_frames_in_any_split() {
        let mut wire = Vec::new();
        for i in 0..20 {
            encode_frame(&msg(i), DEFAULT_FRAME_BYTES_MAX, &mut wire).unwrap();
        }
        for chunk in [1, 2, 3, 7, 64, wire.len()] {
            let mut dec = FrameDecoder::new(DEFAULT_FRAME_BYTES_MAX);
            let mut got = Vec::new();
            for part in wire.chunks(chunk) {
                dec.push(part);
                while let Some(m) = dec.next_frame().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, (0..20).map(msg).collect::<Vec<_>>(), "chunk {chunk}");
            assert_eq!(dec.buffered(), 0);
        }
    }

    #[test]
    fn header_is_big_endian_length_of_postcard_payload() {
        let mut wire = Vec::new();
        encode_frame(&msg(5), DEFAULT_FRAME_BYTES_MAX, &mut wire).unwrap();
        let payload = postcard::to_allocvec(&msg(5)).unwrap();
        assert_eq!(&wire[..4], &(payload.len() as u32).to_be_bytes());
        assert_eq!(&wire[4..], &payload[..]);
    }

    #[test]
    fn encode_over_limit_is_refused_and_leaves_buffer_alone() {
        let mut wire = vec![1, 2, 3];
        let err = encode_frame(&msg(1), 8, &mut wire).unwrap_err();
        assert!(matches!(err, EncodeError::TooLarge { max: 8, .. }), "{err}");
        assert_eq!(wire, vec![1, 2, 3]);
    }

    #[test]
    fn oversized_declared_length_fails_on_the_header_alone() {
        let mut dec = FrameDecoder::new(1024);
        dec.push(&u32::MAX.to_be_bytes());
        assert_eq!(
            dec.next_frame(),
            Err(FrameError::TooLarge {
                len: u32::MAX,
                max: 1024
            })
        );
        assert!(dec.capacity() < 1024);
        // Stays failed.
        dec.push(&[0; 8]);
        assert!(dec.next_frame().is_err());
    }

    #[test]
    fn zero_length_and_trailing_bytes_are_errors() {
        let mut dec = FrameDecoder::new(1024);
        dec.push(&[0, 0, 0, 0]);
        assert_eq!(dec.next_frame(), Err(FrameError::Empty));

        let mut payload = postcard::to_allocvec(&msg(1)).unwrap();
        payload.push(0);
        let mut wire = (payload.len() as u32).to_be_bytes().to_vec();
        wire.extend_from_slice(&payload);
        let mut dec = FrameDecoder::new(1024);
        dec.push(&wire);
        assert_eq!(dec.next_frame(), Err(FrameError::TrailingBytes(1)));
    }

    #[test]
    fn garbage_payload_is_a_decode_error() {
        let mut dec = FrameDecoder::new(1024);
        dec.push(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        assert!(matches!(dec.next_frame(), Err(FrameError::Decode(_))));
    }

    #[test]
    fn buffer_is_released_after_a_large_frame() {
        let big = Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::Propose {
                epoch: 1,
                seq: 1,
                payloads: vec![EntryPayload::Normal(vec![9u8; 2 << 20].into())],
            },
        };
        let mut wire = Vec::new();
        encode_frame(&big, DEFAULT_FRAME_BYTES_MAX, &mut wire).unwrap();
        encode_frame(&msg(1), DEFAULT_FRAME_BYTES_MAX, &mut wire).unwrap();
        let mut dec = FrameDecoder::new(DEFAULT_FRAME_BYTES_MAX);
        let split = wire.len() - 3;
        dec.push(&wire[..split]);
        assert_eq!(dec.next_frame().unwrap(), Some(big));
        assert_eq!(dec.next_frame().unwrap(), None);
        dec.push(&wire[split..]);
        assert_eq!(dec.next_frame().unwrap(), Some(msg(1)));
        dec.push(&[]);
        assert!(dec.capacity() <= SHRINK_ABOVE_BYTES);
    }
}
