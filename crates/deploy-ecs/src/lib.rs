//! The single-process (ECS) topology: converter, detectors and aggregator as concurrent
//! tasks in one process, joined by bounded channels and the in-memory transport.
//!
//! This crate only wires stages together: the pipeline step ([`vqa_core::step`]) is the
//! same code the distributed topology runs, with this process's layers ([`layers`]) around
//! it. The monitor ([`monitor`]) and the detector-shard router ([`router`]) are the live
//! services the ECS tasks run.

pub mod http;
pub mod layers;
pub mod monitor;
pub mod resources;
pub mod router;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resources::thread_cpu_time;

use serde::Serialize;
use tokio::sync::mpsc;
use vqa_converter::{FfmpegConverter, OpenError};
use vqa_core::step::{Detection, Phase, Release, Step, StepLayer};
use vqa_core::{
    Converter, Detector, HandoffMetrics, IncidentAggregator, PipelineConfig, StreamId,
    StreamReport, Transport, TransportError,
};
use vqa_transport_mem::MemTransport;

pub use layers::EventSink;

/// Why a service (the monitor, the router) cannot start or stop cleanly: what failed, in
/// one sentence that says what to fix. None of these is worth retrying as is.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    List(#[from] monitor::list::ListError),
    #[error(transparent)]
    Shards(#[from] router::ShardsError),
    #[error(transparent)]
    Notify(#[from] vqa_notify::NotifyError),
    #[error("--reports {dir}: cannot create the directory: {source}")]
    ReportsDir { dir: String, source: std::io::Error },
    #[error("--listen {addr}: {reason}")]
    Listen { addr: String, reason: String },
    /// `--control` on an address other machines reach, with no token to keep them out.
    #[error(
        "--listen {addr}: not a loopback address, and --control there without a token lets \
         anyone who reaches it replace the streams; set VQA_CONTROL_TOKEN (the router sends \
         the same), or listen on 127.0.0.1"
    )]
    ControlWithoutToken { addr: String },
    /// A router's `/notify` on an address other machines reach, with no token.
    #[error(
        "--listen {addr}: not a loopback address, and the router's /notify there without a \
         token lets anyone who reaches it send notifications; set VQA_CONTROL_TOKEN (and \
         VQA_WEBHOOK_TOKEN to the same on the shards), or listen on 127.0.0.1"
    )]
    NotifyWithoutToken { addr: String },
    /// A stream that cannot be started (its detectors' model is missing, say).
    #[error("stream `{stream}`: {reason}")]
    Stream { stream: String, reason: String },
    /// The operating system refused a thread, a signal handler or a task.
    #[error("cannot {what}: {reason}")]
    System { what: &'static str, reason: String },
}

impl ServiceError {
    pub(crate) fn system(what: &'static str, reason: impl std::fmt::Display) -> Self {
        ServiceError::System {
            what,
            reason: reason.to_string(),
        }
    }
}

/// When a file was last modified, if it can be read: how a service notices that its stream
/// list was edited.
pub(crate) fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// SIGTERM and Ctrl-C, as a running service (the monitor, the router) waits for them
/// between its turns.
pub(crate) struct StopSignals(tokio::signal::unix::Signal);

impl StopSignals {
    pub(crate) fn new() -> Result<Self, ServiceError> {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map(StopSignals)
            .map_err(|e| ServiceError::system("handle SIGTERM", e))
    }

    /// Waits `tick`; true when a stop signal came first.
    pub(crate) async fn stopped_within(&mut self, tick: Duration) -> bool {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => true,
            _ = self.0.recv() => true,
            _ = tokio::time::sleep(tick) => false,
        }
    }
}

/// Makes the `--reports` directory, or says in one line why it cannot.
pub(crate) fn create_reports_dir(dir: &Path) -> Result<(), ServiceError> {
    std::fs::create_dir_all(dir).map_err(|source| ServiceError::ReportsDir {
        dir: dir.display().to_string(),
        source,
    })
}

/// Writes a report as JSON whole or not at all: a reader, or a crash mid-write, never
/// leaves half a report.
pub fn write_report(path: &Path, report: &StreamReport) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(report)?;
    json.push(b'\n');
    let tmp = path.with_extension("vqa-partial");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// [`write_report`] for a running monitor or router: a failure is logged for `stream`, and
/// monitoring goes on.
pub(crate) fn write_report_or_log(
    stream: impl std::fmt::Display,
    path: &Path,
    report: &StreamReport,
) {
    if let Err(e) = write_report(path, report) {
        tracing::error!(
            "stream {stream}: {}: cannot write the report: {e}",
            path.display()
        );
    }
}

/// Locks a map of timestamps; a panicking holder cannot leave it half-updated.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The token a router and its shards share (`VQA_CONTROL_TOKEN`), if set: shards require
/// it on their control endpoints, the router sends it to them and requires it on `/notify`.
pub fn control_token() -> Option<String> {
    std::env::var("VQA_CONTROL_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
}

/// How long a stopping service (`vqa monitor`, `vqa router`) keeps delivering queued
/// notifications: what is still queued then is counted undelivered, so the process exits
/// before ECS's default 30 s between SIGTERM and SIGKILL (the soak found a backlog of a
/// thousand notifications to a failing webhook taking minutes to drain).
pub const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(20);

/// Segments in flight between converter and detectors, by default: enough to keep both busy,
/// few enough that memory stays bounded (a 1080p segment of 25 frames is ~75 MB decoded).
pub const DEFAULT_IN_FLIGHT: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Model(#[from] vqa_detectors::ModelError),
    #[error("handoff failed: {0}")]
    Transport(#[from] TransportError),
    #[error("internal error in the {0} stage (a bug: please report it with the input)")]
    StagePanicked(&'static str),
}

/// Where the time went, and what the handoff cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunStats {
    pub wall_seconds: f64,
    /// CPU time of the converter thread (demux, decode, cutting into segments). Decoding done
    /// by FFmpeg's own worker threads (`decoder_threads` other than 1) is not included.
    pub convert_seconds: f64,
    /// CPU time inside the detectors.
    pub detect_seconds: f64,
    /// Time inside the aggregator stage, state store included.
    pub aggregate_seconds: f64,
    pub segments: u64,
    pub video_frames: u64,
    pub handoff: HandoffMetrics,
    /// Per segment, from the converter handing it over to the aggregator having applied its
    /// findings (the report is then up to date with it), ms.
    pub latencies_ms: Vec<f64>,
}

/// The result of analysing one input.
pub struct Analysis {
    pub report: StreamReport,
    pub stats: RunStats,
}

/// Called with the seconds of input decoded so far.
pub type ProgressSink = Box<dyn Fn(f64) + Send + Sync>;

/// Opens an input with the FFmpeg converter: a local file, or a URL FFmpeg reads
/// (`udp://`, `srt://`, `rtmp://`, `http(s)://`, HLS) within the allowed protocols.
pub fn open_input(
    path: &Path,
    stream: StreamId,
    config: &PipelineConfig,
) -> Result<FfmpegConverter, OpenError> {
    match path.to_str().filter(|p| vqa_core::url_scheme(p).is_some()) {
        Some(url) => FfmpegConverter::open_url(url, stream, config),
        None => FfmpegConverter::open(path, stream, config),
    }
}

/// How an input is named in messages and reports: a URL without its credentials.
pub fn shown(path: &Path) -> String {
    vqa_core::redact_url(&path.display().to_string())
}

/// Runs the whole pipeline on one opened input.
pub async fn run(
    converter: FfmpegConverter,
    config: &PipelineConfig,
    stream: StreamId,
    in_flight: usize,
    progress: Option<ProgressSink>,
    events: Option<EventSink>,
) -> Result<Analysis, RunError> {
    run_with_layers(
        converter,
        config,
        stream,
        in_flight,
        progress,
        events,
        Vec::new(),
    )
    .await
}

/// [`run`], with the caller's own layers around the step as well (after this process's),
/// e.g. one that keeps every segment's measurements for the per-second graphs of
/// `vqa analyze --html`.
pub async fn run_with_layers(
    mut converter: FfmpegConverter,
    config: &PipelineConfig,
    stream: StreamId,
    in_flight: usize,
    progress: Option<ProgressSink>,
    events: Option<EventSink>,
    extra_layers: Vec<Arc<dyn StepLayer>>,
) -> Result<Analysis, RunError> {
    let started = Instant::now();
    let transport: Arc<dyn Transport> = Arc::new(MemTransport::new(in_flight));
    let detectors: Arc<Vec<Box<dyn Detector>>> = Arc::new(vqa_detectors::from_config(config)?);
    let aggregator = IncidentAggregator::new(config);
    let times = Arc::new(layers::PhaseTimes::default());
    let latency = Arc::new(layers::Latency::default());
    let mut step = Step::new(transport.clone())
        .layer(times.clone())
        .layer(latency.clone());
    if let Some(sink) = events {
        step = step.layer(Arc::new(layers::Events(sink)));
    }
    for layer in extra_layers {
        step = step.layer(layer);
    }
    let (segment_tx, mut segment_rx) = mpsc::channel(in_flight.max(1));
    let (findings_tx, mut findings_rx) = mpsc::channel(in_flight.max(1));
    let rt = tokio::runtime::Handle::current();

    // Converter: a blocking thread, since FFmpeg decoding is synchronous CPU work.
    let convert = {
        let (step, rt) = (step.clone(), rt.clone());
        tokio::task::spawn_blocking(move || -> Result<_, RunError> {
            let mut busy = Duration::ZERO;
            loop {
                let t = thread_cpu_time();
                let next = converter.next_segment();
                busy += thread_cpu_time().saturating_sub(t);
                let Some(segment) = next else { break };
                if let Some(p) = &progress {
                    p(converter.position());
                }
                let handle = rt.block_on(step.hand_off(segment))?;
                if segment_tx.blocking_send(handle).is_err() {
                    break; // the detectors stopped: their error is reported
                }
            }
            Ok((converter.summary(), busy))
        })
    };

    // Detectors: a blocking thread too; pixel loops are CPU work.
    let detect = {
        let (step, rt) = (step.clone(), rt.clone());
        tokio::task::spawn_blocking(move || -> Result<(), RunError> {
            let detection = Detection::all(&detectors);
            while let Some(handle) = segment_rx.blocking_recv() {
                let (findings, _) = rt.block_on(step.detect(&detection, &handle, Release::Now))?;
                if findings_tx.blocking_send(findings).is_err() {
                    break;
                }
            }
            Ok(())
        })
    };

    // Aggregator: cheap bookkeeping, an async task.
    let mut segments = 0u64;
    while let Some(handle) = findings_rx.recv().await {
        step.aggregate(&aggregator, &[handle], Release::Now).await?;
        segments += 1;
    }
    detect
        .await
        .map_err(|_| RunError::StagePanicked("detector"))??;
    let (summary, convert_busy) = convert
        .await
        .map_err(|_| RunError::StagePanicked("converter"))??;
    let (report, _) = step.finish(&aggregator, &stream, summary).await?;
    let stats = RunStats {
        wall_seconds: started.elapsed().as_secs_f64(),
        convert_seconds: convert_busy.as_secs_f64(),
        detect_seconds: times.cpu(Phase::Detect).as_secs_f64(),
        aggregate_seconds: (times.wall(Phase::Aggregate) + times.wall(Phase::Finish)).as_secs_f64(),
        segments,
        video_frames: report.coverage.video_frames,
        handoff: transport.metrics(),
        latencies_ms: latency.take(),
    };
    Ok(Analysis { report, stats })
}

/// Opens and analyses a file with the default in-flight bound: the library entry point the
/// command line and the tests share.
pub async fn analyze_file(path: &Path, config: &PipelineConfig) -> Result<Analysis, RunError> {
    let stream = stream_id_for(path);
    let converter = open_input(path, stream.clone(), config)?;
    run(converter, config, stream, DEFAULT_IN_FLIGHT, None, None).await
}

/// A stream id from a file name: its stem, which is how users tell their reports apart.
pub fn stream_id_for(path: &Path) -> StreamId {
    // A URL's name comes from its path, never from its credentials or query.
    let redacted = shown(path);
    let path = Path::new(redacted.split(['?', '#']).next().unwrap_or_default());
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    StreamId::new(if stem.is_empty() {
        "input".to_string()
    } else {
        stem
    })
}
