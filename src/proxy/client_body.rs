//! The client's request body, from either way a request can arrive.
//!
//! Requests that hyper's connection parsed carry its streaming body; requests
//! the HTTP/1.1 lane (see [`super::lane`]) parsed arrived whole, so their body
//! is one buffer sliced out of the connection's read buffer, with no copy.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// A request body as the forward path reads it.
#[derive(Debug)]
pub enum ClientBody {
    /// Streamed from the client by hyper.
    Streamed(Incoming),
    /// Read whole before the request was forwarded; `None` once yielded.
    Buffered(Option<Bytes>),
}

impl ClientBody {
    /// A body read whole; an empty one ends at once.
    pub fn buffered(bytes: Bytes) -> Self {
        ClientBody::Buffered((!bytes.is_empty()).then_some(bytes))
    }
}

impl From<Incoming> for ClientBody {
    fn from(body: Incoming) -> Self {
        ClientBody::Streamed(body)
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ClientBody::Streamed(body) => Pin::new(body).poll_frame(cx),
            ClientBody::Buffered(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Streamed(body) => body.is_end_stream(),
            ClientBody::Buffered(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Streamed(body) => body.size_hint(),
            ClientBody::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_buffered_body_yields_its_bytes_once_with_an_exact_size() {
        let mut body = ClientBody::buffered(Bytes::from_static(b"{\"x\":1}"));
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!body.is_end_stream());
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "{\"x\":1}");
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.frame().await.is_none());
    }

    #[test]
    fn an_empty_buffered_body_has_ended_from_the_start() {
        let body = ClientBody::buffered(Bytes::new());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
