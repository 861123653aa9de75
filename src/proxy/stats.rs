//! Plain counters behind `/api/status` (the Prometheus registry is for scraping;
//! these are cheap to read as JSON).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct RequestStats {
    pub total: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicI64,
    pub connections_open: AtomicI64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestStatsSnapshot {
    pub total: u64,
    pub errors: u64,
    pub in_flight: i64,
    pub connections_open: i64,
}

impl RequestStats {
    pub fn snapshot(&self) -> RequestStatsSnapshot {
        RequestStatsSnapshot {
            total: self.total.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            connections_open: self.connections_open.load(Ordering::Relaxed),
        }
    }
}
