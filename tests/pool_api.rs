//! Integration tests of the pool's public API.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use replicore::{BuildError, ThreadPool, Topology};

fn pool(n: usize) -> ThreadPool {
    ThreadPool::builder().num_threads(n).build().unwrap()
}

fn fib(n: u32) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (a, b) = replicore::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

#[test]
fn install_runs_on_a_worker_and_returns() {
    let p = pool(2);
    assert_eq!(replicore::current_thread_index(), None);
    let (idx, v) = p.install(|| (replicore::current_thread_index(), 5));
    assert!(idx.unwrap() < 2);
    assert_eq!(v, 5);
}

#[test]
fn join_computes_fib() {
    let p = pool(2);
    assert_eq!(p.install(|| fib(22)), 17711);
    assert_eq!(p.join(|| fib(10), || fib(11)), (55, 89));
    // Each `install`/`join` from outside is one queued job; a join half counts once if it was
    // queued and taken from a queue, and not at all if its join ran as two plain calls. fib(n)
    // makes fib(n + 1) - 1 joins: 28,656 for fib(22), and 1 + 88 + 143 for the outside join of
    // fib(10) and fib(11); every one of them may fork (say, while the other worker is hungry).
    let executed = p.stats().scheduler.tasks_executed;
    assert!((2..=2 + 28_656 + 232).contains(&executed), "{executed}");
}

#[test]
fn free_functions_use_global_pool_outside() {
    assert_eq!(fib(15), 610);
    let (tx, rx) = std::sync::mpsc::channel();
    replicore::spawn(move || tx.send(replicore::current_thread_index()).unwrap());
    assert!(rx.recv().unwrap().is_some());
}

#[test]
fn join_reraises_panic_of_a_after_b_finished() {
    let p = pool(2);
    let b_done = AtomicUsize::new(0);
    let r = catch_unwind(AssertUnwindSafe(|| {
        p.join(
            || panic!("in A"),
            || {
                std::thread::sleep(std::time::Duration::from_millis(5));
                b_done.fetch_add(1, Ordering::SeqCst);
            },
        )
    }));
    assert_eq!(*r.unwrap_err().downcast_ref::<&str>().unwrap(), "in A");
    assert_eq!(
        b_done.load(Ordering::SeqCst),
        1,
        "B ran to completion first"
    );
    // The workers survived.
    assert_eq!(p.install(|| fib(12)), 144);
}

#[test]
fn join_reraises_panic_of_b() {
    let p = pool(2);
    let a_done = AtomicUsize::new(0);
    let r = catch_unwind(AssertUnwindSafe(|| {
        p.join(
            || {
                a_done.fetch_add(1, Ordering::SeqCst);
            },
            || panic!("in B"),
        )
    }));
    assert_eq!(*r.unwrap_err().downcast_ref::<&str>().unwrap(), "in B");
    assert_eq!(a_done.load(Ordering::SeqCst), 1);
    assert_eq!(p.install(|| fib(12)), 144);
}

#[test]
fn scope_borrows_and_reraises_child_panic_after_siblings() {
    let p = pool(2);
    let mut v = vec![0usize; 100];
    p.scope(|s| {
        for (i, x) in v.iter_mut().enumerate() {
            s.spawn(move |_| *x = i * 2);
        }
    });
    assert!(v.iter().enumerate().all(|(i, &x)| x == i * 2));

    let done = AtomicUsize::new(0);
    let r = catch_unwind(AssertUnwindSafe(|| {
        p.scope(|s| {
            s.spawn(|_| panic!("child"));
            for _ in 0..50 {
                s.spawn(|_| {
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        })
    }));
    assert_eq!(*r.unwrap_err().downcast_ref::<&str>().unwrap(), "child");
    assert_eq!(done.load(Ordering::SeqCst), 50);
}

#[test]
fn nested_scope_spawns_from_children() {
    let count = AtomicUsize::new(0);
    pool(2).scope(|s| {
        for _ in 0..10 {
            s.spawn(|s| {
                for _ in 0..10 {
                    s.spawn(|_| {
                        count.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
        }
    });
    assert_eq!(count.load(Ordering::Relaxed), 100);
}

#[test]
fn spawn_panic_goes_to_handler_and_worker_survives() {
    let panics = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let p2 = panics.clone();
    let p = ThreadPool::builder()
        .num_threads(1)
        .panic_handler(move |payload| {
            assert_eq!(*payload.downcast_ref::<&str>().unwrap(), "spawned");
            p2.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    for i in 0..10 {
        let ran = ran.clone();
        p.spawn(move || {
            if i % 2 == 0 {
                panic!("spawned");
            }
            ran.fetch_add(1, Ordering::SeqCst);
        });
    }
    p.shutdown();
    assert_eq!(panics.load(Ordering::SeqCst), 5);
    assert_eq!(ran.load(Ordering::SeqCst), 5);
}

#[test]
fn spawn_panic_without_handler_is_reported_not_fatal() {
    let p = pool(1);
    p.spawn(|| panic!("no handler"));
    assert_eq!(p.install(|| 3), 3);
}

#[test]
fn broadcast_runs_once_per_worker() {
    let p = pool(3);
    let mut r = p.broadcast(|ctx| {
        (
            ctx.index(),
            ctx.num_threads(),
            replicore::current_thread_index(),
        )
    });
    r.sort();
    assert_eq!(r, vec![(0, 3, Some(0)), (1, 3, Some(1)), (2, 3, Some(2))]);
    // Parked workers get woken for it, repeatedly.
    for _ in 0..20 {
        assert_eq!(p.broadcast(|c| c.index()), vec![0, 1, 2]);
    }
}

fn spawn_with_respawns(p: &ThreadPool, n: &Arc<AtomicUsize>) {
    for _ in 0..1000 {
        let n = n.clone();
        p.spawn(move || {
            let n2 = n.clone();
            n.fetch_add(1, Ordering::Relaxed);
            replicore::spawn(move || {
                n2.fetch_add(1, Ordering::Relaxed);
            });
        });
    }
}

#[test]
fn shutdown_runs_all_accepted_tasks_including_respawns() {
    let n = Arc::new(AtomicUsize::new(0));
    let p = pool(2);
    spawn_with_respawns(&p, &n);
    p.shutdown();
    assert_eq!(n.load(Ordering::Relaxed), 2000);
}

/// Dropping does not wait (rayon-core's rule), but nothing accepted is lost: the workers drain
/// in the background.
#[test]
fn drop_returns_and_the_accepted_tasks_still_run() {
    let n = Arc::new(AtomicUsize::new(0));
    let p = pool(2);
    spawn_with_respawns(&p, &n);
    drop(p);
    let t0 = std::time::Instant::now();
    while n.load(Ordering::Relaxed) < 2000 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "watchdog: only {} of 2000 ran after the drop",
            n.load(Ordering::Relaxed)
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(n.load(Ordering::Relaxed), 2000, "and none twice");
}

#[test]
fn start_and_exit_handlers_and_names() {
    let started = Arc::new(AtomicUsize::new(0));
    let exited = Arc::new(AtomicUsize::new(0));
    let (s, e) = (started.clone(), exited.clone());
    let p = ThreadPool::builder()
        .num_threads(3)
        .thread_name(|i| format!("t-{i}"))
        .stack_size(1 << 20)
        .start_handler(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .exit_handler(move |_| {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let mut names = p.broadcast(|_| std::thread::current().name().unwrap().to_owned());
    names.sort();
    assert_eq!(names, ["t-0", "t-1", "t-2"]);
    p.shutdown();
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert_eq!(exited.load(Ordering::SeqCst), 3);
}

#[test]
fn builder_errors_are_typed_and_explain() {
    // `num_threads(0)` means automatic (rayon's meaning), no longer an error.
    let auto = ThreadPool::builder().num_threads(0).build().unwrap();
    assert!(auto.current_num_threads() >= 1);
    let e = ThreadPool::builder()
        .num_threads(100_000)
        .build()
        .unwrap_err();
    assert!(matches!(
        e,
        BuildError::TooManyThreads {
            requested: 100_000,
            max: 1024
        }
    ));
    assert!(e.to_string().contains("at most 1024"), "{e}");
    // A stack that cannot be allocated: a spawn error, not a panic.
    let e = ThreadPool::builder()
        .num_threads(2)
        .stack_size(usize::MAX / 2)
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::Spawn { index: 0, .. }), "{e}");
    assert!(e.to_string().contains("could not spawn worker thread 0"));
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn install_from_one_pool_into_another_does_not_deadlock() {
    let a = pool(1);
    let b = pool(1);
    let r = a.install(|| {
        let ra = replicore::current_thread_index();
        let (x, y) = replicore::join(
            || b.install(|| fib(15)),
            || b.install(|| a.install(|| fib(10))),
        );
        (ra, x, y)
    });
    assert_eq!(r, (Some(0), 610, 55));
}

#[test]
fn more_threads_than_cpus_wrap_around_topology() {
    let topo = Topology::synthetic(1, 1, 1).unwrap();
    let p = ThreadPool::builder()
        .topology(topo)
        .num_threads(4)
        .build()
        .unwrap();
    assert_eq!(p.current_num_threads(), 4);
    assert_eq!(p.install(|| fib(16)), 987);
}

#[test]
fn synthetic_two_node_pool_steals_across_nodes() {
    let topo: Topology = "numa:2 core:1 pu:1".parse().unwrap();
    let p = ThreadPool::builder().topology(topo).build().unwrap();
    assert_eq!(p.current_num_threads(), 2);
    // Both workers must be up (on a loaded box a thread may not be scheduled for a while),
    // then keep them busy until the other node's worker steals.
    assert_eq!(p.broadcast(|c| c.index()), vec![0, 1]);
    for _ in 0..2000 {
        p.install(|| fib(20));
        if p.stats().scheduler.steals_remote_node > 0 {
            break;
        }
    }
    let s = p.stats();
    assert!(s.scheduler.steals_remote_node > 0, "{s:?}");
    assert_eq!(
        s.scheduler.steals_same_node, 0,
        "each node has one worker: {s:?}"
    );
}

#[test]
fn deep_recursion_one_million_join_leaves() {
    fn leaves(n: usize) -> usize {
        if n == 1 {
            return 1;
        }
        let (a, b) = replicore::join(|| leaves(n / 2), || leaves(n - n / 2));
        a + b
    }
    assert_eq!(pool(2).install(|| leaves(1 << 20)), 1 << 20);
}

#[test]
fn idle_pool_parks_its_workers_and_still_takes_work() {
    let p = pool(2);
    p.install(|| fib(10));
    // Wait for both workers to finish spinning and park; asserts on state, never on time.
    let mut parked = false;
    for _ in 0..500 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        if p.stats().scheduler.parks >= 2 {
            parked = true;
            break;
        }
    }
    assert!(parked, "{:?}", p.stats());
    assert_eq!(p.install(|| fib(10)), 55);
}

#[test]
fn task_blocking_on_its_own_spawn_is_served_by_another_worker() {
    let p = pool(2);
    for i in 0..200 {
        let got = p.install(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            replicore::spawn(move || tx.send(9).unwrap());
            // This worker blocks without popping: the other one must be woken for the task.
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .expect("watchdog: the spawned task never ran")
        });
        assert_eq!(got, 9);
        // Now and then, let the other worker park first, so the wake-up path is exercised.
        if i % 20 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

#[test]
fn yield_now_runs_one_queued_task_and_says_what_it_did() {
    assert_eq!(replicore::yield_now(), None, "not on a pool worker");
    let p = pool(1);
    let (first, second, third, ran) = p.install(|| {
        let ran = std::sync::atomic::AtomicUsize::new(0);
        let first = replicore::yield_now();
        replicore::scope(|s| {
            s.spawn(|_| {
                ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
            // One worker, busy right here: only the yield can run the child.
            let second = replicore::yield_now();
            let third = replicore::yield_now();
            (
                first,
                second,
                third,
                ran.load(std::sync::atomic::Ordering::SeqCst),
            )
        })
    });
    assert_eq!(first, Some(replicore::Yield::Idle));
    assert_eq!(second, Some(replicore::Yield::Executed));
    assert_eq!(third, Some(replicore::Yield::Idle));
    assert_eq!(ran, 1);
}

/// Shutdown wakes the monitor instead of waiting out its tick (a quarter lease: 30 s here).
#[test]
fn shutdown_does_not_wait_for_the_monitor_tick() {
    let p = replicore::ThreadPool::builder()
        .num_threads(2)
        .lease(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    assert_eq!(p.install(|| 1 + 1), 2);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        p.shutdown();
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("watchdog: shutdown waited for the monitor's 30 s tick");
}
