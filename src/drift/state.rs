//! The reference, persisted in `--state-dir` so a restart keeps it.
//!
//! Written atomically: the JSON goes to a temporary file in the same
//! directory, is flushed to disk, then renamed over the old file (rename is
//! atomic on POSIX file systems), so a crash leaves either the old or the new
//! reference, never half of one. A file that cannot be parsed or checked is
//! moved aside to `<name>.corrupt` and reported; the engine then starts a
//! fresh reference instead of failing.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::reference::check_samples;
use super::sample::StoredSample;

/// File name of the persisted reference inside the state directory.
pub const STATE_FILE: &str = "drift-reference.json";
/// Format version; a file with another version is treated as corrupt.
pub const STATE_VERSION: u32 = 1;

/// The persisted reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReference {
    pub version: u32,
    /// How the reference was formed: first_samples, file, window, upload.
    pub source: String,
    /// The `--drift-reference` file it came from, if any.
    #[serde(default)]
    pub reference_file: Option<String>,
    pub created_unix_seconds: f64,
    pub samples: Vec<StoredSample>,
}

#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode the reference: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What was found in the state directory.
#[derive(Debug)]
pub enum Loaded {
    Missing,
    Found(StoredReference),
    /// Unusable; the file was moved to `moved_to` (when that worked).
    Corrupt {
        path: PathBuf,
        reason: String,
        moved_to: Option<PathBuf>,
    },
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Writes `reference` to `dir` atomically.
pub fn save(dir: &Path, reference: &StoredReference) -> Result<(), StateError> {
    std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
        path: dir.display().to_string(),
        source,
    })?;
    let target = state_path(dir);
    let temporary = dir.join(format!(".{STATE_FILE}.tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec(reference)?;
    let write = |path: &Path| -> std::io::Result<()> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(path, &target)?;
        // Make the rename itself durable.
        if let Ok(directory) = std::fs::File::open(dir) {
            let _ = directory.sync_all();
        }
        Ok(())
    };
    write(&temporary).map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        StateError::Write {
            path: target.display().to_string(),
            source,
        }
    })
}

/// Reads the reference from `dir`; never fails, see `Loaded`.
pub fn load(dir: &Path) -> Loaded {
    let path = state_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(error) => {
            return Loaded::Corrupt {
                path,
                reason: format!("cannot read: {error}"),
                moved_to: None,
            }
        }
    };
    let problem = match serde_json::from_slice::<StoredReference>(&bytes) {
        Ok(stored) if stored.version != STATE_VERSION => {
            format!("version {} is not {STATE_VERSION}", stored.version)
        }
        Ok(stored) => match check_samples(&stored.samples) {
            Ok(()) => return Loaded::Found(stored),
            Err(reason) => reason,
        },
        Err(error) => format!("not a reference file: {error}"),
    };
    let aside = path.with_extension("json.corrupt");
    let moved_to = std::fs::rename(&path, &aside).ok().map(|_| aside);
    Loaded::Corrupt {
        path,
        reason: problem,
        moved_to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> StoredReference {
        StoredReference {
            version: STATE_VERSION,
            source: "first_samples".into(),
            reference_file: None,
            created_unix_seconds: 1.5,
            samples: vec![
                StoredSample {
                    input: vec![1.0, 2.0],
                    output: vec![0.5],
                    categorical: vec![("modality".into(), "image".into())],
                },
                StoredSample {
                    input: vec![3.0, 4.0],
                    output: vec![0.25],
                    categorical: vec![],
                },
            ],
        }
    }

    #[test]
    fn round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Loaded::Missing));
        save(dir.path(), &reference()).unwrap();
        match load(dir.path()) {
            Loaded::Found(stored) => assert_eq!(stored, reference()),
            other => panic!("{other:?}"),
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(STATE_FILE)]);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(state_path(dir.path()), b"{\"version\":1,\"samp").unwrap();
        match load(dir.path()) {
            Loaded::Corrupt {
                reason, moved_to, ..
            } => {
                assert!(reason.contains("not a reference file"), "{reason}");
                assert!(moved_to.unwrap().exists());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(load(dir.path()), Loaded::Missing));
        // Valid JSON with ragged samples is corrupt too.
        let mut ragged = reference();
        ragged.samples[1].input.push(9.0);
        save(dir.path(), &ragged).unwrap();
        assert!(matches!(load(dir.path()), Loaded::Corrupt { .. }));
    }
}
