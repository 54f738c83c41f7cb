//! How the process's allocator (glibc's malloc, on Linux) is set up before anything
//! else runs: `switchboard serve` calls [`tune`] first thing in `main`.

/// glibc serves a large block from its heap, not a mapping of its own, once a block
/// that size has been freed (its mmap threshold rises to the largest freed, and its
/// trim threshold to twice that). Each password hash takes a 19 MiB block, so after a
/// burst of sign-ins those blocks stayed in the heap: creating and signing in 125
/// agents took the hub to a peak of 204 MB resident, against 29 MB with a fixed
/// threshold, which keeps blocks of 4 MiB and more in mappings of their own, returned
/// whole when freed. A fixed threshold also keeps glibc's default trim threshold
/// (128 KiB), so the heap gives back freed memory sooner. The cost: each hash maps and
/// unmaps its block, a few thousand page faults (the 250 hashes of those 125 agents, on
/// one core, took ~11 s instead of ~10 s). The hub's other big blocks, such as
/// connection tables of tens of thousands and archive batches, are rarely allocated.
///
/// glibc also gives threads that allocate at once arenas of their own, up to eight a
/// core (16 on two), and each arena keeps the memory freed into it for reuse by its own
/// threads. The hub's workers, its blocking pool (redb's reads and writes, the journal's
/// appends) and its fold thread each free what another allocated (pages, frames, archive
/// events), so over an hour of steady chat the free memory kept across 16 arenas grew
/// while the live heap stayed flat: measured at 34 minutes of 20 chats × 10 msg/s on two
/// cores, both processes held 21.2 MB of live blocks, glibc 29.8 MB with 16 arenas against
/// 23.8 MB with two, and resident memory rose 2.2 MiB over the last 20 minutes of 40
/// against none (bench/README.md, the soak). So threads share one arena a core, at least
/// two ([`arena_limit`]), unless `MALLOC_ARENA_MAX` says otherwise (glibc reads it itself;
/// it is left alone then). One a core rather than a flat two keeps threads running at once
/// from queueing on an arena's lock on a bigger machine (measured only on two cores, where
/// both are two; the relay's throughput with it is in bench/README.md).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes two plain integers and only sets an allocator parameter;
        // glibc documents it as safe to call from any thread.
        let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20) };
        if set == 0 {
            eprintln!("switchboard: could not fix the allocator's mmap threshold; memory after sign-ins may stay high");
        }
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: as above. Called before the runtime starts its threads, so no thread
            // has taken an arena beyond the limit yet.
            let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, arena_limit() as libc::c_int) };
            if set == 0 {
                eprintln!("switchboard: could not limit the allocator's arenas; memory may creep under steady load");
            }
        }
    }
}

/// The most glibc arenas [`tune`] lets the process's threads use: one a core, at least two.
pub fn arena_limit() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 64)
}
