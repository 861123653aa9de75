//! Per-connection activity, for the idle keep-alive and header-read timeouts
//! (and the timer the connection's requests reuse for the upstream timeout,
//! see [`super::deadline`]).
//!
//! The socket is wrapped so every read or write stamps the time; requests hold
//! a token while they are in flight. A connection is idle when no request is
//! in flight and no byte has moved for the idle timeout.
//!
//! A request head is pending from the moment the connection opens, and from
//! the first byte read while no request is in flight, until hyper hands the
//! parsed request to the forwarding service; it is late when that takes
//! longer than the header timeout. So a client that connects and says
//! nothing, or trickles a head byte by byte, is cut after the header timeout,
//! while a keep-alive connection that merely waits for its next request is
//! the idle timeout's (hyper's own header timeout runs during that wait too).
//! No byte is parsed here: where a head ends is hyper's to say. An HTTP/2
//! connection, whose frames flow between requests, has its heads timed by
//! its first request only.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::deadline::TimerSlot;

/// Activity of one client connection.
#[derive(Debug)]
pub struct ConnActivity {
    /// When the connection opened, on the coarse clock ([`coarse_ms`]).
    opened_ms: u64,
    last_io_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// 1 + milliseconds since open when the pending request head began; 0 for none.
    head_started_ms: AtomicU64,
    /// The connection speaks HTTP/2: reads between requests are frames,
    /// not the start of a head.
    http2: AtomicBool,
    /// The timer the connection's requests reuse for the upstream timeout.
    pub upstream_timer: TimerSlot,
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Idle,
    HeaderTimeout,
}

impl ConnActivity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened_ms: coarse_ms(),
            last_io_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            // The first head is pending from the start.
            head_started_ms: AtomicU64::new(1),
            http2: AtomicBool::new(false),
            upstream_timer: TimerSlot::default(),
        })
    }

    /// Milliseconds since the connection opened.
    fn now_ms(&self) -> u64 {
        coarse_ms().saturating_sub(self.opened_ms)
    }

    fn touch(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A token that marks a request in flight until dropped; its head is
    /// complete.
    pub fn request_started(self: &Arc<Self>, version: http::Version) -> InFlightToken {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if version == http::Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.head_complete();
        InFlightToken(self.clone())
    }

    /// Bytes arrived: with no request in flight on an HTTP/1 connection they
    /// begin the next head, whose timeout runs from now (unless it already
    /// runs for this head).
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 && !self.http2.load(Ordering::Relaxed) {
            self.head_started();
        }
    }

    fn head_started(&self) {
        let _ = self.head_started_ms.compare_exchange(
            0,
            self.now_ms() + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// No request head is pending: the header timeout does not run.
    fn head_complete(&self) {
        self.head_started_ms.store(0, Ordering::Relaxed);
    }

    /// How long until the connection counts as idle; `None` when it is idle now.
    fn idle_left(&self, idle_timeout: Duration) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(idle_timeout);
        }
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        let idle_for = Duration::from_millis(self.now_ms()).saturating_sub(last);
        idle_timeout
            .checked_sub(idle_for)
            .filter(|left| !left.is_zero())
    }

    /// How long the pending request head may still take; `None` when it is late.
    fn head_left(&self, header_timeout: Duration) -> Option<Duration> {
        match self.head_started_ms.load(Ordering::Relaxed) {
            0 => Some(header_timeout),
            started => {
                let started = Duration::from_millis(started - 1);
                let taken = Duration::from_millis(self.now_ms()).saturating_sub(started);
                header_timeout
                    .checked_sub(taken)
                    .filter(|left| !left.is_zero())
            }
        }
    }
}

/// Milliseconds on a clock that need only be good to a few milliseconds:
/// the idle and header timeouts are seconds long, and every read and write
/// of every connection stamps the time. Linux's coarse monotonic clock is a
/// read of what the kernel updates each tick (one to a few milliseconds),
/// where the precise clock reads and scales the CPU's counter; elsewhere the
/// precise clock stands in.
#[cfg(target_os = "linux")]
fn coarse_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call to fill.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    debug_assert_eq!(
        result, 0,
        "CLOCK_MONOTONIC_COARSE exists since Linux 2.6.32"
    );
    u64::try_from(now.tv_sec).unwrap_or(0) * 1000
        + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000_000
}

#[cfg(not(target_os = "linux"))]
fn coarse_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Marks one request in flight on its connection.
#[derive(Debug)]
pub struct InFlightToken(Arc<ConnActivity>);

impl Drop for InFlightToken {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Waits until the connection has been idle too long or a request head is late.
pub async fn expired(
    activity: Arc<ConnActivity>,
    idle_timeout: Duration,
    header_timeout: Duration,
) -> Expired {
    loop {
        let Some(idle_left) = activity.idle_left(idle_timeout) else {
            return Expired::Idle;
        };
        let Some(head_left) = activity.head_left(header_timeout) else {
            return Expired::HeaderTimeout;
        };
        tokio::time::sleep(idle_left.min(head_left)).await;
    }
}

pin_project! {
    /// A socket that stamps its connection's activity on every read and write.
    pub struct TrackedIo<T> {
        #[pin]
        inner: T,
        activity: Arc<ConnActivity>,
    }
}

impl<T> TrackedIo<T> {
    pub fn new(inner: T, activity: Arc<ConnActivity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if result.is_ready() {
            this.activity.touch();
            if buf.filled().len() > before {
                this.activity.bytes_read();
            }
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write(cx, buf);
        if result.is_ready() {
            this.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write_vectored(cx, bufs);
        if result.is_ready() {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
