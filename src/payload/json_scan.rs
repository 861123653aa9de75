//! A streaming JSON scanner (RFC 8259) that runs over body chunks as they pass.
//!
//! It never builds a document. It tracks the key path of the current value
//! (bounded depth, bounded key length), validates structure and UTF-8, and
//! reports values to a [`JsonVisitor`]. Inside strings it jumps from quote to
//! backslash with `memchr2`, so long base64 strings cost a vectorised scan and
//! a length count, nothing is copied unless the visitor asks for a prefix.
//! Escapes (including `\uXXXX` surrogate pairs) may be split across chunks.
//!
//! Numbers and literals that end inside the chunk are read in place; only a
//! token cut by a chunk boundary is copied. A number is checked and valued
//! in one pass ([`super::number::json_number`]).
//!
//! Self-contained (std, memchr and the sibling `utf8` and `number` modules)
//! so fuzz targets can include the file directly.

use memchr::memchr2;

use super::number::json_number;
use super::utf8::Utf8Stream;

/// Path segments kept; values deeper than this are still scanned but their
/// path reports `None`.
pub const TRACKED_DEPTH: usize = 12;
/// Longest key kept for path matching; longer keys never match a pattern.
pub const KEY_CAP: usize = 32;
/// Nesting deeper than this is treated as malformed (bounds the container stack).
pub const MAX_DEPTH: usize = 256;
/// Longest number or literal kept for the visitor.
const SCALAR_CAP: usize = 40;

/// One step of the path to the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// An object member; `len > KEY_CAP` marks a key too long to keep.
    Key { len: u8, bytes: [u8; KEY_CAP] },
    /// An array element.
    Index(u32),
}

impl Segment {
    const EMPTY_KEY: Segment = Segment::Key {
        len: 0,
        bytes: [0; KEY_CAP],
    };

    /// The key, when this is a kept object key.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Segment::Key { len, bytes } if usize::from(*len) <= KEY_CAP => {
                Some(&bytes[..usize::from(*len)])
            }
            _ => None,
        }
    }

    pub fn index(&self) -> Option<u32> {
        match self {
            Segment::Index(i) => Some(*i),
            Segment::Key { .. } => None,
        }
    }
}

/// The path from the document root to the current value.
#[derive(Debug, Clone)]
pub struct JsonPath {
    segments: [Segment; TRACKED_DEPTH],
    depth: usize,
}

/// One element of a path pattern.
#[derive(Debug, Clone, Copy)]
pub enum Pat<'a> {
    Key(&'a str),
    AnyIndex,
    AnyKey,
}

impl JsonPath {
    fn new() -> Self {
        JsonPath {
            segments: [Segment::EMPTY_KEY; TRACKED_DEPTH],
            depth: 0,
        }
    }

    /// The segments, or `None` when the value is deeper than [`TRACKED_DEPTH`].
    pub fn segments(&self) -> Option<&[Segment]> {
        self.segments.get(..self.depth)
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether the path is exactly `pattern`.
    pub fn matches(&self, pattern: &[Pat<'_>]) -> bool {
        match self.segments() {
            Some(segs) if segs.len() == pattern.len() => segs
                .iter()
                .zip(pattern)
                .all(|(seg, pat)| pat_matches(seg, pat)),
            _ => false,
        }
    }

    /// Whether the path ends with `pattern`.
    pub fn ends_with(&self, pattern: &[Pat<'_>]) -> bool {
        match self.segments() {
            Some(segs) if segs.len() >= pattern.len() => segs[segs.len() - pattern.len()..]
                .iter()
                .zip(pattern)
                .all(|(seg, pat)| pat_matches(seg, pat)),
            _ => false,
        }
    }

    /// Whether the path begins with `pattern`.
    pub fn starts_with(&self, pattern: &[Pat<'_>]) -> bool {
        match self.segments() {
            Some(segs) if segs.len() >= pattern.len() => segs
                .iter()
                .zip(pattern)
                .all(|(seg, pat)| pat_matches(seg, pat)),
            _ => false,
        }
    }

    /// The array index at `position`, if that segment is an index.
    pub fn index_at(&self, position: usize) -> Option<u32> {
        self.segments()?.get(position)?.index()
    }

    fn push(&mut self, seg: Segment) {
        if let Some(slot) = self.segments.get_mut(self.depth) {
            *slot = seg;
        }
        self.depth += 1;
    }

    fn pop(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn top_mut(&mut self) -> Option<&mut Segment> {
        let top = self.depth.checked_sub(1)?;
        self.segments.get_mut(top)
    }
}

fn pat_matches(seg: &Segment, pat: &Pat<'_>) -> bool {
    match (pat, seg) {
        (Pat::Key(k), seg) => seg.key() == Some(k.as_bytes()),
        (Pat::AnyIndex, Segment::Index(_)) => true,
        (Pat::AnyKey, Segment::Key { .. }) => true,
        _ => false,
    }
}

/// Receives values as the scanner meets them. Every method has a default
/// that ignores the value.
pub trait JsonVisitor {
    /// A string value begins at `path`: return how many bytes of its decoded
    /// text to deliver through [`JsonVisitor::string_bytes`] (0 = none).
    fn string_start(&mut self, _path: &JsonPath) -> usize {
        0
    }
    /// Decoded bytes of the current string (only the prefix asked for; a
    /// multi-byte character may be cut at the end of the prefix).
    fn string_bytes(&mut self, _path: &JsonPath, _bytes: &[u8]) {}
    /// The string ended. `raw_len` counts the bytes between the quotes as
    /// written (escapes included); `tail` holds its last two raw bytes.
    fn string_end(&mut self, _path: &JsonPath, _raw_len: u64, _tail: [u8; 2]) {}
    /// `true`, `false` or `null`; numbers too unless [`JsonVisitor::number`]
    /// is overridden (truncated to 40 bytes).
    fn scalar(&mut self, _path: &JsonPath, _token: &[u8]) {}
    /// A number: its token (truncated to 40 bytes) and its value when the
    /// exact fast path computed it (`None`: parse the token if the value is
    /// wanted). Goes to [`JsonVisitor::scalar`] unless overridden.
    fn number(&mut self, path: &JsonPath, token: &[u8], _value: Option<f64>) {
        self.scalar(path, token)
    }
    /// An object or array opens at `path`.
    fn open(&mut self, _path: &JsonPath, _array: bool) {}
}

/// Where a scan ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// One complete JSON value followed only by whitespace.
    Complete,
    /// Valid so far, but the body ended inside a value.
    Truncated,
    /// Not JSON (bad token, bad structure, invalid UTF-8, too deep).
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level value.
    Start,
    /// After `:` or `,` in an array: a value must follow.
    Value,
    /// After `[`: a value or `]`.
    ArrayFirst,
    /// After `{`: a key or `}`.
    ObjectFirst,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value: `,`, a closing bracket, or the end.
    AfterValue,
    InString,
    InScalar,
    /// The top-level value is complete; only whitespace may follow.
    Done,
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    /// Inside `\uXXXX`: digits still expected and the value so far.
    Unicode {
        left: u8,
        value: u16,
    },
}

/// The incremental scanner. Feed chunks with [`JsonScanner::feed`], then call
/// [`JsonScanner::finish`].
#[derive(Debug, Clone)]
pub struct JsonScanner {
    state: State,
    path: JsonPath,
    /// One bit per open container: 1 = array.
    arrays: [u64; MAX_DEPTH / 64],
    depth: usize,
    utf8: Utf8Stream,
    // Current string.
    string_is_key: bool,
    escape: Escape,
    high_surrogate: Option<u16>,
    raw_len: u64,
    tail: [u8; 2],
    capture_left: usize,
    key: [u8; KEY_CAP],
    key_len: usize,
    // Current scalar.
    scalar: [u8; SCALAR_CAP],
    scalar_len: usize,
    bytes_seen: u64,
}

impl Default for JsonScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonScanner {
    pub fn new() -> Self {
        JsonScanner {
            state: State::Start,
            path: JsonPath::new(),
            arrays: [0; MAX_DEPTH / 64],
            depth: 0,
            utf8: Utf8Stream::default(),
            string_is_key: false,
            escape: Escape::None,
            high_surrogate: None,
            raw_len: 0,
            tail: [0; 2],
            capture_left: 0,
            key: [0; KEY_CAP],
            key_len: 0,
            scalar: [0; SCALAR_CAP],
            scalar_len: 0,
            bytes_seen: 0,
        }
    }

    /// True once the input is known not to be JSON; further chunks are ignored.
    pub fn is_malformed(&self) -> bool {
        self.state == State::Malformed
    }

    /// True when nothing but whitespace has been seen yet.
    pub fn is_at_start(&self) -> bool {
        self.state == State::Start
    }

    /// Scans the next chunk. Never fails: bad input switches the scanner to
    /// the malformed state, after which chunks cost nothing.
    pub fn feed<V: JsonVisitor>(&mut self, chunk: &[u8], visitor: &mut V) {
        if self.state == State::Malformed {
            return;
        }
        self.bytes_seen += chunk.len() as u64;
        if !self.utf8.feed(chunk) {
            self.state = State::Malformed;
            return;
        }
        let mut i = 0;
        while i < chunk.len() {
            match self.state {
                State::InString => i = self.string_run(chunk, i, visitor),
                State::InScalar => i = self.scalar_run(chunk, i, visitor),
                State::Malformed => return,
                _ => i = self.structural(chunk, i, visitor),
            }
        }
    }

    /// Ends the scan: a top-level number still open is completed here.
    pub fn finish<V: JsonVisitor>(&mut self, visitor: &mut V) -> ScanStatus {
        if self.state == State::InScalar && self.depth == 0 {
            self.end_scalar(visitor);
        }
        if !self.utf8.is_complete_and_valid() && self.state != State::Malformed {
            return ScanStatus::Truncated;
        }
        match self.state {
            State::Done => ScanStatus::Complete,
            State::Malformed => ScanStatus::Malformed,
            _ => ScanStatus::Truncated,
        }
    }

    fn fail(&mut self) {
        self.state = State::Malformed;
    }

    /// Handles the structural byte at `chunk[i]`; returns the next position.
    fn structural<V: JsonVisitor>(&mut self, chunk: &[u8], i: usize, visitor: &mut V) -> usize {
        let b = chunk[i];
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            return i + 1;
        }
        match self.state {
            State::Start | State::Value | State::ArrayFirst => {
                if self.state == State::ArrayFirst && b == b']' {
                    self.close(true);
                } else {
                    return self.begin_value(chunk, i, visitor);
                }
            }
            State::ObjectFirst | State::Key => match b {
                b'"' => self.begin_string(true, visitor),
                b'}' if self.state == State::ObjectFirst => self.close(false),
                _ => self.fail(),
            },
            State::Colon => {
                if b == b':' {
                    self.state = State::Value;
                } else {
                    self.fail();
                }
            }
            State::AfterValue => match b {
                b',' => {
                    if self.in_array() {
                        if let Some(Segment::Index(i)) = self.path.top_mut() {
                            *i = i.saturating_add(1);
                        }
                        self.state = State::Value;
                    } else {
                        self.state = State::Key;
                    }
                }
                b']' if self.depth > 0 && self.in_array() => self.close(true),
                b'}' if self.depth > 0 && !self.in_array() => self.close(false),
                _ => self.fail(),
            },
            State::Done => self.fail(),
            State::InString | State::InScalar | State::Malformed => {}
        }
        i + 1
    }

    fn in_array(&self) -> bool {
        let Some(top) = self.depth.checked_sub(1) else {
            return false;
        };
        self.arrays[top / 64] & (1 << (top % 64)) != 0
    }

    /// Starts the value whose first byte is `chunk[i]`; returns the next position.
    fn begin_value<V: JsonVisitor>(&mut self, chunk: &[u8], i: usize, visitor: &mut V) -> usize {
        let b = chunk[i];
        match b {
            b'{' | b'[' => {
                if self.depth >= MAX_DEPTH {
                    self.fail();
                    return i + 1;
                }
                let array = b == b'[';
                visitor.open(&self.path, array);
                let (word, bit) = (self.depth / 64, self.depth % 64);
                if array {
                    self.arrays[word] |= 1 << bit;
                } else {
                    self.arrays[word] &= !(1 << bit);
                }
                self.depth += 1;
                self.path.push(if array {
                    Segment::Index(0)
                } else {
                    Segment::EMPTY_KEY
                });
                self.state = if array {
                    State::ArrayFirst
                } else {
                    State::ObjectFirst
                };
            }
            b'"' => self.begin_string(false, visitor),
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let rest = &chunk[i..];
                return match rest.iter().position(|&b| !is_scalar_byte(b)) {
                    // The token ends in this chunk: read it where it lies.
                    Some(len) if len <= SCALAR_CAP => {
                        self.end_token(&rest[..len], false, visitor);
                        i + len
                    }
                    // Cut by the chunk's end (or over-long): collect it.
                    _ => {
                        self.scalar_len = 0;
                        self.state = State::InScalar;
                        i
                    }
                };
            }
            _ => self.fail(),
        }
        i + 1
    }

    fn close(&mut self, _array: bool) {
        self.depth -= 1;
        self.path.pop();
        self.state = if self.depth == 0 {
            State::Done
        } else {
            State::AfterValue
        };
    }

    fn value_done(&mut self) {
        self.state = if self.depth == 0 {
            State::Done
        } else {
            State::AfterValue
        };
    }

    fn begin_string<V: JsonVisitor>(&mut self, is_key: bool, visitor: &mut V) {
        self.state = State::InString;
        self.string_is_key = is_key;
        self.escape = Escape::None;
        self.high_surrogate = None;
        self.raw_len = 0;
        self.tail = [0; 2];
        if is_key {
            self.key_len = 0;
            // One byte more than kept, so an over-long key is recognisable.
            self.capture_left = KEY_CAP + 1;
        } else {
            self.capture_left = visitor.string_start(&self.path);
        }
    }

    /// Delivers decoded string bytes to the key buffer or the visitor.
    fn emit<V: JsonVisitor>(&mut self, bytes: &[u8], visitor: &mut V) {
        if self.capture_left == 0 || bytes.is_empty() {
            return;
        }
        let take = bytes.len().min(self.capture_left);
        self.capture_left -= take;
        if self.string_is_key {
            let start = self.key_len.min(KEY_CAP);
            let kept = take.min(KEY_CAP - start);
            self.key[start..start + kept].copy_from_slice(&bytes[..kept]);
            self.key_len += take;
        } else {
            visitor.string_bytes(&self.path, &bytes[..take]);
        }
    }

    fn note_raw(&mut self, raw: &[u8]) {
        self.raw_len += raw.len() as u64;
        match raw {
            [] => {}
            [one] => self.tail = [self.tail[1], *one],
            [.., a, b] => self.tail = [*a, *b],
        }
    }

    fn flush_surrogate<V: JsonVisitor>(&mut self, visitor: &mut V) {
        if self.high_surrogate.take().is_some() {
            self.emit("\u{FFFD}".as_bytes(), visitor);
        }
    }

    /// Consumes string bytes from `chunk[i..]`; returns the next position.
    fn string_run<V: JsonVisitor>(&mut self, chunk: &[u8], mut i: usize, visitor: &mut V) -> usize {
        while i < chunk.len() {
            if self.escape != Escape::None {
                let b = chunk[i];
                self.note_raw(&chunk[i..i + 1]);
                i += 1;
                self.escape_byte(b, visitor);
                if self.state == State::Malformed {
                    return chunk.len();
                }
                continue;
            }
            let rest = &chunk[i..];
            let stop = memchr2(b'"', b'\\', rest);
            let run = &rest[..stop.unwrap_or(rest.len())];
            if !run.is_empty() {
                if self.high_surrogate.is_some() {
                    self.flush_surrogate(visitor);
                }
                self.note_raw(run);
                self.emit(run, visitor);
            }
            let Some(p) = stop else {
                return chunk.len();
            };
            i += p;
            if chunk[i] == b'"' {
                self.flush_surrogate(visitor);
                self.end_string(visitor);
                return i + 1;
            }
            // A backslash.
            self.note_raw(&chunk[i..i + 1]);
            self.escape = Escape::Backslash;
            i += 1;
        }
        i
    }

    fn escape_byte<V: JsonVisitor>(&mut self, b: u8, visitor: &mut V) {
        match self.escape {
            Escape::None => {}
            Escape::Backslash => {
                let decoded = match b {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        self.escape = Escape::Unicode { left: 4, value: 0 };
                        return;
                    }
                    _ => {
                        self.fail();
                        return;
                    }
                };
                self.escape = Escape::None;
                self.flush_surrogate(visitor);
                self.emit(&[decoded], visitor);
            }
            Escape::Unicode { left, value } => {
                let Some(digit) = (b as char).to_digit(16) else {
                    self.fail();
                    return;
                };
                let value = (value << 4) | digit as u16;
                if left > 1 {
                    self.escape = Escape::Unicode {
                        left: left - 1,
                        value,
                    };
                    return;
                }
                self.escape = Escape::None;
                self.unicode_escape(value, visitor);
            }
        }
    }

    fn unicode_escape<V: JsonVisitor>(&mut self, unit: u16, visitor: &mut V) {
        let mut buf = [0u8; 4];
        match unit {
            0xD800..=0xDBFF => {
                self.flush_surrogate(visitor);
                self.high_surrogate = Some(unit);
            }
            0xDC00..=0xDFFF => {
                let scalar = match self.high_surrogate.take() {
                    Some(high) => {
                        let code = 0x10000
                            + ((u32::from(high) - 0xD800) << 10)
                            + (u32::from(unit) - 0xDC00);
                        char::from_u32(code).unwrap_or('\u{FFFD}')
                    }
                    None => '\u{FFFD}',
                };
                let text = scalar.encode_utf8(&mut buf);
                self.emit(text.as_bytes(), visitor);
            }
            _ => {
                self.flush_surrogate(visitor);
                let scalar = char::from_u32(u32::from(unit)).unwrap_or('\u{FFFD}');
                let text = scalar.encode_utf8(&mut buf);
                self.emit(text.as_bytes(), visitor);
            }
        }
    }

    fn end_string<V: JsonVisitor>(&mut self, visitor: &mut V) {
        if self.string_is_key {
            let len = if self.key_len > KEY_CAP {
                u8::MAX
            } else {
                self.key_len as u8
            };
            if let Some(top) = self.path.top_mut() {
                *top = Segment::Key {
                    len,
                    bytes: self.key,
                };
            }
            self.state = State::Colon;
        } else {
            visitor.string_end(&self.path, self.raw_len, self.tail);
            self.value_done();
        }
    }

    /// Collects a scalar token cut by a chunk boundary (or longer than
    /// [`SCALAR_CAP`]) from `chunk[i..]`; returns the next position.
    fn scalar_run<V: JsonVisitor>(&mut self, chunk: &[u8], mut i: usize, visitor: &mut V) -> usize {
        while i < chunk.len() {
            let b = chunk[i];
            if !is_scalar_byte(b) {
                // The delimiter is handled by the structural state machine.
                self.end_scalar(visitor);
                return i;
            }
            if self.scalar_len < SCALAR_CAP {
                self.scalar[self.scalar_len] = b;
            }
            self.scalar_len += 1;
            i += 1;
        }
        i
    }

    fn end_scalar<V: JsonVisitor>(&mut self, visitor: &mut V) {
        let (buffer, len) = (self.scalar, self.scalar_len);
        self.end_token(&buffer[..len.min(SCALAR_CAP)], len > SCALAR_CAP, visitor);
    }

    /// Checks a complete number or literal token and hands it to the
    /// visitor; `truncated`: only its first [`SCALAR_CAP`] bytes are given.
    fn end_token<V: JsonVisitor>(&mut self, token: &[u8], truncated: bool, visitor: &mut V) {
        match token.first() {
            _ if !truncated && matches!(token, b"true" | b"false" | b"null") => {
                visitor.scalar(&self.path, token)
            }
            // Any other token that starts like a literal is malformed.
            Some(b't' | b'f' | b'n') => return self.fail(),
            // A truncated number is checked for its character set only.
            _ if truncated => {
                if !token
                    .iter()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
                {
                    return self.fail();
                }
                visitor.number(&self.path, token, None);
            }
            _ => match json_number(token) {
                Ok(value) => visitor.number(&self.path, token, value),
                Err(_) => return self.fail(),
            },
        }
        self.value_done();
    }
}

/// Bytes a number or literal token may hold; anything else ends it.
fn is_scalar_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'-' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every event as text, to compare scans of differently chunked input.
    #[derive(Default)]
    struct Recorder {
        events: Vec<String>,
        current: Vec<u8>,
    }

    fn path_text(path: &JsonPath) -> String {
        match path.segments() {
            None => "<deep>".into(),
            Some(segs) => segs
                .iter()
                .map(|s| match s {
                    Segment::Index(i) => format!("[{i}]"),
                    s => match s.key() {
                        Some(k) => format!(".{}", String::from_utf8_lossy(k)),
                        None => ".<long>".into(),
                    },
                })
                .collect(),
        }
    }

    impl JsonVisitor for Recorder {
        fn string_start(&mut self, _path: &JsonPath) -> usize {
            self.current.clear();
            usize::MAX
        }
        fn string_bytes(&mut self, _path: &JsonPath, bytes: &[u8]) {
            self.current.extend_from_slice(bytes);
        }
        fn string_end(&mut self, path: &JsonPath, raw_len: u64, tail: [u8; 2]) {
            self.events.push(format!(
                "{} = {:?} ({raw_len}, {:?})",
                path_text(path),
                String::from_utf8_lossy(&self.current),
                tail
            ));
        }
        fn scalar(&mut self, path: &JsonPath, token: &[u8]) {
            self.events.push(format!(
                "{} = {}",
                path_text(path),
                String::from_utf8_lossy(token)
            ));
        }
        fn open(&mut self, path: &JsonPath, array: bool) {
            self.events
                .push(format!("open {} {}", path_text(path), array));
        }
    }

    fn scan_whole(input: &[u8]) -> (ScanStatus, Vec<String>) {
        let mut scanner = JsonScanner::new();
        let mut rec = Recorder::default();
        scanner.feed(input, &mut rec);
        let status = scanner.finish(&mut rec);
        (status, rec.events)
    }

    /// Asserts every two-piece split and the byte-by-byte feed agree with the whole.
    fn assert_chunking_invariant(input: &[u8]) -> (ScanStatus, Vec<String>) {
        let whole = scan_whole(input);
        for cut in 0..=input.len() {
            let mut scanner = JsonScanner::new();
            let mut rec = Recorder::default();
            scanner.feed(&input[..cut], &mut rec);
            scanner.feed(&input[cut..], &mut rec);
            let status = scanner.finish(&mut rec);
            assert_eq!((status, rec.events), whole, "cut at {cut}");
        }
        let mut scanner = JsonScanner::new();
        let mut rec = Recorder::default();
        for b in input {
            scanner.feed(std::slice::from_ref(b), &mut rec);
        }
        let status = scanner.finish(&mut rec);
        assert_eq!((status, rec.events), whole, "byte by byte");
        whole
    }

    #[test]
    fn paths_and_values() {
        let (status, events) = assert_chunking_invariant(
            br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"n":-1.5e3}]}],"stream":true}"#,
        );
        assert_eq!(status, ScanStatus::Complete);
        assert_eq!(
            events,
            vec![
                "open  false",
                ".model = \"m\" (1, [0, 109])",
                "open .messages true",
                "open .messages[0] false",
                ".messages[0].role = \"user\" (4, [101, 114])",
                "open .messages[0].content true",
                "open .messages[0].content[0] false",
                ".messages[0].content[0].type = \"text\" (4, [120, 116])",
                ".messages[0].content[0].text = \"hi\" (2, [104, 105])",
                "open .messages[0].content[1] false",
                ".messages[0].content[1].n = -1.5e3",
                ".stream = true",
            ]
        );
    }

    #[test]
    fn escapes_split_anywhere() {
        let (status, events) = assert_chunking_invariant(
            br#"{"p":"a\"b\\c\/\n\u00e9\ud83e\udd16\u65e5 end","k\u0065y":1}"#,
        );
        assert_eq!(status, ScanStatus::Complete);
        assert_eq!(
            events[1],
            ".p = \"a\\\"b\\\\c/\\né🤖日 end\" (39, [110, 100])"
        );
        assert_eq!(events[2], ".key = 1");
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let (status, events) = assert_chunking_invariant(br#"["\ud800x","\udc00"]"#);
        assert_eq!(status, ScanStatus::Complete);
        assert_eq!(events[1], "[0] = \"\u{FFFD}x\" (7, [48, 120])");
        assert_eq!(events[2], "[1] = \"\u{FFFD}\" (6, [48, 48])");
    }

    #[test]
    fn top_level_scalars() {
        assert_eq!(scan_whole(b" 42 ").0, ScanStatus::Complete);
        assert_eq!(scan_whole(b"42").0, ScanStatus::Complete);
        assert_eq!(scan_whole(b"\"x\"").0, ScanStatus::Complete);
        assert_eq!(scan_whole(b"null").0, ScanStatus::Complete);
        assert_eq!(scan_whole(b"[]").0, ScanStatus::Complete);
        assert_eq!(scan_whole(b"{}").0, ScanStatus::Complete);
    }

    #[test]
    fn malformed_inputs() {
        for bad in [
            &b"{\"a\":}"[..],
            b"{\"a\" 1}",
            b"[1,]x",
            b"[1 2]",
            b"{\"a\":1]",
            b"[1}",
            b"tru",
            b"nul ",
            b"01",
            b"1.",
            b"-",
            b"1e",
            b"{} {}",
            b"\"\\x\"",
            b"\"\\u12g4\"",
            b"hello world",
            b"<html>",
            b"{\"a\":\"\xff\"}",
            b"{,}",
        ] {
            let (status, _) = scan_whole(bad);
            assert_ne!(
                status,
                ScanStatus::Complete,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(scan_whole(b"[1 2]").0, ScanStatus::Malformed);
        assert_eq!(scan_whole(b"{\"a\":\"\xff\"}").0, ScanStatus::Malformed);
    }

    #[test]
    fn truncated_inputs() {
        for cut in [
            &b"{\"a\":[1,2"[..],
            b"{\"a\":\"abc",
            b"[",
            b"",
            b"{\"a\":\"\\u00",
        ] {
            assert_eq!(scan_whole(cut).0, ScanStatus::Truncated);
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(scan_whole(deep.as_bytes()).0, ScanStatus::Malformed);
        let ok = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let (status, events) = scan_whole(ok.as_bytes());
        assert_eq!(status, ScanStatus::Complete);
        assert_eq!(events.len(), 40);
        assert!(events[39].contains("<deep>"));
    }

    #[test]
    fn long_keys_never_match() {
        let long = format!("{{\"{}\":1}}", "k".repeat(KEY_CAP + 5));
        let (status, events) = scan_whole(long.as_bytes());
        assert_eq!(status, ScanStatus::Complete);
        assert_eq!(events[1], ".<long> = 1");
    }

    #[test]
    fn path_patterns() {
        struct Check(bool);
        impl JsonVisitor for Check {
            fn scalar(&mut self, path: &JsonPath, _token: &[u8]) {
                self.0 = path.matches(&[Pat::Key("a"), Pat::AnyIndex, Pat::Key("b")])
                    && path.ends_with(&[Pat::AnyIndex, Pat::AnyKey])
                    && path.index_at(1) == Some(1);
            }
        }
        let mut check = Check(false);
        let mut scanner = JsonScanner::new();
        scanner.feed(br#"{"a":[{},{"b":1}]}"#, &mut check);
        assert_eq!(scanner.finish(&mut check), ScanStatus::Complete);
        assert!(check.0);
    }
}
