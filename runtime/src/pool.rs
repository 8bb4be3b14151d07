//! A persistent thread pool (std): workers are spawned once and spin briefly, then sleep,
//! between jobs, so dispatching a matmul costs about a microsecond, not a thread spawn.

use std::boxed::Box;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::vec::Vec;

use crate::exec::Executor;

type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// Bumped (Release) after `job` and `parts` are set for a new job.
    epoch: AtomicU64,
    job: UnsafeCell<Option<*const Job>>,
    parts: AtomicUsize,
    /// The next unclaimed part.
    next: AtomicUsize,
    /// Parts not yet finished.
    remaining: AtomicUsize,
    stop: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the dispatching thread while no job is running (the
// previous `run` waited for every part), and read by workers only after they observe the new
// epoch with Acquire ordering, which orders the write before the read.
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
            self.remaining.fetch_sub(1, Ordering::Release);
        }
    }
}

/// Spin iterations before a worker sleeps (roughly 50-100 µs).
const SPIN: u32 = 20_000;

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes `run` calls from different threads.
    dispatch: Mutex<()>,
}

impl ThreadPool {
    /// A pool running jobs on `threads` threads: the caller plus `threads - 1` workers.
    pub fn new(threads: usize) -> ThreadPool {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            parts: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            remaining: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(std::format!("ember-worker-{i}"))
                    .spawn(move || worker(&s))
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

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        let mut spins = 0;
        let epoch = loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                break e;
            }
            if spins < SPIN {
                spins += 1;
                core::hint::spin_loop();
                continue;
            }
            // Sleep until the next job; re-check under the lock so no wake-up is lost.
            let guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            if s.epoch.load(Ordering::SeqCst) == seen {
                drop(s.wake.wait(guard));
            }
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
        };
        seen = epoch;
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: the job pointer was set before the epoch was bumped (see Shared), and the
        // dispatcher keeps the job alive until `remaining` reaches zero, which cannot happen
        // before this worker finishes the parts it claims.
        if let Some(job) = unsafe { *s.job.get() } {
            // SAFETY: as above: the pointee outlives every claimed part.
            s.work(unsafe { &*job });
        }
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
        let s = &*self.shared;
        // SAFETY: no job is running (the previous run returned only after all its parts
        // finished), so no worker reads `job` now. The lifetime is erased; `run` does not
        // return until every part has finished, so the reference outlives its uses.
        unsafe {
            let erased: *const Job =
                core::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Job>(job);
            *s.job.get() = Some(erased);
        }
        s.parts.store(parts, Ordering::Release);
        s.remaining.store(parts, Ordering::Release);
        s.next.store(0, Ordering::Release);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        s.work(job);
        // Spin briefly (the other parts usually finish within microseconds), then yield so
        // an oversubscribed machine can run the worker we are waiting for.
        let mut spins = 0u32;
        while s.remaining.load(Ordering::Acquire) != 0 {
            if spins < SPIN {
                spins += 1;
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, Ordering::Release);
        // SAFETY: no job is running; workers that wake see `stop` before reading `job`.
        unsafe { *s.job.get() = None };
        s.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
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
