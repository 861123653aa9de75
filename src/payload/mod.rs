//! Understanding of request and response payloads: formats, modality, Magma
//! task, response parsing and features. Scanners here run incrementally over
//! the chunks as they stream through the proxy.

pub mod json_scan;
pub mod kinds;
pub mod utf8;

pub use kinds::{FinishReason, Format, Modality, ResponseFormat, Task};
