//! The streaming JSON scanner must never panic, and must give the same
//! answer however the input is split into chunks.
#![no_main]
#![allow(dead_code)]

#[path = "../../src/payload/json_scan.rs"]
mod json_scan;
#[path = "../../src/payload/number.rs"]
mod number;
#[path = "../../src/payload/utf8.rs"]
mod utf8;

use json_scan::{JsonPath, JsonScanner, JsonVisitor, ScanStatus};
use libfuzzer_sys::fuzz_target;

/// Folds every event into a running hash (string pieces hash as one byte
/// stream, so how a string is split does not change the digest) and counts
/// the events.
#[derive(Default)]
struct Digest(u64, u64);

impl Digest {
    fn mix(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn mix_path(&mut self, path: &JsonPath) {
        self.mix(&(path.depth() as u64).to_le_bytes());
        self.1 += 1;
    }
}

impl JsonVisitor for Digest {
    fn string_start(&mut self, path: &JsonPath) -> usize {
        self.mix_path(path);
        16
    }
    fn string_bytes(&mut self, _path: &JsonPath, bytes: &[u8]) {
        self.mix(bytes);
    }
    fn string_end(&mut self, path: &JsonPath, raw_len: u64, tail: [u8; 2]) {
        self.mix_path(path);
        self.mix(&raw_len.to_le_bytes());
        self.mix(&tail);
    }
    fn scalar(&mut self, path: &JsonPath, token: &[u8]) {
        self.mix_path(path);
        self.mix(token);
    }
    fn number(&mut self, path: &JsonPath, token: &[u8], value: Option<f64>) {
        // A value computed in the scan is the one the standard parser gives.
        if let Some(value) = value {
            let text = std::str::from_utf8(token).expect("numbers are ASCII");
            assert_eq!(text.parse::<f64>().map(f64::to_bits), Ok(value.to_bits()));
        }
        self.scalar(path, token);
        self.mix(&value.map_or(u64::MAX, f64::to_bits).to_le_bytes());
    }
    fn open(&mut self, path: &JsonPath, array: bool) {
        self.mix_path(path);
        self.mix(&[u8::from(array)]);
    }
}

/// The status, and the events unless the input is malformed (how many
/// events precede the point where malformed input is detected depends on
/// the chunking: UTF-8 is validated a chunk at a time; callers discard the
/// events of malformed bodies).
fn scan(pieces: &[&[u8]]) -> (ScanStatus, u64, u64) {
    let mut scanner = JsonScanner::new();
    let mut digest = Digest::default();
    for piece in pieces {
        scanner.feed(piece, &mut digest);
    }
    let status = scanner.finish(&mut digest);
    if status == ScanStatus::Malformed {
        return (status, 0, 0);
    }
    (status, digest.0, digest.1)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let whole = scan(&[body]);
    let cut = usize::from(split) % (body.len() + 1);
    assert_eq!(scan(&[&body[..cut], &body[cut..]]), whole);
    if body.len() < 256 {
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan(&bytes), whole);
    }
    if whole.0 == ScanStatus::Complete {
        assert!(std::str::from_utf8(body).is_ok());
    }
});
