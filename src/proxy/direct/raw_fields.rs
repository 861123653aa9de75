//! The upstream's header section kept as the bytes it came in.
//!
//! A response head read on the direct path is, most of the time, written
//! straight back out by the lane. Turning its fields into a `HeaderMap` (a
//! name lookup, a value check and a table insertion per field, a second pass
//! for the hop-by-hop fields and the request id, then freeing it all) only to
//! encode them again was the costliest step of a small response. A
//! [`RawFields`] keeps the head's bytes and marks the lines that are not
//! forwarded; the lane copies the others as they came, and a client
//! connection served by hyper, which writes heads from a map, gets one built
//! from them ([`RawFields::append_to`]).
//!
//! A head is kept raw only where forwarding it is a matter of leaving whole
//! lines out: every line ends in CRLF, Connection names nothing but `close`
//! and `keep-alive` (fields it names are hop-by-hop too, RFC 9110 §7.6.1, and
//! leaving them out takes a map), and there is no TE field (whose `trailers`
//! option the map path keeps). Other heads get a map, as before.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::response_head::MAX_HEADERS;
use super::Span;

// One bit per field line.
const _: () = assert!(MAX_HEADERS <= 128);

/// What a field name means to the forward path. Names are compared without
/// regard to case (RFC 9110 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    ContentLength,
    TransferEncoding,
    Connection,
    /// The other hop-by-hop fields: Keep-Alive, Proxy-Connection, Upgrade.
    HopByHop,
    Te,
    Date,
    ContentType,
    RequestId,
    Other,
}

impl FieldKind {
    /// `name` is a token (RFC 9110 §5.6.2), as httparse has checked.
    pub fn of(name: &[u8]) -> FieldKind {
        let is = |known: &[u8]| is_token_ignoring_case(name, known);
        match name.len() {
            2 if is(b"te") => FieldKind::Te,
            4 if is(b"date") => FieldKind::Date,
            7 if is(b"upgrade") => FieldKind::HopByHop,
            10 if is(b"connection") => FieldKind::Connection,
            10 if is(b"keep-alive") => FieldKind::HopByHop,
            12 if is(b"content-type") => FieldKind::ContentType,
            12 if is(b"x-request-id") => FieldKind::RequestId,
            14 if is(b"content-length") => FieldKind::ContentLength,
            16 if is(b"proxy-connection") => FieldKind::HopByHop,
            17 if is(b"transfer-encoding") => FieldKind::TransferEncoding,
            _ => FieldKind::Other,
        }
    }
}

/// Whether the token `name` is `known` (lowercase letters and `-`) in any
/// case. Setting bit 0x20 lowercases a letter and turns no other token byte
/// into a lowercase letter or `-` (only CR, which no token holds, becomes
/// `-`), so one OR and compare per byte decide it, with no branch per byte.
fn is_token_ignoring_case(name: &[u8], known: &[u8]) -> bool {
    name.len() == known.len()
        && name
            .iter()
            .zip(known)
            .fold(0, |differ, (&byte, &want)| differ | ((byte | 0x20) ^ want))
            == 0
}

/// What the parse learned of each field line, by the line's index.
#[derive(Debug, Default, Clone, Copy)]
pub struct LineMarks {
    /// Lines not forwarded: hop-by-hop fields, and the upstream's own
    /// X-Request-Id, which the proxy's replaces.
    dropped: u128,
    /// Content-Length lines, left out of an answer that carries no content.
    length: u128,
    content_type: Option<Span>,
    has_date: bool,
}

impl LineMarks {
    pub(crate) fn note(&mut self, line: usize, kind: FieldKind, value: Span) {
        let bit = 1u128 << line;
        match kind {
            FieldKind::Connection
            | FieldKind::TransferEncoding
            | FieldKind::HopByHop
            | FieldKind::Te
            | FieldKind::RequestId => self.dropped |= bit,
            FieldKind::ContentLength => self.length |= bit,
            FieldKind::ContentType => {
                self.content_type.get_or_insert(value);
            }
            FieldKind::Date => self.has_date = true,
            FieldKind::Other => {}
        }
    }
}

/// A response head's fields as the bytes they came in, with the lines the
/// proxy leaves out marked.
#[derive(Debug)]
pub struct RawFields {
    /// The whole head, status line and final CRLF included.
    head: Bytes,
    /// Where the first field line starts (just past the status line).
    first_line: u32,
    marks: LineMarks,
    /// The Content-Length all copies agree on.
    content_length: Option<u64>,
    /// Written after the upstream's fields; set by the forward path.
    request_id: Option<HeaderValue>,
}

impl RawFields {
    /// `head` must end in CRLF CRLF and every field line in CRLF: the parse
    /// checks this before it keeps a head raw.
    pub fn new(
        head: Bytes,
        first_line: usize,
        marks: LineMarks,
        content_length: Option<u64>,
    ) -> Self {
        debug_assert!(head.ends_with(b"\r\n\r\n"));
        RawFields {
            head,
            first_line: first_line as u32,
            marks,
            content_length,
            request_id: None,
        }
    }

    pub fn content_type(&self) -> Option<&[u8]> {
        self.marks.content_type.map(|span| &self.head[span.range()])
    }

    pub fn has_date(&self) -> bool {
        self.marks.has_date
    }

    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The X-Request-Id sent after the upstream's fields.
    pub fn set_request_id(&mut self, request_id: HeaderValue) {
        self.request_id = Some(request_id);
    }

    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.request_id.as_ref()
    }

    /// The field lines, CRLF included, without the final empty line.
    fn block(&self) -> &[u8] {
        &self.head[self.first_line as usize..self.head.len() - 2]
    }

    /// Appends the forwarded field lines and the request id;
    /// `keep_length`: whether Content-Length lines go too.
    pub fn write_to(&self, out: &mut Vec<u8>, keep_length: bool) {
        let block = self.block();
        let left_out = if keep_length {
            self.marks.dropped
        } else {
            self.marks.dropped | self.marks.length
        };
        if left_out == 0 {
            out.extend_from_slice(block);
        } else {
            // Runs of kept lines go in one copy each.
            let mut run_start = 0;
            let mut line_start = 0;
            for (line, end) in memchr::memchr_iter(b'\n', block).enumerate() {
                let next = end + 1;
                if left_out & (1u128 << line) != 0 {
                    out.extend_from_slice(&block[run_start..line_start]);
                    run_start = next;
                }
                line_start = next;
            }
            out.extend_from_slice(&block[run_start..]);
        }
        if let Some(request_id) = &self.request_id {
            out.extend_from_slice(b"x-request-id: ");
            out.extend_from_slice(request_id.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Appends the forwarded fields to `map`, repeated ones in order, each
    /// value sharing the head's bytes. The request id is the caller's to add.
    pub fn append_to(&self, map: &mut HeaderMap) {
        let start = self.first_line as usize;
        let block = self.block();
        let mut line_start = 0;
        for (line, end) in memchr::memchr_iter(b'\n', block).enumerate() {
            let text = &block[line_start..end - 1];
            let offset = start + line_start;
            line_start = end + 1;
            if self.marks.dropped & (1u128 << line) != 0 {
                continue;
            }
            let Some(colon) = memchr::memchr(b':', text) else {
                continue;
            };
            let value = text[colon + 1..].trim_ascii();
            let value_start = offset + (value.as_ptr() as usize - text.as_ptr() as usize);
            // The parse accepted both (httparse checks names and values as
            // the map's types do), so neither fails.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&text[..colon]),
                HeaderValue::from_maybe_shared(
                    self.head.slice(value_start..value_start + value.len()),
                ),
            ) {
                map.append(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks the lines of `fields` (CRLF-terminated lines) as a parse would.
    fn raw(fields: &str) -> RawFields {
        let head = format!("HTTP/1.1 200 OK\r\n{fields}\r\n");
        let first_line = "HTTP/1.1 200 OK\r\n".len();
        let mut marks = LineMarks::default();
        let mut at = first_line;
        for (line, text) in fields.split_inclusive("\r\n").enumerate() {
            let (name, _) = text.split_once(':').unwrap();
            let value_start = at + name.len() + 1;
            let value = head.as_bytes()[value_start..at + text.len() - 2].trim_ascii();
            let value = Span::of(head.as_bytes(), value);
            marks.note(line, FieldKind::of(name.as_bytes()), value);
            at += text.len();
        }
        RawFields::new(Bytes::from(head), first_line, marks, None)
    }

    fn written(raw: &RawFields, keep_length: bool) -> String {
        let mut out = Vec::new();
        raw.write_to(&mut out, keep_length);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names_are_known_whatever_their_case() {
        assert_eq!(FieldKind::of(b"Content-Length"), FieldKind::ContentLength);
        assert_eq!(FieldKind::of(b"TE"), FieldKind::Te);
        assert_eq!(FieldKind::of(b"X-Request-ID"), FieldKind::RequestId);
        assert_eq!(FieldKind::of(b"Keep-Alive"), FieldKind::HopByHop);
        assert_eq!(FieldKind::of(b"PROXY-CONNECTION"), FieldKind::HopByHop);
        assert_eq!(FieldKind::of(b"upgrade"), FieldKind::HopByHop);
        assert_eq!(FieldKind::of(b"Content-Typo"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"dates"), FieldKind::Other);
        // Token bytes next to letters and `-` in the table stay unequal.
        assert_eq!(FieldKind::of(b"content_length"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"Content^Length"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"t~"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"D@te"), FieldKind::Other);
    }

    #[test]
    fn plain_lines_are_copied_as_they_came() {
        let fields = "Server: uvicorn\r\nContent-Type:application/json \r\nDate: x\r\n";
        let raw = raw(fields);
        assert_eq!(written(&raw, true), fields);
        assert_eq!(raw.content_type(), Some(&b"application/json"[..]));
        assert!(raw.has_date());
    }

    #[test]
    fn hop_by_hop_lines_and_the_upstreams_request_id_are_left_out() {
        let mut raw = raw(
            "Connection: keep-alive\r\nA: 1\r\nKeep-Alive: timeout=5\r\nX-Request-Id: up\r\n\
             B: 2\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\nC: 3\r\n",
        );
        raw.set_request_id(HeaderValue::from_static("proxy-id"));
        assert_eq!(
            written(&raw, true),
            "A: 1\r\nB: 2\r\nC: 3\r\nx-request-id: proxy-id\r\n"
        );
        let mut map = HeaderMap::new();
        raw.append_to(&mut map);
        let pairs: Vec<_> = map
            .iter()
            .map(|(name, value)| format!("{name}={}", value.to_str().unwrap()))
            .collect();
        assert_eq!(pairs, ["a=1", "b=2", "c=3"]);
        assert_eq!(raw.request_id().unwrap(), "proxy-id");
    }

    #[test]
    fn content_length_lines_go_only_when_kept() {
        let raw = raw("Content-Length: 2\r\nA: 1\r\nContent-Length: 2\r\n");
        assert_eq!(
            written(&raw, true),
            "Content-Length: 2\r\nA: 1\r\nContent-Length: 2\r\n"
        );
        assert_eq!(written(&raw, false), "A: 1\r\n");
    }

    #[test]
    fn the_map_gets_trimmed_values_in_order() {
        let raw = raw("Set-Cookie: a=1\r\nSet-Cookie:  b=2  \r\nX-Empty:\r\n");
        let mut map = HeaderMap::new();
        raw.append_to(&mut map);
        let cookies: Vec<_> = map.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(map["x-empty"], "");
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn a_head_without_fields_writes_only_the_request_id() {
        let mut raw = raw("");
        assert_eq!(written(&raw, true), "");
        raw.set_request_id(HeaderValue::from_static("id"));
        assert_eq!(written(&raw, false), "x-request-id: id\r\n");
    }
}
