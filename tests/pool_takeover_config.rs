//! Builder validation of the fault-tolerance options: typed errors, never a panic.

use std::error::Error;
use std::time::Duration;

use replicore::{BuildError, ThreadPool};

#[test]
fn replication_factor_range_follows_the_cpus_in_use() {
    let topo = || "numa:2 core:2 pu:1".parse().unwrap();
    for r in 0..=3 {
        let pool = ThreadPool::builder()
            .topology(topo())
            .replication_factor(r)
            .build()
            .unwrap();
        assert_eq!(pool.replication_factor(), r);
    }
    let err = ThreadPool::builder()
        .topology(topo())
        .replication_factor(4)
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        BuildError::ReplicationFactor {
            requested: 4,
            max: 3
        }
    ));
    assert!(err.to_string().contains("0..=3"), "{err}");
    // Two threads on four CPUs: only one neighbour exists.
    let err = ThreadPool::builder()
        .topology(topo())
        .num_threads(2)
        .replication_factor(2)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::ReplicationFactor { max: 1, .. }));
    assert!(err.source().is_none());
}

#[test]
fn lease_and_spare_threads_are_validated() {
    let err = ThreadPool::builder()
        .num_threads(1)
        .lease(Duration::from_micros(999))
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::LeaseTooShort { .. }));
    assert!(err.to_string().contains("at least 1ms"), "{err}");
    let pool = ThreadPool::builder()
        .num_threads(1)
        .lease(Duration::from_millis(1))
        .build()
        .unwrap();
    assert_eq!(pool.lease(), Duration::from_millis(1));
    let err = ThreadPool::builder()
        .num_threads(1)
        .max_spare_threads(replicore::MAX_THREADS + 1)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::TooManySpareThreads { .. }));
    assert!(err.to_string().contains("0..=1024"), "{err}");
}

#[test]
fn defaults() {
    let pool = ThreadPool::builder().num_threads(2).build().unwrap();
    assert_eq!(pool.lease(), replicore::DEFAULT_LEASE);
    assert_eq!(pool.replication_factor(), 1);
    assert_eq!(pool.max_spare_threads(), 2);
    let s = pool.stats();
    assert_eq!(
        (s.recovery.takeovers, s.recovery.replacement_threads),
        (0, 0)
    );
}
