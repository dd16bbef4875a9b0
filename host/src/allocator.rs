//! How the process's allocator (glibc's malloc, which the plugins share: they are libraries in this
//! process) is asked to give memory back, so that a long sequence's peak is what the work holds, not
//! what the allocator kept (docs/architecture.md, "Memory").
//!
//! Not done: fixing glibc's mmap threshold at 256 KB (`mallopt(M_MMAP_THRESHOLD)`, which stops it
//! growing with each large block freed) took 23 MB off an upload of 100,000 images, but every file
//! buffer then became a fresh mapping: 100,000 page faults and 0.3 s more CPU for 400 MB of 2 MB photos
//! (bench row 9), which the fresh-upload rows may not pay.
//!
//! Not done either: one arena for every thread (`mallopt(M_ARENA_MAX, 1)`). Each plugin's threads and
//! the pool that reads files get arenas of their own, and each keeps its freed memory fragmented around
//! what is still alive: a 100,000-image upload to Mapillary holds about 40 MB resident beside 20 MB of
//! live heap, and peaked at 66 to 73 MiB over seven runs. One arena made that 63.5 to 64.1 MiB, but the
//! threads then share its lock: bench row 8 (10,000 small images) went from 2.46 s to 3.0 s of wall
//! and 2.4 s to 3.1 s of CPU, past its target, and the 100,000-image upload took about 20 % longer.

/// Hands the pages freed since (a plugin's parsed copy of the descriptor, the request it was sent) back
/// to the system. Each plugin parses on its own runtime's threads, so glibc serves it from arenas of
/// their own and keeps what it frees there for later: with five plugins each parsing a 100,000-image
/// descriptor once, that kept memory was most of `mtp sequence inspect`'s peak RSS (heaptrack: 195 MB
/// peak heap at 50,000 images beside 390 MB resident). `malloc_trim` releases the free pages of every
/// arena (glibc 2.8 and later, malloc_trim(3)); other allocators return memory their own way.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only walks the allocator's own (locked) free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
