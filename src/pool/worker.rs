//! The worker thread: its scheduling loop, work finding, and waiting on latches.

use std::cell::Cell;
use std::sync::Arc;

use crossbeam_deque::{Steal, Worker};

use super::job::JobRef;
use super::registry::Registry;
use super::sleep::{CoreLatch, Slept};
use super::stats::bump;
use crate::sync::atomic::Ordering;

/// Rounds of searching (with a CPU pause and a yield) before a worker parks. Short, so an idle
/// pool costs well under 1% CPU, but long enough to catch the next task of a busy phase.
const SPIN_ROUNDS: u32 = 32;

thread_local! {
    static CURRENT: Cell<*const WorkerThread> = const { Cell::new(std::ptr::null()) };
}

/// A worker's own state, on its thread's stack for the thread's whole life.
pub(crate) struct WorkerThread {
    /// The owner end of this worker's deque: used by this thread only.
    deque: Worker<JobRef>,
    pub(crate) index: usize,
    pub(crate) registry: Arc<Registry>,
    rng: Cell<u64>,
}

impl WorkerThread {
    /// The worker running on this thread, if any.
    #[inline]
    pub(crate) fn current() -> Option<&'static WorkerThread> {
        let ptr = CURRENT.with(Cell::get);
        // SAFETY: `CURRENT` is set only by `run` for the lifetime of the `WorkerThread` on its
        // stack and cleared before it is dropped; only this thread reads it.
        unsafe { ptr.as_ref() }
    }

    /// The thread body of worker `index`.
    pub(crate) fn run(deque: Worker<JobRef>, index: usize, registry: Arc<Registry>) {
        let worker = WorkerThread {
            deque,
            index,
            registry,
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xA24B_AED4)),
        };
        CURRENT.with(|c| c.set(&worker));
        let registry = &worker.registry;
        if let Some(h) = &registry.start_handler {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(index)));
        }
        worker.main_loop();
        if let Some(h) = &registry.exit_handler {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(index)));
        }
        CURRENT.with(|c| c.set(std::ptr::null()));
    }

    fn main_loop(&self) {
        let registry = &*self.registry;
        // Exit only when terminating *and* nothing is left anywhere: accepted work always runs.
        self.wait_for(None, || registry.terminating.load(Ordering::Acquire));
    }

    /// Pushes a job this worker will itself wait for (`join`, scope children) onto its own deque;
    /// see `Sleep::new_local_work` for why the cheap wake-up check is enough.
    #[inline]
    pub(crate) fn push(&self, job: JobRef) {
        self.deque.push(job);
        self.registry.sleep.new_local_work();
    }

    /// Pushes a detached task (`spawn`) onto this worker's own deque with the full, fenced
    /// wake-up check: the spawner may go on to block (say, on a channel the task will fill), so
    /// it cannot be relied on to pop the task itself.
    pub(crate) fn push_detached(&self, job: JobRef) {
        self.deque.push(job);
        self.registry.sleep.new_injected_work();
    }

    /// Pops the newest job of this worker's own deque.
    #[inline]
    pub(crate) fn pop(&self) -> Option<JobRef> {
        let job = self.deque.pop();
        if job.is_some() {
            bump(&self.slot_stats().local_pops);
        }
        job
    }

    fn slot_stats(&self) -> &super::stats::SlotStats {
        &self.registry.slots[self.index].stats
    }

    /// Runs a job this worker has taken from a queue.
    ///
    /// "take → claim → run": the job was *taken* by `pop`/`steal`, whose compare-and-swap inside
    /// crossbeam's deque is today the claim (a popped job is owned by the popper). Issue 4 puts
    /// the job in the slot's "in hand" word here and makes `Claim::try_claim` the start's
    /// linearization point across owner, thief and successor.
    #[inline]
    pub(crate) fn execute(&self, job: JobRef) {
        bump(&self.slot_stats().tasks_executed);
        // SAFETY: the job came out of a queue exactly once, so we own its single start.
        unsafe { job.execute() }
    }

    /// Counts a `join` half popped back and run inline.
    #[inline]
    pub(crate) fn count_inline(&self) {
        bump(&self.slot_stats().tasks_executed);
    }

    /// Runs other work until `latch` is set.
    #[inline]
    pub(crate) fn wait_until(&self, latch: &CoreLatch) {
        if !latch.probe() {
            self.wait_for(Some(latch), || latch.probe());
        }
    }

    /// The scheduling loop: find and run work until `done()`; spin briefly when there is none,
    /// then park. `done` is checked only when no work is found, so a terminating worker drains
    /// every queue first.
    fn wait_for(&self, latch: Option<&CoreLatch>, done: impl Fn() -> bool) {
        let sleep = &self.registry.sleep;
        let mut idle_rounds = 0;
        loop {
            // Scheduling point: issue 4 renews the lease heartbeat here (one relaxed store).
            if let Some(job) = self.find_work() {
                idle_rounds = 0;
                self.execute(job);
                continue;
            }
            if done() {
                return;
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
                self.execute(job);
                continue;
            }
            if done() {
                return;
            }
            bump(&self.slot_stats().parks);
            if sleep.sleep(self.index, token, latch) == Slept::Woken {
                bump(&self.slot_stats().unparks);
            }
            idle_rounds = 0;
        }
    }

    /// Own deque, own inbox, own node's injector, same-node victims from a random start, then
    /// remote nodes by distance (their workers in batches, then their injectors).
    fn find_work(&self) -> Option<JobRef> {
        if let Some(job) = self.pop() {
            return Some(job);
        }
        let registry = &*self.registry;
        let me = &registry.slots[self.index];
        let stats = &me.stats;
        loop {
            let mut retry = false;
            // `is_empty` is two plain loads; a failed `steal` on an empty injector costs a
            // `SeqCst` fence, which thieves would otherwise pay on every search.
            match if me.inbox.is_empty() {
                Steal::Empty
            } else {
                me.inbox.steal()
            } {
                Steal::Success(job) => {
                    bump(&stats.injector_pops);
                    return Some(job);
                }
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let injector = &registry.injectors[me.node_index];
            match if injector.is_empty() {
                Steal::Empty
            } else {
                injector.steal_batch_and_pop(&self.deque)
            } {
                Steal::Success(job) => {
                    bump(&stats.injector_pops);
                    return Some(job);
                }
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let local = &registry.node_slots[me.node_index];
            if local.len() > 1 {
                let start = self.next_random() % local.len();
                for k in 0..local.len() {
                    let victim = local[(start + k) % local.len()];
                    if victim == self.index {
                        continue;
                    }
                    match registry.slots[victim].stealer.steal() {
                        Steal::Success(job) => {
                            bump(&stats.steals_same_node);
                            return Some(job);
                        }
                        Steal::Retry => retry = true,
                        Steal::Empty => {}
                    }
                }
            }
            for &node in &registry.remote_order[me.node_index] {
                // A cross-node steal takes about half the victim's queue, paying the remote
                // cache-line transfers once for many tasks.
                for &victim in &registry.node_slots[node] {
                    match registry.slots[victim]
                        .stealer
                        .steal_batch_and_pop(&self.deque)
                    {
                        Steal::Success(job) => {
                            bump(&stats.steals_remote_node);
                            return Some(job);
                        }
                        Steal::Retry => retry = true,
                        Steal::Empty => {}
                    }
                }
                let injector = &registry.injectors[node];
                match if injector.is_empty() {
                    Steal::Empty
                } else {
                    injector.steal_batch_and_pop(&self.deque)
                } {
                    Steal::Success(job) => {
                        bump(&stats.injector_pops);
                        return Some(job);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
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
