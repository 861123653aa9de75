//! Prompts in the phrasing of Magma's own agents (DESIGN.md), with a normal
//! vocabulary and a shifted one for the `input-drift` phase.

use rand::Rng;

use super::images::SceneKind;

/// The Magma tasks the traffic generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoTask {
    Robot,
    UiNavigation,
    TraceOfMark,
    VisualQa,
}

impl DemoTask {
    pub const ALL: [DemoTask; 4] = [
        DemoTask::Robot,
        DemoTask::UiNavigation,
        DemoTask::TraceOfMark,
        DemoTask::VisualQa,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Robot => "robot_action",
            Self::UiNavigation => "ui_navigation",
            Self::TraceOfMark => "trace_of_mark",
            Self::VisualQa => "visual_qa",
        }
    }

    /// The picture that goes with the task.
    pub fn scene(self) -> SceneKind {
        match self {
            Self::Robot => SceneKind::RobotWorkspace,
            Self::UiNavigation => SceneKind::UiScreenshot,
            Self::TraceOfMark => SceneKind::MarkedScene,
            Self::VisualQa => SceneKind::Photo,
        }
    }

    /// Picks a task with the weights of a mixed agent workload.
    pub fn pick<R: Rng>(rng: &mut R, weights: &[u32; 4]) -> DemoTask {
        let total: u32 = weights.iter().sum();
        let mut roll = rng.random_range(0..total.max(1));
        for (task, weight) in Self::ALL.iter().zip(weights) {
            if roll < *weight {
                return *task;
            }
            roll -= weight;
        }
        DemoTask::VisualQa
    }
}

/// Which words the prompts are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    Normal,
    /// New objects, screens and questions the reference traffic never had.
    Shifted,
}

const ROBOT_NORMAL: &[&str] = &[
    "pick up the red block",
    "put the spoon in the bowl",
    "open the top drawer",
    "push the green cube to the left",
    "place the cup on the plate",
    "close the microwave door",
    "stack the blue block on the yellow block",
    "wipe the table with the sponge",
];
const ROBOT_SHIFTED: &[&str] = &[
    "calibrate the spectrometer probe against the reference cuvette",
    "unscrew the hydraulic manifold valve counterclockwise",
    "solder the ribbon connector onto the oscilloscope board",
    "titrate the burette until the phenolphthalein turns magenta",
    "splice the fiber-optic pigtail into the fusion sleeve",
];
const UI_NORMAL: &[&str] = &[
    "Sign in",
    "Add to cart",
    "Open settings",
    "Search",
    "Send message",
    "Save changes",
    "Go back",
    "Download report",
];
const UI_SHIFTED: &[&str] = &[
    "Rebalance the hedging portfolio",
    "Acknowledge the SCADA alarm",
    "Export the DICOM series",
    "Quarantine the phishing attachment",
    "Reconcile the ledger discrepancy",
];
const TRACE_NORMAL: &[&str] = &[
    "open the drawer",
    "move the cup next to the kettle",
    "fold the towel",
    "pick up the apple",
];
const TRACE_SHIFTED: &[&str] = &[
    "retract the centrifuge rotor lid",
    "align the telescope eyepiece collimator",
    "insert the cartridge into the sequencer",
];
const QA_NORMAL: &[&str] = &[
    "What is in this picture?",
    "Describe the scene in one sentence.",
    "What colour is the largest object?",
    "How many objects are on the table? Answer with a single number.",
    "Is there a person in the image?",
    "How many buttons are visible? Answer with a single number.",
];
const QA_SHIFTED: &[&str] = &[
    "Which histopathology stain highlights the mitotic figures?",
    "Estimate the tensile strain on the cantilever girder.",
    "Identify the nebula classification from this exposure.",
    "How many mitochondria are visible? Answer with a single number.",
    "Which cryptocurrency candlestick pattern appears here?",
];

fn one<'a, R: Rng>(rng: &mut R, items: &'a [&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// A prompt for `task` in the chosen vocabulary.
pub fn prompt<R: Rng>(rng: &mut R, task: DemoTask, vocabulary: Vocabulary) -> String {
    let shifted = vocabulary == Vocabulary::Shifted;
    match task {
        DemoTask::Robot => {
            let goal = one(rng, if shifted { ROBOT_SHIFTED } else { ROBOT_NORMAL });
            format!("What action should the robot take to {goal}?")
        }
        DemoTask::UiNavigation => {
            let target = one(rng, if shifted { UI_SHIFTED } else { UI_NORMAL });
            let question = format!(
                "In this view I need to click a button to \"{target}\"? Provide the coordinates and the mark index of the containing bounding box if applicable."
            );
            if rng.random_bool(0.15) {
                format!("Q: {question}")
            } else {
                question
            }
        }
        DemoTask::TraceOfMark => {
            let goal = one(rng, if shifted { TRACE_SHIFTED } else { TRACE_NORMAL });
            format!(
                "The image is labeled with numeric marks. The task is to {goal}. Tell me how to move the numerical marks to complete it, as traces of the marks."
            )
        }
        DemoTask::VisualQa => one(rng, if shifted { QA_SHIFTED } else { QA_NORMAL }).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::sim::answers::{classify, SimTask};
    use rand::SeedableRng;

    #[test]
    fn prompts_are_read_as_their_task() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for vocabulary in [Vocabulary::Normal, Vocabulary::Shifted] {
            for _ in 0..50 {
                assert_eq!(
                    classify(&prompt(&mut rng, DemoTask::Robot, vocabulary)),
                    SimTask::RobotAction
                );
                assert!(matches!(
                    classify(&prompt(&mut rng, DemoTask::UiNavigation, vocabulary)),
                    SimTask::UiNavigation | SimTask::UiQuestion
                ));
                assert_eq!(
                    classify(&prompt(&mut rng, DemoTask::TraceOfMark, vocabulary)),
                    SimTask::TraceOfMark
                );
            }
        }
    }

    #[test]
    fn shifted_vocabulary_shares_no_goal_with_normal() {
        for list in [
            (ROBOT_NORMAL, ROBOT_SHIFTED),
            (UI_NORMAL, UI_SHIFTED),
            (TRACE_NORMAL, TRACE_SHIFTED),
            (QA_NORMAL, QA_SHIFTED),
        ] {
            for shifted in list.1 {
                assert!(!list.0.contains(shifted));
            }
        }
    }

    #[test]
    fn task_weights_are_respected() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            let task = DemoTask::pick(&mut rng, &[1, 0, 3, 0]);
            counts[DemoTask::ALL.iter().position(|t| *t == task).unwrap()] += 1;
        }
        assert_eq!(counts[1] + counts[3], 0);
        assert!((900..1100).contains(&counts[0]), "{counts:?}");
    }
}
