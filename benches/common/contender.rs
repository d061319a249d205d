//! replicore and rayon behind one trait, for the examples and benches that run the same rounds on
//! both: each method is the runtime's own call, unwrapped.

// Each example or bench that includes this file calls its own subset of the methods.
#![allow(dead_code)]

/// What a round asks of a runtime.
pub trait Contender: Sync {
    /// `spawn` onto the pool from outside it.
    fn spawn(&self, task: impl FnOnce() + Send + 'static);
    /// The free `spawn`, called on one of the pool's workers.
    fn spawn_here(task: impl FnOnce() + Send + 'static);
    /// The free `join`, called on one of the pool's workers.
    fn join_here<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send;
    fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R;
    fn broadcast_nothing(&self);
    /// The calling worker's index in its pool (`None` outside any pool).
    fn index_here() -> Option<usize>;
    /// `yield_local` on a worker: whether it ran a task from the worker's own deque.
    fn run_local_here() -> bool;
}

/// The trait for a runtime whose pool type is `$krate::ThreadPool` and whose free functions are
/// `$krate::{spawn, join}`: replicore and rayon spell them alike.
macro_rules! contender {
    ($krate:ident) => {
        impl Contender for $krate::ThreadPool {
            fn spawn(&self, task: impl FnOnce() + Send + 'static) {
                $krate::ThreadPool::spawn(self, task)
            }
            fn spawn_here(task: impl FnOnce() + Send + 'static) {
                $krate::spawn(task)
            }
            fn join_here<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
            where
                A: FnOnce() -> RA + Send,
                B: FnOnce() -> RB + Send,
                RA: Send,
                RB: Send,
            {
                $krate::join(a, b)
            }
            fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
                $krate::ThreadPool::install(self, op)
            }
            fn broadcast_nothing(&self) {
                $krate::ThreadPool::broadcast(self, |_| ());
            }
            fn index_here() -> Option<usize> {
                $krate::current_thread_index()
            }
            fn run_local_here() -> bool {
                matches!($krate::yield_local(), Some($krate::Yield::Executed))
            }
        }
    };
}

contender!(replicore);
contender!(rayon);
