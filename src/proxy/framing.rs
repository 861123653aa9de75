//! A watcher of HTTP/1.1 request framing on the raw client bytes.
//!
//! RFC 9112 §6.1: "A server MAY reject a request that contains both
//! Content-Length and Transfer-Encoding or process such a request in
//! accordance with the Transfer-Encoding alone." and §6.3: "Such a message
//! might indicate an attempt to perform request smuggling (Section 11.2) or
//! response splitting (Section 11.1) and ought to be handled as an error."
//!
//! hyper takes the second path: it drops Content-Length before the request
//! reaches the service, so the service cannot see the conflict. This watcher
//! reads the same bytes as hyper, follows the framing of each request (fixed
//! length or chunked) to find the next head, and records the index of the
//! first request whose head carried both fields. The forwarding service then
//! answers that request 400 instead of forwarding it.
//!
//! It keeps only the bytes of the current head (bounded) and skips bodies by
//! counting, so it costs O(head bytes) plus O(1) per body chunk.

/// The byte string that opens an HTTP/2 connection with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Where in the byte stream the watcher is.
#[derive(Debug)]
enum State {
    /// Collecting a request head up to its blank line.
    Head,
    /// Skipping a body of known length.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    ChunkDataEnd,
    /// Reading trailer lines up to the blank line.
    Trailers,
    /// Not HTTP/1.1 requests any more (HTTP/2, an upgrade, or unparseable).
    Off,
}

/// Follows request framing over the bytes a connection reads.
#[derive(Debug)]
pub struct FramingWatcher {
    state: State,
    line: Vec<u8>,
    max_head: usize,
    heads_seen: u64,
    first_ambiguous: Option<u64>,
}

/// What the head of one request said about its body.
struct HeadFraming {
    content_length: Option<u64>,
    chunked: bool,
    has_transfer_encoding: bool,
    has_content_length: bool,
    upgrade: bool,
}

impl FramingWatcher {
    pub fn new(max_head: usize) -> Self {
        Self {
            state: State::Head,
            line: Vec::new(),
            max_head,
            heads_seen: 0,
            first_ambiguous: None,
        }
    }

    /// Index (0-based, in arrival order) of the first request on this
    /// connection whose head had both Content-Length and Transfer-Encoding.
    pub fn first_ambiguous(&self) -> Option<u64> {
        self.first_ambiguous
    }

    pub fn is_off(&self) -> bool {
        matches!(self.state, State::Off)
    }

    /// Whether part of a request head has arrived but not its end.
    pub fn in_partial_head(&self) -> bool {
        matches!(self.state, State::Head) && !self.line.is_empty()
    }

    /// Request heads completed so far.
    pub fn heads_seen(&self) -> u64 {
        self.heads_seen
    }

    /// Feeds bytes as they were read from the client.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            data = match self.state {
                State::Off => return,
                State::Fixed(left) => {
                    let take = left.min(data.len() as u64);
                    self.state = if take == left {
                        State::Head
                    } else {
                        State::Fixed(left - take)
                    };
                    &data[take as usize..]
                }
                State::ChunkData(left) => {
                    let take = left.min(data.len() as u64);
                    self.state = if take == left {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(left - take)
                    };
                    &data[take as usize..]
                }
                State::ChunkDataEnd => match data.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.state = State::ChunkSize;
                        &data[end + 1..]
                    }
                    None => &[],
                },
                State::Head if self.line.is_empty() => match whole_head_len(data) {
                    // The usual case: the whole head arrived in one read and
                    // is read in place, with no copy into the line buffer.
                    Some(len) if len <= self.max_head => {
                        self.finish_head(&data[..len]);
                        &data[len..]
                    }
                    _ => self.collect(data),
                },
                State::Head | State::ChunkSize | State::Trailers => self.collect(data),
            };
        }
    }

    /// Collects line-oriented bytes (heads, chunk sizes, trailers).
    fn collect<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        if matches!(self.state, State::Head) && self.line.is_empty() && data.starts_with(H2_PREFACE)
        {
            self.turn_off();
            return &[];
        }
        let limit = if matches!(self.state, State::ChunkSize) {
            1024
        } else {
            self.max_head
        };
        let Some(newline) = memchr::memchr(b'\n', data) else {
            self.line.extend_from_slice(data);
            if self.line.len() > limit {
                self.turn_off();
            }
            return &[];
        };
        self.line.extend_from_slice(&data[..=newline]);
        if self.line.len() > limit {
            self.turn_off();
            return &[];
        }
        let rest = &data[newline + 1..];
        match self.state {
            State::ChunkSize => {
                let size = parse_chunk_size(&self.line);
                self.line.clear();
                self.state = match size {
                    Some(0) => State::Trailers,
                    Some(n) => State::ChunkData(n),
                    None => State::Off,
                };
            }
            State::Trailers => {
                if is_blank_line(&self.line) {
                    self.state = State::Head;
                }
                self.line.clear();
            }
            _ => {
                // A head ends at its first blank line; leading blank lines are ignored (RFC 9112 §2.2).
                if self.line.ends_with(b"\r\n\r\n") || self.line.ends_with(b"\n\n") {
                    let head = std::mem::take(&mut self.line);
                    self.finish_head(&head);
                    self.line = head;
                    self.line.clear();
                } else if is_blank_line(&self.line) {
                    self.line.clear();
                }
            }
        }
        rest
    }

    fn finish_head(&mut self, head: &[u8]) {
        let framing = parse_head(head);
        let index = self.heads_seen;
        self.heads_seen += 1;
        if framing.has_content_length
            && framing.has_transfer_encoding
            && self.first_ambiguous.is_none()
        {
            self.first_ambiguous = Some(index);
        }
        self.state = if framing.upgrade {
            State::Off
        } else if framing.has_transfer_encoding {
            if framing.chunked {
                State::ChunkSize
            } else {
                State::Off
            }
        } else {
            match framing.content_length {
                Some(0) | None => State::Head,
                Some(n) => State::Fixed(n),
            }
        };
    }

    fn turn_off(&mut self) {
        self.state = State::Off;
        self.line = Vec::new();
    }
}

/// Length of the request head at the start of `data`, up to and including
/// its blank line, when all of it is there; `None` when it is not, or when
/// `data` opens with a blank line (left to the line-by-line path).
fn whole_head_len(data: &[u8]) -> Option<usize> {
    if data.starts_with(b"\r\n") || data.starts_with(b"\n") || data.starts_with(H2_PREFACE) {
        return None;
    }
    // The same end as the line-by-line path sees.
    memchr::memchr_iter(b'\n', data)
        .map(|newline| newline + 1)
        .find(|&end| data[..end].ends_with(b"\r\n\r\n") || data[..end].ends_with(b"\n\n"))
}

fn is_blank_line(line: &[u8]) -> bool {
    line == b"\r\n" || line == b"\n"
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let digits = text.split(';').next()?.trim();
    u64::from_str_radix(digits, 16).ok()
}

/// Reads the framing fields of one head, on the bytes: this runs for every
/// request, and only three field names matter, so a line is looked at no
/// further than its name unless the name is one of them.
fn parse_head(head: &[u8]) -> HeadFraming {
    let mut framing = HeadFraming {
        content_length: None,
        chunked: false,
        has_transfer_encoding: false,
        has_content_length: false,
        upgrade: false,
    };
    // The request line comes first; field lines follow.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            framing.has_content_length = true;
            framing.content_length = std::str::from_utf8(value)
                .ok()
                .and_then(|digits| digits.parse().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            framing.has_transfer_encoding = true;
            framing.chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            framing.upgrade = true;
        }
    }
    framing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_in_pieces(bytes: &[u8], piece: usize) -> FramingWatcher {
        let mut watcher = FramingWatcher::new(65536);
        for chunk in bytes.chunks(piece.max(1)) {
            watcher.feed(chunk);
        }
        watcher
    }

    #[test]
    fn finds_the_conflicting_request_however_the_bytes_are_split() {
        let stream: &[u8] = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\nPOST /d HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        for piece in 1..stream.len() {
            let watcher = watch_in_pieces(stream, piece);
            assert_eq!(
                watcher.first_ambiguous(),
                Some(3),
                "split every {piece} bytes"
            );
        }
    }

    #[test]
    fn clean_streams_raise_nothing() {
        let stream: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 48\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(watch_in_pieces(stream, 7).first_ambiguous(), None);
    }

    #[test]
    fn http2_and_upgrades_switch_it_off() {
        let watcher = watch_in_pieces(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 100);
        assert!(watcher.is_off());
        let watcher = watch_in_pieces(
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x05hello",
            100,
        );
        assert!(watcher.is_off());
    }

    #[test]
    fn field_names_and_values_are_read_loosely_as_hyper_does() {
        let framing = parse_head(
            b"POST / HTTP/1.1\r\ncontent-LENGTH :\t 12 \r\nTransfer-Encoding: gzip, Chunked\r\nUpgrade:\r\nX-Note: Content-Length: 3\r\n\r\n",
        );
        assert!(framing.has_content_length && framing.has_transfer_encoding);
        assert_eq!(framing.content_length, Some(12));
        assert!(framing.chunked && framing.upgrade);
        let framing =
            parse_head(b"POST / HTTP/1.1\nTransfer-Encoding: chunked, gzip\nContent-Length: x\n\n");
        assert!(!framing.chunked, "chunked must be the last coding");
        assert!(framing.has_content_length && framing.content_length.is_none());
        let framing = parse_head(b"Content-Length: 5\r\n\r\n");
        assert!(
            !framing.has_content_length,
            "the first line is the request line"
        );
    }

    #[test]
    fn oversized_heads_switch_it_off() {
        let mut watcher = FramingWatcher::new(64);
        watcher.feed(&[b'a'; 100]);
        assert!(watcher.is_off());
    }
}
