//! Per-member clocks. madsim has one global clock; each member's Raft ticks come from this
//! clock, which runs at its own rate (drift, in parts per million) and can jump: forward (a
//! burst of ticks at once) or backward (ticks withheld).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sextant_net::node::Clock;

/// Knobs the nemesis turns; shared with the member's clock across restarts.
#[derive(Debug, Default)]
pub struct ClockControl {
    /// Rate error in ppm: +100_000 means ticks come 10% slower.
    pub drift_ppm: AtomicI64,
    /// Pending jump in ticks: > 0 delivers that many ticks at once, < 0 withholds ticks.
    pub jump_ticks: AtomicI64,
}

impl ClockControl {
    pub fn set_drift_ppm(&self, ppm: i64) {
        self.drift_ppm
            .store(ppm.clamp(-500_000, 500_000), Ordering::SeqCst);
    }

    pub fn jump(&self, ticks: i64) {
        self.jump_ticks.fetch_add(ticks, Ordering::SeqCst);
    }
}

pub struct SkewedClock {
    base: Duration,
    ctl: Arc<ClockControl>,
    /// When the next tick is due. Kept across calls, like a tokio interval, so that a loop
    /// which drops an unfinished `tick()` (every `select!` pass that handles something else)
    /// does not restart the period: a busy member's clock must not run slow.
    next: Option<tokio::time::Instant>,
    /// When the last tick was delivered, or stood for missed ones (`Clock::missed_ticks`).
    last: tokio::time::Instant,
}

impl SkewedClock {
    pub fn new(base: Duration, ctl: Arc<ClockControl>) -> SkewedClock {
        SkewedClock {
            base,
            ctl,
            next: None,
            last: tokio::time::Instant::now(),
        }
    }

    fn period(&self) -> Duration {
        let ppm = self.ctl.drift_ppm.load(Ordering::SeqCst);
        let nanos = self.base.as_nanos() as i128 * (1_000_000 + ppm as i128) / 1_000_000;
        Duration::from_nanos(nanos.max(1) as u64)
    }
}

impl Clock for SkewedClock {
    async fn tick(&mut self) {
        loop {
            let jump = self.ctl.jump_ticks.load(Ordering::SeqCst);
            if jump > 0 {
                self.ctl.jump_ticks.fetch_sub(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                self.last = tokio::time::Instant::now();
                return;
            }
            let period = self.period();
            let due = *self
                .next
                .get_or_insert_with(|| tokio::time::Instant::now() + period);
            tokio::time::sleep_until(due).await;
            // Not cancellable from here on: the next period starts where this one ended, or
            // now if the member stalled past it (one tick, not a burst: like the production
            // clock's `MissedTickBehavior::Delay`).
            let now = tokio::time::Instant::now();
            self.next = Some(due.max(now) + self.period());
            self.last = now;
            if jump < 0 {
                self.ctl.jump_ticks.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            return;
        }
    }

    fn missed_ticks(&mut self, now: tokio::time::Instant) -> u64 {
        // Measured at the drifted rate, like the ticks themselves; ticks withheld by a
        // backward jump are not missed (that clock runs behind on purpose).
        let period = self.period();
        sextant_net::node::missed_since(&mut self.last, now, period)
    }

    fn tick_interval(&self) -> Duration {
        self.base
    }
}
