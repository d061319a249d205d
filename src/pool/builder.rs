//! Building a pool: options, validation and typed errors.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_deque::Worker;

use super::recovery::monitor::start_monitor;
use super::registry::{Config, Handlers, IndexHandler, PanicHandler, Registry, WorkerStart};
use super::spawn_handler::ThreadBuilder;
use super::thread_pool::ThreadPool;
use super::worker::WorkerThread;
use crate::{Topology, TopologyError, TopologySource};

/// The most workers one pool may have. Far above any machine this crate targets, low enough to
/// catch a unit mistake (bytes for threads) before it spawns thousands of threads.
///
/// ```
/// use replicore::{BuildError, MAX_THREADS, ThreadPool};
/// let too_many = ThreadPool::builder().num_threads(MAX_THREADS + 1).build();
/// assert!(matches!(too_many, Err(BuildError::TooManyThreads { .. })));
/// ```
pub const MAX_THREADS: usize = 1024;

/// The environment variable that sets the default thread count, as `RAYON_NUM_THREADS` does for
/// rayon: read by [`ThreadPoolBuilder::build`] when no thread count was given (or `0` was). Unset
/// or `0` means one worker per CPU of the topology; a value that is not a whole number makes
/// `build` fail with [`BuildError::NumThreadsEnv`] (rayon ignores it); a value above
/// [`MAX_THREADS`] fails with [`BuildError::TooManyThreads`] (rayon lowers it).
///
/// ```
/// assert_eq!(replicore::NUM_THREADS_ENV, "REPLICORE_NUM_THREADS");
/// ```
pub const NUM_THREADS_ENV: &str = "REPLICORE_NUM_THREADS";

/// Why [`ThreadPoolBuilder::build`] (or [`build_global`](ThreadPoolBuilder::build_global))
/// failed.
///
/// ```
/// let err = replicore::ThreadPool::builder().num_threads(5000).build().unwrap_err();
/// assert!(matches!(err, replicore::BuildError::TooManyThreads { requested: 5000, .. }));
/// assert!(err.to_string().contains("at most 1024"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// More than [`MAX_THREADS`] workers were requested.
    TooManyThreads {
        /// The requested count.
        requested: usize,
        /// The cap.
        max: usize,
    },
    /// The topology could not be detected or is unusable.
    Topology(TopologyError),
    /// `replication_factor(r)` asked for more replicas than the pool has neighbour CPUs for.
    ReplicationFactor {
        /// The requested factor.
        requested: usize,
        /// The largest factor allowed for this pool: `min(3, cpus - 1)`.
        max: usize,
    },
    /// `lease(d)` was shorter than [`MIN_LEASE`].
    LeaseTooShort {
        /// The requested lease.
        requested: Duration,
    },
    /// `max_spare_threads(n)` was above [`MAX_THREADS`].
    TooManySpareThreads {
        /// The requested cap.
        requested: usize,
    },
    /// `REPLICORE_NUM_THREADS` was read (no thread count given, or `num_threads(0)`) and is
    /// not a whole number. rayon ignores an unparsable `RAYON_NUM_THREADS`; replicore refuses
    /// it, so that a typo does not silently give one worker per CPU.
    NumThreadsEnv {
        /// The variable's value (lossily converted if it was not UTF-8).
        value: String,
    },
    /// The `thread_name` closure panicked for worker `index`. Names are made before any thread
    /// starts, so nothing was started.
    ThreadName {
        /// The worker whose name was being made.
        index: usize,
        /// The panic's message, if it had one.
        message: String,
    },
    /// [`ThreadPoolBuilder::build_global`] was called after the global pool was built (by an
    /// earlier `build_global`, or by a free function such as [`join`](crate::join) that needed
    /// it).
    GlobalPoolAlreadyInitialized,
    /// [`ThreadPoolBuilder::use_current_thread`] was set, but the calling thread is already a
    /// worker of a pool (a pool's own worker thread, or the thread that built another
    /// `use_current_thread` pool that is still alive). A thread can be worker 0 of one pool at
    /// a time: build from a thread outside every pool, or drop (or shut down) the other pool on
    /// this thread first.
    CurrentThreadInPool,
    /// The OS (or the [`spawn_handler`](ThreadPoolBuilder::spawn_handler), by returning an
    /// error or panicking) refused to start a worker thread; the workers already started were
    /// shut down.
    Spawn {
        /// Index of the worker that could not start.
        index: usize,
        /// The OS error.
        source: std::io::Error,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NumThreadsEnv { value } => write!(
                f,
                "{NUM_THREADS_ENV}={value:?} is not a thread count: it must be a whole number in \
                 0..={MAX_THREADS} (0 = one worker per CPU)"
            ),
            BuildError::ThreadName { index, message } => write!(
                f,
                "the thread_name closure panicked for worker {index}: {message}"
            ),
            BuildError::GlobalPoolAlreadyInitialized => write!(
                f,
                "the global thread pool was already initialised (by an earlier build_global or \
                 by a free function that needed it)"
            ),
            BuildError::CurrentThreadInPool => write!(
                f,
                "use_current_thread: the calling thread is already a worker of a pool; build from \
                 a thread outside every pool, or drop the pool this thread belongs to first"
            ),
            BuildError::TooManyThreads { requested, max } => write!(
                f,
                "{requested} threads requested, but a pool may have at most {max} (allowed: 1..={max})"
            ),
            BuildError::ReplicationFactor { requested, max } => write!(
                f,
                "replication factor {requested} is not allowed for this pool: each CPU's queue is \
                 replicated to that many other CPUs, so it must be in 0..={max} (min(3, cpus - 1))"
            ),
            BuildError::LeaseTooShort { requested } => write!(
                f,
                "lease {requested:?} is too short: it must be at least {MIN_LEASE:?}, or busy \
                 workers would be taken over while making progress"
            ),
            BuildError::TooManySpareThreads { requested } => write!(
                f,
                "max_spare_threads({requested}) is not allowed: it must be in 0..={MAX_THREADS}"
            ),
            BuildError::Topology(e) => write!(f, "the topology cannot be used for a pool: {e}"),
            BuildError::Spawn { index, source } => {
                write!(f, "could not spawn worker thread {index}: {source}")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Topology(e) => Some(e),
            BuildError::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

type NameFn = Box<dyn Fn(usize) -> String>;

/// The shortest lease [`ThreadPoolBuilder::lease`] accepts.
///
/// ```
/// use std::time::Duration;
/// use replicore::{MIN_LEASE, ThreadPool};
/// let pool = ThreadPool::builder().num_threads(1).lease(MIN_LEASE).build()?;
/// assert_eq!(pool.lease(), MIN_LEASE);
/// assert!(ThreadPool::builder().lease(MIN_LEASE / 2).build().is_err());
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub const MIN_LEASE: Duration = Duration::from_millis(1);

/// The lease used unless [`ThreadPoolBuilder::lease`] says otherwise.
///
/// ```
/// use replicore::{DEFAULT_LEASE, ThreadPool};
/// let pool = ThreadPool::builder().num_threads(1).build()?;
/// assert_eq!(pool.lease(), DEFAULT_LEASE);
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub const DEFAULT_LEASE: Duration = Duration::from_millis(20);

/// The replication factor used unless [`ThreadPoolBuilder::replication_factor`] says otherwise
/// (lowered to what the pool allows, so a one-CPU pool builds with the defaults).
///
/// ```
/// use replicore::{DEFAULT_REPLICATION_FACTOR, ThreadPool};
/// let pool = ThreadPool::builder().num_threads(2).build()?;
/// assert_eq!(pool.replication_factor(), DEFAULT_REPLICATION_FACTOR);
/// // One CPU has no neighbour to replicate to: the default is lowered, not refused.
/// let single = ThreadPool::builder().num_threads(1).build()?;
/// assert_eq!(single.replication_factor(), 0);
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub const DEFAULT_REPLICATION_FACTOR: usize = 1;

/// The highest replication factor any pool accepts.
///
/// ```
/// use replicore::{MAX_REPLICATION_FACTOR, ThreadPool};
/// let err = ThreadPool::builder()
///     .num_threads(8)
///     .replication_factor(MAX_REPLICATION_FACTOR + 1)
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("replication factor"));
/// ```
pub const MAX_REPLICATION_FACTOR: usize = 3;

/// Configures and builds a [`ThreadPool`]; get one from [`ThreadPool::builder`].
///
/// ```
/// let pool = replicore::ThreadPool::builder()
///     .num_threads(2)
///     .topology("numa:2 core:1 pu:1".parse()?)
///     .thread_name(|i| format!("worker-{i}"))
///     .build()?;
/// assert_eq!(pool.current_num_threads(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
#[must_use]
pub struct ThreadPoolBuilder {
    num_threads: Option<usize>,
    topology: Option<Topology>,
    pin_workers: Option<bool>,
    thread_name: Option<NameFn>,
    stack_size: Option<usize>,
    start_handler: Option<IndexHandler>,
    exit_handler: Option<IndexHandler>,
    panic_handler: Option<PanicHandler>,
    replication_factor: Option<usize>,
    lease: Option<Duration>,
    max_spare_threads: Option<usize>,
    spawn_handler: Option<super::spawn_handler::SpawnHandler>,
    use_current_thread: bool,
    #[cfg(feature = "fault-injection")]
    fault_plan: Option<crate::fault::FaultPlan>,
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("num_threads", &self.num_threads)
            .field("topology", &self.topology)
            .field("pin_workers", &self.pin_workers)
            .field("stack_size", &self.stack_size)
            .field("replication_factor", &self.replication_factor)
            .field("lease", &self.lease)
            .field("max_spare_threads", &self.max_spare_threads)
            .field("use_current_thread", &self.use_current_thread)
            .finish_non_exhaustive()
    }
}

// Building is this file's business: `ThreadPool::builder` lives here, beside what it returns,
// so that the pool handle does not depend on its builder.
impl ThreadPool {
    /// A builder with every option at its default.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }
}

impl ThreadPoolBuilder {
    /// A builder with every option at its default.
    ///
    /// ```
    /// let pool = replicore::ThreadPoolBuilder::new().build()?;
    /// assert!(pool.current_num_threads() >= 1);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of workers, at most [`MAX_THREADS`]. Not calling this, or `0`, means automatic:
    /// the value of [`NUM_THREADS_ENV`] (`REPLICORE_NUM_THREADS`) if it is set and not `0`, else
    /// one worker per CPU of the topology.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(3).build()?;
    /// assert_eq!(pool.current_num_threads(), 3);
    /// let auto = replicore::ThreadPool::builder().num_threads(0).build()?;
    /// assert!(auto.current_num_threads() >= 1);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn num_threads(mut self, n: usize) -> Self {
        self.num_threads = Some(n);
        self
    }

    /// The machine description workers are laid out on; the default is [`Topology::detect`].
    /// Worker `i` runs on `topology.cpus()[i % num_cpus]`.
    ///
    /// ```
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let pool = replicore::ThreadPool::builder().topology(topo).build()?;
    /// assert_eq!(pool.current_num_threads(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = Some(topology);
        self
    }

    /// Whether to pin each worker to its CPU's OS CPU. The default is on for a detected
    /// topology and off for a synthetic one. A refused pin is not an error.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(1).pin_workers(false).build()?;
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn pin_workers(mut self, pin: bool) -> Self {
        self.pin_workers = Some(pin);
        self
    }

    /// Names worker threads; the default is `replicore-{index}`. The names are made once, at
    /// `build`, before any thread starts: a replacement worker started after a takeover of CPU
    /// position `index` takes the same name as the worker it replaces. If the closure panics,
    /// `build` catches the panic, starts no thread and returns [`BuildError::ThreadName`] naming
    /// the index (rayon would let the panic escape its `build`).
    ///
    /// ```
    /// // A long lease keeps this example exact on a busy machine: a worker descheduled for
    /// // longer than the lease is taken over, and its replacement thread has its own name.
    /// let pool = replicore::ThreadPool::builder()
    ///     .num_threads(1)
    ///     .lease(std::time::Duration::from_secs(1))
    ///     .thread_name(|i| format!("w{i}"))
    ///     .build()?;
    /// let name = pool.install(|| std::thread::current().name().map(str::to_owned));
    /// assert_eq!(name.as_deref(), Some("w0"));
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn thread_name(mut self, name: impl Fn(usize) -> String + 'static) -> Self {
        self.thread_name = Some(Box::new(name));
        self
    }

    /// Stack size of each worker thread in bytes; the default is the platform's.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(1).stack_size(4 << 20).build()?;
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Called on each worker thread, with its index, before it runs any task. The worker's lease
    /// starts after the handler returns, so a slow handler is never taken for a stall. A panic
    /// in the handler goes to the [`panic_handler`](Self::panic_handler) (or stderr), and the
    /// worker then starts normally.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let s = started.clone();
    /// let pool = replicore::ThreadPool::builder()
    ///     .num_threads(2)
    ///     // Replacement threads started by a takeover call the handler too; a long lease keeps
    ///     // the count exact even when a busy machine deschedules a worker for a while.
    ///     .lease(std::time::Duration::from_secs(1))
    ///     .start_handler(move |_| { s.fetch_add(1, Ordering::SeqCst); })
    ///     .build()?;
    /// pool.shutdown();
    /// assert_eq!(started.load(Ordering::SeqCst), 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn start_handler(mut self, handler: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.start_handler = Some(Box::new(handler));
        self
    }

    /// Called on each worker thread, with its index, when it exits at shutdown (or retires after a
    /// takeover). The thread has left the pool by then: a task it spawns goes to the global pool.
    /// A panic in the handler goes to the [`panic_handler`](Self::panic_handler) (or stderr).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let exited = Arc::new(AtomicUsize::new(0));
    /// let e = exited.clone();
    /// let pool = replicore::ThreadPool::builder()
    ///     .num_threads(2)
    ///     // A long lease: no takeover (whose replacement threads would exit too) on a busy machine.
    ///     .lease(std::time::Duration::from_secs(1))
    ///     .exit_handler(move |_| { e.fetch_add(1, Ordering::SeqCst); })
    ///     .build()?;
    /// pool.shutdown();
    /// assert_eq!(exited.load(Ordering::SeqCst), 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn exit_handler(mut self, handler: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.exit_handler = Some(Box::new(handler));
        self
    }

    /// Receives the payload of every panic in a [`ThreadPool::spawn`]ed task, and in the start
    /// and exit handlers. Without one, the
    /// panic is reported on stderr and the worker goes on (it never aborts).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let panics = Arc::new(AtomicUsize::new(0));
    /// let p = panics.clone();
    /// let pool = replicore::ThreadPool::builder()
    ///     .num_threads(1)
    ///     .panic_handler(move |_| { p.fetch_add(1, Ordering::SeqCst); })
    ///     .build()?;
    /// pool.spawn(|| panic!("boom"));
    /// pool.shutdown();
    /// assert_eq!(panics.load(Ordering::SeqCst), 1);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn panic_handler(
        mut self,
        handler: impl Fn(Box<dyn Any + Send>) + Send + Sync + 'static,
    ) -> Self {
        self.panic_handler = Some(Box::new(handler));
        self
    }

    /// How many neighbour CPUs replicate each CPU's run queue (nearest first, by
    /// [`Topology::neighbours`]). `0` turns replication off: stalls are still recovered (the
    /// stalled worker's queue stays reachable by stealing), but a task a *crashed* worker had
    /// dequeued and not started can be lost. The default is 1; allowed is `0..=min(3, cpus - 1)`,
    /// where `cpus` counts the CPUs the workers run on.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).replication_factor(0).build()?;
    /// let err = replicore::ThreadPool::builder().num_threads(2).replication_factor(2).build();
    /// assert!(err.unwrap_err().to_string().contains("0..=1"));
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn replication_factor(mut self, r: usize) -> Self {
        self.replication_factor = Some(r);
        self
    }

    /// How long a worker may be **blocked** (its thread not runnable, and mostly off its CPU:
    /// sleeping, waiting on I/O, a lock or a page fault) without reaching a scheduling point
    /// before its CPU is taken over (its queued tasks adopted, a replacement worker started). The
    /// default is 20 ms; the minimum is 1 ms. A task that blocks for longer than this keeps
    /// running: only the work queued behind it moves. A worker that is *busy* for longer (a long
    /// computation, or a thread waiting for a CPU) is not taken over on Linux, where the pool
    /// can see the thread's state; elsewhere the lease alone decides.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = replicore::ThreadPool::builder().num_threads(2).lease(Duration::from_millis(5)).build()?;
    /// let err = replicore::ThreadPool::builder().lease(Duration::from_micros(10)).build();
    /// assert!(err.unwrap_err().to_string().contains("at least 1ms"));
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The most extra worker threads the pool may have at once because of takeovers: a
    /// takeover starts a replacement while the stalled thread still exists; when that stalled
    /// thread resumes, retires and has been joined, its place in the budget is free again (a
    /// crashed thread keeps it). So a pool never has more than `num_threads + max_spare_threads`
    /// worker threads, and lives through any number of takeovers. At the cap, an expired lease is
    /// **not** fenced (fencing without a replacement could leave the pool with no worker at all):
    /// the stalled worker keeps its CPU, its queued tasks stay reachable by stealing, and copies
    /// of its replicated tasks (including the one in hand) go to the injectors, where the claim
    /// lets exactly one copy run; it is taken over once a thread has retired. Each such stall is
    /// counted once in `RecoveryStats::takeovers_without_replacement`. The default equals the number
    /// of workers; allowed is `0..=`[`MAX_THREADS`].
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).max_spare_threads(0).build()?;
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn max_spare_threads(mut self, n: usize) -> Self {
        self.max_spare_threads = Some(n);
        self
    }

    /// Starts worker threads through `handler` instead of `std::thread::spawn`: it receives a
    /// [`ThreadBuilder`] per worker and must start a thread that calls
    /// [`ThreadBuilder::run`], then return `Ok(())`. An `Err` (or a panic) makes `build` fail with
    /// [`BuildError::Spawn`].
    ///
    /// Unlike rayon, the handler is kept for the pool's life: when a takeover starts a
    /// replacement worker, it goes through the handler too (with the replaced worker's index
    /// and name). That is why it must be `Send + 'static`; to spawn on scoped threads, use
    /// [`build_scoped`](Self::build_scoped). Calls are serialised (a lock), so `FnMut` is fine.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let spawned = Arc::new(AtomicUsize::new(0));
    /// let s = spawned.clone();
    /// let pool = replicore::ThreadPoolBuilder::new()
    ///     .num_threads(2)
    ///     .lease(std::time::Duration::from_secs(2)) // no replacement during the example
    ///     .spawn_handler(move |thread| {
    ///         s.fetch_add(1, Ordering::SeqCst);
    ///         std::thread::Builder::new()
    ///             .name(format!("custom-{}", thread.index()))
    ///             .spawn(move || thread.run())?;
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// let name = pool.install(|| std::thread::current().name().map(str::to_owned));
    /// assert!(name.unwrap().starts_with("custom-"));
    /// assert_eq!(spawned.load(Ordering::SeqCst), 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn spawn_handler<F>(mut self, handler: F) -> Self
    where
        F: FnMut(ThreadBuilder) -> std::io::Result<()> + Send + 'static,
    {
        self.spawn_handler = Some(crate::sync::Mutex::new(Box::new(handler)));
        self
    }

    /// Makes the thread that calls [`build`](Self::build) (or
    /// [`build_global`](Self::build_global)) worker 0 of the pool, as rayon-core's option of
    /// the same name does: no thread is spawned for index 0, and right after `build` returns,
    /// [`current_thread_index`](crate::current_thread_index) is `Some(0)` on that thread.
    ///
    /// That thread works for the pool only while it is inside a pool call (`install`, `join`,
    /// `scope`, [`yield_now`](crate::yield_now), waiting on a latch, ...): outside them it runs
    /// your code, not the pool's loop. Tasks it queues (a [`spawn`](crate::spawn) on it pushes
    /// onto its own deque) are stolen by the other workers at any time. With `num_threads(1)`
    /// it is the only worker: work submitted from other threads then runs only while it is
    /// inside a pool call, and a broadcast waits for it to enter one (rayon-core behaves the
    /// same).
    ///
    /// - **Handlers.** The [`start_handler`](Self::start_handler) runs for index 0 on the
    ///   calling thread, inside `build`; the [`exit_handler`](Self::exit_handler) runs there
    ///   when the thread leaves the pool by dropping or shutting it down (not when the thread
    ///   exits with the pool still alive elsewhere). rayon-core runs neither for this thread.
    ///   The [`spawn_handler`](Self::spawn_handler), [`thread_name`](Self::thread_name),
    ///   [`stack_size`](Self::stack_size) and [`pin_workers`](Self::pin_workers) do not apply
    ///   to it: it is your thread, not started or pinned by the pool.
    /// - **No takeover.** Its position is never judged, so never taken over, however long the
    ///   thread stays outside the pool (this is the one exception to the fault-tolerance
    ///   guarantee: a blocked caller keeps its position, and its queued tasks are reached by
    ///   stealing instead). It is not in a fault plan (`fault_plan`, feature `fault-injection`) either.
    /// - **Leaving.** Dropping the pool on this thread (outside the pool's tasks) first makes it
    ///   leave: its queued tasks go to the other workers, which run them as usual; a pool of one
    ///   worker has no one else, so its drop runs the queued work on this thread first.
    ///   [`ThreadPool::shutdown`] on this thread runs queued work, leaves, then waits as usual.
    ///   If the pool is dropped on another thread, this thread stops being a worker as soon as it
    ///   is outside the pool's tasks: later `spawn`, `join`, ... here go to the global pool. The
    ///   worker's small state stays allocated (holding the pool's shared state) until the thread
    ///   exits; rayon-core keeps it for the process's life.
    ///
    /// # Errors
    ///
    /// `build` fails with [`BuildError::CurrentThreadInPool`] if the calling thread is already
    /// a worker of a pool (including one built with this option and still alive).
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).use_current_thread().build()?;
    /// assert_eq!(replicore::current_thread_index(), Some(0));
    /// let here = std::thread::current().id();
    /// assert_eq!(pool.install(|| std::thread::current().id()), here);
    /// let again = replicore::ThreadPool::builder().use_current_thread().build();
    /// assert!(matches!(again, Err(replicore::BuildError::CurrentThreadInPool)));
    /// drop(pool);
    /// assert_eq!(replicore::current_thread_index(), None);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn use_current_thread(mut self) -> Self {
        self.use_current_thread = true;
        self
    }

    /// Builds a pool whose worker threads are scoped threads (`std::thread::scope`), runs
    /// `with_pool` with it, shuts the pool down (waiting for all its work) and returns
    /// `with_pool`'s result. Each worker thread calls `wrapper` with its [`ThreadBuilder`];
    /// `wrapper` must call [`ThreadBuilder::run`] (after any set-up of its own) and may borrow
    /// from the caller's stack. Replacement workers after a takeover are scoped threads too.
    ///
    /// # Errors
    ///
    /// Any error of [`build`](Self::build); a `spawn_handler` set before is replaced. A panic in
    /// `with_pool` is re-raised after the pool shut down.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let entered = AtomicUsize::new(0); // borrowed by every worker thread
    /// let sum = replicore::ThreadPoolBuilder::new()
    ///     .num_threads(2)
    ///     .lease(std::time::Duration::from_secs(2)) // no replacement during the example
    ///     .build_scoped(
    ///         |thread| {
    ///             entered.fetch_add(1, Ordering::SeqCst);
    ///             thread.run()
    ///         },
    ///         |pool| pool.install(|| (1..=10).sum::<u32>()),
    ///     )?;
    /// assert_eq!(sum, 55);
    /// assert_eq!(entered.load(Ordering::SeqCst), 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn build_scoped<W, F, R>(self, wrapper: W, with_pool: F) -> Result<R, BuildError>
    where
        W: Fn(ThreadBuilder) + Sync,
        F: FnOnce(&ThreadPool) -> R,
    {
        std::thread::scope(|scope| {
            let wrapper = &wrapper;
            let handler = move |thread: ThreadBuilder| -> std::io::Result<()> {
                let mut b = std::thread::Builder::new();
                if let Some(name) = thread.name() {
                    b = b.name(name.to_owned());
                }
                if let Some(size) = thread.stack_size() {
                    b = b.stack_size(size);
                }
                b.spawn_scoped(scope, move || wrapper(thread))?;
                Ok(())
            };
            let handler: Box<dyn FnMut(ThreadBuilder) -> std::io::Result<()> + Send + '_> =
                Box::new(handler);
            // SAFETY: the handler borrows `scope` and `wrapper`, which live until this closure
            // returns, and it is called only to start worker threads. Before we return, the pool
            // is shut down (`build`'s own error path shuts it down too): every worker thread has
            // exited and the monitor has stopped, so no takeover can start another thread
            // through it. After that it is at most dropped, and dropping it touches nothing it
            // borrows (it holds two references).
            let handler: Box<dyn FnMut(ThreadBuilder) -> std::io::Result<()> + Send + 'static> =
                unsafe { std::mem::transmute(handler) };
            let mut builder = self;
            builder.spawn_handler = Some(crate::sync::Mutex::new(handler));
            let pool = builder.build()?;
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| with_pool(&pool)));
            pool.shutdown();
            match result {
                Ok(r) => Ok(r),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })
    }

    /// Injects the faults of `plan` at the named points of every worker's loop (only with the
    /// `fault-injection` feature). Worker `i` is fault-plan worker `i`; replacement workers get
    /// ids from the worker count up.
    ///
    /// ```
    /// use replicore::fault::FaultPlan;
    /// let pool = replicore::ThreadPool::builder().num_threads(2).fault_plan(FaultPlan::none()).build()?;
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    #[cfg(feature = "fault-injection")]
    pub fn fault_plan(mut self, plan: crate::fault::FaultPlan) -> Self {
        self.fault_plan = Some(plan);
        self
    }

    /// Validates the options and starts the workers.
    ///
    /// # Errors
    ///
    /// Every way it can fail, each a [`BuildError`] variant; when it fails, no worker of the
    /// new pool is left running:
    ///
    /// - [`Topology`](BuildError::Topology): no topology was given and detecting the machine
    ///   failed.
    /// - [`NumThreadsEnv`](BuildError::NumThreadsEnv): the thread count was left automatic and
    ///   `REPLICORE_NUM_THREADS` is set to something that is not a whole number.
    /// - [`TooManyThreads`](BuildError::TooManyThreads): more than [`MAX_THREADS`] workers, asked
    ///   for with [`num_threads`](Self::num_threads) or `REPLICORE_NUM_THREADS`.
    /// - [`ReplicationFactor`](BuildError::ReplicationFactor),
    ///   [`LeaseTooShort`](BuildError::LeaseTooShort),
    ///   [`TooManySpareThreads`](BuildError::TooManySpareThreads): an option out of range.
    /// - [`ThreadName`](BuildError::ThreadName): the [`thread_name`](Self::thread_name) closure
    ///   panicked (checked before any thread starts).
    /// - [`Spawn`](BuildError::Spawn): the OS refused a worker thread or the monitor thread, or
    ///   the [`spawn_handler`](Self::spawn_handler) returned an error or panicked (the workers
    ///   already started are shut down first).
    ///
    /// - [`CurrentThreadInPool`](BuildError::CurrentThreadInPool): with
    ///   [`use_current_thread`](Self::use_current_thread), the calling thread is already a
    ///   worker of a pool.
    ///
    /// [`build_global`](Self::build_global) can also fail with
    /// [`GlobalPoolAlreadyInitialized`](BuildError::GlobalPoolAlreadyInitialized).
    ///
    /// # Panics
    ///
    /// Never, short of the process running out of memory (which aborts). Panics in user
    /// closures do not escape: a panicking `thread_name` is the `ThreadName` error above, and
    /// a panicking `spawn_handler` is the `Spawn` error; `start_handler`, `exit_handler` and
    /// `panic_handler` run later, on the workers, where their panics are caught. (A
    /// `spawn_handler` that never returns, say because it calls [`ThreadBuilder::run`] on the
    /// calling thread, makes `build` never return.)
    ///
    /// ```
    /// let err = replicore::ThreadPool::builder().num_threads(5000).build().unwrap_err();
    /// assert!(err.to_string().contains("at most 1024"));
    /// let err = replicore::ThreadPool::builder()
    ///     .num_threads(2)
    ///     .thread_name(|i| if i == 1 { panic!("no name for {i}") } else { format!("w{i}") })
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, replicore::BuildError::ThreadName { index: 1, .. }));
    /// ```
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        if self.use_current_thread && super::worker::WorkerThread::current().is_some() {
            return Err(BuildError::CurrentThreadInPool);
        }
        let detected = self.topology.is_none();
        let topology = match self.topology {
            Some(t) => t,
            None => Topology::detect().map_err(BuildError::Topology)?,
        };
        let n = match self.num_threads {
            Some(n) if n > 0 => n,
            _ => threads_from_env()?.unwrap_or(topology.num_cpus()),
        };
        if n > MAX_THREADS {
            return Err(BuildError::TooManyThreads {
                requested: n,
                max: MAX_THREADS,
            });
        }
        let thread_names = make_names(self.thread_name.as_deref(), n)?;
        // The CPUs the workers actually run on: a pool with fewer threads than CPUs leaves some
        // CPUs without a worker, and those cannot hold replicas.
        let cpus_used = n.min(topology.num_cpus());
        let max_r = MAX_REPLICATION_FACTOR.min(cpus_used - 1);
        let replication_factor = match self.replication_factor {
            Some(r) if r > max_r => {
                return Err(BuildError::ReplicationFactor {
                    requested: r,
                    max: max_r,
                });
            }
            Some(r) => r,
            None => DEFAULT_REPLICATION_FACTOR.min(max_r),
        };
        let lease = self.lease.unwrap_or(DEFAULT_LEASE);
        if lease < MIN_LEASE {
            return Err(BuildError::LeaseTooShort { requested: lease });
        }
        let max_spare_threads = self.max_spare_threads.unwrap_or(n);
        if max_spare_threads > MAX_THREADS {
            return Err(BuildError::TooManySpareThreads {
                requested: max_spare_threads,
            });
        }
        let pin = self
            .pin_workers
            .unwrap_or(detected && topology.source() != TopologySource::Synthetic);
        let config = Config {
            replication_factor,
            lease,
            max_spare_threads,
            pin,
            stack_size: self.stack_size,
            thread_names,
            spawn_handler: self.spawn_handler,
            use_current_thread: self.use_current_thread,
            #[cfg(feature = "fault-injection")]
            fault_plan: self.fault_plan,
        };
        let handlers = Handlers {
            start: self.start_handler,
            exit: self.exit_handler,
            panic: self.panic_handler,
        };
        let use_current_thread = config.use_current_thread;
        let registry = Arc::new(Registry::new(
            &topology,
            n,
            handlers,
            config,
            WorkerThread::run,
        ));
        // Worker 0's seat, deque and lease when the calling thread is worker 0: it starts last,
        // once nothing can fail any more (so a failed build leaves this thread untouched).
        let mut caller = None;
        for index in 0..n {
            if index == 0 && use_current_thread {
                // A fresh pool has `n + max_spare_threads` free seats: this is seat 0.
                let Some(seat) = registry.threads.claim_for_caller() else {
                    return Err(BuildError::Spawn {
                        index,
                        source: std::io::Error::other("no free thread seat"),
                    });
                };
                caller = Some((seat, first_owner(&registry, index, seat)));
                continue;
            }
            // A fresh pool has `n + max_spare_threads` free seats, so this finds one.
            let Some(seat) = registry.threads.reserve() else {
                registry.shut_down(None);
                return Err(BuildError::Spawn {
                    index,
                    source: std::io::Error::other("no free thread seat"),
                });
            };
            let (deque, owner, token) = first_owner(&registry, index, seat);
            // Worker threads are OS threads; loom models spawn their own threads around the
            // protocol pieces instead.
            if let Err(source) = registry.start_worker(index, seat, deque, owner, token) {
                // Nothing was accepted yet: stop the started workers and report.
                registry.shut_down(None);
                return Err(BuildError::Spawn { index, source });
            }
        }
        let monitor = match start_monitor(&registry) {
            Ok(h) => h,
            Err(source) => {
                registry.shut_down(None);
                return Err(BuildError::Spawn { index: n, source });
            }
        };
        if let Some((seat, (deque, owner, token))) = caller {
            let start = WorkerStart {
                index: 0,
                seat,
                deque,
                owner,
                token,
                fault_id: registry.threads.next_fault_id(),
            };
            WorkerThread::register_caller(Arc::clone(&registry), start);
        }
        Ok(ThreadPool::from_parts(registry, monitor))
    }
}

/// `REPLICORE_NUM_THREADS` as a thread count: `None` if unset or `0` (automatic).
fn threads_from_env() -> Result<Option<usize>, BuildError> {
    let Some(raw) = std::env::var_os(NUM_THREADS_ENV) else {
        return Ok(None);
    };
    let value = raw.to_string_lossy();
    match value.trim().parse::<usize>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(BuildError::NumThreadsEnv {
            value: value.into_owned(),
        }),
    }
}

/// Every worker's thread name, made before any thread starts; a panicking name closure becomes
/// [`BuildError::ThreadName`].
fn make_names(
    name: Option<&dyn Fn(usize) -> String>,
    n: usize,
) -> Result<Box<[String]>, BuildError> {
    (0..n)
        .map(|index| match name {
            Some(f) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(index))).map_err(
                |payload| BuildError::ThreadName {
                    index,
                    message: super::job::panic_message(&*payload).to_owned(),
                },
            ),
            None => Ok(format!("replicore-{index}")),
        })
        .collect()
}

/// Sets position `index` up for its first owner, in `seat`: a fresh deque in the position's
/// steal set (with the guard its owner holds) and the epoch-0 lease token.
fn first_owner(
    registry: &Registry,
    index: usize,
    seat: usize,
) -> (
    Worker<super::job::JobRef>,
    super::generations::Owner,
    crate::replication::OwnerToken,
) {
    let deque = Worker::new_lifo();
    let owner = registry.workers[index].generations.add(deque.stealer());
    let cpu = &registry.recovery.cpus[index];
    cpu.owner_seat
        .store(seat, std::sync::atomic::Ordering::Release);
    (deque, owner, cpu.core.lease().owner_token())
}
