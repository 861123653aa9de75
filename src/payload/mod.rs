//! Understanding of request and response payloads: formats, modality, Magma
//! task, response parsing and features. Scanners here run incrementally over
//! the chunks as they stream through the proxy.

pub mod analysis;
pub mod body_copy;
pub mod features;
pub mod image_header;
pub mod json_scan;
pub mod kinds;
pub mod marks;
pub mod media;
pub mod media_type;
pub mod multipart;
pub mod number;
pub mod record;
pub mod redact;
pub mod request_json;
pub mod request_multipart;
pub mod request_tap;
pub mod response_json;
pub mod response_tap;
pub mod sample_log;
pub mod sse;
pub mod task;
pub mod text_capture;
pub mod utf8;
pub mod visual;
pub mod worker;

#[cfg(test)]
mod request_tap_tests;
#[cfg(test)]
mod response_tap_tests;

pub use analysis::{start_analysis, Analysis, StartError};
pub use body_copy::{BodyCopy, CopiedBody, CopyBudget, CopyOutcome};
pub use features::{feature_names, FeatureExtractor, Features};
pub use kinds::{FinishReason, Format, Modality, ResponseFormat, Task};
pub use record::PayloadMetrics;
pub use request_tap::{RequestInfo, RequestTap};
pub use response_tap::{ResponseInfo, ResponseTap};
pub use sample_log::{SampleRecord, SampleRing};
pub use task::TaskClassifier;
pub use worker::{spawn_analysis, AnalysisConfig, SampleHook};
