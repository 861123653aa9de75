//! Finds the first image of a sampled request body (analysis side only: it
//! parses the bounded copy with serde_json, which the forward path never does).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::Value;

use super::image_header::sniff_format;
use super::kinds::Format;
use super::multipart::{MultipartScanner, MultipartVisitor, PartHeaders};
use super::text_capture::data_url_prefix_len;

/// Why no image bytes could be had.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    #[error("the sampled body is not valid JSON")]
    Json,
    #[error("the image is not valid base64")]
    Base64,
}

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 (standard or URL-safe alphabet, padding optional, line
/// breaks tolerated), with an optional `data:` URL prefix.
pub fn decode_base64_media(text: &str) -> Result<Vec<u8>, MediaError> {
    let payload = &text[data_url_prefix_len(text.as_bytes()).unwrap_or(0)..];
    if let Ok(bytes) = STANDARD.decode(payload) {
        return Ok(bytes);
    }
    if let Ok(bytes) = URL_SAFE.decode(payload) {
        return Ok(bytes);
    }
    let compact: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .map_err(|_| MediaError::Base64)
}

/// The first image of a request body of the given format, if it has one inline.
pub fn first_image(format: Format, body: &[u8]) -> Result<Option<Vec<u8>>, MediaError> {
    match format {
        Format::MagmaPredict => {
            let value: Value = serde_json::from_slice(body).map_err(|_| MediaError::Json)?;
            let image = value
                .get("image")
                .and_then(Value::as_str)
                .or_else(|| value.pointer("/images/0").and_then(Value::as_str));
            match image {
                Some(text) if !text.is_empty() => decode_base64_media(text).map(Some),
                _ => Ok(None),
            }
        }
        Format::OpenaiChat => {
            let value: Value = serde_json::from_slice(body).map_err(|_| MediaError::Json)?;
            let url = value
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("content").and_then(Value::as_array))
                .flatten()
                .filter_map(|part| {
                    let field = part.get("image_url")?;
                    field
                        .as_str()
                        .or_else(|| field.get("url").and_then(Value::as_str))
                })
                .find(|url| data_url_prefix_len(url.as_bytes()).is_some());
            url.map(decode_base64_media).transpose()
        }
        Format::MagmaPredictFile => Ok(first_multipart_file(body)),
        Format::RawMedia => Ok(sniff_format(body).map(|_| body.to_vec())),
        Format::OpenaiCompletions | Format::Unknown => Ok(None),
    }
}

/// Collects the first file part of a multipart body.
#[derive(Default)]
struct FirstFile {
    in_file: bool,
    done: bool,
    bytes: Vec<u8>,
}

impl MultipartVisitor for FirstFile {
    fn part_start(&mut self, headers: &PartHeaders<'_>) {
        self.in_file = !self.done
            && (headers.filename.is_some()
                || headers
                    .content_type
                    .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("image/"))
                || headers.name == Some("file"));
    }
    fn part_data(&mut self, bytes: &[u8]) {
        if self.in_file {
            self.bytes.extend_from_slice(bytes);
        }
    }
    fn part_end(&mut self) {
        if self.in_file {
            self.done = true;
            self.in_file = false;
        }
    }
}

fn first_multipart_file(body: &[u8]) -> Option<Vec<u8>> {
    // The body starts with `--boundary\r\n` (the proxy keeps no headers in the sample).
    let line_end = memchr::memmem::find(body, b"\r\n")?;
    let boundary = body.get(..line_end)?.strip_prefix(b"--")?;
    let mut scanner = MultipartScanner::new(boundary)?;
    let mut visitor = FirstFile::default();
    scanner.feed(body, &mut visitor);
    visitor.done.then_some(visitor.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_variants() {
        assert_eq!(decode_base64_media("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64_media("aGk").unwrap(), b"hi");
        assert_eq!(
            decode_base64_media("data:image/png;base64,aGk=").unwrap(),
            b"hi"
        );
        assert_eq!(decode_base64_media("aG\nk=").unwrap(), b"hi");
        assert_eq!(decode_base64_media("_-8").unwrap(), vec![0xff, 0xef]);
        assert_eq!(decode_base64_media("!!!"), Err(MediaError::Base64));
    }

    #[test]
    fn images_by_format() {
        let magma = br#"{"image":"iVBORw0KGgo=","prompt":"x"}"#;
        assert_eq!(
            first_image(Format::MagmaPredict, magma).unwrap().unwrap(),
            b"\x89PNG\r\n\x1a\n"
        );
        let chat = br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,aGk="}}]}]}"#;
        assert_eq!(
            first_image(Format::OpenaiChat, chat).unwrap().unwrap(),
            b"hi"
        );
        let form = b"--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nPIXELS\r\n--b--\r\n";
        assert_eq!(
            first_image(Format::MagmaPredictFile, form)
                .unwrap()
                .unwrap(),
            b"PIXELS"
        );
        assert_eq!(
            first_image(Format::MagmaPredict, b"{"),
            Err(MediaError::Json)
        );
        assert_eq!(first_image(Format::OpenaiCompletions, b"{}"), Ok(None));
    }
}
