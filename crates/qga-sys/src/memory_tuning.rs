//! Allocator tuning for large transfers: keep freed memory for reuse while requests flow,
//! give it back to the OS when the agent is idle.
//!
//! A 48 MiB guest-file-read needs several buffers of 48-64 MiB. glibc serves those with
//! fresh `mmap`s and unmaps them on free, so every such request pays page faults and page
//! clearing for ~200 MiB, which costs more than the work itself. With `mmap` disabled for
//! the heap and trimming done by us when idle, the same pages are reused.

/// Makes glibc keep large freed blocks in the heap (no per-allocation `mmap`, no automatic
/// trim) and use one arena for all threads, so the connection threads of a listening socket
/// reuse the same pages as the single-client agent did (a thread's own arena is made of
/// 64 MiB mmapped heaps that could not hold a large transfer anyway). Call once at start-up;
/// pair with [`release_free_memory`] when idle.
pub fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; all are valid parameter codes and
    // values for glibc, and no allocation is in progress in another thread at start-up.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns free heap memory to the OS (`malloc_trim`); cheap when there is nothing to give.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only releases free memory of the allocator; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
