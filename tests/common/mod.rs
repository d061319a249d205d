//! Helpers shared by the integration tests: watchdogs that turn a hang into a failure, and an OS
//! thread counter.
//!
//! A hung pool keeps worker threads alive, and a panicking test that still owns a pool would
//! hang in the pool's `Drop`. So a watchdog that expires does not panic: it writes its message
//! (and any panic the watched body hit) straight to the process's stderr, which the test
//! harness does not capture, and exits the process with status 101.
#![allow(dead_code)] // each test file uses a subset

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Panics seen on threads running a watched body, as the panic hook printed them.
static BODY_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    /// Set on a watched body's thread: raised by the panic hook when that body panics.
    static IN_BODY: std::cell::RefCell<Option<Arc<AtomicBool>>> =
        const { std::cell::RefCell::new(None) };
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(flag) = IN_BODY.with(|b| b.borrow().clone()) {
                flag.store(true, Ordering::SeqCst);
                BODY_PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(info.to_string());
            }
            previous(info);
        }));
    });
}

/// Writes `msg` (and the watched bodies' panics) to the uncaptured stderr and exits with 101.
pub fn die(msg: &str) -> ! {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n*** {msg}");
    for p in BODY_PANICS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = writeln!(err, "*** a watched body panicked first: {p}");
    }
    let _ = writeln!(
        err,
        "*** exiting the test process (status 101): a hung pool thread would keep it alive"
    );
    let _ = err.flush();
    std::process::exit(101);
}

/// Runs `body` on its own thread and returns its result, re-raising its panic. If it has not
/// finished within `limit`, or it panicked and its unwinding (typically a pool's `Drop`) has
/// not finished 10 s later, the process exits with a message naming `what` (see [`die`]).
pub fn within<T, F>(limit: Duration, what: &str, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    install_hook();
    let (tx, rx) = std::sync::mpsc::channel();
    let panicked = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&panicked);
    let handle = std::thread::Builder::new()
        .name(format!("watched: {what}"))
        .spawn(move || {
            IN_BODY.with(|b| *b.borrow_mut() = Some(flag));
            let r = body();
            let _ = tx.send(r);
        })
        .expect("spawn the watched thread");
    let t0 = Instant::now();
    let mut panicked_at: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => {
                let _ = handle.join();
                return r;
            }
            Err(RecvTimeoutError::Disconnected) => match handle.join() {
                Err(payload) => std::panic::resume_unwind(payload),
                Ok(()) => unreachable!("the body sends its result before it returns"),
            },
            Err(RecvTimeoutError::Timeout) => {}
        }
        if panicked.load(Ordering::SeqCst) && panicked_at.is_none() {
            panicked_at = Some(Instant::now());
        }
        if panicked_at.is_some_and(|p| p.elapsed() > Duration::from_secs(10)) {
            die(&format!(
                "watchdog: {what}: the body panicked and did not finish unwinding within 10 s \
                 (a pool's drop hung)"
            ));
        }
        if t0.elapsed() > limit {
            die(&format!("watchdog: {what}: not done after {limit:?}"));
        }
    }
}

/// Polls `done` every millisecond until it holds; after `limit`, fails through [`die`] with
/// `what` and the text `state()` gives (say, the pool's stats).
pub fn wait_until(
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
    state: impl Fn() -> String,
) {
    let t0 = Instant::now();
    while !done() {
        if t0.elapsed() > limit {
            die(&format!(
                "watchdog: {what}: still not the case after {limit:?}; {}",
                state()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (bounded) for `flag` inside a task; returns whether it was seen. Tasks use it instead
/// of an unbounded spin so that a broken pool ends in a failed assertion, not a hang.
pub fn spin_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > limit {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// Like [`spin_until`], but sleeping 1 ms between looks (the waiting thread blocks).
pub fn sleep_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Busy for `d`: no sleep, no scheduling point.
pub fn compute_for(d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The number of OS threads of this process (`/proc/self/task` entries), or `None` where that
/// directory does not exist.
pub fn os_threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(|d| d.filter(|e| e.is_ok()).count())
}

/// One run counter per task.
pub fn counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

/// The indices of tasks that did not run exactly once, with their counts (at most 10 listed).
pub fn not_once(runs: &[AtomicUsize]) -> (usize, Vec<(usize, usize)>) {
    let bad: Vec<(usize, usize)> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.load(Ordering::SeqCst)))
        .filter(|&(_, n)| n != 1)
        .collect();
    let count = bad.len();
    (count, bad.into_iter().take(10).collect())
}
