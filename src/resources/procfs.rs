//! Reading a process's counters from `/proc/<pid>` (Linux, proc(5)).

use std::fs;
use std::io;

/// Counters of one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    pub threads: u64,
    pub open_fds: u64,
    pub start_time_unix_seconds: f64,
}

/// Reads `/proc/<pid>/stat`, `/proc/<pid>/fd`; `pid` may be `self`.
pub fn read_process(pid: &str) -> io::Result<ProcessStats> {
    read_process_in("/proc", pid)
}

/// Same as [`read_process`] under another proc root (e.g. `/host/proc`).
pub fn read_process_in(proc_root: &str, pid: &str) -> io::Result<ProcessStats> {
    let stat = fs::read_to_string(format!("{proc_root}/{pid}/stat"))?;
    let mut stats = parse_stat(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparseable stat"))?;
    stats.open_fds = fs::read_dir(format!("{proc_root}/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    if let Some(boot) = boot_time_unix_seconds(proc_root) {
        stats.start_time_unix_seconds += boot;
    }
    Ok(stats)
}

/// Parses the fields of proc(5) `stat` this module needs. The start time is
/// left relative to boot; `read_process_in` adds the boot time.
fn parse_stat(stat: &str) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // Indexes below are proc(5) field numbers minus 3.
    let ticks = clock_ticks_per_second();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let threads: u64 = fields.get(17)?.parse().ok()?;
    let start_ticks: f64 = fields.get(19)?.parse().ok()?;
    let vsize: u64 = fields.get(20)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    Some(ProcessStats {
        resident_bytes: rss_pages * page_size(),
        virtual_bytes: vsize,
        cpu_seconds: (utime + stime) / ticks,
        threads,
        open_fds: 0,
        start_time_unix_seconds: start_ticks / ticks,
    })
}

fn boot_time_unix_seconds(proc_root: &str) -> Option<f64> {
    let text = fs::read_to_string(format!("{proc_root}/stat")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let stats = read_process("self").unwrap();
        assert!(stats.resident_bytes > 0);
        assert!(stats.threads >= 1);
        assert!(stats.open_fds >= 3);
        assert!(stats.start_time_unix_seconds > 1.0e9);
    }

    #[test]
    fn parses_names_with_spaces() {
        let line = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 123456 10 18446744073709551615";
        let stats = parse_stat(line).unwrap();
        assert_eq!(stats.threads, 7);
        assert_eq!(stats.virtual_bytes, 123456);
        assert_eq!(stats.resident_bytes, 10 * page_size());
    }
}
