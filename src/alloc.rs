//! The process's allocator: mimalloc, returning freed pages to the OS 10 ms after they empty.
//!
//! mimalloc 3 (what the `mimalloc` crate builds) waits a second before it purges pages that
//! became free; under a steady load that keeps tens of megabytes of freed pages resident (one
//! topic at full load on the dev machine: 123-133 MiB peak RSS with the default, 74-85 MiB with
//! 10 ms, the same CPU per message either way). 10 ms is mimalloc 2's default.
//! `MIMALLOC_PURGE_DELAY` in the environment still decides when set.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (libmimalloc-sys names no constant for
/// it); a test checks it reads mimalloc 3's default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds between a page emptying and its purge.
const PURGE_DELAY_MS: std::os::raw::c_long = 10;

/// Sets the purge delay unless the environment set it; call once, first in `main`, before the
/// process starts other threads.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        set_purge_delay(PURGE_DELAY_MS);
    }
}

#[allow(unsafe_code)]
fn set_purge_delay(ms: std::os::raw::c_long) {
    // SAFETY: an FFI call that stores an integer option; `tune`'s caller makes it before any other
    // thread runs, so no allocation on another thread reads the option meanwhile.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, ms) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn purge_delay() -> std::os::raw::c_long {
        // SAFETY: an FFI call that reads an integer option.
        unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
    }

    #[test]
    fn the_purge_delay_option_is_the_one_mimalloc_defaults_to_a_second() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(purge_delay(), 1000, "mimalloc 3's default purge delay");
        // (the test harness's other thread only waits for this test, nextest runs one per process)
        tune();
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
    }
}
