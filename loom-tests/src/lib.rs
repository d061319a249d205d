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
