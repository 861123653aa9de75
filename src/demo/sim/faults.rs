//! Faults the simulated server can be told to show: latency creep, a memory
//! leak, error bursts, degenerate output and hung requests.
//!
//! They are switched by flags at start and at run time over
//! `POST /control/faults` (a partial JSON object; absent fields keep their value).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The fault switches. Zero / false means off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Extra latency added per minute since creep was switched on, in seconds
    /// (before `--speed` scaling), up to `latency_creep_max_seconds`.
    pub latency_creep_seconds_per_minute: f64,
    /// Ceiling of the extra latency from creep, in seconds.
    pub latency_creep_max_seconds: f64,
    /// Bytes of resident memory leaked by every answered request.
    pub leak_bytes_per_request: u64,
    /// Share of requests answered 503 or 500 (half each), 0..1.
    pub error_rate: f64,
    /// Share of answers that degenerate into a repeated word, 0..1.
    pub degenerate_rate: f64,
    /// Share of requests that hang (no answer until `hang_seconds` pass), 0..1.
    pub hang_rate: f64,
    /// How long a hung request hangs, in seconds (not scaled by `--speed`).
    pub hang_seconds: f64,
}

/// A partial update of [`Faults`], as accepted by `POST /control/faults`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsUpdate {
    /// Switch every fault off first (the leaked memory is released too).
    #[serde(default)]
    pub clear: bool,
    pub latency_creep_seconds_per_minute: Option<f64>,
    pub latency_creep_max_seconds: Option<f64>,
    pub leak_bytes_per_request: Option<u64>,
    pub error_rate: Option<f64>,
    pub degenerate_rate: Option<f64>,
    pub hang_rate: Option<f64>,
    pub hang_seconds: Option<f64>,
}

/// Why a fault update was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange {
        field: &'static str,
        min: f64,
        max: f64,
        value: f64,
    },
}

pub const DEFAULT_CREEP_MAX_SECONDS: f64 = 6.0;
pub const DEFAULT_HANG_SECONDS: f64 = 120.0;
/// A hang never lasts longer than this, whatever the caller asks.
pub const MAX_HANG_SECONDS: f64 = 3600.0;
/// One leak step never exceeds this many bytes.
pub const MAX_LEAK_STEP_BYTES: u64 = 64 * 1024 * 1024;

impl Faults {
    /// Faults with the defaults of the ceilings filled in.
    pub fn none() -> Self {
        Self {
            latency_creep_max_seconds: DEFAULT_CREEP_MAX_SECONDS,
            hang_seconds: DEFAULT_HANG_SECONDS,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), FaultError> {
        let checks: [(&'static str, f64, f64, f64); 6] = [
            (
                "latency_creep_seconds_per_minute",
                self.latency_creep_seconds_per_minute,
                0.0,
                600.0,
            ),
            (
                "latency_creep_max_seconds",
                self.latency_creep_max_seconds,
                0.0,
                600.0,
            ),
            ("error_rate", self.error_rate, 0.0, 1.0),
            ("degenerate_rate", self.degenerate_rate, 0.0, 1.0),
            ("hang_rate", self.hang_rate, 0.0, 1.0),
            ("hang_seconds", self.hang_seconds, 0.0, MAX_HANG_SECONDS),
        ];
        for (field, value, min, max) in checks {
            if !(value.is_finite() && (min..=max).contains(&value)) {
                return Err(FaultError::OutOfRange {
                    field,
                    min,
                    max,
                    value,
                });
            }
        }
        if self.leak_bytes_per_request > MAX_LEAK_STEP_BYTES {
            return Err(FaultError::OutOfRange {
                field: "leak_bytes_per_request",
                min: 0.0,
                max: MAX_LEAK_STEP_BYTES as f64,
                value: self.leak_bytes_per_request as f64,
            });
        }
        Ok(())
    }

    /// Applies a partial update, returning the new value (not yet stored).
    pub fn updated(&self, update: &FaultsUpdate) -> Self {
        let mut next = if update.clear {
            Self::none()
        } else {
            self.clone()
        };
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(v) = update.$field { next.$field = v; } )* };
        }
        take!(
            latency_creep_seconds_per_minute,
            latency_creep_max_seconds,
            leak_bytes_per_request,
            error_rate,
            degenerate_rate,
            hang_rate,
            hang_seconds
        );
        next
    }

    pub fn any_active(&self) -> bool {
        self.latency_creep_seconds_per_minute > 0.0
            || self.leak_bytes_per_request > 0
            || self.error_rate > 0.0
            || self.degenerate_rate > 0.0
            || self.hang_rate > 0.0
    }
}

/// Memory held on purpose to imitate a leaking model server: chunks of bytes
/// that are written to (so they are resident, not only reserved), up to a cap.
#[derive(Debug, Default)]
pub struct Leak {
    chunks: Vec<Box<[u8]>>,
    bytes: u64,
}

impl Leak {
    /// Leaks `step` more bytes unless that would pass `cap`; returns the total held.
    pub fn grow(&mut self, step: u64, cap: u64) -> u64 {
        if step == 0 || self.bytes.saturating_add(step) > cap {
            return self.bytes;
        }
        let Ok(len) = usize::try_from(step) else {
            return self.bytes;
        };
        let mut chunk = vec![0u8; len].into_boxed_slice();
        // Touch every page with a non-zero byte so the kernel backs it.
        for (i, byte) in chunk.iter_mut().enumerate().step_by(4096) {
            *byte = (i / 4096) as u8 | 1;
        }
        self.chunks.push(chunk);
        self.bytes += step;
        self.bytes
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn release(&mut self) {
        self.chunks = Vec::new();
        self.bytes = 0;
    }
}

/// The live fault state shared by the request handlers and the control route.
#[derive(Debug)]
pub struct FaultState {
    inner: Mutex<Inner>,
    leak_cap_bytes: u64,
}

#[derive(Debug)]
struct Inner {
    faults: Faults,
    creep_since: Option<Instant>,
    leak: Leak,
}

impl FaultState {
    pub fn new(faults: Faults, leak_cap_bytes: u64) -> Self {
        let creep_since = (faults.latency_creep_seconds_per_minute > 0.0).then(Instant::now);
        Self {
            inner: Mutex::new(Inner {
                faults,
                creep_since,
                leak: Leak::default(),
            }),
            leak_cap_bytes,
        }
    }

    pub fn faults(&self) -> Faults {
        self.lock().map(|i| i.faults.clone()).unwrap_or_default()
    }

    /// Validates and stores an update; creep restarts its clock when switched on.
    pub fn apply(&self, update: &FaultsUpdate) -> Result<Faults, FaultError> {
        let Some(mut inner) = self.lock() else {
            return Ok(Faults::none());
        };
        let next = inner.faults.updated(update);
        next.validate()?;
        let creep_was_on = inner.faults.latency_creep_seconds_per_minute > 0.0;
        let creep_is_on = next.latency_creep_seconds_per_minute > 0.0;
        if creep_is_on && (!creep_was_on || update.clear) {
            inner.creep_since = Some(Instant::now());
        } else if !creep_is_on {
            inner.creep_since = None;
        }
        if update.clear || next.leak_bytes_per_request == 0 {
            inner.leak.release();
        }
        inner.faults = next.clone();
        Ok(next)
    }

    /// Extra latency from creep right now, in unscaled seconds.
    pub fn creep_seconds(&self) -> f64 {
        let Some(inner) = self.lock() else {
            return 0.0;
        };
        match inner.creep_since {
            Some(since) => {
                let minutes = since.elapsed().as_secs_f64() / 60.0;
                (minutes * inner.faults.latency_creep_seconds_per_minute)
                    .min(inner.faults.latency_creep_max_seconds)
            }
            None => 0.0,
        }
    }

    /// One request's share of the leak; returns the bytes now held.
    pub fn leak_step(&self) -> u64 {
        let cap = self.leak_cap_bytes;
        let Some(mut inner) = self.lock() else {
            return 0;
        };
        let step = inner.faults.leak_bytes_per_request;
        inner.leak.grow(step, cap)
    }

    pub fn leaked_bytes(&self) -> u64 {
        self.lock().map(|i| i.leak.bytes()).unwrap_or(0)
    }

    pub fn leak_cap_bytes(&self) -> u64 {
        self.leak_cap_bytes
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, Inner>> {
        // A poisoned lock only means a handler panicked mid-update; the data is plain.
        Some(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Parses a hang duration for display and sleeping.
pub fn hang_duration(faults: &Faults) -> Duration {
    Duration::from_secs_f64(faults.hang_seconds.clamp(0.0, MAX_HANG_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_update_keeps_other_fields() {
        let state = FaultState::new(Faults::none(), 1 << 20);
        state
            .apply(&FaultsUpdate {
                error_rate: Some(0.5),
                ..Default::default()
            })
            .unwrap();
        let next = state
            .apply(&FaultsUpdate {
                degenerate_rate: Some(1.0),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(next.error_rate, 0.5);
        assert_eq!(next.degenerate_rate, 1.0);
        let cleared = state
            .apply(&FaultsUpdate {
                clear: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(cleared, Faults::none());
    }

    #[test]
    fn rejects_out_of_range() {
        let state = FaultState::new(Faults::none(), 1 << 20);
        let err = state
            .apply(&FaultsUpdate {
                error_rate: Some(1.5),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(
            err,
            FaultError::OutOfRange {
                field: "error_rate",
                ..
            }
        ));
        assert_eq!(state.faults(), Faults::none());
    }

    #[test]
    fn leak_grows_to_the_cap_and_is_released() {
        let mut leak = Leak::default();
        assert_eq!(leak.grow(4096 * 3, 10_000_000), 12_288);
        assert_eq!(leak.grow(4096 * 3, 20_000), 12_288, "cap holds");
        assert_eq!(leak.grow(4096, 20_000), 16_384);
        leak.release();
        assert_eq!(leak.bytes(), 0);
    }
}
