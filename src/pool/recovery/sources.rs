//! Where a CPU's worker takes tasks from, so that a takeover re-offers only what that worker
//! could have been holding, not every queued task of the pool.
//!
//! **The window.** A worker that steals a logged task from another CPU's deque (or takes one
//! from an injector) holds it unrecorded until it writes its in-hand slot (`Seam::start`). If
//! it crashes in between, the task is in no deque and no in-hand slot; only the replicas of the
//! CPU that pushed it (or the pool's list of external submissions) still know it, unclaimed. So
//! the takeover of the crashed worker's CPU must re-offer copies from there. Which CPU that was
//! is what this mark records: one bit per CPU, plus one for the injectors.
//!
//! **The rule.** Before a take from a source whose bit is clear, the worker sets the bit, then
//! checks its lease; a takeover fences the lease, then reads the bits. A `SeqCst` fence sits
//! between each side's write and its read, so in the fences' total order either the worker's
//! check sees the fence (it takes nothing: a fenced worker takes no new work) or the takeover's
//! read sees the bit. A bit already set needs no new check: the check that followed its setting
//! saw no fence, so that setting precedes any later fence too. `loom-tests/tests/take_sources.rs`
//! checks this on the code below.
//!
//! **Clearing.** The worker clears every bit when it parks: its deque is empty then and it holds
//! nothing it has not claimed, so no earlier take can still be in its hands. Tasks a batch steal
//! moved into its deque keep their source's bit set until then. While a worker keeps busy its
//! bits only accumulate, up to the CPUs it actually took from; a worker that found a victim's
//! deque empty never set its bit.

use crate::sync::atomic::{AtomicU64, Ordering, fence};

/// The take sources of one CPU's worker: bit `c` for CPU `c`'s deques, bit `cpus` for the
/// injectors (external submissions and re-offered copies).
///
/// ```
/// use replicore::__protocol::TakeSources;
/// let marks = TakeSources::new(100);
/// assert!(marks.note(70), "new: the caller checks its lease before taking");
/// assert!(!marks.note(70), "already noted: an earlier check covers it");
/// assert!(marks.note(marks.injectors()));
/// assert_eq!(marks.noted(), vec![70, 100]);
/// marks.clear();
/// assert!(marks.noted().is_empty());
/// ```
#[derive(Debug)]
pub struct TakeSources {
    words: Box<[AtomicU64]>,
    cpus: usize,
}

impl TakeSources {
    /// Marks for a pool of `cpus` CPUs, all clear.
    ///
    /// ```
    /// use replicore::__protocol::TakeSources;
    /// assert!(TakeSources::new(4).noted().is_empty());
    /// ```
    pub fn new(cpus: usize) -> Self {
        Self {
            words: (0..(cpus + 1).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            cpus,
        }
    }

    /// The source index that stands for the injectors.
    ///
    /// ```
    /// use replicore::__protocol::TakeSources;
    /// assert_eq!(TakeSources::new(8).injectors(), 8);
    /// ```
    pub fn injectors(&self) -> usize {
        self.cpus
    }

    /// Records `source` before a take from it. Returns `true` if it was not recorded yet: the
    /// caller must then check its lease (after the fence here) before it takes anything.
    ///
    /// ```
    /// use replicore::__protocol::TakeSources;
    /// let marks = TakeSources::new(2);
    /// assert!(marks.note(1));
    /// assert!(!marks.note(1));
    /// ```
    #[inline]
    pub fn note(&self, source: usize) -> bool {
        let (word, bit) = (&self.words[source / 64], 1u64 << (source % 64));
        // Only the worker writes its own marks, so a plain load tells whether they hold `bit`.
        if word.load(Ordering::Relaxed) & bit != 0 {
            return false;
        }
        word.fetch_or(bit, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        true
    }

    /// Forgets every source: the worker parks holding nothing.
    ///
    /// ```
    /// use replicore::__protocol::TakeSources;
    /// let marks = TakeSources::new(2);
    /// marks.note(0);
    /// marks.clear();
    /// assert!(marks.note(0), "noted again, so checked again");
    /// ```
    #[inline]
    pub fn clear(&self) {
        for word in self.words.iter() {
            if word.load(Ordering::Relaxed) != 0 {
                word.store(0, Ordering::SeqCst);
            }
        }
    }

    /// The recorded sources, in order; read by a takeover after its fence.
    ///
    /// ```
    /// use replicore::__protocol::TakeSources;
    /// let marks = TakeSources::new(130);
    /// marks.note(129);
    /// marks.note(3);
    /// assert_eq!(marks.noted(), vec![3, 129]);
    /// ```
    pub fn noted(&self) -> Vec<usize> {
        fence(Ordering::SeqCst);
        let mut out = Vec::new();
        for (w, word) in self.words.iter().enumerate() {
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                out.push(w * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
        out
    }
}
