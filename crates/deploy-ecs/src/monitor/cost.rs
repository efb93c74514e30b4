//! What each stream costs as it runs, per topology side, priced with `vqa_core::cost` as
//! the counters come in; `/metrics` shows the dollars so far and their rate per stream-hour
//! (`vqa_cost_usd_total`, `vqa_cost_usd_per_stream_hour`).
//!
//! - This process is a Fargate task: about once a second ([`super::Monitor::tick`]) the CPU
//!   time it used since the last tick is shared evenly over the streams it runs, and so is
//!   its resident memory for that interval. In the single topology that is the single
//!   side's; in the distributed topology, the reader's (the distributed side's). With both
//!   (`--topology ab`), a stream's distributed side is charged its own reader thread's CPU
//!   and the CPU its chunking took (both measured on their threads); the single side the
//!   process less the chunking, shared, and the memory (the two cannot be told apart in one
//!   process). The reader is in both: either topology alone needs it.
//! - Each chunk's executions, once they ended: what the sink counted from their histories
//!   ([`vqa_core::live::ChunkEvents::accounted`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use vqa_core::cost::{dollars, PriceTable, Usage};
use vqa_core::topology::Orchestration;

use super::ab::Side;
use super::lock;

/// One stream's cost so far.
pub struct StreamCost {
    started: Instant,
    /// CPU its reader thread used (cumulative) and its chunking took, ns: fed by those
    /// threads, taken by the ticks.
    pub reader_cpu_nanos: AtomicU64,
    pub chunking_cpu_nanos: AtomicU64,
    accrued: Mutex<Accrued>,
}

#[derive(Default)]
struct Accrued {
    single: f64,
    distributed: f64,
    /// The reader and chunking CPU already charged, ns.
    reader_seen: u64,
    chunking_seen: u64,
}

impl Default for StreamCost {
    fn default() -> Self {
        StreamCost {
            started: Instant::now(),
            reader_cpu_nanos: AtomicU64::new(0),
            chunking_cpu_nanos: AtomicU64::new(0),
            accrued: Mutex::default(),
        }
    }
}

impl StreamCost {
    /// Charges a side `usd`.
    pub fn add(&self, side: Side, usd: f64) {
        let mut a = lock(&self.accrued);
        match side {
            Side::Single => a.single += usd,
            Side::Distributed => a.distributed += usd,
        }
    }

    /// A side's dollars so far.
    pub fn usd(&self, side: Side) -> f64 {
        let a = lock(&self.accrued);
        match side {
            Side::Single => a.single,
            Side::Distributed => a.distributed,
        }
    }

    /// A side's dollars per hour of stream monitored so far.
    pub fn usd_per_stream_hour(&self, side: Side) -> f64 {
        per_hour(self.usd(side), self.started.elapsed().as_secs_f64())
    }

    /// The reader and chunking CPU seconds not charged yet, marked charged.
    fn take_own_cpu(&self) -> (f64, f64) {
        let mut a = lock(&self.accrued);
        let reader = self.reader_cpu_nanos.load(Ordering::Relaxed);
        let chunking = self.chunking_cpu_nanos.load(Ordering::Relaxed);
        let d = (
            reader.saturating_sub(a.reader_seen) as f64 / 1e9,
            chunking.saturating_sub(a.chunking_seen) as f64 / 1e9,
        );
        (a.reader_seen, a.chunking_seen) = (reader, chunking);
        d
    }
}

/// `usd` over `seconds` of stream, per hour (0 before any time passed).
fn per_hour(usd: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        usd * 3600.0 / seconds
    } else {
        0.0
    }
}

/// Which sides a monitor runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sides {
    Single,
    Distributed,
    Both,
}

impl Sides {
    pub fn each(self) -> &'static [Side] {
        match self {
            Sides::Single => &[Side::Single],
            Sides::Distributed => &[Side::Distributed],
            Sides::Both => &[Side::Single, Side::Distributed],
        }
    }
}

/// What the process used over one interval of `seconds`: CPU seconds, and resident GB.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessUse {
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub memory_gb: f64,
}

/// A process share as a Fargate task's usage.
fn fargate(seconds: f64, cpu_seconds: f64, memory_gb: f64) -> Usage {
    Usage {
        orchestration: Orchestration::SingleProcess,
        stream_seconds: seconds,
        cpu_seconds,
        peak_memory_gb: memory_gb,
        ..Usage::default()
    }
}

/// Each stream's share of one interval of the process, per side: `own` is each stream's
/// reader and chunking CPU seconds of the interval (charged to its distributed side when
/// both sides run).
pub fn shares(sides: Sides, process: ProcessUse, own: &[(f64, f64)]) -> Vec<Vec<(Side, Usage)>> {
    let n = own.len().max(1) as f64;
    let memory = process.memory_gb / n;
    let ProcessUse { seconds, .. } = process;
    match sides {
        Sides::Single | Sides::Distributed => {
            let side = sides.each()[0];
            let share = fargate(seconds, process.cpu_seconds / n, memory);
            own.iter().map(|_| vec![(side, share.clone())]).collect()
        }
        Sides::Both => {
            let chunking: f64 = own.iter().map(|(_, c)| c).sum();
            let single_cpu = (process.cpu_seconds - chunking).max(0.0) / n;
            own.iter()
                .map(|(reader, chunking)| {
                    vec![
                        (Side::Single, fargate(seconds, single_cpu, memory)),
                        (Side::Distributed, fargate(seconds, reader + chunking, 0.0)),
                    ]
                })
                .collect()
        }
    }
}

/// Charges `streams` their shares of one interval of the process.
pub fn accrue_process(
    sides: Sides,
    process: ProcessUse,
    streams: &[&StreamCost],
    prices: &PriceTable,
) {
    let own: Vec<(f64, f64)> = streams.iter().map(|s| s.take_own_cpu()).collect();
    for (stream, shares) in streams.iter().zip(shares(sides, process, &own)) {
        for (side, usage) in shares {
            stream.add(side, dollars(&usage, prices));
        }
    }
}

/// The process's CPU and memory between ticks.
pub struct ProcessMeter {
    last: Mutex<(Instant, f64)>,
}

impl Default for ProcessMeter {
    fn default() -> Self {
        ProcessMeter {
            last: Mutex::new((Instant::now(), crate::resources::process_cpu_seconds())),
        }
    }
}

impl ProcessMeter {
    /// What the process used since the last call.
    pub fn sample(&self) -> ProcessUse {
        let (now, cpu) = (Instant::now(), crate::resources::process_cpu_seconds());
        let mut last = lock(&self.last);
        let used = ProcessUse {
            seconds: now.duration_since(last.0).as_secs_f64(),
            cpu_seconds: (cpu - last.1).max(0.0),
            memory_gb: crate::resources::proc_status_kb("VmRSS").map_or_else(
                || crate::resources::peak_rss_mb() / 1024.0,
                |kb| kb / 1024.0,
            ) / 1024.0,
        };
        *last = (now, cpu);
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-15_f64.max(b.abs() * 1e-9)
    }

    const INTERVAL: ProcessUse = ProcessUse {
        seconds: 10.0,
        cpu_seconds: 4.0,
        memory_gb: 1.0,
    };

    #[test]
    fn the_single_process_is_shared_evenly_over_its_streams() {
        let a = StreamCost::default();
        let b = StreamCost::default();
        let p = PriceTable::shipped();
        accrue_process(Sides::Single, INTERVAL, &[&a, &b], &p);
        // Each: 2 CPU-seconds and 0.5 GB for 10 s.
        let expected = 2.0 / 3600.0 * 0.04048 + 0.5 * 10.0 / 3600.0 * 0.004445;
        assert!(
            close(a.usd(Side::Single), expected),
            "{}",
            a.usd(Side::Single)
        );
        assert!(close(b.usd(Side::Single), expected));
        assert_eq!(a.usd(Side::Distributed), 0.0);
    }

    #[test]
    fn with_both_sides_the_distributed_side_pays_its_reader_and_chunking() {
        let a = StreamCost::default();
        let b = StreamCost::default();
        a.reader_cpu_nanos.store(200_000_000, Ordering::Relaxed);
        a.chunking_cpu_nanos.store(500_000_000, Ordering::Relaxed);
        b.chunking_cpu_nanos.store(500_000_000, Ordering::Relaxed);
        let p = PriceTable::shipped();
        accrue_process(Sides::Both, INTERVAL, &[&a, &b], &p);
        // Single: (4 − 1 chunking) / 2 = 1.5 CPU-s each and the memory; distributed: a
        // 0.7 CPU-s, b 0.5.
        let vcpu = |s: f64| s / 3600.0 * 0.04048;
        let memory = 0.5 * 10.0 / 3600.0 * 0.004445;
        assert!(close(a.usd(Side::Single), vcpu(1.5) + memory));
        assert!(close(a.usd(Side::Distributed), vcpu(0.7)));
        assert!(close(b.usd(Side::Distributed), vcpu(0.5)));
        // Charged once: a second interval with no new reader or chunking CPU.
        accrue_process(Sides::Both, INTERVAL, &[&a, &b], &p);
        assert!(close(a.usd(Side::Distributed), vcpu(0.7)));
        assert!(close(
            a.usd(Side::Single),
            2.0 * (vcpu(2.0) + memory) - vcpu(0.5)
        ));
    }

    #[test]
    fn the_rate_is_dollars_per_hour_monitored() {
        assert_eq!(per_hour(0.5, 1800.0), 1.0);
        assert_eq!(per_hour(0.5, 0.0), 0.0);
    }
}
