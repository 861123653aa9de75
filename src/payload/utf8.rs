//! Incremental UTF-8 validation over a byte stream split at arbitrary points.
//!
//! Self-contained (std only) so the fuzz targets can include it directly.

/// Validates a stream of chunks as one UTF-8 text, carrying an incomplete
/// multi-byte sequence (at most 3 bytes) from one chunk to the next.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    carry: [u8; 4],
    carried: usize,
    invalid: bool,
}

impl Utf8Stream {
    /// Feeds the next chunk; returns false once the stream is known to be invalid.
    pub fn feed(&mut self, mut chunk: &[u8]) -> bool {
        if self.invalid {
            return false;
        }
        if self.carried > 0 {
            // Complete the carried sequence one byte at a time; it needs at most 3 more.
            while self.carried < 4 && !chunk.is_empty() {
                self.carry[self.carried] = chunk[0];
                self.carried += 1;
                chunk = &chunk[1..];
                match std::str::from_utf8(&self.carry[..self.carried]) {
                    Ok(_) => {
                        self.carried = 0;
                        break;
                    }
                    Err(e) if e.error_len().is_some() => {
                        self.invalid = true;
                        return false;
                    }
                    Err(_) => {}
                }
            }
            if self.carried > 0 {
                // Still incomplete: the chunk ran out.
                return true;
            }
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => true,
            Err(e) => match e.error_len() {
                Some(_) => {
                    self.invalid = true;
                    false
                }
                None => {
                    let tail = &chunk[e.valid_up_to()..];
                    self.carry[..tail.len()].copy_from_slice(tail);
                    self.carried = tail.len();
                    true
                }
            },
        }
    }

    /// True when every byte fed so far is valid UTF-8 and no sequence is left open.
    pub fn is_complete_and_valid(&self) -> bool {
        !self.invalid && self.carried == 0
    }

    pub fn is_invalid(&self) -> bool {
        self.invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_in_pieces(bytes: &[u8]) -> bool {
        // Every split into two pieces must agree with the whole-buffer answer.
        let whole = std::str::from_utf8(bytes).is_ok();
        for cut in 0..=bytes.len() {
            let mut stream = Utf8Stream::default();
            stream.feed(&bytes[..cut]);
            stream.feed(&bytes[cut..]);
            assert_eq!(stream.is_complete_and_valid(), whole, "cut at {cut}");
        }
        // And byte by byte.
        let mut stream = Utf8Stream::default();
        for b in bytes {
            stream.feed(std::slice::from_ref(b));
        }
        assert_eq!(stream.is_complete_and_valid(), whole);
        whole
    }

    #[test]
    fn multibyte_split_anywhere() {
        assert!(valid_in_pieces("héllo wörld 日本語 🤖!".as_bytes()));
    }

    #[test]
    fn invalid_sequences() {
        assert!(!valid_in_pieces(b"abc\xffdef"));
        assert!(!valid_in_pieces(b"\xe6\x97"));
        assert!(!valid_in_pieces(b"\xed\xa0\x80"));
        assert!(!valid_in_pieces(b"ok\xc3"));
    }
}
