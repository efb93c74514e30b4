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
use vqa_core::cost::Usage;
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
    /// The chunk file's bytes, if it was stored, and how long it stayed (upload to delete).
    stored: Option<(u64, f64)>,
    /// How long the client waited for the chunk's executions (an Express execution's
    /// duration where there is no history).
    seconds: f64,
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
    // Each applied chunk's accounting, off the chunk path; all of it before `finished`.
    let mut accounting = tokio::task::JoinSet::new();
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
                            while accounting.join_next().await.is_some() {}
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
                    let chunk = ChunkRun {
                        chunk: ran.chunk,
                        segments: outcome.segments,
                        executions: outcome.executions,
                        stored: ran.stored,
                        seconds: ran.seconds,
                    };
                    accounting.spawn(account_chunk(inner.clone(), chunk, events.clone()));
                    if ran.chunk.last {
                        let what = format!("stream {}", job.stream);
                        let report = read_report(&inner.transport, &job.results, &what).await;
                        while accounting.join_next().await.is_some() {}
                        events.finished(report.map_err(|e| e.to_string()));
                        return;
                    }
                }
            },
            else => break,
        }
    }
    while accounting.join_next().await.is_some() {}
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
    let stored_at = std::time::Instant::now();
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
                stored = Some((key, size));
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
    let ran_at = std::time::Instant::now();
    let outcome = patiently(|| runner.run(cut.chunk)).await;
    let seconds = ran_at.elapsed().as_secs_f64();
    let stored = stored.map(|(key, size)| (key, size, stored_at.elapsed().as_secs_f64()));
    if let Some((key, _, _)) = &stored {
        if let Err(e) = inner.transport.delete_object(bucket, key).await {
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
        stored: stored.map(|(_, size, seconds)| (size, seconds)),
        seconds,
    }
}

/// An applied chunk, for its accounting.
struct ChunkRun {
    chunk: Chunk,
    segments: u64,
    executions: Vec<String>,
    stored: Option<(u64, f64)>,
    seconds: f64,
}

/// What a chunk's executions used, counted from their histories (fetched here, after the
/// chunk's incidents were handed on), with its file's PUT, GETs and DELETE, handed to the
/// stream's events.
async fn account_chunk(inner: Arc<Inner>, ran: ChunkRun, events: Arc<dyn ChunkEvents>) {
    let groups = deployed_groups(&inner.definition).map_or(0, |g| g.len() as u64);
    let mut run = DistributedRun::new(
        StreamReport::default(),
        String::new(),
        inner.machine_type,
        groups,
    );
    account(&inner.sfn, &ran.executions, &mut run).await;
    run.transitions_from_definition =
        ran.executions.len() as u64 * state_transitions(ran.segments, groups);
    events.accounted(&ran.chunk, &chunk_usage(&run, ran.stored, ran.seconds));
}

/// A chunk's usage from its executions' counts: where the service keeps no history (Express
/// on AWS), its duration is the client's wait for it, and its Lambda tasks are not known.
fn chunk_usage(run: &DistributedRun, stored: Option<(u64, f64)>, seconds: f64) -> Usage {
    let mut usage = run.usage();
    if usage.execution_seconds.is_empty() && run.executions > 0 {
        usage.execution_seconds = vec![seconds];
    }
    // The converter's ranged reads of the chunk file.
    usage.s3_gets += run.input_reads;
    if let Some((bytes, stored_seconds)) = stored {
        usage.s3_puts += 1;
        usage.s3_deletes += 1;
        usage.s3_byte_seconds += bytes as f64 * stored_seconds;
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunks_usage_counts_its_tasks_its_handoff_and_its_file() {
        let mut run = DistributedRun::new(
            StreamReport::default(),
            String::new(),
            MachineType::Standard,
            2,
        );
        run.executions = 1;
        run.transitions = Some(40);
        run.tasks = vec![
            ("vqa-converter".into(), 1.0),
            ("vqa-detector".into(), 0.5),
            ("vqa-aggregator".into(), 0.2),
        ];
        run.handoff.puts = 10;
        run.handoff.state_stores = 2;
        run.handoff.gets = 20;
        run.handoff.state_loads = 2;
        run.handoff.deletes = 10;
        run.input_reads = 3;
        // 1,000 bytes stored for 2 s; no history of the execution's duration: the wait, 5 s.
        let u = chunk_usage(&run, Some((1000, 2.0)), 5.0);
        assert_eq!(u.state_transitions, 40);
        assert_eq!(u.lambda_invocations, 3);
        let gb_seconds = 1.0 * 2048.0 / 1024.0 + 0.5 * 1769.0 / 1024.0 + 0.2 * 512.0 / 1024.0;
        assert!((u.lambda_gb_seconds - gb_seconds).abs() < 1e-12);
        assert_eq!((u.s3_puts, u.s3_gets, u.s3_deletes), (13, 25, 11));
        assert_eq!(u.s3_byte_seconds, 2000.0);
        assert_eq!(u.execution_seconds, vec![5.0]);
        // A chunk of lost input stores no file.
        assert_eq!(chunk_usage(&run, None, 5.0).s3_puts, 12);
    }
}
