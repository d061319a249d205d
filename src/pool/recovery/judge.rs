//! Judging one CPU's lease: the [`Watch`] state any thread may consult, and the rule that says
//! when a silent lease is a stall.
//!
//! **Blocked, not busy.** A lease silent for a whole lease is only taken over if its worker
//! thread is *blocked*: not runnable now, and off its CPU for most of the time it was watched
//! (sleeping, I/O, a lock, a page fault, or a fault-injected stall or crash, which park the
//! thread). A thread that is running or waiting for a CPU (state `R`) is *busy*: a long
//! computation, or an overloaded machine. It has lost no capacity and its queue is reachable by
//! stealing, so it is left alone, counted in `RecoveryStats::busy_expiries`, and probed again a
//! quarter lease later (not at every look). A thread that is blocked now but was mostly on its
//! CPU is measured again before anything is decided. The measurement starts once the lease has
//! been silent for half a lease, so the verdict comes at the full lease. Where the OS gives no
//! view of the thread (off Linux, or no thread owns the epoch), the lease alone decides. See
//! `probe`.
//!
//! The judge sits behind a lock that is only ever `try_lock`ed and is never held across a fault
//! point, so a thread that stalls or crashes cannot take the judging of a CPU with it.

use std::time::{Duration, Instant};

use super::probe::ThreadProbe;
use crate::replication::{Lease, LeaseObserver, LeaseState};
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU64, Ordering};

/// One CPU's shared lease watch.
pub(crate) struct Watch {
    judge: Mutex<Judge>,
    /// `epoch + 1` of a stall already handled at the spare-thread cap (0: none), so that one
    /// stall counts once, not once per check.
    capped: AtomicU64,
}

/// What the watch remembers between two checks of one CPU.
struct Judge {
    observer: LeaseObserver,
    /// The owner thread's CPU time when this silence was first measured.
    sample: Option<CpuSample>,
    /// This silence was already counted as busy.
    busy_counted: bool,
    /// After a busy verdict, the owner is not probed again before this: a long computation is
    /// checked every quarter lease, not at every look (each probe reads a `/proc` file).
    recheck_at: Option<Instant>,
}

#[derive(Clone, Copy)]
struct CpuSample {
    epoch: u32,
    at: Instant,
    cpu: Duration,
}

/// How the owner thread spent a silent lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// Running or runnable: not a stall.
    Busy,
    /// Not runnable, and mostly off its CPU (or no view of the thread): a stall.
    Blocked,
    /// Not enough measured yet, or not runnable now but mostly on its CPU: look again later.
    Undecided,
}

/// What a look at one CPU's lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judgement {
    /// Renewed within the lease, idle, not silent long enough yet, or being judged by someone
    /// else.
    Fine,
    /// Silent for a whole lease but not blocked (busy, or still being measured): not taken over.
    Silent,
    /// A stall already handled at the spare-thread cap, with still no free seat.
    Capped,
    /// A stall, but within the caller's grace: left to others for now.
    Waiting,
    /// A stall of the owner of `epoch`, past the grace: take it over.
    Stalled { epoch: u32 },
}

/// What the judge needs to know about the CPU and the pool at one look.
pub(crate) struct Look<'a> {
    pub(crate) lease: &'a Lease,
    pub(crate) now: Instant,
    /// The pool's lease length.
    pub(crate) lease_len: Duration,
    /// Extra silence to allow before [`Judgement::Stalled`] (the monitor's grace for workers).
    pub(crate) grace: Duration,
    /// The owner of the current epoch is idle (parked, not started, or exited).
    pub(crate) owner_idle: bool,
}

impl Watch {
    pub(crate) fn new(now: Instant) -> Self {
        Watch {
            judge: Mutex::new(Judge {
                observer: LeaseObserver::new(now),
                sample: None,
                busy_counted: false,
                recheck_at: None,
            }),
            capped: AtomicU64::new(0),
        }
    }

    /// Marks the stall at `epoch` as handled at the cap; `false` if it already was.
    pub(crate) fn mark_capped(&self, epoch: u32) -> bool {
        let tag = u64::from(epoch) + 1;
        self.capped.swap(tag, Ordering::AcqRel) != tag
    }

    /// Judges the lease at `look`. `probe_of(epoch)` is the OS's view of the thread owning
    /// `epoch`; `seat_free()` says whether a replacement could start now; `count_busy` is called
    /// once per busy silence. The lock is released on return: a takeover that follows has fault
    /// points.
    pub(crate) fn judge(
        &self,
        look: Look<'_>,
        probe_of: impl Fn(u32) -> Option<ThreadProbe>,
        seat_free: impl FnOnce() -> bool,
        count_busy: impl FnOnce(),
    ) -> Judgement {
        let Some(mut judge) = self.judge.try_lock() else {
            return Judgement::Fine;
        };
        let Look {
            lease,
            now,
            lease_len,
            grace,
            owner_idle,
        } = look;
        if owner_idle {
            // Parked, not started yet, or exited: a full lease starts again when it runs.
            judge.observer = LeaseObserver::new(now);
            judge.reset();
            return Judgement::Fine;
        }
        let epoch = match judge.observer.observe(lease, now, lease_len / 2) {
            LeaseState::Alive => {
                // Moving again: a later stall of the same epoch is a new one.
                judge.reset();
                if self.capped.load(Ordering::Relaxed) != 0 {
                    self.capped.store(0, Ordering::Release);
                }
                return Judgement::Fine;
            }
            LeaseState::Expired { epoch } => epoch,
        };
        // Silent for half a lease: start measuring how its thread spends the silence. The probe
        // (a lock, and later `/proc` reads) is taken only when a sample or a verdict needs it.
        judge.start_sample(&probe_of, epoch, now);
        // Same sample, so only the threshold differs: silent for a full lease yet?
        if judge.observer.observe(lease, now, lease_len) == LeaseState::Alive {
            return Judgement::Fine;
        }
        if judge.recheck_at.is_some_and(|t| now < t) {
            return Judgement::Silent;
        }
        match judge.activity(probe_of(epoch), epoch, now, lease_len) {
            Activity::Blocked => {}
            Activity::Busy => {
                judge.recheck_at = Some(now + lease_len / 4);
                if !judge.busy_counted {
                    judge.busy_counted = true;
                    count_busy();
                }
                return Judgement::Silent;
            }
            Activity::Undecided => return Judgement::Silent,
        }
        if self.capped.load(Ordering::Acquire) == u64::from(epoch) + 1 && !seat_free() {
            // Handled at the spare-thread cap already; tried again once a seat is free.
            return Judgement::Capped;
        }
        // Past the caller's grace too?
        if judge.observer.observe(lease, now, lease_len + grace) == LeaseState::Alive {
            return Judgement::Waiting;
        }
        Judgement::Stalled { epoch }
    }
}

impl Judge {
    /// The lease moved (or the owner is idle): a new silence starts from scratch.
    fn reset(&mut self) {
        self.sample = None;
        self.busy_counted = false;
        self.recheck_at = None;
    }

    /// How the owner of `epoch` (seen through `probe`) has spent the silence so far.
    fn activity(
        &mut self,
        probe: Option<ThreadProbe>,
        epoch: u32,
        now: Instant,
        lease: Duration,
    ) -> Activity {
        let Some(probe) = probe else {
            return Activity::Blocked;
        };
        if probe.is_runnable() == Some(true) {
            return Activity::Busy;
        }
        let Some(cpu) = probe.cpu_time() else {
            // The thread is gone: nothing runs this CPU.
            return Activity::Blocked;
        };
        match self.sample {
            Some(s) if s.epoch == epoch && now.saturating_duration_since(s.at) >= lease / 4 => {
                let wall = now.saturating_duration_since(s.at);
                if cpu.saturating_sub(s.cpu) * 2 <= wall {
                    return Activity::Blocked;
                }
                // Blocked now, but mostly on its CPU: measure a fresh window.
                self.sample = Some(CpuSample {
                    epoch,
                    at: now,
                    cpu,
                });
                Activity::Undecided
            }
            Some(s) if s.epoch == epoch => Activity::Undecided,
            _ => {
                self.sample = Some(CpuSample {
                    epoch,
                    at: now,
                    cpu,
                });
                Activity::Undecided
            }
        }
    }

    /// Starts measuring the owner's CPU time, once per silence.
    fn start_sample(
        &mut self,
        probe_of: impl Fn(u32) -> Option<ThreadProbe>,
        epoch: u32,
        now: Instant,
    ) {
        if self.sample.is_some_and(|s| s.epoch == epoch) {
            return;
        }
        self.sample = probe_of(epoch)
            .and_then(|p| p.cpu_time())
            .map(|cpu| CpuSample {
                epoch,
                at: now,
                cpu,
            });
    }
}
