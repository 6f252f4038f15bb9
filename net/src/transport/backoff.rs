//! Jittered exponential backoff between reconnect attempts.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Delays that double from `min` up to `max`; each delay is drawn uniformly from the upper
/// half of the current step (`[d/2, d]`), so peers that lost each other at the same moment do
/// not retry in lockstep, yet the delay never exceeds `max`.
#[derive(Debug)]
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
    rng: StdRng,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration, seed: u64) -> Self {
        let max = max.max(min);
        Backoff {
            min,
            max,
            step: min,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The delay before the next attempt; later calls return longer delays up to the cap.
    pub(super) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(self.max);
        let hi = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.random_range(hi / 2..=hi))
    }

    /// Back to `min`, after a successful connection.
    pub(super) fn reset(&mut self) {
        self.step = self.min;
    }
}

/// A seed for the jitter: it need not be reproducible (the real transport's timing is not),
/// only differ between nodes, peers and runs.
pub(super) fn seed(node: u64, peer: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ node.rotate_left(17) ^ peer.rotate_left(41) ^ 0x9e37_79b9_7f4a_7c15
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let min = Duration::from_millis(50);
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(min, max, 1);
        let mut step = min;
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(
                d >= step / 2 && d <= step,
                "{d:?} not in [{:?}, {step:?}]",
                step / 2
            );
            assert!(d <= max);
            step = (step * 2).min(max);
        }
        assert!(b.next_delay() >= max / 2);
        b.reset();
        assert!(b.next_delay() <= min);
    }

    #[test]
    fn jitter_varies() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 7);
        let delays: std::collections::BTreeSet<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays.len() > 1);
    }
}
