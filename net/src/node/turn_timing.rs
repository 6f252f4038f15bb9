//! How long the loop's turns take: a turn (handling what woke the loop, then `drive`)
//! holds up everything else the member does, so the loop counts turns over 10 ms, 100 ms
//! and 1 s (exported as `sextant_node_loop_slow_turns_total`) and logs each over 100 ms
//! (like etcd's "apply request took too long"). Found this way: a revision-log growth that
//! stopped every member for ~200 ms at the same revision. Under the simulator time does not
//! pass while the loop computes, so every turn counts as instant there.

use std::time::Duration;

use sextant_core::Index;

/// The thresholds turns are counted over.
pub const SLOW_TURN_THRESHOLDS: [Duration; 3] = [
    Duration::from_millis(10),
    Duration::from_millis(100),
    Duration::from_secs(1),
];

/// Turns logged as a warning.
const LOGGED_OVER: Duration = Duration::from_millis(100);

/// Turns over each of [`SLOW_TURN_THRESHOLDS`], since the loop started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowTurns {
    pub over: [u64; SLOW_TURN_THRESHOLDS.len()],
}

impl SlowTurns {
    /// Counts a turn of `took` (after which `applied` entries were applied; `woke_by` says
    /// what the loop woke for).
    pub(super) fn record(&mut self, took: Duration, woke_by: &'static str, applied: Index) {
        for (count, threshold) in self.over.iter_mut().zip(SLOW_TURN_THRESHOLDS) {
            if took > threshold {
                *count += 1;
            }
        }
        if took > LOGGED_OVER {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                woke_by,
                applied,
                "a node loop turn took too long"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_threshold_a_turn_is_over() {
        let mut s = SlowTurns::default();
        for ms in [0, 9, 10, 11, 150, 2000] {
            s.record(Duration::from_millis(ms), "test", 0);
        }
        assert_eq!(s.over, [3, 2, 1]);
    }
}
