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
//!   before the end, as a model server rejecting an upload does);
//! - every line ends in CRLF, so the fields can be forwarded as the lines
//!   they came in (see [`super::field_lines`]).
//!
//! Anything else is handed to hyper at this message boundary, before any of
//! its bytes are consumed, so hyper sees the connection exactly as the client
//! sent it from there on.
//!
//! This file needs only `bytes`, `http`, `httparse` and `memchr` (with
//! `field_lines.rs`), so the fuzz target `lane_request` includes it as it is.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Uri, Version};

use super::field_lines::{bit, FieldKind, FieldLines};

/// Most header fields a lane request may carry; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;
// One mask bit per field line.
const _: () = assert!(MAX_HEADERS <= super::field_lines::MAX_LINES);

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
    /// A line ended by a bare LF, which RFC 9112 §2.2 lets a recipient
    /// accept; hyper does.
    BareLf,
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
            HandoffReason::BareLf => "bare_lf",
            HandoffReason::Malformed => "malformed",
        }
    }
}

/// The bytes that open an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A request the lane serves.
#[derive(Debug)]
pub struct LaneRequest {
    /// The request with its whole body. Its header map is empty: the fields
    /// are in `fields`.
    pub request: Request<Bytes>,
    /// Boxed: the request moves through several futures, which copy what it
    /// holds inline at each step.
    pub fields: Box<RequestLines>,
    /// The client asked for the connection to close after this exchange.
    pub close: bool,
}

/// A lane request's fields as the lines they came in, with what the forward
/// path needs to know of them noted while they were read. Masks have one bit
/// per line ([`bit`]).
#[derive(Debug)]
pub struct RequestLines {
    pub lines: FieldLines,
    /// Connection, Keep-Alive and Proxy-Connection lines: hop-by-hop.
    pub hop_by_hop: u128,
    pub forwarded_for: u128,
    pub request_id: u128,
    /// The value of the only X-Request-Id line, when there is exactly one.
    pub(crate) only_request_id: Option<Span>,
    /// Connection names a field besides `close` and `keep-alive`, which
    /// must be left out too (RFC 9110 §7.6.1): the map path's rules apply.
    pub connection_names_other: bool,
    pub has_host: bool,
    pub has_forwarded_proto: bool,
    pub content_length: Option<u64>,
    /// The first Content-Type and `x-magma-sample` values, for payload
    /// analysis.
    content_type: Option<Span>,
    sample: Option<Span>,
    /// Lines the forward path decided not to send; set by it.
    pub left_out: u128,
}

impl RequestLines {
    pub fn content_type(&self) -> Option<&[u8]> {
        self.content_type
            .map(|span| &self.lines.bytes()[span.range()])
    }

    /// The value of `x-magma-sample`, if sent.
    pub fn sample(&self) -> Option<&[u8]> {
        self.sample.map(|span| &self.lines.bytes()[span.range()])
    }

    /// Appends every field to `map` as it came, hop-by-hop ones included,
    /// for the parts of the proxy that read a map.
    pub fn append_all_to(&self, map: &mut HeaderMap) {
        self.lines.append_to(map, 0);
    }
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
    /// Where the first field line starts.
    first_line: usize,
    marks: LineMarks,
    head_len: usize,
    body_len: usize,
    close: bool,
}

/// What the field lines said, by kind.
#[derive(Default)]
struct LineMarks {
    hop_by_hop: u128,
    forwarded_for: u128,
    request_id: u128,
    only_request_id: Option<Span>,
    connection_names_other: bool,
    has_host: bool,
    has_forwarded_proto: bool,
    content_length: Option<u64>,
    content_type: Option<Span>,
    sample: Option<Span>,
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
    build(head, head_bytes, body)
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

    // httparse also takes lines ended by a bare LF; those heads are not
    // forwarded line by line.
    if !buffer[..head_len].ends_with(b"\r\n\r\n") {
        return Err(handoff(HandoffReason::BareLf));
    }
    let first_line = match request.headers.first() {
        Some(field) => Span::of(buffer, field.name.as_bytes()).range().start,
        None => head_len - 2,
    };
    let mut marks = LineMarks::default();
    let mut close = false;
    for (line, field) in request.headers.iter().enumerate() {
        let name_start = Span::of(buffer, field.name.as_bytes()).range().start;
        if buffer[name_start - 2] != b'\r' {
            return Err(handoff(HandoffReason::BareLf));
        }
        match FieldKind::of(field.name.as_bytes()) {
            FieldKind::ContentLength => {
                let length = content_length(field.value).filter(|_| marks.content_length.is_none());
                marks.content_length = Some(length.ok_or(handoff(HandoffReason::Malformed))?);
            }
            FieldKind::TransferEncoding => return Err(handoff(HandoffReason::Chunked)),
            FieldKind::Expect => return Err(handoff(HandoffReason::Expect)),
            FieldKind::Upgrade => return Err(handoff(HandoffReason::Upgrade)),
            FieldKind::Te => return Err(handoff(HandoffReason::Te)),
            FieldKind::Connection => {
                marks.hop_by_hop |= bit(line);
                for option in field.value.split(|&b| b == b',') {
                    let option = option.trim_ascii();
                    if option.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if !(option.is_empty() || option.eq_ignore_ascii_case(b"keep-alive")) {
                        marks.connection_names_other = true;
                    }
                }
            }
            FieldKind::HopByHop => marks.hop_by_hop |= bit(line),
            FieldKind::Host => marks.has_host = true,
            FieldKind::RequestId => {
                marks.only_request_id =
                    (marks.request_id == 0).then(|| Span::of(buffer, field.value));
                marks.request_id |= bit(line);
            }
            FieldKind::ForwardedFor => marks.forwarded_for |= bit(line),
            FieldKind::ForwardedProto => marks.has_forwarded_proto = true,
            FieldKind::ContentType => {
                marks
                    .content_type
                    .get_or_insert(Span::of(buffer, field.value));
            }
            FieldKind::Sample => {
                marks.sample.get_or_insert(Span::of(buffer, field.value));
            }
            _ => {}
        }
    }
    Ok(Head {
        method,
        target,
        first_line,
        head_len,
        body_len: marks
            .content_length
            .map_or(0, |length| usize::try_from(length).unwrap_or(usize::MAX)),
        marks,
        close,
    })
}

fn handoff(reason: HandoffReason) -> NotRead {
    NotRead::Handoff(reason)
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`; anything else (a sign, a list,
/// blanks inside, more digits than fit) is not the lane's.
fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 15 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, digit| {
        n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Whether a Connection field value lists the `close` option (RFC 9112 §9.6).
pub(super) fn lists_close(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"))
}

fn build(head: Head, bytes: Bytes, body: Bytes) -> Parsed {
    let Ok(uri) = Uri::from_maybe_shared(bytes.slice(head.target.range())) else {
        return Parsed::Invalid("the request target is not a valid URI path");
    };
    let mut request = Request::new(body);
    *request.method_mut() = head.method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    let marks = head.marks;
    let fields = Box::new(RequestLines {
        lines: FieldLines::new(bytes, head.first_line),
        hop_by_hop: marks.hop_by_hop,
        forwarded_for: marks.forwarded_for,
        request_id: marks.request_id,
        only_request_id: marks
            .only_request_id
            .filter(|_| marks.request_id.count_ones() == 1),
        connection_names_other: marks.connection_names_other,
        has_host: marks.has_host,
        has_forwarded_proto: marks.has_forwarded_proto,
        content_length: marks.content_length,
        content_type: marks.content_type,
        sample: marks.sample,
        left_out: 0,
    });
    Parsed::Ready(LaneRequest {
        request,
        fields,
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
        assert!(request.headers().is_empty(), "the fields stay lines");
        let mut map = HeaderMap::new();
        lane.fields.append_all_to(&mut map);
        assert_eq!(map["host"], "m");
        let repeated: Vec<_> = map.get_all("x-a").iter().collect();
        assert_eq!(repeated, ["1", "2"]);
        assert_eq!(lane.fields.content_length, Some(7));
        assert!(lane.fields.has_host);
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
    fn the_lines_the_forward_path_replaces_or_drops_are_marked() {
        let (lane, _) = ready(
            b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nX-Forwarded-For: 1.1.1.1\r\n\
              Keep-Alive: 5\r\nX-Request-Id: abc\r\nProxy-Connection: x\r\n\
              x-forwarded-for: 2.2.2.2\r\nX-Forwarded-Proto: https\r\n\r\n",
        );
        let fields = &lane.fields;
        assert_eq!(fields.hop_by_hop, bit(0) | bit(2) | bit(4));
        assert_eq!(fields.forwarded_for, bit(1) | bit(5));
        assert_eq!(fields.request_id, bit(3));
        let id = fields.only_request_id.unwrap();
        assert_eq!(&fields.lines.bytes()[id.range()], b"abc");
        assert!(fields.has_forwarded_proto && !fields.has_host);
        assert_eq!(fields.content_type(), None);
        assert!(!fields.connection_names_other);

        let (lane, _) = ready(
            b"GET / HTTP/1.1\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n\
              Content-Type: application/json\r\nX-Magma-Sample: always\r\n\
              content-type: text/plain\r\n\r\n",
        );
        assert!(lane.fields.only_request_id.is_none());
        assert_eq!(lane.fields.content_type(), Some(&b"application/json"[..]));
        assert_eq!(lane.fields.sample(), Some(&b"always"[..]));
        let (lane, _) = ready(b"GET / HTTP/1.1\r\nConnection: close, x-trace\r\n\r\n");
        assert!(lane.fields.connection_names_other && lane.close);
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
            (b"GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\r\n", BareLf),
            (b"GET / HTTP/1.1\nA: 1\r\n\r\n", BareLf),
            (b"GET / HTTP/1.1\r\nA: 1\n\n", BareLf),
            (b"GET / HTTP/1.1\n\n", BareLf),
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
