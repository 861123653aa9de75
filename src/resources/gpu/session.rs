//! An initialised NVML library, dropped safely.
//!
//! nvml-wrapper 0.13's `Drop for Nvml` calls the generated `nvmlShutdown`
//! wrapper, which `expect`s the symbol: a library without `nvmlShutdown`
//! (an old or stripped driver, or a partial stub) makes the drop panic. A
//! panic inside a drop that runs while another panic unwinds aborts the whole
//! process, and even alone it would kill the collector thread in the middle of
//! shutdown. So the session checks the symbol first and, when it is missing,
//! forgets the `Nvml` instead of dropping it. Forgetting leaks one symbol
//! table and keeps the library mapped; the collector therefore never re-opens
//! such a library (see [`NvmlSession::can_reopen`]), so the leak happens at
//! most once per process.

use std::ffi::OsStr;
use std::mem::ManuallyDrop;

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

/// NVML plus a drop that cannot panic.
pub struct NvmlSession {
    nvml: ManuallyDrop<Nvml>,
}

impl NvmlSession {
    /// Loads NVML from `lib_path` (default `libnvidia-ml.so.1`) and initialises it.
    pub fn open(lib_path: Option<&OsStr>) -> Result<Self, NvmlError> {
        let mut builder = Nvml::builder();
        if let Some(path) = lib_path {
            builder.lib_path(path);
        }
        let nvml = builder.init()?;
        Ok(Self {
            nvml: ManuallyDrop::new(nvml),
        })
    }

    pub fn nvml(&self) -> &Nvml {
        &self.nvml
    }

    /// Whether dropping and opening again is safe (the library has `nvmlShutdown`).
    pub fn can_reopen(&self) -> bool {
        self.nvml.lib().nvmlShutdown.is_ok()
    }
}

impl Drop for NvmlSession {
    fn drop(&mut self) {
        if self.can_reopen() {
            // SAFETY: `nvml` is never used again after this drop.
            unsafe { ManuallyDrop::drop(&mut self.nvml) };
        } else {
            tracing::debug!("NVML library has no nvmlShutdown; leaving it loaded");
        }
    }
}

impl std::fmt::Debug for NvmlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSession").finish_non_exhaustive()
    }
}
