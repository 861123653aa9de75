//! Reference sets: checking them, reading them from files or uploads, and
//! preparing them for testing (standardisation, cached kernel bandwidth).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::args::MAX_SAMPLES;
use super::csv_input::parse_table;
use super::matrix::Samples;
use super::sample::StoredSample;
use super::sigma::median_heuristic_sigma;

/// Checks that `samples` can serve as a reference: at least 2, at most
/// `MAX_SAMPLES`, well formed, every sample with the same group widths.
pub fn check_samples(samples: &[StoredSample]) -> Result<(), String> {
    if samples.len() < 2 {
        return Err(format!(
            "{} samples; a reference needs at least 2",
            samples.len()
        ));
    }
    if samples.len() > MAX_SAMPLES {
        return Err(format!(
            "{} samples; a reference holds at most {MAX_SAMPLES}",
            samples.len()
        ));
    }
    let (inputs, outputs) = (samples[0].input.len(), samples[0].output.len());
    for (index, sample) in samples.iter().enumerate() {
        if !sample.is_well_formed() {
            return Err(format!(
                "sample {}: a value is not finite or a group is too large",
                index + 1
            ));
        }
        if sample.input.len() != inputs || sample.output.len() != outputs {
            return Err(format!(
                "sample {}: {} input and {} output features, the first sample has {inputs} and {outputs}",
                index + 1,
                sample.input.len(),
                sample.output.len()
            ));
        }
    }
    Ok(())
}

/// Parses a reference from text: JSON lines of samples (a first non-blank
/// character `{`), otherwise CSV whose columns are the input features.
pub fn parse_reference(name: &str, text: &str) -> Result<Vec<StoredSample>, String> {
    let samples = if text.trim_start().starts_with('{') {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| {
                serde_json::from_str::<StoredSample>(line)
                    .map_err(|e| format!("{name}: line {}: {e}", index + 1))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        parse_table(name, text)
            .map_err(|e| e.to_string())?
            .rows
            .into_iter()
            .map(|row| StoredSample {
                input: row.into_iter().map(|v| v as f32).collect(),
                ..StoredSample::default()
            })
            .collect()
    };
    check_samples(&samples).map_err(|e| format!("{name}: {e}"))?;
    Ok(samples)
}

/// Reads a reference file (see `parse_reference`).
pub fn read_reference_file(path: &Path) -> Result<Vec<StoredSample>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_reference(&path.display().to_string(), &text)
}

/// Label of a sample that lacks a categorical field.
pub const ABSENT: &str = "(absent)";

/// One numeric feature group, standardised by the reference's moments.
#[derive(Debug, Clone)]
pub struct PreparedGroup {
    pub samples: Samples,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Median-heuristic σ of the standardised reference.
    pub sigma: f64,
}

impl PreparedGroup {
    fn new(raw: Samples) -> Option<Self> {
        if raw.cols() == 0 {
            return None;
        }
        let (mean, std) = raw.column_moments();
        let samples = raw.standardized(&mean, &std);
        let sigma = median_heuristic_sigma(&samples).unwrap_or(1.0);
        Some(Self {
            samples,
            mean,
            std,
            sigma,
        })
    }

    /// Standardises `raw` rows with the reference's moments.
    pub fn standardize(&self, raw: &Samples) -> Samples {
        raw.standardized(&self.mean, &self.std)
    }

    /// One standardised row.
    pub fn standardize_row(&self, row: &[f32]) -> Vec<f32> {
        row.iter()
            .zip(&self.mean)
            .zip(&self.std)
            .map(|((v, m), s)| ((f64::from(*v) - m) / s) as f32)
            .collect()
    }
}

/// A reference ready for testing.
#[derive(Debug, Clone)]
pub struct PreparedReference {
    pub samples: Vec<StoredSample>,
    pub source: String,
    pub reference_file: Option<String>,
    pub created_unix_seconds: f64,
    pub input: Option<PreparedGroup>,
    pub output: Option<PreparedGroup>,
    /// Values of each categorical field, one per sample (ABSENT when missing).
    pub categorical: BTreeMap<String, Vec<String>>,
}

impl PreparedReference {
    pub fn new(
        samples: Vec<StoredSample>,
        source: &str,
        reference_file: Option<String>,
        created_unix_seconds: f64,
    ) -> Self {
        let input = PreparedGroup::new(group(&samples, |s| &s.input));
        let output = PreparedGroup::new(group(&samples, |s| &s.output));
        let fields: BTreeSet<String> = samples
            .iter()
            .flat_map(|s| s.categorical.iter().map(|(f, _)| f.clone()))
            .collect();
        let categorical = fields
            .into_iter()
            .map(|field| {
                let values = categorical_values(&samples, &field);
                (field, values)
            })
            .collect();
        Self {
            samples,
            source: source.to_string(),
            reference_file,
            created_unix_seconds,
            input,
            output,
            categorical,
        }
    }

    pub fn input_width(&self) -> usize {
        self.samples.first().map(|s| s.input.len()).unwrap_or(0)
    }

    pub fn output_width(&self) -> usize {
        self.samples.first().map(|s| s.output.len()).unwrap_or(0)
    }
}

/// The rows of one numeric group as a matrix (rows of other widths skipped).
pub fn group<'a, I, F>(samples: I, pick: F) -> Samples
where
    I: IntoIterator<Item = &'a StoredSample>,
    F: Fn(&StoredSample) -> &Vec<f32>,
{
    let mut iter = samples.into_iter().peekable();
    let width = iter.peek().map(|s| pick(s).len()).unwrap_or(0);
    let mut matrix = Samples::empty(width);
    for sample in iter {
        matrix.push_row(pick(sample));
    }
    matrix
}

/// The value of `field` in each sample, ABSENT where it is missing.
pub fn categorical_values<'a, I>(samples: I, field: &str) -> Vec<String>
where
    I: IntoIterator<Item = &'a StoredSample>,
{
    samples
        .into_iter()
        .map(|s| {
            s.categorical
                .iter()
                .find(|(f, _)| f == field)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| ABSENT.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csv_and_json_lines() {
        let csv = parse_reference("r.csv", "a,b\n1,2\n3,4\n").unwrap();
        assert_eq!(csv[1].input, vec![3.0, 4.0]);
        let lines = "{\"input\":[1,2],\"output\":[0.5],\"categorical\":[[\"modality\",\"image\"]]}\n\n{\"input\":[3,4],\"output\":[0.7]}\n";
        let parsed = parse_reference("r.jsonl", lines).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].categorical[0].1, "image");
        assert!(parse_reference("r", "{\"input\":[1]}\n{\"input\":[1,2]}\n").is_err());
        assert!(parse_reference("r", "1,2\n").is_err());
        assert!(parse_reference("r", "{\"input\":[1]}\nnot json\n").is_err());
    }

    #[test]
    fn prepares_standardised_groups_and_fields() {
        let samples: Vec<StoredSample> = (0..10)
            .map(|i| StoredSample {
                input: vec![i as f32, 5.0],
                output: vec![],
                categorical: if i % 2 == 0 {
                    vec![("task".into(), "robot".into())]
                } else {
                    vec![]
                },
            })
            .collect();
        let prepared = PreparedReference::new(samples, "first_samples", None, 0.0);
        let input = prepared.input.as_ref().unwrap();
        assert!((input.mean[0] - 4.5).abs() < 1e-12);
        assert!(prepared.output.is_none());
        assert_eq!(prepared.categorical["task"][1], ABSENT);
        assert_eq!(input.standardize_row(&[4.5, 5.0]), vec![0.0, 0.0]);
    }
}
