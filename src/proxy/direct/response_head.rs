//! The upstream's response head: status line and header section parsed with
//! httparse, and the body length decided by RFC 9112 §6.3.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use super::error::DirectError;
use super::field_lines::FieldKind;
use super::raw_fields::{LineMarks, RawFields};
use super::Span;

/// Most header fields accepted in one head or trailer section (hyper's
/// default is 100 as well).
pub const MAX_HEADERS: usize = 100;
/// Largest response head (or trailer section) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, 1xx, 204 and 304 (rule 1), or
    /// `Content-Length: 0`.
    Empty,
    /// Rule 6: exactly this many bytes.
    Length(u64),
    /// Rule 4: the chunked transfer coding is the final coding.
    Chunked,
    /// Rules 4 and 8: the body ends when the upstream closes the connection.
    UntilClose,
}

#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    /// The reason phrase when it differs from the status code's canonical one,
    /// so the client sees the upstream's own words.
    pub reason: Option<Vec<u8>>,
    pub fields: Fields,
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// The head's fields: as they came when forwarding them only leaves lines
/// out (see [`RawFields`]), in a map otherwise.
#[derive(Debug)]
pub enum Fields {
    /// Boxed: the response moves through several futures, which copy
    /// whatever it holds inline at each step.
    Raw(Box<RawFields>),
    Map(HeaderMap),
}

/// Parses a response head at the start of `buf` and takes its bytes out of
/// it. `Ok(None)`: incomplete, read more (nothing is taken). `keep_lines`:
/// keep the fields as lines where the head allows it, else build a map.
///
/// Field values are slices of the head's bytes, not copies: the head is
/// split off the connection's buffer once and each value shares it.
pub fn parse(
    buf: &mut BytesMut,
    request_was_head: bool,
    keep_lines: bool,
) -> Result<Option<ResponseHead>, DirectError> {
    let mut spans = [FieldSpans::default(); MAX_HEADERS];
    let (length, status, version, reason, field_count) = {
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => return Ok(None),
            Ok(httparse::Status::Partial) => {
                return Err(DirectError::Malformed("the response head is too large"))
            }
            Err(error) => return Err(DirectError::Parse(error)),
        };
        let status = response
            .code
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or(DirectError::Malformed("invalid status code"))?;
        let version = match response.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let reason = response
            .reason
            .filter(|reason| Some(*reason) != status.canonical_reason())
            .map(|reason| reason.as_bytes().to_vec());
        for (span, field) in spans.iter_mut().zip(response.headers.iter()) {
            *span = FieldSpans {
                name: Span::of(buf, field.name.as_bytes()),
                value: Span::of(buf, field.value),
            };
        }
        (length, status, version, reason, response.headers.len())
    };
    let head = buf.split_to(length).freeze();
    let spans = &spans[..field_count];
    let mut facts = FramingFields::default();
    let mut marks = LineMarks::default();
    // httparse also takes lines ended by a bare LF; such a head is not
    // copied as it came.
    let mut crlf_lines = head.ends_with(b"\r\n\r\n");
    for (line, span) in spans.iter().enumerate() {
        let kind = FieldKind::of(&head[span.name.range()]);
        facts.note(kind, &head[span.value.range()]);
        marks.note(line, kind, span.value);
        crlf_lines &= head[span.name.range().start - 2] == b'\r';
    }
    let framing = facts.framing(status, request_was_head)?;
    let keep_alive = framing != Framing::UntilClose && facts.keeps_alive(version);
    let fields = if keep_lines && crlf_lines && !facts.names_other_fields && !facts.te {
        let first_line = spans
            .first()
            .map_or(length - 2, |span| span.name.range().start);
        let content_length = facts.length.unwrap_or(None);
        Fields::Raw(Box::new(RawFields::new(
            head,
            first_line,
            marks,
            content_length,
        )))
    } else {
        Fields::Map(field_map(&head, spans)?)
    };
    Ok(Some(ResponseHead {
        status,
        version,
        reason,
        fields,
        framing,
        keep_alive,
    }))
}

/// The head's fields in a map, each value sharing the head's bytes.
fn field_map(head: &Bytes, spans: &[FieldSpans]) -> Result<HeaderMap, DirectError> {
    let mut headers = HeaderMap::with_capacity(spans.len() + 1);
    for span in spans {
        let name = HeaderName::from_bytes(&head[span.name.range()])
            .map_err(|_| DirectError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(span.value.range()))
            .map_err(|_| DirectError::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Where a field's name and value lie in the head.
#[derive(Debug, Clone, Copy, Default)]
struct FieldSpans {
    name: Span,
    value: Span,
}

/// Copies parsed fields into a header map, repeated fields kept in order
/// (for trailer sections, which are rare enough not to share the head's
/// bytes).
pub fn header_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, DirectError> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| DirectError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| DirectError::Malformed("invalid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// What the framing and connection fields said, gathered in one pass over
/// the fields instead of looking each up again.
#[derive(Debug)]
struct FramingFields {
    /// The Content-Length all copies agree on (RFC 9110 §8.6), or why there
    /// is none usable: rule 5's unrecoverable error.
    length: Result<Option<u64>, &'static str>,
    transfer_encoding: bool,
    /// Whether the last transfer coding named is `chunked`.
    last_coding_chunked: bool,
    close: bool,
    keep_alive: bool,
    /// Connection names another field, which must be left out too.
    names_other_fields: bool,
    te: bool,
}

impl Default for FramingFields {
    fn default() -> Self {
        FramingFields {
            length: Ok(None),
            transfer_encoding: false,
            last_coding_chunked: false,
            close: false,
            keep_alive: false,
            names_other_fields: false,
            te: false,
        }
    }
}

impl FramingFields {
    fn note(&mut self, kind: FieldKind, value: &[u8]) {
        match kind {
            FieldKind::ContentLength => {
                self.length = self.length.and_then(|found| agreed_length(found, value));
            }
            FieldKind::TransferEncoding => {
                self.transfer_encoding = true;
                if let Some(last) = value.rsplit(|&b| b == b',').next() {
                    self.last_coding_chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
                }
            }
            FieldKind::Connection => {
                for token in value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    let close = token.eq_ignore_ascii_case(b"close");
                    let keep_alive = token.eq_ignore_ascii_case(b"keep-alive");
                    self.close |= close;
                    self.keep_alive |= keep_alive;
                    self.names_other_fields |= !(close || keep_alive || token.is_empty());
                }
            }
            FieldKind::Te => self.te = true,
            _ => {}
        }
    }

    /// RFC 9112 §6.3, for a response.
    fn framing(&self, status: StatusCode, request_was_head: bool) -> Result<Framing, DirectError> {
        // Rule 1: these never have a body, whatever their header fields say.
        if request_was_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok(Framing::Empty);
        }
        let length = self.length.map_err(DirectError::Malformed)?;
        if self.transfer_encoding {
            // Rule 3 lets Transfer-Encoding override Content-Length but calls
            // the pair a sign of response splitting; it is refused, not
            // guessed at.
            if length.is_some() {
                return Err(DirectError::Malformed(
                    "both Transfer-Encoding and Content-Length",
                ));
            }
            return Ok(if self.last_coding_chunked {
                Framing::Chunked
            } else {
                Framing::UntilClose
            });
        }
        Ok(match length {
            Some(0) => Framing::Empty,
            Some(length) => Framing::Length(length),
            None => Framing::UntilClose,
        })
    }

    /// RFC 9112 §9.3: HTTP/1.1 stays open unless `close` is named; HTTP/1.0
    /// only when `keep-alive` is.
    fn keeps_alive(&self, version: Version) -> bool {
        !self.close && (version == Version::HTTP_11 || self.keep_alive)
    }
}

/// Folds one Content-Length field value (possibly a list) into the length
/// found so far; every copy must be the same number.
fn agreed_length(mut found: Option<u64>, value: &[u8]) -> Result<Option<u64>, &'static str> {
    for item in value.split(|&b| b == b',') {
        let item = item.trim_ascii();
        let parsed = (!item.is_empty() && item.len() <= 19 && item.iter().all(u8::is_ascii_digit))
            .then(|| item.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
            .ok_or("invalid Content-Length")?;
        if found.is_some_and(|seen| seen != parsed) {
            return Err("conflicting Content-Length values");
        }
        found = Some(parsed);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(wire: &str) -> ResponseHead {
        let mut buf = BytesMut::from(format!("{wire}NEXT").as_bytes());
        let head = parse(&mut buf, false, true).unwrap().expect("complete");
        assert_eq!(&buf[..], b"NEXT", "exactly the head is taken");
        head
    }

    fn error(wire: &str) -> String {
        parse(&mut BytesMut::from(wire.as_bytes()), false, true)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_plain_response_keeps_repeated_fields_in_order() {
        let head = head(
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 5\r\nSet-Cookie: b=2\r\n\r\n",
        );
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert!(head.reason.is_none());
        let Fields::Raw(raw) = head.fields else {
            panic!("a plain head is kept as it came")
        };
        let mut map = HeaderMap::new();
        raw.append_to(&mut map);
        let cookies: Vec<_> = map.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }

    #[test]
    fn heads_that_cannot_be_forwarded_line_by_line_get_a_map() {
        let kept_raw = |wire: &str| matches!(head(wire).fields, Fields::Raw(_));
        assert!(kept_raw(
            "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(kept_raw("HTTP/1.1 204 No Content\r\n\r\n"));
        // Not asked to: the answer goes to a client served by hyper.
        let mut plain = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..]);
        let answer = parse(&mut plain, false, false).unwrap().unwrap();
        assert!(matches!(answer.fields, Fields::Map(_)));
        for wire in [
            // Connection names a field that must be left out as well.
            "HTTP/1.1 200 OK\r\nConnection: x-trace\r\nX-Trace: 1\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTE: trailers\r\nContent-Length: 0\r\n\r\n",
            // Lines ended by a bare LF.
            "HTTP/1.1 200 OK\r\nA: 1\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\nA: 1\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\n\n",
        ] {
            let head = head(wire);
            let Fields::Map(map) = head.fields else {
                panic!("{wire:?} was kept raw")
            };
            assert_eq!(map["content-length"], "0", "{wire:?}");
        }
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Le";
        let mut partial = BytesMut::from(&wire[..]);
        assert!(parse(&mut partial, false, true).unwrap().is_none());
        assert_eq!(&partial[..], wire, "nothing is taken from a partial head");
        assert!(parse(&mut BytesMut::new(), false, true).unwrap().is_none());
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let framing = |wire: &str| head(wire).framing;
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
            Framing::Empty
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
            Framing::Empty
        );
        assert_eq!(framing("HTTP/1.1 100 Continue\r\n\r\n"), Framing::Empty);
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Framing::UntilClose
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Framing::Empty
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n"),
            Framing::Length(7)
        );
        let until_close = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(until_close.framing, Framing::UntilClose);
        assert!(!until_close.keep_alive);
        let mut wire = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"[..]);
        let to_head = parse(&mut wire, true, true).unwrap().unwrap();
        assert_eq!(to_head.framing, Framing::Empty);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        assert!(
            error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
                .contains("conflicting")
        );
        assert!(error(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .contains("both"));
        assert!(error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
            .contains("invalid Content-Length"));
        assert!(error("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n")
            .contains("invalid Content-Length"));
        assert!(error("HTTP/1.1 2000 OK\r\n\r\n").contains("malformed"));
    }

    #[test]
    fn connection_reuse_follows_rfc_9112_section_9_3() {
        assert!(
            !head("HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\nContent-Length: 0\r\n\r\n")
                .keep_alive
        );
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        let kept = head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(kept.keep_alive);
        assert_eq!(kept.version, Version::HTTP_10);
    }

    #[test]
    fn an_unusual_reason_phrase_is_kept() {
        let head = head("HTTP/1.1 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(head.reason.unwrap(), b"Fine Thanks");
    }
}
