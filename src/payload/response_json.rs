//! What the response tap collects from JSON: Magma answers, OpenAI
//! completions (whole bodies and the JSON of each SSE event) and error bodies.

use super::json_scan::{JsonPath, JsonVisitor, Pat};
use super::kinds::FinishReason;
use super::text_capture::TextCapture;

/// Bytes of generated text kept.
pub const ANSWER_CAP: usize = 16 * 1024;
/// Bytes of an error message kept.
const ERROR_CAP: usize = 256;
/// Magma's action vectors have 7 values (xyz, roll/pitch/yaw, gripper).
pub const ACTION_DIM: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    Ignored,
    Text,
    Error,
    FinishReason,
    Model,
}

/// Up to 7 numbers of an action vector.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActionVector {
    values: [f64; ACTION_DIM],
    len: usize,
    invalid: bool,
}

impl ActionVector {
    /// Adds one element: `value` when the scanner computed it, else the
    /// token parsed here (a literal such as `null` makes the vector invalid).
    fn push(&mut self, token: &[u8], value: Option<f64>) {
        match value.or_else(|| super::number::parse_f64(token)) {
            Some(v) if self.len < ACTION_DIM => {
                self.values[self.len] = v;
                self.len += 1;
            }
            _ => self.invalid = true,
        }
    }

    /// The vector when exactly 7 numbers were given.
    pub fn get(&self) -> Option<[f64; ACTION_DIM]> {
        (!self.invalid && self.len == ACTION_DIM).then_some(self.values)
    }
}

/// The collected facts of JSON answers.
#[derive(Debug, Clone)]
pub struct ResponseJson {
    pub saw_magma: bool,
    pub saw_choices: bool,
    pub saw_error: bool,
    pub text: TextCapture,
    pub text_bytes: u64,
    pub error: TextCapture,
    pub normalized_actions: ActionVector,
    pub delta_values: ActionVector,
    pub finish_reason: Option<FinishReason>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub logprob_sum: f64,
    pub logprob_count: u32,
    pub model: TextCapture,
    pub model_seen: bool,
    /// Generated text bytes arrived in the chunk being fed (cleared by the tap).
    pub content_in_chunk: bool,
    current: Current,
    reason: [u8; 16],
    reason_len: usize,
}

impl Default for ResponseJson {
    fn default() -> Self {
        ResponseJson {
            saw_magma: false,
            saw_choices: false,
            saw_error: false,
            text: TextCapture::new(ANSWER_CAP),
            text_bytes: 0,
            error: TextCapture::new(ERROR_CAP),
            normalized_actions: ActionVector::default(),
            delta_values: ActionVector::default(),
            finish_reason: None,
            prompt_tokens: None,
            completion_tokens: None,
            logprob_sum: 0.0,
            logprob_count: 0,
            model: TextCapture::new(super::request_json::MODEL_CAP),
            model_seen: false,
            content_in_chunk: false,
            current: Current::Ignored,
            reason: [0; 16],
            reason_len: 0,
        }
    }
}

/// `choices[0].<a>.<b>` (only the first choice is read).
fn first_choice(path: &JsonPath, rest: &[&str]) -> bool {
    let Some(segs) = path.segments() else {
        return false;
    };
    segs.len() == 2 + rest.len()
        && path.starts_with(&[Pat::Key("choices"), Pat::AnyIndex])
        && path.index_at(1) == Some(0)
        && segs[2..]
            .iter()
            .zip(rest)
            .all(|(seg, key)| seg.key() == Some(key.as_bytes()))
}

fn parse_u64(token: &[u8]) -> Option<u64> {
    std::str::from_utf8(token).ok()?.parse().ok()
}

impl JsonVisitor for ResponseJson {
    fn string_start(&mut self, path: &JsonPath) -> usize {
        self.current = if path.matches(&[Pat::Key("text_response")]) {
            self.saw_magma = true;
            Current::Text
        } else if first_choice(path, &["message", "content"])
            || first_choice(path, &["delta", "content"])
            || first_choice(path, &["text"])
        {
            Current::Text
        } else if path.matches(&[Pat::Key("detail")])
            || path.ends_with(&[Pat::Key("detail"), Pat::AnyIndex, Pat::Key("msg")])
            || path.matches(&[Pat::Key("error"), Pat::Key("message")])
            || path.matches(&[Pat::Key("error")])
        {
            self.saw_error = true;
            Current::Error
        } else if path.ends_with(&[
            Pat::Key("choices"),
            Pat::AnyIndex,
            Pat::Key("finish_reason"),
        ]) {
            self.reason_len = 0;
            Current::FinishReason
        } else if path.matches(&[Pat::Key("model")]) {
            self.model_seen = true;
            self.model.clear();
            Current::Model
        } else {
            Current::Ignored
        };
        match self.current {
            Current::Ignored => 0,
            Current::Text => self.text.room() + 1,
            Current::Error => self.error.room(),
            Current::FinishReason => self.reason.len(),
            Current::Model => self.model.room(),
        }
    }

    fn string_bytes(&mut self, _path: &JsonPath, bytes: &[u8]) {
        match self.current {
            Current::Text => {
                self.content_in_chunk = true;
                self.text.push(bytes);
            }
            Current::Error => self.error.push(bytes),
            Current::Model => self.model.push(bytes),
            Current::FinishReason => {
                let take = bytes.len().min(self.reason.len() - self.reason_len);
                self.reason[self.reason_len..self.reason_len + take]
                    .copy_from_slice(&bytes[..take]);
                self.reason_len += take;
            }
            Current::Ignored => {}
        }
    }

    fn string_end(&mut self, _path: &JsonPath, raw_len: u64, _tail: [u8; 2]) {
        match self.current {
            Current::Text => self.text_bytes += raw_len,
            Current::FinishReason => {
                self.finish_reason = Some(FinishReason::parse(&self.reason[..self.reason_len]));
            }
            _ => {}
        }
        self.current = Current::Ignored;
    }

    fn scalar(&mut self, path: &JsonPath, token: &[u8]) {
        self.value(path, token, None);
    }

    fn number(&mut self, path: &JsonPath, token: &[u8], value: Option<f64>) {
        self.value(path, token, value);
    }

    fn open(&mut self, path: &JsonPath, array: bool) {
        if array && path.matches(&[Pat::Key("choices")]) {
            self.saw_choices = true;
        }
    }
}

impl ResponseJson {
    /// A number or literal at `path`; `value` when the scanner computed it.
    fn value(&mut self, path: &JsonPath, token: &[u8], value: Option<f64>) {
        if path.matches(&[Pat::Key("normalized_actions"), Pat::AnyIndex]) {
            self.saw_magma = true;
            self.normalized_actions.push(token, value);
        } else if path.matches(&[Pat::Key("delta_values"), Pat::AnyIndex]) {
            self.saw_magma = true;
            self.delta_values.push(token, value);
        } else if path.matches(&[Pat::Key("usage"), Pat::Key("prompt_tokens")]) {
            self.prompt_tokens = parse_u64(token);
        } else if path.matches(&[Pat::Key("usage"), Pat::Key("completion_tokens")]) {
            self.completion_tokens = parse_u64(token);
        } else if first_choice_logprob(path) {
            let value = value.or_else(|| super::number::parse_f64(token));
            if let Some(v) = value.filter(|v| v.is_finite()) {
                self.logprob_sum += v;
                self.logprob_count = self.logprob_count.saturating_add(1);
            }
        }
    }
}

/// `choices[0].logprobs.content[k].logprob` (chat) or
/// `choices[0].logprobs.token_logprobs[k]` (completions).
fn first_choice_logprob(path: &JsonPath) -> bool {
    let Some(segs) = path.segments() else {
        return false;
    };
    if !(path.starts_with(&[Pat::Key("choices"), Pat::AnyIndex, Pat::Key("logprobs")])
        && path.index_at(1) == Some(0))
    {
        return false;
    }
    match segs.len() {
        6 => path.ends_with(&[Pat::Key("content"), Pat::AnyIndex, Pat::Key("logprob")]),
        5 => path.ends_with(&[Pat::Key("token_logprobs"), Pat::AnyIndex]),
        _ => false,
    }
}
