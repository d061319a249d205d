//! `ThreadPoolBuilder::use_current_thread`: the building thread is worker 0. Every body runs
//! under a watchdog, and builds its pool inside the watched closure (the body's thread is the
//! one that becomes worker 0).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{wait_until, within};
use replicore::{BuildError, ThreadPool};

const LIMIT: Duration = Duration::from_secs(60);

/// A pool of `threads` workers whose worker 0 is the calling thread.
fn caller_pool(threads: usize) -> ThreadPool {
    ThreadPool::builder()
        .num_threads(threads)
        .use_current_thread()
        .build()
        .unwrap()
}

#[test]
fn caller_is_worker_zero_and_install_runs_here() {
    within(LIMIT, "caller is worker 0", || {
        let pool = caller_pool(2);
        assert_eq!(replicore::current_thread_index(), Some(0));
        assert_eq!(pool.current_thread_index(), Some(0));
        let here = std::thread::current().id();
        let (id, idx) = pool.install(|| {
            (
                std::thread::current().id(),
                replicore::current_thread_index(),
            )
        });
        assert_eq!((id, idx), (here, Some(0)));
        drop(pool);
        assert_eq!(replicore::current_thread_index(), None);
    });
}

#[test]
fn join_and_scope_work_from_the_caller() {
    within(LIMIT, "join and scope", || {
        let pool = caller_pool(2);
        fn fib(n: u32) -> u64 {
            if n < 2 {
                return n as u64;
            }
            let (a, b) = replicore::join(|| fib(n - 1), || fib(n - 2));
            a + b
        }
        assert_eq!(fib(20), 6765, "free join on the caller uses its pool");
        assert_eq!(pool.join(|| fib(15), || fib(16)), (610, 987));
        let mut v = vec![0usize; 64];
        pool.scope(|s| {
            for (i, x) in v.iter_mut().enumerate() {
                s.spawn(move |_| *x = i * 2);
            }
        });
        assert!(v.iter().enumerate().all(|(i, &x)| x == i * 2));
        pool.shutdown();
    });
}

#[test]
fn queued_spawns_are_stolen_while_the_caller_is_outside() {
    within(LIMIT, "spawns stolen", || {
        let pool = caller_pool(2);
        let ran = Arc::new(AtomicUsize::new(0));
        let off_caller = Arc::new(AtomicUsize::new(0));
        const N: usize = 100;
        for _ in 0..N {
            let (ran, off) = (ran.clone(), off_caller.clone());
            // On the caller, this pushes onto worker 0's own deque.
            pool.spawn(move || {
                if replicore::current_thread_index() != Some(0) {
                    off.fetch_add(1, Ordering::SeqCst);
                }
                ran.fetch_add(1, Ordering::SeqCst);
            });
        }
        // The caller never calls into the pool again: the other worker must steal them all.
        wait_until(
            Duration::from_secs(30),
            "the other worker steals every queued spawn",
            || ran.load(Ordering::SeqCst) == N,
            || format!("ran {}", ran.load(Ordering::SeqCst)),
        );
        assert_eq!(off_caller.load(Ordering::SeqCst), N);
        drop(pool);
    });
}

#[test]
fn a_thread_already_in_a_pool_gets_the_typed_error() {
    within(LIMIT, "already a worker", || {
        let pool = caller_pool(2);
        let err = ThreadPool::builder()
            .use_current_thread()
            .build()
            .unwrap_err();
        assert!(matches!(err, BuildError::CurrentThreadInPool));
        assert!(err.to_string().contains("already a worker"), "{err}");
        // A worker thread of an ordinary pool is refused too, and may still build a plain pool.
        let other = ThreadPool::builder().num_threads(1).build().unwrap();
        let (refused, plain) = other.install(|| {
            let refused = ThreadPool::builder()
                .num_threads(1)
                .use_current_thread()
                .build();
            let plain = ThreadPool::builder().num_threads(1).build();
            (refused.is_err(), plain.is_ok())
        });
        assert!(refused && plain);
        // Once the first pool is dropped here, this thread may build another.
        drop(pool);
        let again = ThreadPool::builder()
            .num_threads(2)
            .use_current_thread()
            .build();
        assert!(again.is_ok());
        assert_eq!(replicore::current_thread_index(), Some(0));
    });
}

#[test]
fn start_and_exit_handlers_run_for_index_zero_on_the_caller() {
    within(LIMIT, "handlers", || {
        let seen: Arc<Mutex<Vec<(usize, std::thread::ThreadId)>>> = Arc::default();
        let exited: Arc<Mutex<Vec<(usize, std::thread::ThreadId)>>> = Arc::default();
        let (s, e) = (seen.clone(), exited.clone());
        let pool = ThreadPool::builder()
            .num_threads(2)
            .lease(Duration::from_secs(2))
            .use_current_thread()
            .start_handler(move |i| s.lock().unwrap().push((i, std::thread::current().id())))
            .exit_handler(move |i| e.lock().unwrap().push((i, std::thread::current().id())))
            .build()
            .unwrap();
        let here = std::thread::current().id();
        assert!(
            seen.lock().unwrap().contains(&(0, here)),
            "start handler for 0 ran in build"
        );
        pool.shutdown();
        let seen = seen.lock().unwrap();
        assert!(seen.iter().any(|&(i, t)| i == 1 && t != here));
        assert!(exited.lock().unwrap().contains(&(0, here)));
    });
}

#[test]
fn drop_on_the_caller_then_spawn_goes_to_the_global_pool() {
    within(LIMIT, "spawn after drop", || {
        let pool = caller_pool(2);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = tx.clone();
        pool.spawn(move || t.send("queued before drop").unwrap());
        drop(pool);
        assert_eq!(replicore::current_thread_index(), None);
        replicore::spawn(move || tx.send("after drop").unwrap());
        let mut got = vec![
            rx.recv_timeout(Duration::from_secs(30)).unwrap(),
            rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        ];
        got.sort_unstable();
        assert_eq!(got, ["after drop", "queued before drop"]);
    });
}

#[test]
fn drop_on_another_thread_then_spawn_here_still_runs() {
    within(LIMIT, "spawn after a drop elsewhere", || {
        let pool = caller_pool(2);
        std::thread::spawn(move || drop(pool)).join().unwrap();
        // The pool terminated: this thread is no longer its worker, and a spawn here must not
        // land in worker 0's deque, which no one pops any more.
        assert_eq!(replicore::current_thread_index(), None);
        let (tx, rx) = std::sync::mpsc::channel();
        replicore::spawn(move || tx.send(1).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), 1);
        // And the thread may build a new use_current_thread pool.
        let again = caller_pool(2);
        assert_eq!(again.install(|| 6 * 7), 42);
    });
}

#[test]
fn shutdown_on_the_caller_waits_for_queued_work() {
    within(LIMIT, "shutdown waits", || {
        for threads in [1, 2] {
            let pool = caller_pool(threads);
            let n = Arc::new(AtomicUsize::new(0));
            for _ in 0..200 {
                let n = n.clone();
                pool.spawn(move || {
                    std::thread::sleep(Duration::from_micros(50));
                    n.fetch_add(1, Ordering::SeqCst);
                });
            }
            pool.shutdown();
            assert_eq!(n.load(Ordering::SeqCst), 200, "{threads} threads");
            assert_eq!(replicore::current_thread_index(), None);
        }
    });
}

#[test]
fn one_thread_pool_drop_on_the_caller_runs_the_queued_work() {
    within(LIMIT, "drop of a one-worker pool", || {
        let pool = caller_pool(1);
        let n = Arc::new(AtomicUsize::new(0));
        for _ in 0..50 {
            let n = n.clone();
            pool.spawn(move || {
                n.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Nothing runs while the only worker (this thread) is outside the pool.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(n.load(Ordering::SeqCst), 0);
        drop(pool);
        assert_eq!(n.load(Ordering::SeqCst), 50);
    });
}

#[test]
fn the_caller_slot_is_never_taken_over() {
    within(LIMIT, "no takeover of the caller", || {
        let pool = ThreadPool::builder()
            .num_threads(2)
            .lease(Duration::from_millis(5))
            .use_current_thread()
            .build()
            .unwrap();
        pool.install(|| ());
        // Outside every pool call for 20 leases: a worker thread this quiet would be taken over.
        std::thread::sleep(Duration::from_millis(100));
        let stats = pool.stats();
        assert_eq!(stats.recovery.takeovers, 0, "{stats:?}");
        assert_eq!(replicore::current_thread_index(), Some(0));
        assert_eq!(pool.join(|| 1, || 2), (1, 2));
        pool.shutdown();
    });
}

/// The caller is the only replica holder of worker 1's CPU on a 2-thread pool, and it never
/// watches (it runs no scheduling loop outside pool calls). Worker 1 blocks with tasks queued
/// behind it: the monitor drives the takeover itself (it does not count the caller as a watcher
/// that will get there first, and would in any case drive after one tick of grace), so the queued
/// tasks run while worker 1 is still blocked.
#[test]
fn a_worker_whose_only_watcher_is_the_caller_is_still_taken_over() {
    within(
        LIMIT,
        "takeover with the caller as the only watcher",
        || {
            let pool = ThreadPool::builder()
                .num_threads(2)
                .lease(Duration::from_millis(5))
                .use_current_thread()
                .build()
                .unwrap();
            const QUEUED: usize = 16;
            let ran = Arc::new(AtomicUsize::new(0));
            let blocker_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let ran_while_blocked = Arc::new(AtomicUsize::new(0));
            {
                let (ran, done, early) =
                    (ran.clone(), blocker_done.clone(), ran_while_blocked.clone());
                // From the caller, a spawn lands on its own deque: worker 1 steals the blocker.
                pool.spawn(move || {
                    for _ in 0..QUEUED {
                        let (ran, done, early) = (ran.clone(), done.clone(), early.clone());
                        // Worker 1's own deque: behind the blocking task.
                        replicore::spawn(move || {
                            if !done.load(Ordering::SeqCst) {
                                early.fetch_add(1, Ordering::SeqCst);
                            }
                            ran.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    std::thread::sleep(Duration::from_millis(300));
                    done.store(true, Ordering::SeqCst);
                });
            }
            // The caller stays outside the pool while it waits.
            wait_until(
                Duration::from_secs(30),
                "the queued tasks ran",
                || ran.load(Ordering::SeqCst) == QUEUED,
                || format!("{:?}", pool.stats()),
            );
            let stats = pool.stats();
            assert!(stats.recovery.takeovers >= 1, "{stats:?}");
            assert_eq!(
                ran_while_blocked.load(Ordering::SeqCst),
                QUEUED,
                "every queued task ran while its worker was blocked; {stats:?}"
            );
            pool.shutdown();
        },
    );
}

/// A broadcast from the building thread runs its call for worker 0 on that thread: the thread
/// is a worker, so it must take the worker's path and not block as a thread outside the pool
/// does (only it may run worker 0's inbox job).
#[test]
fn broadcast_from_the_caller_runs_worker_zeros_call_here() {
    within(LIMIT, "broadcast from the caller", || {
        let pool = caller_pool(2);
        let here = std::thread::current().id();
        let seen = pool.broadcast(|ctx| (ctx.index(), std::thread::current().id() == here));
        assert_eq!(seen, vec![(0, true), (1, false)]);
        assert_eq!(
            replicore::broadcast(|ctx| ctx.index()),
            vec![0, 1],
            "the free function, on the caller's pool"
        );
    });
}
