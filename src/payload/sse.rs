//! A streaming parser of server-sent events (WHATWG HTML, "Server-sent
//! events", 9.2.6 Interpreting an event stream).
//!
//! Lines end in CRLF, LF or CR (a CRLF split across chunks is one line end).
//! Only `data` fields matter here: their values are streamed to the visitor
//! as they arrive (joined by LF within one event, per the spec), never
//! buffered, and a blank line dispatches the event. Other fields and
//! comments are skipped. Self-contained (std and memchr) so fuzz targets can
//! include the file directly.

use memchr::memchr2;

/// Receives event data as it streams.
pub trait SseVisitor {
    /// A piece of the current event's data.
    fn data(&mut self, bytes: &[u8]);
    /// A blank line ended an event that had at least one `data` line.
    fn event_end(&mut self);
}

/// Longest field name recognised (`data` is 4 bytes; longer names are skipped).
const FIELD_CAP: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Field,
    /// Just after `data:`; one leading space is dropped.
    DataStart,
    DataValue,
    /// Another field's value or a comment.
    Ignore,
}

/// The incremental parser.
#[derive(Debug, Clone)]
pub struct SseParser {
    state: State,
    field: [u8; FIELD_CAP],
    field_len: usize,
    /// The previous chunk ended in CR: an LF starting this one is part of that line end.
    after_cr: bool,
    data_lines: u32,
    events: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        SseParser {
            state: State::LineStart,
            field: [0; FIELD_CAP],
            field_len: 0,
            after_cr: false,
            data_lines: 0,
            events: 0,
        }
    }

    /// Events dispatched so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Whether an event has data that no blank line has dispatched yet.
    pub fn has_pending_event(&self) -> bool {
        self.data_lines > 0
    }

    /// Parses the next chunk. Never fails.
    pub fn feed<V: SseVisitor>(&mut self, chunk: &[u8], visitor: &mut V) {
        let mut i = 0;
        if self.after_cr {
            self.after_cr = false;
            if chunk.first() == Some(&b'\n') {
                i = 1;
            }
        }
        while i < chunk.len() {
            let b = chunk[i];
            if self.state == State::DataValue || self.state == State::Ignore {
                let rest = &chunk[i..];
                let end = memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
                if end > 0 {
                    if self.state == State::DataValue {
                        visitor.data(&rest[..end]);
                    }
                    i += end;
                    continue;
                }
                // Otherwise chunk[i] is a line end, handled below.
            }
            if b == b'\n' || b == b'\r' {
                i = self.line_end(chunk, i, visitor);
                continue;
            }
            match self.state {
                State::LineStart => {
                    if b == b':' {
                        self.state = State::Ignore;
                    } else {
                        self.field_len = 0;
                        self.push_field(b);
                        self.state = State::Field;
                    }
                }
                State::Field => {
                    if b == b':' {
                        self.state = if self.is_data_field() {
                            self.start_data_line(visitor);
                            State::DataStart
                        } else {
                            State::Ignore
                        };
                    } else {
                        self.push_field(b);
                    }
                }
                State::DataStart => {
                    self.state = State::DataValue;
                    if b != b' ' {
                        visitor.data(&chunk[i..i + 1]);
                    }
                }
                State::DataValue | State::Ignore => {}
            }
            i += 1;
        }
    }

    fn push_field(&mut self, b: u8) {
        if self.field_len < FIELD_CAP {
            self.field[self.field_len] = b;
        }
        self.field_len = self.field_len.saturating_add(1);
    }

    fn is_data_field(&self) -> bool {
        self.field_len == 4 && &self.field[..4] == b"data"
    }

    fn start_data_line<V: SseVisitor>(&mut self, visitor: &mut V) {
        if self.data_lines > 0 {
            visitor.data(b"\n");
        }
        self.data_lines += 1;
    }

    /// Handles the line end at `chunk[i]`; returns the next position.
    fn line_end<V: SseVisitor>(&mut self, chunk: &[u8], i: usize, visitor: &mut V) -> usize {
        match self.state {
            State::LineStart if self.data_lines > 0 => {
                self.data_lines = 0;
                self.events += 1;
                visitor.event_end();
            }
            // A field name alone on its line has an empty value.
            State::Field if self.is_data_field() => self.start_data_line(visitor),
            _ => {}
        }
        self.state = State::LineStart;
        if chunk[i] == b'\r' {
            match chunk.get(i + 1) {
                Some(b'\n') => return i + 2,
                Some(_) => {}
                None => self.after_cr = true,
            }
        }
        i + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Events {
        done: Vec<String>,
        current: Vec<u8>,
    }

    impl SseVisitor for Events {
        fn data(&mut self, bytes: &[u8]) {
            self.current.extend_from_slice(bytes);
        }
        fn event_end(&mut self) {
            self.done
                .push(String::from_utf8_lossy(&self.current).into_owned());
            self.current.clear();
        }
    }

    fn parse(pieces: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::new();
        let mut events = Events::default();
        for piece in pieces {
            parser.feed(piece, &mut events);
        }
        assert_eq!(parser.events() as usize, events.done.len());
        events.done
    }

    const STREAM: &[u8] = b": keep-alive\r\n\r\nevent: message\ndata: {\"a\":1}\n\ndata:two\rdata:  lines\r\n\r\nid: 7\nretry: 10\ndata\n\ndata: [DONE]\n\ndata: unterminated";

    #[test]
    fn events_however_chunked() {
        let expected = vec!["{\"a\":1}", "two\n lines", "", "[DONE]"];
        assert_eq!(parse(&[STREAM]), expected);
        for cut in 0..=STREAM.len() {
            assert_eq!(
                parse(&[&STREAM[..cut], &STREAM[cut..]]),
                expected,
                "cut {cut}"
            );
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse(&bytes), expected);
    }

    #[test]
    fn crlf_split_is_one_line_end() {
        assert_eq!(parse(&[b"data: x\r", b"\n\r", b"\n"]), vec!["x"]);
        assert_eq!(parse(&[b"data: x\r\r"]), vec!["x"]);
    }

    #[test]
    fn long_field_names_are_ignored() {
        assert_eq!(parse(&[b"datadata: x\n\n"]), Vec::<String>::new());
    }
}
