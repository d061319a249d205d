//! A fixed-size set of small integers in atomic words, for "which of these beds or CPUs is
//! marked": a reader finds the marked ones with one load per 64 members, however few are marked.

use crate::sync::atomic::{AtomicU64, Ordering};

/// Members `0..len`; bit `i % 64` of word `i / 64` is member `i`. Every access is `SeqCst`: the
/// sleep protocol orders a mark against its sleeper count through it.
#[derive(Debug)]
pub(crate) struct AtomicBits(Box<[AtomicU64]>);

impl AtomicBits {
    /// An empty set for members `0..len`.
    pub(crate) fn new(len: usize) -> Self {
        AtomicBits((0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    /// Adds (`on`) or removes member `i`.
    pub(crate) fn set(&self, i: usize, on: bool) {
        let bit = 1u64 << (i % 64);
        let word = &self.0[i / 64];
        if on {
            word.fetch_or(bit, Ordering::SeqCst);
        } else {
            word.fetch_and(!bit, Ordering::SeqCst);
        }
    }

    /// Makes the members exactly `members`, one store per word (each word changes at once, the
    /// set as a whole does not).
    pub(crate) fn replace(&self, members: impl IntoIterator<Item = usize>) {
        let mut words = vec![0u64; self.0.len()];
        for i in members {
            words[i / 64] |= 1 << (i % 64);
        }
        for (word, bits) in self.0.iter().zip(words) {
            word.store(bits, Ordering::SeqCst);
        }
    }

    /// The members, in increasing order; each word is loaded when the walk reaches it.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, word)| {
            let mut bits = word.load(Ordering::SeqCst);
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(i)
            })
        })
    }

    /// Whether no member is in the set.
    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::AtomicBits;

    #[test]
    fn members_in_several_words_come_back_in_order() {
        let bits = AtomicBits::new(200);
        for i in [199, 0, 64, 63, 130] {
            bits.set(i, true);
        }
        bits.set(63, false);
        assert_eq!(bits.iter().collect::<Vec<_>>(), [0, 64, 130, 199]);
        bits.replace([5, 150]);
        assert_eq!(bits.iter().collect::<Vec<_>>(), [5, 150]);
        bits.replace([]);
        assert!(bits.is_empty());
    }
}
