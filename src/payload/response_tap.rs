//! The response tap: fed every chunk of the upstream's answer as it is
//! forwarded. It reads Magma JSON answers, OpenAI JSON and SSE streams
//! (text assembled from `delta.content` across events, bounded), usage,
//! finish reason and log-probabilities, and says when the first chunk that
//! carries generated text went by (for time to first token).

use serde::Serialize;

use super::body_copy::{BodyCopy, CopiedBody, CopyOutcome};
use super::json_scan::{JsonScanner, ScanStatus};
use super::kinds::{FinishReason, ResponseFormat};
use super::marks::{parse_marks, MarkAnswer};
use super::media_type::MediaType;
use super::response_json::{ResponseJson, ACTION_DIM};
use super::sse::{SseParser, SseVisitor};
use super::task::truncate_at_char;

/// Bytes of answer text the Set-of-Mark parser looks at.
const MARKS_CAP: usize = 4096;

/// What an answer said.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseInfo {
    pub format: ResponseFormat,
    pub status: u16,
    /// The generated text's first bytes (at most 16 KiB).
    pub text: String,
    /// Length of all generated text as sent, kept or not.
    pub text_bytes: u64,
    pub text_truncated: bool,
    pub normalized_actions: Option<[f64; ACTION_DIM]>,
    pub delta_values: Option<[f64; ACTION_DIM]>,
    /// Set-of-Mark / Trace-of-Mark content of the text.
    pub marks: MarkAnswer,
    pub finish_reason: Option<FinishReason>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Mean token log-probability of the first choice (a confidence).
    pub logprob_mean: Option<f64>,
    pub logprob_count: u32,
    /// SSE events dispatched.
    pub events: u64,
    /// SSE events whose data was not JSON (other than `[DONE]`).
    pub bad_events: u32,
    /// The stream ended with `data: [DONE]`.
    pub done: bool,
    /// `detail` / `error.message` of an error body (at most 256 bytes).
    pub error: Option<String>,
    pub model: Option<String>,
    pub body_bytes: u64,
    pub malformed: bool,
    #[serde(skip)]
    pub copy: Option<CopiedBody>,
}

impl ResponseInfo {
    pub fn copy_outcome(&self) -> Option<CopyOutcome> {
        self.copy.as_ref().map(|c| c.outcome)
    }

    /// An empty, unknown response.
    pub fn unknown(status: u16) -> Self {
        ResponseInfo {
            format: ResponseFormat::Unknown,
            status,
            text: String::new(),
            text_bytes: 0,
            text_truncated: false,
            normalized_actions: None,
            delta_values: None,
            marks: MarkAnswer::default(),
            finish_reason: None,
            prompt_tokens: None,
            completion_tokens: None,
            logprob_mean: None,
            logprob_count: 0,
            events: 0,
            bad_events: 0,
            done: false,
            error: None,
            model: None,
            body_bytes: 0,
            malformed: false,
            copy: None,
        }
    }
}

#[derive(Debug)]
struct SseState {
    parser: SseParser,
    event: JsonScanner,
    head: [u8; 8],
    head_len: usize,
    done: bool,
    bad_events: u32,
}

#[derive(Debug)]
enum Mode {
    Json(Box<JsonScanner>),
    Sse(Box<SseState>),
    Skip,
}

/// Streams a response body; see the module docs.
#[derive(Debug)]
pub struct ResponseTap {
    mode: Mode,
    json: Box<ResponseJson>,
    status: u16,
    body_bytes: u64,
    first_content_seen: bool,
    copy: Option<BodyCopy>,
}

/// Feeds one SSE event's data to a JSON scanner of its own.
struct EventSink<'a> {
    sse: &'a mut SseState,
    json: &'a mut ResponseJson,
}

impl SseVisitor for EventSink<'_> {
    fn data(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(self.sse.head.len() - self.sse.head_len);
        self.sse.head[self.sse.head_len..self.sse.head_len + take].copy_from_slice(&bytes[..take]);
        self.sse.head_len += take;
        self.sse.event.feed(bytes, self.json);
    }

    fn event_end(&mut self) {
        let status = self.sse.event.finish(self.json);
        if &self.sse.head[..self.sse.head_len] == b"[DONE]" {
            self.sse.done = true;
        } else if status != ScanStatus::Complete {
            self.sse.bad_events = self.sse.bad_events.saturating_add(1);
        }
        self.sse.event = JsonScanner::new();
        self.sse.head_len = 0;
    }
}

impl ResponseTap {
    /// A tap for one response: its status, `Content-Type`, and a body copy
    /// when the exchange is sampled.
    pub fn new(status: u16, content_type: Option<&str>, copy: Option<BodyCopy>) -> Self {
        let media = MediaType::of(content_type);
        let mode = if media.is("text/event-stream") {
            Mode::Sse(Box::new(SseState {
                parser: SseParser::new(),
                event: JsonScanner::new(),
                head: [0; 8],
                head_len: 0,
                done: false,
                bad_events: 0,
            }))
        } else if media.is_empty() || media.is("application/json") || media.ends_with("+json") {
            Mode::Json(Box::default())
        } else {
            Mode::Skip
        };
        ResponseTap {
            mode,
            json: Box::default(),
            status,
            body_bytes: 0,
            first_content_seen: false,
            copy,
        }
    }

    /// A tap from the response head's status and Content-Type value.
    pub fn for_response(
        status: http::StatusCode,
        content_type: Option<&[u8]>,
        copy: Option<BodyCopy>,
    ) -> Self {
        let content_type = content_type.and_then(|v| std::str::from_utf8(v).ok());
        Self::new(status.as_u16(), content_type, copy)
    }

    /// Scans one chunk. Returns true for exactly one chunk of a streamed
    /// (SSE) answer: the first that carried generated text. O(chunk), never fails.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        self.body_bytes += chunk.len() as u64;
        if let Some(copy) = &mut self.copy {
            copy.push(chunk);
        }
        self.json.content_in_chunk = false;
        match &mut self.mode {
            Mode::Json(scanner) => scanner.feed(chunk, &mut *self.json),
            Mode::Sse(sse) => {
                // The parser drives the sink, which owns the rest of the state.
                let mut parser = std::mem::take(&mut sse.parser);
                parser.feed(
                    chunk,
                    &mut EventSink {
                        sse,
                        json: &mut self.json,
                    },
                );
                sse.parser = parser;
                if self.json.content_in_chunk && !self.first_content_seen {
                    self.first_content_seen = true;
                    return true;
                }
            }
            Mode::Skip => {}
        }
        false
    }

    /// Whether a chunk with generated text has gone by.
    pub fn first_content_seen(&self) -> bool {
        self.first_content_seen
    }

    /// Ends the body and says what it was.
    pub fn finish(self) -> ResponseInfo {
        let mut info = ResponseInfo::unknown(self.status);
        info.body_bytes = self.body_bytes;
        info.copy = self.copy.map(BodyCopy::finish);
        let mut json = self.json;
        match self.mode {
            Mode::Json(mut scanner) => {
                if self.body_bytes == 0 {
                    return info;
                }
                if scanner.finish(&mut *json) != ScanStatus::Complete {
                    info.malformed = true;
                    return info;
                }
                info.format = if json.saw_magma {
                    ResponseFormat::MagmaJson
                } else if json.saw_choices {
                    ResponseFormat::OpenaiJson
                } else if json.saw_error {
                    ResponseFormat::ErrorJson
                } else {
                    ResponseFormat::Unknown
                };
            }
            Mode::Sse(sse) => {
                info.events = sse.parser.events();
                info.bad_events = sse.bad_events;
                info.done = sse.done;
                if json.saw_choices {
                    info.format = ResponseFormat::OpenaiSse;
                } else {
                    info.malformed = self.body_bytes > 0;
                    return info;
                }
            }
            Mode::Skip => return info,
        }
        info.text_truncated = json.text.truncated();
        info.text = json.text.take_text();
        info.text_bytes = json.text_bytes;
        info.normalized_actions = json.normalized_actions.get();
        info.delta_values = json.delta_values.get();
        info.finish_reason = json.finish_reason;
        info.prompt_tokens = json.prompt_tokens;
        info.completion_tokens = json.completion_tokens;
        info.logprob_count = json.logprob_count;
        info.logprob_mean =
            (json.logprob_count > 0).then(|| json.logprob_sum / f64::from(json.logprob_count));
        info.error = (!json.error.is_empty()).then(|| json.error.to_text());
        info.model = json.model_seen.then(|| json.model.to_text());
        if !info.text.is_empty() {
            info.marks = parse_marks(truncate_at_char(&info.text, MARKS_CAP));
        }
        info
    }
}
