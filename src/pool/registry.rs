//! A pool's shared state: where each worker sits and the queues others reach it by
//! ([`WorkerPlace`]), one injector per NUMA node, the sleep protocol, the handlers, the thread
//! seats, and the recovery state (owned here, used only by `recovery`).
//!
//! This file is the hub every other file of the pool builds on, so it depends on none of them
//! but the leaves (`job`, `sleep`, `stats`, `generations`, `spawn_handler`) and recovery's state
//! types. It does not know the worker loop: it starts worker threads through the
//! [`WorkerMain`] function the builder gives it, so recovery can start a replacement without an
//! import cycle.

use std::any::Any;
use std::io;
use std::sync::Arc;

use crossbeam_deque::{Injector, Steal, Worker};
use crossbeam_utils::CachePadded;

use super::fork::Hunger;
use super::generations::{Generations, Owner};
use super::job::JobRef;
use super::recovery::state::RecoveryState;
use super::recovery::threads::{ThreadSpec, Threads};
use super::sleep::Sleep;
use super::stats::WorkerStats;
use crate::replication::OwnerToken;
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::{CpuId, NodeId, Topology};

pub(crate) type IndexHandler = Box<dyn Fn(usize) + Send + Sync>;
pub(crate) type PanicHandler = Box<dyn Fn(Box<dyn Any + Send>) + Send + Sync>;

/// What a new worker thread runs: the worker loop (`worker::WorkerThread::run`), given by the
/// builder.
pub(crate) type WorkerMain = fn(Arc<Registry>, WorkerStart);

/// What a new worker needs: its position, seat, deque and lease.
pub(crate) struct WorkerStart {
    pub(crate) index: usize,
    /// Its thread seat (see `recovery::threads`): its sleep bed, and what latches wake.
    pub(crate) seat: usize,
    /// The owner end of its fresh deque, and the guard that retires that deque when it goes.
    pub(crate) deque: Worker<JobRef>,
    pub(crate) owner: Owner,
    /// The lease it owns its CPU under: epoch 0 for a first worker, the fenced epoch + 1 for a
    /// replacement.
    pub(crate) token: OwnerToken,
    /// Its id in a fault plan.
    pub(crate) fault_id: usize,
}

/// Where worker position `i` sits, and the queues other threads reach it by.
///
/// With the default thread count, position `i` belongs to `topology.cpus()[i]`, i.e. it is
/// indexed by `topology.cpu_index(cpu)`; more threads than CPUs wrap around the CPU list.
pub(crate) struct WorkerPlace {
    pub(crate) cpu: CpuId,
    pub(crate) node: NodeId,
    /// Position of `node` in the topology's node list: the index of its injector.
    pub(crate) node_index: usize,
    /// The OS CPU a pinned worker of this position binds to.
    pub(crate) os_cpu: usize,
    /// The thieves' ends of every deque this position's workers own or owned and is not yet
    /// drained, and of its re-offer deque (`reoffered`). A replacement worker after a takeover gets a **fresh** deque; the owner end
    /// (`crossbeam_deque::Worker`) lives only on its worker thread, never shared, so two owners
    /// of one deque cannot exist: a fenced worker's old deque is drained only through these.
    pub(crate) generations: Generations,
    /// Copies of unclaimed tasks that recovery re-offers from this position's replicas
    /// (`recovery::takeover`). Its thieves' end is in `generations` for good (its `Owner` is
    /// never dropped), so thieves find the copies where they look for this position's tasks,
    /// and mark this position as their source first, as before any steal from it. Pushed by
    /// whichever thread re-offers, under the lock (a deque has one owner end).
    pub(crate) reoffered: Mutex<Worker<JobRef>>,
    _reoffered_owner: Owner,
    /// Jobs that must run on this worker in particular (broadcasts).
    pub(crate) inbox: Injector<JobRef>,
    /// Counters written only by the owner (plain load + store, no read-modify-write). On their
    /// own cache line: thieves read `generations` on every steal attempt, and must not bounce
    /// the line the owner writes on every pop.
    pub(crate) stats: CachePadded<WorkerStats>,
}

pub(crate) struct Registry {
    pub(crate) workers: Box<[CachePadded<WorkerPlace>]>,
    /// External submissions, one queue per NUMA node (indexed like `Topology::nodes`).
    pub(crate) injectors: Box<[CachePadded<Injector<JobRef>>]>,
    /// Worker positions per node index.
    pub(crate) node_workers: Vec<Vec<usize>>,
    /// For each node index, the other node indices by increasing distance.
    pub(crate) remote_order: Vec<Vec<usize>>,
    /// OS CPU number → node index, to route a submission to the submitter's node.
    os_cpu_node: Vec<usize>,
    /// Parking beds, one per thread seat (see `recovery::threads`).
    pub(crate) sleep: Sleep,
    /// How many workers are hungry: when `join` forks (see `fork`).
    pub(crate) hunger: Hunger,
    pub(crate) terminating: AtomicBool,
    pub(crate) start_handler: Option<IndexHandler>,
    pub(crate) exit_handler: Option<IndexHandler>,
    pub(crate) panic_handler: Option<PanicHandler>,
    pub(crate) config: Config,
    /// The worker threads: seats, start, retire, join.
    pub(crate) threads: Threads,
    /// Leases, logs, replicas and takeover counters (see `recovery`).
    pub(crate) recovery: RecoveryState,
    /// `spawn_fifo`'s per-position FIFO queues (see `fifo`).
    pub(crate) fifo: FifoQueues,
    worker_main: WorkerMain,
}

/// The fault-tolerance options of a pool, validated by the builder.
pub(crate) struct Config {
    pub(crate) replication_factor: usize,
    pub(crate) lease: std::time::Duration,
    pub(crate) max_spare_threads: usize,
    pub(crate) pin: bool,
    pub(crate) stack_size: Option<usize>,
    /// Each position's worker thread name, from the builder's `thread_name` (or the default): a
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
    /// owner idle (not started); `build` adds each first worker's deque and starts it, running
    /// `worker_main`.
    pub(crate) fn new(
        topology: &Topology,
        n: usize,
        h: Handlers,
        config: Config,
        worker_main: WorkerMain,
    ) -> Self {
        let cpus = topology.cpus();
        let nodes = topology.nodes();
        let mut node_workers = vec![Vec::new(); nodes.len()];
        let workers: Box<[_]> = (0..n)
            .map(|i| {
                let cpu = cpus[i % cpus.len()];
                let node = topology.node_of(cpu);
                let node_index = topology.node_index(node).expect("node of a known CPU");
                node_workers[node_index].push(i);
                let generations = Generations::new();
                let reoffered = Worker::new_fifo();
                let reoffered_owner = generations.add(reoffered.stealer());
                CachePadded::new(WorkerPlace {
                    cpu,
                    node,
                    node_index,
                    os_cpu: topology.os_cpu(cpu),
                    generations,
                    reoffered: Mutex::new(reoffered),
                    _reoffered_owner: reoffered_owner,
                    inbox: Injector::new(),
                    stats: CachePadded::new(WorkerStats::default()),
                })
            })
            .collect();
        let holders = (0..n)
            .map(|i| replica_holders(topology, i, n, config.replication_factor))
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
            fifo: FifoQueues::new(n),
            recovery: RecoveryState::new(holders, config.use_current_thread),
            sleep: Sleep::new(n + config.max_spare_threads),
            hunger: Hunger::new(n),
            threads: Threads::new(n + config.max_spare_threads),
            workers,
            injectors: (0..nodes.len())
                .map(|_| CachePadded::new(Injector::new()))
                .collect(),
            node_workers,
            remote_order,
            os_cpu_node,
            terminating: AtomicBool::new(false),
            start_handler: h.start,
            exit_handler: h.exit,
            panic_handler: h.panic,
            config,
            worker_main,
        }
    }

    /// Starts a worker thread for position `index` in the reserved `seat`, owning `deque`
    /// (whose generation guard is `owner`) under `token`: pinned if the pool pins, at its
    /// CPU's location, in the fault plan. On error the seat is given back.
    pub(crate) fn start_worker(
        self: &Arc<Self>,
        index: usize,
        seat: usize,
        deque: Worker<JobRef>,
        owner: Owner,
        token: OwnerToken,
    ) -> io::Result<()> {
        let place = &self.workers[index];
        let os_cpu = self.config.pin.then_some(place.os_cpu);
        let location = (place.cpu, place.node);
        let fault_id = self.threads.next_fault_id();
        let registry = Arc::clone(self);
        let body = move || {
            if let Some(cpu) = os_cpu {
                crate::topology::bind_current_thread(cpu);
            }
            crate::topology::set_current_location(Some(location));
            #[cfg(feature = "fault-injection")]
            if let Some(plan) = &registry.config.fault_plan {
                crate::fault::enter(plan);
            }
            crate::fault::set_thread_id(fault_id);
            let main = registry.worker_main;
            let start = WorkerStart {
                index,
                seat,
                deque,
                owner,
                token,
                fault_id,
            };
            main(registry, start);
        };
        let spec = ThreadSpec {
            index,
            name: self.config.thread_names[index].clone(),
            stack_size: self.config.stack_size,
            spawn_handler: self.config.spawn_handler.as_ref(),
        };
        self.threads.start(seat, spec, Box::new(body))
    }

    /// Lets the workers drain every queue and exit, and joins them and then the `monitor`
    /// (see `Threads::shut_down`).
    pub(crate) fn shut_down(&self, monitor: Option<std::thread::JoinHandle<()>>) {
        self.threads.shut_down(
            || self.terminate(),
            || {
                self.recovery.monitor_stop.store(true, Ordering::Release);
                if let Some(m) = monitor {
                    self.recovery.monitor_nap.ring();
                    let _ = m.join();
                }
            },
        );
    }

    pub(crate) fn num_threads(&self) -> usize {
        self.workers.len()
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
        // The monitor watches the drain (a worker can still stall): no napping through it.
        self.recovery.monitor_nap.ring();
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
                super::job::panic_message(&*payload)
            ),
        }
    }
}

/// The positions holding replicas of position `i`'s log: the workers on the `r` CPUs nearest to
/// position `i`'s CPU (`Topology::neighbours` order), first worker of each CPU.
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

/// One FIFO queue of task jobs per worker position (see `fifo`).
pub(crate) struct FifoQueues(Box<[Injector<JobRef>]>);

impl FifoQueues {
    /// Queues for `n` worker positions.
    pub(crate) fn new(n: usize) -> Self {
        FifoQueues((0..n).map(|_| Injector::new()).collect())
    }

    pub(crate) fn push(&self, position: usize, job: JobRef) {
        self.0[position].push(job);
    }

    /// Runs the oldest task of `position`'s queue: a FIFO token's whole work.
    ///
    /// # Safety
    /// Called once per token, and only for a queue that received a task before the token was
    /// queued (so it cannot be empty: tokens and tasks are one to one).
    pub(crate) unsafe fn run_oldest(&self, position: usize) {
        loop {
            match self.0[position].steal() {
                // SAFETY: the task came out of the queue once, so this is its one start.
                Steal::Success(job) => return unsafe { job.execute() },
                Steal::Retry => continue,
                Steal::Empty => unreachable!("a FIFO token found its queue empty"),
            }
        }
    }
}
