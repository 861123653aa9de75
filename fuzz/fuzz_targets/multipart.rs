//! The streaming multipart scanner must never panic, and must give the same
//! parts however the input is split into chunks.
#![no_main]
#![allow(dead_code)]

#[path = "../../src/payload/multipart.rs"]
mod multipart;

use libfuzzer_sys::fuzz_target;
use multipart::{MultipartScanner, MultipartVisitor, PartHeaders};

#[derive(Default, PartialEq, Debug)]
struct Parts {
    events: Vec<(u8, Vec<u8>)>,
}

impl MultipartVisitor for Parts {
    fn part_start(&mut self, headers: &PartHeaders<'_>) {
        let name = headers.name.unwrap_or("").as_bytes().to_vec();
        self.events.push((0, name));
    }
    fn part_data(&mut self, bytes: &[u8]) {
        // Data may arrive in different pieces; merge consecutive data events.
        match self.events.last_mut() {
            Some((1, data)) => data.extend_from_slice(bytes),
            _ => self.events.push((1, bytes.to_vec())),
        }
    }
    fn part_end(&mut self) {
        self.events.push((2, Vec::new()));
    }
}

fn scan(boundary: &[u8], pieces: &[&[u8]]) -> Option<(multipart::MultipartStatus, Parts)> {
    let mut scanner = MultipartScanner::new(boundary)?;
    let mut parts = Parts::default();
    for piece in pieces {
        scanner.feed(piece, &mut parts);
    }
    Some((scanner.finish(), parts))
}

fuzz_target!(|data: &[u8]| {
    // Layout: [boundary length][split][boundary][body]
    let [blen, split, rest @ ..] = data else {
        return;
    };
    let blen = usize::from(*blen % 8) + 1;
    if rest.len() < blen {
        return;
    }
    let (boundary, body) = rest.split_at(blen);
    let Some(whole) = scan(boundary, &[body]) else {
        return;
    };
    let cut = usize::from(*split) % (body.len() + 1);
    assert_eq!(scan(boundary, &[&body[..cut], &body[cut..]]), Some(whole));
});
