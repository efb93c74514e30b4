//! The three Lambda handlers' bodies: thin adapters that decode a payload, call the same
//! stage code the single-process runner calls ([`vqa_core::stage`]) with an S3 transport,
//! and return handles. The `bin/` wrappers only connect them to the Lambda runtime.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use vqa_converter::FfmpegConverter;
use vqa_core::chunk::{ChunkCursor, Turn};
use vqa_core::notify::Notification;
use vqa_core::step::{Detection, Outcome, Release, Step, StepLayer};
use vqa_core::Converter as _;
use vqa_core::{
    wire, ArtifactKey, Detector, Handle, HandoffMetrics, IncidentAggregator, PipelineConfig,
    StateKey, StreamId, Transport, TransportError,
};
use vqa_transport_s3::{S3Error, S3Transport};

use vqa_core::chunk::Chunk;
use vqa_core::live::LiveChunk;
use vqa_core::time::Micros;

use crate::input::S3Input;
use crate::packager::{self, PackagerKey, PackagerObject, PackagerRun};
use crate::payload::{
    check_size, AggregateTask, Aggregated, Converted, DetectTask, Detected, Job, ResultsLocation,
};
use vqa_notify::sns::SnsNotifier;
use vqa_transport_s3::parse_s3_uri;

/// A handler's failure: one sentence, which Step Functions shows as the execution's cause.
/// Its Lambda error type tells the state machine's Retry whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    pub message: String,
    pub kind: FailureKind,
}

/// What a failure means to the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Bad input, bad configuration, a bug: retrying cannot help (`vqa.Failed`).
    Failed,
    /// The store was unreachable: retried (`vqa.Unavailable`).
    Unavailable,
    /// The aggregator of a chunk whose predecessors are not applied yet: retried until
    /// they are (`vqa.Waiting`).
    Waiting,
}

/// The Lambda error type of a failure worth retrying (the store was unreachable).
pub const TRANSIENT_ERROR: &str = "vqa.Unavailable";
/// The Lambda error type of any other failure (bad input, bad configuration, a bug).
pub const PERMANENT_ERROR: &str = "vqa.Failed";
/// The Lambda error type of a chunk's aggregator waiting for an earlier chunk.
pub const WAITING_ERROR: &str = "vqa.Waiting";

impl FailureKind {
    /// `Unavailable` when the store could not be reached, `Failed` otherwise.
    fn unavailable_if(unreachable: bool) -> Self {
        if unreachable {
            FailureKind::Unavailable
        } else {
            FailureKind::Failed
        }
    }

    pub fn error_type(self) -> &'static str {
        match self {
            FailureKind::Failed => PERMANENT_ERROR,
            FailureKind::Unavailable => TRANSIENT_ERROR,
            FailureKind::Waiting => WAITING_ERROR,
        }
    }
}

impl StageError {
    fn new(context: &str, e: impl std::fmt::Display) -> Self {
        StageError::permanent(format!("{context}: {e}"))
    }

    fn permanent(message: String) -> Self {
        StageError {
            message,
            kind: FailureKind::Failed,
        }
    }

    fn waiting(message: String) -> Self {
        StageError {
            message,
            kind: FailureKind::Waiting,
        }
    }

    fn s3(context: &str, e: S3Error) -> Self {
        StageError {
            kind: FailureKind::unavailable_if(matches!(e, S3Error::Unreachable { .. })),
            message: format!("{context}: {e}"),
        }
    }

    fn transport(context: &str, e: TransportError) -> Self {
        StageError {
            kind: FailureKind::unavailable_if(matches!(e, TransportError::Unavailable(_))),
            message: format!("{context}: {e}"),
        }
    }
}

#[cfg(feature = "runtime")]
impl From<StageError> for lambda_runtime::Diagnostic {
    fn from(e: StageError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.kind.error_type().to_string(),
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

/// Converter: reads the job's chunk of the input from S3 (in ranges, as the demuxer asks
/// for them), decodes it, and stores every segment; returns their handles.
pub async fn convert(base: &S3Transport, job: Job) -> Result<Converted, StageError> {
    let transport = Arc::new(base.with_layout(job.transport.clone()));
    if job.live.as_ref().is_some_and(|l| l.loss.is_some()) || job.input.is_empty() {
        // A live stream's chunk of lost input, or its empty end: nothing to decode.
        return Ok(Converted {
            segments: Vec::new(),
            summary: vqa_core::StreamSummary {
                input: job.input_name.clone(),
                complete: true,
                ..Default::default()
            },
            decode_errors: 0,
            handoff: transport.metrics(),
            stored_at_ms: Vec::new(),
            input_reads: 0,
            input_bytes: 0,
        });
    }
    let (bucket, key) = parse_s3_uri(&job.input).ok_or_else(|| {
        StageError::permanent(format!(
            "input {:?} is not an s3://bucket/key URI",
            job.input
        ))
    })?;
    let (bucket, key) = (bucket.to_string(), key.to_string());
    let step = Step::new(transport.clone());
    // Reading and decoding (blocking I/O and CPU, on a blocking thread) overlap with
    // storing the previous segments; the channel bounds how far they run ahead, so memory
    // stays bounded.
    let (tx, rx) = tokio::sync::mpsc::channel(UPLOADS_IN_FLIGHT);
    let decoder = {
        let (job, transport) = (job.clone(), transport.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut keys = job.preroll.clone();
            keys.push(key);
            let (source, reads) = S3Input::open_all(transport, &bucket, &keys, runtime)
                .map_err(|e| StageError::s3("converter: reading the input", *e))?;
            let mut converter = FfmpegConverter::open_source(
                source,
                &job.input_name,
                job.stream.clone(),
                &job.config,
            )
            .map_err(|e| StageError::permanent(format!("{}: {e}", job.input_name)))?;
            converter = match &job.live {
                Some(live) => converter.stream_chunk(live.origin, &job.config, job.chunk),
                None => converter.chunked(&job.config, job.chunk),
            };
            while let Some(segment) = converter.next_segment() {
                if tx.blocking_send(segment).is_err() {
                    break; // storing failed: that error is reported
                }
            }
            // A read that failed ends decoding like the end of the input: say what it was
            // (an unreachable store is worth a retry), rather than report a short chunk.
            if let Some(e) = reads.take_failure() {
                return Err(StageError::s3("converter: reading the input", e));
            }
            let read = (
                reads.requests.load(Ordering::Relaxed),
                reads.bytes.load(Ordering::Relaxed),
            );
            Ok((converter.chunk_summary(), read))
        })
    };
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
    let decoded = decoder.await.map_err(|_| {
        StageError::permanent(
            "converter: the decoder crashed (a bug: please report it with the input)".into(),
        )
    })?;
    let ((mut summary, decode_errors), (input_reads, input_bytes)) = decoded?;
    let (segments, stored_at_ms) = stored.map_err(|e| StageError::transport("converter", e))?;
    summary.input = job.input_name.clone();
    if let Some(live) = &job.live {
        summary.media.duration = live.duration;
    }
    let out = Converted {
        segments,
        summary,
        decode_errors,
        handoff: transport.metrics(),
        stored_at_ms,
        input_reads,
        input_bytes,
    };
    check_size(
        "the converter's list of segment handles",
        &out,
        "use shorter chunks (--chunk-segments), or longer segments (segment_seconds)",
    )
    .map_err(|e| StageError::permanent(e.to_string()))?;
    Ok(out)
}

/// Segments stored at once while the decoder runs ahead.
const UPLOADS_IN_FLIGHT: usize = 4;

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

/// The state key of a stream's chunk cursor.
fn cursor_key(stream: &StreamId) -> StateKey {
    StateKey::new(stream, "chunks")
}

/// The aggregator: applies a chunk's findings to the stream's aggregator state, in the
/// stream's order (a chunk whose predecessors are not applied yet fails with
/// `vqa.Waiting`, which the state machine retries), and after the last chunk writes the
/// report. With a notifier, incidents are published as they open and close (a retried
/// aggregator publishes again: delivery is at least once). A chunk with `skip` is recorded
/// as not analysed, and the stream goes on.
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
    let key = cursor_key(&task.stream);
    let mut cursor = match transport.load_state(&key).await.map_err(fail)? {
        Some(bytes) => wire::decode_state::<ChunkCursor>(&key.to_string(), &bytes).map_err(fail)?,
        None => ChunkCursor::new(),
    };
    // Each segment's findings, one part per detector group, then the segment itself.
    let artifacts: Vec<(Vec<Handle>, &Handle)> = task
        .segments
        .iter()
        .map(|segment| {
            let parts = (0..task.groups)
                .map(|g| {
                    let key =
                        ArtifactKey::findings_part(&segment.key.stream, segment.key.segment, g);
                    Handle {
                        location: transport.layout().location(&key),
                        key,
                    }
                })
                .collect();
            (parts, segment)
        })
        .collect();
    let mut out = Aggregated {
        report: task.results.uri(),
        finished: false,
        incidents: 0,
        segments: 0,
        handoff: HandoffMetrics::default(),
        written_at_ms: 0,
        events: Vec::new(),
    };
    let first_index = match cursor.turn(&task.chunk) {
        Turn::Wait { next_chunk } => {
            return Err(StageError::waiting(format!(
                "chunk {} of stream {} waits for chunk {next_chunk} to be applied first",
                task.chunk.index, task.stream
            )))
        }
        Turn::Apply { first_index } => first_index,
        Turn::Done => {
            // A retry after this chunk was applied: only the clean-up may be left to do.
            if task.chunk.last {
                step.clear(&task.stream).await.map_err(fail)?;
            }
            delete_artifacts(transport.as_ref(), &artifacts).await?;
            out.finished = task.chunk.last;
            out.handoff = transport.metrics();
            return Ok(out);
        }
    };
    let loss = task.live.as_ref().and_then(|l| l.loss);
    match (&task.skip, loss, &task.summary) {
        (Some(skip), _, _) => {
            let length = task.config.segment_length();
            cursor.skip(&task.chunk, length, &skip.message());
        }
        (None, Some(loss), _) => {
            // Lost input, from where analysis is: one segment of nothing but input_loss, as
            // the single-process monitor applies while its source is away.
            let start = step.analysed(&task.stream).await.map_err(fail)?;
            let span = (loss.until - start).max(0);
            if span > 0 {
                let report = vqa_core::SegmentReport::input_loss(
                    task.stream.clone(),
                    first_index,
                    start,
                    loss.until,
                    loss.attempts,
                );
                let key = ArtifactKey::findings(&task.stream, first_index);
                let handle = transport
                    .put(key, vqa_core::Artifact::Findings(Arc::new(report)))
                    .await
                    .map_err(fail)?;
                let events = step
                    .aggregate_as(&aggregator, &[handle], Release::Now, Some(first_index))
                    .await
                    .map_err(fail)?;
                out.events.extend(events);
                out.segments = 1;
            }
            cursor.lose(span, loss.begins);
            out.written_at_ms = now_ms();
        }
        (None, None, Some(summary)) => {
            for (i, (parts, _)) in artifacts.iter().enumerate() {
                // Artifacts stay until the cursor has moved past this chunk (below).
                let events = step
                    .aggregate_as(
                        &aggregator,
                        parts,
                        Release::Later,
                        Some(first_index + i as u64),
                    )
                    .await
                    .map_err(fail)?;
                out.events.extend(events);
            }
            cursor.advance(task.segments.len() as u64, summary, task.decode_errors);
            out.segments = task.segments.len();
            out.written_at_ms = now_ms();
        }
        (None, None, None) => {
            return Err(StageError::permanent(
                "aggregator: the task has neither the converter's summary nor a skip".into(),
            ))
        }
    }
    if let Some(live) = &task.live {
        cursor.note(&live.warnings);
    }
    if task.chunk.last {
        let summary = cursor.summary(vqa_converter::decode_errors_warning(cursor.decode_errors));
        let (report, closing) = step
            .conclude(&aggregator, &task.stream, summary)
            .await
            .map_err(fail)?;
        out.events.extend(closing);
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
        out.finished = true;
        out.incidents = report.incidents.len();
    }
    // The cursor moves past the chunk only now: a retry after a fault at any point above
    // finds every artifact and the state as they were, and ends the same way. It stays
    // after the last chunk (a few hundred bytes, under the run's prefix), so that a retried
    // last aggregator knows the report is written.
    transport
        .store_state(&key, wire::encode_state(&cursor))
        .await
        .map_err(fail)?;
    if task.chunk.last {
        step.clear(&task.stream).await.map_err(fail)?;
    }
    delete_artifacts(transport.as_ref(), &artifacts).await?;
    out.handoff = transport.metrics();
    Ok(out)
}

async fn delete_artifacts(
    transport: &dyn Transport,
    artifacts: &[(Vec<Handle>, &Handle)],
) -> Result<(), StageError> {
    for (parts, segment) in artifacts {
        for handle in parts.iter().chain(std::iter::once(*segment)) {
            transport
                .delete(handle)
                .await
                .map_err(|e| StageError::transport("aggregator", e))?;
        }
    }
    Ok(())
}

/// Segments read back at most for a packager's chunk's lead-ins.
const MAX_PREROLL_SEGMENTS: usize = 8;

/// Prepare: turns an object a packager created ([`PackagerObject`]) into its chunk of the
/// stream, as the execution's job (see [`crate::packager`]); the end marker into the
/// stream's last chunk, which writes its report. Fails with `vqa.Waiting` while the run's
/// first segment is not prepared yet (retried).
pub async fn prepare(
    base: &S3Transport,
    results_bucket: &str,
    object: PackagerObject,
) -> Result<Job, StageError> {
    let config = object.config.clone().unwrap_or_default();
    let length = config.segment_length();
    let transport = base;
    let key = PackagerKey::parse(&object.key, &object.prefix).map_err(StageError::permanent)?;
    let folder = match &key {
        PackagerKey::Segment { folder, .. } | PackagerKey::End { folder } => folder.clone(),
    };
    let name = packager::stream_name(&folder, &object.prefix);
    let run_key = StateKey::new(&StreamId::new(&name), "packager");
    let segments = Segments {
        transport,
        bucket: &object.bucket,
        folder: &folder,
        config: &config,
        spans: Mutex::new(Vec::new()),
    };
    let stored_run = || async {
        let fail = |e| StageError::transport("prepare", e);
        match transport.load_state(&run_key).await.map_err(fail)? {
            Some(bytes) => wire::decode_state::<PackagerRun>(&run_key.to_string(), &bytes)
                .map(Some)
                .map_err(fail),
            None => Ok(None),
        }
    };
    let (run, seq, segment_name, first_window, last) = match key {
        PackagerKey::Segment { seq, name: n, .. } => {
            let this = segments.span(&n.key(&folder, seq)).await?.ok_or_else(|| {
                StageError::permanent(format!("{}: the segment is gone", object.key))
            })?;
            let before = match seq.checked_sub(1) {
                Some(p) => segments.span(&n.key(&folder, p)).await?,
                None => None,
            };
            let run = match before {
                // No predecessor: this segment starts a run of the stream.
                None => {
                    let run = PackagerRun {
                        origin: this.0,
                        first: seq,
                    };
                    let state = wire::encode_state(&run);
                    transport
                        .store_state(&run_key, state)
                        .await
                        .map_err(|e| StageError::transport("prepare", e))?;
                    run
                }
                Some(_) => match stored_run().await? {
                    Some(run) if run.first < seq => run,
                    _ => {
                        return Err(StageError::waiting(format!(
                        "{}: the run of stream {name} this segment continues is not prepared yet",
                        object.key
                    )))
                    }
                },
            };
            let first_window = match before {
                Some((_, end)) if seq > run.first => run.windows_until(end, length),
                _ => 0,
            };
            (run, seq, n, first_window, false)
        }
        PackagerKey::End { .. } => {
            let keys = transport
                .list_keys(&object.bucket, &folder)
                .await
                .map_err(|e| StageError::s3("prepare: listing the stream's segments", e))?;
            let segments_of = |first: u64| {
                keys.iter()
                    .filter_map(|k| match PackagerKey::parse(k, &object.prefix) {
                        Ok(PackagerKey::Segment { seq, name, .. }) if seq >= first => {
                            Some((seq, name))
                        }
                        _ => None,
                    })
                    .max_by_key(|(seq, _)| *seq)
            };
            let run = match stored_run().await? {
                Some(run) => run,
                // Its segments are there, their run not yet: the first one's execution has
                // not prepared it (the end was written right after them).
                None if segments_of(0).is_some() => {
                    return Err(StageError::waiting(format!(
                        "{}: the run of stream {name} is not prepared yet",
                        object.key
                    )))
                }
                None => {
                    return Err(StageError::permanent(format!(
                        "{}: stream {name} has no segments, so there is nothing to end",
                        object.key
                    )))
                }
            };
            let newest = segments_of(run.first);
            let Some((seq, n)) = newest else {
                return Err(StageError::permanent(format!(
                    "{}: stream {name} has no segments left to end",
                    object.key
                )));
            };
            let (_, end) = segments.span(&n.key(&folder, seq)).await?.ok_or_else(|| {
                StageError::permanent(format!("{}: the stream's last segment is gone", object.key))
            })?;
            // The rest of the last segment: what no segment's chunk completed.
            (run, seq, n, run.windows_until(end, length), true)
        }
    };
    let input_key = segment_name.key(&folder, seq);
    let (index, end_window) = if last {
        (seq - run.first + 1, first_window)
    } else {
        let (_, end) = segments.span(&input_key).await?.unwrap_or((0, 0));
        (
            seq - run.first,
            run.windows_until(end, length).max(first_window),
        )
    };
    // Earlier segments, back until one starts a lead before the chunk's start.
    let wanted = run.origin + first_window as Micros * length - vqa_converter::chunk_lead(&config);
    let mut preroll = Vec::new();
    let mut earliest = segments.span(&input_key).await?.map_or(0, |s| s.0);
    let mut back = seq;
    while earliest > wanted && back > run.first && preroll.len() < MAX_PREROLL_SEGMENTS {
        back -= 1;
        let key = segment_name.key(&folder, back);
        let Some((start, _)) = segments.span(&key).await? else {
            break;
        };
        earliest = start;
        preroll.insert(0, key);
    }
    let stream = StreamId::new(run.stream(&name));
    Ok(Job {
        input: format!("s3://{}/{input_key}", object.bucket),
        input_name: format!("s3://{}/{folder}", object.bucket),
        config,
        transport: transport.layout().clone(),
        results: ResultsLocation {
            bucket: results_bucket.to_string(),
            key: format!("reports/{stream}/report.json"),
        },
        chunk: Chunk {
            index,
            first_window,
            windows: end_window - first_window,
            last,
        },
        skip: None,
        live: Some(LiveChunk {
            origin: run.origin,
            ..LiveChunk::default()
        }),
        preroll,
        stream,
    })
}

/// A packager's stream's segments, read for where their media begins and ends.
struct Segments<'a> {
    transport: &'a S3Transport,
    bucket: &'a str,
    folder: &'a str,
    config: &'a PipelineConfig,
    /// Spans already read, by key.
    spans: Mutex<Vec<(String, Option<Span>)>>,
}

/// Where a segment's media begins and ends on the source's clock (µs).
type Span = (Micros, Micros);

impl Segments<'_> {
    /// The segment's span on the source's clock ([`FfmpegConverter::span`]); `None` when
    /// there is no such object. Each segment is read once.
    async fn span(&self, key: &str) -> Result<Option<Span>, StageError> {
        let known = |spans: &Mutex<Vec<(String, Option<Span>)>>| {
            spans
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, s)| *s)
        };
        if let Some(span) = known(&self.spans) {
            return Ok(span);
        }
        let span = self.read_span(key).await?;
        self.spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key.to_string(), span));
        Ok(span)
    }

    async fn read_span(&self, key: &str) -> Result<Option<Span>, StageError> {
        let Some(bytes) = self
            .transport
            .read_object(self.bucket, key)
            .await
            .map_err(|e| StageError::s3("prepare: reading a segment", e))?
        else {
            return Ok(None);
        };
        let name = format!("s3://{}/{key}", self.bucket);
        let mut converter = FfmpegConverter::open_source(
            std::io::Cursor::new(bytes),
            &name,
            StreamId::new(self.folder),
            self.config,
        )
        .map_err(|e| StageError::permanent(format!("{name}: {e}")))?;
        converter
            .span()
            .map(Some)
            .ok_or_else(|| StageError::permanent(format!("{name}: the segment has no media")))
    }
}
