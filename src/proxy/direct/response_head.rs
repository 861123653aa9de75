//! The upstream's response head: status line and header section parsed with
//! httparse, and the body length decided by RFC 9112 §6.3.

use std::mem::MaybeUninit;

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use super::error::DirectError;

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
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Parses a response head at the start of `buf`. `Ok(None)`: incomplete,
/// read more. On success also returns the head's length in bytes.
pub fn parse(
    buf: &[u8],
    request_was_head: bool,
) -> Result<Option<(usize, ResponseHead)>, DirectError> {
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
    let headers = header_map(response.headers)?;
    let framing = framing(&headers, status, request_was_head)?;
    let keep_alive = framing != Framing::UntilClose && keeps_alive(&headers, version);
    Ok(Some((
        length,
        ResponseHead {
            status,
            version,
            reason,
            headers,
            framing,
            keep_alive,
        },
    )))
}

/// Copies parsed fields into a header map, repeated fields kept in order.
pub fn header_map(fields: &[httparse::Header<'_>]) -> Result<HeaderMap, DirectError> {
    // Room for the x-request-id the proxy adds, so the map does not grow
    // (reallocate and rehash) for one field.
    let mut map = HeaderMap::with_capacity(fields.len() + 1);
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| DirectError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| DirectError::Malformed("invalid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// RFC 9112 §6.3, for a response.
fn framing(
    headers: &HeaderMap,
    status: StatusCode,
    request_was_head: bool,
) -> Result<Framing, DirectError> {
    // Rule 1: these never have a body, whatever their header fields say.
    if request_was_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    let length = content_length(headers)?;
    if headers.contains_key(TRANSFER_ENCODING) {
        // Rule 3 lets Transfer-Encoding override Content-Length but calls the
        // pair a sign of response splitting; it is refused, not guessed at.
        if length.is_some() {
            return Err(DirectError::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let last_coding = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|value| value.as_bytes().rsplit(|&b| b == b',').next())
            .map(<[u8]>::trim_ascii);
        return Ok(match last_coding {
            Some(coding) if coding.eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
            _ => Framing::UntilClose,
        });
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(length) => Framing::Length(length),
        None => Framing::UntilClose,
    })
}

/// The Content-Length value; repeated or listed copies must agree (RFC 9110
/// §8.6), anything else is rule 5's unrecoverable error.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, DirectError> {
    let mut found = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            let parsed =
                (!item.is_empty() && item.len() <= 19 && item.iter().all(u8::is_ascii_digit))
                    .then(|| item.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
                    .ok_or(DirectError::Malformed("invalid Content-Length"))?;
            if found.is_some_and(|seen| seen != parsed) {
                return Err(DirectError::Malformed("conflicting Content-Length values"));
            }
            found = Some(parsed);
        }
    }
    Ok(found)
}

/// RFC 9112 §9.3: HTTP/1.1 stays open unless `close` is named; HTTP/1.0
/// only when `keep-alive` is.
fn keeps_alive(headers: &HeaderMap, version: Version) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for value in headers.get_all(CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    !close && (version == Version::HTTP_11 || keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(wire: &str) -> ResponseHead {
        let (length, head) = parse(wire.as_bytes(), false).unwrap().expect("complete");
        assert_eq!(length, wire.len());
        head
    }

    fn error(wire: &str) -> String {
        parse(wire.as_bytes(), false).unwrap_err().to_string()
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
        let cookies: Vec<_> = head.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Le", false)
            .unwrap()
            .is_none());
        assert!(parse(b"", false).unwrap().is_none());
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
        let (_, to_head) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
            .unwrap()
            .unwrap();
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
