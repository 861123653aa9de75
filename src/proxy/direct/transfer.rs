//! One exchange on a pinned connection, as a state machine polled by the
//! client connection's task: [`exchange`] sends the head and waits for the
//! response head, [`DirectBody`] streams the response body and finishes the
//! request body upload alongside.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;

use super::chunked::{ChunkedDecoder, Decoded};
use super::error::DirectError;
use super::raw_fields::RawFields;
use super::response_head::{self, Fields, Framing, ResponseHead};
use super::{request_head, Connection, Lease};
use crate::proxy::body::RequestBody;
use crate::proxy::headers::AddedFields;
use crate::proxy::lane::RequestLines;
use crate::proxy::upstream::UpstreamError;

/// Room for a typical request head and a small body in the first write.
const FIRST_WRITE_CAPACITY: usize = 1024;
/// Body bytes at most copied behind the head into the first write; a larger
/// first chunk is written on its own.
const COALESCE_MAX: usize = 16 * 1024;

/// Sends `request` (its fields the `lines`, when given, then its map's)
/// with the `added` fields on the leased connection (`idle`,
/// or a new one from `connect`) and returns the response once its head has
/// arrived.
///
/// A kept-alive connection the upstream closed before the first byte of
/// this request left is replaced once, as hyper's pool does for a request
/// that was never sent.
pub async fn exchange<C, F>(
    lease: Lease,
    idle: Option<Connection>,
    request: Request<RequestBody>,
    lines: Option<&RequestLines>,
    added: &AddedFields,
    connect: C,
) -> Result<Response<DirectBody>, UpstreamError>
where
    C: Fn() -> F,
    F: Future<Output = Result<Connection, UpstreamError>>,
{
    // In a block so the head's parts are gone from this future's state (an
    // `async fn` keeps a local's room until its scope ends).
    // A request that came as lines is a lane client's, whose writer copies
    // the response's lines too; a client served by hyper needs a map.
    let keep_lines = lines.is_some();
    let (request_was_head, mut first_write, body) = {
        let (parts, body) = request.into_parts();
        let mut first_write = Vec::with_capacity(FIRST_WRITE_CAPACITY);
        request_head::encode(&parts, lines, added, &mut first_write);
        (parts.method == Method::HEAD, first_write, body)
    };
    let mut upload = Upload {
        body: Some(body),
        pending: Bytes::new(),
    };
    poll_fn(|cx| Poll::Ready(upload.take_ready_bytes(cx, &mut first_write))).await?;

    let (mut connection, mut reused) = match idle.filter(Connection::is_usable) {
        Some(connection) => (connection, true),
        None => (connect().await?, false),
    };
    loop {
        match connection.write_head(&first_write).await {
            Ok(()) => break,
            Err((true, _)) if reused => {
                connection = connect().await?;
                reused = false;
            }
            Err((_, error)) => return Err(DirectError::Write(error).into()),
        }
    }
    drop(first_write);

    let mut transfer = Transfer {
        connection,
        upload,
        reusable: true,
    };
    let head = poll_fn(|cx| transfer.poll_head(cx, request_was_head, keep_lines)).await?;
    Ok(DirectBody::start(transfer, lease, head))
}

/// The request body on its way up: `pending` is not yet written, `body` is
/// the client's body while more of it may come. With neither left, the
/// upload is complete.
struct Upload {
    body: Option<RequestBody>,
    pending: Bytes,
}

impl Upload {
    fn is_complete(&self) -> bool {
        self.body.is_none() && self.pending.is_empty()
    }

    /// Stops the upload when the upstream stopped reading or the client's
    /// body broke off; the caller marks the connection not reusable.
    fn abandon(&mut self) {
        self.body = None;
        self.pending = Bytes::new();
    }

    /// Takes the client's next chunk into `pending` (called with nothing
    /// pending). `Ready(Ok)` when a chunk came or the body ended.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DirectError>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match ready!(Pin::new(&mut *body).poll_frame(cx)) {
            Some(Ok(frame)) => {
                self.pending = frame.into_data().unwrap_or_default();
                if body.is_end_stream() {
                    self.body = None;
                }
            }
            Some(Err(error)) => {
                self.abandon();
                return Poll::Ready(Err(DirectError::RequestBody(Box::new(error))));
            }
            None => self.body = None,
        }
        Poll::Ready(Ok(()))
    }

    /// Moves the body bytes that are ready now behind the head, so a small
    /// request leaves in one write.
    fn take_ready_bytes(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), DirectError> {
        if let Poll::Ready(Err(error)) = self.poll_body(cx) {
            return Err(error);
        }
        if self.pending.len() <= COALESCE_MAX {
            out.extend_from_slice(&self.pending);
            self.pending = Bytes::new();
        }
        Ok(())
    }
}

/// The connection and the upload, shared by both phases of an exchange.
struct Transfer {
    connection: Connection,
    upload: Upload,
    /// Cleared by anything that leaves the connection in an unknown state.
    reusable: bool,
}

impl Transfer {
    /// Sends as much of the request body as can go without waiting.
    fn poll_upload(&mut self, cx: &mut Context<'_>) -> Result<(), DirectError> {
        loop {
            let pending = &mut self.upload.pending;
            while !pending.is_empty() {
                match Pin::new(&mut self.connection.io).poll_write(cx, pending) {
                    Poll::Ready(Ok(written)) if written > 0 => pending.advance(written),
                    // The upstream stopped reading (or went away): its
                    // answer, if one comes, is read all the same.
                    Poll::Ready(_) => {
                        self.upload.abandon();
                        self.reusable = false;
                        return Ok(());
                    }
                    Poll::Pending => return Ok(()),
                }
            }
            if self.upload.body.is_none() {
                return Ok(());
            }
            match self.upload.poll_body(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    self.reusable = false;
                    return Err(error);
                }
                Poll::Pending => return Ok(()),
            }
        }
    }

    /// Reads up to the final response head, skipping interim (1xx) ones:
    /// RFC 9110 §15.2, "A client MUST be able to parse one or more 1xx
    /// responses received prior to a final response".
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        request_was_head: bool,
        keep_lines: bool,
    ) -> Poll<Result<ResponseHead, DirectError>> {
        loop {
            self.poll_upload(cx)?;
            let buf = &mut self.connection.buf;
            if !buf.is_empty() {
                if let Some(head) = response_head::parse(buf, request_was_head, keep_lines)? {
                    if head.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Poll::Ready(Err(DirectError::Malformed(
                            "101 Switching Protocols without an upgrade request",
                        )));
                    }
                    if head.status.is_informational() {
                        continue;
                    }
                    return Poll::Ready(Ok(head));
                }
            }
            match ready!(self.connection.poll_fill(cx)) {
                Ok(0) => return Poll::Ready(Err(DirectError::ClosedBeforeHead)),
                Ok(_) => {}
                Err(error) => return Poll::Ready(Err(DirectError::Read(error))),
            }
        }
    }
}

/// How much response body is left.
#[derive(Debug)]
enum Download {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

impl Download {
    fn is_done(&self) -> bool {
        match self {
            Download::Length(remaining) => *remaining == 0,
            Download::Chunked(decoder) => decoder.is_done(),
            Download::UntilClose => false,
            Download::Done => true,
        }
    }
}

/// The upstream's response body, read straight from the pinned connection.
///
/// The connection goes back to its slot the moment the last byte is decoded
/// (before the frame carrying it is returned), because a reader that sees
/// [`Body::is_end_stream`] may drop the body without another poll.
pub struct DirectBody {
    /// `None` once the exchange is over.
    transfer: Option<Transfer>,
    download: Download,
    lease: Lease,
    /// The head's fields when they are kept as they came (the response's
    /// header map is then empty); see [`RawFields`].
    raw_fields: Option<Box<RawFields>>,
}

impl DirectBody {
    fn start(mut transfer: Transfer, lease: Lease, head: ResponseHead) -> Response<Self> {
        let download = match head.framing {
            Framing::Empty => Download::Done,
            Framing::Length(length) => Download::Length(length),
            Framing::Chunked => Download::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => Download::UntilClose,
        };
        transfer.reusable &= head.keep_alive;
        let (raw_fields, headers) = match head.fields {
            Fields::Raw(raw) => (Some(raw), Default::default()),
            Fields::Map(map) => (None, map),
        };
        let mut body = DirectBody {
            transfer: Some(transfer),
            download,
            lease,
            raw_fields,
        };
        if body.download.is_done() {
            body.finish();
        }
        let mut response = Response::new(body);
        *response.status_mut() = head.status;
        *response.version_mut() = head.version;
        *response.headers_mut() = headers;
        if let Some(reason) = head
            .reason
            .and_then(|reason| hyper::ext::ReasonPhrase::try_from(reason).ok())
        {
            response.extensions_mut().insert(reason);
        }
        response
    }

    /// The response's fields, when they were kept as they came.
    pub fn raw_fields(&self) -> Option<&RawFields> {
        self.raw_fields.as_deref()
    }

    pub fn raw_fields_mut(&mut self) -> Option<&mut RawFields> {
        self.raw_fields.as_deref_mut()
    }

    pub fn take_raw_fields(&mut self) -> Option<Box<RawFields>> {
        self.raw_fields.take()
    }

    /// Ends the exchange: the connection goes back to its slot when both
    /// messages are complete and nothing else arrived, else it is closed.
    fn finish(&mut self) {
        if let Some(transfer) = self.transfer.take() {
            let reusable = transfer.reusable
                && transfer.upload.is_complete()
                && transfer.connection.buf.is_empty();
            self.lease
                .give_back(reusable.then_some(transfer.connection));
        }
    }

    fn fail(&mut self, error: DirectError) -> Poll<Option<Result<Frame<Bytes>, DirectError>>> {
        self.transfer = None;
        self.lease.give_back(None);
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for DirectBody {
    type Data = Bytes;
    type Error = DirectError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, DirectError>>> {
        let this = self.get_mut();
        let Some(transfer) = this.transfer.as_mut() else {
            return Poll::Ready(None);
        };
        if let Err(error) = transfer.poll_upload(cx) {
            return this.fail(error);
        }
        loop {
            let buf = &mut transfer.connection.buf;
            // `None`: the buffer holds nothing more for the body; read.
            let decoded = match &mut this.download {
                Download::Done => Some(None),
                Download::Length(remaining) if !buf.is_empty() => {
                    let take = (*remaining).min(buf.len() as u64) as usize;
                    *remaining -= take as u64;
                    Some(Some(Frame::data(buf.split_to(take).freeze())))
                }
                Download::UntilClose if !buf.is_empty() => {
                    Some(Some(Frame::data(buf.split().freeze())))
                }
                Download::Length(_) | Download::UntilClose => None,
                Download::Chunked(decoder) => match decoder.decode(buf) {
                    Ok(Decoded::Data(data)) => Some(Some(Frame::data(data))),
                    Ok(Decoded::Trailers(trailers)) => Some(Some(Frame::trailers(trailers))),
                    Ok(Decoded::End) => Some(None),
                    Ok(Decoded::NeedMore) => None,
                    Err(error) => return this.fail(error),
                },
            };
            let frame = match decoded {
                Some(frame) => frame,
                None => match ready!(transfer.connection.poll_fill(cx)) {
                    Ok(0) if matches!(this.download, Download::UntilClose) => {
                        this.download = Download::Done;
                        None
                    }
                    Ok(0) => return this.fail(DirectError::ClosedInBody),
                    Ok(_) => continue,
                    Err(error) => return this.fail(DirectError::Read(error)),
                },
            };
            if frame.is_none() || this.download.is_done() {
                this.finish();
            }
            return Poll::Ready(frame.map(Ok));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.transfer.is_none() || self.download.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.download, &self.transfer) {
            (_, None) | (Download::Done, _) => SizeHint::with_exact(0),
            (Download::Length(remaining), _) => SizeHint::with_exact(*remaining),
            _ => SizeHint::default(),
        }
    }
}
