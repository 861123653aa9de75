//! Stopping the collector threads: an interruptible sleep.
//!
//! The collectors are plain OS threads (NVML calls block, sometimes for tens
//! of milliseconds, and must not stall a tokio worker). They sleep on a
//! condition variable so shutdown wakes them at once instead of after the
//! rest of an interval.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Shared stop flag with a wake-up.
#[derive(Debug, Clone, Default)]
pub struct Stopper {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Stopper {
    /// Sets the flag and wakes every sleeper.
    pub fn stop(&self) {
        let (flag, wake) = &*self.inner;
        // A poisoned lock only means a collector panicked while holding it;
        // the flag itself is still a plain bool.
        let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
        *stopped = true;
        wake.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps for `duration` or until stopped; returns true if stopped.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let (flag, wake) = &*self.inner;
        let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopped = match wake.wait_timeout(stopped, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_wakes_a_sleeper() {
        let stopper = Stopper::default();
        let sleeper = stopper.clone();
        let thread = std::thread::spawn(move || sleeper.sleep(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        stopper.stop();
        assert!(thread.join().unwrap());
        assert!(stopper.is_stopped());
    }

    #[test]
    fn sleep_times_out_when_not_stopped() {
        let stopper = Stopper::default();
        assert!(!stopper.sleep(Duration::from_millis(5)));
    }
}
