//! What this process uses — CPU time, resident memory — for run statistics, `/metrics` and
//! the benchmarks. Linux figures from `/proc/self/status`, `getrusage` elsewhere.

use std::time::Duration;

/// CPU time the calling thread has used. Stage timings use it rather than wall time, so a
/// stage preempted by another on a busy core is not charged for the other's work.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass; CLOCK_THREAD_CPUTIME_ID is
    // supported on every platform we build for (Linux, macOS).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Requests of this size or more get their own mapping from glibc's malloc, returned to the
/// system when freed (see [`settle_allocator`]).
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] for a process that runs for months
/// (`vqa monitor`). glibc raises the threshold to the size of each large block freed, so
/// after a source's first reconnection FFmpeg's 5.4 MB UDP receive buffer (and any block of
/// that size) comes from the per-thread heaps instead of its own mapping, and those heaps
/// fragment and never shrink: the soak's RSS grew about 1.3 MB a minute with sources
/// killed and restarted, while the live heap did not grow. A fixed threshold also stops the
/// adjustment. Nothing to do on other C libraries. Returns whether it was applied.
pub fn settle_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a tunable of the allocator; any value is accepted.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// How often a monitor hands the free pages of glibc's heaps back to the system
/// ([`trim_heaps`]).
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Hands the free pages inside glibc's heaps back to the system (`malloc_trim`). With
/// [`settle_allocator`] the soak's RSS still crept up about 0.5 MB a minute for an hour:
/// freed blocks between live ones in the per-thread heaps, which glibc only returns from
/// a heap's top. Walking the heaps takes milliseconds; a monitor does it every
/// [`TRIM_EVERY`]. Nothing to do on other C libraries.
pub fn trim_heaps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory the allocator holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn rusage() -> Option<libc::rusage> {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0).then_some(usage)
}

/// CPU time this process has used, every thread (FFmpeg's decoder threads too), seconds.
pub fn process_cpu_seconds() -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    rusage().map_or(0.0, |u| tv(u.ru_utime) + tv(u.ru_stime))
}

/// Peak resident memory of this process since it started or since [`reset_peak_rss`], MB.
pub fn peak_rss_mb() -> f64 {
    match proc_status_kb("VmHWM") {
        Some(kb) => kb / 1024.0,
        None => rusage().map_or(0.0, |u| u.ru_maxrss as f64 / 1024.0),
    }
}

/// A figure of `/proc/self/status` given in kB (`VmHWM`, `VmRSS`, ...), Linux only.
pub fn proc_status_kb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
}

/// Starts the peak memory measurement afresh (Linux: resets the high-water mark), so that
/// what an earlier measurement used is not counted again.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
