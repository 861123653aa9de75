//! The closed set of Magma tasks, as label values.
//!
//! The payload area classifies a request's prompt into one of these; quality
//! metrics carry it as the `task` label, so a client can never create series.

use serde::{Deserialize, Serialize};

/// What a request asked the model to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// `What action should the robot take to ...?`: a 7-DoF action is expected.
    RobotAction,
    /// Set-of-Mark UI grounding: a mark index and/or coordinates are expected.
    UiNavigation,
    /// Trace-of-Mark planning: `Mark N at [x,y]` traces are expected.
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

    /// The `task` label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Task::RobotAction => "robot_action",
            Task::UiNavigation => "ui_navigation",
            Task::TraceOfMark => "trace_of_mark",
            Task::VisualQa => "visual_qa",
            Task::Chat => "chat",
            Task::Unknown => "unknown",
        }
    }

    /// Parses a label value; anything else is `Unknown`.
    pub fn from_label(text: &str) -> Task {
        Task::ALL
            .into_iter()
            .find(|t| t.as_label() == text)
            .unwrap_or(Task::Unknown)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}
