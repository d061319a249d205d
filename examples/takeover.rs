//! One task blocks in a syscall; the tasks queued behind it on its CPU are adopted and run
//! elsewhere. `cargo run --example takeover`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lease = Duration::from_millis(20);
    let pool = replicore::ThreadPool::builder()
        .topology("numa:1 core:2 pu:1".parse()?)
        .lease(lease)
        .build()?;
    println!(
        "A pool of {} workers, lease {:?}, each CPU's queue replicated to {} neighbour(s).",
        pool.current_num_threads(),
        pool.lease(),
        pool.replication_factor()
    );
    const QUEUED: usize = 8;
    let t0 = Instant::now();
    let ran = Arc::new(AtomicUsize::new(0));
    let hog_running = Arc::new(AtomicBool::new(false));

    // Keep the other worker busy with a task that never yields, so no idle neighbour can
    // simply steal the queued tasks: only a takeover can rescue them.
    {
        let (ran, hog_running) = (ran.clone(), hog_running.clone());
        pool.spawn(move || {
            hog_running.store(true, Ordering::SeqCst);
            while ran.load(Ordering::SeqCst) < QUEUED && t0.elapsed() < Duration::from_secs(10) {
                std::hint::spin_loop();
            }
        });
    }
    while !hog_running.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let (tx, rx) = channel();
    let blocker_cpu = Arc::new(AtomicUsize::new(usize::MAX));
    {
        let (ran, tx, blocker_cpu) = (ran.clone(), tx.clone(), blocker_cpu.clone());
        pool.spawn(move || {
            let me = replicore::current_thread_index().unwrap();
            blocker_cpu.store(me, Ordering::SeqCst);
            for i in 0..QUEUED {
                let (ran, tx) = (ran.clone(), tx.clone());
                replicore::spawn(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    let thread = std::thread::current().name().unwrap_or("?").to_owned();
                    tx.send(format!(
                        "  queued task {i} ran at {:>5.1} ms on thread {thread}",
                        t0.elapsed().as_secs_f64() * 1e3
                    ))
                    .unwrap();
                });
            }
            tx.send(format!(
                "Worker {me} queued {QUEUED} tasks on its own deque, then blocked in \
                 std::thread::sleep for {:?} (10 leases).",
                lease * 10
            ))
            .unwrap();
            std::thread::sleep(lease * 10);
            tx.send(format!(
                "  the blocking task woke up at {:>5.1} ms; its worker then sees it was fenced \
                 and retires.",
                t0.elapsed().as_secs_f64() * 1e3
            ))
            .unwrap();
        });
    }
    drop(tx);
    for line in rx.iter().take(QUEUED + 2) {
        println!("{line}");
    }
    let s = pool.stats();
    println!();
    println!(
        "What happened: worker {}'s heartbeat stopped while it blocked. After a full lease a \
         neighbouring worker (or, if every worker is busy, the pool's monitor thread) fenced its \
         CPU (epoch e -> e+1), so that worker can no longer take or start anything it queued. \
         The same thread then adopted the tasks that were still unclaimed \
         ({} from a neighbour's replica of that CPU's queue) and started a replacement worker \
         for the same CPU (pinned to it on a detected topology) with a fresh deque. Each task starts only through a single \
         atomic claim, so copies left in the old deque are skipped, never run twice.",
        blocker_cpu.load(Ordering::SeqCst),
        s.recovery.tasks_recovered_from_replica
    );
    println!();
    println!("Stats:");
    println!("  leases expired            {}", s.recovery.lease_expiries);
    println!("  takeovers                 {}", s.recovery.takeovers);
    println!(
        "  tasks from a replica      {}",
        s.recovery.tasks_recovered_from_replica
    );
    println!(
        "  replacement threads       {}",
        s.recovery.replacement_threads
    );
    println!(
        "  fenced owner actions      {}",
        s.recovery.fenced_rejections
    );
    println!(
        "  largest replica lag       {} ops",
        s.recovery.replica_lag_max
    );
    println!(
        "  stalls at the spare cap   {}",
        s.recovery.takeovers_without_replacement
    );
    println!(
        "(The spinning task's CPU was taken over too: it also reached no scheduling point for a \
         lease. Its task keeps running; only queued work moves.)"
    );
    Ok(())
}
