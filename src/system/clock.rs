//! The clock: what keyturn waits with, so tests need not wait.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tells the time and waits.
pub trait Clock: Send + Sync {
    /// Now, on a clock that never goes back.
    fn now(&self) -> Instant;
    /// Waits `duration`.
    fn sleep(&self, duration: Duration);
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A clock for tests: sleeping moves it on at once.
#[derive(Debug)]
pub struct FakeClock {
    now: Mutex<Instant>,
}

impl Default for FakeClock {
    fn default() -> FakeClock {
        FakeClock { now: Mutex::new(Instant::now()) }
    }
}

impl FakeClock {
    /// How far it has been moved on since `since`.
    pub fn elapsed_since(&self, since: Instant) -> Duration {
        self.now().saturating_duration_since(since)
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.now.lock().map(|n| *n).unwrap_or_else(|p| *p.into_inner())
    }

    fn sleep(&self, duration: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += duration;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_moves_on_when_slept() {
        let clock = FakeClock::default();
        let start = clock.now();
        clock.sleep(Duration::from_secs(90));
        assert_eq!(clock.elapsed_since(start), Duration::from_secs(90));
        let real = SystemClock;
        let before = real.now();
        real.sleep(Duration::from_millis(5));
        assert!(real.now() >= before + Duration::from_millis(5));
    }
}
