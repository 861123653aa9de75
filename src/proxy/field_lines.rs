//! A header section kept as the bytes it came in, one field per line.
//!
//! The lane's requests and the direct path's responses are mostly forwarded
//! with their fields unchanged but for a few lines left out (hop-by-hop
//! fields, replaced ones). Turning each field into a `HeaderMap` entry (a
//! name lookup, a value check and a table insertion, then freeing it all)
//! only to encode it again was the costliest step of a small exchange, so
//! these heads keep their bytes: [`FieldLines::write_to`] copies the lines
//! that stay, and [`FieldLines::append_to`] builds a map for the parts of
//! the proxy that need one (hyper's server and client, payload analysis).
//!
//! This file needs only `bytes`, `http` and `memchr`, so fuzz targets
//! include it as it is.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Most lines a [`FieldLines`] may hold: one bit of a `u128` mask each.
pub const MAX_LINES: usize = 128;

/// What a field name means to the forward path. Names are compared without
/// regard to case (RFC 9110 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    /// The other fields that are hop-by-hop whatever Connection says:
    /// Keep-Alive and Proxy-Connection (RFC 9110 §7.6.1).
    HopByHop,
    Te,
    Expect,
    Host,
    Date,
    ContentType,
    RequestId,
    ForwardedFor,
    ForwardedProto,
    /// `x-magma-sample`: the client's say on whether its exchange is sampled.
    Sample,
    Other,
}

impl FieldKind {
    /// `name` is a token (RFC 9110 §5.6.2), as httparse has checked.
    pub fn of(name: &[u8]) -> FieldKind {
        let is = |known: &[u8]| is_token_ignoring_case(name, known);
        match name.len() {
            2 if is(b"te") => FieldKind::Te,
            4 if is(b"date") => FieldKind::Date,
            4 if is(b"host") => FieldKind::Host,
            6 if is(b"expect") => FieldKind::Expect,
            7 if is(b"upgrade") => FieldKind::Upgrade,
            10 if is(b"connection") => FieldKind::Connection,
            10 if is(b"keep-alive") => FieldKind::HopByHop,
            12 if is(b"content-type") => FieldKind::ContentType,
            12 if is(b"x-request-id") => FieldKind::RequestId,
            14 if is(b"content-length") => FieldKind::ContentLength,
            14 if is(b"x-magma-sample") => FieldKind::Sample,
            15 if is(b"x-forwarded-for") => FieldKind::ForwardedFor,
            16 if is(b"proxy-connection") => FieldKind::HopByHop,
            17 if is(b"transfer-encoding") => FieldKind::TransferEncoding,
            17 if is(b"x-forwarded-proto") => FieldKind::ForwardedProto,
            _ => FieldKind::Other,
        }
    }
}

/// Whether the token `name` is `known` (lowercase letters and `-`) in any
/// case. Setting bit 0x20 lowercases a letter and turns no other token byte
/// into a lowercase letter or `-` (only CR, which no token holds, becomes
/// `-`), so one OR and compare per byte decide it, with no branch per byte.
fn is_token_ignoring_case(name: &[u8], known: &[u8]) -> bool {
    name.len() == known.len()
        && name
            .iter()
            .zip(known)
            .fold(0, |differ, (&byte, &want)| differ | ((byte | 0x20) ^ want))
            == 0
}

/// A head's bytes and where its field lines start. Every line ends in CRLF
/// and holds one field (no obsolete line folding): the parsers check this
/// before they keep a head this way.
#[derive(Debug, Clone)]
pub struct FieldLines {
    /// The whole head: start line, field lines, final CRLF.
    head: Bytes,
    /// Where the first field line starts (just past the start line).
    first_line: u32,
}

impl FieldLines {
    pub fn new(head: Bytes, first_line: usize) -> Self {
        debug_assert!(head.ends_with(b"\r\n\r\n") && first_line + 2 <= head.len());
        FieldLines {
            head,
            first_line: first_line as u32,
        }
    }

    /// The head's bytes in `range` (a value's span, say), sharing them.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Bytes {
        self.head.slice(range)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.head
    }

    /// The field lines, CRLF included, without the final empty line.
    fn block(&self) -> &[u8] {
        &self.head[self.first_line as usize..self.head.len() - 2]
    }

    /// Appends every line but those whose bit is set in `left_out`.
    pub fn write_to(&self, out: &mut Vec<u8>, left_out: u128) {
        let block = self.block();
        if left_out == 0 {
            out.extend_from_slice(block);
            return;
        }
        // Runs of kept lines go in one copy each.
        let mut run_start = 0;
        let mut line_start = 0;
        for (line, end) in memchr::memchr_iter(b'\n', block).enumerate() {
            let next = end + 1;
            if left_out & bit(line) != 0 {
                out.extend_from_slice(&block[run_start..line_start]);
                run_start = next;
            }
            line_start = next;
        }
        out.extend_from_slice(&block[run_start..]);
    }

    /// The lines whose bit is set in `lines`, as (name, value) with the
    /// value's optional whitespace trimmed and its place in the head.
    pub fn fields(
        &self,
        lines: u128,
    ) -> impl Iterator<Item = (&[u8], &[u8], std::ops::Range<usize>)> + '_ {
        let start = self.first_line as usize;
        let block = self.block();
        let mut line_start = 0;
        memchr::memchr_iter(b'\n', block)
            .enumerate()
            .filter_map(move |(line, end)| {
                let text = &block[line_start..end - 1];
                let offset = start + line_start;
                line_start = end + 1;
                if lines & bit(line) == 0 {
                    return None;
                }
                let colon = memchr::memchr(b':', text)?;
                let value = text[colon + 1..].trim_ascii();
                let value_start = offset + (value.as_ptr() as usize - text.as_ptr() as usize);
                Some((
                    &text[..colon],
                    value,
                    value_start..value_start + value.len(),
                ))
            })
    }

    /// Appends the fields of every line but those set in `left_out` to
    /// `map`, repeated ones in order, each value sharing the head's bytes.
    pub fn append_to(&self, map: &mut HeaderMap, left_out: u128) {
        for (name, _, value) in self.fields(!left_out) {
            // The parse accepted both (httparse checks names and values as
            // the map's types do), so neither fails.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_maybe_shared(self.head.slice(value)),
            ) {
                map.append(name, value);
            }
        }
    }
}

/// The mask bit of line `line`.
pub fn bit(line: usize) -> u128 {
    1u128 << line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(fields: &str) -> FieldLines {
        let start = "POST / HTTP/1.1\r\n";
        FieldLines::new(Bytes::from(format!("{start}{fields}\r\n")), start.len())
    }

    fn written(lines: &FieldLines, left_out: u128) -> String {
        let mut out = Vec::new();
        lines.write_to(&mut out, left_out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names_are_known_whatever_their_case() {
        assert_eq!(FieldKind::of(b"Content-Length"), FieldKind::ContentLength);
        assert_eq!(FieldKind::of(b"TE"), FieldKind::Te);
        assert_eq!(FieldKind::of(b"X-Request-ID"), FieldKind::RequestId);
        assert_eq!(FieldKind::of(b"Keep-Alive"), FieldKind::HopByHop);
        assert_eq!(FieldKind::of(b"PROXY-CONNECTION"), FieldKind::HopByHop);
        assert_eq!(FieldKind::of(b"upgrade"), FieldKind::Upgrade);
        assert_eq!(FieldKind::of(b"X-Forwarded-For"), FieldKind::ForwardedFor);
        assert_eq!(
            FieldKind::of(b"x-forwarded-PROTO"),
            FieldKind::ForwardedProto
        );
        assert_eq!(FieldKind::of(b"HOST"), FieldKind::Host);
        assert_eq!(FieldKind::of(b"X-Magma-Sample"), FieldKind::Sample);
        assert_eq!(FieldKind::of(b"Content-Typo"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"dates"), FieldKind::Other);
        // Token bytes next to letters and `-` in the table stay unequal.
        assert_eq!(FieldKind::of(b"content_length"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"Content^Length"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"t~"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"D@te"), FieldKind::Other);
    }

    #[test]
    fn lines_are_copied_as_they_came_less_those_left_out() {
        let fields = "A: 1\r\nB:2 \r\nC: 3\r\nD: 4\r\n";
        let lines = lines(fields);
        assert_eq!(written(&lines, 0), fields);
        assert_eq!(written(&lines, bit(1) | bit(2)), "A: 1\r\nD: 4\r\n");
        assert_eq!(written(&lines, bit(0) | bit(3)), "B:2 \r\nC: 3\r\n");
        assert_eq!(written(&lines, !0), "");
    }

    #[test]
    fn fields_are_read_back_trimmed_with_their_place() {
        let lines = lines("Set-Cookie: a=1\r\nSet-Cookie:  b=2  \r\nX-Empty:\r\n");
        let read: Vec<_> = lines
            .fields(!0)
            .map(|(name, value, place)| {
                assert_eq!(&lines.bytes()[place], value);
                (name.to_vec(), value.to_vec())
            })
            .collect();
        assert_eq!(
            read,
            [
                (b"Set-Cookie".to_vec(), b"a=1".to_vec()),
                (b"Set-Cookie".to_vec(), b"b=2".to_vec()),
                (b"X-Empty".to_vec(), b"".to_vec()),
            ]
        );
        let mut map = HeaderMap::new();
        lines.append_to(&mut map, bit(2));
        let cookies: Vec<_> = map.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn a_head_without_fields_has_no_lines() {
        let lines = lines("");
        assert_eq!(written(&lines, 0), "");
        assert_eq!(lines.fields(!0).count(), 0);
    }
}
