//! Understanding of request and response payloads: formats, modality, Magma
//! task, response parsing and features. Scanners here run incrementally over
//! the chunks as they stream through the proxy.

pub mod body_copy;
pub mod image_header;
pub mod json_scan;
pub mod kinds;
pub mod multipart;
pub mod request_json;
pub mod request_multipart;
pub mod request_tap;
pub mod task;
pub mod text_capture;
pub mod utf8;

#[cfg(test)]
mod request_tap_tests;

pub use body_copy::{BodyCopy, CopiedBody, CopyBudget, CopyOutcome};
pub use kinds::{FinishReason, Format, Modality, ResponseFormat, Task};
pub use request_tap::{RequestInfo, RequestTap};
pub use task::TaskClassifier;
