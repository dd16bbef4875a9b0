//! How the process's allocator (glibc's malloc, which the plugins share: they are libraries in this
//! process) is asked to give memory back, so that a long sequence's peak is what the work holds, not
//! what the allocator kept (docs/architecture.md, "Memory").
//!
//! Not done: fixing glibc's mmap threshold at 256 KB (`mallopt(M_MMAP_THRESHOLD)`, which stops it
//! growing with each large block freed) took 23 MB off an upload of 100,000 images, but every file
//! buffer then became a fresh mapping: 100,000 page faults and 0.3 s more CPU for 400 MB of 2 MB photos
//! (bench row 9), which the fresh-upload rows may not pay.

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
