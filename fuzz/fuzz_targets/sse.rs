//! The SSE parser must never panic, and must give the same events however
//! the input is split into chunks.
#![no_main]
#![allow(dead_code)]

#[path = "../../src/payload/sse.rs"]
mod sse;

use libfuzzer_sys::fuzz_target;
use sse::{SseParser, SseVisitor};

#[derive(Default, PartialEq, Debug)]
struct Events {
    done: Vec<Vec<u8>>,
    current: Vec<u8>,
}

impl SseVisitor for Events {
    fn data(&mut self, bytes: &[u8]) {
        self.current.extend_from_slice(bytes);
    }
    fn event_end(&mut self) {
        self.done.push(std::mem::take(&mut self.current));
    }
}

fn parse(pieces: &[&[u8]]) -> (u64, Events) {
    let mut parser = SseParser::new();
    let mut events = Events::default();
    for piece in pieces {
        parser.feed(piece, &mut events);
    }
    (parser.events(), events)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let whole = parse(&[body]);
    assert_eq!(whole.0 as usize, whole.1.done.len());
    let cut = usize::from(split) % (body.len() + 1);
    assert_eq!(parse(&[&body[..cut], &body[cut..]]), whole);
});
