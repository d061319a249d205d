//! Recovery's state: what every thread may read about one CPU's lease, log and replicas
//! ([`CpuRecovery`]), and what the pool keeps for takeovers as a whole ([`RecoveryState`]).
//!
//! The registry owns one `RecoveryState`; the scheduler never reads it except through the seam
//! (`seam`), the watch and the takeover.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use super::judge::Watch;
use super::nap::{IdleMark, MonitorNap};
use super::probe::ThreadProbe;
use super::sources::TakeSources;
use super::threads::NO_SEAT;
use crate::pool::job::Handle;
use crate::replication::{CpuState, DEFAULT_LOG_CAPACITY, Replica, ReplicationStats};
use crate::sync::atomic::{AtomicBool, AtomicUsize};
use crate::sync::{AtomicBits, Mutex};

/// With `R = 0` no worker holds a replica of another, so each CPU is watched by the workers at
/// this many positions before it: a few per worker, not the whole pool.
pub(crate) const RING_WATCHERS: usize = 2;

/// One CPU's lease, log and replicas, and how its owner thread is doing.
pub(crate) struct CpuRecovery {
    /// Lease, op log and in-hand slot of this CPU (`crate::replication`). On its own cache
    /// lines: the owner stores its heartbeat there on every pop.
    pub(crate) core: CachePadded<CpuState<Handle>>,
    /// The worker positions holding replicas of this CPU's log: the workers on the `r` CPUs
    /// nearest to it (`Topology::neighbours`), nearest first.
    pub(crate) replica_holders: Box<[usize]>,
    /// The workers that watch this CPU's lease: its replica holders, or with `R = 0` (no
    /// replicas) the [`RING_WATCHERS`] positions before it in position order.
    pub(crate) watchers: Box<[usize]>,
    /// The replicas themselves, in the order of `replica_holders`.
    pub(crate) replicas: Box<[Mutex<Replica<Handle>>]>,
    /// Whether this CPU's owner is idle (parked, not started, or exited): an idle owner's
    /// silent heartbeat is not a stall, and while every CPU is idle the monitor naps.
    pub(crate) idle: IdleMark,
    /// The seat of the thread that owns this CPU's current epoch (`threads::NO_SEAT`: none).
    pub(crate) owner_seat: AtomicUsize,
    /// The OS's view of that thread, published by it when its lease starts, with its epoch.
    pub(crate) owner_probe: Mutex<Option<(u32, ThreadProbe)>>,
    /// This CPU's lease as judged by whoever looks (see `judge`).
    pub(crate) watch: Watch,
    /// The CPUs (and whether the injectors) this CPU's worker took tasks from since it last
    /// parked: what its takeover re-offers besides its own replica (see `sources`).
    pub(crate) sources: TakeSources,
    /// Position 0 of a `use_current_thread` pool: its worker is the thread that built the pool,
    /// which renews its lease only while inside a pool call. Such a CPU is never judged (so
    /// never taken over), and its worker counts as no live watcher; its queued tasks are
    /// reached by stealing, like any worker's.
    pub(crate) caller_owned: bool,
}

impl CpuRecovery {
    /// Whether the owner of the current epoch is idle (see [`idle`](Self::idle)).
    pub(crate) fn owner_idle(&self) -> bool {
        self.idle.is_idle(self.core.lease().epoch())
    }

    /// The probe of the thread owning `epoch`, if that thread published one.
    pub(crate) fn probe_of(&self, epoch: u32) -> Option<ThreadProbe> {
        match *self.owner_probe.lock() {
            Some((e, probe)) if e == epoch => Some(probe),
            _ => None,
        }
    }
}

/// A re-offer of copies for the worker of position `cpu`, put off until `due` so that a worker
/// that only stalled can come back first and carry on with what it holds.
pub(crate) struct PendingReoffer {
    pub(crate) cpu: usize,
    pub(crate) due: Instant,
    pub(crate) what: Reoffer,
}

/// What a [`PendingReoffer`] copies, and what cancels it.
pub(crate) enum Reoffer {
    /// After a takeover: the queues its fenced worker took from. Cancelled when that worker
    /// comes back (`takeover::came_back`).
    Taken {
        /// The epoch the fenced worker owned the position under (`None` when the takeover
        /// fenced no running thread: nobody can come back to cancel it).
        epoch: Option<u32>,
        /// The sources that worker had marked, read right after the fence
        /// (`TakeSources::noted`).
        sources: Vec<usize>,
        /// Earlier tries that found a replica of some source locked past patience (see
        /// `takeover::reoffer_sources`).
        attempts: u32,
    },
    /// At the spare-thread cap, where the stalled worker is not fenced: its in-hand task, its
    /// own CPU's replicas and the sources it marked, all read when due. Skipped if the
    /// worker's heartbeat word (`Lease::heartbeat`) has moved from `heartbeat`, the value it
    /// had when the worker was found stalled: it renewed, so it came back.
    AtCap { heartbeat: u64 },
}

/// A pool's recovery state: per-CPU state, who watches whom, and the takeover counters.
pub(crate) struct RecoveryState {
    /// Indexed by worker position, like the registry's queues.
    pub(crate) cpus: Box<[CachePadded<CpuRecovery>]>,
    /// For each position, the positions whose leases its worker watches (the inverse of
    /// `CpuRecovery::watchers`): a few, whatever the pool's size.
    pub(crate) watches: Box<[Box<[usize]>]>,
    /// Set by the monitor while an expired lease waits for a driver: every worker then also
    /// checks the CPUs marked in `wanted` (see `watch`). Read by each worker every few loop
    /// turns, written rarely: on its own cache line.
    pub(crate) takeover_wanted: CachePadded<AtomicBool>,
    /// The CPUs whose lease expired and waits for a driver. Written by the monitor only.
    pub(crate) wanted: AtomicBits,
    /// Logged heap jobs that sit in an injector, until claimed: submissions from outside the
    /// pool while replication is on, re-offered copies, and a fenced worker's redirected pushes.
    /// No CPU's replica answers for them, so this list is what lets a takeover re-offer one that
    /// a crashed worker had taken from an injector. Pruned by the monitor.
    pub(crate) external: Mutex<Vec<Handle>>,
    /// Re-offers that takeovers put off until their fenced worker has had time to come back
    /// (see `takeover::reoffer_taken`). Served by the monitor; short (one entry per takeover
    /// still within its delay).
    pub(crate) pending: Mutex<Vec<PendingReoffer>>,
    /// Re-offers taken out of `pending` and still queueing their copies. Raised under the
    /// `pending` lock, so whoever finds `pending` empty under it also sees a re-offer that
    /// emptied it and has not finished (see `takeover::settle_reoffers`).
    pub(crate) reoffers_running: AtomicUsize,
    /// Takeover counters (`RecoveryStats`), shared with every CPU's protocol state.
    pub(crate) protocol: Arc<ReplicationStats>,
    /// Tells the monitor thread to exit.
    pub(crate) monitor_stop: AtomicBool,
    /// Where the monitor naps while every CPU is idle.
    pub(crate) monitor_nap: crate::sync::Arc<MonitorNap>,
}

impl RecoveryState {
    /// State for `holders.len()` positions; `holders[i]` are the positions holding replicas of
    /// position `i`'s log. Every CPU starts with its owner idle (not started); position 0 is
    /// the caller's with `use_current_thread`.
    pub(crate) fn new(holders: Vec<Vec<usize>>, use_current_thread: bool) -> Self {
        let n = holders.len();
        let protocol: Arc<ReplicationStats> = Default::default();
        let now = Instant::now();
        let monitor_nap = crate::sync::Arc::new(MonitorNap::new());
        let watchers: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                if holders[i].is_empty() {
                    (1..=RING_WATCHERS.min(n - 1))
                        .map(|k| (i + n - k) % n)
                        .collect()
                } else {
                    holders[i].clone()
                }
            })
            .collect();
        let watches = (0..n)
            .map(|h| (0..n).filter(|&i| watchers[i].contains(&h)).collect())
            .collect();
        let cpus = holders
            .into_iter()
            .enumerate()
            .map(|(i, holders)| {
                CachePadded::new(CpuRecovery {
                    core: CachePadded::new(CpuState::new(
                        i as u32,
                        DEFAULT_LOG_CAPACITY,
                        Arc::clone(&protocol),
                    )),
                    replicas: holders
                        .iter()
                        .map(|_| Mutex::new(Replica::new(0)))
                        .collect(),
                    replica_holders: holders.into_boxed_slice(),
                    watchers: watchers[i].clone().into_boxed_slice(),
                    idle: IdleMark::new(crate::sync::Arc::clone(&monitor_nap)),
                    owner_seat: AtomicUsize::new(NO_SEAT),
                    owner_probe: Mutex::new(None),
                    watch: Watch::new(now),
                    sources: TakeSources::new(n),
                    caller_owned: use_current_thread && i == 0,
                })
            })
            .collect();
        RecoveryState {
            cpus,
            watches,
            takeover_wanted: CachePadded::new(AtomicBool::new(false)),
            wanted: AtomicBits::new(n),
            external: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            reoffers_running: AtomicUsize::new(0),
            protocol,
            monitor_stop: AtomicBool::new(false),
            monitor_nap,
        }
    }
}
