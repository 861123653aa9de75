//! Mapping NVML's process ids to the upstream model process.
//!
//! NVML reports pids as the host kernel sees them. Inside a pod the sidecar
//! lives in another PID namespace, so those numbers mean nothing there (or,
//! worse, name an unrelated process). Three cases:
//!
//! - the sidecar runs in the host PID namespace (a dev box, `hostPID: true`):
//!   its own `/proc/self/status` has a single `NSpid` entry and NVML pids are
//!   its pids;
//! - `--host-proc /host/proc` mounts the host's /proc: for a host pid `P`,
//!   `/host/proc/P/status` lists `NSpid: P ... p`, where the last entry `p`
//!   is the pid in the innermost namespace, the one shared with the model
//!   container under `shareProcessNamespace: true`. `p` alone is ambiguous
//!   (every pod has a pid 1), so the start time in clock ticks since boot, the
//!   same in every namespace, must match too;
//! - otherwise no mapping: only the per-GPU sum is exported, which equals the
//!   model's usage when the pod owns its GPUs exclusively.

use crate::resources::procfs;

/// How NVML pids relate to the pids the sidecar sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidView {
    SameNamespace,
    HostProc(String),
    Unmapped,
}

impl PidView {
    /// Decides from `--host-proc` and the sidecar's own namespace.
    pub fn detect(host_proc: Option<&str>) -> Self {
        if let Some(root) = host_proc {
            return PidView::HostProc(root.trim_end_matches('/').to_owned());
        }
        match procfs::read_nspid("/proc", "self") {
            Some(pids) if pids.len() == 1 => PidView::SameNamespace,
            _ => PidView::Unmapped,
        }
    }

    pub fn can_map(&self) -> bool {
        !matches!(self, PidView::Unmapped)
    }

    /// Is NVML's `host_pid` the upstream process `(pid, start_ticks)`?
    pub fn is_upstream(&self, host_pid: u32, upstream_pid: u32, upstream_start: u64) -> bool {
        match self {
            PidView::SameNamespace => host_pid == upstream_pid,
            PidView::HostProc(root) => {
                let inner = procfs::read_nspid(root, &host_pid.to_string())
                    .and_then(|pids| pids.last().copied());
                inner == Some(upstream_pid)
                    && procfs::read_start_ticks(root, host_pid) == Some(upstream_start)
            }
            PidView::Unmapped => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_proc_matches_namespace_pid_and_start_time() {
        // /proc itself stands in for a host /proc: our NSpid's last entry is
        // our own pid as we see it.
        let me = std::process::id();
        let start = procfs::read_start_ticks("/proc", me).unwrap();
        let view = PidView::HostProc("/proc/".into());
        assert!(view.is_upstream(me, me, start));
        assert!(!view.is_upstream(me, me, start + 1));
        assert!(!view.is_upstream(me, me + 1, start));
        assert!(!PidView::Unmapped.is_upstream(me, me, start));
    }
}
