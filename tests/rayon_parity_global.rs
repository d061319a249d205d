//! rayon-core parity, the process-wide parts: `REPLICORE_NUM_THREADS` and
//! `ThreadPoolBuilder::build_global`. Both touch process-global state (the environment, the
//! global pool), so this binary holds a single test that runs them in sequence.

use std::sync::mpsc::channel;
use std::time::Duration;

use replicore::{BuildError, NUM_THREADS_ENV, ThreadPool, ThreadPoolBuilder};

fn set_env(value: Option<&str>) {
    // SAFETY: this binary has one test, and nothing else in the process reads or writes the
    // environment concurrently (pools read it only inside `build`, on this thread).
    unsafe {
        match value {
            Some(v) => std::env::set_var(NUM_THREADS_ENV, v),
            None => std::env::remove_var(NUM_THREADS_ENV),
        }
    }
}

fn threads() -> Result<usize, BuildError> {
    // A synthetic 3-CPU machine: "automatic" is then 3 on any box.
    ThreadPool::builder()
        .topology("numa:1 core:3 pu:1".parse().unwrap())
        .lease(Duration::from_secs(2))
        .build()
        .map(|p| p.current_num_threads())
}

#[test]
fn env_default_thread_count_then_build_global() {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        // Unset, or 0: one worker per CPU.
        set_env(None);
        assert_eq!(threads().unwrap(), 3);
        set_env(Some("0"));
        assert_eq!(threads().unwrap(), 3);
        // A count, with or without surrounding blanks.
        set_env(Some("2"));
        assert_eq!(threads().unwrap(), 2);
        set_env(Some(" 5 "));
        assert_eq!(threads().unwrap(), 5);
        // `num_threads(0)` also reads it; an explicit count wins over it.
        let explicit = |n| {
            ThreadPool::builder()
                .num_threads(n)
                .lease(Duration::from_secs(2))
                .build()
                .unwrap()
                .current_num_threads()
        };
        assert_eq!(explicit(0), 5);
        assert_eq!(explicit(1), 1);
        // Not a number: a typed error that quotes the value (rayon would ignore it).
        set_env(Some("four"));
        match threads() {
            Err(BuildError::NumThreadsEnv { value }) => assert_eq!(value, "four"),
            other => panic!("expected NumThreadsEnv, got {other:?}"),
        }
        let e = threads().unwrap_err();
        assert!(e.to_string().contains(NUM_THREADS_ENV), "{e}");
        // An explicit count does not read it, so the bad value does not matter then.
        assert_eq!(explicit(1), 1);
        // Too many: the same error as asking for too many.
        set_env(Some("5000"));
        assert!(matches!(
            threads(),
            Err(BuildError::TooManyThreads {
                requested: 5000,
                ..
            })
        ));

        // build_global: the first call installs the global pool the free functions use.
        set_env(Some("2"));
        ThreadPoolBuilder::new()
            .lease(Duration::from_secs(2))
            .build_global()
            .unwrap();
        set_env(None);
        assert_eq!(replicore::current_num_threads(), 2, "the env count applied");
        assert_eq!(replicore::broadcast(|ctx| ctx.index()), [0, 1]);
        let again = ThreadPoolBuilder::new().num_threads(1).build_global();
        assert!(matches!(
            again,
            Err(BuildError::GlobalPoolAlreadyInitialized)
        ));
        assert!(again.unwrap_err().to_string().contains("already"));
        assert_eq!(replicore::current_num_threads(), 2, "the first pool stays");
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("watchdog: the environment / global pool sequence did not finish");
}
