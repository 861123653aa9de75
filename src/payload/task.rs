//! Which Magma task a request asks for, read from its prompt.
//!
//! Built-in rules follow the prompt templates of Magma's own agents (see
//! docs/payload.md for the full table); a rules file given with
//! `--task-rules FILE` adds regular expressions that are tried first.
//!
//! Rules file format: one rule a line, `TASK REGEX` (the task name, white
//! space, then the rest of the line as a regex in `regex` crate syntax).
//! Blank lines and lines starting with `#` are ignored. The first rule that
//! matches wins. Example: `robot_action (?i)\bpick up the\b`.

use std::path::Path;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::kinds::Task;

/// Longest prefix of the prompt the classifier looks at.
pub const CLASSIFY_CAP: usize = 4096;
/// Most rules a rules file may hold.
pub const MAX_RULES: usize = 256;
/// Compiled size limit of each rule (bounds memory and match time).
const RULE_SIZE_LIMIT: usize = 1 << 20;

/// A problem with the rules file.
#[derive(Debug, thiserror::Error)]
pub enum TaskRulesError {
    #[error("cannot read task rules {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("task rules line {line}: `{task}` is not a task (use one of robot_action, ui_navigation, trace_of_mark, visual_qa, chat, unknown)")]
    UnknownTask { line: usize, task: String },
    #[error("task rules line {line}: missing regex after the task name")]
    MissingRegex { line: usize },
    #[error("task rules line {line}: bad regex: {source}")]
    BadRegex { line: usize, source: regex::Error },
    #[error("task rules: more than {MAX_RULES} rules")]
    TooMany,
}

/// Classifies prompts into [`Task`]s.
#[derive(Debug, Clone)]
pub struct TaskClassifier {
    /// Extra rules from the rules file, in file order.
    extra: Option<(RegexSet, Vec<Task>)>,
    builtin: Builtin,
}

#[derive(Debug, Clone)]
struct Builtin {
    trace_of_mark: Option<Regex>,
    ui_navigation: Option<Regex>,
    robot_action: Option<Regex>,
}

fn is_match(rule: &Option<Regex>, prompt: &str) -> bool {
    rule.as_ref().is_some_and(|r| r.is_match(prompt))
}

/// A word both alternatives of the trace-of-mark rule spell out: a prompt
/// without it cannot match that rule, so the regex search is skipped. Case
/// folding of its letters stays within ASCII (unlike `k` and `s`, which
/// fold with the Kelvin sign and the long s), so an ASCII check is exact.
const TRACE_OF_MARK_WORD: &[u8] = b"numeric";

/// Magma's robot prompt template, the robot-action rule's first
/// alternative: a prompt that holds it matches that rule, so the regex
/// search is skipped. Checked ignoring ASCII case only, which can miss a
/// match (a Kelvin sign in "take") but never claim one the rule would not.
const ROBOT_ACTION_TEMPLATE: &[u8] = b"what action should the robot take";

/// Whether `haystack` holds `needle` (lower-case ASCII) ignoring ASCII case.
fn contains_ignore_ascii_case(haystack: &str, needle: &[u8]) -> bool {
    let (haystack, Some(&first)) = (haystack.as_bytes(), needle.first()) else {
        return true;
    };
    let mut from = 0;
    while let Some(found) = memchr::memchr2(first, first.to_ascii_uppercase(), &haystack[from..]) {
        let start = from + found;
        match haystack.get(start..start + needle.len()) {
            Some(candidate) if candidate.eq_ignore_ascii_case(needle) => return true,
            Some(_) => from = start + 1,
            None => return false,
        }
    }
    false
}

impl Builtin {
    fn new() -> Self {
        // These patterns are constants that the tests below compile, so
        // `None` (rule skipped) never happens in practice.
        let compile = |pattern: &str| {
            RegexBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .ok()
        };
        Builtin {
            // "... labeled with numeric marks ... how to move the numerical marks ..."
            trace_of_mark: compile(
                r"numeric(al)?\s+marks?[\s\S]*\b(move|moving|trace|traces|trajector(y|ies))\b|\b(move|moving|trace)\b[\s\S]*numeric(al)?\s+marks?",
            ),
            // "In this view I need to click a button to "{x}"? Provide the
            // coordinates and the mark index of the containing bounding box ..."
            ui_navigation: compile(
                r"\bclick\b[\s\S]*\b(button|coordinates?|mark index|bounding box|icon|link)\b|provide the coordinates|\bmark index\b|\b(tap|click) (on )?the\b",
            ),
            // "What action should the robot take to {task}?"
            robot_action: compile(
                r"what action should the robot take|\brobot(ic)?\b[\s\S]*\b(action|pick|place|grasp|push|move|gripper)\b|\b(gripper|end[- ]effector)\b",
            ),
        }
    }
}

impl Default for TaskClassifier {
    fn default() -> Self {
        TaskClassifier {
            extra: None,
            builtin: Builtin::new(),
        }
    }
}

impl TaskClassifier {
    /// The built-in rules plus the rules in `text` (the rules file format).
    pub fn with_rules(text: &str) -> Result<Self, TaskRulesError> {
        let mut patterns = Vec::new();
        let mut tasks = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, regex) = line
                .split_once(char::is_whitespace)
                .ok_or(TaskRulesError::MissingRegex { line: line_no })?;
            let regex = regex.trim();
            if regex.is_empty() {
                return Err(TaskRulesError::MissingRegex { line: line_no });
            }
            let task = Task::parse(name).ok_or_else(|| TaskRulesError::UnknownTask {
                line: line_no,
                task: name.to_owned(),
            })?;
            RegexBuilder::new(regex)
                .size_limit(RULE_SIZE_LIMIT)
                .build()
                .map_err(|source| TaskRulesError::BadRegex {
                    line: line_no,
                    source,
                })?;
            if patterns.len() == MAX_RULES {
                return Err(TaskRulesError::TooMany);
            }
            patterns.push(regex.to_owned());
            tasks.push(task);
        }
        let extra = if patterns.is_empty() {
            None
        } else {
            let set = RegexSetBuilder::new(&patterns)
                .size_limit(RULE_SIZE_LIMIT * 4)
                .build()
                .map_err(|source| TaskRulesError::BadRegex { line: 0, source })?;
            Some((set, tasks))
        };
        Ok(TaskClassifier {
            extra,
            builtin: Builtin::new(),
        })
    }

    /// Reads a rules file.
    pub fn from_file(path: &Path) -> Result<Self, TaskRulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| TaskRulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::with_rules(&text)
    }

    /// Number of rules from the rules file.
    pub fn extra_rules(&self) -> usize {
        self.extra.as_ref().map_or(0, |(_, tasks)| tasks.len())
    }

    /// The task of a prompt (`unknown` without one). `has_media` says whether the request carries
    /// images, video or audio (a free question about media is visual QA, a
    /// free text-only prompt is chat).
    pub fn classify(&self, prompt: &str, has_media: bool) -> Task {
        let prompt = truncate_at_char(prompt, CLASSIFY_CAP).trim();
        if prompt.is_empty() {
            return Task::Unknown;
        }
        if let Some((set, tasks)) = &self.extra {
            if let Some(first) = set.matches(prompt).iter().next() {
                if let Some(task) = tasks.get(first) {
                    return *task;
                }
            }
        }
        // The Set-of-Mark agent asks questions with a `Q:` prefix.
        if prompt.starts_with("Q:") {
            return if has_media {
                Task::VisualQa
            } else {
                Task::Chat
            };
        }
        if contains_ignore_ascii_case(prompt, TRACE_OF_MARK_WORD)
            && is_match(&self.builtin.trace_of_mark, prompt)
        {
            return Task::TraceOfMark;
        }
        if contains_ignore_ascii_case(prompt, ROBOT_ACTION_TEMPLATE)
            || is_match(&self.builtin.robot_action, prompt)
        {
            return Task::RobotAction;
        }
        if is_match(&self.builtin.ui_navigation, prompt) {
            return Task::UiNavigation;
        }
        if has_media {
            Task::VisualQa
        } else {
            Task::Chat
        }
    }
}

/// The longest prefix of `text` of at most `cap` bytes that ends on a char boundary.
pub fn truncate_at_char(text: &str, cap: usize) -> &str {
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magma_agent_templates() {
        let c = TaskClassifier::default();
        assert_eq!(
            c.classify(
                "What action should the robot take to pick up the red block?",
                true
            ),
            Task::RobotAction
        );
        assert_eq!(
            c.classify(
                "In this view I need to click a button to \"open settings\"? Provide the coordinates and the mark index of the containing bounding box if applicable.",
                true
            ),
            Task::UiNavigation
        );
        assert_eq!(
            c.classify("Q: what is the title of this page?", true),
            Task::VisualQa
        );
        assert_eq!(
            c.classify(
                "The image is labeled with numeric marks. The robot needs to put the cup on the plate. Please describe how to move the numerical marks in the next steps.",
                true
            ),
            Task::TraceOfMark
        );
        assert_eq!(
            c.classify(
                "How many people are there? Answer with a single number.",
                true
            ),
            Task::VisualQa
        );
        assert_eq!(c.classify("Write a haiku about autumn.", false), Task::Chat);
        assert_eq!(c.classify("", false), Task::Unknown);
        assert_eq!(c.classify("  ", true), Task::Unknown);
    }

    #[test]
    fn extra_rules_come_first() {
        let c = TaskClassifier::with_rules(
            "# house rules\n\nrobot_action (?i)\\bstack the\\b\nui_navigation (?i)^navigate\n",
        )
        .unwrap();
        assert_eq!(c.extra_rules(), 2);
        assert_eq!(
            c.classify("Please STACK THE cups", false),
            Task::RobotAction
        );
        assert_eq!(
            c.classify("navigate to the inbox", true),
            Task::UiNavigation
        );
        assert_eq!(c.classify("describe this", true), Task::VisualQa);
    }

    #[test]
    fn bad_rules_files() {
        assert!(matches!(
            TaskClassifier::with_rules("cooking .*"),
            Err(TaskRulesError::UnknownTask { line: 1, .. })
        ));
        assert!(matches!(
            TaskClassifier::with_rules("\nchat"),
            Err(TaskRulesError::MissingRegex { line: 2 })
        ));
        assert!(matches!(
            TaskClassifier::with_rules("chat (unclosed"),
            Err(TaskRulesError::BadRegex { line: 1, .. })
        ));
        let many = "chat a\n".repeat(MAX_RULES + 1);
        assert!(matches!(
            TaskClassifier::with_rules(&many),
            Err(TaskRulesError::TooMany)
        ));
    }

    #[test]
    fn builtin_patterns_compile() {
        for pattern in [
            Builtin::new().trace_of_mark,
            Builtin::new().ui_navigation,
            Builtin::new().robot_action,
        ] {
            assert!(pattern.is_some());
        }
    }

    #[test]
    fn the_shortcuts_agree_with_the_rules() {
        let builtin = Builtin::new();
        let (trace, robot) = (
            builtin.trace_of_mark.unwrap(),
            builtin.robot_action.unwrap(),
        );
        // The letters of the trace-of-mark word fold only to ASCII letters.
        let word = std::str::from_utf8(TRACE_OF_MARK_WORD).unwrap();
        let letters = Regex::new(&format!("(?i)^[{word}]$")).unwrap();
        let folded: Vec<char> = (0..=char::MAX as u32)
            .filter_map(char::from_u32)
            .filter(|c| letters.is_match(c.encode_utf8(&mut [0; 4])))
            .collect();
        assert!(folded.iter().all(char::is_ascii), "{folded:?}");
        let template = std::str::from_utf8(ROBOT_ACTION_TEMPLATE).unwrap();
        for prompt in [
            "What action should the robot take to pick up the cup?",
            "<image>\nWHAT ACTION SHOULD THE ROBOT TAKE to open the drawer?",
            "what action should the robot ta\u{212A}e to stack",
            "The image is labeled with NUMERICAL  marks; trace them.",
            "move the numeric mark",
            "numerically speaking, the robot moves",
            "nnnumeric marks to trace",
            "n",
            "",
            "robot: grasp it",
            template,
        ] {
            let has_word = contains_ignore_ascii_case(prompt, TRACE_OF_MARK_WORD);
            assert!(has_word || !trace.is_match(prompt), "{prompt}");
            assert_eq!(
                has_word,
                prompt.to_ascii_lowercase().contains(word),
                "{prompt}"
            );
            let has_template = contains_ignore_ascii_case(prompt, ROBOT_ACTION_TEMPLATE);
            assert!(!has_template || robot.is_match(prompt), "{prompt}");
            assert_eq!(
                has_template,
                prompt.to_ascii_lowercase().contains(template),
                "{prompt}"
            );
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_at_char("日本語", 4), "日");
        assert_eq!(truncate_at_char("abc", 10), "abc");
    }
}
