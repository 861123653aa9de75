//! What the drift engine consumes: one feature vector per sampled request.

use serde::{Deserialize, Serialize};

/// Most categorical fields kept per sample.
pub const MAX_CATEGORICAL_FIELDS: usize = 16;
/// Longest categorical value kept (longer ones are cut at a char boundary).
pub const MAX_CATEGORY_LEN: usize = 64;
/// Most numeric features per group (input or output).
pub const MAX_FEATURES: usize = 4096;

/// Features of one sampled request/response pair, built by the payload
/// analysis. Numeric groups must keep the same length from sample to sample
/// (a sample whose length differs from the reference is rejected and
/// counted); categorical fields name closed sets (modality, task, image
/// format, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureSample {
    /// Numeric features of the request (e.g. image size, prompt length).
    pub input: Vec<f32>,
    /// Numeric features of the response (e.g. action values, answer length):
    /// the prediction-drift signal.
    pub output: Vec<f32>,
    /// (field, value) pairs, e.g. ("modality", "image").
    pub categorical: Vec<(&'static str, String)>,
}

/// An owned, bounded copy of a sample, as the reference and the window hold it
/// (and as the state file and the sample-log lines store it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredSample {
    #[serde(default)]
    pub input: Vec<f32>,
    #[serde(default)]
    pub output: Vec<f32>,
    /// Written as `[["modality", "image"], ...]`; read from that or from an
    /// object `{"modality": "image", ...}`.
    #[serde(default, deserialize_with = "pairs_or_map")]
    pub categorical: Vec<(String, String)>,
}

/// Accepts categorical fields as a list of pairs or as a JSON object.
fn pairs_or_map<'de, D>(deserializer: D) -> Result<Vec<(String, String)>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Pairs(Vec<(String, String)>),
        Map(std::collections::BTreeMap<String, String>),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::Pairs(pairs) => pairs,
        Either::Map(map) => map.into_iter().collect(),
    })
}

impl StoredSample {
    /// Copies `sample`, cutting categorical data to the caps.
    pub fn from_sample(sample: &FeatureSample) -> Self {
        Self {
            input: sample.input.clone(),
            output: sample.output.clone(),
            categorical: sample
                .categorical
                .iter()
                .take(MAX_CATEGORICAL_FIELDS)
                .map(|(field, value)| (field.to_string(), cut(value)))
                .collect(),
        }
    }

    /// Whether every numeric value is finite and the groups are within caps.
    pub fn is_well_formed(&self) -> bool {
        self.input.len() <= MAX_FEATURES
            && self.output.len() <= MAX_FEATURES
            && self.categorical.len() <= MAX_CATEGORICAL_FIELDS
            && self.input.iter().chain(&self.output).all(|v| v.is_finite())
    }
}

fn cut(value: &str) -> String {
    if value.len() <= MAX_CATEGORY_LEN {
        return value.to_string();
    }
    let mut end = MAX_CATEGORY_LEN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_categorical_fields_as_pairs_or_an_object() {
        let pairs: StoredSample =
            serde_json::from_str(r#"{"input":[1],"categorical":[["task","ui"]]}"#).unwrap();
        let map: StoredSample =
            serde_json::from_str(r#"{"input":[1],"categorical":{"task":"ui"}}"#).unwrap();
        assert_eq!(pairs, map);
        assert_eq!(
            map.categorical,
            vec![("task".to_string(), "ui".to_string())]
        );
    }

    #[test]
    fn copies_within_caps() {
        let long = "é".repeat(100);
        let sample = FeatureSample {
            input: vec![1.0],
            output: vec![],
            categorical: vec![("task", long)],
        };
        let stored = StoredSample::from_sample(&sample);
        assert!(stored.categorical[0].1.len() <= MAX_CATEGORY_LEN);
        assert!(stored.is_well_formed());
        let bad = StoredSample {
            input: vec![f32::NAN],
            ..StoredSample::default()
        };
        assert!(!bad.is_well_formed());
    }
}
