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
    /// Start time in clock ticks since boot (proc(5) field 22): with the pid,
    /// it identifies one process even after the pid is reused.
    pub start_ticks: u64,
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
    let start_ticks: u64 = fields.get(19)?.parse().ok()?;
    let vsize: u64 = fields.get(20)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    Some(ProcessStats {
        resident_bytes: rss_pages * page_size(),
        virtual_bytes: vsize,
        cpu_seconds: (utime + stime) / ticks,
        threads,
        open_fds: 0,
        start_time_unix_seconds: start_ticks as f64 / ticks,
        start_ticks,
    })
}

/// Reads only the start time of `pid` in clock ticks since boot (cheaper than
/// [`read_process_in`]: one small file).
pub fn read_start_ticks(proc_root: &str, pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("{proc_root}/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|s| s.start_ticks)
}

/// The `NSpid` line of `/proc/<pid>/status`: the pid in every PID namespace
/// the process is in, outermost first (Linux >= 4.1). One entry means the
/// process lives in the namespace of that proc mount.
pub fn read_nspid(proc_root: &str, pid: &str) -> Option<Vec<u32>> {
    let status = fs::read_to_string(format!("{proc_root}/{pid}/status")).ok()?;
    parse_nspid(&status)
}

fn parse_nspid(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    let pids: Option<Vec<u32>> = line
        .split_ascii_whitespace()
        .map(|p| p.parse().ok())
        .collect();
    pids.filter(|p| !p.is_empty())
}

/// The command name (`comm`, at most 15 bytes) of `pid`.
pub fn read_comm(proc_root: &str, pid: u32) -> Option<String> {
    let comm = fs::read_to_string(format!("{proc_root}/{pid}/comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_owned())
}

/// Most bytes of a command line read; the name to match is near the front.
const CMDLINE_CAP: u64 = 4096;

/// The arguments of `pid` (first 4 KiB of `/proc/<pid>/cmdline`).
pub fn read_cmdline(proc_root: &str, pid: u32) -> Option<Vec<String>> {
    use std::io::Read;
    let file = fs::File::open(format!("{proc_root}/{pid}/cmdline")).ok()?;
    let mut bytes = Vec::new();
    file.take(CMDLINE_CAP).read_to_end(&mut bytes).ok()?;
    Some(
        bytes
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Numeric entries of a proc root: every visible process id.
pub fn list_pids(proc_root: &str) -> io::Result<Vec<u32>> {
    Ok(fs::read_dir(proc_root)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect())
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
        assert_eq!(stats.start_ticks, 1000);
    }

    #[test]
    fn parses_nspid() {
        let status = "Name:\tpython\nNSpid:\t48213\t7\nPPid:\t1\n";
        assert_eq!(parse_nspid(status), Some(vec![48213, 7]));
        assert_eq!(parse_nspid("Name:\tx\n"), None);
    }

    #[test]
    fn reads_own_identity() {
        let me = std::process::id();
        let pids = list_pids("/proc").unwrap();
        assert!(pids.contains(&me));
        assert!(read_start_ticks("/proc", me).is_some());
        assert!(!read_comm("/proc", me).unwrap().is_empty());
        assert!(!read_cmdline("/proc", me).unwrap().is_empty());
        assert!(!read_nspid("/proc", "self").unwrap().is_empty());
    }
}
