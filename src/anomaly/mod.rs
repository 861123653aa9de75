//! Anomaly detectors over metric series and root-cause hints.
