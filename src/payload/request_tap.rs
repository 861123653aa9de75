//! The request tap: fed every chunk of a request body as it is forwarded,
//! it works out the format, modality, task, media counts and model name
//! without buffering the body. Memory per request is bounded: a few KiB of
//! text prefixes, plus the sampled copy when the request is sampled.

use std::sync::Arc;

use serde::Serialize;

use super::body_copy::{BodyCopy, CopiedBody, CopyOutcome};
use super::image_header::sniff_format;
use super::json_scan::{JsonScanner, ScanStatus};
use super::kinds::{Format, Modality, Task};
use super::media_type::MediaType;
use super::multipart::{boundary_from_content_type, MultipartScanner, MultipartStatus};
use super::request_json::RequestJson;
use super::request_multipart::RequestMultipart;
use super::task::TaskClassifier;

/// Bytes kept from the start of a body whose type must be sniffed.
const SNIFF_CAP: usize = 16;

/// What a request was about.
#[derive(Debug, Clone, Serialize)]
pub struct RequestInfo {
    pub format: Format,
    pub modality: Modality,
    pub task: Task,
    /// Images in the body (inline and by URL).
    pub images: u32,
    /// Of those, images given by `http(s)` URL (their bytes are not counted).
    pub remote_images: u32,
    pub videos: u32,
    pub audios: u32,
    /// Decoded bytes of inline media (base64 lengths converted, files as sent).
    pub media_bytes: u64,
    /// The prompt's first bytes (at most 4 KiB, UTF-8).
    pub prompt: String,
    /// Length in bytes of all prompt text as sent, kept or not.
    pub prompt_bytes: u64,
    pub prompt_truncated: bool,
    /// The `model` field as sent (at most 128 bytes); map it to a closed set before use as a label.
    pub model: Option<String>,
    /// `"stream": true` was requested.
    pub stream: bool,
    /// Body bytes seen.
    pub body_bytes: u64,
    /// The body could not be parsed as its declared type (it is labelled `unknown`).
    pub malformed: bool,
    /// The sampled copy of the body, when sampled.
    #[serde(skip)]
    pub copy: Option<CopiedBody>,
}

impl RequestInfo {
    /// An empty, unknown request (no body seen).
    pub fn unknown() -> Self {
        RequestInfo {
            format: Format::Unknown,
            modality: Modality::Unknown,
            task: Task::Unknown,
            images: 0,
            remote_images: 0,
            videos: 0,
            audios: 0,
            media_bytes: 0,
            prompt: String::new(),
            prompt_bytes: 0,
            prompt_truncated: false,
            model: None,
            stream: false,
            body_bytes: 0,
            malformed: false,
            copy: None,
        }
    }

    /// Outcome of the sampled copy, if any.
    pub fn copy_outcome(&self) -> Option<CopyOutcome> {
        self.copy.as_ref().map(|c| c.outcome)
    }
}

/// Which media a raw body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    Image,
    Video,
    Audio,
    /// Declared as bytes; an image if its magic says so.
    Sniff,
}

#[derive(Debug)]
enum Scan {
    Json(Box<(JsonScanner, RequestJson)>),
    Multipart(Box<(MultipartScanner, RequestMultipart)>),
    Raw {
        kind: RawKind,
        head: [u8; SNIFF_CAP],
        head_len: usize,
    },
    /// Nothing to learn from this body.
    Skip,
}

/// Streams a request body; see the module docs.
#[derive(Debug)]
pub struct RequestTap {
    scan: Scan,
    /// The client said the body is JSON (so failing to parse is malformed,
    /// not merely unknown).
    declared_json: bool,
    is_predict: bool,
    body_bytes: u64,
    classifier: Arc<TaskClassifier>,
    copy: Option<BodyCopy>,
}

impl RequestTap {
    /// A tap for one request.
    ///
    /// `path` is the request path (without query), `content_type` the
    /// request's `Content-Type`, `copy` a body copy when the request is
    /// sampled (`Sampler::body_copy(content_length)` sizes it). The method
    /// is not needed: a request without a body is `unknown` whatever it is.
    pub fn new(
        path: &str,
        content_type: Option<&str>,
        classifier: Arc<TaskClassifier>,
        copy: Option<BodyCopy>,
    ) -> Self {
        let media = MediaType::of(content_type);
        let scan = if media.is("multipart/form-data") {
            content_type
                .and_then(boundary_from_content_type)
                .and_then(|b| MultipartScanner::new(b.as_bytes()))
                .map_or(Scan::Skip, |scanner| {
                    Scan::Multipart(Box::new((scanner, RequestMultipart::default())))
                })
        } else if media.starts_with("image/") {
            raw(RawKind::Image)
        } else if media.starts_with("video/") {
            raw(RawKind::Video)
        } else if media.starts_with("audio/") {
            raw(RawKind::Audio)
        } else if media.is("application/octet-stream") {
            raw(RawKind::Sniff)
        } else if media.is_empty()
            || media.is("application/json")
            || media.ends_with("+json")
            || media.is("text/json")
            || media.is("text/plain")
        {
            Scan::Json(Box::new((JsonScanner::new(), RequestJson::default())))
        } else {
            Scan::Skip
        };
        let declared_json =
            media.is("application/json") || media.ends_with("+json") || media.is("text/json");
        RequestTap {
            scan,
            declared_json,
            is_predict: path.trim_end_matches('/') == "/predict",
            body_bytes: 0,
            classifier,
            copy,
        }
    }

    /// Convenience: a tap from the request's head.
    pub fn for_request(
        uri: &http::Uri,
        headers: &http::HeaderMap,
        classifier: Arc<TaskClassifier>,
        copy: Option<BodyCopy>,
    ) -> Self {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Self::new(uri.path(), content_type, classifier, copy)
    }

    /// Scans one chunk of the body. O(chunk), never fails.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.body_bytes += chunk.len() as u64;
        if let Some(copy) = &mut self.copy {
            copy.push(chunk);
        }
        match &mut self.scan {
            Scan::Json(state) => {
                let (scanner, visitor) = &mut **state;
                scanner.feed(chunk, visitor);
            }
            Scan::Multipart(state) => {
                let (scanner, visitor) = &mut **state;
                scanner.feed(chunk, visitor);
            }
            Scan::Raw { head, head_len, .. } => {
                let take = chunk.len().min(SNIFF_CAP - *head_len);
                head[*head_len..*head_len + take].copy_from_slice(&chunk[..take]);
                *head_len += take;
            }
            Scan::Skip => {}
        }
    }

    /// Ends the body and says what it was.
    pub fn finish(self) -> RequestInfo {
        let mut info = RequestInfo::unknown();
        info.body_bytes = self.body_bytes;
        info.copy = self.copy.map(BodyCopy::finish);
        if self.body_bytes == 0 {
            return info;
        }
        match self.scan {
            Scan::Json(state) => {
                let (mut scanner, mut json) = *state;
                let status = scanner.finish(&mut json);
                if status != ScanStatus::Complete {
                    info.malformed = self.declared_json;
                    return info;
                }
                info.format = if json.saw_messages {
                    Format::OpenaiChat
                } else if json.saw_image || (self.is_predict && json.saw_prompt) {
                    Format::MagmaPredict
                } else if json.saw_prompt {
                    Format::OpenaiCompletions
                } else {
                    return info;
                };
                let (prompt, truncated) = json.prompt();
                info.images = json.images;
                info.remote_images = json.remote_images;
                info.videos = json.videos;
                info.audios = json.audios;
                info.media_bytes = json.media_bytes;
                info.prompt = prompt;
                info.prompt_bytes = json.text_bytes;
                info.prompt_truncated = truncated;
                info.model = json.model();
                info.stream = json.stream;
            }
            Scan::Multipart(state) => {
                let (scanner, parts) = *state;
                if scanner.finish() != MultipartStatus::Complete || parts.invalid_text {
                    info.malformed = true;
                    return info;
                }
                if !(parts.saw_prompt || parts.saw_file) {
                    return info;
                }
                info.format = Format::MagmaPredictFile;
                let (prompt, truncated) = parts.prompt();
                info.images = parts.images;
                info.videos = parts.videos;
                info.audios = parts.audios;
                info.media_bytes = parts.media_bytes;
                info.prompt = prompt;
                info.prompt_bytes = parts.text_bytes;
                info.prompt_truncated = truncated;
            }
            Scan::Raw {
                kind,
                head,
                head_len,
            } => {
                let kind = match kind {
                    RawKind::Sniff if sniff_format(&head[..head_len]).is_some() => RawKind::Image,
                    RawKind::Sniff => return info,
                    other => other,
                };
                info.format = Format::RawMedia;
                info.media_bytes = self.body_bytes;
                match kind {
                    RawKind::Video => info.videos = 1,
                    RawKind::Audio => info.audios = 1,
                    _ => info.images = 1,
                }
            }
            Scan::Skip => return info,
        }
        info.modality =
            Modality::from_counts(info.prompt_bytes > 0, info.images, info.videos, info.audios);
        info.task = self
            .classifier
            .classify(&info.prompt, info.modality.has_media());
        info
    }
}

fn raw(kind: RawKind) -> Scan {
    Scan::Raw {
        kind,
        head: [0; SNIFF_CAP],
        head_len: 0,
    }
}
