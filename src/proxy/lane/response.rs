//! Writing a response on the lane: the head, then the body in the framing
//! RFC 9112 §6 asks for.
//!
//! The rules follow hyper's server, so a client cannot tell which path served
//! it:
//! - RFC 9110 §6.4.1: responses to HEAD, and 1xx, 204 and 304 answers, carry
//!   no content. A HEAD answer keeps the Content-Length the upstream gave (it
//!   describes the representation). §8.6: "A server MUST NOT send a
//!   Content-Length header field in any response with a status code of 1xx
//!   (Informational) or 204 (No Content)", so there it is dropped; hyper
//!   drops it from a 304 too (a server "MAY" send it there), and so does the
//!   lane, so both paths answer alike.
//! - A body with a Content-Length is sent as it is, at that length; a body of
//!   known size without one gets one; anything else is chunked (RFC 9112
//!   §7.1), with no trailers, since lane clients did not send `TE: trailers`.
//! - `Date` is added when the upstream sent none (RFC 9110 §6.6.1).
//! - `Connection: close` is sent when the connection will close afterwards
//!   (RFC 9112 §9.6).
//!
//! Bytes are gathered into one write while the body has more ready, and
//! flushed as soon as it has to wait: a streamed (SSE) event reaches the
//! client when the upstream sends it, and a small answer goes out as a single
//! write of head and body.

use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http::header::{HeaderMap, CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::StatusCode;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::date;
use super::request::lists_close;
use crate::proxy::direct::RawFields;
use crate::proxy::forward::{raw_fields, ProxyResponseBody};

/// Up to this many bytes are gathered before a write; larger data frames are
/// written from where they lie instead of being copied.
const GATHER_BYTES: usize = 16 * 1024;

/// How the body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No content follows the head.
    Bodyless,
    /// Exactly this many bytes follow.
    Length(u64),
    /// Chunked transfer coding, ended by a zero-size chunk.
    Chunked,
}

/// What goes into the head besides the response's own fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadPlan {
    pub framing: Framing,
    /// Write the response's own Content-Length fields.
    pub keep_length: bool,
    /// Write a Content-Length of this value (the response had no usable one).
    pub add_length: Option<u64>,
    /// Write `Connection: close`.
    pub close: bool,
    /// Write a `Date` (the response has none).
    pub add_date: bool,
}

/// What one pass over the response's fields found: the head is planned
/// from this instead of a map lookup per field of interest.
#[derive(Debug, Clone, Copy, Default)]
struct FieldSummary {
    says_close: bool,
    has_date: bool,
    /// `None` without Content-Length; `Some(None)` when its values are not
    /// one number.
    length: Option<Option<u64>>,
}

fn summarize(headers: &HeaderMap, raw: Option<&RawFields>) -> FieldSummary {
    // Raw fields have no Connection line left, and their Content-Length
    // values were found to agree when the head was parsed.
    let mut summary = raw.map_or_else(FieldSummary::default, |raw| FieldSummary {
        says_close: false,
        has_date: raw.has_date(),
        length: raw.content_length().map(Some),
    });
    for (name, value) in headers {
        match *name {
            CONNECTION => summary.says_close |= lists_close(value.as_bytes()),
            DATE => summary.has_date = true,
            CONTENT_LENGTH => {
                let parsed = content_length(value.as_bytes());
                summary.length = Some(match summary.length {
                    None => parsed,
                    Some(earlier) => earlier.filter(|_| parsed == earlier),
                });
            }
            _ => {}
        }
    }
    summary
}

fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Decides the framing and which fields the lane writes itself.
///
/// `keep_alive` is the connection's wish; a response that says
/// `Connection: close` (the proxy's own 503 and 413 do) overrides it.
/// Connection and Transfer-Encoding fields of the response are never written
/// as they are: the lane frames the message and decides the connection.
pub fn plan(
    head_request: bool,
    status: StatusCode,
    fields: (&HeaderMap, Option<&RawFields>),
    exact_size: Option<u64>,
    keep_alive: bool,
) -> HeadPlan {
    let fields = summarize(fields.0, fields.1);
    let plan = HeadPlan {
        framing: Framing::Bodyless,
        keep_length: false,
        add_length: None,
        close: !keep_alive || fields.says_close,
        add_date: !fields.has_date,
    };
    if head_request {
        return HeadPlan {
            keep_length: true,
            ..plan
        };
    }
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return plan;
    }
    match (fields.length, exact_size) {
        (Some(Some(length)), _) => HeadPlan {
            framing: Framing::Length(length),
            keep_length: true,
            ..plan
        },
        // Unusable values are not repeated to the client; the body's own
        // size (or chunking) frames it instead.
        (_, Some(length)) => HeadPlan {
            framing: Framing::Length(length),
            add_length: Some(length),
            ..plan
        },
        (_, None) => HeadPlan {
            framing: Framing::Chunked,
            ..plan
        },
    }
}

/// Appends the status line and header section: the raw fields first (as
/// they came, less the lines marked to be left out), then the map's.
pub fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    reason: Option<&[u8]>,
    (headers, raw): (&HeaderMap, Option<&RawFields>),
    plan: HeadPlan,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    let canonical = status.canonical_reason().map(str::as_bytes);
    out.extend_from_slice(reason.or(canonical).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
    if let Some(raw) = raw {
        raw.write_to(out, plan.keep_length);
    }
    for (name, value) in headers {
        let written_by_lane = match *name {
            CONNECTION | TRANSFER_ENCODING => true,
            CONTENT_LENGTH => !plan.keep_length,
            _ => false,
        };
        if written_by_lane {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(length) = plan.add_length {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "content-length: {length}\r\n");
    }
    if plan.framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if plan.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if plan.add_date {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a response and reports whether the connection can carry another
/// request: the body ended cleanly at its length and nobody asked to close.
///
/// The caller keeps the response's parts and body and lends them: the body
/// is a few hundred bytes, and every `async fn` that takes it by value keeps
/// two copies of it in its state.
pub async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: Pin<&mut ProxyResponseBody>,
    head_request: bool,
    keep_alive: bool,
) -> io::Result<bool> {
    let fields = (&parts.headers, raw_fields(&body));
    let plan = plan(
        head_request,
        parts.status,
        fields,
        body.size_hint().exact(),
        keep_alive,
    );
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
    out.clear();
    encode_head(
        out,
        parts.status,
        reason.map(|r| r.as_bytes()),
        fields,
        plan,
    );
    let complete = send_body(io, out, body, plan.framing).await?;
    Ok(complete && !plan.close)
}

/// Sends the body after the head already in `out`; true when it ended at the
/// length its framing promised.
async fn send_body<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut Vec<u8>,
    mut body: Pin<&mut ProxyResponseBody>,
    framing: Framing,
) -> io::Result<bool> {
    let mut left = match framing {
        Framing::Length(length) => length,
        Framing::Bodyless | Framing::Chunked => 0,
    };
    loop {
        let ready = std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await;
        let next = match ready {
            Poll::Ready(next) => next,
            Poll::Pending => {
                flush(io, out).await?;
                body.frame().await
            }
        };
        let data = match next {
            None => break,
            Some(Err(_)) => {
                // The upstream broke off (its error is counted by the body):
                // the client gets what came and the connection closes, so the
                // cut is visible rather than a short message.
                flush(io, out).await?;
                return Ok(false);
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers: not sent, the client did not ask for them.
                Err(_) => continue,
            },
        };
        match framing {
            Framing::Bodyless => {}
            Framing::Length(_) => {
                let fits = data.len() as u64 <= left;
                let data = if fits {
                    data
                } else {
                    // More than the declared length: never sent, it would be
                    // read as the start of the next response.
                    data.slice(..usize::try_from(left).unwrap_or(0))
                };
                left -= data.len() as u64;
                put(io, out, &data, false).await?;
                if !fits {
                    flush(io, out).await?;
                    return Ok(false);
                }
            }
            Framing::Chunked if data.is_empty() => {}
            Framing::Chunked => put(io, out, &data, true).await?,
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    flush(io, out).await?;
    Ok(left == 0)
}

/// Adds one piece of body, as a chunk when `chunked`.
async fn put<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut Vec<u8>,
    data: &Bytes,
    chunked: bool,
) -> io::Result<()> {
    if chunked {
        let _ = write!(out, "{:x}\r\n", data.len());
    }
    if out.len() + data.len() <= GATHER_BYTES {
        out.extend_from_slice(data);
    } else {
        write_both(io, out, data).await?;
        out.clear();
    }
    if chunked {
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

async fn flush<W: AsyncWrite + Unpin>(io: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Writes `first` then `second`, in as few system calls as the socket allows.
async fn write_both<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut first: &[u8],
    mut second: &[u8],
) -> io::Result<()> {
    while !first.is_empty() {
        let written = io
            .write_vectored(&[IoSlice::new(first), IoSlice::new(second)])
            .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if written < first.len() {
            first = &first[written..];
        } else {
            second = &second[written - first.len()..];
            first = &[];
        }
    }
    io.write_all(second).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::Response;
    use http_body_util::{Either, Full};
    use std::pin::pin;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn planned(
        head: bool,
        status: u16,
        pairs: &[(&'static str, &'static str)],
        size: Option<u64>,
    ) -> HeadPlan {
        let status = StatusCode::from_u16(status).unwrap();
        plan(head, status, (&headers(pairs), None), size, true)
    }

    fn head_text(status: u16, pairs: &[(&'static str, &'static str)], plan: HeadPlan) -> String {
        let mut out = Vec::new();
        let status = StatusCode::from_u16(status).unwrap();
        encode_head(&mut out, status, None, (&headers(pairs), None), plan);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_declared_length_is_used_as_it_is() {
        let plan = planned(false, 200, &[("content-length", "12")], None);
        assert_eq!(plan.framing, Framing::Length(12));
        assert!(plan.keep_length);
        assert_eq!(plan.add_length, None);
        let plan = planned(
            false,
            200,
            &[("content-length", "7"), ("content-length", "7")],
            None,
        );
        assert_eq!(plan.framing, Framing::Length(7));
    }

    #[test]
    fn a_known_size_gets_a_length_and_an_unknown_one_is_chunked() {
        let plan = planned(false, 200, &[], Some(5));
        assert_eq!(
            (plan.framing, plan.add_length),
            (Framing::Length(5), Some(5))
        );
        let plan = planned(false, 200, &[], None);
        assert_eq!(plan.framing, Framing::Chunked);
        for bad in [
            &[("content-length", "x")][..],
            &[("content-length", "3"), ("content-length", "4")],
            &[("content-length", "3"), ("content-length", "x")],
        ] {
            let plan = planned(false, 200, bad, None);
            assert_eq!(plan.framing, Framing::Chunked, "{bad:?}");
            assert!(!plan.keep_length);
            assert!(!head_text(200, bad, plan).contains("content-length"));
        }
    }

    #[test]
    fn head_204_and_304_answers_carry_no_content() {
        let plan = planned(true, 200, &[("content-length", "99")], Some(0));
        assert_eq!((plan.framing, plan.add_length), (Framing::Bodyless, None));
        assert!(
            head_text(200, &[("content-length", "99")], plan).contains("content-length: 99\r\n")
        );
        for status in [204, 304] {
            let plan = planned(false, status, &[("content-length", "99")], Some(0));
            assert_eq!(plan.framing, Framing::Bodyless);
            assert!(
                !head_text(status, &[("content-length", "99")], plan).contains("content-length")
            );
        }
    }

    #[test]
    fn a_response_asking_to_close_closes_and_framing_fields_are_the_lanes() {
        let pairs = [("connection", "close"), ("transfer-encoding", "chunked")];
        let plan = planned(false, 503, &pairs, Some(2));
        assert!(plan.close);
        let text = head_text(503, &pairs, plan);
        assert!(!text.contains("chunked"), "{text}");
        assert_eq!(text.matches("connection").count(), 1, "{text}");
        let status = StatusCode::OK;
        assert!(plan_close(status, false));
        assert!(!plan_close(status, true));
    }

    fn plan_close(status: StatusCode, keep_alive: bool) -> bool {
        plan(false, status, (&HeaderMap::new(), None), None, keep_alive).close
    }

    #[test]
    fn the_head_keeps_fields_in_order_and_adds_date_once() {
        let pairs = [("set-cookie", "a=1"), ("set-cookie", "b=2")];
        let plan = HeadPlan {
            framing: Framing::Chunked,
            keep_length: false,
            add_length: None,
            close: true,
            add_date: true,
        };
        let text = head_text(200, &pairs, plan);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "HTTP/1.1 200 OK");
        assert_eq!(
            lines[1..5],
            [
                "set-cookie: a=1",
                "set-cookie: b=2",
                "transfer-encoding: chunked",
                "connection: close"
            ]
        );
        assert!(lines[5].starts_with("date: "), "{text}");
        assert!(text.ends_with("\r\n\r\n"));

        let dated = [("date", "Sun, 06 Nov 1994 08:49:37 GMT")];
        let plan = planned(false, 599, &dated, Some(0));
        assert!(!plan.add_date);
        let mut out = Vec::new();
        let status = StatusCode::from_u16(599).unwrap();
        encode_head(
            &mut out,
            status,
            Some(b"Odd"),
            (&headers(&dated), None),
            plan,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 599 Odd\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 0\r\n\r\n"
        );
    }

    fn full(body: &'static [u8]) -> ProxyResponseBody {
        Either::Right(Full::new(Bytes::from_static(body)))
    }

    async fn written(response: Response<ProxyResponseBody>, head: bool) -> (String, bool) {
        let mut wire = Vec::new();
        let mut out = Vec::new();
        let (parts, body) = response.into_parts();
        let reusable = write(&mut wire, &mut out, &parts, pin!(body), head, true)
            .await
            .unwrap();
        (String::from_utf8(wire).unwrap(), reusable)
    }

    #[tokio::test]
    async fn a_small_answer_is_one_message_and_the_connection_stays() {
        let (wire, reusable) = written(Response::new(full(b"{\"ok\":1}")), false).await;
        assert!(
            wire.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 8\r\ndate: "),
            "{wire}"
        );
        assert!(wire.ends_with("\r\n\r\n{\"ok\":1}"), "{wire}");
        assert!(reusable);
    }

    #[tokio::test]
    async fn a_head_answer_sends_no_body() {
        let mut response = Response::new(full(b""));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("8"));
        let (wire, reusable) = written(response, true).await;
        assert!(wire.contains("content-length: 8\r\n"));
        assert!(wire.ends_with("\r\n\r\n"), "{wire}");
        assert!(reusable);
    }

    #[tokio::test]
    async fn a_body_longer_than_declared_is_cut_and_the_connection_closes() {
        let mut response = Response::new(full(b"0123456789"));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("4"));
        let (wire, reusable) = written(response, false).await;
        assert!(wire.ends_with("\r\n\r\n0123"), "{wire}");
        assert!(!reusable);
    }

    #[tokio::test]
    async fn large_pieces_are_written_from_where_they_lie_in_the_right_order() {
        let mut wire = Vec::new();
        let mut out = b"HEAD".to_vec();
        let big = Bytes::from(vec![b'x'; GATHER_BYTES + 1]);
        put(&mut wire, &mut out, &Bytes::from_static(b"ab"), true)
            .await
            .unwrap();
        put(&mut wire, &mut out, &big, true).await.unwrap();
        put(&mut wire, &mut out, &Bytes::from_static(b"c"), true)
            .await
            .unwrap();
        flush(&mut wire, &mut out).await.unwrap();
        let expected = [
            &b"HEAD2\r\nab\r\n"[..],
            format!("{:x}\r\n", big.len()).as_bytes(),
            &big,
            b"\r\n1\r\nc\r\n",
        ]
        .concat();
        assert_eq!(wire, expected);
    }
}
