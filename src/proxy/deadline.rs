//! The upstream timeout, on a timer each client connection reuses.
//!
//! `tokio::time::timeout` makes a timer per request: it is put on the
//! runtime's timer wheel at its first wait and taken off when the request
//! ends, each under the wheel's lock. A connection's requests follow one
//! another, so the connection keeps one timer instead and moves its deadline
//! on for each request; a registered timer whose deadline moves later is
//! updated in place, without the lock. A request that finds the timer in use
//! (concurrent HTTP/2 streams on one connection) makes its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// The timer a connection lends to one request at a time.
#[derive(Debug, Default)]
pub struct TimerSlot(Mutex<Option<Pin<Box<Sleep>>>>);

impl TimerSlot {
    /// Runs `future` until it completes or `timeout` has passed.
    pub fn within<F: Future>(&self, timeout: Duration, future: F) -> Within<'_, F> {
        let deadline = Instant::now() + timeout;
        let lent = self.0.lock().ok().and_then(|mut slot| slot.take());
        let timer = match lent {
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Within {
            future,
            timer: Some(timer),
            slot: self,
        }
    }

    fn give_back(&self, timer: Pin<Box<Sleep>>) {
        if let Ok(mut slot) = self.0.lock() {
            if slot.is_none() {
                *slot = Some(timer);
            }
        }
    }
}

/// The deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

pin_project! {
    /// A future with a deadline on a lent timer; the timer goes back to its
    /// slot when this is dropped.
    pub struct Within<'a, F> {
        #[pin]
        future: F,
        timer: Option<Pin<Box<Sleep>>>,
        slot: &'a TimerSlot,
    }

    impl<'a, F> PinnedDrop for Within<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(timer) = this.timer.take() {
                this.slot.give_back(timer);
            }
        }
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let elapsed = this
            .timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
        if elapsed {
            Poll::Ready(Err(TimedOut))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_future_times_out_and_a_quick_one_does_not() {
        let slot = TimerSlot::default();
        let slow = slot.within(Duration::from_secs(5), std::future::pending::<()>());
        assert_eq!(slow.await, Err(TimedOut));
        let quick = slot.within(Duration::from_secs(5), async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            7
        });
        assert_eq!(quick.await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_is_reused_and_its_deadline_moves_for_each_request() {
        let slot = TimerSlot::default();
        for _ in 0..3 {
            // Each request gets its full timeout although the timer's earlier
            // deadlines have passed by now.
            let answer = slot.within(Duration::from_secs(10), async {
                tokio::time::sleep(Duration::from_secs(9)).await;
            });
            assert_eq!(answer.await, Ok(()));
            assert!(slot.0.lock().unwrap().is_some(), "the timer came back");
        }
        let late = slot.within(Duration::from_secs(10), std::future::pending::<()>());
        assert_eq!(late.await, Err(TimedOut));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_each_get_a_timer() {
        let slot = TimerSlot::default();
        let first = slot.within(Duration::from_secs(3), std::future::pending::<()>());
        let second = slot.within(Duration::from_secs(1), std::future::pending::<()>());
        let started = Instant::now();
        assert_eq!(second.await, Err(TimedOut));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(first.await, Err(TimedOut));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
