//! The three Lambda handlers' bodies: thin adapters that decode a payload, call the same
//! stage code the single-process runner calls ([`vqa_core::stage`]) with an S3 transport,
//! and return handles. The `bin/` wrappers only connect them to the Lambda runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use vqa_converter::FfmpegConverter;
use vqa_core::notify::Notification;
use vqa_core::step::{Detection, Outcome, Release, Step, StepLayer};
use vqa_core::{
    ArtifactKey, Converter, Detector, Handle, IncidentAggregator, PipelineConfig, StreamId,
    Transport, TransportError,
};
use vqa_transport_s3::{S3Error, S3Transport};

use crate::payload::{check_size, AggregateTask, Aggregated, Converted, DetectTask, Detected, Job};
use vqa_notify::sns::SnsNotifier;
use vqa_transport_s3::parse_s3_uri;

/// A handler's failure: one sentence, which Step Functions shows as the execution's cause.
/// Its Lambda error type tells the state machine's Retry whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    pub message: String,
    pub transient: bool,
}

/// The Lambda error type of a failure worth retrying (the store was unreachable).
pub const TRANSIENT_ERROR: &str = "vqa.Unavailable";
/// The Lambda error type of any other failure (bad input, bad configuration, a bug).
pub const PERMANENT_ERROR: &str = "vqa.Failed";

impl StageError {
    fn new(context: &str, e: impl std::fmt::Display) -> Self {
        StageError::permanent(format!("{context}: {e}"))
    }

    fn permanent(message: String) -> Self {
        StageError {
            message,
            transient: false,
        }
    }

    fn s3(context: &str, e: S3Error) -> Self {
        StageError {
            transient: matches!(e, S3Error::Unreachable { .. }),
            message: format!("{context}: {e}"),
        }
    }

    fn transport(context: &str, e: TransportError) -> Self {
        StageError {
            transient: matches!(e, TransportError::Unavailable(_)),
            message: format!("{context}: {e}"),
        }
    }
}

#[cfg(feature = "runtime")]
impl From<StageError> for lambda_runtime::Diagnostic {
    fn from(e: StageError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: if e.transient {
                TRANSIENT_ERROR
            } else {
                PERMANENT_ERROR
            }
            .to_string(),
            error_message: e.message,
        }
    }
}

/// Milliseconds since the Unix epoch: when something happened, for latency measurements
/// that span processes.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Converter: downloads the input to local storage (`/tmp` in Lambda), decodes it, and
/// stores every segment; returns their handles.
pub async fn convert(
    base: &S3Transport,
    job: Job,
    scratch: &Path,
) -> Result<Converted, StageError> {
    let transport = base.with_layout(job.transport.clone());
    let (bucket, key) = parse_s3_uri(&job.input).ok_or_else(|| {
        StageError::permanent(format!(
            "input {:?} is not an s3://bucket/key URI",
            job.input
        ))
    })?;
    let file_name = Path::new(key)
        .file_name()
        .map_or_else(|| "input".into(), |n| n.to_string_lossy().into_owned());
    let local: PathBuf = scratch.join(format!("vqa-{}-{file_name}", std::process::id()));
    transport
        .download_file(bucket, key, &local)
        .await
        .map_err(|e| StageError::s3("converter: fetching the input", e))?;
    let result = convert_file(Arc::new(transport), &job, &local).await;
    let _ = std::fs::remove_file(&local);
    result
}

/// Segments stored at once while the decoder runs ahead.
const UPLOADS_IN_FLIGHT: usize = 4;

async fn convert_file(
    transport: Arc<S3Transport>,
    job: &Job,
    local: &Path,
) -> Result<Converted, StageError> {
    let step = Step::new(transport.clone());
    let mut converter = FfmpegConverter::open(local, job.stream.clone(), &job.config)
        .map_err(|e| StageError::permanent(format!("{}: {e}", job.input_name)))?;
    // Decoding (CPU, on a blocking thread) overlaps with storing the previous segments; the
    // channel bounds how far it runs ahead, so memory stays bounded.
    let (tx, rx) = tokio::sync::mpsc::channel(UPLOADS_IN_FLIGHT);
    let decoder = tokio::task::spawn_blocking(move || {
        while let Some(segment) = converter.next_segment() {
            if tx.blocking_send(segment).is_err() {
                break; // storing failed: that error is reported
            }
        }
        converter
    });
    let decoded = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|segment| (segment, rx))
    });
    let stored: Result<(Vec<Handle>, Vec<u64>), _> = decoded
        .map(|segment| {
            let step = &step;
            async move {
                let handle = step.hand_off(segment).await?;
                Ok::<_, TransportError>((handle, now_ms()))
            }
        })
        .buffered(UPLOADS_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .map(|v| v.into_iter().unzip());
    let converter = decoder.await.map_err(|_| {
        StageError::permanent(
            "converter: the decoder crashed (a bug: please report it with the input)".into(),
        )
    })?;
    let (segments, stored_at_ms) = stored.map_err(|e| StageError::transport("converter", e))?;
    let mut summary = converter.summary();
    summary.input = job.input_name.clone();
    let out = Converted {
        segments,
        summary,
        handoff: transport.metrics(),
        stored_at_ms,
    };
    check_size(
        "the converter's list of segment handles",
        &out,
        "analyse a shorter input per execution, or use longer segments (segment_seconds)",
    )
    .map_err(|e| StageError::permanent(e.to_string()))?;
    Ok(out)
}

type Detectors = Arc<Vec<Box<dyn Detector>>>;

/// Detectors built for a configuration (named by its JSON), kept between invocations of a
/// warm function: building them can mean loading a model.
#[derive(Default)]
pub struct DetectorCache(Mutex<Option<(String, Detectors)>>);

impl DetectorCache {
    fn get(&self, config: &PipelineConfig) -> Result<Detectors, StageError> {
        let id = serde_json::to_string(config).unwrap_or_default();
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, detectors)) = slot.as_ref() {
            if *cached == id {
                return Ok(detectors.clone());
            }
        }
        let detectors = Arc::new(
            vqa_detectors::from_config(config).map_err(|e| StageError::new("detector", e))?,
        );
        *slot = Some((id, detectors.clone()));
        Ok(detectors)
    }
}

/// Detector: runs one group of detectors on one segment and stores the group's findings.
pub async fn detect(
    base: &S3Transport,
    cache: &DetectorCache,
    task: DetectTask,
) -> Result<Detected, StageError> {
    let transport = Arc::new(base.with_layout(task.transport.clone()));
    let mut config = task.config;
    config.detectors = task.detectors;
    let detectors = cache.get(&config)?;
    // The segment stays for the other groups' branches; the aggregator removes it.
    let detection = Detection::group(&detectors, task.group);
    let (findings, _) = Step::new(transport.clone())
        .detect(&detection, &task.segment, Release::Later)
        .await
        .map_err(|e| StageError::transport("detector", e))?;
    Ok(Detected {
        findings,
        handoff: transport.metrics(),
    })
}

/// Publishes each incident opened and closed to SNS, as the aggregator applies findings and
/// closes the stream. A notification that cannot be published is logged, never a failed
/// aggregation: the report is the record.
struct SnsEvents {
    notifier: SnsNotifier,
    report: String,
}

#[async_trait::async_trait]
impl StepLayer for SnsEvents {
    async fn after(&self, stream: &StreamId, _segment: u64, outcome: &Outcome<'_>) {
        for e in outcome.events() {
            let n = Notification::from_event(stream, e, Some(&self.report));
            if let Err(why) = self.notifier.publish(&n).await {
                tracing::warn!("{why}");
            }
        }
    }
}

/// The aggregator: every segment's findings in order, then the report. With a notifier,
/// incidents are published as they open and close (a retried aggregator publishes again:
/// delivery is at least once).
pub async fn aggregate(
    base: &S3Transport,
    task: AggregateTask,
    notifier: Option<&SnsNotifier>,
) -> Result<Aggregated, StageError> {
    let transport = Arc::new(base.with_layout(task.transport.clone()));
    let aggregator = IncidentAggregator::new(&task.config);
    let fail = |e| StageError::transport("aggregator", e);
    let mut step = Step::new(transport.clone());
    if let Some(notifier) = notifier {
        step = step.layer(Arc::new(SnsEvents {
            notifier: notifier.clone(),
            report: task.results.uri(),
        }));
    }
    let mut applied = Vec::new();
    for segment in &task.segments {
        let parts: Vec<Handle> = (0..task.groups)
            .map(|g| {
                let key = ArtifactKey::findings_part(&segment.key.stream, segment.key.segment, g);
                Handle {
                    location: transport.layout().location(&key),
                    key,
                }
            })
            .collect();
        // Artifacts stay until the report is written (below).
        step.aggregate(&aggregator, &parts, Release::Later)
            .await
            .map_err(fail)?;
        applied.extend(parts);
        applied.push(segment.clone());
    }
    let (report, _) = step
        .finish(&aggregator, &task.stream, task.summary)
        .await
        .map_err(fail)?;
    let body = serde_json::to_vec_pretty(&report)
        .map_err(|e| StageError::new("aggregator: encoding the report", e))?;
    transport
        .write_object(
            &task.results.bucket,
            &task.results.key,
            body.into(),
            "application/json",
        )
        .await
        .map_err(|e| StageError::s3("aggregator: writing the report", e))?;
    let written_at = now_ms();
    // Artifacts go only once the report is written: a retried aggregator (after a fault at
    // any point above) finds every segment's findings again and ends with the same report.
    for handle in &applied {
        transport.delete(handle).await.map_err(fail)?;
    }
    Ok(Aggregated {
        written_at_ms: written_at,
        report: task.results.uri(),
        incidents: report.incidents.len(),
        segments: task.segments.len(),
        handoff: transport.metrics(),
    })
}
