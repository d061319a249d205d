//! A single-writer, many-reader cell holding a clonable value (an `Arc`'d task header)
//! under a tag.
//!
//! The state word is `tag << 8 | readers`, or `WRITING`. Readers pin the cell by bumping
//! `readers` with a CAS that requires the tag they want, clone the value, and unpin. The writer
//! claims the cell with a CAS from "no readers" to `WRITING`; if a reader is pinned (possibly a
//! stalled one) the writer does **not** wait: the write is skipped and reported, and the caller
//! turns that into a detectable gap. This is what lets the owner never wait for a replica while
//! values are freed only when no reader can be cloning them.

use crate::sync::UnsafeCell;
use crate::sync::atomic::{AtomicU64, Ordering};

const WRITING: u64 = u64::MAX;
const READER_MASK: u64 = 0xff;

/// What [`TaggedCell::replace`] did.
#[derive(Debug)]
pub(crate) enum Replaced<T> {
    /// The value is in the cell. The cell held this value under the same tag (dropped by the
    /// caller when it likes), or none.
    Same(Option<T>),
    /// The value is in the cell; this is what it held under an older tag.
    Older(u64, T),
    /// Nothing was written (a reader was pinned, another writer was mid-write, or the cell
    /// holds a newer tag): here is the value back.
    Refused(T),
}

/// A cell; `tag` 0 means "never written".
#[derive(Debug)]
pub struct TaggedCell<T> {
    pub(super) state: AtomicU64,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the value is only written under the exclusive `WRITING` state and only read (cloned)
// while pinned, and the state transitions exclude each other; so `T: Send + Sync` suffices.
unsafe impl<T: Send + Sync> Sync for TaggedCell<T> {}

/// What a reader found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TaggedRead<T> {
    /// The value under the wanted tag.
    Value(T),
    /// The cell holds an older tag, or is being written.
    Older,
    /// The cell already holds a newer tag.
    Newer,
}

impl<T: Clone> TaggedCell<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            value: UnsafeCell::new(None),
        }
    }

    /// Writes `value` under `tag` (`tag < 2^55`). Returns `false`, leaving the cell unchanged,
    /// if a reader is pinned or another writer is mid-write: the caller must not wait.
    pub(crate) fn write(&self, tag: u64, value: Option<T>) -> bool {
        let cur = self.state.load(Ordering::Acquire);
        if cur == WRITING || cur & READER_MASK != 0 {
            return false;
        }
        // Acquire pairs with the readers' Release unpin: their clones are done before we drop.
        if self
            .state
            .compare_exchange(cur, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let old = self.value.with_mut(|p| {
            // SAFETY: the `WRITING` state excludes every reader and writer until the store below.
            unsafe { std::mem::replace(&mut *p, value) }
        });
        self.state.store(tag << 8, Ordering::Release);
        drop(old);
        true
    }

    /// Writes `value` under `tag` unless the cell holds a newer tag, and hands back whatever it
    /// displaced instead of dropping it: a value written under another tag may belong to a
    /// writer that is still using it (the in-hand slot's fenced owner, see
    /// `CpuState::take_in_hand_owned`). Never waits.
    pub(crate) fn replace(&self, tag: u64, value: T) -> Replaced<T> {
        let cur = self.state.load(Ordering::Acquire);
        if cur == WRITING || cur & READER_MASK != 0 || cur >> 8 > tag {
            return Replaced::Refused(value);
        }
        // Acquire as in `write`. The CAS expects the tag just checked, so a newer writer that
        // got in between makes it fail.
        if self
            .state
            .compare_exchange(cur, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Replaced::Refused(value);
        }
        let old = self.value.with_mut(|p| {
            // SAFETY: the `WRITING` state excludes every reader and writer until the store below.
            unsafe { (*p).replace(value) }
        });
        self.state.store(tag << 8, Ordering::Release);
        match old {
            Some(old) if cur >> 8 != tag => Replaced::Older(cur >> 8, old),
            old => Replaced::Same(old),
        }
    }

    /// Clones whatever value the cell holds now, with its tag.
    pub(crate) fn read_current(&self) -> Option<(u64, T)> {
        let cur = self.state.load(Ordering::Acquire);
        if cur == WRITING {
            return None;
        }
        match self.read(cur >> 8) {
            TaggedRead::Value(v) => Some((cur >> 8, v)),
            TaggedRead::Older | TaggedRead::Newer => None,
        }
    }

    /// Clones the value if the cell holds exactly `tag`.
    pub(crate) fn read(&self, tag: u64) -> TaggedRead<T> {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur == WRITING {
                return TaggedRead::Older;
            }
            let found = cur >> 8;
            if found < tag {
                return TaggedRead::Older;
            }
            if found > tag {
                return TaggedRead::Newer;
            }
            if cur & READER_MASK == READER_MASK {
                // 255 readers pinned at once cannot happen with r <= 3 plus one successor; treat
                // it as "try later" rather than overflow into the tag.
                return TaggedRead::Older;
            }
            match self
                .state
                .compare_exchange(cur, cur + 1, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let v = self.value.with(|p| {
            // SAFETY: pinned: the writer cannot enter `WRITING` while `readers > 0`.
            unsafe { (*p).clone() }
        });
        self.state.fetch_sub(1, Ordering::Release);
        match v {
            Some(v) => TaggedRead::Value(v),
            None => TaggedRead::Older,
        }
    }
}
