//! Output quality checks, user feedback and ground-truth scoring.
