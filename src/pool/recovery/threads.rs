//! Worker threads over a pool's whole life: seats, start, retire, reap, join and shutdown.
//!
//! This file knows threads, not workers: what a worker thread runs is handed to
//! [`Threads::start`] as a closure (`Registry::start_worker` builds it), so recovery can start a
//! replacement without depending on the scheduler.
//!
//! A pool has `num_threads + max_spare_threads` **seats**. Every worker thread, original or
//! replacement, holds one seat from just before it is spawned until it has been *joined*, so the
//! pool never has more worker threads than seats, and no budget is used up for good: a thread
//! that retired is joined by the next takeover that needs a seat (or by shutdown), and its seat
//! serves again. A seat is also the thread's sleep bed (`Sleep`'s beds are indexed by seat), so a
//! fenced worker and its replacement never share one.
//!
//! A takeover marks the fenced thread's seat **fenced** until that thread retires. Shutdown must
//! wait for such a thread: the task it is still running may spawn more work (redirected to the
//! injectors), and someone must be left to run it. A thread that crashed for good at a fault
//! point is not waited for.

use std::io;

use crate::fault::thread_crashed;
use crate::pool::spawn_handler::{SpawnHandler, WorkerHandle, spawn_custom};
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// "No thread": the owner seat of a CPU whose current epoch has no thread.
pub(crate) const NO_SEAT: usize = usize::MAX;

/// The seats of one pool.
pub(crate) struct Threads {
    table: Mutex<Table>,
    /// Per seat: its thread was fenced and has not retired yet.
    fenced: Box<[AtomicBool]>,
    /// The fault-plan id of the next thread started (ids are never reused).
    next_fault_id: AtomicUsize,
}

struct Table {
    /// Free seats, the lowest on top (the first workers get seats `0..n` in order).
    free: Vec<usize>,
    seats: Box<[SeatState]>,
}

enum SeatState {
    Free,
    /// Reserved by a thread about to spawn into it (a takeover driver, or `build`).
    Reserved(std::thread::ThreadId),
    Running(WorkerHandle),
    /// Being joined by shutdown.
    Joining,
    /// Held by the thread that built a `use_current_thread` pool, for its worker 0. The pool
    /// does not own that thread: it is never joined or reaped, and it counts as exited (the
    /// monitor and shutdown do not wait for the user's thread). Freed when that worker leaves
    /// the pool (see `worker::leave_caller`).
    Caller,
}

impl Threads {
    pub(crate) fn new(seats: usize) -> Self {
        Threads {
            table: Mutex::new(Table {
                free: (0..seats).rev().collect(),
                seats: (0..seats).map(|_| SeatState::Free).collect(),
            }),
            fenced: (0..seats).map(|_| AtomicBool::new(false)).collect(),
            next_fault_id: AtomicUsize::new(0),
        }
    }

    /// Reserves a seat for a thread the caller is about to start, first joining threads that
    /// have finished; `None` if every seat is taken (the spare-thread cap).
    pub(crate) fn reserve(&self) -> Option<usize> {
        let mut t = self.table.lock();
        self.reap(&mut t);
        let seat = t.free.pop()?;
        t.seats[seat] = SeatState::Reserved(std::thread::current().id());
        Some(seat)
    }

    /// Whether [`reserve`](Self::reserve) would find a seat now.
    pub(crate) fn has_free_seat(&self) -> bool {
        let mut t = self.table.lock();
        self.reap(&mut t);
        !t.free.is_empty()
    }

    /// Takes a seat for the calling thread, which becomes worker 0 of a `use_current_thread`
    /// pool (see [`SeatState::Caller`]); `None` if every seat is taken.
    pub(crate) fn claim_for_caller(&self) -> Option<usize> {
        let mut t = self.table.lock();
        self.reap(&mut t);
        let seat = t.free.pop()?;
        t.seats[seat] = SeatState::Caller;
        Some(seat)
    }

    /// Gives back a reserved seat whose thread was not started, or the caller's seat.
    pub(crate) fn release(&self, seat: usize) {
        let mut t = self.table.lock();
        t.seats[seat] = SeatState::Free;
        t.free.push(seat);
    }

    /// Joins every finished thread and frees its seat. Joining a finished thread waits only for
    /// the OS to tear it down, so the count of threads never exceeds the seats in use.
    fn reap(&self, t: &mut Table) {
        for seat in 0..t.seats.len() {
            if matches!(&t.seats[seat], SeatState::Running(h) if h.is_finished()) {
                let SeatState::Running(h) = std::mem::replace(&mut t.seats[seat], SeatState::Free)
                else {
                    unreachable!("matched just above");
                };
                h.join();
                self.fenced[seat].store(false, Ordering::Release);
                t.free.push(seat);
            }
        }
        // Lowest seats first: a fresh pool's workers sit in seats `0..n`, and so stay there.
        t.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// The thread in `seat` owned an epoch that a takeover just fenced.
    pub(crate) fn mark_fenced(&self, seat: usize) {
        self.fenced[seat].store(true, Ordering::Release);
    }

    /// Called by a fenced thread as it retires.
    pub(crate) fn retire(&self, seat: usize) {
        self.fenced[seat].store(false, Ordering::Release);
    }

    /// Whether some fenced thread is still running a task (and so may still spawn work). A
    /// thread that crashed at a fault point never will.
    pub(crate) fn fenced_running(&self) -> bool {
        if !self.fenced.iter().any(|f| f.load(Ordering::Acquire)) {
            return false;
        }
        let t = self.table.lock();
        (0..self.fenced.len()).any(|seat| {
            self.fenced[seat].load(Ordering::Acquire)
                && match &t.seats[seat] {
                    SeatState::Running(h) => !h.is_finished() && !h.crashed(),
                    // Shutdown is waiting for it right now: it has not exited.
                    SeatState::Joining => true,
                    SeatState::Free | SeatState::Reserved(_) | SeatState::Caller => false,
                }
        })
    }

    /// Whether every worker thread has exited (or crashed for good), and no live thread is
    /// about to start one.
    pub(crate) fn all_exited(&self) -> bool {
        let t = self.table.lock();
        t.seats.iter().all(|s| match s {
            // The user's thread is not the pool's to wait for.
            SeatState::Free | SeatState::Caller => true,
            SeatState::Reserved(by) => thread_crashed(*by),
            SeatState::Running(h) => h.is_finished() || h.crashed(),
            SeatState::Joining => false,
        })
    }

    /// The fault-plan id of the next thread (ids are never reused).
    pub(crate) fn next_fault_id(&self) -> usize {
        self.next_fault_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts a thread running `body` in the reserved `seat`, through the user's spawn handler
    /// if there is one (it starts every worker thread, replacements included). On error the
    /// seat is given back.
    pub(crate) fn start(
        &self,
        seat: usize,
        spec: ThreadSpec<'_>,
        body: Box<dyn FnOnce() + Send>,
    ) -> io::Result<()> {
        let spawned = match spec.spawn_handler {
            Some(handler) => spawn_custom(handler, spec.index, spec.name, spec.stack_size, body),
            None => {
                let mut b = std::thread::Builder::new().name(spec.name);
                if let Some(size) = spec.stack_size {
                    b = b.stack_size(size);
                }
                b.spawn(body).map(WorkerHandle::Std)
            }
        };
        let mut t = self.table.lock();
        match spawned {
            Ok(handle) => {
                t.seats[seat] = SeatState::Running(handle);
                Ok(())
            }
            Err(e) => {
                t.seats[seat] = SeatState::Free;
                t.free.push(seat);
                Err(e)
            }
        }
    }

    /// Lets the workers drain every queue and exit (`terminate`), and joins them. The monitor
    /// keeps running meanwhile, so a worker that stalls or crashes during the drain is still
    /// taken over, and a fenced worker still running a task is waited for (it may spawn more);
    /// then `stop_monitor` stops and joins it. Only a thread that crashed for good at a fault
    /// point is left behind.
    pub(crate) fn shut_down(&self, terminate: impl FnOnce(), stop_monitor: impl FnOnce()) {
        terminate();
        self.join_all();
        stop_monitor();
        // Replacements a takeover started while we were joining.
        self.join_all();
    }

    /// Joins every worker thread, including replacements started meanwhile, except threads
    /// that crashed for good at a fault point (they never return).
    pub(crate) fn join_all(&self) {
        loop {
            let next = {
                let mut t = self.table.lock();
                let found = (0..t.seats.len())
                    .find(|&s| matches!(&t.seats[s], SeatState::Running(h) if !h.crashed()));
                found.map(|seat| {
                    let SeatState::Running(h) =
                        std::mem::replace(&mut t.seats[seat], SeatState::Joining)
                    else {
                        unreachable!("found just above");
                    };
                    (seat, h)
                })
            };
            let Some((seat, handle)) = next else {
                return;
            };
            let backoff = crate::sync::Backoff::new();
            let finished = loop {
                if handle.is_finished() {
                    break true;
                }
                if handle.crashed() {
                    break false;
                }
                backoff.snooze_or_sleep();
            };
            let mut t = self.table.lock();
            if finished {
                handle.join();
                self.fenced[seat].store(false, Ordering::Release);
                t.seats[seat] = SeatState::Free;
                t.free.push(seat);
            } else {
                t.seats[seat] = SeatState::Running(handle);
            }
        }
    }
}

/// How to start one worker thread.
pub(crate) struct ThreadSpec<'a> {
    /// The worker's position (what a spawn handler's `ThreadBuilder::index` says).
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) spawn_handler: Option<&'a SpawnHandler>,
}
