//! The key range a watcher covers, in etcd's `range_end` convention.

use bytes::Bytes;

/// A single key, every key `>= key` (`range_end == "\0"`), or the half-open range
/// `[key, range_end)`. Built only through [`KeyRange::new`], which normalises the way
/// etcd's watch server does: an empty key is `"\0"`, the smallest key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyRange {
    key: Bytes,
    range_end: Bytes,
}

impl KeyRange {
    /// `None` when the range is empty (`range_end` set, not `"\0"`, and not above `key`):
    /// etcd refuses such a watch with "mvcc: watcher range is empty".
    pub fn new(key: Bytes, range_end: Bytes) -> Option<KeyRange> {
        let key = if key.is_empty() {
            Bytes::from_static(&[0])
        } else {
            key
        };
        let bounded = !range_end.is_empty() && range_end[..] != [0];
        if bounded && key >= range_end {
            return None;
        }
        Some(KeyRange { key, range_end })
    }

    /// The range end covering every key that starts with `prefix` (etcd's
    /// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff incremented and the
    /// rest dropped, or `"\0"` (every key from `prefix` on) when there is no such byte.
    pub fn prefix_end(prefix: &[u8]) -> Bytes {
        match prefix.iter().rposition(|&b| b < 0xff) {
            Some(i) => {
                let mut end = prefix[..=i].to_vec();
                end[i] += 1;
                Bytes::from(end)
            }
            None => Bytes::from_static(&[0]),
        }
    }

    pub fn key(&self) -> &Bytes {
        &self.key
    }

    pub fn range_end(&self) -> &Bytes {
        &self.range_end
    }

    pub fn is_single_key(&self) -> bool {
        self.range_end.is_empty()
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        crate::kv::in_range(k, &self.key, &self.range_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(key: &'static [u8], end: &'static [u8]) -> Option<KeyRange> {
        KeyRange::new(Bytes::from_static(key), Bytes::from_static(end))
    }

    #[test]
    fn single_key_from_key_and_half_open() {
        let single = range(b"b", b"").unwrap();
        assert!(single.contains(b"b") && !single.contains(b"ba") && !single.contains(b"a"));
        let from = range(b"b", b"\0").unwrap();
        assert!(from.contains(b"b") && from.contains(b"zz") && !from.contains(b"a"));
        let half = range(b"b", b"d").unwrap();
        assert!(half.contains(b"b") && half.contains(b"cz") && !half.contains(b"d"));
    }

    #[test]
    fn empty_ranges_are_refused_and_empty_key_is_the_smallest() {
        assert_eq!(range(b"b", b"b"), None);
        assert_eq!(range(b"c", b"b"), None);
        let all = range(b"", b"\0").unwrap();
        assert_eq!(all.key().as_ref(), b"\0");
        assert!(all.contains(b"\0") && all.contains(b"\xff\xff"));
    }

    #[test]
    fn prefix_end_follows_etcd() {
        assert_eq!(KeyRange::prefix_end(b"abc").as_ref(), b"abd");
        assert_eq!(KeyRange::prefix_end(b"a\xff").as_ref(), b"b");
        assert_eq!(KeyRange::prefix_end(b"\xff\xff").as_ref(), b"\0");
        assert_eq!(KeyRange::prefix_end(b"").as_ref(), b"\0");
    }
}
