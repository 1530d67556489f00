//! The object-store threads' CPU priority: uploads and ranged GETs are background work next to
//! the journal's group commit, whose cycle (fdatasync, then waking the next batch) any runnable
//! thread on the same CPU lengthens. A lower priority lets the journal thread run as soon as it
//! wakes while an upload copies a 16 MiB segment; the uploads still get every cycle the journal
//! leaves (the local cache bound turns a lasting shortfall into backpressure, as a slow store
//! does).

/// Lowers the calling thread's priority to niceness `nice` (0: unchanged). On Linux nice is per
/// thread; a failure leaves the thread as it was (it only costs latency elsewhere).
#[cfg(target_os = "linux")]
pub(super) fn lower_thread_priority(nice: i32) {
    if nice > 0 {
        // SAFETY: setpriority reads no memory of ours; `who` 0 is the calling thread.
        #[allow(unsafe_code)]
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    }
}

/// Elsewhere nice is per process: left alone.
#[cfg(not(target_os = "linux"))]
pub(super) fn lower_thread_priority(_nice: i32) {}
