//! A socket that first gives back bytes already read from it.
//!
//! When the lane hands a connection to hyper, it has read bytes hyper must
//! see: the head of the request it did not take, and anything the client sent
//! after it. Reads return those first, then come from the socket again;
//! writes go straight through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, ReadBuf};

pin_project! {
    /// `inner`, with `pending` read ahead of it.
    #[derive(Debug)]
    pub struct Replay<T> {
        pending: Bytes,
        #[pin]
        inner: T,
    }
}

impl<T> Replay<T> {
    pub fn new(pending: Bytes, inner: T) -> Self {
        Self { pending, inner }
    }
}

impl<T: AsyncRead> AsyncRead for Replay<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.pending.is_empty() {
            return this.inner.poll_read(cx, buf);
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

delegate_async_write!(Replay);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replayed_bytes_come_first_then_the_socket_in_small_reads_too() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut replay = Replay::new(Bytes::from_static(b"hello"), server);
        let mut small = [0u8; 3];
        replay.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hel");
        let mut rest = String::new();
        replay.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "lo world");
    }

    #[tokio::test]
    async fn writes_reach_the_socket() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut replay = Replay::new(Bytes::from_static(b"unread"), server);
        replay.write_all(b"answer").await.unwrap();
        let mut got = [0u8; 6];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"answer");
    }
}
