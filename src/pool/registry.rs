//! A pool's shared state: one [`CoreSlot`] per worker, one injector per NUMA node, the sleep
//! protocol and the handlers.

use std::any::Any;

use crossbeam_deque::Injector;
use crossbeam_utils::CachePadded;

use super::generations::Generations;
use super::job::JobRef;
use super::logged::Handle;
use super::probe::ThreadProbe;
use super::sleep::Sleep;
use super::stats::SlotStats;
use crate::replication::{CoreState, DEFAULT_LOG_CAPACITY, Replica, ReplicationStats};
use crate::sync::Mutex;
use super::threads::{NO_SEAT, Threads};
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    /// The OS CPU a pinned worker of this slot binds to.
    pub(crate) os_cpu: usize,
    /// The thieves' ends of every deque this CPU's workers own or owned and is not yet drained.
    /// A replacement worker after a takeover gets a **fresh** deque; the owner end
    /// (`crossbeam_deque::Worker`) lives only on its worker thread, never shared, so two owners
    /// of one deque cannot exist: a fenced worker's old deque is drained only through these.
    pub(crate) generations: Generations,
    /// Jobs that must run on this worker in particular (broadcasts).
    pub(crate) inbox: Injector<JobRef>,
    /// Counters written only by the owner (plain load + store, no read-modify-write). On their
    /// own cache line: thieves read `generations` on every steal attempt, and must not bounce
    /// the line the owner writes on every pop.
    pub(crate) stats: CachePadded<SlotStats>,
    /// Lease, op log and in-hand slot of this CPU (`src/replication/`).
    pub(crate) core: CachePadded<CoreState<Handle>>,
    /// The slots holding replicas of this CPU's log: the workers on the `r` CPUs nearest to it
    /// (`Topology::neighbours`), nearest first.
    pub(crate) replica_holders: Box<[usize]>,
    /// The replicas themselves, in the order of `replica_holders`.
    pub(crate) replicas: Box<[Mutex<Replica<Handle>>]>,
    /// `epoch + 1` while the owner of that epoch is idle: parked (empty deque, nothing in hand),
    /// not started yet (its start handler runs before its lease starts), or exited at shutdown.
    /// An idle owner's silent heartbeat is not a stall. 0 while the owner runs.
    pub(crate) idle: AtomicU64,
    /// The seat of the thread that owns this CPU's current epoch (`threads::NO_SEAT`: none).
    pub(crate) owner_seat: AtomicUsize,
    /// The OS's view of that thread, published by it when its lease starts, with its epoch.
    pub(crate) owner_probe: Mutex<Option<(u32, ThreadProbe)>>,
    /// This CPU's lease as judged by whoever looks (see `watch`).
    pub(crate) watch: super::watch::Watch,
    /// Slot 0 of a `use_current_thread` pool: its worker is the thread that built the pool,
    /// which renews its lease only while inside a pool call. Such a slot is never judged (so
    /// never taken over), and its worker counts as no live watcher; its queued tasks are
    /// reached by stealing, like any worker's.
    pub(crate) caller_owned: bool,
}

impl CoreSlot {
    /// Whether the owner of the current epoch is idle (see [`idle`](Self::idle)).
    pub(crate) fn owner_idle(&self) -> bool {
        self.idle.load(Ordering::SeqCst) == u64::from(self.core.lease().epoch()) + 1
    }

    /// The probe of the thread owning `epoch`, if that thread published one.
    pub(crate) fn probe_of(&self, epoch: u32) -> Option<ThreadProbe> {
        match *self.owner_probe.lock() {
            Some((e, probe)) if e == epoch => Some(probe),
            _ => None,
        }
    }
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
    /// Parking beds, one per thread seat (see `threads`).
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
    /// Silent leases whose worker thread was running or runnable: not taken over (reporting).
    pub(crate) busy_expiries: std::sync::atomic::AtomicU64,
    /// The worker threads: seats, start, retire, join.
    pub(crate) threads: Threads,
    /// Heap jobs submitted from outside the pool while replication is on, until claimed: no
    /// CPU's log records them, so this list is what lets a takeover re-offer one that a crashed
    /// worker had taken from an injector. Pruned by the monitor.
    pub(crate) external: Mutex<Vec<Handle>>,
    /// Tells the monitor thread to exit.
    pub(crate) monitor_stop: AtomicBool,
    /// For each slot, the slots whose replicas it holds: the leases its worker watches.
    pub(crate) watches: Vec<Vec<usize>>,
    /// Set by the monitor while an expired lease waits for a driver: every worker then checks
    /// every lease (see `watch`). Read by each worker every few loop turns, written rarely: on
    /// its own cache line.
    pub(crate) takeover_wanted: CachePadded<AtomicBool>,
    /// `spawn_fifo`'s per-slot FIFO queues (see `fifo`).
    pub(crate) fifo: super::fifo::FifoQueues,
}

/// The fault-tolerance options of a pool, validated by the builder.
pub(crate) struct Config {
    pub(crate) replication_factor: usize,
    pub(crate) lease: std::time::Duration,
    pub(crate) max_spare_threads: usize,
    pub(crate) pin: bool,
    pub(crate) stack_size: Option<usize>,
    /// Each slot's worker thread name, from the builder's `thread_name` (or the default): a
    /// replacement worker after a takeover takes its CPU's name, as users expect of a name fn.
    pub(crate) thread_names: Box<[String]>,
    /// The builder's `spawn_handler`: starts every worker thread, replacements included.
    pub(crate) spawn_handler: Option<super::spawn_handler::SpawnHandler>,
    /// Worker 0 is the thread that called `build` (`ThreadPoolBuilder::use_current_thread`).
    pub(crate) use_current_thread: bool,
    #[cfg(feature = "fault-injection")]
    pub(crate) fault_plan: Option<crate::fault::FaultPlan>,
}

pub(crate) struct Handlers {
    pub(crate) start: Option<IndexHandler>,
    pub(crate) exit: Option<IndexHandler>,
    pub(crate) panic: Option<PanicHandler>,
}

impl Registry {
    /// Lays out `n` workers over `topology`'s CPUs. Each CPU starts with no deque and its
    /// owner idle (not started); `build` adds each first worker's deque and starts it.
    pub(crate) fn new(topology: &Topology, n: usize, h: Handlers, config: Config) -> Self {
        let cpus = topology.cpus();
        let nodes = topology.nodes();
        let mut node_slots = vec![Vec::new(); nodes.len()];
        let replication: std::sync::Arc<ReplicationStats> = Default::default();
        let slots: Box<[_]> = (0..n)
            .map(|i| {
                let cpu = cpus[i % cpus.len()];
                let node = topology.node_of(cpu);
                let node_index = topology.node_index(node).expect("node of a known CPU");
                node_slots[node_index].push(i);
                let holders = replica_holders(topology, i, n, config.replication_factor);
                CachePadded::new(CoreSlot {
                    cpu,
                    node,
                    node_index,
                    os_cpu: topology.os_cpu(cpu),
                    generations: Generations::new(),
                    inbox: Injector::new(),
                    stats: CachePadded::new(SlotStats::default()),
                    core: CachePadded::new(CoreState::new(
                        i as u32,
                        DEFAULT_LOG_CAPACITY,
                        std::sync::Arc::clone(&replication),
                    )),
                    replica_holders: holders.clone().into_boxed_slice(),
                    replicas: holders.iter().map(|_| Mutex::new(Replica::new(0))).collect(),
                    idle: AtomicU64::new(1),
                    owner_seat: AtomicUsize::new(NO_SEAT),
                    owner_probe: Mutex::new(None),
                    watch: super::watch::Watch::new(std::time::Instant::now()),
                    caller_owned: config.use_current_thread && i == 0,
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
        let watches = (0..n)
            .map(|h| {
                (0..n)
                    .filter(|&i| slots[i].replica_holders.contains(&h))
                    .collect()
            })
            .collect();
        Registry {
            fifo: super::fifo::FifoQueues::new(n),
            watches,
            takeover_wanted: CachePadded::new(AtomicBool::new(false)),
            sleep: Sleep::new(n + config.max_spare_threads),
            threads: Threads::new(n + config.max_spare_threads),
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
            replication,
            takeovers_without_replacement: Default::default(),
            busy_expiries: Default::default(),
            monitor_stop: AtomicBool::new(false),
            external: Mutex::new(Vec::new()),
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
        crate::topology::current_os_cpu()
            .and_then(|cpu| self.os_cpu_node.get(cpu).copied())
            .unwrap_or(0)
    }

    /// Asks every worker to exit once no work is left anywhere.
    pub(crate) fn terminate(&self) {
        self.terminating.store(true, Ordering::SeqCst);
        self.sleep.wake_all();
    }

    /// Runs a start or exit handler. A panic in it goes to the panic handler, as a spawned
    /// task's does (rayon-core's rule); the thread then carries on.
    pub(crate) fn call_handler(&self, handler: &IndexHandler, index: usize) {
        let call = std::panic::AssertUnwindSafe(|| handler(index));
        if let Err(payload) = std::panic::catch_unwind(call) {
            self.handle_panic(payload);
        }
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
                "replicore: a spawned task or a handler panicked: {}; the worker goes on",
                panic_message(&*payload)
            ),
        }
    }
}

/// The slots holding replicas of slot `i`'s log: the workers on the `r` CPUs nearest to slot
/// `i`'s CPU (`Topology::neighbours` order), first worker of each CPU.
fn replica_holders(topology: &Topology, i: usize, n: usize, r: usize) -> Vec<usize> {
    let cpus = topology.cpus();
    let cpu = cpus[i % cpus.len()];
    let first_slot_of = |c: CpuId| {
        let idx = topology.cpu_index(c)?;
        (idx < n).then_some(idx)
    };
    topology
        .neighbours(cpu)
        .into_iter()
        .filter_map(first_slot_of)
        .filter(|&h| h != i)
        .take(r)
        .collect()
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
