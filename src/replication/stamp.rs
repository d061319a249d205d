//! `(epoch, seq)` stamps: the only order the replication protocol trusts.
//!
//! Wall-clock time never orders anything (ARCHITECTURE.md, fault model). A stamp's `epoch` is the lease
//! epoch of the writer that published the op, and `seq` is the op's position in its CPU's log,
//! which a single `fetch_add` hands out, so `seq` strictly increases (within an epoch and across
//! epochs). Deriving `Ord` on `(epoch, seq)` in that field order gives the lexicographic order.

/// A stamp on one run-queue operation: lexicographic by `epoch`, then `seq`.
///
/// ```
/// use replicore::replication::Stamp;
/// let a = Stamp { epoch: 1, seq: 90 };
/// let b = Stamp { epoch: 2, seq: 3 };
/// assert!(a < b, "a later epoch wins whatever the seq");
/// assert!(Stamp { epoch: 2, seq: 2 } < b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp {
    /// Lease epoch of the owner that published the op.
    pub epoch: u32,
    /// Position of the op in its CPU's log.
    pub seq: u64,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Stamp;

    #[test]
    fn order_is_lexicographic() {
        let mut v = [
            Stamp { epoch: 2, seq: 1 },
            Stamp { epoch: 1, seq: 7 },
            Stamp { epoch: 1, seq: 3 },
            Stamp { epoch: 0, seq: 9 },
        ];
        v.sort();
        let seqs: Vec<_> = v.iter().map(|s| (s.epoch, s.seq)).collect();
        assert_eq!(seqs, [(0, 9), (1, 3), (1, 7), (2, 1)]);
    }
}
