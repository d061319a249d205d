//! rayon-core parity, thread start-up: `ThreadPoolBuilder::spawn_handler` with
//! `ThreadBuilder`, and `build_scoped`. Every wait has a watchdog; nothing asserts on time.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replicore::{BuildError, ThreadBuilder, ThreadPoolBuilder};

const WATCHDOG: Duration = Duration::from_secs(30);

fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("watchdog: {what} did not finish"),
    }
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < WATCHDOG, "watchdog: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn spawn_std(t: ThreadBuilder) -> std::io::Result<()> {
    let mut b = std::thread::Builder::new();
    if let Some(name) = t.name() {
        b = b.name(name.to_owned());
    }
    b.spawn(move || t.run())?;
    Ok(())
}

#[test]
fn spawn_handler_starts_every_worker_with_its_index_name_and_stack() {
    within("spawn_handler", || {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let pool = ThreadPoolBuilder::new()
            .num_threads(3)
            .lease(Duration::from_secs(2))
            .thread_name(|i| format!("parity-{i}"))
            .stack_size(2 << 20)
            .spawn_handler(move |t| {
                s.lock()
                    .unwrap()
                    .push((t.index(), t.name().map(str::to_owned), t.stack_size()));
                spawn_std(t)
            })
            .build()
            .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            (0..3)
                .map(|i| (i, Some(format!("parity-{i}")), Some(2 << 20)))
                .collect::<Vec<_>>()
        );
        let names = pool.broadcast(|_| std::thread::current().name().map(str::to_owned));
        assert_eq!(
            names,
            [
                Some("parity-0".into()),
                Some("parity-1".into()),
                Some("parity-2".into())
            ]
        );
        // Shutdown waits for custom-spawned threads to finish with the pool.
        let exited = Arc::new(AtomicUsize::new(0));
        let e = exited.clone();
        let pool2 = ThreadPoolBuilder::new()
            .num_threads(2)
            .lease(Duration::from_secs(2))
            .exit_handler(move |_| {
                e.fetch_add(1, Ordering::SeqCst);
            })
            .spawn_handler(spawn_std)
            .build()
            .unwrap();
        pool2.shutdown();
        assert_eq!(exited.load(Ordering::SeqCst), 2);
        pool.shutdown();
    });
}

#[test]
fn a_failing_or_panicking_spawn_handler_is_a_spawn_error() {
    within("spawn_handler errors", || {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let e = ThreadPoolBuilder::new()
            .num_threads(3)
            .spawn_handler(move |t| {
                if c.fetch_add(1, Ordering::SeqCst) == 1 {
                    return Err(std::io::Error::other("no thread for you"));
                }
                spawn_std(t)
            })
            .build()
            .unwrap_err();
        assert!(matches!(e, BuildError::Spawn { index: 1, .. }), "{e:?}");
        assert!(e.to_string().contains("no thread for you"), "{e}");

        let e = ThreadPoolBuilder::new()
            .num_threads(1)
            .spawn_handler(|_| panic!("handler boom"))
            .build()
            .unwrap_err();
        assert!(matches!(e, BuildError::Spawn { index: 0, .. }), "{e:?}");
        assert!(e.to_string().contains("handler boom"), "{e}");
    });
}

/// A worker blocked for many leases is taken over, and its replacement thread is started through
/// the user's spawn handler too.
#[test]
fn replacement_workers_go_through_the_spawn_handler() {
    within("replacement via handler", || {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let pool = ThreadPoolBuilder::new()
            .topology("numa:1 core:2 pu:1".parse().unwrap())
            .lease(Duration::from_millis(20))
            .spawn_handler(move |t| {
                c.fetch_add(1, Ordering::SeqCst);
                spawn_std(t)
            })
            .build()
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        pool.spawn(move || {
            let t0 = Instant::now();
            while !r.load(Ordering::SeqCst) && t0.elapsed() < WATCHDOG {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        wait_until("a replacement through the handler", || {
            calls.load(Ordering::SeqCst) >= 3
        });
        release.store(true, Ordering::SeqCst);
        assert!(pool.stats().recovery.takeovers >= 1, "{:?}", pool.stats());
        assert_eq!(pool.install(|| 1 + 1), 2);
        pool.shutdown();
    });
}

#[test]
fn build_scoped_borrows_runs_and_shuts_down() {
    within("build_scoped", || {
        let entered = AtomicUsize::new(0);
        let data = [1u64, 2, 3, 4];
        let total = ThreadPoolBuilder::new()
            .num_threads(2)
            .lease(Duration::from_secs(2))
            .build_scoped(
                |t| {
                    entered.fetch_add(1, Ordering::SeqCst);
                    t.run();
                },
                |pool| {
                    let (a, b) = pool.join(
                        || data[..2].iter().sum::<u64>(),
                        || data[2..].iter().sum::<u64>(),
                    );
                    a + b
                },
            )
            .unwrap();
        assert_eq!(total, 10);
        assert_eq!(entered.load(Ordering::SeqCst), 2);

        // A panic in `with_pool` comes out after the pool shut down (the scope could not end
        // otherwise, and this test would hit the watchdog).
        let r = catch_unwind(AssertUnwindSafe(|| {
            ThreadPoolBuilder::new()
                .num_threads(2)
                .build_scoped(|t| t.run(), |_| panic!("with_pool boom"))
        }));
        assert!(r.is_err());

        // A build error is returned, with no thread left behind.
        let e = ThreadPoolBuilder::new()
            .num_threads(5000)
            .build_scoped(|t| t.run(), |_| ())
            .unwrap_err();
        assert!(matches!(e, BuildError::TooManyThreads { .. }));
    });
}

#[test]
fn build_scoped_replacements_are_scoped_threads_too() {
    within("build_scoped takeover", || {
        let entered = AtomicUsize::new(0);
        let release = AtomicBool::new(false);
        ThreadPoolBuilder::new()
            .topology("numa:1 core:2 pu:1".parse().unwrap())
            .lease(Duration::from_millis(20))
            .build_scoped(
                |t| {
                    entered.fetch_add(1, Ordering::SeqCst);
                    t.run();
                },
                |pool| {
                    pool.spawn_broadcast(|_| ()); // warm both workers up
                    pool.scope(|s| {
                        s.spawn(|_| {
                            let t0 = Instant::now();
                            while !release.load(Ordering::SeqCst) && t0.elapsed() < WATCHDOG {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        });
                        wait_until("a scoped replacement", || {
                            entered.load(Ordering::SeqCst) >= 3
                        });
                        release.store(true, Ordering::SeqCst);
                    });
                },
            )
            .unwrap();
        assert!(entered.load(Ordering::SeqCst) >= 3);
    });
}
