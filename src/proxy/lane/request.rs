//! Which requests the lane takes, and turning their bytes into a request.
//!
//! The lane takes only the plain case, and says so per request:
//! - HTTP/1.1 (HTTP/1.0's close-delimited answers and missing Host are
//!   hyper's to handle);
//! - a request target in origin form (`/path?query`, RFC 9112 §3.2.1), so no
//!   CONNECT and no absolute or asterisk form;
//! - no Transfer-Encoding, so the body is framed by at most one
//!   Content-Length (RFC 9112 §6.3: "If a message is received without
//!   Transfer-Encoding and with an invalid Content-Length header field, then
//!   the message framing is invalid"; several fields or a list go to hyper,
//!   whose path answers the ambiguous ones 400);
//! - no Expect (the `100 Continue` interim answer is hyper's), no Upgrade
//!   (tunnels are hyper's), and no TE (trailers are only sent to a client
//!   that asked for them, which is hyper's encoder's rule);
//! - head and whole body already read: a body still on its way is streamed
//!   by hyper, so the upstream gets each piece as it arrives (and can answer
//!   before the end, as a model server rejecting an upload does).
//!
//! Anything else is handed to hyper at this message boundary, before any of
//! its bytes are consumed, so hyper sees the connection exactly as the client
//! sent it from there on.
//!
//! This file needs only `bytes`, `http` and `httparse`, so the fuzz target
//! `lane_request` includes it as it is.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};

/// Most header fields a lane request may carry; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;

/// What the buffered bytes hold.
// Returned once per request and moved straight into the exchange: boxing the
// request would cost an allocation each time for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// A whole request the lane serves; its bytes are consumed from the buffer.
    Ready(LaneRequest),
    /// Part of a head: more bytes are needed before anything is decided.
    PartialHead,
    /// Not a request for the lane: hyper serves the connection from here.
    Handoff(HandoffReason),
    /// A head the lane accepted but whose target or a field value cannot be
    /// represented; answered 400 and the connection closed.
    Invalid(&'static str),
}

/// Why a request went to hyper; the values of the handoff counter's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffReason {
    Http2,
    Http10,
    Chunked,
    Expect,
    Upgrade,
    Te,
    /// CONNECT, or a target not in origin form.
    Target,
    /// Head or body beyond the read buffer or the head limit, or too many fields.
    Large,
    /// The head came without all of its body: the body is streamed, so the
    /// upstream sees it (and may answer) as it arrives.
    BodyPending,
    Malformed,
}

impl HandoffReason {
    pub const fn label(self) -> &'static str {
        match self {
            HandoffReason::Http2 => "http2",
            HandoffReason::Http10 => "http1_0",
            HandoffReason::Chunked => "chunked",
            HandoffReason::Expect => "expect",
            HandoffReason::Upgrade => "upgrade",
            HandoffReason::Te => "te",
            HandoffReason::Target => "target",
            HandoffReason::Large => "large",
            HandoffReason::BodyPending => "body_pending",
            HandoffReason::Malformed => "malformed",
        }
    }
}

/// The bytes that open an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A request the lane serves.
#[derive(Debug)]
pub struct LaneRequest {
    /// The request with its whole body.
    pub request: Request<Bytes>,
    /// The client asked for the connection to close after this exchange.
    pub close: bool,
}

/// Where one piece of a head lies in the buffer it was parsed from, kept
/// instead of a borrowed slice so the buffer can be split afterwards. Heads
/// are far below 4 GiB (the lane's and the upstream's limits are 16 and
/// 64 KiB).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `part`'s place in `base`; httparse returns slices of the buffer it
    /// parsed, so the offset cannot underflow.
    pub(crate) fn of(base: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - base.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// What the head said, with positions instead of borrowed slices so the
/// buffer can be split afterwards.
struct Head {
    method: Method,
    target: Span,
    fields: Vec<(HeaderName, Span)>,
    head_len: usize,
    body_len: usize,
    close: bool,
}

/// Reads the next request from `buffer`, consuming its bytes when it is `Ready`.
pub fn parse(buffer: &mut BytesMut, max_head_bytes: usize) -> Parsed {
    let head = match read_head(buffer, max_head_bytes) {
        Ok(head) => head,
        Err(NotRead::Partial) => return Parsed::PartialHead,
        Err(NotRead::Handoff(reason)) => return Parsed::Handoff(reason),
    };
    let total = head.head_len + head.body_len;
    if buffer.len() < total {
        return Parsed::Handoff(HandoffReason::BodyPending);
    }
    let head_bytes = buffer.split_to(head.head_len).freeze();
    let body = buffer.split_to(head.body_len).freeze();
    build(head, &head_bytes, body)
}

/// Why a head was not read: it is not all there, or it is not the lane's.
#[derive(Debug)]
enum NotRead {
    Partial,
    Handoff(HandoffReason),
}

fn read_head(buffer: &[u8], max_head_bytes: usize) -> Result<Head, NotRead> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let head_len = match request.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() <= max_head_bytes => {
            return Err(NotRead::Partial)
        }
        // Hyper gives each of these its proper answer.
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Err(handoff(HandoffReason::Large))
        }
        Err(_) if buffer.starts_with(H2_PREFACE) => return Err(handoff(HandoffReason::Http2)),
        Err(_) => return Err(handoff(HandoffReason::Malformed)),
    };
    if head_len > max_head_bytes {
        return Err(handoff(HandoffReason::Large));
    }
    if request.version != Some(1) {
        return Err(handoff(HandoffReason::Http10));
    }
    let method = match request.method.map(str::as_bytes).map(Method::from_bytes) {
        Some(Ok(method)) if method != Method::CONNECT => method,
        _ => return Err(handoff(HandoffReason::Target)),
    };
    let target = match request.path {
        Some(path) if path.starts_with('/') => Span::of(buffer, path.as_bytes()),
        _ => return Err(handoff(HandoffReason::Target)),
    };

    let mut fields = Vec::with_capacity(request.headers.len());
    let mut body_len = None;
    let mut close = false;
    for field in request.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(field.name.as_bytes()) else {
            return Err(handoff(HandoffReason::Malformed));
        };
        match name {
            http::header::CONTENT_LENGTH => {
                let length = content_length(field.value).filter(|_| body_len.is_none());
                body_len = Some(length.ok_or(handoff(HandoffReason::Malformed))?);
            }
            http::header::TRANSFER_ENCODING => return Err(handoff(HandoffReason::Chunked)),
            http::header::EXPECT => return Err(handoff(HandoffReason::Expect)),
            http::header::UPGRADE => return Err(handoff(HandoffReason::Upgrade)),
            http::header::TE => return Err(handoff(HandoffReason::Te)),
            http::header::CONNECTION => close |= lists_close(field.value),
            _ => {}
        }
        fields.push((name, Span::of(buffer, field.value)));
    }
    Ok(Head {
        method,
        target,
        fields,
        head_len,
        body_len: body_len.unwrap_or(0),
        close,
    })
}

fn handoff(reason: HandoffReason) -> NotRead {
    NotRead::Handoff(reason)
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`; anything else (a sign, a list,
/// blanks inside, more digits than fit) is not the lane's.
fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 15 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0usize, |n, digit| {
        n.checked_mul(10)?.checked_add(usize::from(digit - b'0'))
    })
}

/// Whether a Connection field value lists the `close` option (RFC 9112 §9.6).
pub(super) fn lists_close(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"))
}

fn build(head: Head, bytes: &Bytes, body: Bytes) -> Parsed {
    let slice = |span: Span| bytes.slice(span.range());
    let Ok(uri) = Uri::from_maybe_shared(slice(head.target)) else {
        return Parsed::Invalid("the request target is not a valid URI path");
    };
    let mut request = Request::new(body);
    // Filled in place: a map built beside it would be moved in and the
    // request's empty one dropped. The fields the forward path adds are
    // written beside the map, not inserted (`headers::AddedFields`), so it
    // needs no spare room.
    let headers = request.headers_mut();
    headers.reserve(head.fields.len());
    for (name, span) in head.fields {
        let Ok(value) = HeaderValue::from_maybe_shared(slice(span)) else {
            return Parsed::Invalid("a header field value holds a byte that is not allowed");
        };
        headers.append(name, value);
    }
    *request.method_mut() = head.method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    Parsed::Ready(LaneRequest {
        request,
        close: head.close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 8192;

    fn parse_all(text: &[u8]) -> (Parsed, BytesMut) {
        let mut buffer = BytesMut::from(text);
        let parsed = parse(&mut buffer, LIMIT);
        (parsed, buffer)
    }

    fn ready(text: &[u8]) -> (LaneRequest, BytesMut) {
        match parse_all(text) {
            (Parsed::Ready(request), rest) => (request, rest),
            (other, _) => panic!("expected a lane request, got {other:?}"),
        }
    }

    fn handoff_reason(text: &[u8]) -> Option<HandoffReason> {
        let (parsed, rest) = parse_all(text);
        // A handed-off request leaves every byte in place for hyper.
        assert_eq!(&rest[..], text);
        match parsed {
            Parsed::Handoff(reason) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn a_plain_post_is_read_with_its_body_and_the_rest_left() {
        let wire = b"POST /predict?x=1 HTTP/1.1\r\nHost: m\r\nContent-Length: 7\r\nX-A: 1\r\nX-A: 2\r\n\r\n{\"a\":1}GET / HTTP/1.1\r\n";
        let (lane, rest) = ready(wire);
        let request = &lane.request;
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/predict?x=1");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()["host"], "m");
        let repeated: Vec<_> = request.headers().get_all("x-a").iter().collect();
        assert_eq!(repeated, ["1", "2"]);
        assert_eq!(request.body(), "{\"a\":1}");
        assert!(!lane.close);
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn connection_close_is_noticed_in_any_case_and_list_position() {
        let (lane, _) = ready(b"GET / HTTP/1.1\r\nConnection: foo, CLOSE\r\n\r\n");
        assert!(lane.close);
        let (lane, _) = ready(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n");
        assert!(!lane.close);
    }

    #[test]
    fn a_request_without_length_has_an_empty_body() {
        let (lane, rest) = ready(b"GET /health HTTP/1.1\r\nHost: m\r\n\r\n");
        assert!(lane.request.body().is_empty());
        assert!(rest.is_empty());
    }

    #[test]
    fn a_partial_head_waits_and_a_partial_body_is_streamed_by_hyper() {
        let (parsed, rest) = parse_all(b"POST / HTTP/1.1\r\nContent-Le");
        assert!(matches!(parsed, Parsed::PartialHead));
        assert_eq!(rest.len(), 27);
        let wire = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345";
        assert_eq!(handoff_reason(wire), Some(HandoffReason::BodyPending));
    }

    #[test]
    fn everything_outside_the_plain_case_goes_to_hyper_untouched() {
        use HandoffReason::*;
        for (wire, reason) in [
            (
                &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
                Chunked,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx",
                Malformed,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", Malformed),
            (
                b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                Expect,
            ),
            (
                b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
                Upgrade,
            ),
            (b"GET / HTTP/1.1\r\nTE: trailers\r\n\r\n", Te),
            (b"GET / HTTP/1.0\r\n\r\n", Http10),
            (b"GET http://m/ HTTP/1.1\r\n\r\n", Target),
            (b"OPTIONS * HTTP/1.1\r\n\r\n", Target),
            (b"CONNECT m:443 HTTP/1.1\r\n\r\n", Target),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Http2),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", Malformed),
        ] {
            assert_eq!(
                handoff_reason(wire),
                Some(reason),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn heads_over_the_limit_or_with_too_many_fields_go_to_hyper() {
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', LIMIT));
        long.extend(b"\r\n\r\n");
        assert_eq!(handoff_reason(&long), Some(HandoffReason::Large));
        let mut partial_long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        partial_long.extend(std::iter::repeat_n(b'a', LIMIT));
        assert_eq!(handoff_reason(&partial_long), Some(HandoffReason::Large));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend(b"\r\n");
        assert_eq!(handoff_reason(&many), Some(HandoffReason::Large));
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"0012"), Some(12));
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"1 2"), None);
        assert_eq!(content_length(b"-1"), None);
        assert_eq!(content_length(b"9999999999999999"), None);
    }
}
