//! The lane's request reader (`src/proxy/lane/request.rs`) must never panic,
//! must consume exactly one request's bytes when it takes one and none when
//! it does not, and must decide the same however much of the input has
//! arrived: a prefix either waits for more, hands off, or yields the same
//! request as the whole input.
#![no_main]
#![allow(dead_code)]

#[path = "../../src/proxy/field_lines.rs"]
mod field_lines;
#[path = "../../src/proxy/lane/request.rs"]
mod request;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use request::{HandoffReason, Parsed};

/// Head limit used for every run; small, so the limit paths are reached.
const MAX_HEAD: usize = 2048;

/// What a parse decided, in a comparable form.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ready {
        consumed: usize,
        method: String,
        target: String,
        fields: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        close: bool,
    },
    PartialHead,
    Handoff(HandoffReason),
    Invalid,
}

fn outcome(input: &[u8]) -> Outcome {
    let mut buffer = BytesMut::from(input);
    let parsed = request::parse(&mut buffer, MAX_HEAD);
    let consumed = input.len() - buffer.len();
    // Whatever is left is exactly the input's tail.
    assert_eq!(&buffer[..], &input[consumed..]);
    match parsed {
        Parsed::Ready(lane) => {
            let request = lane.request;
            assert!(request.headers().is_empty(), "the fields stay lines");
            check_marks(&lane.fields);
            let mut headers = http::HeaderMap::new();
            lane.fields.append_all_to(&mut headers);
            let declared = headers
                .get(http::header::CONTENT_LENGTH)
                .map(|v| std::str::from_utf8(v.as_bytes()).unwrap().parse::<usize>().unwrap())
                .unwrap_or(0);
            assert_eq!(request.body().len(), declared);
            assert!(consumed >= declared && consumed <= input.len());
            assert_eq!(&input[consumed - declared..consumed], &request.body()[..]);
            assert!(request.uri().path().starts_with('/'));
            Outcome::Ready {
                consumed,
                method: request.method().to_string(),
                target: request.uri().to_string(),
                fields: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                    .collect(),
                body: request.body().to_vec(),
                close: lane.close,
            }
        }
        Parsed::PartialHead => {
            assert_eq!(consumed, 0);
            Outcome::PartialHead
        }
        Parsed::Handoff(reason) => {
            assert_eq!(consumed, 0, "a handed-off request must leave its bytes");
            Outcome::Handoff(reason)
        }
        Parsed::Invalid(_) => Outcome::Invalid,
    }
}

/// Each line is marked as its name says, and the lines written with none
/// left out are the head's field lines exactly.
fn check_marks(fields: &request::RequestLines) {
    use field_lines::{bit, FieldKind};
    let mut count = 0;
    for (line, (name, _, _)) in fields.lines.fields(!0).enumerate() {
        let kind = FieldKind::of(name);
        let hop = matches!(kind, FieldKind::Connection | FieldKind::HopByHop);
        assert_eq!(fields.hop_by_hop & bit(line) != 0, hop);
        assert_eq!(fields.forwarded_for & bit(line) != 0, kind == FieldKind::ForwardedFor);
        assert_eq!(fields.request_id & bit(line) != 0, kind == FieldKind::RequestId);
        count += 1;
    }
    assert_eq!(fields.hop_by_hop >> count, 0);
    let mut written = Vec::new();
    fields.lines.write_to(&mut written, 0);
    let head = fields.lines.bytes();
    assert!(head[..head.len() - 2].ends_with(&written[..]));
    assert_eq!(written.iter().filter(|&&b| b == b'\n').count(), count);
}

fuzz_target!(|input: &[u8]| {
    let whole = outcome(input);
    if let Outcome::Ready { consumed, .. } = &whole {
        // The same request from any longer input (pipelined bytes after it).
        let mut longer = input[..*consumed].to_vec();
        longer.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(outcome(&longer), whole);
    }
    // Any prefix waits, hands off, or already yields the whole's answer.
    for cut in [input.len() / 3, input.len() / 2, input.len().saturating_sub(1)] {
        match outcome(&input[..cut]) {
            Outcome::PartialHead | Outcome::Handoff(_) => {}
            ready @ Outcome::Ready { .. } => {
                if let Outcome::Ready { consumed, .. } = &ready {
                    assert!(*consumed <= cut);
                }
                assert_eq!(ready, whole, "a prefix decided differently from the whole");
            }
            Outcome::Invalid => assert_eq!(whole, Outcome::Invalid),
        }
    }
});
