//! The requests the proxy refuses to forward, decided from the head hyper
//! parsed. Each rule quotes the RFC section it applies.
//!
//! hyper itself answers 400 and closes the connection for heads it cannot
//! frame (differing Content-Length values, a Transfer-Encoding whose last
//! coding is not chunked, Transfer-Encoding on HTTP/1.0, malformed chunk
//! sizes); the rules here cover what hyper accepts but a gateway must not
//! pass on.

use http::request::Parts;
use http::{HeaderValue, Method, Version};

use super::error::ProxyError;
use super::headers::RequestFields;

/// Why a request is refused: the `reason` label of
/// `magma_requests_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TransferCoding,
    Host,
    Method,
    Target,
}

impl Refusal {
    pub const fn label(self) -> &'static str {
        match self {
            Refusal::TransferCoding => "transfer_coding",
            Refusal::Host => "host",
            Refusal::Method => "method",
            Refusal::Target => "target",
        }
    }
}

/// Checks the request head; `Ok` means it may be forwarded.
pub fn check(parts: &Parts, fields: &RequestFields) -> Result<(), ProxyError> {
    check_method(&parts.method)?;
    check_target(parts)?;
    check_host(parts, fields)?;
    check_transfer_coding(fields)
}

/// RFC 9110 §9.3.6: CONNECT asks the recipient "to establish a tunnel to
/// the destination origin server identified by the request-target"; §9.3.8:
/// TRACE reflects the request, credentials included, back to the client. A
/// model server serves neither, and a sidecar must not open tunnels to
/// addresses a client names.
fn check_method(method: &Method) -> Result<(), ProxyError> {
    if method == Method::CONNECT || method == Method::TRACE {
        return Err(ProxyError::MethodNotAllowed);
    }
    Ok(())
}

/// RFC 9112 §3.2: "A client MUST send a Host header field in all HTTP/1.1
/// request messages. [...] A server MUST respond with a 400 (Bad Request)
/// status code to any HTTP/1.1 request message that lacks a Host header
/// field and to any request message that contains more than one Host header
/// field line or a Host header field with an invalid field value."
///
/// RFC 9113 §8.3.1: "A server SHOULD treat a request as malformed if it
/// contains a Host header field that identifies an entity that differs from
/// the entity in the ':authority' pseudo-header field."
fn check_host(parts: &Parts, fields: &RequestFields) -> Result<(), ProxyError> {
    let refuse = |detail| Err(ProxyError::Refused(Refusal::Host, detail));
    if fields.hosts > 1 {
        return refuse("a request carries at most one Host field (RFC 9112 section 3.2)");
    }
    let host = parts.headers.get(http::header::HOST);
    if let Some(host) = host {
        if !valid_host(host.as_bytes()) {
            return refuse("the Host field is not a valid uri-host[:port] (RFC 9112 section 3.2)");
        }
    }
    match parts.version {
        Version::HTTP_11 if host.is_none() => {
            refuse("an HTTP/1.1 request needs a Host field (RFC 9112 section 3.2)")
        }
        Version::HTTP_2 | Version::HTTP_3 => match (host, parts.uri.authority()) {
            (Some(host), Some(authority))
                if !host
                    .as_bytes()
                    .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
            {
                refuse("the Host field differs from :authority (RFC 9113 section 8.3.1)")
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// RFC 9112 §6.1: "A server that receives a request message with a
/// transfer coding it does not understand SHOULD respond with 501 (Not
/// Implemented)." The proxy forwards a body after taking its transfer coding
/// off, so a coding other than the one `chunked` it takes off would reach the
/// upstream as if the body were plain: such a request is refused instead.
fn check_transfer_coding(fields: &RequestFields) -> Result<(), ProxyError> {
    if fields.transfer_encoding && !fields.chunked_only {
        return Err(ProxyError::NotImplemented(
            "only the chunked transfer coding is forwarded (RFC 9112 section 6.1)",
        ));
    }
    Ok(())
}

/// RFC 9112 §3.2 and RFC 3986 §3.3, §3.4: the target's path and query are
/// made of unreserved characters, percent-encodings, sub-delims, `:`, `@`,
/// `/` and `?`. Anything else (raw non-ASCII, control bytes, `"`, `<`, `>`,
/// `\`, `^`, `` ` ``, `{`, `|`, `}`, a `#` fragment, a `%` not followed by
/// two hex digits) is refused: servers and frameworks decode such bytes
/// each their own way, so the proxy and the upstream could disagree on
/// which route was asked for.
fn check_target(parts: &Parts) -> Result<(), ProxyError> {
    let target = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
    if !valid_target(target.as_bytes()) {
        return Err(ProxyError::Refused(
            Refusal::Target,
            "the request target has characters RFC 3986 does not allow",
        ));
    }
    Ok(())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Whether `bytes` at `i` start a `%` HEXDIG HEXDIG.
fn is_pct_encoded(bytes: &[u8], i: usize) -> bool {
    bytes[i] == b'%'
        && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
        && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
}

fn valid_target(bytes: &[u8]) -> bool {
    (0..bytes.len()).all(|i| {
        let b = bytes[i];
        is_unreserved(b)
            || is_sub_delim(b)
            || matches!(b, b':' | b'@' | b'/' | b'?')
            || is_pct_encoded(bytes, i)
    })
}

/// RFC 9110 §7.2: `Host = uri-host [ ":" port ]`, where uri-host is an
/// IP-literal in brackets or a reg-name (unreserved, pct-encoded, sub-delims),
/// which also covers IPv4 addresses. An empty Host is valid: a target with no
/// authority is sent with one.
pub fn valid_host(bytes: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = bytes.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..end];
        let literal_ok = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
            || literal.first() == Some(&b'v');
        if !literal_ok {
            return false;
        }
        match &rest[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&[][..], port),
            _ => return false,
        }
    } else {
        match bytes.iter().rposition(|&b| b == b':') {
            Some(colon) => (&bytes[..colon], &bytes[colon + 1..]),
            None => (bytes, &[][..]),
        }
    };
    let host_ok = (0..host.len())
        .all(|i| is_unreserved(host[i]) || is_sub_delim(host[i]) || is_pct_encoded(host, i));
    host_ok && port.iter().all(u8::is_ascii_digit)
}

/// The Host value an absolute-form target asks for. RFC 9112 §3.2.2: "When
/// a proxy receives a request with an absolute-form of request-target, the
/// proxy MUST ignore the received Host header field (if any) and instead
/// replace it with the host information of the request-target."
pub fn target_host(parts: &Parts) -> Option<HeaderValue> {
    let authority = parts.uri.authority()?;
    HeaderValue::from_str(authority.as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, target: &str, version: Version, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(target)
            .version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn verdict(parts: &Parts) -> Result<(), String> {
        let fields = RequestFields::read(&parts.headers);
        check(parts, &fields).map_err(|e| e.status().as_str().to_owned())
    }

    #[test]
    fn host_rules() {
        let v11 = |headers: &[(&str, &str)]| verdict(&parts("GET", "/", Version::HTTP_11, headers));
        assert_eq!(v11(&[("host", "model:8080")]), Ok(()));
        assert_eq!(v11(&[("host", "")]), Ok(()));
        assert_eq!(v11(&[("host", "[::1]:8080")]), Ok(()));
        assert_eq!(v11(&[]), Err("400".into()));
        assert_eq!(v11(&[("host", "a"), ("host", "a")]), Err("400".into()));
        for bad in ["a b", "h@evil", "h/x", "h:port", "[::1", "[zz]", "h?x"] {
            assert_eq!(v11(&[("host", bad)]), Err("400".into()), "{bad}");
        }
        // HTTP/1.0 needs none.
        assert_eq!(verdict(&parts("GET", "/", Version::HTTP_10, &[])), Ok(()));
        // HTTP/2: Host may be left out; when present it matches :authority.
        let h2 = |headers: &[(&str, &str)]| {
            verdict(&parts(
                "GET",
                "http://model:8080/",
                Version::HTTP_2,
                headers,
            ))
        };
        assert_eq!(h2(&[]), Ok(()));
        assert_eq!(h2(&[("host", "MODEL:8080")]), Ok(()));
        assert_eq!(h2(&[("host", "other")]), Err("400".into()));
    }

    #[test]
    fn methods_that_open_tunnels_or_reflect_are_refused() {
        assert_eq!(
            verdict(&parts("TRACE", "/", Version::HTTP_11, &[("host", "m")])),
            Err("405".into())
        );
        assert_eq!(
            verdict(&parts(
                "CONNECT",
                "m:443",
                Version::HTTP_11,
                &[("host", "m")]
            )),
            Err("405".into())
        );
    }

    #[test]
    fn targets_outside_rfc_3986_are_refused() {
        assert!(valid_target(b"/v1/chat/completions?model=a%20b&x=(1)*"));
        assert!(valid_target(b"/a:b@c/~d!$&'+,;="));
        for bad in [
            &b"/a b"[..],
            b"/\xc3\xa9",
            b"/\x01",
            b"/\"",
            b"/<>",
            b"/a\\b",
            b"/^",
            b"/`",
            b"/{}",
            b"/|",
            b"/#frag",
            b"/%zz",
            b"/%4",
        ] {
            assert!(!valid_target(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn only_a_single_chunked_coding_is_forwarded() {
        let te = |value| {
            verdict(&parts(
                "POST",
                "/",
                Version::HTTP_11,
                &[("host", "m"), ("transfer-encoding", value)],
            ))
        };
        assert_eq!(te("chunked"), Ok(()));
        assert_eq!(te("gzip, chunked"), Err("501".into()));
        assert_eq!(te("chunked, chunked"), Err("501".into()));
    }

    #[test]
    fn an_absolute_target_names_the_host() {
        let absolute = parts(
            "GET",
            "http://a.example/p",
            Version::HTTP_11,
            &[("host", "b.example")],
        );
        assert_eq!(target_host(&absolute).unwrap(), "a.example");
        let origin = parts("GET", "/p", Version::HTTP_11, &[("host", "b.example")]);
        assert!(target_host(&origin).is_none());
    }
}
