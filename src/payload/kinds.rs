//! The closed sets the payload taps classify into. Every value maps to a
//! fixed `&'static str`, so they can be used as metric label values.

use serde::{Deserialize, Serialize};

/// The wire format of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Magma `POST /predict`: JSON `{"image": "<base64>", "prompt": "..."}`.
    MagmaPredict,
    /// Magma `POST /predict_from_file`: multipart fields `file` and `prompt`.
    MagmaPredictFile,
    /// OpenAI chat completions: `{"messages": [...]}`.
    OpenaiChat,
    /// OpenAI (legacy) completions: `{"prompt": "..." | [...]}`.
    OpenaiCompletions,
    /// A bare media body (`image/*`, `video/*`, `audio/*`).
    RawMedia,
    /// Anything else, including malformed bodies.
    Unknown,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::MagmaPredict,
        Format::MagmaPredictFile,
        Format::OpenaiChat,
        Format::OpenaiCompletions,
        Format::RawMedia,
        Format::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::MagmaPredict => "magma_predict",
            Format::MagmaPredictFile => "magma_predict_file",
            Format::OpenaiChat => "openai_chat",
            Format::OpenaiCompletions => "openai_completions",
            Format::RawMedia => "raw_media",
            Format::Unknown => "unknown",
        }
    }
}

/// What kinds of media a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Text only.
    Text,
    /// Exactly one image (with or without text).
    Image,
    /// Two or more images and no other media.
    MultiImage,
    Video,
    Audio,
    /// More than one kind of media (e.g. image and audio).
    Mixed,
    /// No recognisable content.
    Unknown,
}

impl Modality {
    pub const ALL: [Modality; 7] = [
        Modality::Text,
        Modality::Image,
        Modality::MultiImage,
        Modality::Video,
        Modality::Audio,
        Modality::Mixed,
        Modality::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
            Modality::MultiImage => "multi_image",
            Modality::Video => "video",
            Modality::Audio => "audio",
            Modality::Mixed => "mixed",
            Modality::Unknown => "unknown",
        }
    }

    /// Derives the modality from counts of each kind of part.
    pub fn from_counts(text: bool, images: u32, videos: u32, audios: u32) -> Modality {
        let kinds = u32::from(images > 0) + u32::from(videos > 0) + u32::from(audios > 0);
        match kinds {
            0 if text => Modality::Text,
            0 => Modality::Unknown,
            1 if images == 1 => Modality::Image,
            1 if images > 1 => Modality::MultiImage,
            1 if videos > 0 => Modality::Video,
            1 => Modality::Audio,
            _ => Modality::Mixed,
        }
    }

    /// Whether the request carries any media the model looks at.
    pub fn has_media(self) -> bool {
        !matches!(self, Modality::Text | Modality::Unknown)
    }
}

/// The Magma task a request asks for, read from its prompt. Also the `task`
/// label of every metric that carries one (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    RobotAction,
    UiNavigation,
    TraceOfMark,
    VisualQa,
    Chat,
    Unknown,
}

impl Task {
    pub const ALL: [Task; 6] = [
        Task::RobotAction,
        Task::UiNavigation,
        Task::TraceOfMark,
        Task::VisualQa,
        Task::Chat,
        Task::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::RobotAction => "robot_action",
            Task::UiNavigation => "ui_navigation",
            Task::TraceOfMark => "trace_of_mark",
            Task::VisualQa => "visual_qa",
            Task::Chat => "chat",
            Task::Unknown => "unknown",
        }
    }

    /// Parses a task name as written in a rules file.
    pub fn parse(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Parses a label value; anything else is `Unknown`.
    pub fn from_label(text: &str) -> Task {
        Task::parse(text).unwrap_or(Task::Unknown)
    }

    /// Position in `ALL`, for per-task tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The wire format of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Magma `{"text_response": ..., "normalized_actions": [...], ...}`.
    MagmaJson,
    /// OpenAI chat/completions JSON.
    OpenaiJson,
    /// OpenAI server-sent events (`stream: true`).
    OpenaiSse,
    /// A JSON error body such as FastAPI's `{"detail": ...}`.
    ErrorJson,
    Unknown,
}

impl ResponseFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFormat::MagmaJson => "magma_json",
            ResponseFormat::OpenaiJson => "openai_json",
            ResponseFormat::OpenaiSse => "openai_sse",
            ResponseFormat::ErrorJson => "error_json",
            ResponseFormat::Unknown => "unknown",
        }
    }
}

/// Why generation stopped (OpenAI `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Other,
}

impl FinishReason {
    pub fn parse(text: &[u8]) -> FinishReason {
        match text {
            b"stop" | b"eos" => FinishReason::Stop,
            b"length" => FinishReason::Length,
            b"tool_calls" | b"function_call" => FinishReason::ToolCalls,
            b"content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modality_from_counts() {
        assert_eq!(Modality::from_counts(true, 0, 0, 0), Modality::Text);
        assert_eq!(Modality::from_counts(false, 0, 0, 0), Modality::Unknown);
        assert_eq!(Modality::from_counts(true, 1, 0, 0), Modality::Image);
        assert_eq!(Modality::from_counts(false, 3, 0, 0), Modality::MultiImage);
        assert_eq!(Modality::from_counts(true, 0, 1, 0), Modality::Video);
        assert_eq!(Modality::from_counts(true, 0, 0, 2), Modality::Audio);
        assert_eq!(Modality::from_counts(true, 1, 0, 1), Modality::Mixed);
    }

    #[test]
    fn task_names_round_trip() {
        for task in Task::ALL {
            assert_eq!(Task::parse(task.as_str()), Some(task));
        }
        assert_eq!(Task::parse("cooking"), None);
    }
}
