//! Bounded writeback of freshly written file ranges with `sync_file_range`: the flusher starts the
//! writeback of each chunk it writes and waits for the one before, so at most two chunks of segment
//! data sit in the device queue at any time. A journal `fdatasync` on the same disk then never
//! queues behind megabytes of segment data, and no chunk costs a filesystem-journal commit or a
//! device cache flush (the flush ends with one `fdatasync`, which is what makes it durable).
//! Also the directory sync that makes created, renamed and removed names durable, and opening a
//! file for direct writes and the alignment such writes need.

use std::fs::File;
use std::path::Path;

use crate::error::BookieError;

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

/// Alignment of direct writes (in memory, in the file and in length): a multiple of every
/// device's logical block size in use, and the page size, so a cached page is never half written.
pub(super) const BLOCK: usize = 4096;

/// Bytes from `addr` to the next [`BLOCK`] boundary.
pub(super) fn pad_to_block(addr: usize) -> usize {
    (BLOCK - addr % BLOCK) % BLOCK
}

/// A direct-I/O (`O_DIRECT`) write descriptor of `p`, or `None` (with a warning naming `what`
/// the file holds) where the filesystem refuses one.
pub(super) fn open_direct(p: &Path, what: &str) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(p)
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(file = %p.display(), error = %e, "no direct I/O for {what}; writing through the page cache");
            None
        }
    }
}

/// fsyncs a directory so that created, renamed and removed names are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), BookieError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BookieError::io(format!("sync directory {}", dir.display()), e))
}

/// Whether `a` and `b` (created if missing) are on the same filesystem.
pub(super) fn same_filesystem(a: &Path, b: &Path) -> Result<bool, BookieError> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| {
        std::fs::create_dir_all(p)
            .and_then(|_| std::fs::metadata(p))
            .map(|m| m.dev())
            .map_err(|e| BookieError::io(format!("create {}", p.display()), e))
    };
    Ok(dev(a)? == dev(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_to_block_reaches_the_next_boundary() {
        assert_eq!(pad_to_block(0), 0);
        assert_eq!(pad_to_block(1), BLOCK - 1);
        assert_eq!(pad_to_block(BLOCK), 0);
        assert_eq!(pad_to_block(3 * BLOCK - 5), 5);
    }
}
