//! The closed set of Magma tasks, as label values: the payload area's
//! classification of a request's prompt, shared here so quality metrics carry
//! the same `task` label.

pub use crate::payload::Task;
