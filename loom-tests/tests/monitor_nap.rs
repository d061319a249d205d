//! The lease monitor's nap (`src/pool/recovery/nap.rs`), run on loom threads: the monitor naps
//! only while every CPU is idle, and a CPU that leaves idle always wakes it. A lost wake-up
//! shows up as a loom deadlock: loom has no clock, so the nap's backstop never fires.
#![cfg(loom)]

use std::time::Duration;

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::thread;
use replicore::__protocol::{IdleMark, MonitorNap};

/// The monitor's loop reduced to its nap: rest while every CPU is idle, stop at the first round
/// that finds one running. Returns how many naps it took.
fn monitor(nap: &MonitorNap, cpus: &[IdleMark]) -> usize {
    let mut naps = 0;
    while nap.rest(Duration::from_secs(1), || cpus.iter().all(|c| c.is_idle(0))) {
        naps += 1;
    }
    naps
}

#[test]
fn a_cpu_leaving_idle_wakes_the_napping_monitor() {
    model(3, || {
        let nap = Arc::new(MonitorNap::new());
        let cpus = Arc::new(vec![IdleMark::new(nap.clone())]);
        let m = {
            let (nap, cpus) = (nap.clone(), cpus.clone());
            thread::spawn(move || monitor(&nap, &cpus))
        };
        cpus[0].clear(0);
        m.join().unwrap();
        assert!(!cpus[0].is_idle(0));
    });
}

/// Two CPUs: the first wake-up may come while the other CPU is still idle, so the monitor naps
/// again, and the second CPU must wake it too. A CPU that parks again (marks itself idle)
/// between must not leave the monitor asleep while the other one runs.
#[test]
fn every_cpu_leaving_idle_wakes_the_monitor_again() {
    model(2, || {
        let nap = Arc::new(MonitorNap::new());
        let cpus = Arc::new(vec![IdleMark::new(nap.clone()), IdleMark::new(nap.clone())]);
        let m = {
            let (nap, cpus) = (nap.clone(), cpus.clone());
            thread::spawn(move || monitor(&nap, &cpus))
        };
        let other = {
            let cpus = cpus.clone();
            thread::spawn(move || {
                cpus[1].clear(0);
                cpus[1].mark(0);
            })
        };
        cpus[0].clear(0);
        other.join().unwrap();
        m.join().unwrap();
    });
}

/// Shutdown rings the bell without any CPU leaving idle: the nap ends.
#[test]
fn a_ring_ends_the_nap() {
    model(3, || {
        let nap = Arc::new(MonitorNap::new());
        let cpus = Arc::new(vec![IdleMark::new(nap.clone())]);
        let m = {
            let (nap, cpus) = (nap.clone(), cpus.clone());
            thread::spawn(move || nap.rest(Duration::from_secs(1), || cpus[0].is_idle(0)))
        };
        nap.ring();
        assert!(m.join().unwrap(), "every CPU idle: the monitor napped");
    });
}
