//! The upstream model process: found by `--upstream-pid` or by name, read
//! from `/proc` every `--process-interval`, re-resolved when it restarts.
//!
//! A process is identified by its pid and its start time in clock ticks, so a
//! reused pid is not mistaken for the model. With a name, `/proc` is scanned
//! while the process is not known; among several matches the oldest wins
//! (the parent of a pre-forking server such as uvicorn with workers), and the
//! sidecar itself never matches.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use metrics::{counter, gauge};

use super::cgroup;
use super::procfs::{self, ProcessStats};
use super::snapshot::{unix_ms_now, CgroupReading, SharedResources, UpstreamSnapshot};
use super::stopper::Stopper;
use crate::telemetry as t;

/// How the model process is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Pid(u32),
    /// Matches `comm`, or an argument (or its file name) of the command line.
    Name(String),
}

/// Longest `comm` the kernel keeps (TASK_COMM_LEN - 1).
const COMM_LEN: usize = 15;

/// The process collector's state.
#[derive(Debug)]
pub struct UpstreamCollector {
    target: Target,
    proc_root: String,
    cgroup_root: String,
    current: Option<Current>,
    seen_before: bool,
    restarts: u64,
}

#[derive(Debug)]
struct Current {
    pid: u32,
    start_ticks: u64,
    cgroup: Option<PathBuf>,
}

impl UpstreamCollector {
    pub fn new(target: Target) -> Self {
        Self::with_roots(target, "/proc", cgroup::CGROUP_ROOT)
    }

    pub fn with_roots(target: Target, proc_root: &str, cgroup_root: &str) -> Self {
        Self {
            target,
            proc_root: proc_root.to_owned(),
            cgroup_root: cgroup_root.to_owned(),
            current: None,
            seen_before: false,
            restarts: 0,
        }
    }

    /// Reads the process once; returns the snapshot part and records metrics.
    pub fn poll(&mut self) -> UpstreamSnapshot {
        let stats = self.read_current().or_else(|| self.resolve());
        let mut snapshot = UpstreamSnapshot {
            enabled: true,
            restarts: self.restarts,
            last_poll_unix_ms: unix_ms_now(),
            ..UpstreamSnapshot::default()
        };
        gauge!(t::UPSTREAM_PROCESS_UP).set(if stats.is_some() { 1.0 } else { 0.0 });
        counter!(t::UPSTREAM_PROCESS_RESTARTS).absolute(self.restarts);
        let (Some(stats), Some(current)) = (stats, self.current.as_ref()) else {
            return snapshot;
        };
        record_stats(&stats);
        let cgroup = current.cgroup.as_deref().and_then(cgroup::read);
        if let Some(reading) = &cgroup {
            record_cgroup(reading);
        }
        snapshot.up = true;
        snapshot.pid = Some(current.pid);
        snapshot.start_ticks = Some(current.start_ticks);
        snapshot.resident_memory_bytes = Some(stats.resident_bytes);
        snapshot.virtual_memory_bytes = Some(stats.virtual_bytes);
        snapshot.cpu_seconds = Some(stats.cpu_seconds);
        snapshot.threads = Some(stats.threads);
        snapshot.open_fds = Some(stats.open_fds);
        snapshot.start_time_unix_seconds = Some(stats.start_time_unix_seconds);
        snapshot.cgroup = cgroup;
        snapshot
    }

    /// Reads the known process, if it is still the same one.
    fn read_current(&mut self) -> Option<ProcessStats> {
        let current = self.current.as_ref()?;
        match procfs::read_process_in(&self.proc_root, &current.pid.to_string()) {
            Ok(stats) if stats.start_ticks == current.start_ticks => Some(stats),
            _ => {
                tracing::warn!(
                    pid = current.pid,
                    "upstream process is gone (magma_upstream_process_up 0)"
                );
                self.current = None;
                None
            }
        }
    }

    /// Finds the process anew.
    fn resolve(&mut self) -> Option<ProcessStats> {
        let pid = match &self.target {
            Target::Pid(pid) => *pid,
            Target::Name(name) => find_by_name(&self.proc_root, name)?,
        };
        let stats = procfs::read_process_in(&self.proc_root, &pid.to_string()).ok()?;
        if self.seen_before {
            self.restarts += 1;
        }
        self.seen_before = true;
        let cgroup = cgroup::cgroup_dir(&self.proc_root, &self.cgroup_root, pid);
        tracing::info!(pid, cgroup = ?cgroup, "upstream process found");
        self.current = Some(Current {
            pid,
            start_ticks: stats.start_ticks,
            cgroup,
        });
        Some(stats)
    }
}

/// The oldest process (other than this one) whose name matches.
pub fn find_by_name(proc_root: &str, name: &str) -> Option<u32> {
    let me = std::process::id();
    let pids = procfs::list_pids(proc_root).ok()?;
    pids.into_iter()
        .filter(|pid| *pid != me)
        .filter(|pid| matches_name(proc_root, *pid, name))
        .filter_map(|pid| procfs::read_start_ticks(proc_root, pid).map(|start| (start, pid)))
        .min()
        .map(|(_, pid)| pid)
}

fn matches_name(proc_root: &str, pid: u32, name: &str) -> bool {
    let short: String = name.chars().take(COMM_LEN).collect();
    if procfs::read_comm(proc_root, pid).is_some_and(|comm| comm == short) {
        return true;
    }
    procfs::read_cmdline(proc_root, pid).is_some_and(|args| {
        args.iter().any(|arg| {
            arg == name
                || std::path::Path::new(arg)
                    .file_name()
                    .is_some_and(|f| f == name)
        })
    })
}

fn record_stats(stats: &ProcessStats) {
    gauge!(t::UPSTREAM_PROCESS_RESIDENT_MEMORY).set(stats.resident_bytes as f64);
    gauge!(t::UPSTREAM_PROCESS_VIRTUAL_MEMORY).set(stats.virtual_bytes as f64);
    counter!(t::UPSTREAM_PROCESS_CPU).absolute(stats.cpu_seconds as u64);
    gauge!(t::UPSTREAM_PROCESS_THREADS).set(stats.threads as f64);
    gauge!(t::UPSTREAM_PROCESS_OPEN_FDS).set(stats.open_fds as f64);
    gauge!(t::UPSTREAM_PROCESS_START_TIME).set(stats.start_time_unix_seconds);
}

fn record_cgroup(reading: &CgroupReading) {
    if let Some(bytes) = reading.memory_current_bytes {
        gauge!(t::UPSTREAM_CGROUP_MEMORY).set(bytes as f64);
    }
    if let Some(bytes) = reading.memory_max_bytes {
        gauge!(t::UPSTREAM_CGROUP_MEMORY_LIMIT).set(bytes as f64);
    }
    if let Some(seconds) = reading.cpu_usage_seconds {
        counter!(t::UPSTREAM_CGROUP_CPU).absolute(seconds as u64);
    }
    if let Some(seconds) = reading.cpu_throttled_seconds {
        counter!(t::UPSTREAM_CGROUP_CPU_THROTTLED).absolute(seconds as u64);
    }
}

/// Starts the collector thread.
pub fn spawn(
    target: Target,
    interval: Duration,
    shared: SharedResources,
    stopper: Stopper,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("process-collector".into())
        .spawn(move || {
            crate::background::lower_this_thread();
            let mut collector = UpstreamCollector::new(target);
            loop {
                let snapshot = collector.poll();
                if let Ok(mut shared) = shared.write() {
                    shared.upstream = snapshot;
                }
                if stopper.sleep(interval) {
                    break;
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_process_by_pid() {
        let me = std::process::id();
        let mut collector = UpstreamCollector::new(Target::Pid(me));
        let snapshot = collector.poll();
        assert!(snapshot.up);
        assert_eq!(snapshot.pid, Some(me));
        assert!(snapshot.resident_memory_bytes.unwrap() > 0);
        assert!(snapshot.threads.unwrap() >= 1);
    }

    #[test]
    fn a_vanished_process_is_down() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut collector = UpstreamCollector::new(Target::Pid(child.id()));
        assert!(collector.poll().up);
        child.kill().unwrap();
        child.wait().unwrap();
        let after = collector.poll();
        assert!(!after.up);
        assert!(after.enabled);
        assert_eq!(after.pid, None);
    }

    #[test]
    fn never_matches_itself() {
        let me = std::process::id();
        let comm = procfs::read_comm("/proc", me).unwrap();
        assert_ne!(find_by_name("/proc", &comm), Some(me));
    }
}
