//! Bounded capture of text parts, and small helpers over captured bytes.

/// Bytes of one prompt kept for classification and sampling.
pub const TEXT_CAP: usize = 4096;

/// A prefix of at most `cap` bytes of a text, however many pieces it arrives in.
#[derive(Debug, Clone, Default)]
pub struct TextCapture {
    bytes: Vec<u8>,
    cap: usize,
    /// Bytes offered in total (kept or not).
    offered: u64,
}

impl TextCapture {
    pub fn new(cap: usize) -> Self {
        TextCapture {
            bytes: Vec::new(),
            cap,
            offered: 0,
        }
    }

    /// Room left before the cap.
    pub fn room(&self) -> usize {
        self.cap.saturating_sub(self.bytes.len())
    }

    /// Appends what fits.
    pub fn push(&mut self, piece: &[u8]) {
        self.offered += piece.len() as u64;
        let take = piece.len().min(self.room());
        self.bytes.extend_from_slice(&piece[..take]);
    }

    /// Starts a new part: inserts a line break between parts.
    pub fn separate(&mut self) {
        if !self.bytes.is_empty() && self.room() > 0 {
            self.bytes.push(b'\n');
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn truncated(&self) -> bool {
        self.offered > self.bytes.len() as u64
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.offered = 0;
    }

    /// The kept text; a character cut by the cap is dropped, invalid bytes are replaced.
    pub fn to_text(&self) -> String {
        String::from_utf8_lossy(&self.bytes[..self.text_len()]).into_owned()
    }

    /// [`Self::to_text`], moving the bytes out instead of copying them when
    /// they are valid UTF-8 (the usual case); the capture is left empty.
    /// Read [`Self::truncated`] first.
    pub fn take_text(&mut self) -> String {
        let len = self.text_len();
        let mut bytes = std::mem::take(&mut self.bytes);
        self.offered = 0;
        bytes.truncate(len);
        String::from_utf8(bytes)
            .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
    }

    /// The bytes up to the end of the last whole character: a character cut
    /// by the cap is dropped (invalid bytes elsewhere stay, to be replaced).
    fn text_len(&self) -> usize {
        match std::str::from_utf8(&self.bytes) {
            Ok(_) => self.bytes.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.bytes.len(),
        }
    }
}

/// Decoded size of a base64 text of `len` characters whose last two characters
/// are `tail` (RFC 4648 section 4: 4 characters carry 3 bytes, `=` pads).
pub fn base64_decoded_len(len: u64, tail: [u8; 2]) -> u64 {
    let padding = match (len, tail) {
        (0, _) => 0,
        (1, [_, b'=']) => 1,
        (_, [b'=', b'=']) => 2,
        (_, [_, b'=']) => 1,
        _ => 0,
    };
    (len - padding) * 3 / 4
}

/// For a `data:` URL head, the length of the part before the payload
/// (through the comma); 0 for anything else.
pub fn data_url_prefix_len(head: &[u8]) -> Option<usize> {
    if head.len() < 5 || !head[..5].eq_ignore_ascii_case(b"data:") {
        return None;
    }
    Some(memchr::memchr(b',', head).map_or(head.len(), |comma| comma + 1))
}

/// The media type of a `data:` URL head (`data:image/png;base64,` -> `image/png`).
pub fn data_url_media_type(head: &[u8]) -> Option<&[u8]> {
    let rest = head.get(5..)?;
    let end = rest
        .iter()
        .position(|&b| b == b';' || b == b',')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_is_bounded_and_char_safe() {
        let mut t = TextCapture::new(5);
        t.push("ab".as_bytes());
        t.push("日本".as_bytes());
        assert!(t.truncated());
        assert_eq!(t.to_text(), "ab日");
        assert_eq!(t.room(), 0);
        let truncated = t.truncated();
        assert_eq!(t.take_text(), "ab日");
        assert!(truncated && t.is_empty() && !t.truncated());

        let mut invalid = TextCapture::new(16);
        invalid.push(b"a\xffb");
        assert_eq!(invalid.take_text(), "a\u{fffd}b");
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(base64_decoded_len(4, *b"=="), 1);
        assert_eq!(base64_decoded_len(4, *b"a="), 2);
        assert_eq!(base64_decoded_len(8, *b"ab"), 6);
        assert_eq!(base64_decoded_len(0, [0, 0]), 0);
        assert_eq!(base64_decoded_len(1, [0, b'=']), 0);
    }

    #[test]
    fn data_urls() {
        assert_eq!(
            data_url_prefix_len(b"data:image/png;base64,iVBOR"),
            Some(22)
        );
        assert_eq!(data_url_prefix_len(b"https://x"), None);
        assert_eq!(
            data_url_media_type(b"data:image/png;base64,"),
            Some(&b"image/png"[..])
        );
    }
}
