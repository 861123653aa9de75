//! The shared handle between the drift engine (in the analysis worker) and
//! the admin server: the engine publishes snapshots, the admin server reads
//! them and leaves reference-replacement requests that the engine applies at
//! its next sample or poll.

use std::sync::{Arc, Mutex, MutexGuard};

use super::report::DriftSnapshot;
use super::sample::StoredSample;

/// A request to replace the reference.
#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceCommand {
    /// Use the current test window as the new reference.
    FromWindow,
    /// Use these (already checked) samples.
    Upload(Vec<StoredSample>),
}

#[derive(Debug, Default)]
struct Shared {
    snapshot: Mutex<DriftSnapshot>,
    command: Mutex<Option<ReferenceCommand>>,
}

/// Cheap to clone; one per reader.
#[derive(Debug, Clone, Default)]
pub struct DriftHandle {
    shared: Arc<Shared>,
}

/// Locks without panicking: a poisoned lock still holds consistent data here
/// (every writer replaces whole values).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DriftHandle {
    /// The latest published snapshot.
    pub fn snapshot(&self) -> DriftSnapshot {
        lock(&self.shared.snapshot).clone()
    }

    /// Queues a reference replacement (a newer request replaces an older
    /// one that was not applied yet).
    pub fn request_reference(&self, command: ReferenceCommand) {
        *lock(&self.shared.command) = Some(command);
    }

    pub(crate) fn take_command(&self) -> Option<ReferenceCommand> {
        lock(&self.shared.command).take()
    }

    pub(crate) fn update<F: FnOnce(&mut DriftSnapshot)>(&self, change: F) {
        change(&mut lock(&self.shared.snapshot));
    }
}
