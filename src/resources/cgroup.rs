//! The upstream process's cgroup v2 counters (`memory.current`, `memory.max`,
//! `cpu.stat`), read when the cgroup directory is reachable.
//!
//! `/proc/<pid>/cgroup` names the cgroup relative to the reader's cgroup
//! namespace root. On a dev box or a node that path lies under
//! `/sys/fs/cgroup`; from a sidecar container the model container's cgroup
//! is usually outside the namespace (the path starts with `/..`) and is not
//! mounted, so nothing is read and the metrics stay absent.

use std::fs;
use std::path::PathBuf;

use crate::resources::snapshot::CgroupReading;

/// Where the cgroup v2 hierarchy is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup directory of `pid`, if it is reachable under `cgroup_root`.
pub fn cgroup_dir(proc_root: &str, cgroup_root: &str, pid: u32) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("{proc_root}/{pid}/cgroup")).ok()?;
    // cgroup v2 has exactly one line, `0::<path>`.
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    if path.split('/').any(|part| part == "..") {
        return None;
    }
    let dir = PathBuf::from(cgroup_root).join(path.trim_start_matches('/'));
    dir.join("memory.current").exists().then_some(dir)
}

/// Reads the counters of a cgroup directory; `None` if nothing was readable.
pub fn read(dir: &std::path::Path) -> Option<CgroupReading> {
    let number = |file: &str| -> Option<u64> {
        fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    };
    let cpu = fs::read_to_string(dir.join("cpu.stat")).ok();
    let cpu_field =
        |name: &str| -> Option<f64> { cpu.as_deref().and_then(|text| parse_cpu_stat(text, name)) };
    let reading = CgroupReading {
        memory_current_bytes: number("memory.current"),
        memory_max_bytes: number("memory.max"),
        cpu_usage_seconds: cpu_field("usage_usec"),
        cpu_throttled_seconds: cpu_field("throttled_usec"),
    };
    (reading != CgroupReading::default()).then_some(reading)
}

/// A `cpu.stat` field in microseconds, as seconds.
fn parse_cpu_stat(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.trim().parse::<u64>().ok())
        .map(|usec| usec as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_cgroup_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("memory.current"), "1048576\n").unwrap();
        fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        fs::write(
            dir.path().join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\nthrottled_usec 125000\n",
        )
        .unwrap();
        let reading = read(dir.path()).unwrap();
        assert_eq!(reading.memory_current_bytes, Some(1_048_576));
        assert_eq!(reading.memory_max_bytes, None);
        assert_eq!(reading.cpu_usage_seconds, Some(2.5));
        assert_eq!(reading.cpu_throttled_seconds, Some(0.125));
    }

    #[test]
    fn paths_outside_the_namespace_are_not_followed() {
        let proc_root = tempfile::tempdir().unwrap();
        let pid_dir = proc_root.path().join("7");
        fs::create_dir(&pid_dir).unwrap();
        fs::write(pid_dir.join("cgroup"), "0::/../other.scope\n").unwrap();
        let root = proc_root.path().to_str().unwrap();
        assert_eq!(cgroup_dir(root, root, 7), None);
    }
}
