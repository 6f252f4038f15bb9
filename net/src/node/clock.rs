//! Time, as the node loop sees it: a stream of ticks. The real clock is a tokio interval; the
//! simulator supplies clocks with offset, drift and jumps.

use std::future::Future;
use std::time::Duration;

/// A source of Raft ticks.
pub trait Clock: Send + 'static {
    /// Completes at the next tick. After a stall (the loop busy for longer than a tick, the
    /// process paused) it delivers one tick, not a burst that would fire elections.
    fn tick(&mut self) -> impl Future<Output = ()> + Send;
    /// Whole tick periods that passed by `now` and will not be delivered: the stall beyond
    /// the one tick that `tick` will still deliver. Each is reported once. Real time must
    /// reach the Raft core even when ticks do not, or a leader's lease would outlast a pause.
    fn missed_ticks(&mut self, now: tokio::time::Instant) -> u64;
    /// The nominal wall time of one tick (for converting client timeouts).
    fn tick_interval(&self) -> Duration;
}

/// Ticks at a fixed interval of the runtime's clock (real time, or madsim's virtual time).
pub struct IntervalClock {
    interval: tokio::time::Interval,
    period: Duration,
    /// When the last tick was delivered, or stood for missed ones.
    last: tokio::time::Instant,
}

impl IntervalClock {
    pub fn new(period: Duration) -> IntervalClock {
        let mut interval = tokio::time::interval(period);
        // A stalled loop catches up with one tick, not a burst that would fire elections.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        IntervalClock {
            interval,
            period,
            last: tokio::time::Instant::now(),
        }
    }
}

/// Whole periods from `last` to `now` beyond the first (the tick still to come); moves `last`
/// past the ones it reports.
pub fn missed_since(
    last: &mut tokio::time::Instant,
    now: tokio::time::Instant,
    period: Duration,
) -> u64 {
    let behind = now.saturating_duration_since(*last).as_nanos();
    let periods = behind / period.as_nanos().max(1);
    let missed = u64::try_from(periods.saturating_sub(1)).unwrap_or(u64::MAX);
    if missed > 0 {
        *last += period.saturating_mul(u32::try_from(missed).unwrap_or(u32::MAX));
    }
    missed
}

impl Clock for IntervalClock {
    async fn tick(&mut self) {
        self.interval.tick().await;
        self.last = tokio::time::Instant::now();
    }

    fn missed_ticks(&mut self, now: tokio::time::Instant) -> u64 {
        missed_since(&mut self.last, now, self.period)
    }

    fn tick_interval(&self) -> Duration {
        self.period
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_reported_once_beyond_the_tick_still_to_come() {
        let period = Duration::from_millis(100);
        let t0 = tokio::time::Instant::now();
        let mut last = t0;
        // Less than two periods behind: only the tick still to come.
        assert_eq!(missed_since(&mut last, t0 + period * 19 / 10, period), 0);
        assert_eq!(last, t0);
        // 3.5 periods: the coming tick stands for one, two more were missed.
        assert_eq!(missed_since(&mut last, t0 + period * 35 / 10, period), 2);
        assert_eq!(last, t0 + period * 2);
        // Reported once.
        assert_eq!(missed_since(&mut last, t0 + period * 35 / 10, period), 0);
        // A clock read before `last` (nothing elapsed) misses nothing.
        assert_eq!(missed_since(&mut last, t0, period), 0);
    }
}
