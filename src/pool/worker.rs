//! The worker thread: its scheduling loop, work finding, and waiting on latches.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crossbeam_deque::{Steal, Stealer, Worker};

use super::fork::{ForkWindow, Hunger};
use super::generations::Owner;
use super::job::{Handle, JobRef, Starter};
use super::recovery::logged::RunOnce;
use super::recovery::seam::{self, Publish, Seam};
use super::registry::{Registry, WorkerPlace, WorkerStart};
use super::sleep::{SleepLatch, Slept};
use super::stats::{WorkerStats, bump};
use crate::fault::{FaultPoint, point};
use crate::replication::Start;
use crate::sync::atomic::Ordering;

/// Rounds of searching (with a CPU pause and a yield) before a worker parks. Short, so an idle
/// pool costs well under 1% CPU, but long enough to catch the next task of a busy phase.
const SPIN_ROUNDS: u32 = 32;

/// Failed searches (rounds of the spin above) before a worker counts itself hungry (see `fork`).
const HUNGRY_AFTER: u32 = 4;

/// A same-node victim with more queued tasks than this is stolen from in a batch
/// (`WorkerThread::steal_local`). Above the depth of any realistic `join` tree's deque (one
/// pending half per level), far below a `spawn` flood's.
const BACKLOG: usize = 32;

thread_local! {
    static CURRENT: Cell<*const WorkerThread> = const { Cell::new(std::ptr::null()) };
    /// Worker 0 of each `use_current_thread` pool this thread built (see [`CallerWorkers`]).
    static CALLER_WORKERS: RefCell<CallerWorkers> = const { RefCell::new(CallerWorkers(Vec::new())) };
}

/// The workers of `use_current_thread` pools that live on this (the user's) thread, boxed so
/// that `CURRENT` and the frames of pool calls can point at them.
///
/// A box is freed only when the thread exits, never when its worker leaves its pool: a worker
/// can leave while a pool call on this thread still holds a reference to it (the pool was
/// dropped inside a `join` closure, say), and nothing cheap tells us that no such frame is left.
/// So a thread that builds many `use_current_thread` pools keeps each one's registry until it
/// exits (rayon-core keeps it for the process's life).
#[allow(clippy::vec_box)] // boxed so that pointers to them survive the Vec growing
struct CallerWorkers(Vec<Box<WorkerThread>>);

impl Drop for CallerWorkers {
    fn drop(&mut self) {
        // The thread is exiting: its pools carry on without it.
        CURRENT.with(|c| c.set(std::ptr::null()));
        for w in &self.0 {
            if !w.left.get() {
                w.hand_back();
            }
        }
    }
}

/// A worker's own state: on its thread's stack for the thread's whole life, or, for worker 0 of
/// a `use_current_thread` pool, in [`CALLER_WORKERS`] on the user's thread.
pub(crate) struct WorkerThread {
    /// The owner end of this worker's deque: used by this thread only.
    deque: Worker<JobRef>,
    /// Says "no more pushes into `deque`" when this worker is gone, so that its CPU's list of
    /// deques can drop it once drained.
    _owner: Owner,
    /// Worker 0 of a `use_current_thread` pool: the user's thread, not the pool's.
    caller_owned: bool,
    /// A caller-owned worker that left its pool (dropped or shut down on this thread).
    left: Cell<bool>,
    /// Jobs this thread is executing right now (nested). A caller-owned worker whose pool
    /// terminated is only hidden from [`current`](Self::current) outside every job, so that a
    /// job it is running still finds its worker.
    depth: Cell<u32>,
    pub(crate) index: usize,
    /// This thread's seat (see `recovery::threads`): its sleep bed, and what latches wake.
    pub(crate) seat: usize,
    pub(crate) registry: Arc<Registry>,
    /// `&registry.workers[index]`, resolved once: the hot path (counters, inbox) then costs no
    /// pointer chase and no bounds check per `join`. Valid for as long as `registry` is held,
    /// i.e. the worker's whole life.
    place: *const WorkerPlace,
    rng: Cell<u64>,
    /// This worker's lease, and the rest of its side of recovery.
    seam: Seam,
    /// This thread's worker id in a fault plan.
    fault_id: usize,
    /// When this worker's `join`s fork (see `fork`).
    forks: ForkWindow,
}

impl WorkerThread {
    /// The worker running on this thread, if any.
    #[inline]
    pub(crate) fn current() -> Option<&'static WorkerThread> {
        let ptr = CURRENT.with(Cell::get);
        // SAFETY: `CURRENT` is set by `run` for the lifetime of the `WorkerThread` on its stack
        // and cleared before it is dropped, or by `register_caller` to a box that lives until
        // the thread exits (whose destructor clears it); only this thread reads it.
        let w = unsafe { ptr.as_ref() }?;
        if w.caller_owned && w.caller_hidden() {
            return None;
        }
        Some(w)
    }

    /// A caller-owned worker outside every job, whose pool is gone (it left, or the pool was
    /// dropped on another thread): this thread is then no worker, and a `spawn` or `join` here
    /// goes to the global pool instead of a deque no one pops.
    #[cold]
    fn caller_hidden(&self) -> bool {
        self.depth.get() == 0
            && (self.left.get() || self.registry.terminating.load(Ordering::Acquire))
    }

    /// The state of a worker described by `start`, not yet started.
    fn new(registry: Arc<Registry>, start: WorkerStart, caller_owned: bool) -> Self {
        let WorkerStart {
            index,
            seat,
            deque,
            owner,
            token,
            fault_id,
        } = start;
        let place: *const WorkerPlace = &*registry.workers[index];
        WorkerThread {
            deque,
            _owner: owner,
            caller_owned,
            left: Cell::new(false),
            depth: Cell::new(0),
            index,
            seat,
            seam: Seam::new(&registry, index, token, fault_id),
            registry,
            place,
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (fault_id as u64 + 1).wrapping_mul(0xA24B_AED4)),
            fault_id,
            forks: ForkWindow::new(),
        }
    }

    /// Runs the start handler, then starts the lease (this thread is `CURRENT` already).
    fn start(&self) {
        if let Some(h) = &self.registry.start_handler {
            self.registry.call_handler(h, self.index);
        }
        self.seam.begin_lease();
    }

    /// Makes the calling thread worker 0 of `registry` (`use_current_thread`), as `start`
    /// says: runs the start handler here, then starts the lease. No thread is spawned, no
    /// fault plan is entered and the thread is not pinned (it is the user's). The thread then
    /// works for the pool only inside pool calls; it leaves through
    /// [`leave_caller`](Self::leave_caller) or when it exits.
    pub(crate) fn register_caller(registry: Arc<Registry>, start: WorkerStart) {
        let worker = Box::new(WorkerThread::new(registry, start, true));
        let ptr: *const WorkerThread = &*worker;
        CALLER_WORKERS.with(|c| c.borrow_mut().0.push(worker));
        CURRENT.with(|c| c.set(ptr));
        // SAFETY: the box just moved into `CALLER_WORKERS`, which frees it only at thread exit.
        unsafe { &*ptr }.start();
    }

    /// If this thread is worker 0 of `registry` (`use_current_thread`) and not inside one of
    /// its jobs, leaves the pool: with `drain`, first runs queued work until none is found
    /// (the caller may be the pool's only worker); then queues what is left in its deque on
    /// the injector, gives back its seat and runs the exit handler. Returns whether it left.
    ///
    /// Inside a job (the pool was dropped by a task running on this thread) it stays: the
    /// frames below still use it. It is then hidden once they return (see `current`).
    pub(crate) fn leave_caller(registry: &Arc<Registry>, drain: bool) -> bool {
        let ptr = CURRENT.with(Cell::get);
        // SAFETY: as in `current`.
        let Some(w) = (unsafe { ptr.as_ref() }) else {
            return false;
        };
        if !w.caller_owned || w.left.get() || w.depth.get() > 0 {
            return false;
        }
        if !Arc::ptr_eq(&w.registry, registry) {
            return false;
        }
        if drain {
            w.wait_for(None, || true);
        }
        w.hand_back();
        if let Some(h) = &w.registry.exit_handler {
            w.registry.call_handler(h, 0);
        }
        true
    }

    /// A caller-owned worker gives its work and seat back: it is hidden from `current` from
    /// now on, its queued tasks go to the injector (the other workers run them), its CPU reads
    /// idle, and its seat is free. The box stays until the thread exits (see `CallerWorkers`).
    fn hand_back(&self) {
        self.left.set(true);
        while let Some(job) = self.deque.pop() {
            self.registry.inject(job);
        }
        self.seam.hand_back(&self.registry, self.seat);
    }

    /// The thread body of the worker `start` describes (the registry's `WorkerMain`).
    pub(crate) fn run(registry: Arc<Registry>, start: WorkerStart) {
        let index = start.index;
        let worker = WorkerThread::new(registry, start, false);
        CURRENT.with(|c| c.set(&worker));
        worker.start();
        worker.main_loop();
        worker.seam.leaving(&worker.registry);
        // Off the pool before the exit handler: a task it spawns goes to the global pool rather
        // than into a deque no one will pop.
        CURRENT.with(|c| c.set(std::ptr::null()));
        let registry = &worker.registry;
        if let Some(h) = &registry.exit_handler {
            registry.call_handler(h, index);
        }
        worker.seam.retire(&worker.registry, worker.seat);
    }

    fn main_loop(&self) {
        let registry = &*self.registry;
        // Exit only when terminating, nothing is left anywhere, no fenced worker is still
        // running a task (it may spawn more, redirected to the injectors), and no takeover's
        // re-offer is pending (it may bring back a task a dead worker held): accepted work
        // always runs.
        self.wait_for(None, || {
            registry.terminating.load(Ordering::Acquire)
                && !registry.threads.fenced_running()
                && seam::settle_reoffers(registry)
        });
    }

    #[inline]
    fn place(&self) -> &WorkerPlace {
        // SAFETY: `place` points into the registry's worker array, which this worker keeps
        // alive through `registry` and which is never resized.
        unsafe { &*self.place }
    }

    /// Whether a successor has fenced this worker's epoch (see `Seam::is_fenced`).
    #[inline]
    pub(crate) fn is_fenced(&self) -> bool {
        self.seam.is_fenced()
    }

    /// A fenced worker's push goes to its node's injector instead of its old deque (G4: nothing
    /// is enqueued under the old epoch; the task is redirected, never lost).
    pub(crate) fn redirect(&self, job: JobRef) {
        seam::redirect(&self.registry, job);
    }

    /// Whether this `join` should queue its A (see `fork`).
    #[inline]
    pub(crate) fn should_fork(&self) -> bool {
        self.forks
            .should_fork(self.deque.len(), &self.registry.hunger)
    }

    /// Pushes a `join` half this worker will itself wait for onto its own deque; see
    /// `Sleep::new_local_work` for why the cheap wake-up check is enough. It is not logged: it
    /// lives in this worker's stack frame (see `src/replication/README.md`, "Stack jobs").
    ///
    /// The caller has just checked [`is_fenced`](Self::is_fenced) (`join` does, once per call):
    /// checking again here would only shrink, never close, the window between a check and the
    /// push, and a push that lands in the window is still drained by thieves and the successor,
    /// which steal from every deque this CPU has had.
    #[inline]
    pub(crate) fn push_unfenced(&self, job: JobRef) {
        self.deque.push(job);
        self.local_work_pushed();
    }

    /// Pushes a heap job (`spawn`, a scope child) onto this worker's own deque. With replication
    /// on, it is first published to this CPU's op log (see `logged`). `detached` jobs (`spawn`)
    /// take the full, fenced wake-up check: the spawner may go on to block (say, on a channel the
    /// task will fill), so it cannot be relied on to pop the task itself.
    pub(crate) fn push_heap(&self, job: impl RunOnce, detached: bool) {
        let job = match self.seam.publish(&self.registry, job) {
            Publish::Queue(job) => job,
            Publish::Redirect(job) => return self.registry.inject(job),
        };
        self.deque.push(job);
        if detached {
            self.registry.sleep.new_injected_work();
        } else {
            self.local_work_pushed();
        }
    }

    /// After a push onto our own deque of a task we will run ourselves if nobody takes it:
    /// wakes a sleeper unless some worker is awake and searching (`Sleep::new_local_work`).
    #[inline]
    fn local_work_pushed(&self) {
        self.registry
            .sleep
            .new_local_work(|| self.registry.hunger.count());
    }

    /// Pops the newest job of this worker's own deque; a scheduling point. A fenced worker never
    /// pops (G4): its old deque is drained by stealing.
    #[inline]
    pub(crate) fn pop(&self) -> Option<JobRef> {
        // The fault point comes before the lease check, so that a stall there is followed by a
        // check that sees the fence (the check stays as close to the pop as it can).
        point(FaultPoint::BeforePop, self.fault_id);
        self.seam.renew();
        if self.is_fenced() {
            return None;
        }
        let job = self.deque.pop();
        if job.is_some() {
            point(FaultPoint::AfterPop, self.fault_id);
            bump(&self.stats().local_pops);
        }
        job
    }

    /// `join`'s pop: like [`pop`](Self::pop), but when the newest job is `mine` (the `join`'s own
    /// B, part of the task this worker is running) it needs no lease check, because a fenced
    /// worker still finishes its running task (G4). Any other job is checked after the pop and,
    /// if a successor fenced us, redirected to the injector unstarted, so it is not lost. This
    /// keeps the common pop-back path of every `join` to the heartbeat store, the deque's pop and
    /// a counter.
    #[inline]
    pub(crate) fn pop_own(&self, mine: JobRef) -> Option<JobRef> {
        point(FaultPoint::BeforePop, self.fault_id);
        self.seam.renew();
        let job = self.deque.pop()?;
        point(FaultPoint::AfterPop, self.fault_id);
        if job != mine && self.is_fenced() {
            self.redirect(job);
            return None;
        }
        bump(&self.stats().local_pops);
        Some(job)
    }

    #[inline]
    fn stats(&self) -> &WorkerStats {
        &self.place().stats
    }

    /// Runs a job this worker has taken from a queue.
    ///
    /// "take → claim → run": the job was *taken* by `pop`/`steal` (a popped job is owned by the
    /// popper). A logged job then starts through this worker (see the `Starter` impl below):
    /// recorded in hand, lease checked, claimed, so that exactly one of its copies runs.
    #[inline]
    pub(crate) fn execute(&self, job: JobRef) {
        bump(&self.stats().tasks_executed);
        self.depth.set(self.depth.get() + 1);
        // SAFETY: the job came out of a queue exactly once, so we own its single start.
        unsafe { job.execute_on(self) };
        // Jobs catch their own panics, so this is reached (and if one ever unwound, a depth
        // left high only keeps a caller-owned worker visible, never hides one in use).
        self.depth.set(self.depth.get() - 1);
    }

    /// Counts a `join` half popped back and run inline.
    #[inline]
    pub(crate) fn count_inline(&self) {
        bump(&self.stats().tasks_executed);
    }

    /// [`crate::yield_now`] on this worker: a scheduling point that runs at most one found task.
    pub(crate) fn yield_now(&self) -> super::Yield {
        // No separate renewal: `find_work` starts with `pop`, which renews the lease.
        if self.is_fenced() {
            return super::Yield::Idle;
        }
        match self.find_work() {
            Some(job) => {
                self.execute(job);
                super::Yield::Executed
            }
            None => super::Yield::Idle,
        }
    }

    /// [`crate::yield_local`] on this worker: like [`yield_now`](Self::yield_now), but only its
    /// own deque and its broadcast inbox, never another worker's queue or an injector.
    pub(crate) fn yield_local(&self) -> super::Yield {
        // `pop` renews the lease and returns nothing once fenced; a fenced worker takes no work.
        let job = self.pop().or_else(|| {
            if self.seam.seen_fenced() {
                return None;
            }
            let inbox = &self.place().inbox;
            loop {
                match inbox.steal() {
                    Steal::Success(job) => break Some(job),
                    Steal::Retry => continue,
                    Steal::Empty => break None,
                }
            }
        });
        match job {
            Some(job) => {
                self.execute(job);
                super::Yield::Executed
            }
            None => super::Yield::Idle,
        }
    }

    /// Whether this worker's own deque holds queued tasks (`current_thread_has_pending_tasks`).
    pub(crate) fn has_pending_tasks(&self) -> bool {
        !self.deque.is_empty()
    }

    /// Runs other work until `latch` is set.
    #[inline]
    pub(crate) fn wait_until(&self, latch: &SleepLatch) {
        if !latch.probe() {
            self.wait_for(Some(latch), || latch.probe());
        }
    }

    /// The scheduling loop: find and run work until `done()`; spin briefly when there is none,
    /// then park.
    ///
    /// Waiting for a latch, `done` is checked **first**, before any more work is taken: taking an
    /// unrelated task first would delay the waiter by that task, and nest that task's frame inside
    /// the waiting one (without bound, over many queued tasks that each wait). The main loop
    /// (no latch) checks `done` only when no work is found, so a terminating worker drains every
    /// queue first.
    fn wait_for(&self, latch: Option<&SleepLatch>, done: impl Fn() -> bool) {
        let sleep = &self.registry.sleep;
        let mut hunger = HungerMark::new(&self.registry.hunger, self.index);
        let mut idle_rounds = 0;
        loop {
            if latch.is_some() && done() {
                return;
            }
            // Scheduling point: renew the lease (one relaxed store), maybe watch the neighbours.
            if self.seam.scheduling_point(&self.registry) {
                // Retire from the main loop: a successor owns this CPU now. Whatever is left in
                // our old deque is drained by stealing. Inside a latch wait, the task we were
                // running when fenced goes on: wait for its latch without taking new work.
                if let Some(latch) = latch {
                    hunger.fed();
                    self.wait_fenced(latch);
                }
                return;
            }
            if let Some(job) = self.find_work() {
                idle_rounds = 0;
                hunger.fed();
                self.execute(job);
                continue;
            }
            if done() {
                if latch.is_none() && self.last_look() {
                    hunger.fed();
                    idle_rounds = 0;
                    continue;
                }
                return;
            }
            // After a few failed searches, and until it finds work, this worker makes busy ones
            // fork their joins. Not at once: a worker that finds its next task a search or two
            // later (a chain of spawns) would pay two shared read-modify-writes per task.
            if idle_rounds >= HUNGRY_AFTER {
                hunger.hungry();
            }
            if idle_rounds < SPIN_ROUNDS {
                idle_rounds += 1;
                crate::sync::spin_loop();
                std::thread::yield_now();
                continue;
            }
            let token = sleep.get_sleepy();
            if let Some(job) = self.find_work() {
                idle_rounds = 0;
                hunger.fed();
                self.execute(job);
                continue;
            }
            if done() {
                if latch.is_none() && self.last_look() {
                    hunger.fed();
                    idle_rounds = 0;
                    continue;
                }
                return;
            }
            bump(&self.stats().parks);
            if self.park(token, latch) == Slept::Woken {
                bump(&self.stats().unparks);
            }
            idle_rounds = 0;
        }
    }

    /// The main loop's last search before it exits: runs one job if it finds one. Its earlier
    /// search came before it read `terminating`, so a task pushed just before `terminate` (a
    /// `spawn_broadcast` job in this worker's inbox, say, which only it may run) could have been
    /// missed; a search made after reading `terminating` sees every push that preceded it.
    #[cold]
    fn last_look(&self) -> bool {
        match self.find_work() {
            Some(job) => {
                self.execute(job);
                true
            }
            None => false,
        }
    }

    /// Parks on this thread's own bed, its CPU marked idle meanwhile (see `Seam::park`).
    fn park(&self, token: u64, latch: Option<&SleepLatch>) -> Slept {
        self.seam.park();
        let slept = self.registry.sleep.sleep(self.seat, token, latch);
        self.seam.unpark();
        slept
    }

    /// A fenced worker inside a `join`, `scope` or `install` of the task it was running when
    /// fenced: waits for the latch without taking new work. Taking work here would nest frames
    /// without bound (a fenced worker never pops its own jobs back), and the work it waits for is
    /// reachable by the replacement and thieves (old deque, injectors).
    ///
    /// It polls (spin, yield, then sleeps growing to 1 ms) rather than parking: a parked thread
    /// counts as a sleeper, and a wake-up meant for new work (`wake_any`) could then land on this
    /// thread, which would not take the work, while the workers that would stay asleep. Fenced
    /// waits are rare and end when a thief or the replacement finishes the awaited job.
    fn wait_fenced(&self, latch: &SleepLatch) {
        let backoff = crate::sync::Backoff::new();
        while !latch.probe() {
            backoff.snooze_or_sleep();
        }
    }

    /// Own deque, own inbox, own node's injector, same-node victims from a random start, then
    /// remote nodes by distance (their workers in batches, then their injectors).
    fn find_work(&self) -> Option<JobRef> {
        if let Some(job) = self.pop() {
            return Some(job);
        }
        if self.seam.seen_fenced() {
            // Fenced (seen by `pop`): no new work, and nothing may enter this worker's deque.
            // What is left in it is drained by thieves and the successor, which steal from
            // every deque this CPU has had.
            return None;
        }
        let registry = &*self.registry;
        let me = self.place();
        let stats = &me.stats;
        // One epoch pin for the whole search: every steal below (crossbeam's deques, a CPU's
        // list of deques) pins too, and a pin inside a pin is a counter bump. Unpinned, each
        // steal is a first pin, and every 128th first pin scans every thread that ever pinned
        // (`Global::try_advance`): with hundreds of workers that scan was most of a search.
        let _pin = crossbeam_epoch::pin();
        loop {
            let mut retry = false;
            // `is_empty` is two plain loads; a failed `steal` on an empty injector costs a
            // `SeqCst` fence, which thieves would otherwise pay on every search.
            let inbox = if me.inbox.is_empty() {
                Steal::Empty
            } else {
                me.inbox.steal()
            };
            if let Some(job) = found(inbox, &mut retry) {
                bump(&stats.injector_pops);
                return Some(job);
            }
            if let Some(job) = found(
                self.take_from(&registry.injectors[me.node_index]),
                &mut retry,
            ) {
                bump(&stats.injector_pops);
                return Some(job);
            }
            // Our own CPU's other deques: a replacement drains its predecessor's, and copies
            // re-offered from our CPU's replicas wait in its re-offer deque. In batches, as
            // from an injector: after a takeover there can be thousands of copies, most of
            // them of tasks that already ran. No source mark: their tasks are our CPU's, which
            // its replicas answer for.
            let own = me.generations.steal_with(|s| {
                if s.is_empty() {
                    Steal::Empty
                } else {
                    s.steal_batch_and_pop(&self.deque)
                }
            });
            if let Some(job) = found(own, &mut retry) {
                point(FaultPoint::MidSteal, self.fault_id);
                bump(&stats.steals_same_node);
                return Some(job);
            }
            let local = &registry.node_workers[me.node_index];
            if local.len() > 1 {
                let start = self.next_random() % local.len();
                for k in 0..local.len() {
                    let victim = local[(start + k) % local.len()];
                    if victim == self.index {
                        continue;
                    }
                    let stolen = registry.workers[victim]
                        .generations
                        .steal_with(|s| self.steal_from(victim, s, |s, n| self.steal_local(s, n)));
                    if let Some(job) = found(stolen, &mut retry) {
                        point(FaultPoint::MidSteal, self.fault_id);
                        bump(&stats.steals_same_node);
                        return Some(job);
                    }
                }
            }
            for &node in &registry.remote_order[me.node_index] {
                // A cross-node steal takes about half the victim's queue, paying the remote
                // cache-line transfers once for many tasks.
                for &victim in &registry.node_workers[node] {
                    let stolen = registry.workers[victim].generations.steal_with(|s| {
                        self.steal_from(victim, s, |s, _| s.steal_batch_and_pop(&self.deque))
                    });
                    if let Some(job) = found(stolen, &mut retry) {
                        point(FaultPoint::MidSteal, self.fault_id);
                        bump(&stats.steals_remote_node);
                        return Some(job);
                    }
                }
                if let Some(job) = found(self.take_from(&registry.injectors[node]), &mut retry) {
                    bump(&stats.injector_pops);
                    return Some(job);
                }
            }
            if !retry || self.seam.seen_fenced() {
                return None;
            }
        }
    }

    /// Takes a batch from an injector into our deque. An injector that looks empty is skipped
    /// without a `steal`, whose failure would cost a `SeqCst` fence on every search; one that
    /// does not is first recorded as a source (`Seam::may_take_from`).
    #[inline]
    fn take_from(&self, injector: &crossbeam_deque::Injector<JobRef>) -> Steal<JobRef> {
        if injector.is_empty() || !self.seam.may_take_from(self.seam.injectors()) {
            Steal::Empty
        } else {
            injector.steal_batch_and_pop(&self.deque)
        }
    }

    /// Steals with `steal` from one of CPU `victim`'s deques, given the length it showed. A
    /// deque that looks empty is skipped (two loads and a fence, but no pin and no CAS); one
    /// that does not is first recorded as a source, so that if this worker crashes holding the
    /// task, its takeover re-offers it from the victim's replicas (`Seam::may_take_from`).
    #[inline]
    fn steal_from(
        &self,
        victim: usize,
        stealer: &Stealer<JobRef>,
        steal: impl FnOnce(&Stealer<JobRef>, usize) -> Steal<JobRef>,
    ) -> Steal<JobRef> {
        let len = stealer.len();
        if len == 0 || !self.seam.may_take_from(victim) {
            Steal::Empty
        } else {
            steal(stealer, len)
        }
    }

    /// One steal from a deque on our own node: a single task, as rayon takes, unless the
    /// victim has a backlog of more than [`BACKLOG`] tasks, in which case a batch (half of it,
    /// at most crossbeam's 32) moves into our own deque. A flood of `spawn`s from one task
    /// otherwise costs its thief a steal (an epoch pin, a `SeqCst` fence and a CAS on the
    /// victim's line) per task, and the thief falls behind the spawner: measured in the 2-worker
    /// `inside` case of `examples/spawn_scale`. A `join` tree's deque holds one pending half per
    /// level, so it stays under the backlog and its thieves keep taking the oldest half alone.
    #[inline]
    fn steal_local(&self, stealer: &Stealer<JobRef>, len: usize) -> Steal<JobRef> {
        if len > BACKLOG {
            stealer.steal_batch_and_pop(&self.deque)
        } else {
            stealer.steal()
        }
    }

    /// xorshift64: victim selection only needs to spread, not to be unpredictable.
    fn next_random(&self) -> usize {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x as usize
    }
}

/// One steal attempt's outcome: the job if it succeeded; a `Retry` (lost a race, the victim may
/// still hold work) is remembered so the search runs again before the worker sleeps.
#[inline]
fn found(steal: Steal<JobRef>, retry: &mut bool) -> Option<JobRef> {
    match steal {
        Steal::Success(job) => Some(job),
        Steal::Retry => {
            *retry = true;
            None
        }
        Steal::Empty => None,
    }
}

/// Counts a waiting worker hungry (see `fork`) from its [`HUNGRY_AFTER`]th failed search until it
/// finds work or stops waiting. `marked` mirrors the position's mark in [`Hunger`] so that the
/// shared mark is touched only on a change.
struct HungerMark<'a> {
    hunger: &'a Hunger,
    position: usize,
    marked: bool,
}

impl<'a> HungerMark<'a> {
    fn new(hunger: &'a Hunger, position: usize) -> Self {
        HungerMark {
            hunger,
            position,
            marked: false,
        }
    }

    #[inline]
    fn hungry(&mut self) {
        if !self.marked {
            self.marked = true;
            self.hunger.hungry(self.position);
        }
    }

    #[inline]
    fn fed(&mut self) {
        if self.marked {
            self.marked = false;
            self.hunger.fed(self.position);
        }
    }
}

impl Drop for HungerMark<'_> {
    fn drop(&mut self) {
        self.fed();
    }
}

/// A logged job taken by this worker starts through its lease (see `Seam::start`).
impl Starter for WorkerThread {
    fn start(&self, handle: Handle) -> (Start, Option<Handle>) {
        self.seam.start(handle)
    }

    fn requeue(&self, handle: Handle) {
        seam::requeue(&self.registry, handle);
    }
}
