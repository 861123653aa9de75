//! Builds the quality checks' view of an answer from what the payload taps
//! parsed, so the checks run on every model answer without parsing it twice.

use super::answer::AnswerView;
use super::task::Task;
use crate::payload::{RequestInfo, ResponseFormat, ResponseInfo};

/// The answer as the checks see it, or `None` when the body is not a model
/// answer (an error body, a non-2xx status, or a format the taps do not know:
/// such bodies are not judged).
pub fn answer_view<'a>(
    request: Option<&RequestInfo>,
    response: &'a ResponseInfo,
) -> Option<AnswerView<'a>> {
    if !(200..300).contains(&response.status) {
        return None;
    }
    if !matches!(
        response.format,
        ResponseFormat::MagmaJson | ResponseFormat::OpenaiJson | ResponseFormat::OpenaiSse
    ) {
        return None;
    }
    let task = request.map_or(Task::Unknown, |r| Task::from_label(r.task.as_str()));
    // A `Q:` UI prompt asks a question about the screen, not for a mark.
    let question = request.is_some_and(|r| r.prompt.trim_start().starts_with("Q:"));
    Some(AnswerView {
        task,
        text: Some(response.text.as_str()),
        finish_reason: response.finish_reason.map(|f| f.as_str()),
        normalized_actions: response.normalized_actions.as_ref().map(|a| a.as_slice()),
        delta_values: response.delta_values.as_ref().map(|a| a.as_slice()),
        mean_logprob: response.logprob_mean,
        expects_grounding: matches!(task, Task::UiNavigation | Task::TraceOfMark) && !question,
    })
}
