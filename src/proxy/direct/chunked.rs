//! Decoding of the chunked transfer coding, RFC 9112 §7.1:
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! The decoder works on the connection's read buffer in place: chunk data
//! leaves it as `Bytes` split off the buffer (no copy), extensions are
//! skipped (§7.1.1: "A recipient MUST ignore unrecognized chunk extensions"),
//! and the trailer section becomes a header map (§7.1.2).

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

use super::error::DirectError;
use super::response_head::{header_map, MAX_HEADERS, MAX_HEAD_BYTES};

/// Longest chunk extension accepted; extensions are skipped, but an endless
/// one must not hold the connection.
const MAX_EXTENSION_BYTES: usize = 4096;

/// What one decoding step produced.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The chunked body is complete.
    End,
    /// The buffer holds no further complete element; read more.
    NeedMore,
}

/// Where the decoder is inside the chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hexadecimal chunk size.
    Size {
        size: u64,
        digits: u8,
    },
    /// Skipping whitespace and a chunk extension up to the CR.
    Extension {
        size: u64,
        skipped: usize,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// After the last chunk: the trailer section and the final CRLF.
    Trailers,
    End,
}

#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: State::Size { size: 0, digits: 0 },
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == State::End
    }

    /// Decodes from the front of `buf`, consuming what it used.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, DirectError> {
        loop {
            match self.state {
                State::Data { remaining } => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = remaining.min(buf.len() as u64) as usize;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                State::Trailers => return self.trailers(buf),
                State::End => return Ok(Decoded::End),
                _ => {}
            }
            let Some(&byte) = buf.first() else {
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            self.state = step(self.state, byte)?;
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, DirectError> {
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            self.state = State::End;
            return Ok(Decoded::End);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(buf, &mut headers) {
            Ok(httparse::Status::Complete((used, fields))) => {
                let map = header_map(fields)?;
                buf.advance(used);
                self.state = State::End;
                Ok(Decoded::Trailers(map))
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => Ok(Decoded::NeedMore),
            Ok(httparse::Status::Partial) => {
                Err(DirectError::Malformed("the trailer section is too large"))
            }
            Err(error) => Err(DirectError::Parse(error)),
        }
    }
}

/// One byte of the size line or of the CRLF after chunk data.
fn step(state: State, byte: u8) -> Result<State, DirectError> {
    Ok(match state {
        State::Size { size, digits } => match hex_value(byte) {
            Some(value) => {
                // 16 hex digits fill a u64; leading zeros are allowed.
                if size >> 60 != 0 {
                    return Err(DirectError::Malformed("chunk size overflows"));
                }
                State::Size {
                    size: size << 4 | u64::from(value),
                    digits: digits.saturating_add(1),
                }
            }
            None if digits == 0 => return Err(DirectError::Malformed("chunk size missing")),
            None => match byte {
                b'\r' => State::SizeLf { size },
                b';' | b' ' | b'\t' => State::Extension { size, skipped: 0 },
                _ => return Err(DirectError::Malformed("invalid chunk size line")),
            },
        },
        State::Extension { size, skipped } => match byte {
            b'\r' => State::SizeLf { size },
            b'\n' => return Err(DirectError::Malformed("bare LF in a chunk size line")),
            _ if skipped >= MAX_EXTENSION_BYTES => {
                return Err(DirectError::Malformed("chunk extension too long"))
            }
            _ => State::Extension {
                size,
                skipped: skipped + 1,
            },
        },
        State::SizeLf { size } => match byte {
            b'\n' if size == 0 => State::Trailers,
            b'\n' => State::Data { remaining: size },
            _ => return Err(DirectError::Malformed("chunk size line not ended by CRLF")),
        },
        State::DataCr => match byte {
            b'\r' => State::DataLf,
            _ => return Err(DirectError::Malformed("chunk data not followed by CRLF")),
        },
        State::DataLf => match byte {
            b'\n' => State::Size { size: 0, digits: 0 },
            _ => return Err(DirectError::Malformed("chunk data not followed by CRLF")),
        },
        State::Data { .. } | State::Trailers | State::End => state,
    })
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes and collects what comes out.
    fn decode_in_pieces(
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>), DirectError> {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let (mut data, mut trailers) = (Vec::new(), None);
        let mut pieces = wire.chunks(step);
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                Decoded::Trailers(map) => trailers = Some(map),
                Decoded::End => return Ok((data, trailers)),
                Decoded::NeedMore => match pieces.next() {
                    Some(piece) => buf.extend_from_slice(piece),
                    None => return Err(DirectError::ClosedInBody),
                },
            }
        }
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_at_any_split() {
        let wire = b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n000\r\nX-Checksum: 42\r\nX-Other: a\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (data, trailers) = decode_in_pieces(wire, step).unwrap();
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            let trailers = trailers.expect("trailers");
            assert_eq!(trailers["x-checksum"], "42");
            assert_eq!(trailers["x-other"], "a");
        }
    }

    #[test]
    fn random_bodies_in_random_chunks_and_splits_decode_to_themselves() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..500 {
            let body: Vec<u8> = (0..rng.random_range(0..3000))
                .map(|_| rng.random())
                .collect();
            let mut wire = Vec::new();
            let mut rest = body.as_slice();
            while !rest.is_empty() {
                let size = rng.random_range(1..=rest.len().min(700));
                let (chunk, tail) = rest.split_at(size);
                let size_line = if rng.random_bool(0.5) {
                    format!("{size:x}")
                } else {
                    format!("{size:X};n=v")
                };
                wire.extend_from_slice(size_line.as_bytes());
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
                rest = tail;
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let step = rng.random_range(1..=64);
            let (data, trailers) = decode_in_pieces(&wire, step).unwrap();
            assert_eq!(data, body);
            assert!(trailers.is_none());
        }
    }

    #[test]
    fn a_body_without_trailers_ends_at_the_empty_line_and_leaves_the_rest() {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\nNEXT"[..]);
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"abc"))
        );
        assert_eq!(decoder.decode(&mut buf).unwrap(), Decoded::End);
        assert!(decoder.is_done());
        assert_eq!(&buf[..], b"NEXT");
    }

    #[test]
    fn broken_framing_is_an_error() {
        for wire in [
            &b"\r\n"[..],               // no size
            b"zz\r\n",                  // not hex
            b"3\nabc\r\n0\r\n\r\n",     // bare LF
            b"3\r\nabcd\r\n0\r\n\r\n",  // data longer than its size
            b"11111111111111111\r\n",   // 17 hex digits
            b"3;ext\nabc\r\n0\r\n\r\n", // bare LF after an extension
        ] {
            let error = decode_in_pieces(wire, 1).unwrap_err();
            assert!(
                matches!(error, DirectError::Malformed(_)),
                "{:?}: {error}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn the_largest_size_fits() {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nx"[..]);
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"x"))
        );
    }

    #[test]
    fn an_endless_extension_is_refused() {
        let mut wire = b"1;".to_vec();
        wire.extend(std::iter::repeat_n(b'a', MAX_EXTENSION_BYTES + 1));
        let error = decode_in_pieces(&wire, 64).unwrap_err();
        assert!(error.to_string().contains("extension"), "{error}");
    }
}
