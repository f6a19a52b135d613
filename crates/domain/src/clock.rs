//! Where "now" comes from, so that time-dependent logic can be tested with paused time.

use time::OffsetDateTime;

/// A source of the current time in UTC.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that follows tokio's clock from a fixed starting point, so that under
/// `tokio::time::pause()` "now" advances exactly as far as the test advances time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall_start: OffsetDateTime,
    instant_start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(wall_start: OffsetDateTime) -> Self {
        Self {
            wall_start,
            instant_start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.wall_start + self.instant_start.elapsed()
    }
}
