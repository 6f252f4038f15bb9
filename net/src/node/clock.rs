//! Time, as the node loop sees it: a stream of ticks. The real clock is a tokio interval; the
//! simulator supplies clocks with offset, drift and jumps.

use std::future::Future;
use std::time::Duration;

/// A source of Raft ticks.
pub trait Clock: Send + 'static {
    /// Completes at the next tick.
    fn tick(&mut self) -> impl Future<Output = ()> + Send;
    /// The nominal wall time of one tick (for converting client timeouts).
    fn tick_interval(&self) -> Duration;
}

/// Ticks at a fixed interval of the runtime's clock (real time, or madsim's virtual time).
pub struct IntervalClock {
    interval: tokio::time::Interval,
    period: Duration,
}

impl IntervalClock {
    pub fn new(period: Duration) -> IntervalClock {
        let mut interval = tokio::time::interval(period);
        // A stalled loop catches up with one tick, not a burst that would fire elections.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        IntervalClock { interval, period }
    }
}

impl Clock for IntervalClock {
    async fn tick(&mut self) {
        self.interval.tick().await;
    }

    fn tick_interval(&self) -> Duration {
        self.period
    }
}
