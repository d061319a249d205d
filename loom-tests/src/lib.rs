//! Loom models of replicore's protocols. The models live in `tests/` and run only under
//! `--cfg loom`; use `cargo loom` from the workspace root.

/// Checks `f` under every interleaving loom explores with at most `preemption_bound` preemptions.
///
/// Every model in this crate goes through here so that the bound is chosen per model, in one
/// visible place each, rather than left at loom's unbounded default: the unbounded three-thread
/// claim race took nine minutes; bounded at 3 it takes milliseconds and still fails at once when
/// `Claim::try_claim` is made a non-atomic load-then-store.
#[cfg(loom)]
pub fn model(preemption_bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemption_bound);
    b.check(f);
}

/// The task handle every takeover model uses: a shared claim word.
#[cfg(loom)]
pub type Task = loom::sync::Arc<replicore::__protocol::Claim>;

/// Runs the pool's takeover sequence (`replicore::__protocol::take_over`, the code
/// `src/pool/recovery/takeover.rs` runs) on `core`, judged expired at `epoch`, as driver `successor`,
/// with `replicas` and recording hooks that have one room. Returns how it ended and what it
/// handed on.
#[cfg(loom)]
pub fn drive(
    core: &replicore::__protocol::CpuState<Task>,
    replicas: &[replicore::__protocol::Mutex<replicore::__protocol::Replica<Task>>],
    epoch: u32,
    successor: u32,
) -> (
    replicore::__protocol::Outcome,
    replicore::__protocol::Recorded<Task>,
) {
    drive_with(
        core,
        replicas,
        epoch,
        successor,
        &replicore::__protocol::Recorder::new(1),
    )
}

/// [`drive`] with the caller's hooks.
#[cfg(loom)]
pub fn drive_with<R: replicore::__protocol::Recovery<Task>>(
    core: &replicore::__protocol::CpuState<Task>,
    replicas: &[replicore::__protocol::Mutex<replicore::__protocol::Replica<Task>>],
    epoch: u32,
    successor: u32,
    hooks: &R,
) -> (replicore::__protocol::Outcome, R::Recorded)
where
    R: Recorded,
{
    let takeover = replicore::__protocol::Takeover {
        core,
        replicas,
        epoch,
        successor,
        fault_id: successor as usize,
        patience: std::time::Duration::ZERO,
    };
    let outcome = replicore::__protocol::take_over(takeover, hooks);
    (outcome, hooks.recorded())
}

/// Hooks whose record a model can read after the sequence.
#[cfg(loom)]
pub trait Recorded {
    /// What the hooks saw.
    type Recorded;
    /// Takes it.
    fn recorded(&self) -> Self::Recorded;
}

#[cfg(loom)]
impl Recorded for replicore::__protocol::Recorder<Task> {
    type Recorded = replicore::__protocol::Recorded<Task>;
    fn recorded(&self) -> Self::Recorded {
        self.take()
    }
}

/// The recorded restore's tasks, if the sequence restored the CPU.
#[cfg(loom)]
pub fn restored(r: &mut replicore::__protocol::Recorded<Task>) -> Vec<Task> {
    r.restored.pop().map(|(t, _)| t).unwrap_or_default()
}
