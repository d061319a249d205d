//! The seam between scheduling and recovery: the few points where a worker's loop touches its
//! lease, and nothing else.
//!
//! A worker holds one [`Seam`] and calls it at five points:
//! - **scheduling point** ([`Seam::scheduling_point`], and [`Seam::renew`] on every pop):
//!   renews the lease with one relaxed store, and every few turns watches the neighbours'
//!   leases (`watch`);
//! - **is-fenced** ([`Seam::is_fenced`]): whether a successor took this CPU over; a fenced
//!   worker takes no new work and pushes nothing onto its deque (G4);
//! - **publish** ([`Seam::publish`]): a heap job enters this CPU's op log before its deque;
//! - **start** ([`Seam::start`], through the job's `Starter`): a logged job is recorded in hand,
//!   the lease checked and the job claimed before it runs;
//! - **take** ([`Seam::may_take_from`]): before a take from another CPU's deque or an injector,
//!   the source is recorded, so that a takeover knows whose replicas to re-offer (`sources`).
//!
//! With `replication_factor(0)` publish and start cost nothing (nothing is logged); the lease
//! and the watch stay, since they are what restores a stalled CPU's capacity.

use std::cell::Cell;
use std::sync::Arc;

use super::logged::{RunOnce, job_ref, logged};
use super::probe::ThreadProbe;
use super::state::CpuRecovery;
use super::threads::NO_SEAT;
use super::watch;
use crate::pool::job::{Handle, JobRef, LoggedTask};
use crate::pool::registry::Registry;
use crate::replication::{Fenced, OwnerToken, Start};
use crate::sync::atomic::Ordering;

/// Turns of a worker's scheduling loop between two looks at its neighbours' leases. A look is
/// an `Instant::now()` and one `try_lock` per watched CPU, so this keeps it far below 1% of a
/// loop turn.
pub(crate) const WATCH_EVERY: u32 = 32;

/// A worker's side of recovery: its lease on its CPU.
pub(crate) struct Seam {
    /// `&registry.recovery.cpus[index]`, resolved once: the hot path (heartbeat, fence check)
    /// then costs no pointer chase and no bounds check per `join`. Valid for as long as the
    /// worker holds its registry, i.e. its whole life.
    cpu: *const CpuRecovery,
    /// This worker's lease epoch and heartbeat counter on its CPU. A `Cell` of a `Copy` token:
    /// renewing and checking are then plain loads and stores, with no borrow flag.
    token: Cell<OwnerToken>,
    /// Latched once this worker sees that a successor fenced its epoch.
    fenced: Cell<bool>,
    /// Loop turns left until this worker next looks at its neighbours' leases.
    watch_countdown: Cell<u32>,
    /// The header address of the task this worker pushed last and the log position it was
    /// written at, until this worker starts it or pushes again ((0, 0): none). The log holds a
    /// handle of it until this worker's next pushes overwrite it, and each push replaces this,
    /// so the address cannot belong to another task while it is here.
    last_push: Cell<(usize, u64)>,
    index: usize,
    fault_id: usize,
    /// `replication_factor >= 1`: heap jobs are logged.
    logged: bool,
}

/// Where a heap job goes after [`Seam::publish`].
pub(crate) enum Publish {
    /// Onto this worker's own deque.
    Queue(JobRef),
    /// To an injector: this worker was fenced (G4: nothing enters its deque under the old
    /// epoch; the job is redirected, never lost). Counted already.
    Redirect(JobRef),
}

impl Seam {
    /// The seam of the worker at `index` of `registry`, owning its CPU under `token`.
    pub(crate) fn new(
        registry: &Registry,
        index: usize,
        token: OwnerToken,
        fault_id: usize,
    ) -> Self {
        Seam {
            cpu: &*registry.recovery.cpus[index],
            token: Cell::new(token),
            fenced: Cell::new(false),
            watch_countdown: Cell::new(WATCH_EVERY),
            last_push: Cell::new((0, 0)),
            index,
            fault_id,
            logged: registry.config.replication_factor > 0,
        }
    }

    #[inline]
    fn cpu(&self) -> &CpuRecovery {
        // SAFETY: `cpu` points into the registry's recovery state, which the worker keeps alive
        // through its `Arc<Registry>` and which is never resized.
        unsafe { &*self.cpu }
    }

    /// The epoch this worker owns (or owned) its CPU under.
    pub(crate) fn epoch(&self) -> u32 {
        self.token.get().epoch()
    }

    /// Renews the lease: one relaxed store.
    #[inline]
    pub(crate) fn renew(&self) {
        let mut token = self.token.get();
        token.renew(self.cpu().core.lease());
        self.token.set(token);
    }

    /// Whether a successor has fenced this worker's epoch. One `SeqCst` load (a plain load on
    /// x86) until it first says yes; then latched.
    #[inline]
    pub(crate) fn is_fenced(&self) -> bool {
        if self.fenced.get() {
            return true;
        }
        if self.cpu().core.lease().is_current(self.epoch()) {
            return false;
        }
        self.fenced.set(true);
        true
    }

    /// Whether this worker has already seen its fence (no load).
    #[inline]
    pub(crate) fn seen_fenced(&self) -> bool {
        self.fenced.get()
    }

    /// A turn of the scheduling loop: renews the lease; every [`WATCH_EVERY`] turns looks at
    /// the leases this worker watches (every lease, when the monitor asked for help). Returns
    /// whether this worker is fenced (then it watches nothing).
    #[inline]
    pub(crate) fn scheduling_point(&self, registry: &Arc<Registry>) -> bool {
        self.renew();
        if self.is_fenced() {
            return true;
        }
        let left = self.watch_countdown.get();
        if left > 0 {
            self.watch_countdown.set(left - 1);
        } else {
            self.watch_countdown.set(WATCH_EVERY);
            watch::look_around(registry, self.index, self.fault_id);
        }
        false
    }

    /// Publishes a heap job this worker is about to push onto its own deque: with replication
    /// on, to this CPU's op log, so that its replicas know it until it is claimed.
    pub(crate) fn publish(&self, registry: &Registry, job: impl RunOnce) -> Publish {
        if !self.logged {
            let job = job.into_job_ref();
            if self.is_fenced() {
                registry.recovery.protocol.record_fenced(1);
                return Publish::Redirect(job);
            }
            return Publish::Queue(job);
        }
        let token = self.token.get();
        match self.cpu().core.publish_push_at(&token, logged(job)) {
            Ok((handle, at)) => {
                self.last_push
                    .set(at.map_or((0, 0), |seq| (address(&handle), seq)));
                Publish::Queue(job_ref(handle))
            }
            Err(Fenced(handle)) => {
                self.fenced.set(true);
                // In no log: the injector-side list answers for it (see `takeover::reoffer`).
                registry.recovery.external.lock().push(Arc::clone(&handle));
                Publish::Redirect(job_ref(handle))
            }
        }
    }

    /// Before a take from `source` (a CPU's deques, or `TakeSources::injectors`): records it for
    /// this CPU's takeover, and says whether this worker may take. A newly recorded source is
    /// followed by a lease check, so that either a takeover sees the record or this worker sees
    /// the fence and takes nothing (see `sources`). With nothing logged there is nothing to
    /// re-offer, and this is free.
    #[inline]
    pub(crate) fn may_take_from(&self, source: usize) -> bool {
        if !self.logged {
            return true;
        }
        if self.cpu().sources.note(source) {
            !self.is_fenced()
        } else {
            !self.fenced.get()
        }
    }

    /// The index [`may_take_from`](Self::may_take_from) uses for the injectors.
    #[inline]
    pub(crate) fn injectors(&self) -> usize {
        self.cpu().sources.injectors()
    }

    /// Starts a logged job taken from any queue: moves it into this CPU's in-hand slot (unless
    /// it is the job this worker just pushed, which its log still holds), then the lease check
    /// and the job's single claim. Returns the handle back unless the slot took it (see
    /// `CpuState::take_in_hand_owned`: the job then lives until this worker's next start).
    pub(crate) fn start(&self, handle: Handle) -> (Start, Option<Handle>) {
        let token = self.token.get();
        let core = &self.cpu().core;
        let header: *const dyn LoggedTask = Arc::as_ptr(&handle);
        let (last, seq) = self.last_push.get();
        let kept = if last == address(&handle) {
            self.last_push.set((0, 0));
            core.take_just_pushed(&token, &handle, seq);
            Some(handle)
        } else {
            core.take_in_hand_owned(&token, handle)
        };
        // SAFETY: `kept` or the slot holds a count. The slot drops it only at this thread's
        // next record, which comes after this call, or parks it when a newer epoch records
        // over it, until this worker leaves (`owner_leaves` in `leaving` and `hand_back`).
        let start = core.start_claim(&token, unsafe { &*header }.claim());
        if start == Start::Fenced {
            self.fenced.set(true);
        }
        (start, kept)
    }

    /// Starts the lease: publishes how the watch can see this thread, then the first heartbeat,
    /// then leaves the "not started" idle state the CPU was in. The start handler ran before
    /// this, so a slow handler is never taken for a stall.
    pub(crate) fn begin_lease(&self) {
        let cpu = self.cpu();
        let epoch = self.epoch();
        {
            let mut probe = cpu.owner_probe.lock();
            // A replacement that was fenced before it started (its epoch moved on) must not
            // overwrite a newer owner's probe; epochs only grow.
            if probe.is_none_or(|(e, _)| (e.wrapping_sub(epoch) as i32) <= 0) {
                *probe = ThreadProbe::current().map(|p| (epoch, p));
            }
        }
        cpu.core.owner_enters(epoch);
        self.renew();
        cpu.idle.clear(epoch);
    }

    /// Marks the CPU idle for this worker's epoch before it parks: a parked worker has an
    /// empty deque and nothing in hand, so its silent heartbeat is not a stall.
    pub(crate) fn park(&self) {
        // Nothing taken from elsewhere is left in hand or in the deque: forget the sources. Not
        // once fenced: the marks are the CPU's, and a replacement's may be in them by now.
        if !self.is_fenced() {
            self.cpu().sources.clear();
        }
        self.cpu().idle.mark(self.epoch());
    }

    /// Clears the idle mark set by [`Seam::park`], unless a newer epoch set its own.
    pub(crate) fn unpark(&self) {
        self.cpu().idle.clear(self.epoch());
    }

    /// The worker in `seat` leaves the pool. A fenced worker tells shutdown it is done
    /// (terminating workers wait for fenced ones); a worker that exits at shutdown marks its CPU
    /// idle, so that no one takes over a CPU whose worker simply left.
    /// The worker left its loop. A fenced one has requeued whatever it took and held by now
    /// (its starts were refused), so its takeover need not re-offer for it
    /// (`takeover::came_back`).
    pub(crate) fn leaving(&self, registry: &Registry) {
        // No job of this worker is running any more: what its in-hand slot held may go.
        self.cpu().core.owner_leaves(self.epoch());
        if self.is_fenced() {
            super::takeover::came_back(registry, self.index, self.epoch());
        }
    }

    pub(crate) fn retire(&self, registry: &Registry, seat: usize) {
        if self.is_fenced() {
            registry.threads.retire(seat);
            registry.sleep.wake_all();
        } else {
            self.cpu().idle.mark(self.epoch());
        }
    }

    /// A caller-owned worker in `seat` gives its CPU back: the CPU reads idle and no thread
    /// owns it; the seat is free again.
    pub(crate) fn hand_back(&self, registry: &Registry, seat: usize) {
        let cpu = self.cpu();
        // Called with no job of this worker running (`leave_caller` checks its depth).
        cpu.core.owner_leaves(self.epoch());
        cpu.idle.mark(self.epoch());
        cpu.owner_seat.store(NO_SEAT, Ordering::Release);
        registry.threads.release(seat);
    }
}

/// A logged job's header address, which identifies it while some handle keeps it alive.
fn address(handle: &Handle) -> usize {
    Arc::as_ptr(handle).cast::<()>() as usize
}

/// Queues `work`, submitted from outside `registry`'s workers, on an injector. With replication
/// on it is logged and kept in the pool's list of external submissions until claimed: no CPU's
/// log records it, so this list is what lets a takeover re-offer it if the worker that took it
/// from the injector crashed before starting it.
pub(crate) fn publish_external(registry: &Registry, work: impl RunOnce) {
    if registry.config.replication_factor == 0 {
        return registry.inject(work.into_job_ref());
    }
    let handle = logged(work);
    registry.recovery.external.lock().push(Arc::clone(&handle));
    registry.inject(job_ref(handle));
}

/// Queues a copy of a logged job a fenced worker took but may not start, where any worker can
/// take it (listed like every re-offered copy: see `takeover::reoffer`).
pub(crate) fn requeue(registry: &Registry, handle: Handle) {
    super::takeover::reoffer(registry, vec![handle]);
}

/// Sends a job a fenced worker may not queue to its node's injector, and counts it.
pub(crate) fn redirect(registry: &Registry, job: JobRef) {
    registry.recovery.protocol.record_fenced(1);
    registry.inject(job);
}

/// Whether no takeover's re-offer is still pending, for a worker that may leave at shutdown;
/// runs the pending ones first (see `takeover::settle_reoffers`).
pub(crate) fn settle_reoffers(registry: &Registry) -> bool {
    super::takeover::settle_reoffers(registry)
}
