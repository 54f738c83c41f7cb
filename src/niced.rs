//! Threads that run below the hub's own priority: work that can wait a little (folding the
//! archive, hashing and writing uploaded files, re-encoding images) takes the CPU only
//! when relaying and acknowledging leave it, so it never delays a chat's messages.
//!
//! Linux only: elsewhere the threads run at the normal priority.

/// Nices the calling thread to `nice` (Linux: `setpriority` on a thread id affects that
/// thread only). A thread already niced further keeps its value (raising a priority back
/// needs privileges, and is not the point). `what` names the thread in the warning logged
/// when the call fails.
pub fn lower_this_thread(nice: i32, what: &str) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on this thread's own id, no memory handed over.
        let done = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            if libc::getpriority(libc::PRIO_PROCESS, tid) >= nice {
                0
            } else {
                libc::setpriority(libc::PRIO_PROCESS, tid, nice)
            }
        };
        if done != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "could not lower the priority of the {what}; it competes with relaying"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (nice, what);
}
