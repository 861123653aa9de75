//! The upstream's response fields kept as the lines they came in.
//!
//! Most responses on the direct path are written straight back out by the
//! lane, so their fields are not turned into a map (see
//! [`super::field_lines`] for why): a [`RawFields`] marks the lines that are
//! not forwarded, the lane copies the others as they came, and a client
//! connection served by hyper, which writes heads from a map, gets one built
//! from them ([`RawFields::append_to`]).
//!
//! A head is kept raw only where forwarding it is a matter of leaving whole
//! lines out: every line ends in CRLF, Connection names nothing but `close`
//! and `keep-alive` (fields it names are hop-by-hop too, RFC 9110 §7.6.1, and
//! leaving them out takes a map), and there is no TE field (whose `trailers`
//! option the map path keeps). Other heads get a map, as before.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use super::field_lines::{bit, FieldKind, FieldLines, MAX_LINES};
use super::response_head::MAX_HEADERS;
use super::Span;

// One mask bit per field line.
const _: () = assert!(MAX_HEADERS <= MAX_LINES);

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
        let bit = bit(line);
        match kind {
            FieldKind::Connection
            | FieldKind::TransferEncoding
            | FieldKind::Upgrade
            | FieldKind::HopByHop
            | FieldKind::Te
            | FieldKind::RequestId => self.dropped |= bit,
            FieldKind::ContentLength => self.length |= bit,
            FieldKind::ContentType => {
                self.content_type.get_or_insert(value);
            }
            FieldKind::Date => self.has_date = true,
            _ => {}
        }
    }
}

/// A response head's fields as the bytes they came in, with the lines the
/// proxy leaves out marked.
#[derive(Debug)]
pub struct RawFields {
    lines: FieldLines,
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
        RawFields {
            lines: FieldLines::new(head, first_line),
            marks,
            content_length,
            request_id: None,
        }
    }

    pub fn content_type(&self) -> Option<&[u8]> {
        self.marks
            .content_type
            .map(|span| &self.lines.bytes()[span.range()])
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

    /// Appends the forwarded field lines and the request id;
    /// `keep_length`: whether Content-Length lines go too.
    pub fn write_to(&self, out: &mut Vec<u8>, keep_length: bool) {
        let left_out = if keep_length {
            self.marks.dropped
        } else {
            self.marks.dropped | self.marks.length
        };
        self.lines.write_to(out, left_out);
        if let Some(request_id) = &self.request_id {
            out.extend_from_slice(b"x-request-id: ");
            out.extend_from_slice(request_id.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Appends the forwarded fields to `map`, repeated ones in order, each
    /// value sharing the head's bytes. The request id is the caller's to add.
    pub fn append_to(&self, map: &mut HeaderMap) {
        self.lines.append_to(map, self.marks.dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::super::response_head::{self, Fields, ResponseHead};
    use super::*;

    /// The raw fields the parse keeps of a 200 answer with `fields`
    /// (CRLF-terminated lines).
    fn raw(fields: &str) -> RawFields {
        let wire = format!("HTTP/1.1 200 OK\r\n{fields}\r\n");
        let mut buf = bytes::BytesMut::from(wire.as_bytes());
        match response_head::parse(&mut buf, false, true) {
            Ok(Some(ResponseHead {
                fields: Fields::Raw(raw),
                ..
            })) => *raw,
            other => panic!("{wire:?} was not kept as lines: {other:?}"),
        }
    }

    fn written(raw: &RawFields, keep_length: bool) -> String {
        let mut out = Vec::new();
        raw.write_to(&mut out, keep_length);
        String::from_utf8(out).unwrap()
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
