//! Node replication's background helpers and read tokens: an idle replica catches up on its
//! own, bad helper settings are typed errors, and token reads keep read-your-writes and
//! monotonic reads under concurrent writers on 2 and 4 synthetic nodes.

mod common;

use common::{wait_until, within};
use replicore::Topology;
use replicore::nr::{
    Counter, CounterRead, CounterWrite, HelperConfig, NrBuilder, NrConfig, NrError,
    ReplicatedCounter, Token,
};
use std::sync::Mutex;
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(60);

fn rounds() -> usize {
    std::env::var("NR_STRESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Node 1 never runs an operation; node 0 writes less than `lag_bound`, so no writer helps.
/// With the helper on, node 1's replica still reaches the tail, and the counters say who did it.
#[test]
fn idle_replica_catches_up_through_its_helper() {
    within(WATCHDOG, "idle replica catches up", || {
        let topo = Topology::synthetic(2, 1, 1).unwrap();
        let cfg = NrConfig {
            log_size: 1024,
            max_batch: 8,
            lag_bound: 1024,
        };
        let helper = HelperConfig {
            batch: 16,
            max_lag: 32,
            interval: Duration::from_millis(1),
        };
        let c = ReplicatedCounter::from(
            NrBuilder::new(&topo)
                .config(cfg)
                .helper(helper)
                .build(Counter::default)
                .unwrap(),
        );
        let h = c.register(topo.nodes()[0]).unwrap();
        for _ in 0..500 {
            h.add(1);
        }
        wait_until(
            WATCHDOG,
            "the helper brings node 1 to the tail",
            || c.stats().current_replica_lag == 0,
            || format!("{:?}", c.stats()),
        );
        let s = c.stats();
        assert_eq!(s.helping_events, 0, "no writer should have helped: {s:?}");
        assert!(s.helper_entries >= 500, "{s:?}");
        assert!(s.helper_batches >= 500 / 16, "batches are bounded: {s:?}");
        // Node 1 is up to date: even a token read that waits for nothing sees every write.
        let reader = c.register(topo.nodes()[1]).unwrap();
        assert_eq!(
            reader.execute_after(Token::default(), CounterRead::Get).0,
            500
        );
    });
}

/// Without a helper the same idle replica stays behind (nothing replays into it below the lag
/// bound): the helper is what moves it.
#[test]
fn without_helper_an_idle_replica_stays_behind() {
    let topo = Topology::synthetic(2, 1, 1).unwrap();
    let cfg = NrConfig {
        log_size: 1024,
        max_batch: 8,
        lag_bound: 1024,
    };
    let c = ReplicatedCounter::with_config(&topo, cfg).unwrap();
    let h = c.register(topo.nodes()[0]).unwrap();
    for _ in 0..500 {
        h.add(1);
    }
    let s = c.stats();
    assert_eq!(s.current_replica_lag, 500, "{s:?}");
    assert_eq!(s.helper_entries, 0);
    // A token read on node 1 with no token sees the old state; with node 0's token it sees all.
    let reader = c.register(topo.nodes()[1]).unwrap();
    assert_eq!(
        reader.execute_after(Token::default(), CounterRead::Get).0,
        0
    );
    let (_, t) = h.execute_mut_with_token(CounterWrite::Add(0));
    assert_eq!(reader.execute_after(t, CounterRead::Get).0, 500);
}

#[test]
fn helper_settings_are_checked() {
    let topo = Topology::synthetic(2, 1, 1).unwrap();
    let ok = HelperConfig::default();
    let log_size = NrConfig::default().log_size;
    let cases = [
        (
            HelperConfig { batch: 0, ..ok },
            NrError::HelperBatchOutOfRange { batch: 0, log_size },
        ),
        (
            HelperConfig {
                batch: log_size + 1,
                ..ok
            },
            NrError::HelperBatchOutOfRange {
                batch: log_size + 1,
                log_size,
            },
        ),
        (
            HelperConfig { max_lag: 0, ..ok },
            NrError::HelperMaxLagOutOfRange {
                max_lag: 0,
                log_size,
            },
        ),
        (
            HelperConfig {
                interval: Duration::ZERO,
                ..ok
            },
            NrError::HelperIntervalOutOfRange {
                interval: Duration::ZERO,
            },
        ),
    ];
    for (cfg, want) in cases {
        let got = NrBuilder::new(&topo)
            .helper(cfg)
            .build(Counter::default)
            .err()
            .expect("bad settings are refused");
        assert_eq!(got, want);
        let msg = got.to_string();
        assert!(
            msg.contains("must be"),
            "the message says what is allowed: {msg}"
        );
    }
}

/// Several sessions on `nodes` nodes, two threads per node. Each thread writes and reads with
/// tokens; every read must see at least the value of its own last write (read-your-writes) and
/// of its previous read (monotonic reads). Threads also hand tokens to each other through a
/// shared mailbox: a read given another thread's (token, value) must see at least that value.
fn token_guarantees(nodes: usize, with_helper: bool) {
    let topo = Topology::synthetic(nodes, 1, 1).unwrap();
    let cfg = NrConfig {
        log_size: 64,
        max_batch: 4,
        lag_bound: 48,
    };
    let mut b = NrBuilder::new(&topo).config(cfg);
    if with_helper {
        b = b.helper(HelperConfig {
            batch: 4,
            max_lag: 8,
            interval: Duration::from_millis(1),
        });
    }
    let c = ReplicatedCounter::from(b.build(Counter::default).unwrap());
    let threads = 2 * nodes;
    const OPS: usize = 20_000;
    let mailbox: Mutex<(Token, u64)> = Mutex::new((Token::default(), 0));
    std::thread::scope(|s| {
        for t in 0..threads {
            let (c, mailbox, topo) = (&c, &mailbox, &topo);
            s.spawn(move || {
                let h = c.register(topo.nodes()[t % nodes]).unwrap();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                let (mut token, mut floor) = (Token::default(), 0u64);
                for _ in 0..OPS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match x % 10 {
                        0 => {
                            let (v, tk) = h.execute_mut_with_token(CounterWrite::Add(1));
                            assert!(v > floor, "a write's value grows past what was read");
                            (token, floor) = (tk.max(token), v);
                        }
                        1 => {
                            let mut m = mailbox.lock().unwrap();
                            if token > m.0 {
                                *m = (token, floor);
                            }
                        }
                        2 => {
                            let (tk, v) = *mailbox.lock().unwrap();
                            let (got, _) = h.execute_after(tk, CounterRead::Get);
                            assert!(got >= v, "read {got} with a token for {v}");
                        }
                        _ => {
                            let (got, tk) = h.execute_after(token, CounterRead::Get);
                            assert!(got >= floor, "read {got}, already saw {floor}");
                            assert!(tk >= token, "tokens never go back");
                            (token, floor) = (tk, got);
                        }
                    }
                }
            });
        }
    });
    let total = c.register(topo.nodes()[0]).unwrap().get();
    for &node in topo.nodes() {
        assert_eq!(c.register(node).unwrap().get(), total);
    }
}

#[test]
fn token_reads_keep_session_guarantees_on_two_nodes() {
    within(WATCHDOG, "token stress, 2 nodes", || {
        for r in 0..rounds() {
            token_guarantees(2, r % 2 == 1);
        }
        token_guarantees(2, true);
    });
}

#[test]
fn token_reads_keep_session_guarantees_on_four_nodes() {
    within(WATCHDOG, "token stress, 4 nodes", || {
        for r in 0..rounds() {
            token_guarantees(4, r % 2 == 1);
        }
        token_guarantees(4, true);
    });
}
