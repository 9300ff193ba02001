//! Background work yields to the HTTP workers. The usage flush, the webhook worker and the
//! database's own threads (SQLite runs each connection on a thread of its own) share the
//! machine's cores with the workers answering Function; at the same priority, a flush that
//! lands while a worker is waking delays that worker's answers, and shows in the request tail.
//! So every thread of the process but the HTTP workers and their acceptor runs at a lower
//! priority (a higher nice value): they still get every idle cycle, and a busy machine serves
//! authorizations first. A thread keeps the priority of the one that made it, and the database
//! opens connections (threads) when it needs them, so the round repeats every minute.
//!
//! Only for the service run as a process (`tollbooth serve`): tests build the application in
//! a process that is not theirs to reprioritise.

use std::time::Duration;

use tokio::sync::watch;

use super::Ticker;

/// The nice value of background threads: a tenth of a worker's share of a contended core.
pub const BACKGROUND_NICE: i32 = 10;

/// Threads actix-web names for its HTTP workers and the thread that accepts connections.
const SERVING_THREADS: &str = "actix-server";

pub async fn run(stop: watch::Receiver<bool>) {
    let mut ticker = Ticker::every(Duration::from_secs(60), stop);
    while ticker.next().await {
        match lower_background_threads() {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                threads = n,
                nice = BACKGROUND_NICE,
                "Background threads lowered"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "Failed to lower the priority of background threads; they keep the workers'");
                // Not tried again: what failed once (a /proc without tasks) fails every time.
                while ticker.next().await {}
            }
        }
    }
}

/// Sets every thread of the process not serving HTTP to [`BACKGROUND_NICE`]; how many changed.
#[cfg(target_os = "linux")]
pub fn lower_background_threads() -> std::io::Result<usize> {
    use rustix::process::{Pid, getpriority_process, setpriority_process};
    let mut lowered = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?;
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        // A thread may end between the listing and here: nothing to lower then.
        let Ok(name) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        if name.starts_with(SERVING_THREADS) {
            continue;
        }
        match getpriority_process(Some(tid)) {
            Ok(BACKGROUND_NICE) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::SRCH) => continue,
            Err(e) => return Err(e.into()),
        }
        match setpriority_process(Some(tid), BACKGROUND_NICE) {
            Ok(()) => lowered += 1,
            Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(lowered)
}

#[cfg(not(target_os = "linux"))]
pub fn lower_background_threads() -> std::io::Result<usize> {
    Ok(0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rustix::process::{Pid, getpriority_process};
    use std::sync::mpsc;

    fn thread_named(name: &str) -> (Pid, mpsc::Sender<()>) {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                tid_tx.send(rustix::thread::gettid()).unwrap();
                let _ = done_rx.recv();
            })
            .unwrap();
        (tid_rx.recv().unwrap(), done_tx)
    }

    #[test]
    fn serving_threads_keep_their_priority_and_the_rest_yield() {
        let (worker, stop_worker) = thread_named("actix-server worker 0");
        let (flusher, stop_flusher) = thread_named("sqlx-sqlite-worker-1");
        assert!(lower_background_threads().unwrap() >= 1);
        assert_eq!(
            getpriority_process(Some(worker)).unwrap(),
            0,
            "an HTTP worker is not lowered"
        );
        assert_eq!(getpriority_process(Some(flusher)).unwrap(), BACKGROUND_NICE);
        drop((stop_worker, stop_flusher));
    }
}
