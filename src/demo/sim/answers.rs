//! Task-shaped answers: what a Magma server would say to a prompt.
//!
//! The task is read from the prompt the way Magma's own agents phrase it
//! (see DESIGN.md): robot manipulation, Set-of-Mark UI navigation,
//! Trace-of-Mark planning, visual QA. The values are random but always inside
//! the ranges the real model produces, so checks on them only fire when a
//! fault is switched on.

use rand::Rng;
use serde::Serialize;

/// Which kind of answer a prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimTask {
    RobotAction,
    UiNavigation,
    UiQuestion,
    TraceOfMark,
    NumberAnswer,
    VisualQa,
}

/// Reads the task from the prompt text.
pub fn classify(prompt: &str) -> SimTask {
    let lower = prompt.to_ascii_lowercase();
    if lower.contains("what action should the robot take") {
        SimTask::RobotAction
    } else if lower.contains("numerical marks") || lower.contains("labeled with numeric marks") {
        SimTask::TraceOfMark
    } else if lower.contains("mark index") || lower.contains("click a button") {
        if prompt.trim_start().starts_with("Q:") {
            SimTask::UiQuestion
        } else {
            SimTask::UiNavigation
        }
    } else if lower.contains("answer with a single number") {
        SimTask::NumberAnswer
    } else {
        SimTask::VisualQa
    }
}

/// The JSON body of a successful `/predict` answer.
#[derive(Debug, Clone, Serialize)]
pub struct PredictAnswer {
    pub text_response: String,
    pub normalized_actions: [f64; 7],
    pub delta_values: [f64; 7],
}

/// Magma's bounds of `delta_values`: xyz ±0.05 m, roll/pitch/yaw ±3.14 rad, gripper 0..1.
pub const DELTA_XYZ: f64 = 0.05;
// Magma's documented bound is 3.14, not pi.
#[allow(clippy::approx_constant)]
pub const DELTA_ANGLE: f64 = 3.14;

/// Scales normalized actions in [-1, 1] to Magma's delta bounds.
pub fn to_delta(normalized: &[f64; 7]) -> [f64; 7] {
    let mut delta = [0.0; 7];
    for (i, n) in normalized.iter().enumerate() {
        delta[i] = match i {
            0..=2 => n * DELTA_XYZ,
            3..=5 => n * DELTA_ANGLE,
            _ => (n + 1.0) / 2.0,
        };
    }
    delta
}

/// Builds an answer for `prompt`; `degenerate` makes it a repeated word.
pub fn answer<R: Rng>(rng: &mut R, prompt: &str, degenerate: bool) -> PredictAnswer {
    let task = classify(prompt);
    let mut normalized = [0.0; 7];
    for value in normalized.iter_mut().take(6) {
        *value = round3(rng.random_range(-0.6..0.6));
    }
    normalized[6] = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let text = if degenerate {
        degenerate_text(rng)
    } else {
        text_for(rng, task, &normalized)
    };
    PredictAnswer {
        text_response: text,
        normalized_actions: normalized,
        delta_values: to_delta(&normalized).map(round5),
    }
}

/// "the the the ...": the failure Magma users have reported.
pub fn degenerate_text<R: Rng>(rng: &mut R) -> String {
    const WORDS: [&str; 4] = ["the", "button", "robot", "mark"];
    let word = WORDS[rng.random_range(0..WORDS.len())];
    let count = rng.random_range(40..120);
    vec![word; count].join(" ")
}

fn text_for<R: Rng>(rng: &mut R, task: SimTask, normalized: &[f64; 7]) -> String {
    match task {
        SimTask::RobotAction => {
            let gripper = if normalized[6] > 0.0 { "open" } else { "close" };
            format!(
                "Move the end effector by ({:+.3}, {:+.3}, {:+.3}) m, rotate by ({:+.2}, {:+.2}, {:+.2}) rad, then {gripper} the gripper.",
                normalized[0] * DELTA_XYZ,
                normalized[1] * DELTA_XYZ,
                normalized[2] * DELTA_XYZ,
                normalized[3] * DELTA_ANGLE,
                normalized[4] * DELTA_ANGLE,
                normalized[5] * DELTA_ANGLE,
            )
        }
        SimTask::UiNavigation => {
            let mark = rng.random_range(1..40);
            if rng.random_bool(0.3) {
                let x1 = rng.random_range(0..900);
                let y1 = rng.random_range(0..900);
                let x2 = x1 + rng.random_range(20..100);
                let y2 = y1 + rng.random_range(10..60);
                format!("Mark: {mark}. <box>({x1},{y1}),({x2},{y2})</box>")
            } else {
                let x: f64 = rng.random_range(0.02..0.98);
                let y: f64 = rng.random_range(0.02..0.98);
                format!("Mark: {mark}. Coordinates: ({x:.2}, {y:.2})")
            }
        }
        SimTask::UiQuestion => {
            const ANSWERS: [&str; 4] = [
                "The page shows a login form with two text fields.",
                "The settings menu is open; the search bar is at the top.",
                "There are three buttons: Save, Cancel and Help.",
                "A dialog asks to confirm the purchase.",
            ];
            ANSWERS[rng.random_range(0..ANSWERS.len())].to_string()
        }
        SimTask::TraceOfMark => {
            let marks = rng.random_range(1..4);
            let mut parts = Vec::with_capacity(marks);
            for _ in 0..marks {
                let mark = rng.random_range(1..20);
                let mut x: i32 = rng.random_range(20..236);
                let mut y: i32 = rng.random_range(20..236);
                let mut points = Vec::with_capacity(4);
                for _ in 0..4 {
                    points.push(format!("[{x},{y}]"));
                    x = (x + rng.random_range(-12..13)).clamp(0, 255);
                    y = (y + rng.random_range(-12..13)).clamp(0, 255);
                }
                parts.push(format!("Mark {mark} at {}", points.join(", ")));
            }
            parts.join("; ")
        }
        SimTask::NumberAnswer => rng.random_range(0..12).to_string(),
        SimTask::VisualQa => {
            const ANSWERS: [&str; 6] = [
                "A red cube sits on a wooden table next to a blue bowl.",
                "The image shows a kitchen counter with a sponge and a cup.",
                "Two people are standing near a whiteboard.",
                "It is a street scene with parked cars and a bicycle.",
                "The chart shows values rising from left to right.",
                "A robot arm is reaching towards a green block.",
            ];
            ANSWERS[rng.random_range(0..ANSWERS.len())].to_string()
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn round5(v: f64) -> f64 {
    (v * 100_000.0).round() / 100_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn classifies_magma_prompts() {
        assert_eq!(
            classify("What action should the robot take to pick up the cup?"),
            SimTask::RobotAction
        );
        let som = "In this view I need to click a button to \"Sign in\"? Provide the coordinates and the mark index of the containing bounding box if applicable.";
        assert_eq!(classify(som), SimTask::UiNavigation);
        assert_eq!(classify(&format!("Q: {som}")), SimTask::UiQuestion);
        assert_eq!(
            classify("The image is labeled with numeric marks. Tell me how to move the numerical marks to open the drawer."),
            SimTask::TraceOfMark
        );
        assert_eq!(
            classify("How many apples? Answer with a single number."),
            SimTask::NumberAnswer
        );
        assert_eq!(classify("What is in the picture?"), SimTask::VisualQa);
    }

    #[test]
    fn answers_stay_in_magma_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..500 {
            let a = answer(
                &mut rng,
                "What action should the robot take to wave?",
                false,
            );
            assert!(a
                .normalized_actions
                .iter()
                .all(|v| (-1.0..=1.0).contains(v)));
            assert!(a.delta_values[..3].iter().all(|v| v.abs() <= DELTA_XYZ));
            assert!(a.delta_values[3..6].iter().all(|v| v.abs() <= DELTA_ANGLE));
            assert!((0.0..=1.0).contains(&a.delta_values[6]));
        }
    }

    #[test]
    fn set_of_mark_answers_carry_a_mark_and_coordinates() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let a = answer(
                &mut rng,
                "In this view I need to click a button to \"Save\"? Provide the coordinates and the mark index of the containing bounding box if applicable.",
                false,
            );
            assert!(a.text_response.starts_with("Mark: "), "{}", a.text_response);
            assert!(
                a.text_response.contains("Coordinates: (") || a.text_response.contains("<box>("),
                "{}",
                a.text_response
            );
        }
    }

    #[test]
    fn degenerate_answers_repeat_one_word() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = answer(&mut rng, "What is this?", true);
        let words: Vec<&str> = a.text_response.split(' ').collect();
        assert!(words.len() >= 40);
        assert!(words.iter().all(|w| *w == words[0]));
    }
}
