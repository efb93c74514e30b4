//! `vqa bench --live`: how many live streams a given number of cores sustains in real time.
//!
//! Each run replays the input as N live streams (paced at real time, looped, started spread
//! over one second as independent sources are) through the monitor, on a pool of `cpus`
//! workers with the whole process pinned to that many cores, and measures lag, shed
//! pictures, CPU, peak memory and the latency of segments and alerts.

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;

use serde::Serialize;
use vqa_core::live::ChunkSink;
use vqa_core::{PipelineConfig, StreamId, StreamReport};

use crate::cost::{Orchestration, Usage};

use vqa_deploy_ecs::monitor::{Monitor, MonitorSettings, Stages, StreamList, StreamSpec};
use vqa_deploy_ecs::resources::{peak_rss_mb, proc_status_kb, process_cpu_seconds, reset_peak_rss};
use vqa_notify::Notifiers;

use crate::BenchError;

/// One run: N streams on `cpus` cores.
#[derive(Clone, Debug, Serialize)]
pub struct LiveRun {
    pub streams: usize,
    pub cpus: usize,
    pub seconds: f64,
    /// Every stream kept up: lag never past `max_lag` after the first segments, and no
    /// picture shed.
    pub sustained: bool,
    pub max_lag_seconds: f64,
    pub shed_frames: u64,
    pub segments: u64,
    /// CPU time used over wall time, per core given (1.0: the cores were busy all along).
    pub cpu_load: f64,
    pub peak_rss_mb: f64,
    /// Peak RSS above the process's before the streams started, per stream.
    pub rss_per_stream_mb: f64,
    pub segment_latency_p50_ms: Option<f64>,
    pub segment_latency_p99_ms: Option<f64>,
    /// From the arrival of the moment an incident qualified (its start plus its kind's
    /// minimum duration) to its `opened` notification.
    pub alert_latency_p50_ms: Option<f64>,
    pub alert_latency_p99_ms: Option<f64>,
    pub alerts: usize,
}

/// The lag past which a stream counts as not kept up: a segment behind, and a second more.
const MAX_LAG: f64 = 2.0;
/// Seconds at the start not judged (streams starting, the first segments filling).
const WARM_UP: f64 = 3.0;

fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    Some(values[rank.min(values.len() - 1)] * 1000.0)
}

/// Pins the calling thread (and every thread it starts afterwards) to the first `cpus`
/// cores; returns how many it could have.
fn pin_to(cpus: usize) -> usize {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = cpus.clamp(1, available);
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity(0) act on
    // that set and the calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in 0..cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!("cannot pin to {cpus} core(s); the figures are for every core");
        }
    }
    cpus
}

fn current_rss_mb() -> f64 {
    proc_status_kb("VmRSS").map_or(0.0, |kb| kb / 1024.0)
}

/// `input` replayed as the live stream `id`: paced at real time, looped.
fn replayed(id: String, input: &Path, config: &PipelineConfig) -> StreamSpec {
    StreamSpec {
        id: StreamId::new(id),
        url: input.display().to_string(),
        config: config.clone(),
        realtime: true,
        speed: 1.0,
        looped: true,
    }
}

/// Why a stream of `monitor` stopped, if one did.
fn stream_error(monitor: &Monitor) -> Option<String> {
    monitor
        .streams()
        .iter()
        .find_map(|s| s.error.lock().ok().and_then(|e| e.clone()))
}

/// Runs N streams of `input` for `seconds` on `cpus` cores. Blocking: call it from a
/// thread of its own (it pins that thread).
pub fn run_live(
    input: &Path,
    streams: usize,
    cpus: usize,
    seconds: f64,
    config: &PipelineConfig,
) -> Result<LiveRun, BenchError> {
    let cpus = pin_to(cpus);
    let settings = MonitorSettings {
        workers: cpus,
        allow_local_files: true,
        ..MonitorSettings::default()
    };
    let spec = |i: usize| replayed(format!("live{i:03}"), input, config);
    reset_peak_rss();
    let baseline = current_rss_mb();
    let cpu0 = process_cpu_seconds();
    let started = Instant::now();
    let monitor = Monitor::new(settings.clone(), Notifiers::new(None), None)?;
    let mut list = StreamList {
        monitor: settings,
        streams: Vec::new(),
    };
    for i in 0..streams {
        list.streams.push(spec(i));
        monitor.apply(&list);
        std::thread::sleep(Duration::from_secs_f64(1.0 / streams.max(1) as f64));
    }
    let mut max_lag: f64 = 0.0;
    while started.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(250));
        if started.elapsed().as_secs_f64() >= WARM_UP {
            for s in monitor.streams() {
                max_lag = max_lag.max(s.lag_seconds());
            }
        }
        if let Some(e) = stream_error(&monitor) {
            return Err(BenchError::Input {
                input: vqa_deploy_ecs::shown(input),
                reason: e,
            });
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu0;
    let peak = peak_rss_mb();
    let states = monitor.streams();
    let mut latencies = monitor.take_latencies();
    let finished = monitor.shutdown(Duration::from_secs(30));
    use std::sync::atomic::Ordering::Relaxed;
    let shed: u64 = states
        .iter()
        .map(|s| s.stats.shed_frames.load(Relaxed))
        .sum();
    let segments: u64 = states.iter().map(|s| s.stats.segments.load(Relaxed)).sum();
    drop(finished);
    Ok(LiveRun {
        streams,
        cpus,
        seconds: wall,
        sustained: shed == 0 && max_lag <= MAX_LAG,
        max_lag_seconds: max_lag,
        shed_frames: shed,
        segments,
        cpu_load: cpu / wall / cpus as f64,
        peak_rss_mb: peak,
        rss_per_stream_mb: (peak - baseline).max(0.0) / streams.max(1) as f64,
        segment_latency_p50_ms: percentile(&mut latencies.segment, 50.0),
        segment_latency_p99_ms: percentile(&mut latencies.segment, 99.0),
        alert_latency_p50_ms: percentile(&mut latencies.alert, 50.0),
        alert_latency_p99_ms: percentile(&mut latencies.alert, 99.0),
        alerts: latencies.alert.len(),
    })
}

/// What a live topology run measured of this process: its CPU and peak memory as a usage,
/// and how long it ran.
pub struct Measured {
    pub usage: Usage,
    pub wall_seconds: f64,
}

/// Monitors `input` replayed as one live stream (paced at real time, looped) for `seconds`
/// — in this process, or with `sink`, only reading it and handing its chunks to the
/// distributed topology — then stops and waits for the report. With several `shards`
/// (configurations), each is a monitor of its own that reads and decodes the stream and
/// runs its share of the detectors, as detector shards' processes do; their reports are
/// merged. Returns this process's CPU and memory (all shards'), the report, and the alert
/// latencies (seconds).
pub async fn monitor_live(
    input: &Path,
    shards: &[PipelineConfig],
    seconds: f64,
    sink: Option<vqa_sfn_client::LiveSink>,
) -> Result<(Measured, StreamReport, Vec<f64>), BenchError> {
    let settings = MonitorSettings {
        allow_local_files: true,
        ..MonitorSettings::default()
    };
    let failed = |reason: String| BenchError::Input {
        input: vqa_deploy_ecs::shown(input),
        reason,
    };
    let distributed = sink.is_some();
    let stages = match sink {
        Some(s) => Stages::Distributed(Arc::new(s) as Arc<dyn ChunkSink>),
        None => Stages::InProcess,
    };
    reset_peak_rss();
    let cpu0 = process_cpu_seconds();
    let started = Instant::now();
    let mut monitors = Vec::new();
    for config in shards {
        let monitor =
            Monitor::with_stages(settings.clone(), Notifiers::new(None), None, stages.clone())?;
        monitor.apply(&StreamList {
            monitor: settings.clone(),
            streams: vec![replayed("live".into(), input, config)],
        });
        monitors.push(monitor);
    }
    let envs: Vec<_> = monitors.iter().map(|m| m.env().clone()).collect();
    let mut ticked = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if ticked.elapsed() >= Duration::from_secs(1) {
            monitors.iter().for_each(Monitor::tick);
            ticked = Instant::now();
        }
        if let Some(e) = monitors.iter().find_map(stream_error) {
            return Err(failed(e));
        }
    }
    let grace = Duration::from_secs(if distributed { 1800 } else { 30 });
    let finished = tokio::task::spawn_blocking(move || {
        // Stopped together, as the shards' processes would be.
        std::thread::scope(|scope| {
            let running: Vec<_> = monitors
                .into_iter()
                .map(|m| scope.spawn(move || m.shutdown(grace)))
                .collect();
            running
                .into_iter()
                .filter_map(|h| h.join().ok())
                .collect::<Vec<_>>()
        })
    })
    .await
    .map_err(|e| failed(e.to_string()))?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu0;
    let parts: Vec<StreamReport> = finished
        .into_iter()
        .filter_map(|f| f.reports.into_iter().next())
        .collect();
    if parts.len() != shards.len() {
        return Err(failed("the stream ended without a report".into()));
    }
    let report = StreamReport::merge_shards(parts)
        .ok_or_else(|| failed("the stream ended without a report".into()))?;
    let usage = Usage {
        orchestration: Orchestration::SingleProcess,
        stream_seconds: report.coverage.analysed as f64 / 1e6,
        cpu_seconds: cpu,
        peak_memory_gb: peak_rss_mb() / 1024.0,
        ..Usage::default()
    };
    let alerts: Vec<f64> = envs
        .iter()
        .flat_map(|env| env.take_latencies().alert)
        .map(|s| s * 1000.0)
        .collect();
    Ok((
        Measured {
            usage,
            wall_seconds: wall,
        },
        report,
        alerts,
    ))
}

/// The configuration of each of `n` detector shards: the detectors dealt out in turn, so
/// each shard gets a like share of the work.
pub fn shard_configs(config: &PipelineConfig, n: usize) -> Vec<PipelineConfig> {
    let n = n.clamp(1, config.detectors.len().max(1));
    (0..n)
        .map(|i| PipelineConfig {
            detectors: config
                .detectors
                .iter()
                .skip(i)
                .step_by(n)
                .copied()
                .collect(),
            ..config.clone()
        })
        .collect()
}

/// The runs as a table.
pub fn render(runs: &[LiveRun]) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let mut out = String::from(
        "streams  cores  kept up  max lag s  shed pictures  CPU load  peak RSS MB  MB/stream  segment p50/p99 ms  alert p50/p99 ms (n)\n",
    );
    for r in runs {
        out +=
            &format!(
            "{:>7}  {:>5}  {:>7}  {:>9.1}  {:>13}  {:>7.0}%  {:>11.0}  {:>9.1}  {:>18}  {:>16}\n",
            r.streams,
            r.cpus,
            if r.sustained { "yes" } else { "no" },
            r.max_lag_seconds,
            r.shed_frames,
            r.cpu_load * 100.0,
            r.peak_rss_mb,
            r.rss_per_stream_mb,
            format!("{}/{}", ms(r.segment_latency_p50_ms), ms(r.segment_latency_p99_ms)),
            format!(
                "{}/{} ({})",
                ms(r.alert_latency_p50_ms),
                ms(r.alert_latency_p99_ms),
                r.alerts
            ),
        );
    }
    if let Some(best) = runs.iter().filter(|r| r.sustained).map(|r| r.streams).max() {
        let cpus = runs.first().map_or(1, |r| r.cpus);
        out += &format!("\nkept up in real time with up to {best} stream(s) on {cpus} core(s)\n");
    } else {
        out += "\nno run kept up in real time\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_deal_out_every_detector_once() {
        let config = PipelineConfig::default();
        let shards = shard_configs(&config, 2);
        assert_eq!(shards.len(), 2);
        let mut all: Vec<_> = shards.iter().flat_map(|c| c.detectors.clone()).collect();
        all.sort();
        let mut want = config.detectors.clone();
        want.sort();
        assert_eq!(all, want);
        assert!(
            shards[0]
                .detectors
                .len()
                .abs_diff(shards[1].detectors.len())
                <= 1
        );
        assert_eq!(shard_configs(&config, 99).len(), config.detectors.len());
    }

    #[test]
    fn percentiles_are_nearest_rank_in_ms() {
        let mut v: Vec<f64> = (1..=100).map(|i| i as f64 / 1000.0).collect();
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(near(percentile(&mut v, 50.0), 51.0));
        assert!(near(percentile(&mut v, 99.0), 99.0));
        assert!(near(percentile(&mut v, 0.0), 1.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
