//! Sampling policy and the bounded hand-off from the forward path to analysis.
//!
//! The forward path asks [`Sampler::decide`] once per request (a random draw,
//! a lock-free per-second cap and the `x-magma-sample` header), gives sampled
//! requests a [`BodyCopy`](crate::payload::BodyCopy), and at the end of the
//! exchange hands a [`Sample`] to [`SampleSender::send`], which never waits:
//! a full queue drops the sample and counts it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use tokio::sync::mpsc;

use crate::payload::{BodyCopy, CopyBudget, CopyOutcome, RequestInfo, ResponseInfo};
use crate::telemetry;
use crate::units::parse_size;

/// Header a client sets to force (`always`) or skip (`never`) sampling.
pub const SAMPLE_HEADER: &str = "x-magma-sample";

/// Sampling, sample log and feature flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sampling and analysis")]
pub struct SampleArgs {
    /// Forward and count only: never read request or response bodies. The
    /// `modality` and `task` labels stay `unknown`, `model_type` is always
    /// --model-type, and there are no samples, drift tests or output checks.
    #[arg(long, env = "MAGMA_MONITOR_NO_PAYLOAD_ANALYSIS")]
    pub no_payload_analysis: bool,

    /// Share of requests whose bodies are copied for analysis (0..1).
    #[arg(long, env = "MAGMA_MONITOR_SAMPLE_RATE", default_value_t = 0.1)]
    pub sample_rate: f64,

    /// Most requests sampled per second (0 = no cap); `x-magma-sample: always` bypasses it.
    #[arg(
        long,
        env = "MAGMA_MONITOR_SAMPLE_MAX_PER_SECOND",
        default_value_t = 50
    )]
    pub sample_max_per_second: u32,

    /// Largest body copied for a sample; larger ones are sampled as features only.
    #[arg(long, env = "MAGMA_MONITOR_SAMPLE_MAX_BYTES", default_value = "8MiB", value_parser = parse_size)]
    pub sample_max_bytes: u64,

    /// Memory all sampled body copies may hold together (streaming, queued, analysed).
    #[arg(long, env = "MAGMA_MONITOR_SAMPLE_MEMORY_BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub sample_memory_bytes: u64,

    /// Samples waiting for analysis; more are dropped and counted.
    #[arg(long, env = "MAGMA_MONITOR_SAMPLE_QUEUE", default_value_t = 64)]
    pub sample_queue: usize,

    /// Directory of the sample log (JSON lines); off when not given.
    #[arg(long, env = "MAGMA_MONITOR_SAMPLE_LOG")]
    pub sample_log: Option<PathBuf>,

    /// Disk the sample log may use (current file plus one rotated file).
    #[arg(long, env = "MAGMA_MONITOR_SAMPLE_LOG_MAX_BYTES", default_value = "100MiB", value_parser = parse_size)]
    pub sample_log_max_bytes: u64,

    /// Write raw prompts, answers and images into the sample log.
    #[arg(long, env = "MAGMA_MONITOR_CAPTURE_PAYLOADS")]
    pub capture_payloads: bool,

    /// Do not redact e-mails, phone numbers, long digit runs and IPs in captured text.
    #[arg(long, env = "MAGMA_MONITOR_NO_REDACT")]
    pub no_redact: bool,

    /// Extra task rules, one `TASK REGEX` a line (see docs/payload.md).
    #[arg(long, env = "MAGMA_MONITOR_TASK_RULES")]
    pub task_rules: Option<PathBuf>,

    /// Newest sample records kept in memory for `/api/samples`.
    #[arg(long, env = "MAGMA_MONITOR_SAMPLE_RING", default_value_t = 256)]
    pub sample_ring: usize,

    /// Dimension of the hashed bag-of-words prompt embedding.
    #[arg(long, env = "MAGMA_MONITOR_FEATURE_HASH_DIM", default_value_t = 32)]
    pub feature_hash_dim: usize,
}

impl Default for SampleArgs {
    fn default() -> Self {
        SampleArgs {
            no_payload_analysis: false,
            sample_rate: 0.1,
            sample_max_per_second: 50,
            sample_max_bytes: 8 * 1024 * 1024,
            sample_memory_bytes: 64 * 1024 * 1024,
            sample_queue: 64,
            sample_log: None,
            sample_log_max_bytes: 100 * 1024 * 1024,
            capture_payloads: false,
            no_redact: false,
            task_rules: None,
            sample_ring: 256,
            feature_hash_dim: 32,
        }
    }
}

impl SampleArgs {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(format!(
                "--sample-rate {} must be between 0 and 1",
                self.sample_rate
            ));
        }
        if self.sample_max_bytes > self.sample_memory_bytes {
            return Err("--sample-max-bytes cannot exceed --sample-memory-bytes".into());
        }
        if usize::try_from(self.sample_memory_bytes).is_err() {
            return Err("--sample-memory-bytes is too large for this machine".into());
        }
        if self.sample_queue == 0 || self.sample_queue > 65_536 {
            return Err("--sample-queue must be between 1 and 65536".into());
        }
        if self.sample_ring == 0 || self.sample_ring > 100_000 {
            return Err("--sample-ring must be between 1 and 100000".into());
        }
        if self.feature_hash_dim == 0 || self.feature_hash_dim > 4096 {
            return Err("--feature-hash-dim must be between 1 and 4096".into());
        }
        if self.sample_log.is_some() && self.sample_log_max_bytes < 4096 {
            return Err("--sample-log-max-bytes must be at least 4KiB".into());
        }
        Ok(())
    }
}

/// Decides which requests are sampled. Cheap and lock-free: one random draw
/// and, for sampled requests, one compare-and-swap on the per-second window.
#[derive(Debug)]
pub struct Sampler {
    /// Sampled when a uniform u64 draw is below this (rate scaled to 2^64).
    threshold: u64,
    always: bool,
    per_second: u32,
    /// Current second since `epoch` (high 32 bits) and samples taken in it.
    window: AtomicU64,
    epoch: Instant,
    budget: Arc<CopyBudget>,
    max_bytes: usize,
}

/// What the client asked for with `x-magma-sample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientChoice {
    Always,
    Never,
    Default,
}

impl ClientChoice {
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        Self::from_value(headers.get(SAMPLE_HEADER).map(|v| v.as_bytes()))
    }

    /// The choice an `x-magma-sample` value (or its absence) makes.
    pub fn from_value(value: Option<&[u8]>) -> Self {
        match value {
            Some(v) if v.eq_ignore_ascii_case(b"always") => ClientChoice::Always,
            Some(v) if v.eq_ignore_ascii_case(b"never") => ClientChoice::Never,
            _ => ClientChoice::Default,
        }
    }
}

impl Sampler {
    pub fn new(args: &SampleArgs) -> Self {
        let rate = args.sample_rate.clamp(0.0, 1.0);
        let memory = usize::try_from(args.sample_memory_bytes).unwrap_or(usize::MAX);
        Sampler {
            threshold: (rate * u64::MAX as f64) as u64,
            always: rate >= 1.0,
            per_second: args.sample_max_per_second,
            window: AtomicU64::new(0),
            epoch: Instant::now(),
            budget: CopyBudget::new(memory),
            max_bytes: usize::try_from(args.sample_max_bytes).unwrap_or(usize::MAX),
        }
    }

    /// Whether this request is sampled.
    pub fn decide(&self, headers: &http::HeaderMap) -> bool {
        self.decide_with(ClientChoice::from_headers(headers))
    }

    /// [`Sampler::decide`] with the header already read.
    pub fn decide_with(&self, choice: ClientChoice) -> bool {
        match choice {
            ClientChoice::Always => true,
            ClientChoice::Never => false,
            ClientChoice::Default => {
                let drawn = self.always || rand::random::<u64>() < self.threshold;
                drawn && self.take_slot()
            }
        }
    }

    /// Takes one slot of the current second, if the cap allows.
    fn take_slot(&self) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let now = self.epoch.elapsed().as_secs() & 0xFFFF_FFFF;
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (second, count) = (current >> 32, current & 0xFFFF_FFFF);
            let next = if second != now {
                now << 32 | 1
            } else if count < u64::from(self.per_second) {
                current + 1
            } else {
                return false;
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    /// A copy for a sampled body; `content_length` sizes it up front.
    pub fn body_copy(&self, content_length: Option<u64>) -> BodyCopy {
        BodyCopy::new(self.budget.clone(), self.max_bytes, content_length)
    }

    /// The shared copy budget (for status pages).
    pub fn budget(&self) -> &Arc<CopyBudget> {
        &self.budget
    }
}

/// One sampled exchange, as the analysis worker receives it.
#[derive(Debug)]
pub struct Sample {
    pub request_id: String,
    /// When the request arrived.
    pub received_at: SystemTime,
    /// Route label (`telemetry::label::route`).
    pub route: &'static str,
    /// The `model_type` label value of the request.
    pub model_type: String,
    pub status: u16,
    /// Arrival to end of response body.
    pub latency: Duration,
    pub time_to_first_token: Option<Duration>,
    pub request: RequestInfo,
    pub response: ResponseInfo,
}

/// How a hand-off went (the `outcome` label of `magma_samples_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleOutcome {
    /// Queued with its body copies.
    Accepted,
    /// The queue was full (or analysis stopped); the sample is gone.
    Dropped,
    /// Queued as features only: a body exceeded `--sample-max-bytes`.
    TooLarge,
    /// Queued as features only: the copy budget was exhausted.
    OverBudget,
}

impl SampleOutcome {
    pub const ALL: [SampleOutcome; 4] = [
        SampleOutcome::Accepted,
        SampleOutcome::Dropped,
        SampleOutcome::TooLarge,
        SampleOutcome::OverBudget,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SampleOutcome::Accepted => "accepted",
            SampleOutcome::Dropped => "dropped",
            SampleOutcome::TooLarge => "too_large",
            SampleOutcome::OverBudget => "over_budget",
        }
    }
}

/// The forward path's end of the hand-off. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct SampleSender {
    tx: mpsc::Sender<Box<Sample>>,
}

/// Opens the hand-off channel with room for `capacity` samples.
pub fn channel(capacity: usize) -> (SampleSender, mpsc::Receiver<Box<Sample>>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (SampleSender { tx }, rx)
}

impl SampleSender {
    /// Queues a sample without waiting; counts the outcome in `magma_samples_total`.
    pub fn send(&self, sample: Sample) -> SampleOutcome {
        let copies = [
            sample.request.copy_outcome(),
            sample.response.copy_outcome(),
        ];
        let outcome = if copies.contains(&Some(CopyOutcome::TooLarge)) {
            SampleOutcome::TooLarge
        } else if copies.contains(&Some(CopyOutcome::OverBudget)) {
            SampleOutcome::OverBudget
        } else {
            SampleOutcome::Accepted
        };
        let outcome = match self.tx.try_send(Box::new(sample)) {
            Ok(()) => outcome,
            Err(_) => SampleOutcome::Dropped,
        };
        metrics::counter!(telemetry::SAMPLES, "outcome" => outcome.as_str()).increment(1);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{RequestInfo, ResponseInfo};

    fn args(rate: f64, per_second: u32) -> SampleArgs {
        SampleArgs {
            sample_rate: rate,
            sample_max_per_second: per_second,
            ..SampleArgs::default()
        }
    }

    fn headers(value: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(v) = value {
            h.insert(SAMPLE_HEADER, http::HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn header_forces_or_skips() {
        let never = Sampler::new(&args(0.0, 0));
        assert!(never.decide(&headers(Some("always"))));
        assert!(!never.decide(&headers(None)));
        let all = Sampler::new(&args(1.0, 0));
        assert!(!all.decide(&headers(Some("NEVER"))));
        assert!(all.decide(&headers(Some("sometimes"))));
    }

    #[test]
    fn rate_is_respected_statistically() {
        let sampler = Sampler::new(&args(0.1, 0));
        let taken = (0..100_000)
            .filter(|_| sampler.decide(&headers(None)))
            .count();
        // Binomial(100000, 0.1): sd ~ 95, so +-1000 is more than 10 sd.
        assert!((9_000..11_000).contains(&taken), "{taken}");
    }

    #[test]
    fn per_second_cap() {
        let sampler = Sampler::new(&args(1.0, 5));
        let taken = (0..100).filter(|_| sampler.decide(&headers(None))).count();
        // All 100 draws fall within one or two seconds.
        assert!((5..=10).contains(&taken), "{taken}");
    }

    #[test]
    fn defaults_validate() {
        SampleArgs::default().validate().unwrap();
        let mut bad = SampleArgs::default();
        bad.sample_max_bytes = bad.sample_memory_bytes + 1;
        assert!(bad.validate().is_err());
        bad = SampleArgs {
            feature_hash_dim: 0,
            ..SampleArgs::default()
        };
        assert!(bad.validate().is_err());
    }

    fn sample() -> Sample {
        Sample {
            request_id: "r1".into(),
            received_at: SystemTime::now(),
            route: "/predict",
            model_type: "magma-8b".into(),
            status: 200,
            latency: Duration::from_millis(5),
            time_to_first_token: None,
            request: RequestInfo::unknown(),
            response: ResponseInfo::unknown(200),
        }
    }

    #[test]
    fn full_queue_drops() {
        let (tx, mut rx) = channel(1);
        assert_eq!(tx.send(sample()), SampleOutcome::Accepted);
        assert_eq!(tx.send(sample()), SampleOutcome::Dropped);
        assert!(rx.try_recv().is_ok());
        let sampler = Sampler::new(&SampleArgs {
            sample_max_bytes: 4,
            ..SampleArgs::default()
        });
        let mut big = sample();
        let mut copy = sampler.body_copy(None);
        copy.push(b"12345");
        big.request.copy = Some(copy.finish());
        assert_eq!(tx.send(big), SampleOutcome::TooLarge);
    }
}
