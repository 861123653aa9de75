//! What the request tap collects from `multipart/form-data` bodies (Magma
//! `/predict_from_file`: fields `file` and `prompt`).

use super::image_header::sniff_format;
use super::multipart::{MultipartVisitor, PartHeaders};
use super::text_capture::{TextCapture, TEXT_CAP};
use super::utf8::Utf8Stream;

/// Field names read as the prompt.
const PROMPT_FIELDS: &[&str] = &["prompt", "text", "question", "instruction"];
/// Bytes of a file part kept to recognise images by their magic bytes.
const SNIFF_CAP: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prompt,
    File(Declared),
    Other,
}

/// The media type a file part declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Image,
    Video,
    Audio,
    Unspecified,
}

/// The collected facts of a multipart request body.
#[derive(Debug, Clone)]
pub struct RequestMultipart {
    pub saw_prompt: bool,
    pub saw_file: bool,
    pub images: u32,
    pub videos: u32,
    pub audios: u32,
    pub media_bytes: u64,
    pub text_bytes: u64,
    /// A prompt field was not valid UTF-8.
    pub invalid_text: bool,
    prompt: TextCapture,
    utf8: Utf8Stream,
    kind: Kind,
    part_bytes: u64,
    sniff: [u8; SNIFF_CAP],
    sniff_len: usize,
}

impl Default for RequestMultipart {
    fn default() -> Self {
        RequestMultipart {
            saw_prompt: false,
            saw_file: false,
            images: 0,
            videos: 0,
            audios: 0,
            media_bytes: 0,
            text_bytes: 0,
            invalid_text: false,
            prompt: TextCapture::new(TEXT_CAP),
            utf8: Utf8Stream::default(),
            kind: Kind::Other,
            part_bytes: 0,
            sniff: [0; SNIFF_CAP],
            sniff_len: 0,
        }
    }
}

impl RequestMultipart {
    pub fn prompt(&self) -> (String, bool) {
        (self.prompt.to_text(), self.prompt.truncated())
    }
}

fn declared(content_type: Option<&str>) -> Declared {
    let Some(ct) = content_type else {
        return Declared::Unspecified;
    };
    let ct = ct.to_ascii_lowercase();
    if ct.starts_with("image/") {
        Declared::Image
    } else if ct.starts_with("video/") {
        Declared::Video
    } else if ct.starts_with("audio/") {
        Declared::Audio
    } else {
        Declared::Unspecified
    }
}

impl MultipartVisitor for RequestMultipart {
    fn part_start(&mut self, headers: &PartHeaders<'_>) {
        self.part_bytes = 0;
        self.sniff_len = 0;
        let name = headers.name.unwrap_or("");
        let declared = declared(headers.content_type);
        self.kind = if headers.filename.is_some()
            || declared != Declared::Unspecified
            || matches!(name, "file" | "image" | "images")
        {
            self.saw_file = true;
            Kind::File(declared)
        } else if PROMPT_FIELDS.contains(&name) {
            self.saw_prompt = true;
            self.prompt.separate();
            self.utf8 = Utf8Stream::default();
            Kind::Prompt
        } else {
            Kind::Other
        };
    }

    fn part_data(&mut self, bytes: &[u8]) {
        self.part_bytes += bytes.len() as u64;
        match self.kind {
            Kind::Prompt => {
                self.text_bytes += bytes.len() as u64;
                if !self.utf8.feed(bytes) {
                    self.invalid_text = true;
                }
                self.prompt.push(bytes);
            }
            Kind::File(_) => {
                let take = bytes.len().min(SNIFF_CAP - self.sniff_len);
                self.sniff[self.sniff_len..self.sniff_len + take].copy_from_slice(&bytes[..take]);
                self.sniff_len += take;
            }
            Kind::Other => {}
        }
    }

    fn part_end(&mut self) {
        match self.kind {
            Kind::Prompt => {
                if !self.utf8.is_complete_and_valid() {
                    self.invalid_text = true;
                }
            }
            Kind::File(declared) => {
                let magic = sniff_format(&self.sniff[..self.sniff_len]).is_some();
                let counted = match declared {
                    Declared::Image => Some(&mut self.images),
                    Declared::Video => Some(&mut self.videos),
                    Declared::Audio => Some(&mut self.audios),
                    Declared::Unspecified if magic => Some(&mut self.images),
                    Declared::Unspecified => None,
                };
                if let Some(count) = counted {
                    if self.part_bytes > 0 {
                        *count += 1;
                        self.media_bytes += self.part_bytes;
                    }
                }
            }
            Kind::Other => {}
        }
        self.kind = Kind::Other;
    }
}
