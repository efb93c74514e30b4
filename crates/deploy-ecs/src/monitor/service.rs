//! The monitor as a service — what `vqa monitor` and the ECS task run: start it on a stream
//! list (with `/metrics`, `/healthz` and the `--control` endpoints when it listens), keep it
//! ticking, apply the list file's edits as they are saved, and shut it down cleanly on
//! SIGTERM, Ctrl-C or a stop condition.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vqa_core::PipelineConfig;
use vqa_notify::Notifiers;

use super::list::ListError;
use super::{metrics, Finished, Monitor, StreamList, StreamState};
use crate::{modified, ServiceError, StopSignals};

/// When a running service stops, besides SIGTERM and Ctrl-C.
#[derive(Clone, Copy, Debug, Default)]
pub struct StopWhen {
    /// After this long.
    pub after: Option<Duration>,
    /// Once every stream has ended (files replayed; live inputs reconnect, never end).
    pub all_ended: bool,
}

/// How a service is set up.
pub struct ServiceOptions {
    /// The stream list file, reloaded when it changes; none when lists come over HTTP only.
    pub list_file: Option<PathBuf>,
    /// Where each stream's report is written when it stops.
    pub reports_dir: Option<PathBuf>,
    /// Serve `/metrics` and `/healthz` there.
    pub listen: Option<String>,
    /// Also accept stream lists on `listen` (`PUT /streams`), the way `vqa router` drives a
    /// shard; `VQA_CONTROL_TOKEN` then names the bearer token it requires, which it must
    /// when `listen` is not a loopback address.
    pub control: bool,
    /// Where the stages run.
    pub stages: super::Stages,
    /// What the streams' costs are priced with (`/metrics`); the shipped table if none.
    pub prices: Option<vqa_core::cost::PriceTable>,
}

/// How long a stopping service waits for its streams' reports: the last chunk of a stream
/// in the distributed topology is an execution (which may wait for earlier ones).
fn grace(distributed: bool) -> Duration {
    Duration::from_secs(if distributed { 300 } else { 30 })
}

/// What a stopped service leaves: every stream's state (errors and counters) and the
/// notification destinations' delivery counts.
pub struct Stopped {
    pub streams: Vec<Arc<StreamState>>,
    pub finished: Finished,
}

/// The stream list in `file`, or an empty one (with every default) when there is none.
pub fn load_list(file: Option<&Path>, base: &PipelineConfig) -> Result<StreamList, ListError> {
    match file {
        Some(path) => StreamList::load(path, base),
        None => StreamList::parse("", base),
    }
}

/// Starts the monitor on `list` (loaded from `options.list_file`), runs it until stopped,
/// and shuts it down (open incidents closed, every report written, 30 s at most; 5 minutes
/// in the distributed topology).
pub async fn run(
    list: StreamList,
    options: ServiceOptions,
    base: &PipelineConfig,
    notifiers: Notifiers,
    stop: StopWhen,
) -> Result<Stopped, ServiceError> {
    crate::resources::settle_allocator();
    let list_file = options.list_file.as_deref();
    let settings = list.monitor.clone();
    let distributed = !matches!(options.stages, super::Stages::InProcess);
    // Bound before anything starts: an address in use, or --control open to others
    // without a token, stops the service at once.
    let bound = options
        .listen
        .as_deref()
        .map(crate::http::bind)
        .transpose()?;
    let control = options.control.then(|| metrics::Control {
        base: base.clone(),
        last: Default::default(),
        token: crate::control_token(),
    });
    if let (Some(bound), Some(control)) = (&bound, &control) {
        metrics::refuse_unprotected(bound, control)?;
    }
    let monitor = Monitor::with_stages(
        settings.clone(),
        notifiers,
        options.reports_dir,
        options.stages,
    )?;
    if let Some(prices) = options.prices {
        monitor.price_with(prices);
    }
    if let Some(bound) = bound {
        let local = metrics::serve(bound, monitor.env(), control, metrics::limits())?;
        tracing::info!("metrics at http://{local}/metrics, health at http://{local}/healthz");
    }
    let changes = monitor.apply(&list);
    tracing::info!(
        "monitoring {} stream(s) on {} worker(s)",
        changes.added.len(),
        monitor.workers()
    );
    let mut seen = list_file.and_then(modified);
    let started = Instant::now();
    let mut last_tick = Instant::now();
    let mut last_trim = Instant::now();
    let mut signals = StopSignals::new()?;
    loop {
        if signals.stopped_within(Duration::from_millis(200)).await {
            break;
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            monitor.tick();
            last_tick = Instant::now();
        }
        if last_trim.elapsed() >= crate::resources::TRIM_EVERY {
            crate::resources::trim_heaps();
            last_trim = Instant::now();
        }
        let now_modified = list_file.and_then(modified);
        if let (Some(path), true) = (list_file, now_modified != seen) {
            seen = now_modified;
            match StreamList::load(path, base) {
                Ok(list) => {
                    if list.monitor != settings {
                        tracing::warn!(
                            "{}: [monitor] settings apply at start; restart vqa to change them",
                            path.display()
                        );
                    }
                    let c = monitor.apply(&list);
                    tracing::info!(
                        "{}: added {:?}, removed {:?}, restarted {:?}",
                        path.display(),
                        c.added,
                        c.removed,
                        c.restarted
                    );
                }
                Err(e) => tracing::error!("{e:#}; still monitoring the previous list"),
            }
        }
        if stop.after.is_some_and(|d| started.elapsed() >= d)
            || (stop.all_ended && monitor.running() == 0)
        {
            break;
        }
    }
    let streams = monitor.streams();
    let finished = tokio::task::spawn_blocking(move || monitor.shutdown(grace(distributed)))
        .await
        .map_err(|e| ServiceError::system("shut the monitor down", e))?;
    Ok(Stopped { streams, finished })
}
