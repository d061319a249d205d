//! A pool's shared state: one [`CoreSlot`] per worker, one injector per NUMA node, the sleep
//! protocol and the handlers.

use std::any::Any;

use crossbeam_deque::{Injector, Stealer};
use crossbeam_utils::CachePadded;

use super::job::JobRef;
use super::sleep::Sleep;
use super::stats::SlotStats;
use crate::replication::ReplicationStats;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::{CpuId, NodeId, Topology};

pub(crate) type IndexHandler = Box<dyn Fn(usize) + Send + Sync>;
pub(crate) type PanicHandler = Box<dyn Fn(Box<dyn Any + Send>) + Send + Sync>;

/// Everything other threads may touch about one worker (and so one CPU of the topology).
///
/// With the default thread count, slot `i` belongs to `topology.cpus()[i]`, i.e. it is indexed by
/// `topology.cpu_index(cpu)`; more threads than CPUs wrap around the CPU list.
pub(crate) struct CoreSlot {
    pub(crate) cpu: CpuId,
    pub(crate) node: NodeId,
    /// Position of `node` in the topology's node list: the index of its injector.
    pub(crate) node_index: usize,
    /// The thieves' end of this worker's deque. The owner end (`crossbeam_deque::Worker`) lives
    /// only on the worker thread, never shared: two owners would corrupt it.
    pub(crate) stealer: Stealer<JobRef>,
    /// Jobs that must run on this worker in particular (broadcasts).
    pub(crate) inbox: Injector<JobRef>,
    /// Counters written only by the owner (plain load + store, no read-modify-write). On their
    /// own cache line: thieves read `stealer` on every steal attempt, and must not bounce the
    /// line the owner writes on every pop.
    pub(crate) stats: CachePadded<SlotStats>,
    // Issue 4 plugs in here:
    // - the lease word `(epoch, holder, heartbeat)`, renewed by the owner with one relaxed store
    //   per scheduling-loop iteration (see `WorkerThread::find_work`, "scheduling point");
    // - the "in hand" slot: the task the owner has taken but not yet claimed and started, so a
    //   successor can adopt it (between "take" and "claim" in `WorkerThread::execute`);
    // - the `(epoch, seq)` stamp of the last op published to this slot's replicas.
}

pub(crate) struct Registry {
    pub(crate) slots: Box<[CachePadded<CoreSlot>]>,
    /// External submissions, one queue per NUMA node (indexed like `Topology::nodes`).
    pub(crate) injectors: Box<[CachePadded<Injector<JobRef>>]>,
    /// Slot indices per node index.
    pub(crate) node_slots: Vec<Vec<usize>>,
    /// For each node index, the other node indices by increasing distance.
    pub(crate) remote_order: Vec<Vec<usize>>,
    /// OS CPU number → node index, to route a submission to the submitter's node.
    os_cpu_node: Vec<usize>,
    pub(crate) sleep: Sleep,
    pub(crate) terminating: AtomicBool,
    pub(crate) start_handler: Option<IndexHandler>,
    pub(crate) exit_handler: Option<IndexHandler>,
    pub(crate) panic_handler: Option<PanicHandler>,
    pub(crate) config: Config,
    /// Takeover counters, folded into `PoolStats`.
    pub(crate) replication: std::sync::Arc<ReplicationStats>,
    /// Takeovers at the spare-thread cap (reporting only, so `std` atomics).
    pub(crate) takeovers_without_replacement: std::sync::atomic::AtomicU64,
}

/// The fault-tolerance options of a pool, validated by the builder.
pub(crate) struct Config {
    pub(crate) replication_factor: usize,
    pub(crate) lease: std::time::Duration,
    pub(crate) max_spare_threads: usize,
    #[cfg(feature = "fault-injection")]
    pub(crate) fault_plan: Option<crate::fault::FaultPlan>,
}

pub(crate) struct Handlers {
    pub(crate) start: Option<IndexHandler>,
    pub(crate) exit: Option<IndexHandler>,
    pub(crate) panic: Option<PanicHandler>,
}

impl Registry {
    /// Lays out `stealers.len()` workers over `topology`'s CPUs.
    pub(crate) fn new(
        topology: &Topology,
        stealers: Vec<Stealer<JobRef>>,
        h: Handlers,
        config: Config,
    ) -> Self {
        let cpus = topology.cpus();
        let nodes = topology.nodes();
        let mut node_slots = vec![Vec::new(); nodes.len()];
        let slots: Box<[_]> = stealers
            .into_iter()
            .enumerate()
            .map(|(i, stealer)| {
                let cpu = cpus[i % cpus.len()];
                let node = topology.node_of(cpu);
                let node_index = topology.node_index(node).expect("node of a known CPU");
                node_slots[node_index].push(i);
                CachePadded::new(CoreSlot {
                    cpu,
                    node,
                    node_index,
                    stealer,
                    inbox: Injector::new(),
                    stats: CachePadded::new(SlotStats::default()),
                })
            })
            .collect();
        let remote_order = (0..nodes.len())
            .map(|a| {
                let mut others: Vec<usize> = (0..nodes.len()).filter(|&b| b != a).collect();
                others.sort_by_key(|&b| (topology.distance(nodes[a], nodes[b]), b));
                others
            })
            .collect();
        let max_os = cpus.iter().map(|&c| topology.os_cpu(c)).max().unwrap_or(0);
        let mut os_cpu_node = vec![0; max_os + 1];
        // Synthetic CPUs may share an OS CPU; the first one listed decides.
        for &c in cpus.iter().rev() {
            os_cpu_node[topology.os_cpu(c)] = topology.node_index(topology.node_of(c)).unwrap_or(0);
        }
        Registry {
            sleep: Sleep::new(slots.len()),
            slots,
            injectors: (0..nodes.len())
                .map(|_| CachePadded::new(Injector::new()))
                .collect(),
            node_slots,
            remote_order,
            os_cpu_node,
            terminating: AtomicBool::new(false),
            start_handler: h.start,
            exit_handler: h.exit,
            panic_handler: h.panic,
            config,
            replication: Default::default(),
            takeovers_without_replacement: Default::default(),
        }
    }

    pub(crate) fn num_threads(&self) -> usize {
        self.slots.len()
    }

    /// Queues `job` on the injector of the calling thread's node and makes sure a worker looks.
    pub(crate) fn inject(&self, job: JobRef) {
        let node = self.submitter_node();
        self.injectors[node].push(job);
        self.sleep.new_injected_work();
    }

    /// The node index of the CPU the calling thread runs on now (0 if unknown).
    fn submitter_node(&self) -> usize {
        if self.injectors.len() == 1 {
            return 0;
        }
        current_os_cpu()
            .and_then(|cpu| self.os_cpu_node.get(cpu).copied())
            .unwrap_or(0)
    }

    /// Asks every worker to exit once no work is left anywhere.
    pub(crate) fn terminate(&self) {
        self.terminating.store(true, Ordering::SeqCst);
        self.sleep.wake_all();
    }

    /// Hands a panic from a spawned task to the handler, or reports it; never unwinds further.
    pub(crate) fn handle_panic(&self, payload: Box<dyn Any + Send>) {
        match &self.panic_handler {
            Some(handler) => {
                let handler = std::panic::AssertUnwindSafe(|| handler(payload));
                if std::panic::catch_unwind(handler).is_err() {
                    eprintln!("replicore: the panic handler itself panicked; continuing");
                }
            }
            None => eprintln!(
                "replicore: a spawned task panicked: {}; the worker goes on",
                panic_message(&*payload)
            ),
        }
    }
}

/// The text of a panic payload, if it has one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "<non-string payload>"
    }
}

#[cfg(target_os = "linux")]
fn current_os_cpu() -> Option<usize> {
    // SAFETY: `sched_getcpu` has no preconditions; it reads the CPU number from the vDSO.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

#[cfg(not(target_os = "linux"))]
fn current_os_cpu() -> Option<usize> {
    None
}
