//! Per-connection activity, for the idle keep-alive timeout.
//!
//! The socket is wrapped so every read or write stamps the time; requests hold
//! a token while they are in flight. A connection is idle when no request is
//! in flight and no byte has moved for the idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::framing::FramingWatcher;

/// Activity of one client connection.
#[derive(Debug)]
pub struct ConnActivity {
    opened: Instant,
    last_io_ms: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// 1 + index of the first request whose framing was ambiguous; 0 for none.
    ambiguous_request: AtomicU64,
}

impl ConnActivity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            ambiguous_request: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// A token that marks a request in flight until dropped, and whether the
    /// request's framing on the wire was ambiguous (see `framing`).
    pub fn request_started(self: &Arc<Self>) -> (InFlightToken, bool) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let index = self.requests.fetch_add(1, Ordering::Relaxed);
        let ambiguous = self.ambiguous_request.load(Ordering::Acquire) == index + 1;
        (InFlightToken(self.clone()), ambiguous)
    }

    /// How long until the connection counts as idle; `None` when it is idle now.
    pub fn idle_deadline(&self, idle_timeout: Duration) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(idle_timeout);
        }
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        let idle_for = self.opened.elapsed().saturating_sub(last);
        idle_timeout
            .checked_sub(idle_for)
            .filter(|left| !left.is_zero())
    }
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

/// Waits until the connection has been idle for `idle_timeout`.
pub async fn idle(activity: Arc<ConnActivity>, idle_timeout: Duration) {
    while let Some(wait) = activity.idle_deadline(idle_timeout) {
        tokio::time::sleep(wait).await;
    }
}

pin_project! {
    /// A socket that stamps its connection's activity on every read and write,
    /// and watches the request framing of what it reads.
    pub struct TrackedIo<T> {
        #[pin]
        inner: T,
        activity: Arc<ConnActivity>,
        framing: FramingWatcher,
    }
}

impl<T> TrackedIo<T> {
    pub fn new(inner: T, activity: Arc<ConnActivity>, max_head: usize) -> Self {
        Self {
            inner,
            activity,
            framing: FramingWatcher::new(max_head),
        }
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
            if !this.framing.is_off() {
                this.framing.feed(&buf.filled()[before..]);
                if let Some(index) = this.framing.first_ambiguous() {
                    let _ = this.activity.ambiguous_request.compare_exchange(
                        0,
                        index + 1,
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                }
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
