//! How a thief takes work from a worker on its own node: one task at a time, as rayon does,
//! unless the victim has a backlog, which it takes in batches.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{counters, not_once, spin_until, within};
use replicore::ThreadPool;

const TASKS: usize = 2_000;
const LIMIT: Duration = Duration::from_secs(30);

/// Worker A spawns a flood while worker B is held by a blocker, then stays busy in its own task
/// while B drains A's deque. Without batches B pays one steal (pin, fence, CAS) per task and
/// falls behind a spawning worker; with them it steals a fraction as often, and every task
/// still runs exactly once.
#[test]
fn a_thief_takes_a_backlog_in_batches_and_runs_each_task_once() {
    within(LIMIT, "a thief drains a 2,000-task backlog", || {
        let pool = ThreadPool::builder().num_threads(2).build().unwrap();
        let held = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let runs = counters(TASKS);
        let ran_on_b = Arc::new(AtomicUsize::new(0));
        let blocker_index = Arc::new(AtomicUsize::new(usize::MAX));
        {
            let (held, release, blocker_index) =
                (held.clone(), release.clone(), blocker_index.clone());
            pool.spawn(move || {
                blocker_index.store(replicore::current_thread_index().unwrap(), Ordering::SeqCst);
                held.store(true, Ordering::SeqCst);
                assert!(
                    spin_until(LIMIT, || release.load(Ordering::SeqCst)),
                    "never released"
                );
            });
        }
        let before = pool.stats().scheduler;
        pool.install(|| {
            assert!(
                spin_until(LIMIT, || held.load(Ordering::SeqCst)),
                "blocker never ran"
            );
            let b = blocker_index.load(Ordering::SeqCst);
            assert_ne!(replicore::current_thread_index(), Some(b));
            for i in 0..TASKS {
                let (runs, ran_on_b) = (runs.clone(), ran_on_b.clone());
                replicore::spawn(move || {
                    runs[i].fetch_add(1, Ordering::SeqCst);
                    if replicore::current_thread_index() == Some(b) {
                        ran_on_b.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            release.store(true, Ordering::SeqCst);
            // Stay busy here, so that only B runs the flood: A pops nothing back.
            let all_ran = || runs.iter().all(|r| r.load(Ordering::SeqCst) > 0);
            assert!(spin_until(LIMIT, all_ran), "the backlog was not drained");
        });
        let after = pool.stats().scheduler;
        let (wrong, which) = not_once(&runs);
        assert_eq!(
            wrong, 0,
            "tasks not run exactly once (index, runs): {which:?}"
        );
        assert_eq!(
            ran_on_b.load(Ordering::SeqCst),
            TASKS,
            "B ran the whole flood"
        );
        let steals = after.steals_same_node - before.steals_same_node;
        let popped = after.local_pops - before.local_pops;
        assert!(
            steals <= (TASKS / 4) as u64,
            "{steals} steals for {TASKS} tasks: the backlog was not taken in batches ({after:?})"
        );
        assert!(
            popped + steals >= TASKS as u64,
            "each task is a steal or a pop of a stolen batch: {popped} + {steals} ({after:?})"
        );
    });
}
