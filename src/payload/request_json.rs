//! What the request tap collects from JSON bodies: Magma `/predict`, OpenAI
//! chat completions and OpenAI completions, in one pass of the JSON scanner.

use super::json_scan::{JsonPath, JsonVisitor, Pat};
use super::text_capture::{base64_decoded_len, data_url_prefix_len, TextCapture, TEXT_CAP};

/// Longest `model` value kept.
pub const MODEL_CAP: usize = 128;
/// Bytes of a media string kept to recognise `data:` URLs and remote URLs.
const HEAD_CAP: usize = 64;

/// Which string is being scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    Ignored,
    Prompt,
    MessageText(u32),
    Role(u32),
    Model,
    /// Magma's base64 `image` (optionally a data URL).
    Base64Image,
    ImageUrl,
    AudioData,
    AudioUrl,
    VideoUrl,
}

/// Roles of chat messages that matter for picking the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Other,
    Unknown,
}

/// The collected facts of a JSON request body.
#[derive(Debug, Clone)]
pub struct RequestJson {
    pub saw_messages: bool,
    pub saw_prompt: bool,
    pub saw_image: bool,
    pub stream: bool,
    pub images: u32,
    pub remote_images: u32,
    pub videos: u32,
    pub audios: u32,
    pub media_bytes: u64,
    /// Raw length of all prompt text, kept or not.
    pub text_bytes: u64,
    model: TextCapture,
    model_seen: bool,
    prompt: TextCapture,
    // Chat messages: the text of the message being scanned, of the last user
    // message, and of the last message of any other role.
    message: Option<u32>,
    message_role: Role,
    message_text: TextCapture,
    last_user: TextCapture,
    last_other: TextCapture,
    current: Current,
    head: [u8; HEAD_CAP],
    head_len: usize,
}

impl Default for RequestJson {
    fn default() -> Self {
        RequestJson {
            saw_messages: false,
            saw_prompt: false,
            saw_image: false,
            stream: false,
            images: 0,
            remote_images: 0,
            videos: 0,
            audios: 0,
            media_bytes: 0,
            text_bytes: 0,
            model: TextCapture::new(MODEL_CAP),
            model_seen: false,
            prompt: TextCapture::new(TEXT_CAP),
            message: None,
            message_role: Role::Unknown,
            message_text: TextCapture::new(TEXT_CAP),
            last_user: TextCapture::new(TEXT_CAP),
            last_other: TextCapture::new(TEXT_CAP),
            current: Current::Ignored,
            head: [0; HEAD_CAP],
            head_len: 0,
        }
    }
}

const MESSAGE_CONTENT: &[Pat<'static>] =
    &[Pat::Key("messages"), Pat::AnyIndex, Pat::Key("content")];
const PART: &[Pat<'static>] = &[
    Pat::Key("messages"),
    Pat::AnyIndex,
    Pat::Key("content"),
    Pat::AnyIndex,
];

/// `messages[i].content[j].<key>` or `messages[i].content[j].<key>.<sub>`.
fn part_field(path: &JsonPath, key: &str, sub: Option<&str>) -> bool {
    let Some(segs) = path.segments() else {
        return false;
    };
    let want = if sub.is_some() { 6 } else { 5 };
    segs.len() == want
        && path.starts_with(PART)
        && segs[4].key() == Some(key.as_bytes())
        && sub.is_none_or(|sub| segs[5].key() == Some(sub.as_bytes()))
}

impl RequestJson {
    fn classify(&self, path: &JsonPath) -> Current {
        let depth = path.depth();
        if depth == 1 {
            if path.matches(&[Pat::Key("prompt")]) {
                return Current::Prompt;
            }
            if path.matches(&[Pat::Key("model")]) {
                return Current::Model;
            }
            if path.matches(&[Pat::Key("image")]) {
                return Current::Base64Image;
            }
            return Current::Ignored;
        }
        if path.matches(&[Pat::Key("prompt"), Pat::AnyIndex]) {
            return Current::Prompt;
        }
        if path.matches(&[Pat::Key("images"), Pat::AnyIndex]) {
            return Current::Base64Image;
        }
        let message = path.index_at(1).unwrap_or(0);
        if path.matches(MESSAGE_CONTENT) || part_field(path, "text", None) {
            return Current::MessageText(message);
        }
        if path.matches(&[Pat::Key("messages"), Pat::AnyIndex, Pat::Key("role")]) {
            return Current::Role(message);
        }
        if part_field(path, "image_url", None) || part_field(path, "image_url", Some("url")) {
            return Current::ImageUrl;
        }
        if part_field(path, "input_audio", Some("data")) {
            return Current::AudioData;
        }
        if part_field(path, "audio_url", None) || part_field(path, "audio_url", Some("url")) {
            return Current::AudioUrl;
        }
        if part_field(path, "video_url", None) || part_field(path, "video_url", Some("url")) {
            return Current::VideoUrl;
        }
        Current::Ignored
    }

    /// Moves to message `index`, committing the text of the previous one.
    fn enter_message(&mut self, index: u32) {
        if self.message == Some(index) {
            return;
        }
        self.commit_message();
        self.message = Some(index);
        self.message_role = Role::Unknown;
    }

    fn commit_message(&mut self) {
        if self.message.is_none() || self.message_text.is_empty() {
            self.message_text.clear();
            return;
        }
        let target = match self.message_role {
            Role::User | Role::Unknown => &mut self.last_user,
            Role::Other => &mut self.last_other,
        };
        std::mem::swap(target, &mut self.message_text);
        self.message_text.clear();
    }

    /// Model name as sent (at most 128 bytes).
    pub fn model(&self) -> Option<String> {
        self.model_seen.then(|| self.model.to_text())
    }

    /// The prompt: Magma/completions `prompt`, else the last user message of a chat.
    pub fn prompt(&mut self) -> (String, bool) {
        self.commit_message();
        self.message = None;
        let chosen = if !self.prompt.is_empty() {
            &mut self.prompt
        } else if !self.last_user.is_empty() {
            &mut self.last_user
        } else {
            &mut self.last_other
        };
        let truncated = chosen.truncated();
        (chosen.take_text(), truncated)
    }

    fn media_len(&self, raw_len: u64, tail: [u8; 2]) -> u64 {
        let prefix = data_url_prefix_len(&self.head[..self.head_len]).unwrap_or(0) as u64;
        base64_decoded_len(raw_len.saturating_sub(prefix), tail)
    }

    fn head_is_data_url(&self) -> bool {
        data_url_prefix_len(&self.head[..self.head_len]).is_some()
    }

    fn head_is_remote(&self) -> bool {
        let head = &self.head[..self.head_len];
        head.starts_with(b"http://") || head.starts_with(b"https://")
    }
}

impl JsonVisitor for RequestJson {
    fn string_start(&mut self, path: &JsonPath) -> usize {
        self.current = self.classify(path);
        self.head_len = 0;
        match self.current {
            Current::Ignored | Current::AudioData => 0,
            Current::Prompt => {
                self.saw_prompt = true;
                self.prompt.separate();
                // One byte more than fits, so a cut prompt is known to be cut.
                self.prompt.room() + 1
            }
            Current::MessageText(index) => {
                self.enter_message(index);
                self.message_text.separate();
                self.message_text.room() + 1
            }
            Current::Role(index) => {
                self.enter_message(index);
                16
            }
            Current::Model => {
                self.model_seen = true;
                self.model.clear();
                MODEL_CAP
            }
            Current::Base64Image | Current::ImageUrl | Current::AudioUrl | Current::VideoUrl => {
                HEAD_CAP
            }
        }
    }

    fn string_bytes(&mut self, _path: &JsonPath, bytes: &[u8]) {
        match self.current {
            Current::Prompt => self.prompt.push(bytes),
            Current::MessageText(_) => self.message_text.push(bytes),
            Current::Model => self.model.push(bytes),
            Current::Role(_)
            | Current::Base64Image
            | Current::ImageUrl
            | Current::AudioUrl
            | Current::VideoUrl => {
                let take = bytes.len().min(HEAD_CAP - self.head_len);
                self.head[self.head_len..self.head_len + take].copy_from_slice(&bytes[..take]);
                self.head_len += take;
            }
            Current::Ignored | Current::AudioData => {}
        }
    }

    fn string_end(&mut self, _path: &JsonPath, raw_len: u64, tail: [u8; 2]) {
        match self.current {
            Current::Prompt | Current::MessageText(_) => self.text_bytes += raw_len,
            Current::Role(_) => {
                self.message_role = match &self.head[..self.head_len] {
                    b"user" => Role::User,
                    _ => Role::Other,
                };
            }
            Current::Base64Image => {
                self.saw_image = true;
                if raw_len > 0 {
                    self.images += 1;
                    self.media_bytes += self.media_len(raw_len, tail);
                }
            }
            Current::ImageUrl => {
                self.images += 1;
                if self.head_is_data_url() {
                    self.media_bytes += self.media_len(raw_len, tail);
                } else if self.head_is_remote() {
                    self.remote_images += 1;
                }
            }
            Current::AudioData => {
                self.audios += 1;
                self.media_bytes += base64_decoded_len(raw_len, tail);
            }
            Current::AudioUrl => {
                self.audios += 1;
                if self.head_is_data_url() {
                    self.media_bytes += self.media_len(raw_len, tail);
                }
            }
            Current::VideoUrl => {
                self.videos += 1;
                if self.head_is_data_url() {
                    self.media_bytes += self.media_len(raw_len, tail);
                }
            }
            Current::Model | Current::Ignored => {}
        }
        self.current = Current::Ignored;
    }

    fn scalar(&mut self, path: &JsonPath, token: &[u8]) {
        if path.depth() == 1 && path.matches(&[Pat::Key("stream")]) {
            self.stream = token == b"true";
        }
    }

    fn open(&mut self, path: &JsonPath, array: bool) {
        if path.depth() == 1 {
            if array && path.matches(&[Pat::Key("messages")]) {
                self.saw_messages = true;
            }
            if path.matches(&[Pat::Key("prompt")]) {
                self.saw_prompt = true;
            }
        }
    }
}
