//! rayon-core parity: one or more tests per item, written from rayon-core's
//! documented behaviour. Every wait has a watchdog; no test asserts on elapsed time. Pools that
//! must not be taken over during a test use a long lease, so a descheduled worker on a busy
//! machine is not fenced mid-test.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replicore::{BuildError, ThreadPool, Yield};

const WATCHDOG: Duration = Duration::from_secs(30);

/// A pool of `n` workers with a lease long enough that no test here sees a takeover.
fn pool(n: usize) -> ThreadPool {
    ThreadPool::builder()
        .num_threads(n)
        .lease(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// Runs `f` on its own thread and fails the test if it does not finish within the watchdog.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("watchdog: {what} did not finish"),
    }
}

fn recv<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(WATCHDOG)
        .unwrap_or_else(|_| panic!("watchdog: {what}"))
}

/// Spins (yielding the OS thread, not the pool) until `flag` is set, or panics at the watchdog.
fn wait_flag(flag: &AtomicBool, what: &str) {
    let t0 = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        assert!(t0.elapsed() < WATCHDOG, "watchdog: {what}");
        std::thread::yield_now();
    }
}

// ---- broadcast / spawn_broadcast -------------------------------------------------------------

#[test]
fn free_broadcast_runs_once_per_worker_of_the_current_pool() {
    within("broadcast", || {
        let p = pool(3);
        let got = p.install(|| replicore::broadcast(|ctx| (ctx.index(), ctx.num_threads())));
        assert_eq!(got, vec![(0, 3), (1, 3), (2, 3)]);
        // Each call ran on the worker it names.
        let idx = p.install(|| replicore::broadcast(|_| replicore::current_thread_index()));
        assert_eq!(idx, vec![Some(0), Some(1), Some(2)]);
        // Outside every pool: the global pool, once per worker.
        let n = replicore::current_num_threads();
        assert_eq!(
            replicore::broadcast(|ctx| ctx.index()),
            (0..n).collect::<Vec<_>>()
        );
    });
}

#[test]
fn broadcast_reraises_a_panic_after_every_call_ran() {
    within("broadcast panic", || {
        let p = pool(2);
        let calls = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            p.install(|| {
                replicore::broadcast(|ctx| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if ctx.index() == 1 {
                        panic!("broadcast boom");
                    }
                })
            })
        }));
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn spawn_broadcast_reaches_every_worker_without_waiting() {
    within("spawn_broadcast", || {
        let p = pool(2);
        let (tx, rx) = channel();
        let tx = Mutex::new(tx);
        p.install(|| {
            replicore::spawn_broadcast(move |ctx| {
                tx.lock().unwrap().send(ctx.index()).unwrap();
            })
        });
        let mut got = vec![
            recv(&rx, "free spawn_broadcast"),
            recv(&rx, "free spawn_broadcast"),
        ];
        got.sort();
        assert_eq!(got, [0, 1]);

        // The method, called from outside the pool, does not wait for the calls.
        let gate = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let tx = Mutex::new(tx);
        let g = gate.clone();
        p.spawn_broadcast(move |ctx| {
            wait_flag(&g, "spawn_broadcast gate");
            tx.lock().unwrap().send(ctx.index()).unwrap();
        });
        gate.store(true, Ordering::SeqCst); // only now can any call finish
        let mut got = vec![
            recv(&rx, "method spawn_broadcast"),
            recv(&rx, "method spawn_broadcast"),
        ];
        got.sort();
        assert_eq!(got, [0, 1]);
    });
}

#[test]
fn spawn_broadcast_panics_go_to_the_panic_handler() {
    within("spawn_broadcast panic", || {
        let (tx, rx) = channel::<String>();
        let tx = Mutex::new(tx);
        let p = ThreadPool::builder()
            .num_threads(2)
            .lease(Duration::from_secs(2))
            .panic_handler(move |payload| {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_default();
                tx.lock().unwrap().send(msg).unwrap();
            })
            .build()
            .unwrap();
        p.spawn_broadcast(|ctx| panic!("call {}", ctx.index()));
        let mut got = vec![recv(&rx, "handler"), recv(&rx, "handler")];
        got.sort();
        assert_eq!(got, ["call 0", "call 1"]);
        // The workers survived.
        assert_eq!(p.install(|| 5), 5);
    });
}

#[test]
fn scope_spawn_broadcast_is_waited_for_and_reraises() {
    within("Scope::spawn_broadcast", || {
        let p = pool(2);
        let seen = Mutex::new(Vec::new());
        p.scope(|s| {
            s.spawn_broadcast(|s, ctx| {
                seen.lock().unwrap().push(ctx.index());
                // The body gets the scope and may spawn into it.
                s.spawn(|_| ());
            });
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, [0, 1]);

        let r = catch_unwind(AssertUnwindSafe(|| {
            p.scope(|s| s.spawn_broadcast(|_, ctx| assert_ne!(ctx.index(), 0, "index 0 panics")))
        }));
        assert!(r.is_err(), "the scope re-raises a broadcast call's panic");
    });
}

// ---- join_context ----------------------------------------------------------------------------

#[test]
fn join_context_reports_migration() {
    within("join_context", || {
        // Outside every pool both closures are sent to the global pool.
        let (a, b) = replicore::join_context(|c| c.migrated(), |c| c.migrated());
        assert!(a && b);

        // One worker: nobody can steal B, so it is popped back and runs here.
        let p = pool(1);
        let (a, b) = p.install(|| replicore::join_context(|c| c.migrated(), |c| c.migrated()));
        assert!(!a && !b);

        // Two workers, and B (which replicore runs first, on the calling worker, where rayon
        // runs A) waits until A has started: A can only have been stolen.
        let p = pool(2);
        let a_started = AtomicBool::new(false);
        let (a, b) = p.install(|| {
            replicore::join_context(
                |c| {
                    a_started.store(true, Ordering::SeqCst);
                    (c.migrated(), replicore::current_thread_index())
                },
                |c| {
                    wait_flag(&a_started, "A stolen");
                    c.migrated()
                },
            )
        });
        assert!(!b);
        assert!(a.0, "a stolen A is migrated");
        assert!(a.1.is_some());
    });
}

// ---- FIFO ------------------------------------------------------------------------------------

#[test]
fn spawn_fifo_runs_in_spawn_order_where_spawn_is_lifo() {
    within("spawn_fifo order", || {
        let p = pool(1);
        let (tx, rx) = channel();
        p.install(|| {
            for i in 0..8 {
                let tx = tx.clone();
                replicore::spawn_fifo(move || tx.send(i).unwrap());
            }
        });
        let got: Vec<i32> = (0..8).map(|_| recv(&rx, "spawn_fifo")).collect();
        assert_eq!(got, (0..8).collect::<Vec<_>>());

        // The same with the method; and plain `spawn` for contrast (LIFO on its worker).
        let (tx, rx) = channel();
        p.install(|| {
            for i in 0..4 {
                let tx = tx.clone();
                p.spawn_fifo(move || tx.send(i).unwrap());
            }
        });
        let got: Vec<i32> = (0..4)
            .map(|_| recv(&rx, "ThreadPool::spawn_fifo"))
            .collect();
        assert_eq!(got, [0, 1, 2, 3]);
        let (tx, rx) = channel();
        p.install(|| {
            for i in 0..4 {
                let tx = tx.clone();
                replicore::spawn(move || tx.send(i).unwrap());
            }
        });
        let got: Vec<i32> = (0..4).map(|_| recv(&rx, "spawn")).collect();
        assert_eq!(got, [3, 2, 1, 0]);
    });
}

#[test]
fn spawn_fifo_panic_goes_to_the_handler() {
    within("spawn_fifo panic", || {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let p = ThreadPool::builder()
            .num_threads(1)
            .lease(Duration::from_secs(2))
            .panic_handler(move |_| {
                h.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        p.install(|| replicore::spawn_fifo(|| panic!("fifo boom")));
        p.spawn_fifo(|| panic!("fifo boom 2"));
        p.shutdown();
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    });
}

/// With several workers, each worker sees the FIFO tasks of one spawner start in spawn order.
#[test]
fn fifo_tasks_start_in_order_as_seen_by_every_worker() {
    within("fifo order, 2 workers", || {
        let p = pool(2);
        for _ in 0..20 {
            let starts: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
            p.scope_fifo(|s| {
                for i in 0..64 {
                    let starts = &starts;
                    s.spawn_fifo(move |_| {
                        let w = replicore::current_thread_index().unwrap();
                        starts.lock().unwrap().push((w, i));
                    });
                }
            });
            let starts = starts.into_inner().unwrap();
            assert_eq!(starts.len(), 64);
            for w in 0..2 {
                let mine: Vec<usize> = starts.iter().filter(|s| s.0 == w).map(|s| s.1).collect();
                assert!(mine.windows(2).all(|x| x[0] < x[1]), "worker {w}: {mine:?}");
            }
        }
    });
}

#[test]
fn scope_fifo_follows_rayons_documented_example() {
    within("scope_fifo example", || {
        // One worker, the nesting of rayon's `scope_fifo` documentation: s.1 before s.2, and
        // t.1 before t.2.
        let p = pool(1);
        let log = Mutex::new(Vec::new());
        let push = |what: &'static str| log.lock().unwrap().push(what);
        p.install(|| {
            replicore::scope_fifo(|s| {
                s.spawn_fifo(|s| {
                    push("s.1");
                    s.spawn_fifo(|_| {
                        push("s.1.1");
                        replicore::scope_fifo(|t| {
                            t.spawn_fifo(|_| push("t.1"));
                            t.spawn_fifo(|_| push("t.2"));
                        });
                    });
                });
                s.spawn_fifo(|_| push("s.2"));
            })
        });
        let log = log.into_inner().unwrap();
        let pos = |x| log.iter().position(|y| *y == x).unwrap();
        assert_eq!(log.len(), 5, "{log:?}");
        assert!(pos("s.1") < pos("s.2"), "{log:?}");
        assert!(pos("t.1") < pos("t.2"), "{log:?}");
        assert!(pos("s.1") < pos("s.1.1"), "{log:?}");
    });
}

#[test]
fn scope_fifo_borrows_and_reraises_after_all_tasks() {
    within("scope_fifo panic", || {
        let p = pool(2);
        let mut v = vec![0; 16];
        p.scope_fifo(|s| {
            for (i, x) in v.iter_mut().enumerate() {
                s.spawn_fifo(move |_| *x = i * 2);
            }
        });
        assert_eq!(v, (0..16).map(|i| i * 2).collect::<Vec<_>>());
        let ran = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            replicore::scope_fifo(|s| {
                s.spawn_fifo(|_| panic!("fifo child"));
                for _ in 0..8 {
                    s.spawn_fifo(|_| {
                        ran.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        }));
        assert!(r.is_err());
        assert_eq!(
            ran.load(Ordering::SeqCst),
            8,
            "siblings finished before the re-raise"
        );
    });
}

// ---- in-place scopes -------------------------------------------------------------------------

#[test]
fn in_place_scope_runs_here_and_sends_tasks_to_the_pool() {
    within("in_place_scope", || {
        // Outside every pool: `op` runs on this thread (not Send data is fine), tasks on the
        // global pool, and the scope waits for them.
        let here = std::thread::current().id();
        let local = Rc::new(3);
        let mut out = None;
        let slot = &mut out;
        replicore::in_place_scope(|s| {
            assert_eq!(std::thread::current().id(), here);
            let v = *local;
            s.spawn(move |_| *slot = Some((v, replicore::current_thread_index().is_some())));
        });
        assert_eq!(out, Some((3, true)));

        // The method: tasks go to that pool, even when called from another pool's worker.
        let p = pool(2);
        let other = pool(1);
        let idx = other.install(|| {
            let mut idx = None;
            p.in_place_scope(|s| s.spawn(|_| idx = p.current_thread_index()));
            idx
        });
        assert!(idx.unwrap() < 2);

        // A child's panic is re-raised once all children finished.
        let done = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            p.in_place_scope(|s| {
                s.spawn(|_| panic!("in-place child"));
                s.spawn(|_| {
                    done.fetch_add(1, Ordering::SeqCst);
                });
            })
        }));
        assert!(r.is_err());
        assert_eq!(done.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn in_place_scope_fifo_keeps_fifo_order_on_a_worker() {
    within("in_place_scope_fifo", || {
        let p = pool(1);
        let order = p.install(|| {
            let order = Mutex::new(Vec::new());
            replicore::in_place_scope_fifo(|s| {
                for i in 0..6 {
                    let order = &order;
                    s.spawn_fifo(move |_| order.lock().unwrap().push(i));
                }
            });
            order.into_inner().unwrap()
        });
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);

        // The method from outside: everything runs, on the pool.
        let hits = AtomicUsize::new(0);
        p.in_place_scope_fifo(|s| {
            for _ in 0..10 {
                s.spawn_fifo(|_| {
                    assert!(p.current_thread_index().is_some());
                    hits.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(hits.load(Ordering::SeqCst), 10);
    });
}

// ---- thread queries and yields ---------------------------------------------------------------

#[test]
fn current_and_max_num_threads() {
    within("num threads", || {
        let p = pool(3);
        assert_eq!(p.install(replicore::current_num_threads), 3);
        assert!(replicore::current_num_threads() >= 1);
        assert_eq!(replicore::max_num_threads(), replicore::MAX_THREADS);
        let e = ThreadPool::builder()
            .num_threads(replicore::max_num_threads() + 1)
            .build()
            .unwrap_err();
        assert!(matches!(e, BuildError::TooManyThreads { .. }));
    });
}

#[test]
fn thread_pool_current_thread_index_is_per_pool() {
    within("current_thread_index", || {
        let p = pool(2);
        let other = pool(1);
        assert_eq!(p.current_thread_index(), None);
        let mut seen = p.broadcast(|_| p.current_thread_index());
        seen.sort();
        assert_eq!(seen, [Some(0), Some(1)]);
        assert_eq!(other.install(|| p.current_thread_index()), None);
    });
}

#[test]
fn current_thread_has_pending_tasks_sees_the_own_deque() {
    within("pending tasks", || {
        assert_eq!(replicore::current_thread_has_pending_tasks(), None);
        let p = pool(1);
        assert_eq!(p.current_thread_has_pending_tasks(), None);
        let (before, after, method) = p.install(|| {
            let before = replicore::current_thread_has_pending_tasks();
            let (after, method) = replicore::scope(|s| {
                s.spawn(|_| ());
                (
                    replicore::current_thread_has_pending_tasks(),
                    p.current_thread_has_pending_tasks(),
                )
            });
            (before, after, method)
        });
        assert_eq!(before, Some(false));
        assert_eq!(after, Some(true));
        assert_eq!(method, Some(true));
    });
}

#[test]
fn yield_local_runs_own_work_but_never_steals_or_takes_injected_work() {
    within("yield_local", || {
        assert_eq!(replicore::yield_local(), None);
        let p = Arc::new(pool(1));
        assert_eq!(p.yield_local(), None);
        assert_eq!(p.yield_now(), None);
        let q = p.clone();
        p.install(move || {
            // Own deque: found.
            let ran = AtomicBool::new(false);
            replicore::scope(|s| {
                s.spawn(|_| ran.store(true, Ordering::SeqCst));
                assert_eq!(q.yield_local(), Some(Yield::Executed));
                assert!(ran.load(Ordering::SeqCst));
                assert_eq!(replicore::yield_local(), Some(Yield::Idle));
            });
            // Injected from another thread: yield_local leaves it, yield_now takes it.
            let injected = Arc::new(AtomicBool::new(false));
            let i = injected.clone();
            let q2 = q.clone();
            std::thread::spawn(move || q2.spawn(move || i.store(true, Ordering::SeqCst)))
                .join()
                .unwrap();
            assert_eq!(replicore::yield_local(), Some(Yield::Idle));
            assert!(!injected.load(Ordering::SeqCst));
            assert_eq!(q.yield_now(), Some(Yield::Executed));
            assert!(injected.load(Ordering::SeqCst));
        });
    });
}

#[test]
fn thread_pool_yields_are_none_on_another_pools_worker() {
    within("yield on other pool", || {
        let p = pool(1);
        let other = pool(1);
        assert_eq!(
            other.install(|| (p.yield_now(), p.yield_local())),
            (None, None)
        );
        assert_eq!(p.install(|| p.yield_now()), Some(Yield::Idle));
    });
}

// ---- Debug -----------------------------------------------------------------------------------

#[test]
fn scopes_implement_debug() {
    within("Debug", || {
        let p = pool(2);
        let text = p.scope(|s| format!("{s:?}"));
        assert!(text.starts_with("Scope"), "{text}");
        assert!(text.contains("num_threads: 2"), "{text}");
        let text = p.scope_fifo(|s| format!("{s:?}"));
        assert!(text.starts_with("ScopeFifo"), "{text}");
    });
}

// ---- builder ---------------------------------------------------------------------------------

#[test]
fn num_threads_zero_means_automatic() {
    within("num_threads(0)", || {
        let topo: replicore::Topology = "numa:1 core:3 pu:1".parse().unwrap();
        let p = ThreadPool::builder()
            .topology(topo)
            .num_threads(0)
            .build()
            .unwrap();
        // Automatic is one worker per CPU of the topology (REPLICORE_NUM_THREADS is not set
        // in this test binary; `rayon_parity_global.rs` covers it).
        assert_eq!(p.current_num_threads(), 3);
    });
}

#[test]
fn a_panicking_thread_name_is_a_typed_error_and_starts_nothing() {
    within("thread_name panic", || {
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let e = ThreadPool::builder()
            .num_threads(3)
            .thread_name(|i| {
                assert!(i != 2, "no name for worker {i}");
                format!("ok-{i}")
            })
            .start_handler(move |_| {
                s.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap_err();
        match &e {
            BuildError::ThreadName { index, message } => {
                assert_eq!(*index, 2);
                assert!(message.contains("no name for worker 2"), "{message}");
            }
            other => panic!("wrong error: {other:?}"),
        }
        assert!(e.to_string().contains("worker 2"), "{e}");
        // No thread was started, so no start handler ran (give one a moment to show up).
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(started.load(Ordering::SeqCst), 0);
    });
}

// ---- takeover still holds for FIFO and broadcast jobs ------------------------------------------

/// A FIFO spawner whose worker blocks for ten leases while another worker hogs its CPU (so no
/// idle neighbour can steal): the queued FIFO tasks still run, exactly once, while the spawner
/// is blocked, through a takeover; each thread that ran some saw them in spawn order.
#[test]
fn fifo_tasks_of_a_blocked_worker_are_taken_over() {
    const QUEUED: usize = 12;
    within("fifo takeover", || {
        let lease = Duration::from_millis(20);
        let p = ThreadPool::builder()
            .topology("numa:1 core:2 pu:1".parse().unwrap())
            .replication_factor(1)
            .lease(lease)
            .build()
            .unwrap();
        let runs: Arc<Vec<AtomicUsize>> =
            Arc::new((0..QUEUED).map(|_| AtomicUsize::new(0)).collect());
        let order = Arc::new(Mutex::new(Vec::new()));
        let hog_running = Arc::new(AtomicBool::new(false));
        let sleeper_done = Arc::new(AtomicBool::new(false));
        let early = Arc::new(AtomicUsize::new(0));
        {
            let (hog_running, runs) = (hog_running.clone(), runs.clone());
            p.spawn(move || {
                hog_running.store(true, Ordering::SeqCst);
                let t0 = Instant::now();
                while runs.iter().any(|r| r.load(Ordering::SeqCst) == 0) && t0.elapsed() < WATCHDOG
                {
                    std::hint::spin_loop();
                }
            });
        }
        wait_flag(&hog_running, "hog started");
        let (tx, rx) = channel();
        {
            let (runs, order, sleeper_done, early) = (
                runs.clone(),
                order.clone(),
                sleeper_done.clone(),
                early.clone(),
            );
            p.spawn(move || {
                for i in 0..QUEUED {
                    let (runs, order, sleeper_done, early) = (
                        runs.clone(),
                        order.clone(),
                        sleeper_done.clone(),
                        early.clone(),
                    );
                    replicore::spawn_fifo(move || {
                        if !sleeper_done.load(Ordering::SeqCst) {
                            early.fetch_add(1, Ordering::SeqCst);
                        }
                        order.lock().unwrap().push((std::thread::current().id(), i));
                        runs[i].fetch_add(1, Ordering::SeqCst);
                    });
                }
                std::thread::sleep(lease * 10);
                sleeper_done.store(true, Ordering::SeqCst);
                tx.send(()).unwrap();
            });
        }
        recv(&rx, "the sleeper never finished");
        let stats = p.stats();
        p.shutdown();
        for (i, r) in runs.iter().enumerate() {
            assert_eq!(r.load(Ordering::SeqCst), 1, "FIFO task {i}; {stats:?}");
        }
        assert_eq!(
            early.load(Ordering::SeqCst),
            QUEUED,
            "all ran while blocked; {stats:?}"
        );
        assert!(stats.recovery.takeovers >= 1, "{stats:?}");
        // Each thread that ran some of them (replacements, thieves) saw them in spawn order.
        let order = order.lock().unwrap().clone();
        for (thread, _) in &order {
            let mine: Vec<usize> = order
                .iter()
                .filter(|o| o.0 == *thread)
                .map(|o| o.1)
                .collect();
            assert!(mine.windows(2).all(|x| x[0] < x[1]), "{mine:?}; {stats:?}");
        }
    });
}

/// A broadcast while one worker is blocked in a task for many leases: its call waits in the
/// blocked CPU's inbox, and the takeover's replacement runs it, so the broadcast completes while
/// the blocked task still runs.
#[test]
fn broadcast_completes_through_the_replacement_of_a_blocked_worker() {
    within("broadcast takeover", || {
        let lease = Duration::from_millis(20);
        let p = Arc::new(
            ThreadPool::builder()
                .topology("numa:1 core:2 pu:1".parse().unwrap())
                .lease(lease)
                .build()
                .unwrap(),
        );
        let blocked = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        {
            let (blocked, release) = (blocked.clone(), release.clone());
            p.spawn(move || {
                blocked.store(true, Ordering::SeqCst);
                let t0 = Instant::now();
                // No scheduling point: this worker's lease runs out.
                while !release.load(Ordering::SeqCst) && t0.elapsed() < WATCHDOG {
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        wait_flag(&blocked, "blocker started");
        let got = p.broadcast(|ctx| ctx.index());
        let still_blocked = !release.load(Ordering::SeqCst);
        release.store(true, Ordering::SeqCst);
        assert_eq!(got, [0, 1]);
        assert!(still_blocked);
        assert!(p.stats().recovery.takeovers >= 1, "{:?}", p.stats());
    });
}
