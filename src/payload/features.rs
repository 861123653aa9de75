//! The feature vector of a sampled exchange, for drift detection and quality
//! checks. Computed by the analysis worker, never on the forward path.
//!
//! Numeric part: a fixed-length vector, `FIXED_NAMES` (in this order)
//! followed by `hash_dim` components `bow_0 .. bow_{hash_dim-1}`:
//!
//! | index | name | meaning |
//! |---|---|---|
//! | 0 | prompt_bytes | length of all prompt text, bytes |
//! | 1 | prompt_words | whitespace-separated words in the kept prompt prefix (4 KiB) |
//! | 2 | image_count | images in the request |
//! | 3 | media_bytes | decoded bytes of inline media |
//! | 4 | image_width | first image, from its header (0 if unknown) |
//! | 5 | image_height | first image, from its header (0 if unknown) |
//! | 6 | visual_ok | 1 when the visual statistics below were computed |
//! | 7 | brightness | mean luma in [0, 1] |
//! | 8 | contrast | RMS contrast (luma std) |
//! | 9 | saturation | mean HSV saturation |
//! | 10 | edge_density | share of Sobel edge pixels |
//! | 11 | output_bytes | length of the generated text, bytes |
//! | 12 | output_words | words in the kept answer prefix (16 KiB) |
//! | 13 | repetition_ratio | 1 - distinct word bigrams / bigrams of the answer |
//! | 14 | has_actions | 1 when `normalized_actions` had 7 values |
//! | 15..21 | action_0..action_6 | `normalized_actions` (0 when absent) |
//! | 22..28 | delta_0..delta_6 | `delta_values` (0 when absent) |
//!
//! The prompt embedding is the signed feature-hashing trick (Weinberger et
//! al., "Feature Hashing for Large Scale Multitask Learning", ICML 2009):
//! each lower-cased alphanumeric token is hashed with FNV-1a (64 bit), the
//! hash picks a bucket (mod `hash_dim`) and a sign (top bit), and the vector
//! is L2-normalised.

use std::collections::HashSet;

use serde::Serialize;

use super::image_header::{read_header, ImageFormat};
use super::media::{first_image, MediaError};
use super::visual::{visual_stats, VisualError};
use crate::sample::Sample;

/// Names of the fixed part of the numeric vector.
pub const FIXED_NAMES: [&str; 29] = [
    "prompt_bytes",
    "prompt_words",
    "image_count",
    "media_bytes",
    "image_width",
    "image_height",
    "visual_ok",
    "brightness",
    "contrast",
    "saturation",
    "edge_density",
    "output_bytes",
    "output_words",
    "repetition_ratio",
    "has_actions",
    "action_0",
    "action_1",
    "action_2",
    "action_3",
    "action_4",
    "action_5",
    "action_6",
    "delta_0",
    "delta_1",
    "delta_2",
    "delta_3",
    "delta_4",
    "delta_5",
    "delta_6",
];

/// Every numeric feature name for a given hash dimension, in vector order.
pub fn feature_names(hash_dim: usize) -> Vec<String> {
    FIXED_NAMES
        .iter()
        .map(|n| (*n).to_owned())
        .chain((0..hash_dim).map(|i| format!("bow_{i}")))
        .collect()
}

/// Categorical features; every value is from a closed set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Categorical {
    pub route: &'static str,
    pub format: &'static str,
    pub modality: &'static str,
    pub task: &'static str,
    /// `png`, `jpeg`, `gif`, `webp`, `other` (bytes not recognised) or `none`.
    pub image_format: &'static str,
    pub response_format: &'static str,
    /// OpenAI finish reason, or `none`.
    pub finish_reason: &'static str,
    pub status_class: &'static str,
}

/// The features of one sample.
#[derive(Debug, Clone, Serialize)]
pub struct Features {
    /// `FIXED_NAMES` then the prompt embedding.
    pub numeric: Vec<f64>,
    pub categorical: Categorical,
    /// Why the image could not be measured, if it could not (also counted
    /// in `magma_image_decode_errors_total`).
    pub decode_error: Option<String>,
}

impl Features {
    /// The value of a fixed feature by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        let index = FIXED_NAMES.iter().position(|n| *n == name)?;
        self.numeric.get(index).copied()
    }

    /// The prompt embedding.
    pub fn embedding(&self) -> &[f64] {
        self.numeric.get(FIXED_NAMES.len()..).unwrap_or(&[])
    }
}

/// Extracts features with a fixed embedding dimension.
#[derive(Debug, Clone, Copy)]
pub struct FeatureExtractor {
    hash_dim: usize,
}

impl FeatureExtractor {
    pub fn new(hash_dim: usize) -> Self {
        FeatureExtractor {
            hash_dim: hash_dim.max(1),
        }
    }

    pub fn hash_dim(&self) -> usize {
        self.hash_dim
    }

    /// Length of every numeric vector this extractor produces.
    pub fn len(&self) -> usize {
        FIXED_NAMES.len() + self.hash_dim
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn extract(&self, sample: &Sample) -> Features {
        let request = &sample.request;
        let response = &sample.response;
        let mut numeric = Vec::with_capacity(self.len());

        // The first image, from the sampled copy when there is one.
        let mut image_format = if request.images > 0 { "other" } else { "none" };
        let (mut width, mut height) = (0.0, 0.0);
        let mut visual = None;
        let mut decode_error = None;
        let image = request
            .copy
            .as_ref()
            .filter(|c| !c.bytes.is_empty())
            .map(|c| first_image(request.format, &c.bytes));
        match image {
            Some(Ok(Some(bytes))) => match read_header(&bytes) {
                Some(header) => {
                    image_format = header.format.as_str();
                    if let Some((w, h)) = header.dimensions {
                        width = f64::from(w);
                        height = f64::from(h);
                    }
                    match visual_stats(&bytes) {
                        Ok(stats) => visual = Some(stats),
                        Err(VisualError::Unsupported)
                            if matches!(header.format, ImageFormat::Gif | ImageFormat::Webp) => {}
                        Err(error) => {
                            decode_error = Some(error.to_string());
                            count_decode_error(header.format.as_str());
                        }
                    }
                }
                None => {
                    decode_error = Some("image bytes of an unknown format".into());
                    count_decode_error("other");
                }
            },
            Some(Err(MediaError::Base64)) => {
                decode_error = Some(MediaError::Base64.to_string());
                count_decode_error("base64");
            }
            Some(Err(error)) => decode_error = Some(error.to_string()),
            Some(Ok(None)) | None => {}
        }

        numeric.push(request.prompt_bytes as f64);
        numeric.push(word_count(&request.prompt) as f64);
        numeric.push(f64::from(request.images));
        numeric.push(request.media_bytes as f64);
        numeric.push(width);
        numeric.push(height);
        numeric.push(if visual.is_some() { 1.0 } else { 0.0 });
        let stats = visual.map_or([0.0; 4], |s| {
            [s.brightness, s.contrast, s.saturation, s.edge_density]
        });
        numeric.extend_from_slice(&stats);
        numeric.push(response.text_bytes as f64);
        numeric.push(word_count(&response.text) as f64);
        numeric.push(repetition_ratio(&response.text));
        numeric.push(if response.normalized_actions.is_some() {
            1.0
        } else {
            0.0
        });
        numeric.extend_from_slice(&response.normalized_actions.unwrap_or([0.0; 7]));
        numeric.extend_from_slice(&response.delta_values.unwrap_or([0.0; 7]));
        numeric.extend(hashed_bag_of_words(&request.prompt, self.hash_dim));

        Features {
            numeric,
            categorical: Categorical {
                route: sample.route,
                format: request.format.as_str(),
                modality: request.modality.as_str(),
                task: request.task.as_str(),
                image_format,
                response_format: response.format.as_str(),
                finish_reason: response.finish_reason.map_or("none", |f| f.as_str()),
                status_class: crate::telemetry::label::code_class(sample.status),
            },
            decode_error,
        }
    }
}

fn count_decode_error(format: &'static str) {
    metrics::counter!(crate::telemetry::IMAGE_DECODE_ERRORS, "format" => format).increment(1);
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// 1 - distinct word bigrams / word bigrams: near 0 for ordinary text, near
/// 1 for degenerate repetition ("the the the ...").
pub fn repetition_ratio(text: &str) -> f64 {
    let words: Vec<String> = words(text).collect();
    if words.len() < 3 {
        return 0.0;
    }
    let bigrams: HashSet<(&str, &str)> = words
        .windows(2)
        .map(|w| (w[0].as_str(), w[1].as_str()))
        .collect();
    1.0 - bigrams.len() as f64 / (words.len() - 1) as f64
}

/// FNV-1a, 64 bit (Fowler, Noll, Vo).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The signed hashed bag of words of `text`, L2-normalised (all zeros for no words).
pub fn hashed_bag_of_words(text: &str, dim: usize) -> Vec<f64> {
    let dim = dim.max(1);
    let mut v = vec![0.0; dim];
    for word in words(text) {
        let h = fnv1a(word.as_bytes());
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        v[(h % dim as u64) as usize] += sign;
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use base64::Engine;

    use super::*;
    use crate::payload::visual::tests::encode_png;
    use crate::payload::{CopyBudget, RequestTap, ResponseInfo, ResponseTap, TaskClassifier};

    #[test]
    fn repetition() {
        assert!(repetition_ratio("the the the the the the the the") > 0.8);
        assert_eq!(
            repetition_ratio("a quick brown fox jumps over the lazy dog"),
            0.0
        );
        assert_eq!(repetition_ratio("hi"), 0.0);
    }

    #[test]
    fn embedding_is_normalised_and_stable() {
        let a = hashed_bag_of_words("Pick up the red block", 32);
        let b = hashed_bag_of_words("pick UP the red block!", 32);
        assert_eq!(a, b);
        let norm: f64 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-12);
        assert!(hashed_bag_of_words("", 8).iter().all(|x| *x == 0.0));
        assert_eq!(hashed_bag_of_words("x", 5).len(), 5);
    }

    #[test]
    fn names_match_vector_length() {
        assert_eq!(feature_names(32).len(), FeatureExtractor::new(32).len());
        assert_eq!(feature_names(4)[29], "bow_0");
    }

    #[test]
    fn features_of_a_sampled_magma_exchange() {
        let png = encode_png(40, 30, &vec![200; 40 * 30 * 3]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&png);
        let body = format!(
            r#"{{"image":"{encoded}","prompt":"What action should the robot take to pick up the cup?"}}"#
        );
        let budget = CopyBudget::new(1 << 20);
        let copy = crate::payload::BodyCopy::new(budget, 1 << 20, None);
        let mut tap = RequestTap::new(
            "/predict",
            Some("application/json"),
            Arc::new(TaskClassifier::default()),
            Some(copy),
        );
        tap.feed(body.as_bytes());
        let request = tap.finish();
        let mut rtap = ResponseTap::new(200, Some("application/json"), None);
        rtap.feed(br#"{"text_response":"the the the the","normalized_actions":[1,2,3,4,5,6,7],"delta_values":[0,0,0,0,0,0,1]}"#);
        let response: ResponseInfo = rtap.finish();
        let sample = Sample {
            request_id: "r".into(),
            received_at: SystemTime::now(),
            route: "/predict",
            model_type: "magma-8b".into(),
            status: 200,
            latency: Duration::from_millis(1),
            time_to_first_token: None,
            request,
            response,
        };
        let f = FeatureExtractor::new(16).extract(&sample);
        assert_eq!(f.numeric.len(), 29 + 16);
        assert_eq!(f.get("image_count"), Some(1.0));
        assert_eq!(f.get("media_bytes"), Some(png.len() as f64));
        assert_eq!(f.get("image_width"), Some(40.0));
        assert_eq!(f.get("image_height"), Some(30.0));
        assert_eq!(f.get("visual_ok"), Some(1.0));
        assert!((f.get("brightness").unwrap() - 200.0 / 255.0).abs() < 1e-9);
        assert_eq!(f.get("prompt_words"), Some(11.0));
        assert!(f.get("repetition_ratio").unwrap() > 0.6);
        assert_eq!(f.get("action_6"), Some(7.0));
        assert_eq!(f.get("delta_6"), Some(1.0));
        assert_eq!(f.categorical.task, "robot_action");
        assert_eq!(f.categorical.image_format, "png");
        assert_eq!(f.categorical.status_class, "2xx");
        assert!(f.decode_error.is_none());
    }
}
