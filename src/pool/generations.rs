//! The deques one CPU's workers have owned, as a list with no fixed length.
//!
//! A takeover gives the replacement worker a **fresh** deque (two owners of one crossbeam deque
//! would corrupt it), and the fenced worker's old deque must stay reachable by stealing until it
//! is empty. So a CPU has one deque per worker that owned it: its *generations*. A pool lives
//! through any number of takeovers, so the list cannot have a fixed length, and it must shrink
//! again: a generation is dropped once its owner is gone (the [`Owner`] guard was dropped, so
//! nothing can be pushed into it any more) and it is empty.
//!
//! Thieves read the list on every steal attempt, so reading must cost no lock. The list is an
//! immutable `Vec` behind a `crossbeam_epoch::Atomic`: readers pin the epoch (the deque's own
//! `steal` pins it anyway, so the inner pin is then a nested, cheap one) and writers, serialised
//! by a mutex, swap in a new `Vec` and free the old one once no reader can hold it.

use crate::sync::Mutex;
use crate::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_deque::{Steal, Stealer};
use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned};

use super::job::JobRef;

struct Generation {
    stealer: Stealer<JobRef>,
    /// Set when the owner is gone: no push can reach this deque any more.
    gone: Arc<AtomicBool>,
}

/// One CPU's deques, oldest first.
pub(crate) struct Generations {
    list: Atomic<Vec<Generation>>,
    /// Serialises writers (add, prune); readers never take it.
    writer: Mutex<()>,
}

/// Held by the worker that owns a generation's deque; dropping it says "no more pushes".
pub(crate) struct Owner(Arc<AtomicBool>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Generations {
    pub(crate) fn new() -> Self {
        Generations {
            list: Atomic::new(Vec::new()),
            writer: Mutex::new(()),
        }
    }

    /// The current list.
    fn load<'g>(&self, guard: &'g Guard) -> &'g [Generation] {
        let shared = self.list.load(Ordering::Acquire, guard);
        // SAFETY: `list` is never null (set in `new`, only ever swapped for another `Vec`), and a
        // swapped-out `Vec` is freed through `defer_destroy` only after every guard pinned when
        // it was current is gone, so it outlives `guard`.
        unsafe { shared.deref() }
    }

    /// How many deques this CPU has now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.load(&epoch::pin()).len()
    }

    /// Steals with `f` from each deque, oldest first, until one yields a job.
    #[inline]
    pub(crate) fn steal_with(
        &self,
        mut f: impl FnMut(&Stealer<JobRef>) -> Steal<JobRef>,
    ) -> Steal<JobRef> {
        let guard = epoch::pin();
        let mut retry = false;
        for g in self.load(&guard) {
            match f(&g.stealer) {
                Steal::Success(job) => return Steal::Success(job),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
        if retry { Steal::Retry } else { Steal::Empty }
    }

    /// Adds a new owner's deque (after pruning), and returns the guard its owner holds.
    pub(crate) fn add(&self, stealer: Stealer<JobRef>) -> Owner {
        let gone = Arc::new(AtomicBool::new(false));
        let entry = Generation {
            stealer,
            gone: Arc::clone(&gone),
        };
        self.rewrite(|old| {
            let mut list = live(old);
            list.push(entry);
            Some(list)
        });
        Owner(gone)
    }

    /// Drops the deques whose owner is gone and which are empty. Called on every monitor tick,
    /// so the common case (nothing to drop) takes no lock and allocates nothing.
    pub(crate) fn prune(&self) {
        if !self.load(&epoch::pin()).iter().any(drained) {
            return;
        }
        self.rewrite(|old| {
            let list = live(old);
            (list.len() < old.len()).then_some(list)
        });
    }

    /// Replaces the list by what `f` makes of it (`None`: keep it).
    fn rewrite(&self, f: impl FnOnce(&[Generation]) -> Option<Vec<Generation>>) {
        let _w = self.writer.lock();
        let guard = epoch::pin();
        let Some(new) = f(self.load(&guard)) else {
            return;
        };
        let old = self.list.swap(Owned::new(new), Ordering::AcqRel, &guard);
        // SAFETY: `old` is unreachable from `list` now; readers that loaded it are pinned, and
        // the collector frees it only after they unpin.
        unsafe { guard.defer_destroy(old) };
    }
}

/// Whether `g`'s owner is gone and its deque empty. `gone` is read first: once it is set no push
/// can follow, so an empty deque stays empty.
fn drained(g: &Generation) -> bool {
    g.gone.load(Ordering::Acquire) && g.stealer.is_empty()
}

/// The entries of `list` still worth scanning: owner present, or work left.
fn live(list: &[Generation]) -> Vec<Generation> {
    list.iter()
        .filter(|g| !drained(g))
        .map(|g| Generation {
            stealer: g.stealer.clone(),
            gone: Arc::clone(&g.gone),
        })
        .collect()
}

impl Drop for Generations {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer can be active, and the pointer came from
        // `Owned`, so it is valid and owned by us.
        unsafe {
            drop(
                self.list
                    .load(Ordering::Relaxed, epoch::unprotected())
                    .into_owned(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::atomic::AtomicUsize;
    use crossbeam_deque::Worker;

    #[test]
    fn a_gone_and_empty_generation_is_dropped_and_the_list_never_fills() {
        let gens = Generations::new();
        let first = Worker::<JobRef>::new_lifo();
        let _first_owner = gens.add(first.stealer());
        // Far more takeovers than any fixed cap: each replacement's owner goes away.
        for _ in 0..1000 {
            let d = Worker::<JobRef>::new_lifo();
            let owner = gens.add(d.stealer());
            drop(owner);
        }
        gens.prune();
        assert_eq!(gens.len(), 1, "only the live first owner's deque is left");
    }

    #[test]
    fn a_gone_generation_with_work_left_is_kept_until_drained() {
        static RAN: AtomicUsize = AtomicUsize::new(0);
        let gens = Generations::new();
        let d = Worker::<JobRef>::new_lifo();
        let owner = gens.add(d.stealer());
        let job = || {
            RAN.fetch_add(1, Ordering::SeqCst);
        };
        // SAFETY: a `'static` closure may run at any time.
        d.push(unsafe { super::super::job::HeapJob::into_job_ref(job) });
        drop(owner);
        gens.prune();
        assert_eq!(gens.len(), 1, "work left: kept");
        let Steal::Success(job) = gens.steal_with(Stealer::steal) else {
            panic!("the job is stealable");
        };
        // SAFETY: taken from the deque once.
        unsafe { job.execute() };
        assert_eq!(RAN.load(Ordering::SeqCst), 1);
        gens.prune();
        assert_eq!(gens.len(), 0);
    }
}
