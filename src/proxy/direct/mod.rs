//! The direct HTTP/1.1 exchange: the task that serves a client connection
//! writes the request to that connection's own upstream connection and
//! reads the response itself.
//!
//! A pooled hyper client runs each upstream connection in a task of its own
//! and hands requests and responses across channels: per request, two more
//! task wake-ups, a oneshot, a dispatch queue and the pool's bookkeeping.
//! For a sidecar whose client connections map one to one onto upstream
//! connections that is all overhead, and on small requests it was the
//! largest single cost of the proxy (see the README's Performance section).
//!
//! The exchange here is one state machine polled by the client connection's
//! task: the head and the first body bytes go out in one write, the rest of
//! the request body is sent while the response is read (a server may answer
//! before it has read everything), and the response body is decoded from the
//! connection's read buffer without a copy.
//!
//! It carries requests with no body or a body of known length up to
//! 64 KiB. Upgrades, `CONNECT`, chunked and larger uploads go to the pooled
//! client, as does everything when the upstream speaks h2c.

mod chunked;
mod error;
mod pinned;
mod raw_fields;
mod request_head;
mod response_head;
mod transfer;

use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use bytes::BytesMut;
use http::{Method, Request};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::field_lines;
/// Positions of parsed head pieces, as the lane's request reader keeps them.
pub(crate) use super::lane::Span;
pub use error::DirectError;
pub use pinned::{Lease, PinnedUpstream};
pub use raw_fields::RawFields;
pub use transfer::{exchange, DirectBody};

/// First read buffer of a connection; reads that fill the buffer double it
/// up to [`MAX_READ`], as hyper's adaptive read strategy does.
const INITIAL_READ: usize = 8 * 1024;
const MAX_READ: usize = 256 * 1024;
/// Below this much free space the buffer is grown before a read.
const MIN_SPARE: usize = 1024;

/// Largest request body sent on the direct path.
///
/// Measured on a CPU shared with the upstream: 1 MiB uploads through the
/// pooled client ran 20-25 % faster than through the direct path, which
/// spent 30 % more system time on them (see the README's Performance
/// section); small requests gain the other way round.
const MAX_UPLOAD: u64 = 64 * 1024;

/// Whether a request can take the direct path; `upgrade`: it asks to switch
/// protocols (an upgrade is tunnelled, which the shared pool's client does).
pub fn can_carry<B>(request: &Request<B>, upgrade: bool) -> bool
where
    B: http_body::Body,
{
    request.method() != Method::CONNECT
        && !upgrade
        && (request.body().is_end_stream()
            || request
                .body()
                .size_hint()
                .exact()
                .is_some_and(|length| length <= MAX_UPLOAD))
}

/// An upstream connection and its read buffer.
pub struct Connection {
    io: TcpStream,
    buf: BytesMut,
    read_size: usize,
}

impl Connection {
    pub fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            read_size: INITIAL_READ,
        }
    }

    /// Whether an idle connection can carry another request: the upstream
    /// has not closed it in the meantime (a keep-alive timeout on its side)
    /// and sent nothing unasked. Costs no system call unless the reactor
    /// saw the socket become readable.
    pub fn is_usable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => matches!(
                self.io.try_read(&mut [0u8; 1]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Writes `bytes`; on failure says whether none of them left, in which
    /// case the request may be sent again on another connection.
    async fn write_head(&mut self, bytes: &[u8]) -> Result<(), (bool, std::io::Error)> {
        let first = self.io.write(bytes).await.map_err(|error| (true, error))?;
        self.io
            .write_all(&bytes[first..])
            .await
            .map_err(|error| (false, error))
    }

    /// Reads what the socket has into the buffer; `Ok(0)` is end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < MIN_SPARE {
            self.buf.reserve(self.read_size);
        }
        let spare = self.buf.capacity() - self.buf.len();
        let read = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.buf
        ))?;
        if read == spare {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        }
        Poll::Ready(Ok(read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_requests_of_known_length_without_upgrade_go_direct() {
        use http_body_util::{BodyExt, Full, StreamBody};
        let request = |method: Method, body| {
            Request::builder()
                .method(method)
                .uri("/")
                .body(body)
                .unwrap()
        };
        let sized = |length: usize| Full::new(bytes::Bytes::from(vec![b'x'; length])).boxed();
        assert!(can_carry(&request(Method::GET, sized(0)), false));
        assert!(can_carry(&request(Method::POST, sized(5)), false));
        assert!(can_carry(
            &request(Method::POST, sized(MAX_UPLOAD as usize)),
            false
        ));
        assert!(!can_carry(
            &request(Method::POST, sized(MAX_UPLOAD as usize + 1)),
            false
        ));
        let chunks = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
            http_body::Frame::data(bytes::Bytes::from_static(b"streamed")),
        )]);
        let unsized_body = StreamBody::new(chunks).boxed();
        assert!(
            !can_carry(&request(Method::POST, unsized_body), false),
            "chunked upload"
        );
        assert!(!can_carry(&request(Method::GET, sized(0)), true));
        assert!(!can_carry(&request(Method::CONNECT, sized(0)), false));
    }
}
