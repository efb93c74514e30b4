//! The router as a service — what `vqa router` and its ECS task run: assign the list's
//! streams to the shards, follow the list file's edits, and on SIGTERM, Ctrl-C or a stop
//! condition stop every stream on every shard, merge what they report and deliver the last
//! notifications.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vqa_core::{PipelineConfig, StreamReport};
use vqa_notify::{Notifiers, NotifyError, WebhookStats};

use super::{load_shards, serve, Relay, Router, ShardsError};
use crate::monitor::service::StopWhen;
use crate::monitor::StreamList;
use crate::{modified, ServiceError, StopSignals};

/// How a router service is set up.
pub struct RouterOptions {
    /// The stream list file (the `vqa monitor` format), reloaded when it changes.
    pub list_file: PathBuf,
    /// The shards file.
    pub shards_file: PathBuf,
    /// Where shards POST their notifications (`/notify`) and `/healthz` is served.
    pub listen: String,
    /// Where each stream's merged report is written.
    pub reports_dir: Option<PathBuf>,
}

/// What a stopped router leaves.
pub struct RouterStopped {
    /// Streams whose merged report is missing (a shard did not report them).
    pub pending: usize,
    pub merged: Vec<StreamReport>,
    pub webhooks: Vec<(String, WebhookStats)>,
}

/// Runs the router until stopped (`StopWhen::all_ended`: once every stream's merged report
/// is written), then stops the streams on the shards and merges their reports (30 s at
/// most).
pub async fn run(
    options: RouterOptions,
    base: &PipelineConfig,
    notifiers: impl std::future::Future<Output = Result<Notifiers, NotifyError>>,
    stop: StopWhen,
) -> Result<RouterStopped, ServiceError> {
    let list_file = options.list_file.as_path();
    let shards = load_shards(&options.shards_file)?;
    let list = StreamList::load(list_file, base)?;
    let relay = Arc::new(Relay::new(notifiers.await?, options.reports_dir.clone()));
    let local = serve(
        &options.listen,
        relay.clone(),
        crate::control_token(),
        super::limits(),
    )?;
    tracing::info!("router at http://{local} (shards POST to /notify)");
    let mut router = Router::new(shards, options.reports_dir)?;
    router.set_list(&list).map_err(|e| ShardsError::InFile {
        path: list_file.display().to_string(),
        problem: e.to_string(),
    })?;
    let mut seen = modified(list_file);
    let started = Instant::now();
    let mut signals = StopSignals::new()?;
    loop {
        router = tokio::task::spawn_blocking(move || {
            router.reconcile();
            router
        })
        .await
        .map_err(|e| ServiceError::system("reconcile the shards", e))?;
        if stop.all_ended && router.pending() == 0 {
            break;
        }
        if stop.after.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if signals.stopped_within(Duration::from_millis(500)).await {
            break;
        }
        let now = modified(list_file);
        if now != seen {
            seen = now;
            let applied = StreamList::load(list_file, base)
                .map_err(ServiceError::from)
                .and_then(|l| router.set_list(&l).map_err(ServiceError::from));
            match applied {
                Ok(()) => tracing::info!(
                    "{}: {} stream(s) assigned",
                    list_file.display(),
                    router.assigned()
                ),
                Err(e) => tracing::error!("{e:#}; still routing the previous list"),
            }
        }
    }
    // Stop every stream on every shard, then merge what they report (30 s at most).
    router.clear();
    let until = Instant::now() + Duration::from_secs(30);
    while router.pending() > 0 && Instant::now() < until {
        router = tokio::task::spawn_blocking(move || {
            router.reconcile();
            router
        })
        .await
        .map_err(|e| ServiceError::system("reconcile the shards", e))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Shards send their last notifications from queues: let them arrive, then deliver.
    let drained = relay.clone();
    tokio::task::spawn_blocking(move || {
        drained.drain(Duration::from_secs(1), Duration::from_secs(10))
    })
    .await
    .map_err(|e| ServiceError::system("deliver the last notifications", e))?;
    Ok(RouterStopped {
        pending: router.pending(),
        merged: std::mem::take(&mut router.merged),
        webhooks: relay.finish(),
    })
}
