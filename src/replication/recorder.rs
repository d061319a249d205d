//! A [`Recovery`] that records what a takeover asked for, for the loom models, the protocol's
//! tests and its doc examples. The pool's own hooks are in `src/pool/recovery/takeover.rs`.

use super::lease::OwnerToken;
use super::takeover::{FencePoint, Recovery};
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicUsize, Ordering};

/// Records every hook call; `rooms` reservations are available (0: always at the cap).
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{Claim, CpuState, Outcome, Recorder, Takeover, take_over};
/// let core = CpuState::<Arc<Claim>>::new(0, 8, Default::default());
/// let capped = Recorder::new(0);
/// let t = Takeover { core: &core, replicas: &[], epoch: 0, successor: 1, fault_id: 1,
///                    patience: std::time::Duration::ZERO };
/// assert_eq!(take_over(t, &capped), Outcome::AtCap);
/// assert_eq!(capped.take().at_cap, vec![0]);
/// assert_eq!(core.lease().epoch(), 0, "not fenced at the cap");
/// ```
#[derive(Debug)]
pub struct Recorder<T> {
    rooms: AtomicUsize,
    log: Mutex<Recorded<T>>,
}

/// What a [`Recorder`] saw.
#[derive(Debug)]
pub struct Recorded<T> {
    /// Each `restore`: the adopted tasks and the replacement's token.
    pub restored: Vec<(Vec<T>, OwnerToken)>,
    /// Every task handed to `reoffer`.
    pub reoffered: Vec<T>,
    /// Calls of `reoffer_taken`.
    pub reoffer_taken: usize,
    /// Rooms given back.
    pub released: usize,
    /// The epochs handled at the cap.
    pub at_cap: Vec<u32>,
    /// The fences won.
    pub fenced: Vec<FencePoint>,
}

impl<T> Default for Recorded<T> {
    fn default() -> Self {
        Recorded {
            restored: Vec::new(),
            reoffered: Vec::new(),
            reoffer_taken: 0,
            released: 0,
            at_cap: Vec::new(),
            fenced: Vec::new(),
        }
    }
}

impl<T> Recorder<T> {
    /// A recorder with `rooms` reservations available.
    pub fn new(rooms: usize) -> Self {
        Recorder {
            rooms: AtomicUsize::new(rooms),
            log: Mutex::new(Recorded::default()),
        }
    }

    /// What was recorded so far (and clears it).
    pub fn take(&self) -> Recorded<T> {
        std::mem::take(&mut *self.log.lock())
    }
}

impl<T> Recovery<T> for Recorder<T> {
    type Room = ();

    fn reserve(&self) -> Option<()> {
        self.rooms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
            .ok()
            .map(|_| ())
    }

    fn release(&self, (): ()) {
        self.rooms.fetch_add(1, Ordering::AcqRel);
        self.log.lock().released += 1;
    }

    fn at_cap(&self, epoch: u32) {
        self.log.lock().at_cap.push(epoch);
    }

    fn fenced(&self, fence: &FencePoint) {
        self.log.lock().fenced.push(*fence);
    }

    fn reoffer(&self, tasks: Vec<T>) {
        self.log.lock().reoffered.extend(tasks);
    }

    fn reoffer_taken(&self) {
        self.log.lock().reoffer_taken += 1;
    }

    fn restore(&self, (): (), tasks: Vec<T>, token: OwnerToken) {
        self.log.lock().restored.push((tasks, token));
    }
}
