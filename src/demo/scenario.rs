//! Scenario phases: what the traffic looks like and which faults the
//! simulated server shows in each.

use clap::ValueEnum;

use super::images::Look;
use super::prompts::Vocabulary;
use super::sim::FaultsUpdate;

/// Model time the latency creep adds at its peak (before `--speed` scaling).
pub const CREEP_PEAK_SECONDS: f64 = 4.0;

/// `--scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// Every phase in turn, then again.
    All,
    Normal,
    InputDrift,
    LatencyCreep,
    ErrorBurst,
    DegenerateOutput,
}

/// One phase of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reference traffic, no faults.
    Normal,
    /// Darker, lower-contrast images and prompts with new vocabulary.
    InputDrift,
    /// Latency rises steadily while the server leaks memory.
    LatencyCreep,
    /// A third of the requests fail with 503 or 500.
    ErrorBurst,
    /// Most answers degenerate into a repeated word.
    DegenerateOutput,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::InputDrift => "input-drift",
            Self::LatencyCreep => "latency-creep",
            Self::ErrorBurst => "error-burst",
            Self::DegenerateOutput => "degenerate-output",
        }
    }

    /// What a user should see on the dashboard during this phase.
    pub fn expectation(self) -> &'static str {
        match self {
            Self::Normal => "baseline: ~1.1 s latency, no errors",
            Self::InputDrift => "input drift: drift p-value falls below its threshold",
            Self::LatencyCreep => "p95 latency climbs past 2 s (at speed 1), resident memory grows",
            Self::ErrorBurst => "error rate jumps (503/500 from the model server)",
            Self::DegenerateOutput => "repetitive outputs (\"the the the ...\") counted",
        }
    }

    pub fn vocabulary(self) -> Vocabulary {
        match self {
            Self::InputDrift => Vocabulary::Shifted,
            _ => Vocabulary::Normal,
        }
    }

    pub fn look(self) -> Look {
        match self {
            Self::InputDrift => Look::DIM,
            _ => Look::NORMAL,
        }
    }

    /// Faults of the simulated server in this phase.
    ///
    /// Creep adds `CREEP_PEAK_SECONDS` of model time by the middle of the
    /// phase and holds it; the rate is per minute of wall time, so it is
    /// derived from the phase's wall length (`phase_seconds / speed`).
    pub fn faults(self, speed: f64, phase_seconds: f64, leak_per_request: u64) -> FaultsUpdate {
        let mut update = FaultsUpdate {
            clear: true,
            ..FaultsUpdate::default()
        };
        match self {
            Self::Normal | Self::InputDrift => {}
            Self::LatencyCreep => {
                let wall_minutes = (phase_seconds / speed.max(1e-3) / 60.0).max(1e-3);
                let rate = CREEP_PEAK_SECONDS / (0.5 * wall_minutes);
                update.latency_creep_seconds_per_minute = Some(rate.min(600.0));
                update.latency_creep_max_seconds = Some(CREEP_PEAK_SECONDS);
                update.leak_bytes_per_request = Some(leak_per_request);
            }
            Self::ErrorBurst => update.error_rate = Some(0.35),
            Self::DegenerateOutput => update.degenerate_rate = Some(0.6),
        }
        update
    }
}

impl ScenarioName {
    /// The phases played in order (and repeated while time remains).
    pub fn phases(self) -> Vec<Phase> {
        match self {
            Self::All => vec![
                Phase::Normal,
                Phase::InputDrift,
                Phase::LatencyCreep,
                Phase::ErrorBurst,
                Phase::DegenerateOutput,
            ],
            Self::Normal => vec![Phase::Normal],
            Self::InputDrift => vec![Phase::Normal, Phase::InputDrift],
            Self::LatencyCreep => vec![Phase::Normal, Phase::LatencyCreep],
            Self::ErrorBurst => vec![Phase::Normal, Phase::ErrorBurst],
            Self::DegenerateOutput => vec![Phase::Normal, Phase::DegenerateOutput],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_starts_with_a_baseline() {
        for name in ScenarioName::value_variants() {
            assert_eq!(name.phases()[0], Phase::Normal, "{name:?}");
        }
        assert_eq!(ScenarioName::All.phases().len(), 5);
    }

    #[test]
    fn creep_peaks_in_the_middle_of_the_phase() {
        // 90 s phases at speed 1: +4 s after 45 s, i.e. 5.33 s per minute.
        let update = Phase::LatencyCreep.faults(1.0, 90.0, 0);
        let rate = update.latency_creep_seconds_per_minute.unwrap();
        assert!((rate - 16.0 / 3.0).abs() < 1e-9, "{rate}");
        // At speed 3 the phase lasts 30 s, so the creep is three times steeper.
        let update = Phase::LatencyCreep.faults(3.0, 90.0, 0);
        let rate = update.latency_creep_seconds_per_minute.unwrap();
        assert!((rate - 16.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn phase_faults_are_valid() {
        use crate::demo::sim::Faults;
        for phase in ScenarioName::All.phases() {
            let faults = Faults::none().updated(&phase.faults(10.0, 90.0, 1 << 20));
            faults.validate().unwrap();
            assert_eq!(
                faults.any_active(),
                !matches!(phase, Phase::Normal | Phase::InputDrift)
            );
        }
    }
}
