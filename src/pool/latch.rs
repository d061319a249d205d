//! Latches: how a finished job tells its waiter.
//!
//! - [`SpinLatch`]: the waiter is a worker, which keeps running other tasks while it waits and
//!   parks through [`Sleep`](super::sleep::Sleep) when there are none. Used by `join` and by
//!   `install` from a worker of another pool.
//! - [`LockLatch`]: the waiter is a thread outside every pool and simply blocks.
//! - [`CountLatch`]: set when a count of outstanding children reaches zero (scopes, broadcasts).

use std::sync::Arc;

use super::job::Latch;
use super::registry::Registry;
use super::sleep::SleepLatch;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{Condvar, Mutex};

/// A latch a worker of `registry` waits on; `owner` is the waiting thread's seat (its sleep bed).
pub(crate) struct SpinLatch<'r> {
    pub(crate) core: SleepLatch,
    registry: &'r Arc<Registry>,
    owner: usize,
    /// The setter may be a worker of another pool, which holds no reference to ours: then it must
    /// keep our registry alive itself while it wakes the owner.
    cross: bool,
}

impl<'r> SpinLatch<'r> {
    pub(crate) fn new(registry: &'r Arc<Registry>, owner: usize) -> Self {
        SpinLatch {
            core: SleepLatch::new(),
            registry,
            owner,
            cross: false,
        }
    }

    pub(crate) fn cross(registry: &'r Arc<Registry>, owner: usize) -> Self {
        SpinLatch {
            cross: true,
            ..SpinLatch::new(registry, owner)
        }
    }
}

impl Latch for SpinLatch<'_> {
    unsafe fn set(this: *const Self) {
        // SAFETY: `this` is valid until `core.set()` below publishes "set"; everything needed
        // afterwards is copied out first.
        unsafe {
            let owner = (*this).owner;
            if (*this).cross {
                let registry = Arc::clone((*this).registry);
                if (*this).core.set() {
                    registry.sleep.wake_specific(owner);
                }
            } else {
                // Same pool: the setter is one of its workers and holds the registry alive.
                let registry: *const Registry = &**(*this).registry;
                if (*this).core.set() {
                    (*registry).sleep.wake_specific(owner);
                }
            }
        }
    }
}

/// A latch a non-worker thread blocks on.
#[derive(Default)]
pub(crate) struct LockLatch {
    done: Mutex<bool>,
    cond: Condvar,
}

impl LockLatch {
    pub(crate) fn wait(&self) {
        let mut done = self.done.lock();
        while !*done {
            done = self.cond.wait(done);
        }
    }
}

impl Latch for LockLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: the waiter can only return after taking the lock we hold here, so `*this` stays
        // valid until the guard is dropped, which is our last access.
        unsafe {
            let mut done = (*this).done.lock();
            *done = true;
            (*this).cond.notify_all();
        }
    }
}

/// Counts outstanding children plus the owner itself; set at zero, waking the owner: a worker
/// (by its seat, as [`SpinLatch`]) or a thread outside every pool.
pub(crate) struct CountLatch {
    pending: AtomicUsize,
    pub(crate) core: SleepLatch,
    waiter: Waiter,
}

/// Who waits on a [`CountLatch`]: a worker, which keeps running tasks and parks through its
/// pool's sleep protocol, or any other thread, which parks itself (`in_place_scope` called
/// outside every pool).
enum Waiter {
    Worker {
        registry: Arc<Registry>,
        seat: usize,
    },
    Thread(std::thread::Thread),
}

impl CountLatch {
    /// Starts at one: the owner's own reference, dropped by the owner's `decrement`. The owner is
    /// the worker of `registry` in seat `owner`.
    pub(crate) fn new(registry: Arc<Registry>, owner: usize) -> Self {
        CountLatch {
            pending: AtomicUsize::new(1),
            core: SleepLatch::new(),
            waiter: Waiter::Worker {
                registry,
                seat: owner,
            },
        }
    }

    /// As [`new`](Self::new), for an owner that is the calling thread and no pool worker: it
    /// waits with [`wait_blocking`](Self::wait_blocking).
    pub(crate) fn blocking() -> Self {
        CountLatch {
            pending: AtomicUsize::new(1),
            core: SleepLatch::new(),
            waiter: Waiter::Thread(std::thread::current()),
        }
    }

    /// Parks the calling thread (the owner of a [`blocking`](Self::blocking) latch) until set.
    pub(crate) fn wait_blocking(&self) {
        while !self.core.probe() {
            // A spurious or early wake-up only re-checks; an `unpark` before the `park` makes it
            // return at once.
            std::thread::park();
        }
    }

    pub(crate) fn increment(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// The references not yet dropped (children still to finish, plus the owner's until it
    /// waits). Only a snapshot, for `Debug`.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Drops one reference; the last one sets the latch.
    ///
    /// # Safety
    /// `this` is valid on entry; the owner may free it once the count reaches zero and the latch
    /// is set, so nothing touches it after that.
    pub(crate) unsafe fn decrement(this: *const Self) {
        // SAFETY: valid on entry; while our reference is counted the owner cannot return. What
        // the wake-up needs is copied out before `core.set()` publishes "set".
        unsafe {
            if (*this).pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                match &(*this).waiter {
                    Waiter::Worker { registry, seat } => {
                        let registry = Arc::clone(registry);
                        let owner = *seat;
                        if (*this).core.set() {
                            registry.sleep.wake_specific(owner);
                        }
                    }
                    Waiter::Thread(thread) => {
                        let thread = thread.clone();
                        (*this).core.set();
                        thread.unpark();
                    }
                }
            }
        }
    }
}
