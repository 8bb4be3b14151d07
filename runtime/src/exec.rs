//! Running one job split into parts: serially (no_std, or one thread) or on a thread pool.

/// Runs `job(part)` for every part in 0..parts and returns when all are done.
pub trait Executor: Send + Sync {
    /// How many parts can run at once.
    fn threads(&self) -> usize;
    fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync));
}

/// Runs every part on the calling thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Serial;

impl Executor for Serial {
    fn threads(&self) -> usize {
        1
    }

    fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        for p in 0..parts {
            job(p);
        }
    }
}

/// A raw pointer that parts of one job use to write disjoint elements of one buffer.
#[derive(Clone, Copy, Debug)]
pub struct SyncMutPtr<T>(pub *mut T);

// SAFETY: SyncMutPtr is only used by jobs whose parts write disjoint indices and finish
// before the buffer's borrow ends (Executor::run returns after every part is done).
unsafe impl<T: Send> Send for SyncMutPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SyncMutPtr<T> {}

impl<T> SyncMutPtr<T> {
    /// `len` elements starting at `i`, as a mutable slice.
    ///
    /// # Safety
    /// The range is in bounds of the buffer, no other part touches it while the slice lives,
    /// and the slice does not outlive the buffer's borrow.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice<'x>(self, i: usize, len: usize) -> &'x mut [T] {
        // SAFETY: guaranteed by the caller.
        unsafe { core::slice::from_raw_parts_mut(self.0.add(i), len) }
    }

    /// # Safety
    /// `i` is in bounds of the buffer, and no other part writes or reads index `i`.
    pub unsafe fn write(self, i: usize, v: T) {
        // SAFETY: guaranteed by the caller.
        unsafe { self.0.add(i).write(v) }
    }
}

impl<T: Executor + ?Sized> Executor for &T {
    fn threads(&self) -> usize {
        (**self).threads()
    }

    fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        (**self).run(parts, job)
    }
}

#[cfg(feature = "alloc")]
impl<T: Executor + ?Sized> Executor for alloc::boxed::Box<T> {
    fn threads(&self) -> usize {
        (**self).threads()
    }

    fn run(&self, parts: usize, job: &(dyn Fn(usize) + Sync)) {
        (**self).run(parts, job)
    }
}
