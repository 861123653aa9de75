//! Background threads yield the CPU to the serving threads.
//!
//! The sidecar's analysis, drift and collector threads do work that can
//! wait: a sample analysed 10 ms later is as good, and a full queue drops
//! samples and counts them. On a CPU shared with the proxy's workers (a
//! sidecar limited to one CPU, or a busy node) the kernel would otherwise
//! give a woken background thread the CPU at once, preempting a worker in
//! the middle of a request: on one connection that showed as a p99 several
//! times the p50 (see the README's Performance section).
//!
//! So each background thread runs at the lowest priority of the normal
//! scheduling class, nice 19 (setpriority(2): on Linux, `PRIO_PROCESS` with
//! a thread id sets that thread alone). It still runs whenever the workers
//! leave CPU time, and gets a small share even under full load.

/// The nice value background threads run at.
pub const BACKGROUND_NICE: i32 = 19;

/// Lowers the calling thread to [`BACKGROUND_NICE`]. Raising one's own nice
/// value needs no privilege; a failure is logged and the thread runs on as
/// it is.
pub fn lower_this_thread() {
    if let Err(error) = set_this_thread_nice(BACKGROUND_NICE) {
        tracing::debug!(%error, "cannot lower the priority of a background thread");
    }
}

#[cfg(target_os = "linux")]
fn set_this_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid and setpriority take plain integers and touch no memory.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_this_thread_nice(_nice: i32) -> std::io::Result<()> {
    Ok(())
}

/// Runs `task` to completion on a thread of its own, at background priority,
/// with a single-threaded runtime: periodic work (rendering the whole
/// registry for the dashboard's time series and the anomaly engine takes
/// milliseconds) then never holds a serving worker. The thread ends with
/// the task.
pub fn spawn_runtime<F>(name: &str, task: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_this_thread();
            runtime.block_on(task);
        })
}

/// The calling thread's nice value (Linux: field 19 of /proc/thread-self/stat).
#[cfg(all(test, target_os = "linux"))]
fn this_thread_nice() -> i32 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The command name may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(16).unwrap().parse().unwrap()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = this_thread_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            this_thread_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, BACKGROUND_NICE);
        assert_eq!(
            this_thread_nice(),
            before,
            "the spawning thread keeps its priority"
        );
    }

    #[test]
    fn a_background_runtime_runs_its_task_at_background_priority() {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = spawn_runtime("test-background", async move {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            tx.send(this_thread_nice()).unwrap();
        })
        .unwrap();
        assert_eq!(rx.recv().unwrap(), BACKGROUND_NICE);
        thread.join().unwrap();
    }
}
