//! What the quality checks look at: one model answer, already taken apart by
//! the payload parser, borrowed so that checking copies nothing.

use super::task::Task;

/// Number of action dimensions in Magma's 7-DoF robot action.
pub const ACTION_DIMS: usize = 7;

/// Names of the action dimensions, in Magma's order (`dimension` label values).
pub const ACTION_DIMENSIONS: [&str; ACTION_DIMS] =
    ["x", "y", "z", "roll", "pitch", "yaw", "gripper"];

/// One model answer as the quality checks see it.
#[derive(Debug, Clone, Copy)]
pub struct AnswerView<'a> {
    /// Task of the request (from the prompt).
    pub task: Task,
    /// Generated text (`text_response`, or the assembled chat completion).
    pub text: Option<&'a str>,
    /// OpenAI `finish_reason` where the server reports one (`stop`, `length`, ...).
    pub finish_reason: Option<&'a str>,
    /// Magma `normalized_actions` (expected 7 values in [-1, 1]).
    pub normalized_actions: Option<&'a [f64]>,
    /// Magma `delta_values` (expected 7 values within Magma's bounds).
    pub delta_values: Option<&'a [f64]>,
    /// Mean token log-probability (confidence), where the server reports logprobs.
    pub mean_logprob: Option<f64>,
    /// Whether the prompt asked for a mark or coordinates. For `ui_navigation`
    /// prompts with a `Q:` prefix (a question about the screen) this is false.
    pub expects_grounding: bool,
}

impl<'a> AnswerView<'a> {
    /// An answer with only a task and text; other fields empty.
    pub fn text(task: Task, text: &'a str) -> Self {
        Self {
            task,
            text: Some(text),
            finish_reason: None,
            normalized_actions: None,
            delta_values: None,
            mean_logprob: None,
            expects_grounding: matches!(task, Task::UiNavigation | Task::TraceOfMark),
        }
    }
}
