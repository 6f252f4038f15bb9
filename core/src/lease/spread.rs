//! Spreading piled-up expiries when a leader takes over, as etcd's `lessor.Promote`: after a
//! leader change every lease restarts at once, so many may expire in the same second. Within
//! each one-second window only three quarters of the revoke rate may expire; the rest are
//! pushed back in proportion to how far over they are.

/// `leases`: `(id, ms until expiry)`, sorted by expiry. Returns the ids to delay and by how
/// many ms. Nothing moves when there are fewer leases than `revokes_per_sec_max`.
pub(crate) fn spread(leases: &[(i64, u64)], revokes_per_sec_max: usize) -> Vec<(i64, u64)> {
    let target = (3 * revokes_per_sec_max / 4).max(1) as u64;
    if leases.len() < revokes_per_sec_max || leases.is_empty() {
        return Vec::new();
    }
    let mut delays = Vec::new();
    let mut base = leases[0].1;
    let mut next_window = base + 1000;
    let mut expires = 0u64;
    for &(id, remaining) in leases {
        if remaining > next_window {
            base = remaining;
            next_window = base + 1000;
            expires = 1;
            continue;
        }
        expires += 1;
        if expires <= target {
            continue;
        }
        let delay = (1000 * expires / target).saturating_sub(remaining - base);
        next_window = base + delay;
        delays.push((id, delay));
    }
    delays
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_leases_are_not_moved() {
        let leases: Vec<(i64, u64)> = (0..10).map(|i| (i, 5000)).collect();
        assert!(spread(&leases, 1000).is_empty());
    }

    #[test]
    fn a_pile_up_is_spread_at_three_quarters_of_the_rate() {
        // 2000 leases expiring at the same instant, revoke rate 1000/s: the first 750 stay,
        // the rest are spread over the following seconds.
        let leases: Vec<(i64, u64)> = (0..2000).map(|i| (i, 10_000)).collect();
        let delays = spread(&leases, 1000);
        assert_eq!(delays.len(), 1250);
        assert_eq!(delays[0], (750, 1001));
        let last = delays.last().unwrap();
        assert_eq!(*last, (1999, 2666));
        // At most 750 expire in any one-second window.
        let mut at: Vec<u64> = (0..750).map(|_| 10_000).collect();
        at.extend(delays.iter().map(|(_, d)| 10_000 + d));
        at.sort_unstable();
        for w in at.windows(751) {
            assert!(w[750] - w[0] >= 1000, "{w:?}");
        }
    }
}
