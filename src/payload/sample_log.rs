//! The sample log: one JSON line per analysed sample (features and
//! metadata; raw prompts, answers and images only with `--capture-payloads`,
//! redacted unless `--no-redact`), in `DIR/samples.jsonl`, rotated to
//! `DIR/samples.jsonl.1` so the two files together stay within
//! `--sample-log-max-bytes`. Files are created with mode 0600.
//!
//! The newest records (without images) are also kept in memory, in a ring
//! of fixed size, for `GET /api/samples?limit=N`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use serde::Serialize;

use super::body_copy::CopyOutcome;
use super::features::{Categorical, Features};
use super::marks::MarkAnswer;
use super::redact::redact;
use crate::sample::Sample;

/// Name of the live log file.
pub const LOG_FILE: &str = "samples.jsonl";
/// Name of the rotated log file.
pub const ROTATED_FILE: &str = "samples.jsonl.1";

/// One line of the sample log.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRecord {
    /// Arrival time, seconds since the Unix epoch.
    pub time: f64,
    pub request_id: String,
    pub route: &'static str,
    pub model_type: String,
    pub status: u16,
    pub latency_seconds: f64,
    pub time_to_first_token_seconds: Option<f64>,
    pub format: &'static str,
    pub modality: &'static str,
    pub task: &'static str,
    pub images: u32,
    pub media_bytes: u64,
    pub response_format: &'static str,
    pub finish_reason: Option<&'static str>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub logprob_mean: Option<f64>,
    #[serde(skip_serializing_if = "MarkAnswer::is_empty")]
    pub marks: MarkAnswer,
    pub request_copy: Option<CopyOutcome>,
    pub response_copy: Option<CopyOutcome>,
    /// Numeric features, in the order of `features::feature_names`.
    pub features: Vec<f64>,
    pub categorical: Categorical,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_error: Option<String>,
    /// Prompt prefix (only with `--capture-payloads`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Answer prefix (only with `--capture-payloads`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The sampled request body when it is not JSON text, base64 (only
    /// with `--capture-payloads`; never kept in the in-memory ring).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body_base64: Option<String>,
    /// The sampled request body when it is JSON (only with `--capture-payloads`, never in the ring).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<serde_json::Value>,
}

/// What goes into a record besides features.
#[derive(Debug, Clone, Copy)]
pub struct CapturePolicy {
    pub capture_payloads: bool,
    pub redact: bool,
}

impl SampleRecord {
    pub fn new(sample: &Sample, features: &Features, policy: CapturePolicy) -> Self {
        let request = &sample.request;
        let response = &sample.response;
        let text = |t: &str| {
            if policy.redact {
                redact(t).into_owned()
            } else {
                t.to_owned()
            }
        };
        let capture = policy.capture_payloads;
        let body = request
            .copy
            .as_ref()
            .filter(|c| capture && !c.bytes.is_empty())
            .map(|c| c.bytes.clone());
        let (request_body, request_body_base64) = match body {
            Some(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(value) if policy.redact => (Some(redact_json(value)), None),
                Ok(value) => (Some(value), None),
                Err(_) => {
                    use base64::Engine;
                    (
                        None,
                        Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
                    )
                }
            },
            None => (None, None),
        };
        SampleRecord {
            time: sample
                .received_at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            request_id: sample.request_id.clone(),
            route: sample.route,
            model_type: sample.model_type.clone(),
            status: sample.status,
            latency_seconds: sample.latency.as_secs_f64(),
            time_to_first_token_seconds: sample.time_to_first_token.map(|d| d.as_secs_f64()),
            format: request.format.as_str(),
            modality: request.modality.as_str(),
            task: request.task.as_str(),
            images: request.images,
            media_bytes: request.media_bytes,
            response_format: response.format.as_str(),
            finish_reason: response.finish_reason.map(|f| f.as_str()),
            prompt_tokens: response.prompt_tokens,
            completion_tokens: response.completion_tokens,
            logprob_mean: response.logprob_mean,
            marks: response.marks.clone(),
            request_copy: request.copy_outcome(),
            response_copy: response.copy_outcome(),
            features: features.numeric.clone(),
            categorical: features.categorical.clone(),
            decode_error: features.decode_error.clone(),
            prompt: capture.then(|| text(&request.prompt)),
            answer: capture.then(|| text(&response.text)),
            request_body_base64,
            request_body,
        }
    }

    /// The record without raw bodies, as kept in the in-memory ring.
    pub fn without_bodies(&self) -> SampleRecord {
        SampleRecord {
            request_body: None,
            request_body_base64: None,
            ..self.clone()
        }
    }
}

/// Redacts every string of a JSON value that is not base64 media.
fn redact_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if s.starts_with("data:") || (s.len() > 256 && !s.contains(' ')) => {
            Value::String(s)
        }
        Value::String(s) => Value::String(redact(&s).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_json).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, redact_json(v))).collect())
        }
        other => other,
    }
}

/// The newest records, for the admin API.
#[derive(Debug)]
pub struct SampleRing {
    records: Mutex<VecDeque<Arc<SampleRecord>>>,
    capacity: usize,
    hash_dim: usize,
}

impl SampleRing {
    pub fn new(capacity: usize, hash_dim: usize) -> Arc<Self> {
        Arc::new(SampleRing {
            records: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
            hash_dim,
        })
    }

    pub fn push(&self, record: SampleRecord) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() == self.capacity {
            records.pop_front();
        }
        records.push_back(Arc::new(record));
    }

    /// Up to `limit` newest records, newest first.
    pub fn newest(&self, limit: usize) -> Vec<Arc<SampleRecord>> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.iter().rev().take(limit).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.records.lock().map_or(0, |r| r.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dimension of the prompt embedding in the records' feature vectors.
    pub fn hash_dim(&self) -> usize {
        self.hash_dim
    }
}

/// Problems with the sample log.
#[derive(Debug, thiserror::Error)]
pub enum SampleLogError {
    #[error("cannot create sample log directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open sample log {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write sample log {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sample record of {0} bytes is larger than half of --sample-log-max-bytes")]
    TooLarge(usize),
    #[error("cannot encode sample record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Appends records to the rotating JSON-lines files.
#[derive(Debug)]
pub struct SampleLog {
    dir: PathBuf,
    file: File,
    size: u64,
    /// Bytes one file may reach; two files exist at most.
    file_cap: u64,
}

fn open_log(path: &Path) -> Result<(File, u64), SampleLogError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| SampleLogError::Open {
            path: path.to_owned(),
            source,
        })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, size))
}

impl SampleLog {
    /// Opens (creating) `dir/samples.jsonl`; `max_bytes` caps both files together.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SampleLogError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| SampleLogError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        let (file, size) = open_log(&dir.join(LOG_FILE))?;
        Ok(SampleLog {
            dir: dir.to_owned(),
            file,
            size,
            file_cap: (max_bytes / 2).max(1),
        })
    }

    /// Writes one record as a line, rotating first when the file would pass its cap.
    pub fn write(&mut self, record: &SampleRecord) -> Result<(), SampleLogError> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        if line.len() as u64 > self.file_cap {
            return Err(SampleLogError::TooLarge(line.len()));
        }
        if self.size + line.len() as u64 > self.file_cap {
            self.rotate()?;
        }
        let path = self.dir.join(LOG_FILE);
        self.file
            .write_all(&line)
            .map_err(|source| SampleLogError::Write { path, source })?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), SampleLogError> {
        let live = self.dir.join(LOG_FILE);
        let rotated = self.dir.join(ROTATED_FILE);
        std::fs::rename(&live, &rotated).map_err(|source| SampleLogError::Write {
            path: rotated.clone(),
            source,
        })?;
        let (file, size) = open_log(&live)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::payload::features::FeatureExtractor;
    use crate::payload::{RequestInfo, ResponseInfo};

    fn sample(prompt: &str) -> Sample {
        let mut request = RequestInfo::unknown();
        request.prompt = prompt.to_owned();
        Sample {
            request_id: "req-1".into(),
            received_at: SystemTime::now(),
            route: "/predict",
            model_type: "magma-8b".into(),
            status: 200,
            latency: Duration::from_millis(1100),
            time_to_first_token: None,
            request,
            response: ResponseInfo::unknown(200),
        }
    }

    fn record(prompt: &str, policy: CapturePolicy) -> SampleRecord {
        let s = sample(prompt);
        let f = FeatureExtractor::new(4).extract(&s);
        SampleRecord::new(&s, &f, policy)
    }

    #[test]
    fn payloads_only_when_captured_and_redacted_by_default() {
        let off = record(
            "mail bob@example.com",
            CapturePolicy {
                capture_payloads: false,
                redact: true,
            },
        );
        assert!(off.prompt.is_none());
        let json = serde_json::to_string(&off).unwrap();
        assert!(!json.contains("bob@"));
        let on = record(
            "mail bob@example.com",
            CapturePolicy {
                capture_payloads: true,
                redact: true,
            },
        );
        assert_eq!(on.prompt.as_deref(), Some("mail [EMAIL]"));
        let raw = record(
            "mail bob@example.com",
            CapturePolicy {
                capture_payloads: true,
                redact: false,
            },
        );
        assert_eq!(raw.prompt.as_deref(), Some("mail bob@example.com"));
    }

    #[test]
    fn rotation_caps_disk_use_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let max = 8 * 1024;
        let mut log = SampleLog::open(dir.path(), max).unwrap();
        let policy = CapturePolicy {
            capture_payloads: true,
            redact: true,
        };
        let rec = record("a prompt of moderate length", policy);
        for _ in 0..200 {
            log.write(&rec).unwrap();
        }
        let live = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap();
        let rotated = std::fs::metadata(dir.path().join(ROTATED_FILE)).unwrap();
        assert!(live.len() + rotated.len() <= max);
        assert!(rotated.len() > max / 4);
        assert_eq!(live.permissions().mode() & 0o777, 0o600);
        assert_eq!(rotated.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["request_id"], "req-1");
            assert_eq!(value["features"].as_array().unwrap().len(), 29 + 4);
        }
        let huge = record(&"x".repeat(10_000), policy);
        assert!(matches!(log.write(&huge), Err(SampleLogError::TooLarge(_))));
    }

    #[test]
    fn ring_keeps_the_newest() {
        let ring = SampleRing::new(3, 4);
        let policy = CapturePolicy {
            capture_payloads: false,
            redact: true,
        };
        for i in 0..5 {
            let mut r = record("p", policy);
            r.request_id = format!("r{i}");
            ring.push(r);
        }
        let newest: Vec<String> = ring
            .newest(10)
            .iter()
            .map(|r| r.request_id.clone())
            .collect();
        assert_eq!(newest, vec!["r4", "r3", "r2"]);
        assert_eq!(ring.newest(1).len(), 1);
    }
}
