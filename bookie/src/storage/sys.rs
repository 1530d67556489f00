//! Operating-system knobs of the storage threads.
//!
//! Bounded writeback of freshly written file ranges with `sync_file_range`: the flusher starts the
//! writeback of each chunk it writes and waits for the one before, so at most two chunks of segment
//! data sit in the device queue at any time. A journal `fdatasync` on the same disk then never
//! queues behind megabytes of segment data, and no chunk costs a filesystem-journal commit or a
//! device cache flush (the flush ends with one `fdatasync`, which is what makes it durable).

use std::fs::File;

/// Starts the writeback of `len` bytes at `offset` (does not wait).
pub(super) fn start(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    sync_range(file, offset, len, false)
}

/// Waits until the writeback of `len` bytes at `offset` completed (starting it for any page still
/// dirty).
pub(super) fn wait(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    sync_range(file, offset, len, true)
}

#[cfg(target_os = "linux")]
fn sync_range(file: &File, offset: u64, len: u64, wait: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    };
    // SAFETY: `file` is an open file for the whole call; sync_file_range reads no memory of ours.
    #[allow(unsafe_code)]
    let r = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere the final `fdatasync` does all the work.
#[cfg(not(target_os = "linux"))]
fn sync_range(_file: &File, _offset: u64, _len: u64, _wait: bool) -> std::io::Result<()> {
    Ok(())
}

/// Makes the calling thread's disk I/O yield to everybody else's (I/O class idle: with the
/// `mq-deadline`, `bfq` or `kyber` schedulers its requests are dispatched when no journal request
/// is waiting) and its CPU time to the add path (`nice`). For the flusher: its segment writes must
/// not delay journal syncs on a shared disk. Best effort: failures are logged and ignored.
pub(super) fn background_thread(idle_io: bool, nice: i32) {
    #[cfg(target_os = "linux")]
    {
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        const IOPRIO_CLASS_SHIFT: u32 = 13;
        // SAFETY: ioprio_set and setpriority take integers only; `0` means the calling thread.
        #[allow(unsafe_code)]
        let (io, cpu) = unsafe {
            (
                if idle_io {
                    libc::syscall(
                        libc::SYS_ioprio_set,
                        IOPRIO_WHO_PROCESS,
                        0 as libc::c_long,
                        IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
                    )
                } else {
                    0
                },
                if nice != 0 {
                    libc::setpriority(libc::PRIO_PROCESS, 0, nice)
                } else {
                    0
                },
            )
        };
        if io != 0 || cpu != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the priority of a background storage thread"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (idle_io, nice);
}
