//! A persistent thread pool (std): workers are spawned once and spin briefly, then sleep,
//! between jobs, so dispatching a matmul costs about a microsecond, not a thread spawn.

use std::boxed::Box;
use std::vec::Vec;

use crate::exec::Executor;
use sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use sync::thread::{self, JoinHandle};
use sync::{spin_loop, Arc, Condvar, Mutex, UnsafeCell, SPIN};

/// std's primitives, or loom's models of them in this crate's tests under `--cfg loom`
/// (scripts/test.sh's pool-loom check), where the tests at the end explore every
/// interleaving of dispatch, completion and shutdown. (loom is a dev-dependency: a non-test
/// build under `--cfg loom` keeps std's.)
#[cfg(not(all(loom, test)))]
mod sync {
    pub use core::hint::spin_loop;
    pub use std::sync::{atomic, Arc, Condvar, Mutex};
    pub use std::thread;

    /// Spin iterations before a worker sleeps (roughly 50-100 µs).
    pub const SPIN: u32 = 20_000;

    /// `core::cell::UnsafeCell` with loom's closure-based access, so one body of code
    /// serves both.
    pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub fn new(value: T) -> Self {
            UnsafeCell(core::cell::UnsafeCell::new(value))
        }
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(all(loom, test))]
mod sync {
    pub use loom::cell::UnsafeCell;
    pub use loom::hint::spin_loop;
    pub use loom::sync::{atomic, Arc, Condvar, Mutex};
    pub use loom::thread;

    /// Each spin is a step loom explores: spin once, then sleep (the condvar path).
    pub const SPIN: u32 = 1;
}

type Job = dyn Fn(usize) + Sync;

/// State shared by the dispatcher and the workers. The job slot (`job`, `parts`) is written
/// only by the dispatcher, before it publishes a new epoch, and only after every worker has
/// either finished the previous epoch or been closed out of it: so a worker never reads a
/// slot that is being rewritten, and never runs a job whose closure has gone out of scope.
/// A worker that has not started an epoch when the dispatcher finishes is closed out rather
/// than waited for, so a descheduled worker never stalls the caller.
struct Shared {
    /// Bumped (SeqCst) after `job` and `parts` are set for a new job.
    epoch: AtomicU64,
    job: UnsafeCell<Option<*const Job>>,
    parts: AtomicUsize,
    /// The next unclaimed part.
    next: AtomicUsize,
    /// Per worker: `epoch << 2 | tag`, tag ENTERED (working on that epoch), DONE (finished
    /// it) or CLOSED (the dispatcher finished it without this worker).
    states: Vec<AtomicU64>,
    stop: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the dispatching thread while every worker has
// acknowledged the previous epoch (none is reading it), and read by workers only after they
// observe the new epoch, which is published with SeqCst after the write.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw job pointer is only dereferenced during `run`.
unsafe impl Send for Shared {}

impl Shared {
    /// Claims and runs parts until none are left.
    fn work(&self, job: &(dyn Fn(usize) + Sync)) {
        let parts = self.parts.load(Ordering::Acquire);
        loop {
            let p = self.next.fetch_add(1, Ordering::AcqRel);
            if p >= parts {
                return;
            }
            job(p);
        }
    }
}

const DONE: u64 = 0;
const ENTERED: u64 = 1;
const CLOSED: u64 = 2;

fn state(epoch: u64, tag: u64) -> u64 {
    (epoch << 2) | tag
}

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes `run` calls from different threads.
    dispatch: Mutex<()>,
}

impl ThreadPool {
    /// A pool running jobs on `threads` threads: the caller plus `threads - 1` workers.
    pub fn new(threads: usize) -> ThreadPool {
        let n = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            parts: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            states: (0..n).map(|_| AtomicU64::new(state(0, DONE))).collect(),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (0..n)
            .map(|i| {
                let s = Arc::clone(&shared);
                thread::Builder::new()
                    .name(std::format!("ember-worker-{}", i + 1))
                    .spawn(move || worker(&s, i))
                    .expect("spawning a worker thread")
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            dispatch: Mutex::new(()),
        }
    }

    /// Threads available on this machine.
    pub fn available() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

fn worker(s: &Shared, me: usize) {
    let mut seen = 0u64;
    loop {
        let mut spins = 0;
        let epoch = loop {
            let e = s.epoch.load(Ordering::SeqCst);
            if e != seen {
                break e;
            }
            if spins < SPIN {
                spins += 1;
                spin_loop();
                continue;
            }
            // Sleep until the next job; re-check under the lock so no wake-up is lost. The
            // fence pairs with the one in `publish` (store sleepers, load epoch here; store
            // epoch, load sleepers there): at least one side sees the other's store. The
            // SeqCst accesses already order this; the fence says so where loom, which
            // models SeqCst accesses as AcqRel, can see it.
            let guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if s.epoch.load(Ordering::SeqCst) == seen {
                drop(s.wake.wait(guard));
            }
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
        };
        seen = epoch;
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        // Enter the epoch unless the dispatcher already closed it for us.
        let me_state = &s.states[me];
        let entered = loop {
            let st = me_state.load(Ordering::SeqCst);
            if st >> 2 >= epoch {
                break false;
            }
            if me_state
                .compare_exchange(
                    st,
                    state(epoch, ENTERED),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
            {
                break true;
            }
        };
        if !entered {
            continue;
        }
        // SAFETY: the slot was written before this epoch was published and is not rewritten
        // while this worker is ENTERED; the dispatcher keeps the job alive until then.
        if let Some(job) = s.job.with(|slot| unsafe { *slot }) {
            // SAFETY: as above: the pointee outlives this epoch.
            s.work(unsafe { &*job });
        }
        me_state.store(state(epoch, DONE), Ordering::SeqCst);
    }
}

impl ThreadPool {
    /// Ends `epoch`: closes out every worker that has not entered it and waits for those
    /// that have (spinning briefly, then yielding so an oversubscribed machine runs them).
    fn finish(&self, epoch: u64) {
        let mut spins = 0u32;
        for st in &self.shared.states {
            loop {
                let cur = st.load(Ordering::SeqCst);
                if cur == state(epoch, ENTERED) {
                    if spins < SPIN {
                        spins += 1;
                        spin_loop();
                    } else {
                        thread::yield_now();
                    }
                    continue;
                }
                if cur >> 2 == epoch {
                    break; // done, or already closed
                }
                if st
                    .compare_exchange(
                        cur,
                        state(epoch, CLOSED),
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok()
                {
                    break;
                }
            }
        }
    }

    /// Publishes the job slot as a new epoch and wakes sleeping workers.
    fn publish(&self, job: Option<*const Job>, parts: usize) -> u64 {
        let s = &*self.shared;
        // SAFETY: every worker finished or was closed out of the previous epoch (`finish`),
        // so none reads the slot now.
        s.job.with_mut(|slot| unsafe { *slot = job });
        s.parts.store(parts, Ordering::SeqCst);
        s.next.store(0, Ordering::SeqCst);
        let epoch = s.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        // Pairs with the worker's fence before it sleeps (see `worker`).
        fence(Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        epoch
    }
}

impl Executor for ThreadPool {
    fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        if parts <= 1 || self.workers.is_empty() {
            for p in 0..parts {
                job(p);
            }
            return;
        }
        let _one_at_a_time = self.dispatch.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the lifetime is erased only for the slot; `run` does not return until every
        // worker has finished or been closed out of this epoch, after which none
        // dereferences the pointer.
        let erased: *const Job =
            unsafe { core::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Job>(job) };
        let epoch = self.publish(Some(erased), parts);
        self.shared.work(job);
        // Every part is claimed by now; each claimer finishes its parts before marking DONE.
        self.finish(epoch);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.publish(None, 0);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Boxed executors for sessions: a pool when more than one thread is asked for.
pub fn executor(threads: usize) -> Box<dyn Executor> {
    if threads <= 1 {
        Box::new(crate::exec::Serial)
    } else {
        Box::new(ThreadPool::new(threads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_part_runs_once_across_many_jobs() {
        let pool = ThreadPool::new(3);
        for parts in [0usize, 1, 2, 3, 7, 64] {
            for _ in 0..200 {
                let hits: Vec<AtomicU32> = (0..parts).map(|_| AtomicU32::new(0)).collect();
                pool.run(parts, &|p| {
                    hits[p].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    /// Back-to-back jobs whose closures borrow short-lived locals: a worker that ran part of
    /// a finished job (the race this pool's acknowledgements rule out) would see a value
    /// from another job.
    #[test]
    fn no_part_runs_after_its_job_returned() {
        let pool = ThreadPool::new(3);
        for round in 0..3_000u32 {
            let tag = round;
            let seen = AtomicU32::new(0);
            pool.run(3, &|_| {
                assert_eq!(tag, round, "a part ran with another job's closure");
                seen.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(seen.load(Ordering::Relaxed), 3);
        }
    }

    #[test]
    fn workers_wake_after_sleeping() {
        let pool = ThreadPool::new(2);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let n = AtomicU32::new(0);
        pool.run(8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 8);
    }
}

/// Model tests: loom runs each closure under every interleaving of the pool's threads (up to
/// a preemption bound), with its own atomics, mutex, condvar and `UnsafeCell` (which reports
/// any access to the job slot that is not ordered after the write it reads, or before the
/// next write). Run by scripts/test.sh as `pool-loom`:
/// `RUSTFLAGS="--cfg loom" cargo test -p ember-runtime --lib pool::loom_tests`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;

    /// One counter per part, in the caller's frame, as a job's borrows are. A part that ran
    /// twice, or after `run` returned (once the caller reads or drops the counters), is an
    /// unordered access that loom reports.
    struct Parts(Vec<UnsafeCell<u32>>);

    // SAFETY: part p touches only counter p, and `run` hands each part to one thread; the
    // caller reads the counters only after `run` returned. Loom checks both claims.
    unsafe impl Sync for Parts {}

    impl Parts {
        fn new(n: usize) -> Parts {
            Parts((0..n).map(|_| UnsafeCell::new(0)).collect())
        }
        fn hit(&self, p: usize) {
            // SAFETY: see `impl Sync`: no other thread touches counter p meanwhile.
            self.0[p].with_mut(|c| unsafe { *c += 1 });
        }
        fn each_ran_once(&self) -> bool {
            // SAFETY: `run` has returned: no part is running.
            self.0.iter().all(|c| c.with(|v| unsafe { *v }) == 1)
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        // LOOM_MAX_PREEMPTIONS overrides this; 2 is where loom's own docs say most bugs show.
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        b.check(f);
    }

    /// The caller and one worker: two jobs back to back (the second rewrites the slot the
    /// first published), then shutdown (a last epoch, and the join).
    #[test]
    fn dispatch_complete_dispatch_shutdown() {
        model(|| {
            let pool = ThreadPool::new(2);
            for parts in [2, 3] {
                let counts = Parts::new(parts);
                pool.run(parts, &|p| counts.hit(p));
                assert!(counts.each_ran_once());
            }
            drop(pool);
        });
    }

    /// Shutdown of a pool that never ran a job (workers asleep or still spinning).
    #[test]
    fn shutdown_without_jobs() {
        model(|| {
            drop(ThreadPool::new(2));
        });
    }

    /// The caller and two workers, one job: either worker may be closed out before it enters.
    #[test]
    fn two_workers_one_job() {
        model(|| {
            let pool = ThreadPool::new(3);
            let counts = Parts::new(3);
            pool.run(3, &|p| counts.hit(p));
            assert!(counts.each_ran_once());
            drop(pool);
        });
    }
}
