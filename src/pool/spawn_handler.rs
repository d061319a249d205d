//! Custom thread spawning (rayon-core's `spawn_handler` and `build_scoped`): a user handler
//! receives a [`ThreadBuilder`] for each worker thread and starts it however it likes.
//!
//! Unlike rayon, where the handler is only called during `build`, replicore keeps it for the
//! pool's life: a takeover starts the replacement worker through the same handler, so a user who
//! needs every worker to live on their own threads (a custom stack, a scoped thread, a runtime's
//! thread registry) gets that for replacements too. That is why the handler must be `Send +
//! 'static`; [`ThreadPoolBuilder::build_scoped`](crate::ThreadPoolBuilder::build_scoped) is the
//! way to spawn on borrowed (scoped) threads.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{JoinHandle, ThreadId};

use crate::sync::Mutex;

/// The stored handler; a `Mutex` so that a takeover driver on any thread may call it.
pub(crate) type SpawnHandler = Mutex<Box<dyn FnMut(ThreadBuilder) -> io::Result<()> + Send>>;

/// One worker thread to start, handed to a
/// [`spawn_handler`](crate::ThreadPoolBuilder::spawn_handler): spawn a thread with the
/// [`name`](Self::name) and [`stack_size`](Self::stack_size) you like and call
/// [`run`](Self::run) on it.
///
/// Always call `run`: a `ThreadBuilder` dropped unrun is a worker that never starts, and shutdown
/// then treats it as a thread that already exited.
///
/// ```
/// let pool = replicore::ThreadPoolBuilder::new()
///     .num_threads(2)
///     .spawn_handler(|thread| {
///         let mut b = std::thread::Builder::new();
///         if let Some(name) = thread.name() {
///             b = b.name(name.to_owned());
///         }
///         b.spawn(move || thread.run())?;
///         Ok(())
///     })
///     .build()?;
/// assert_eq!(pool.install(|| 6 * 7), 42);
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub struct ThreadBuilder {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) body: Box<dyn FnOnce() + Send>,
    pub(crate) exited: ExitGuard,
}

impl ThreadBuilder {
    /// The worker's index in the pool (its position; a replacement has its predecessor's).
    ///
    /// ```
    /// use std::sync::Mutex;
    /// let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// let pool = replicore::ThreadPoolBuilder::new()
    ///     .num_threads(2)
    ///     .lease(std::time::Duration::from_secs(2)) // no replacement during the example
    ///     .spawn_handler(move |t| {
    ///         s.lock().unwrap().push(t.index());
    ///         std::thread::spawn(move || t.run());
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// assert_eq!(*seen.lock().unwrap(), [0, 1]);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// The name [`thread_name`](crate::ThreadPoolBuilder::thread_name) gave (or the default,
    /// `replicore-{index}`); always `Some` in replicore.
    ///
    /// ```
    /// let pool = replicore::ThreadPoolBuilder::new()
    ///     .num_threads(1)
    ///     .thread_name(|i| format!("mine-{i}"))
    ///     .spawn_handler(|t| {
    ///         assert_eq!(t.name(), Some("mine-0"));
    ///         std::thread::spawn(move || t.run());
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    /// The stack size [`stack_size`](crate::ThreadPoolBuilder::stack_size) asked for, if any.
    ///
    /// ```
    /// let pool = replicore::ThreadPoolBuilder::new()
    ///     .num_threads(1)
    ///     .stack_size(1 << 20)
    ///     .spawn_handler(|t| {
    ///         assert_eq!(t.stack_size(), Some(1 << 20));
    ///         let mut b = std::thread::Builder::new();
    ///         if let Some(size) = t.stack_size() {
    ///             b = b.stack_size(size);
    ///         }
    ///         b.spawn(move || t.run())?;
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn stack_size(&self) -> Option<usize> {
        self.stack_size
    }

    /// Runs the worker on the calling thread until the pool shuts down (or the worker retires
    /// after a takeover). Pinning, the start and exit handlers all happen inside.
    ///
    /// ```
    /// let pool = replicore::ThreadPoolBuilder::new()
    ///     .num_threads(1)
    ///     .spawn_handler(|t| {
    ///         std::thread::spawn(move || t.run());
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// assert!(pool.install(replicore::current_thread_index).is_some());
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn run(self) {
        self.exited.started();
        (self.body)();
        // `exited` drops here and tells shutdown this thread is done with the pool.
    }
}

impl std::fmt::Debug for ThreadBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadBuilder")
            .field("index", &self.index)
            .field("name", &self.name)
            .field("stack_size", &self.stack_size)
            .finish_non_exhaustive()
    }
}

/// What shutdown knows about a custom-spawned worker thread: whether it finished with the pool.
#[derive(Default)]
pub(crate) struct Exited {
    done: AtomicBool,
    thread: std::sync::OnceLock<ThreadId>,
}

/// Set when the `ThreadBuilder` is dropped: after `run` returned, or unrun.
pub(crate) struct ExitGuard(pub(crate) Arc<Exited>);

impl ExitGuard {
    fn started(&self) {
        let _ = self.0.thread.set(std::thread::current().id());
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
    }
}

/// A worker thread's handle: the `JoinHandle` of a thread the pool spawned, or the exit flag of
/// one a spawn handler started.
pub(crate) enum WorkerHandle {
    Std(JoinHandle<()>),
    Custom(Arc<Exited>),
}

impl WorkerHandle {
    pub(crate) fn is_finished(&self) -> bool {
        match self {
            WorkerHandle::Std(h) => h.is_finished(),
            WorkerHandle::Custom(e) => e.done.load(Ordering::Acquire),
        }
    }

    /// Joins a pool-spawned thread; a custom thread has nothing to join (its spawner owns it).
    pub(crate) fn join(self) {
        if let WorkerHandle::Std(h) = self {
            let _ = h.join();
        }
    }

    /// Whether the thread crashed for good at a fault point.
    pub(crate) fn crashed(&self) -> bool {
        match self {
            WorkerHandle::Std(h) => crate::fault::thread_crashed(h.thread().id()),
            WorkerHandle::Custom(e) => e
                .thread
                .get()
                .is_some_and(|id| crate::fault::thread_crashed(*id)),
        }
    }
}

/// Starts a worker thread through `handler`: `Ok(handle)` once the handler accepted it. A
/// panicking handler is an error (`build` reports it as `BuildError::Spawn`).
pub(crate) fn spawn_custom(
    handler: &SpawnHandler,
    index: usize,
    name: String,
    stack_size: Option<usize>,
    body: Box<dyn FnOnce() + Send>,
) -> io::Result<WorkerHandle> {
    let exited = Arc::new(Exited::default());
    let builder = ThreadBuilder {
        index,
        name,
        stack_size,
        body,
        exited: ExitGuard(Arc::clone(&exited)),
    };
    let mut h = handler.lock();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (*h)(builder))) {
        Ok(Ok(())) => Ok(WorkerHandle::Custom(exited)),
        Ok(Err(e)) => Err(e),
        Err(payload) => Err(io::Error::other(format!(
            "the spawn handler panicked: {}",
            super::job::panic_message(&*payload)
        ))),
    }
}
