//! The combiner lock: a lock that is only ever tried, never waited for.
//!
//! Every caller that fails to take it has something better to do than sleep (its op is being
//! combined by the holder, or it spins on its own mailbox), so the lock needs no queue of
//! waiters and no parking. That lets release be a plain store instead of the read-modify-write a
//! parking lock needs to check for sleepers: one locked instruction per batch instead of two.

use crate::sync::UnsafeCell;
use crate::sync::atomic::{AtomicBool, Ordering};

/// A try-only lock around a `T`.
pub(crate) struct TryLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and `locked` (Acquire on take, Release on
// release) lets one guard exist at a time; the value moves between the threads that hold the
// lock in turn, hence `T: Send`.
unsafe impl<T: Send> Sync for TryLock<T> {}

impl<T> TryLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock if it is free.
    pub(crate) fn try_lock(&self) -> Option<TryLockGuard<'_, T>> {
        // Looking first keeps callers that poll a held lock on a shared copy of its line
        // instead of pulling it away from the holder with a failing read-modify-write. Loom
        // lets a plain load return a stale `true` for ever, which turns every polling loop into
        // an unbounded model, so under loom only the compare-exchange decides; the look is a
        // shortcut to the same `None` a failing compare-exchange gives, never to a lock. (A
        // compare-exchange rather than a swap: a failing one stores nothing.)
        if (cfg!(not(loom)) && self.locked.load(Ordering::Relaxed))
            || self
                .locked
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        Some(TryLockGuard { lock: self })
    }
}

/// Proof of holding a [`TryLock`]; releases it when dropped.
pub(crate) struct TryLockGuard<'a, T> {
    lock: &'a TryLock<T>,
}

impl<T> TryLockGuard<'_, T> {
    /// Runs `f` on the guarded value.
    pub(crate) fn with_mut<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: this guard is the only one (see `try_lock`), and `&mut self` keeps it from
        // handing out a second reference while `f` runs.
        self.lock.value.with_mut(|p| f(unsafe { &mut *p }))
    }
}

impl<T> Drop for TryLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
