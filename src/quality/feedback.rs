//! User feedback records (`POST /api/feedback`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::task::Task;

/// Longest comment kept (longer ones are cut on a char boundary).
pub const MAX_COMMENT_BYTES: usize = 1024;
/// Most recent comments kept for `GET /api/feedback`.
pub const RECENT_FEEDBACK: usize = 100;

/// Thumbs up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Up,
    Down,
}

impl Rating {
    pub fn as_label(self) -> &'static str {
        match self {
            Rating::Up => "up",
            Rating::Down => "down",
        }
    }
}

/// One feedback record as a client sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub request_id: String,
    pub rating: Rating,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Feedback as kept in the recent list.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackRecord {
    pub request_id: String,
    pub rating: Rating,
    pub task: Task,
    pub comment: Option<String>,
    pub unix_seconds: f64,
}

/// A bounded list of the most recent feedback.
#[derive(Debug, Default)]
pub struct RecentFeedback {
    records: VecDeque<FeedbackRecord>,
}

impl RecentFeedback {
    pub fn push(&mut self, record: FeedbackRecord) {
        if self.records.len() == RECENT_FEEDBACK {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// Newest first.
    pub fn newest(&self, limit: usize) -> Vec<FeedbackRecord> {
        self.records.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_list_is_bounded() {
        let mut recent = RecentFeedback::default();
        for i in 0..(RECENT_FEEDBACK + 5) {
            recent.push(FeedbackRecord {
                request_id: i.to_string(),
                rating: Rating::Up,
                task: Task::Chat,
                comment: None,
                unix_seconds: 0.0,
            });
        }
        let newest = recent.newest(1000);
        assert_eq!(newest.len(), RECENT_FEEDBACK);
        assert_eq!(newest[0].request_id, (RECENT_FEEDBACK + 4).to_string());
    }
}
