//! A streaming `multipart/form-data` scanner (RFC 7578 over RFC 2046).
//!
//! It finds `CRLF--boundary` delimiters with a vectorised substring search
//! and carries at most one delimiter's length of bytes between chunks, so a
//! delimiter split anywhere across chunks is still found and part data is
//! never buffered. Part headers are kept (bounded) only until parsed.
//!
//! Self-contained (std and memchr) so fuzz targets can include the file directly.

use memchr::memmem;

/// RFC 2046 5.1.1: a boundary is 1 to 70 characters.
pub const MAX_BOUNDARY: usize = 70;
/// Largest header block of one part.
pub const MAX_PART_HEADERS: usize = 8 * 1024;

/// The headers of one part that matter for classification.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartHeaders<'a> {
    /// `name` parameter of `Content-Disposition`.
    pub name: Option<&'a str>,
    /// `filename` parameter of `Content-Disposition`.
    pub filename: Option<&'a str>,
    /// Media type of `Content-Type`, without parameters, as written.
    pub content_type: Option<&'a str>,
}

/// Receives the parts as they stream.
pub trait MultipartVisitor {
    fn part_start(&mut self, headers: &PartHeaders<'_>);
    fn part_data(&mut self, bytes: &[u8]);
    fn part_end(&mut self);
}

/// Where a scan ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartStatus {
    /// The close delimiter was seen.
    Complete,
    /// The body ended before the close delimiter.
    Truncated,
    /// Not multipart: bad delimiter line or over-long part headers.
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterDelimiter { first: Option<u8> },
    Headers,
    Body,
    Epilogue,
    Malformed,
}

/// The incremental multipart scanner.
#[derive(Debug, Clone)]
pub struct MultipartScanner {
    /// `\r\n--` + boundary.
    delimiter: Vec<u8>,
    finder: memmem::Finder<'static>,
    state: State,
    carry: Vec<u8>,
    headers: Vec<u8>,
    parts: u32,
}

/// Extracts the `boundary` parameter of a `multipart/*` content type.
pub fn boundary_from_content_type(content_type: &str) -> Option<&str> {
    let (media, params) = content_type.split_once(';')?;
    if !media.trim().to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!value.is_empty()).then_some(value)
    })
}

impl MultipartScanner {
    /// A scanner for `boundary`; `None` when the boundary is not valid.
    pub fn new(boundary: &[u8]) -> Option<Self> {
        if boundary.is_empty()
            || boundary.len() > MAX_BOUNDARY
            || boundary.iter().any(|b| matches!(b, b'\r' | b'\n'))
        {
            return None;
        }
        let mut delimiter = Vec::with_capacity(boundary.len() + 4);
        delimiter.extend_from_slice(b"\r\n--");
        delimiter.extend_from_slice(boundary);
        let finder = memmem::Finder::new(&delimiter).into_owned();
        // The first delimiter may open the body without a CRLF before it:
        // pretend one was seen, it is preamble (discarded) if nothing matches.
        let mut carry = Vec::with_capacity(delimiter.len());
        carry.extend_from_slice(b"\r\n");
        Some(MultipartScanner {
            delimiter,
            finder,
            state: State::Preamble,
            carry,
            headers: Vec::new(),
            parts: 0,
        })
    }

    /// Parts started so far.
    pub fn parts(&self) -> u32 {
        self.parts
    }

    /// Scans the next chunk. Never fails.
    pub fn feed<V: MultipartVisitor>(&mut self, chunk: &[u8], visitor: &mut V) {
        let mut i = 0;
        while i < chunk.len() {
            i = match self.state {
                State::Preamble | State::Body => self.find_delimiter(chunk, i, visitor),
                State::AfterDelimiter { first } => {
                    self.after_delimiter(first, chunk[i]);
                    i + 1
                }
                State::Headers => self.header_bytes(chunk, i, visitor),
                State::Epilogue | State::Malformed => return,
            };
        }
    }

    /// Ends the scan.
    pub fn finish(&self) -> MultipartStatus {
        match self.state {
            State::Epilogue => MultipartStatus::Complete,
            State::Malformed => MultipartStatus::Malformed,
            _ => MultipartStatus::Truncated,
        }
    }

    fn data<V: MultipartVisitor>(&self, bytes: &[u8], visitor: &mut V) {
        if self.state == State::Body && !bytes.is_empty() {
            visitor.part_data(bytes);
        }
    }

    fn delimiter_found<V: MultipartVisitor>(&mut self, visitor: &mut V) {
        if self.state == State::Body {
            visitor.part_end();
        }
        self.state = State::AfterDelimiter { first: None };
    }

    /// Passes data through until the next delimiter; returns the next position.
    fn find_delimiter<V: MultipartVisitor>(
        &mut self,
        chunk: &[u8],
        mut i: usize,
        visitor: &mut V,
    ) -> usize {
        let dlen = self.delimiter.len();
        // Bytes carried from the previous chunk are a proper prefix of the delimiter.
        while !self.carry.is_empty() {
            let have = self.carry.len();
            let take = (dlen - have).min(chunk.len() - i);
            if self.delimiter[have..have + take] == chunk[i..i + take] {
                if have + take == dlen {
                    self.carry.clear();
                    self.delimiter_found(visitor);
                    return i + take;
                }
                self.carry.extend_from_slice(&chunk[i..i + take]);
                return chunk.len();
            }
            // Not a delimiter after all: release bytes until the rest is a prefix again.
            let shift = (1..=have)
                .find(|&s| self.delimiter.starts_with(&self.carry[s..]))
                .unwrap_or(have);
            let mut released = [0u8; MAX_BOUNDARY + 4];
            released[..shift].copy_from_slice(&self.carry[..shift]);
            self.carry.drain(..shift);
            self.data(&released[..shift], visitor);
        }
        let rest = &chunk[i..];
        if let Some(p) = self.finder.find(rest) {
            self.data(&rest[..p], visitor);
            i += p + dlen;
            self.delimiter_found(visitor);
            return i;
        }
        // Keep the longest tail that could start a delimiter.
        let keep = (1..dlen.min(rest.len() + 1))
            .rev()
            .find(|&k| rest.ends_with(&self.delimiter[..k]))
            .unwrap_or(0);
        self.data(&rest[..rest.len() - keep], visitor);
        self.carry.extend_from_slice(&rest[rest.len() - keep..]);
        chunk.len()
    }

    fn after_delimiter(&mut self, first: Option<u8>, b: u8) {
        self.state = match (first, b) {
            // RFC 2046 allows linear white space after a delimiter.
            (None, b' ' | b'\t') => State::AfterDelimiter { first: None },
            (None, b) => State::AfterDelimiter { first: Some(b) },
            (Some(b'-'), b'-') => State::Epilogue,
            (Some(b'\r'), b'\n') => {
                self.headers.clear();
                // A part with no headers starts with a blank line right away.
                self.headers.extend_from_slice(b"\r\n");
                State::Headers
            }
            _ => State::Malformed,
        };
    }

    fn header_bytes<V: MultipartVisitor>(
        &mut self,
        chunk: &[u8],
        mut i: usize,
        visitor: &mut V,
    ) -> usize {
        while i < chunk.len() {
            if self.headers.len() >= MAX_PART_HEADERS {
                self.state = State::Malformed;
                return chunk.len();
            }
            self.headers.push(chunk[i]);
            i += 1;
            if self.headers.ends_with(b"\r\n\r\n") {
                self.parts = self.parts.saturating_add(1);
                let parsed = parse_part_headers(&self.headers);
                visitor.part_start(&parsed);
                self.state = State::Body;
                return i;
            }
        }
        i
    }
}

/// Parses a part's header block (starting with the CRLF that ended the delimiter line).
pub fn parse_part_headers(block: &[u8]) -> PartHeaders<'_> {
    let mut headers = PartHeaders::default();
    let Ok(text) = std::str::from_utf8(block) else {
        return headers;
    };
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            for param in split_params(value).skip(1) {
                let Some((key, val)) = param.split_once('=') else {
                    continue;
                };
                let val = unquote(val.trim());
                match key.trim().to_ascii_lowercase().as_str() {
                    "name" => headers.name = Some(val),
                    "filename" => headers.filename = Some(val),
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            let media = value.split(';').next().unwrap_or("").trim();
            if !media.is_empty() {
                headers.content_type = Some(media);
            }
        }
    }
    headers
}

/// Splits on `;` outside double quotes.
fn split_params(value: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut pieces = Vec::new();
    for (pos, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                pieces.push(&value[start..pos]);
                start = pos + 1;
            }
            _ => {}
        }
    }
    pieces.push(&value[start..]);
    pieces.into_iter()
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// name, filename, content type, data, ended.
    type Part = (
        Option<String>,
        Option<String>,
        Option<String>,
        Vec<u8>,
        bool,
    );

    #[derive(Default, Debug, PartialEq)]
    struct Parts {
        parts: Vec<Part>,
    }

    impl MultipartVisitor for Parts {
        fn part_start(&mut self, h: &PartHeaders<'_>) {
            self.parts.push((
                h.name.map(str::to_owned),
                h.filename.map(str::to_owned),
                h.content_type.map(str::to_owned),
                Vec::new(),
                false,
            ));
        }
        fn part_data(&mut self, bytes: &[u8]) {
            if let Some(last) = self.parts.last_mut() {
                last.3.extend_from_slice(bytes);
            }
        }
        fn part_end(&mut self) {
            if let Some(last) = self.parts.last_mut() {
                last.4 = true;
            }
        }
    }

    fn scan(boundary: &str, pieces: &[&[u8]]) -> (MultipartStatus, Parts) {
        let mut scanner = MultipartScanner::new(boundary.as_bytes()).unwrap();
        let mut parts = Parts::default();
        for piece in pieces {
            scanner.feed(piece, &mut parts);
        }
        (scanner.finish(), parts)
    }

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nWhat action should the robot take to pick up the cup?\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\r\n--Xy\r\n--X\x00\xff\r\n--XyZ--\r\nepilogue";

    #[test]
    fn parts_are_found_however_the_body_is_chunked() {
        let whole = scan("XyZ", &[BODY]);
        assert_eq!(whole.0, MultipartStatus::Complete);
        assert_eq!(whole.1.parts.len(), 2);
        assert_eq!(whole.1.parts[0].0.as_deref(), Some("prompt"));
        assert_eq!(
            whole.1.parts[0].3,
            b"What action should the robot take to pick up the cup?"
        );
        assert_eq!(whole.1.parts[1].1.as_deref(), Some("a;b.png"));
        assert_eq!(whole.1.parts[1].2.as_deref(), Some("image/png"));
        assert_eq!(
            whole.1.parts[1].3,
            b"\x89PNG\r\n\x1a\n\r\n--Xy\r\n--X\x00\xff"
        );
        assert!(whole.1.parts.iter().all(|p| p.4));
        for cut in 0..=BODY.len() {
            assert_eq!(
                scan("XyZ", &[&BODY[..cut], &BODY[cut..]]),
                whole,
                "cut {cut}"
            );
        }
        for a in (0..BODY.len()).step_by(7) {
            for b in a..BODY.len() {
                let got = scan("XyZ", &[&BODY[..a], &BODY[a..b], &BODY[b..]]);
                assert_eq!(got, whole, "cuts {a} {b}");
            }
        }
        let bytes: Vec<&[u8]> = BODY.chunks(1).collect();
        assert_eq!(scan("XyZ", &bytes), whole);
    }

    #[test]
    fn body_may_start_with_the_delimiter_and_parts_may_be_empty() {
        let body = b"--b\r\n\r\n\r\n--b\r\nContent-Disposition: form-data; name=x\r\n\r\n\r\n--b--";
        let (status, parts) = scan("b", &[body]);
        assert_eq!(status, MultipartStatus::Complete);
        assert_eq!(parts.parts.len(), 2);
        assert_eq!(parts.parts[0].0, None);
        assert!(parts.parts[0].3.is_empty());
        assert_eq!(parts.parts[1].0.as_deref(), Some("x"));
    }

    #[test]
    fn truncated_and_malformed() {
        let (status, parts) = scan("XyZ", &[&BODY[..120]]);
        assert_eq!(status, MultipartStatus::Truncated);
        assert_eq!(parts.parts.len(), 1);
        assert_eq!(
            scan("b", &[b"--b\r\nno end of headers"]).0,
            MultipartStatus::Truncated
        );
        assert_eq!(scan("b", &[b"--bXY"]).0, MultipartStatus::Malformed);
        let huge = vec![b'h'; MAX_PART_HEADERS + 10];
        assert_eq!(
            scan("b", &[b"--b\r\n", &huge]).0,
            MultipartStatus::Malformed
        );
        assert_eq!(
            scan("b", &[b"no delimiter at all"]).0,
            MultipartStatus::Truncated
        );
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary_from_content_type("multipart/form-data; boundary=----abc"),
            Some("----abc")
        );
        assert_eq!(
            boundary_from_content_type("Multipart/Form-Data; charset=x; Boundary=\"a b\""),
            Some("a b")
        );
        assert_eq!(boundary_from_content_type("application/json"), None);
        assert_eq!(boundary_from_content_type("multipart/form-data"), None);
        assert!(MultipartScanner::new(b"").is_none());
        assert!(MultipartScanner::new(&[b'a'; 71]).is_none());
    }
}
