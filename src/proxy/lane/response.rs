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
use std::pin::pin;
use std::task::Poll;

use bytes::Bytes;
use http::header::{HeaderMap, CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::date;
use crate::proxy::forward::ProxyResponseBody;

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
    /// Write a Content-Length of this value (the response had none).
    pub add_length: Option<u64>,
    /// Write `Connection: close`.
    pub close: bool,
}

/// Decides the framing, and removes the fields the lane writes itself.
///
/// `keep_alive` is the connection's wish; a response that says
/// `Connection: close` (the proxy's own 503 and 413 do) overrides it.
pub fn plan(
    head_request: bool,
    status: StatusCode,
    headers: &mut HeaderMap,
    exact_size: Option<u64>,
    keep_alive: bool,
) -> HeadPlan {
    let close = !keep_alive || says_close(headers);
    headers.remove(CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    let framing_of = |framing| HeadPlan {
        framing,
        add_length: None,
        close,
    };
    if head_request {
        return framing_of(Framing::Bodyless);
    }
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        headers.remove(CONTENT_LENGTH);
        return framing_of(Framing::Bodyless);
    }
    match declared_length(headers) {
        Some(Ok(length)) => return framing_of(Framing::Length(length)),
        // Unusable values are not repeated to the client; the body's own
        // size (or chunking) frames it instead.
        Some(Err(())) => {
            headers.remove(CONTENT_LENGTH);
        }
        None => {}
    }
    match exact_size {
        Some(length) => HeadPlan {
            framing: Framing::Length(length),
            add_length: Some(length),
            close,
        },
        None => framing_of(Framing::Chunked),
    }
}

fn says_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// The Content-Length fields' value: `None` without any, an error when they
/// are not one number.
fn declared_length(headers: &HeaderMap) -> Option<Result<u64, ()>> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let first = values.next()?;
    let parsed = std::str::from_utf8(first.as_bytes())
        .ok()
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse::<u64>().ok());
    Some(match parsed {
        Some(length) if values.all(|other| other == first) => Ok(length),
        _ => Err(()),
    })
}

/// Appends the status line and header section.
pub fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    reason: Option<&[u8]>,
    headers: &HeaderMap,
    plan: HeadPlan,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    let canonical = status.canonical_reason().map(str::as_bytes);
    out.extend_from_slice(reason.or(canonical).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
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
    if !headers.contains_key(DATE) {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `response` and reports whether the connection can carry another
/// request: the body ended cleanly at its length and nobody asked to close.
pub async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut Vec<u8>,
    response: Response<ProxyResponseBody>,
    head_request: bool,
    keep_alive: bool,
) -> io::Result<bool> {
    let (mut parts, body) = response.into_parts();
    let plan = plan(
        head_request,
        parts.status,
        &mut parts.headers,
        body.size_hint().exact(),
        keep_alive,
    );
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
    out.clear();
    encode_head(
        out,
        parts.status,
        reason.map(|r| r.as_bytes()),
        &parts.headers,
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
    body: ProxyResponseBody,
    framing: Framing,
) -> io::Result<bool> {
    let mut body = pin!(body);
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
    use http_body_util::{Either, Full};

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
    ) -> (HeadPlan, HeaderMap) {
        let mut map = headers(pairs);
        let status = StatusCode::from_u16(status).unwrap();
        (plan(head, status, &mut map, size, true), map)
    }

    #[test]
    fn a_declared_length_is_used_as_it_is() {
        let (plan, map) = planned(false, 200, &[("content-length", "12")], None);
        assert_eq!(plan.framing, Framing::Length(12));
        assert_eq!(plan.add_length, None);
        assert_eq!(map["content-length"], "12");
    }

    #[test]
    fn a_known_size_gets_a_length_and_an_unknown_one_is_chunked() {
        let (plan, _) = planned(false, 200, &[], Some(5));
        assert_eq!(
            (plan.framing, plan.add_length),
            (Framing::Length(5), Some(5))
        );
        let (plan, _) = planned(false, 200, &[], None);
        assert_eq!(plan.framing, Framing::Chunked);
        let (plan, map) = planned(false, 200, &[("content-length", "x")], None);
        assert_eq!(plan.framing, Framing::Chunked);
        assert!(!map.contains_key("content-length"));
        let (plan, _) = planned(
            false,
            200,
            &[("content-length", "3"), ("content-length", "4")],
            None,
        );
        assert_eq!(plan.framing, Framing::Chunked);
    }

    #[test]
    fn head_204_and_304_answers_carry_no_content() {
        let (plan, map) = planned(true, 200, &[("content-length", "99")], Some(0));
        assert_eq!((plan.framing, plan.add_length), (Framing::Bodyless, None));
        assert_eq!(map["content-length"], "99");
        let (plan, map) = planned(false, 304, &[("content-length", "99")], Some(0));
        assert_eq!(plan.framing, Framing::Bodyless);
        assert!(!map.contains_key("content-length"));
        let (plan, map) = planned(false, 204, &[("content-length", "0")], Some(0));
        assert_eq!(plan.framing, Framing::Bodyless);
        assert!(!map.contains_key("content-length"));
    }

    #[test]
    fn a_response_asking_to_close_closes() {
        let (plan, map) = planned(false, 503, &[("connection", "close")], Some(2));
        assert!(plan.close);
        assert!(!map.contains_key("connection"));
        let mut map = HeaderMap::new();
        assert!(plan_close(&mut map, false));
        assert!(!plan_close(&mut map, true));
    }

    fn plan_close(map: &mut HeaderMap, keep_alive: bool) -> bool {
        plan(false, StatusCode::OK, map, None, keep_alive).close
    }

    #[test]
    fn the_head_keeps_fields_in_order_and_adds_date_once() {
        let map = headers(&[("set-cookie", "a=1"), ("set-cookie", "b=2")]);
        let plan = HeadPlan {
            framing: Framing::Chunked,
            add_length: None,
            close: true,
        };
        let mut out = Vec::new();
        encode_head(&mut out, StatusCode::OK, None, &map, plan);
        let text = String::from_utf8(out).unwrap();
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

        let mut out = Vec::new();
        let dated = headers(&[("date", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        let plan = HeadPlan {
            framing: Framing::Length(0),
            add_length: Some(0),
            close: false,
        };
        encode_head(
            &mut out,
            StatusCode::from_u16(599).unwrap(),
            Some(b"Odd"),
            &dated,
            plan,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 599 Odd\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 0\r\n\r\n"
        );
    }

    fn full(body: &'static [u8]) -> ProxyResponseBody {
        Either::Right(Full::new(Bytes::from_static(body)))
    }

    async fn written(response: Response<ProxyResponseBody>, head: bool) -> (String, bool) {
        let mut wire = Vec::new();
        let mut out = Vec::new();
        let reusable = write(&mut wire, &mut out, response, head, true)
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
