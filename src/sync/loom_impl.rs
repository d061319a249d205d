//! Model-checking primitives: everything is loom's, wrapped to match `std_impl`'s API.

pub(crate) use loom::hint::spin_loop;
pub(crate) use loom::sync::Arc;
pub(crate) use loom::thread;

pub(crate) mod atomic {
    pub(crate) use loom::sync::atomic::{
        AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
}

/// A mutex whose `lock` returns the guard directly.
#[derive(Debug, Default)]
pub struct Mutex<T>(loom::sync::Mutex<T>);

pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    /// Waits for the lock.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().expect("loom mutex poisoned")
    }

    /// The lock if it is free now.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock().ok()
    }
}

/// A condition variable that takes and returns the guard by value.
#[derive(Debug, Default)]
pub(crate) struct Condvar(loom::sync::Condvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        Self(loom::sync::Condvar::new())
    }

    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).expect("loom mutex poisoned")
    }

    /// Loom has no clock, so a timed wait is modelled as an untimed one. A protocol whose liveness
    /// depends on the timeout firing therefore shows up as a loom deadlock, which is the point:
    /// timeouts in replicore are for lease timing and idle power, never for correctness.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        _timeout: std::time::Duration,
    ) -> MutexGuard<'a, T> {
        self.wait(guard)
    }

    pub(crate) fn notify_one(&self) -> bool {
        self.0.notify_one();
        true
    }

    pub(crate) fn notify_all(&self) -> usize {
        self.0.notify_all();
        0
    }
}

pub(crate) use loom::cell::UnsafeCell;
