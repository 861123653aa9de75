//! Writing the request head, RFC 9112 §3 and §5:
//!
//! ```text
//! request-line = method SP request-target SP HTTP-version CRLF
//! field-line   = field-name ":" OWS field-value OWS
//! ```
//!
//! The method, target and fields were validated by the parsers they came
//! through (`http` and httparse reject CR, LF and NUL in names and values),
//! so they are written as they are: a lane request's lines as the client
//! sent them, a map's field names lower-cased, as hyper writes them too.
//! The fields the proxy adds follow the request's own.

use http::request::Parts;

use crate::proxy::headers::AddedFields;
use crate::proxy::lane::RequestLines;

/// Appends the request line and header section to `out`: the `lines` the
/// lane read (less those marked left out), the fields of `parts`, then the
/// `added` fields.
pub fn encode(parts: &Parts, lines: Option<&RequestLines>, added: &AddedFields, out: &mut Vec<u8>) {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(lines) = lines {
        lines.lines.write_to(out, lines.left_out);
    }
    for (name, value) in parts.headers.iter().chain(added.iter()) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_the_request_line_then_every_field() {
        let request = http::Request::post("/predict?x=1")
            .header("Host", "model:8080")
            .header("X-Multi", "one")
            .header("X-Multi", "two")
            .header("Content-Length", "2")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let mut out = Vec::new();
        encode(&parts, None, &AddedFields::default(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /predict?x=1 HTTP/1.1\r\nhost: model:8080\r\nx-multi: one\r\nx-multi: two\r\ncontent-length: 2\r\n\r\n"
        );
    }
}
