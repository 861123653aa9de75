//! The upstream response parsers of the direct path (head, RFC 9112 §6.3
//! framing, chunked decoding) must never panic, a chunked body must
//! decode to the same bytes and trailers however its reads are split, and a
//! head kept raw must forward the same fields whether it is copied as it came
//! (the lane) or turned into a header map (hyper).
#![no_main]
#![allow(dead_code)]

// At the crate root, the files' `super::error` and `super::response_head`
// resolve to these siblings, as they do inside `proxy::direct`.
#[path = "../../src/proxy/direct/chunked.rs"]
mod chunked;
#[path = "../../src/proxy/direct/error.rs"]
mod error;
#[path = "../../src/proxy/field_lines.rs"]
mod field_lines;
#[path = "../../src/proxy/direct/raw_fields.rs"]
mod raw_fields;
#[path = "../../src/proxy/direct/response_head.rs"]
mod response_head;
// The head parser's `super::Span`, as `proxy::direct` re-exports it.
#[path = "../../src/proxy/lane/request.rs"]
mod request;
use request::Span;

use bytes::BytesMut;
use chunked::{ChunkedDecoder, Decoded};
use response_head::{Fields, Framing};
use libfuzzer_sys::fuzz_target;

/// Decodes `body` fed `step` bytes at a time: the data, the trailers as
/// text, and whether it ended, failed or ran out of input.
fn decode(body: &[u8], step: usize) -> (Vec<u8>, Option<String>, &'static str) {
    let mut decoder = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut pieces = body.chunks(step.max(1));
    let (mut data, mut trailers) = (Vec::new(), None);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(bytes)) => {
                assert!(!bytes.is_empty(), "empty data frame");
                data.extend_from_slice(&bytes);
            }
            Ok(Decoded::Trailers(map)) => trailers = Some(format!("{map:?}")),
            Ok(Decoded::End) => return (data, trailers, "end"),
            Ok(Decoded::NeedMore) => match pieces.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return (data, trailers, "short"),
            },
            Err(_) => return (data, trailers, "error"),
        }
    }
}

/// The lines the lane would copy, read back as (lowercased name, value)
/// pairs, are the map hyper would be given.
fn assert_same_fields(raw: &raw_fields::RawFields) {
    let mut copied = Vec::new();
    raw.write_to(&mut copied, true);
    let mut lines = Vec::new();
    for line in copied.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        let line = line.strip_suffix(b"\r").expect("every copied line ends in CRLF");
        let colon = line.iter().position(|&b| b == b':').expect("a field line");
        lines.push((
            line[..colon].to_ascii_lowercase(),
            line[colon + 1..].trim_ascii().to_vec(),
        ));
    }
    let mut map = http::HeaderMap::new();
    raw.append_to(&mut map);
    let mapped: Vec<_> = map
        .iter()
        .map(|(name, value)| (name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()))
        .collect();
    // The map groups repeated names; compare as multisets of lines.
    lines.sort();
    let mut mapped = mapped;
    mapped.sort();
    assert_eq!(lines, mapped);
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, wire)) = input.split_first() else {
        return;
    };
    let mut buf = BytesMut::from(wire);
    let head = match response_head::parse(&mut buf, split & 1 == 1, split & 2 == 0) {
        Ok(Some(head)) => head,
        Ok(None) => {
            assert_eq!(buf.len(), wire.len(), "a partial head takes nothing");
            return;
        }
        Err(_) => return,
    };
    // What was taken is exactly the head: the rest is left as it was.
    let length = wire.len() - buf.len();
    assert_eq!(&buf[..], &wire[length..]);
    if head.framing == Framing::UntilClose {
        assert!(!head.keep_alive, "a body delimited by close cannot keep the connection");
    }
    if let Fields::Raw(raw) = &head.fields {
        assert_same_fields(raw);
    }
    if head.framing != Framing::Chunked {
        return;
    }
    let body = &wire[length..];
    let whole = decode(body, body.len());
    let split = decode(body, usize::from(split % 16) + 1);
    // Errors may be found at different points, but a body that decodes to
    // its end does so the same way at any split.
    if whole.2 == "end" || split.2 == "end" {
        assert_eq!(whole, split);
    }
});
