//! Key ranges and ids as etcdctl spells them: `--prefix` and `--from-key` range ends, and
//! lease/member ids in hexadecimal.

/// The range end that covers every key starting with `prefix` (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented and the rest dropped; `\0` (to the
/// end of the keyspace) when there is no such byte.
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `(key, range_end)` for a command's key arguments and range flags, as clientv3 builds them.
pub fn key_range(key: &str, range_end: Option<&str>, prefix: bool, from_key: bool) -> KeyRange {
    let key = key.as_bytes().to_vec();
    if prefix {
        if key.is_empty() {
            return KeyRange {
                key: vec![0],
                range_end: vec![0],
            };
        }
        let range_end = prefix_range_end(&key);
        return KeyRange { key, range_end };
    }
    if from_key {
        let key = if key.is_empty() { vec![0] } else { key };
        return KeyRange {
            key,
            range_end: vec![0],
        };
    }
    KeyRange {
        key,
        range_end: range_end.map(|e| e.as_bytes().to_vec()).unwrap_or_default(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
}

/// Checks the combination of range flags the way etcdctl refuses them.
pub fn check_range_flags(
    range_end: Option<&str>,
    prefix: bool,
    from_key: bool,
) -> Result<(), RangeFlagsError> {
    match (range_end.is_some(), prefix, from_key) {
        (_, true, true) => Err(RangeFlagsError::PrefixAndFromKey),
        (true, true, _) => Err(RangeFlagsError::RangeEndAndPrefix),
        (true, _, true) => Err(RangeFlagsError::RangeEndAndFromKey),
        _ => Ok(()),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeFlagsError {
    #[error("`--prefix` and `--from-key` cannot be set at the same time, choose one")]
    PrefixAndFromKey,
    #[error("too many arguments, only accept one argument when `--prefix` is set")]
    RangeEndAndPrefix,
    #[error("too many arguments, only accept one argument when `--from-key` is set")]
    RangeEndAndFromKey,
}

/// A lease or member id given in hexadecimal (etcdctl prints and reads them so).
pub fn parse_hex_id(s: &str) -> Result<u64, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    u64::from_str_radix(digits, 16).map_err(|e| format!("bad hexadecimal id {s:?}: {e}"))
}

/// A lease id in hexadecimal (leases are `int64` on the wire).
pub fn parse_lease_id(s: &str) -> Result<i64, String> {
    parse_hex_id(s).map(|v| v as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte_below_ff() {
        assert_eq!(prefix_range_end(b"foo"), b"fop");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn empty_prefix_and_from_key_cover_everything() {
        let all = KeyRange {
            key: vec![0],
            range_end: vec![0],
        };
        assert_eq!(key_range("", None, true, false), all);
        assert_eq!(key_range("", None, false, true), all);
        assert_eq!(
            key_range("b", None, false, true),
            KeyRange {
                key: b"b".to_vec(),
                range_end: vec![0]
            }
        );
    }

    #[test]
    fn conflicting_flags_are_refused() {
        assert_eq!(
            check_range_flags(None, true, true),
            Err(RangeFlagsError::PrefixAndFromKey)
        );
        assert_eq!(
            check_range_flags(Some("z"), true, false),
            Err(RangeFlagsError::RangeEndAndPrefix)
        );
        assert!(check_range_flags(Some("z"), false, false).is_ok());
    }

    #[test]
    fn hex_ids() {
        assert_eq!(parse_lease_id("694d77aa9e38260f"), Ok(0x694d77aa9e38260f));
        assert_eq!(parse_hex_id("0x10"), Ok(16));
        assert!(parse_hex_id("xyz").is_err());
    }
}
