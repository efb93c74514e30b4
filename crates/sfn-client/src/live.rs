//! Live streams through the distributed topology: the live reader (`vqa monitor --topology
//! distributed`) cuts each stream into chunk files and hands them here; each is stored in
//! S3 and analysed by one execution of the state machine, as a file's chunks are. Chunks
//! start as soon as they are cut (a stream's aggregator applies them in order); their
//! incidents come back in the stream's order, and after the last chunk, its report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde_json::Value;
use vqa_core::chunk::Chunk;
use vqa_core::live::{Applied, ChunkEvents, ChunkJob, ChunkSink, ChunkStream};
use vqa_core::{Micros, PipelineConfig, StreamId, StreamReport};
use vqa_deploy_lambda::payload::{Job, ResultsLocation, TaskError};
use vqa_transport_s3::{connect, S3Layout, S3Transport};

use crate::{
    account, check_chunk_limits, check_groups, describe, read_report, run_name, stream_job,
    ChunkOutcome, ChunkRunner, ClientError, Deployment, DistributedRun, InOrder, MachineType,
    RunOptions, Sfn,
};
use vqa_deploy_lambda::state_machine::{deployed_groups, state_transitions};

/// Attempts at a request that failed for a reason that can pass (the service unreachable or
/// throttling), 2 s apart, before the chunk is given up.
const TRANSIENT_ATTEMPTS: u32 = 15;

/// What the live streams' chunks cost so far, counted as they run.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Chunks stored and analysed (or recorded as not analysed).
    pub chunks: AtomicU64,
    /// Executions started (reruns and skips included).
    pub executions: AtomicU64,
    /// Chunks recorded as not analysed.
    pub skipped: AtomicU64,
    /// Chunk files stored: PUT requests and bytes.
    pub uploads: AtomicU64,
    pub upload_bytes: AtomicU64,
}

/// The distributed topology as a live reader's [`ChunkSink`].
#[derive(Clone)]
pub struct LiveSink {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: tokio::runtime::Handle,
    sfn: Sfn,
    transport: S3Transport,
    deployment: Deployment,
    definition: Value,
    machine_type: MachineType,
    express_sync: bool,
    options: RunOptions,
    counters: Arc<LiveCounters>,
    /// Every execution started, and why chunks were recorded as not analysed.
    executions: std::sync::Mutex<Vec<String>>,
    skipped: std::sync::Mutex<Vec<String>>,
}

impl LiveSink {
    /// Checks the deployment (the state machine and the buckets) and makes the sink; its
    /// streams run on the current Tokio runtime.
    pub async fn connect(
        sdk: &SdkConfig,
        deployment: &Deployment,
        options: RunOptions,
    ) -> Result<Self, ClientError> {
        if options.chunk_segments == 0 || options.attempts == 0 {
            return Err(ClientError::Input(
                "chunk segments and attempts must each be at least 1".into(),
            ));
        }
        let sfn = Sfn::new(sdk);
        let (machine_type, definition) = describe(&sfn, &deployment.state_machine_arn).await?;
        let (s3, endpoint) = connect(sdk);
        let transport = S3Transport::new(
            s3,
            endpoint,
            S3Layout {
                bucket: deployment.bucket.clone(),
                prefix: deployment.prefix.clone(),
                granularity: options.granularity,
                encoding: options.encoding,
            },
        );
        for bucket in [&deployment.bucket, &deployment.results_bucket] {
            transport.check_bucket(bucket).await?;
        }
        Ok(LiveSink {
            inner: Arc::new(Inner {
                runtime: tokio::runtime::Handle::current(),
                sfn,
                transport,
                deployment: deployment.clone(),
                definition,
                machine_type,
                express_sync: machine_type == MachineType::Express && sdk.endpoint_url().is_none(),
                options,
                counters: Arc::default(),
                executions: Default::default(),
                skipped: Default::default(),
            }),
        })
    }

    pub fn counters(&self) -> Arc<LiveCounters> {
        self.inner.counters.clone()
    }

    pub fn machine_type(&self) -> MachineType {
        self.inner.machine_type
    }

    /// What the chunks run so far used, counted from their executions' histories as a
    /// file's run is, for `report` (a stream's; the sink's streams' together when it ran
    /// several) and `wall_seconds` of running.
    pub async fn account(&self, report: StreamReport, wall_seconds: f64) -> DistributedRun {
        let inner = &self.inner;
        let groups = deployed_groups(&inner.definition).map_or(0, |g| g.len() as u64);
        let mut run = DistributedRun::new(report, "live".into(), inner.machine_type, groups);
        run.chunks = inner.counters.chunks.load(Ordering::Relaxed);
        run.skipped = lock(&inner.skipped).clone();
        let executions = lock(&inner.executions).clone();
        account(&inner.sfn, &executions, &mut run).await;
        let per_chunk = run.segments.div_ceil(run.chunks.max(1));
        run.transitions_from_definition = run.chunks * state_transitions(per_chunk, groups);
        run.wall_seconds = wall_seconds;
        run
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChunkSink for LiveSink {
    fn windows(&self) -> u64 {
        self.inner.options.chunk_segments
    }

    fn open(
        &self,
        stream: &StreamId,
        config: &PipelineConfig,
        input: &str,
        events: Arc<dyn ChunkEvents>,
    ) -> Result<Box<dyn ChunkStream>, String> {
        let inner = &self.inner;
        let arn = &inner.deployment.state_machine_arn;
        let groups = check_groups(&inner.definition, config, arn).map_err(|e| e.to_string())?;
        let name = run_name(stream);
        let layout = S3Layout {
            bucket: inner.deployment.bucket.clone(),
            prefix: format!("{}{name}/", inner.deployment.prefix),
            granularity: inner.options.granularity,
            encoding: inner.options.encoding,
        };
        // A connection's last chunk stretches over what was read past its end.
        let segments =
            inner.options.chunk_segments + vqa_converter::ChunkWriter::extra_windows(config);
        check_chunk_limits(stream, &layout, segments, groups as u64, inner.machine_type)
            .map_err(|e| format!("stream {stream}: {e}"))?;
        let results = ResultsLocation {
            bucket: inner.deployment.results_bucket.clone(),
            key: format!("reports/{stream}/{name}.json"),
        };
        // The input is each chunk's: none yet.
        let job = stream_job(
            stream.clone(),
            String::new(),
            input.to_string(),
            config,
            layout,
            results,
        )
        .map_err(|e| format!("stream {stream}: {e}"))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        inner
            .runtime
            .spawn(run_stream(inner.clone(), name, job, rx, events));
        Ok(Box::new(LiveStream { tx }))
    }
}

struct LiveStream {
    tx: tokio::sync::mpsc::UnboundedSender<ChunkJob>,
}

impl ChunkStream for LiveStream {
    fn submit(&mut self, job: ChunkJob) {
        if self.tx.send(job).is_err() {
            tracing::error!("a chunk was cut after its stream's run had ended; it is dropped");
        }
    }
}

/// What one chunk's run gives back.
struct Ran {
    chunk: Chunk,
    analysed: Micros,
    outcome: Result<ChunkOutcome, ClientError>,
}

/// One stream's run: starts each chunk as it is cut, hands their incidents back in the
/// stream's order, and after the last one, the report.
async fn run_stream(
    inner: Arc<Inner>,
    name: String,
    job: Job,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<ChunkJob>,
    events: Arc<dyn ChunkEvents>,
) {
    let mut running = FuturesUnordered::new();
    let mut in_order = InOrder::<Ran>::default();
    let mut open = true;
    loop {
        tokio::select! {
            next = rx.recv(), if open => match next {
                Some(cut) => running.push(run_chunk(&inner, &name, &job, cut)),
                None => open = false,
            },
            Some(ran) = running.next() => {
                let index = ran.chunk.index;
                for ran in in_order.arrived(index, ran) {
                    let outcome = match ran.outcome {
                        Ok(outcome) => outcome,
                        Err(e) => {
                            let why = format!(
                                "stream {}: chunk {} could not be run, so the stream's later chunks cannot be applied: {e}",
                                job.stream, ran.chunk.index
                            );
                            tracing::error!("{why}");
                            events.finished(Err(why));
                            return;
                        }
                    };
                    events.applied(&Applied {
                        chunk: ran.chunk,
                        analysed: ran.analysed,
                        segments: outcome.segments,
                        events: outcome.events,
                    });
                    if ran.chunk.last {
                        let what = format!("stream {}", job.stream);
                        let report = read_report(&inner.transport, &job.results, &what).await;
                        events.finished(report.map_err(|e| e.to_string()));
                        return;
                    }
                }
            },
            else => break,
        }
    }
    events.finished(Err(format!(
        "stream {}: its reader stopped without a last chunk; no report",
        job.stream
    )));
}

/// Retries `attempt` while it fails for a reason that can pass.
async fn patiently<T, F, Fut>(mut attempt: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_transient() && tries < TRANSIENT_ATTEMPTS => {
                tracing::warn!("{e}; trying again");
                tries += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            result => return result,
        }
    }
}

/// Stores a chunk's file, runs its executions, and removes the file from the bucket once
/// they ended. A file that cannot be stored makes the chunk one recorded as not analysed.
async fn run_chunk(inner: &Inner, name: &str, base: &Job, cut: ChunkJob) -> Ran {
    let mut job = base.clone();
    job.chunk = cut.chunk;
    let length = job.config.segment_length();
    let analysed = match (&cut.live.loss, cut.chunk.end(length)) {
        (Some(loss), _) => loss.until,
        (None, Some(end)) => end,
        (None, None) => cut.chunk.start(length),
    };
    job.live = Some(cut.live);
    let bucket = &inner.deployment.bucket;
    let mut stored = None;
    if let Some(file) = &cut.file {
        let key = job
            .transport
            .input_key(&job.stream, &format!("chunk-{:08}.ts", cut.chunk.index));
        let size = std::fs::metadata(file).map_or(0, |m| m.len());
        let upload = patiently(|| async {
            inner
                .transport
                .upload_file(bucket, &key, file)
                .await
                .map_err(ClientError::from)
        })
        .await;
        let _ = std::fs::remove_file(file);
        match upload {
            Ok(()) => {
                inner.counters.uploads.fetch_add(1, Ordering::Relaxed);
                inner
                    .counters
                    .upload_bytes
                    .fetch_add(size, Ordering::Relaxed);
                job.input = format!("s3://{bucket}/{key}");
                stored = Some(key);
            }
            Err(e) => {
                job.skip = Some(TaskError {
                    error: "vqa.NotStored".into(),
                    cause: format!("the chunk could not be stored: {e}"),
                })
            }
        }
    }
    let runner = ChunkRunner {
        sfn: &inner.sfn,
        machine: &inner.deployment.state_machine_arn,
        name,
        job: &job,
        express_sync: inner.express_sync,
        attempts: inner.options.attempts,
    };
    let outcome = patiently(|| runner.run(cut.chunk)).await;
    if let Some(key) = stored {
        if let Err(e) = inner.transport.delete_object(bucket, &key).await {
            tracing::warn!("{e}; the bucket's lifecycle rule will remove it");
        }
    }
    if let Ok(o) = &outcome {
        lock(&inner.executions).extend(o.executions.iter().cloned());
        lock(&inner.skipped).extend(o.skipped.iter().cloned());
        let c = &inner.counters;
        c.chunks.fetch_add(1, Ordering::Relaxed);
        c.executions
            .fetch_add(o.executions.len() as u64, Ordering::Relaxed);
        if o.skipped.is_some() {
            c.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ran {
        chunk: cut.chunk,
        analysed,
        outcome,
    }
}
