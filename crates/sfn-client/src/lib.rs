//! The client side of the distributed topology: deploys the state machine, and runs an
//! input through it (upload, start an execution, wait, read the report and the counters).

pub mod live;

pub use live::{LiveCounters, LiveSink};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, StateMachineType};
use serde_json::Value;
use vqa_core::{HandoffMetrics, IncidentEvent, PipelineConfig, StreamId, StreamReport};
use vqa_transport_s3::{connect, Encoding, Granularity, S3Layout, S3Transport};

use futures::{StreamExt, TryStreamExt};
use vqa_core::chunk::Chunk;
use vqa_deploy_lambda::payload::{check_size, Job, ResultsLocation, TaskError, PAYLOAD_LIMIT};
use vqa_deploy_lambda::state_machine::{
    deployed_groups, history_events, state_transitions, MachineType, SKIPPED_ERROR,
    STANDARD_HISTORY_LIMIT,
};

/// A failure of the client: what failed, as one sentence that says what to fix, and
/// whether trying again can help ([`ClientError::is_transient`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The input cannot be run through the state machine: unreadable, or past a service
    /// limit.
    #[error("{0}")]
    Input(String),
    /// The deployment is incomplete, or does not run the configuration asked for.
    #[error("{0}")]
    Deployment(String),
    /// Step Functions could not be reached, or refused a request.
    #[error("{message}")]
    StepFunctions { message: String, transient: bool },
    /// S3: the buckets, the input's upload, the report's download.
    #[error(transparent)]
    Storage(Box<vqa_transport_s3::S3Error>),
    /// The execution ended without success (the cause is the failing function's message).
    #[error("{0}")]
    Execution(String),
    /// The execution succeeded but its report is missing or unreadable.
    #[error("{0}")]
    Report(String),
}

impl ClientError {
    /// Whether trying again later can help: the service was unreachable or throttling.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::StepFunctions { transient, .. } => *transient,
            ClientError::Storage(e) => {
                matches!(**e, vqa_transport_s3::S3Error::Unreachable { .. })
            }
            _ => false,
        }
    }
}

impl From<vqa_transport_s3::S3Error> for ClientError {
    fn from(e: vqa_transport_s3::S3Error) -> Self {
        ClientError::Storage(Box::new(e))
    }
}

/// A Step Functions client that knows where it points, for messages.
struct Sfn {
    client: aws_sdk_sfn::Client,
    endpoint: String,
}

impl Sfn {
    fn new(sdk: &SdkConfig) -> Self {
        let region = sdk.region().map_or("us-east-1".into(), |r| r.to_string());
        Sfn {
            client: aws_sdk_sfn::Client::new(sdk),
            endpoint: sdk
                .endpoint_url()
                .map_or_else(|| format!("AWS ({region})"), str::to_string),
        }
    }

    fn error<E>(&self, what: &str, e: SdkError<E, HttpResponse>) -> ClientError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        sfn_error(what, e, &self.endpoint)
    }
}

/// Turns a Step Functions SDK error into one sentence that says what to fix.
fn sfn_error<E>(what: &str, e: SdkError<E, HttpResponse>, endpoint: &str) -> ClientError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let unreachable = match &e {
        SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout(),
        SdkError::TimeoutError(_) => true,
        _ => false,
    };
    if unreachable {
        return ClientError::StepFunctions {
            message: format!(
                "{what}: cannot reach Step Functions at {endpoint}; check that it is running and that AWS_ENDPOINT_URL points at it"
            ),
            transient: true,
        };
    }
    let transient = e
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == 429 || r.status().is_server_error())
        || matches!(
            e.code(),
            Some("ThrottlingException" | "ServiceUnavailable" | "InternalFailure")
        );
    let detail = vqa_core::causes(&e);
    let message = match (e.code(), e.message()) {
        (Some(code), message) => {
            let hint = match code {
                "StateMachineDoesNotExist" | "InvalidArn" => {
                    "; check VQA_STATE_MACHINE_ARN, or deploy the state machine with `vqa deploy`"
                }
                "UnrecognizedClientException" | "InvalidSignatureException" | "AccessDeniedException" => {
                    "; check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and their permissions"
                }
                _ => "",
            };
            format!(
                "{what}: {code}{}{hint}",
                message.map(|m| format!(": {m}")).unwrap_or_default()
            )
        }
        (None, _) if detail.contains("credentials") => format!(
            "{what}: no usable AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        ),
        (None, _) => format!("{what}: {detail}"),
    };
    ClientError::StepFunctions { message, transient }
}

/// Where a deployed distributed topology lives (the stack's outputs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub state_machine_arn: String,
    pub bucket: String,
    /// Key prefix in the intermediate bucket; ends in `/`.
    pub prefix: String,
    pub results_bucket: String,
}

impl Deployment {
    /// From the stack's outputs, given as flags or in the environment (`VQA_STATE_MACHINE_ARN`,
    /// `VQA_BUCKET`, `VQA_RESULTS_BUCKET`, `VQA_PREFIX`); a missing one is named with where
    /// to get it.
    pub fn new(
        state_machine: Option<&str>,
        bucket: Option<&str>,
        results_bucket: Option<&str>,
        prefix: &str,
    ) -> Result<Self, ClientError> {
        let need = |value: Option<&str>, flag: &str, var: &str| {
            value
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    ClientError::Deployment(format!(
                        "{var} is not set: pass {flag} or export the distributed stack's outputs \
                         (infra/README.md); for the local emulator, `eval \"$(scripts/emulators.sh deploy)\"`"
                    ))
                })
        };
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Deployment {
            state_machine_arn: need(state_machine, "--state-machine", "VQA_STATE_MACHINE_ARN")?,
            bucket: need(bucket, "--bucket", "VQA_BUCKET")?,
            prefix,
            results_bucket: need(results_bucket, "--results-bucket", "VQA_RESULTS_BUCKET")?,
        })
    }
}

/// What a distributed run varies.
#[derive(Clone)]
pub struct RunOptions {
    pub granularity: Granularity,
    pub encoding: Encoding,
    /// Segments per chunk: each chunk of the input is one execution.
    pub chunk_segments: u64,
    /// Chunk executions running at once.
    pub concurrency: usize,
    /// Executions a chunk gets before it is recorded as not analysed.
    pub attempts: u32,
    /// Called as chunks finish: (chunks finished, chunks in all).
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    /// Called with each incident opened and closed, in the stream's order, as the chunks'
    /// executions report them.
    pub events: Option<EventSink>,
}

/// Where a run's incident events go.
pub type EventSink = Arc<dyn Fn(&StreamId, &IncidentEvent) + Send + Sync>;

/// Segments per chunk by default: a minute of the input per execution. Each execution
/// decodes a few seconds before its chunk for the lead-ins (about 5 s with the default
/// detectors, more to the keyframe before), so shorter chunks decode more twice; a chunk
/// of 60 segments with the 11 default detectors in their own branches writes about 3,700
/// history events, well inside a Standard execution's 25,000.
pub const DEFAULT_CHUNK_SEGMENTS: u64 = 60;
/// Chunk executions at once by default.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Executions a chunk gets by default before it is recorded as not analysed.
pub const DEFAULT_ATTEMPTS: u32 = 3;

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            granularity: Granularity::default(),
            encoding: Encoding::default(),
            chunk_segments: DEFAULT_CHUNK_SEGMENTS,
            concurrency: DEFAULT_CONCURRENCY,
            attempts: DEFAULT_ATTEMPTS,
            progress: None,
            events: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("granularity", &self.granularity)
            .field("encoding", &self.encoding)
            .field("chunk_segments", &self.chunk_segments)
            .field("concurrency", &self.concurrency)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// The result of a run (one execution per chunk), with what it cost.
#[derive(Clone, Debug)]
pub struct DistributedRun {
    pub report: StreamReport,
    /// The run's name: its executions' names start with it, and its objects are under
    /// `{prefix}{run_name}/`.
    pub run_name: String,
    /// The first chunk's execution.
    pub execution_arn: String,
    pub machine_type: MachineType,
    /// Chunks, and executions started (reruns and skips included).
    pub chunks: u64,
    pub executions: u64,
    /// Chunks recorded as not analysed, with why.
    pub skipped: Vec<String>,
    /// State transitions, from the executions' histories: states entered and tasks retried
    /// (Step Functions bills a retry as a transition); `None` where the service keeps no
    /// history (Express on AWS), in which case `transitions_from_definition` is the figure to
    /// use.
    pub transitions: Option<u64>,
    /// Tasks retried (aggregators waiting for earlier chunks, mostly), from the histories.
    pub retries: u64,
    pub transitions_from_definition: u64,
    pub history_events: Option<u64>,
    /// Lambda invocations that returned (successes and failures), from the histories.
    pub invocations: Option<u64>,
    /// The handoff counters every task returned, summed.
    pub handoff: HandoffMetrics,
    pub segments: u64,
    pub groups: u64,
    /// The client's wall time: upload, executions, reading the report.
    pub wall_seconds: f64,
    /// From the histories: the executions' own durations summed, and each one's; each
    /// top-level state's (`Convert`, `Detect`, `Aggregate`) wall time.
    pub execution_seconds: Option<f64>,
    pub execution_durations: Vec<f64>,
    pub stage_seconds: Vec<(String, f64)>,
    /// The first execution's start and the last one's end (Unix seconds), to match other
    /// logs against them.
    pub window: Option<(f64, f64)>,
    /// Each Lambda task: the function it invoked and how long it ran (started → ended).
    pub tasks: Vec<(String, f64)>,
    /// Per segment, from when the converter stored it to when the aggregator had applied
    /// its chunk, ms.
    pub latencies_ms: Vec<f64>,
    /// The converters' ranged reads of the input: requests and bytes.
    pub input_reads: u64,
    pub input_bytes: u64,
}

impl DistributedRun {
    /// A run of `report` with nothing counted yet.
    fn new(report: StreamReport, run_name: String, machine_type: MachineType, groups: u64) -> Self {
        DistributedRun {
            segments: report.coverage.segments,
            report,
            run_name,
            execution_arn: String::new(),
            machine_type,
            chunks: 0,
            executions: 0,
            skipped: Vec::new(),
            transitions: Some(0),
            retries: 0,
            transitions_from_definition: 0,
            history_events: Some(0),
            invocations: Some(0),
            handoff: HandoffMetrics::default(),
            groups,
            wall_seconds: 0.0,
            execution_seconds: Some(0.0),
            execution_durations: Vec::new(),
            stage_seconds: Vec::new(),
            window: None,
            tasks: Vec::new(),
            latencies_ms: Vec::new(),
            input_reads: 0,
            input_bytes: 0,
        }
    }
}

/// Lambda memory of a deployed function, MB: the infra templates' defaults
/// (`infra/distributed.yaml`), which the execution histories do not tell.
pub fn function_memory_mb(function: &str) -> f64 {
    if function.contains("converter") {
        2048.0
    } else if function.contains("aggregator") {
        512.0
    } else {
        1769.0
    }
}

impl DistributedRun {
    /// What the run used, as the cost model counts it, from its executions' histories:
    /// transitions (from the definition where there is no history), each execution's
    /// duration, each Lambda task's started → ended time as its billed duration at its
    /// function's memory ([`function_memory_mb`]), and the tasks' handoff requests.
    pub fn usage(&self) -> vqa_core::cost::Usage {
        let h = &self.handoff;
        let mut usage = vqa_core::cost::Usage {
            orchestration: vqa_core::topology::Orchestration::step_functions(self.machine_type),
            stream_seconds: self.report.coverage.analysed as f64 / 1e6,
            state_transitions: self.transitions.unwrap_or(self.transitions_from_definition),
            executions: self.executions,
            execution_seconds: self.execution_durations.clone(),
            s3_puts: h.puts + h.state_stores,
            s3_gets: h.gets + h.state_loads,
            s3_deletes: h.deletes,
            ..Default::default()
        };
        for (function, seconds) in &self.tasks {
            usage.add_lambda(*seconds, function_memory_mb(function));
        }
        usage
    }
}

/// Counts what `executions` used, from their histories (where the service keeps none, the
/// counts that need them become `None`).
async fn account(sfn: &Sfn, executions: &[String], run: &mut DistributedRun) {
    for arn in executions {
        run.executions += 1;
        if run.execution_arn.is_empty() {
            run.execution_arn = arn.clone();
        }
        match history(sfn, arn).await {
            Ok(events) => count_history(&events, run),
            Err(_) => {
                run.transitions = None;
                run.history_events = None;
                run.invocations = None;
                run.execution_seconds = None;
            }
        }
    }
}

/// A name Step Functions accepts (1–80 of letters, digits, `-`, `_`), unique per run.
fn run_name(stream: &StreamId) -> String {
    let clean: String = stream
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(50)
        .collect();
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{clean}-{millis}-{}", std::process::id())
}

/// Runs one input through the deployed state machine, one execution per chunk of
/// `options.chunk_segments` segments with at most `options.concurrency` at once, and returns
/// the same report the single process makes.
pub async fn analyze(
    sdk: &SdkConfig,
    path: &Path,
    stream: StreamId,
    config: &PipelineConfig,
    deployment: &Deployment,
    options: RunOptions,
) -> Result<DistributedRun, ClientError> {
    let started = Instant::now();
    // Bad input fails here, in one line, rather than in an execution.
    let duration = {
        let mut converter = vqa_converter::FfmpegConverter::open(path, stream.clone(), config)
            .map_err(|e| ClientError::Input(format!("{}: {e}", path.display())))?;
        // Chunks are planned from the duration: where the container declares none (a raw
        // stream), the packets say it.
        vqa_core::Converter::media(&converter)
            .duration
            .or_else(|| converter.scan_duration())
    };
    if options.chunk_segments == 0 || options.concurrency == 0 || options.attempts == 0 {
        return Err(ClientError::Input(
            "chunk segments, concurrency and attempts must each be at least 1".into(),
        ));
    }

    let sfn = Sfn::new(sdk);
    let (machine_type, definition) = describe(&sfn, &deployment.state_machine_arn).await?;
    let groups = check_groups(&definition, config, &deployment.state_machine_arn)?;
    let name = run_name(&stream);
    let layout = S3Layout {
        bucket: deployment.bucket.clone(),
        // Each run under its own prefix: a rerun after a failure never meets the failed
        // run's leftovers (which the bucket's lifecycle rule expires).
        prefix: format!("{}{name}/", deployment.prefix),
        granularity: options.granularity,
        encoding: options.encoding,
    };
    let length = config.segment_length();
    let chunks = Chunk::plan(
        duration.map(vqa_core::time::from_secs),
        length,
        options.chunk_segments,
    );
    // The most segments one execution carries: a chunk's (one more for an input a little
    // longer than it declares).
    check_chunk_limits(
        &stream,
        &layout,
        options.chunk_segments + 1,
        groups as u64,
        machine_type,
    )
    .map_err(|e| ClientError::Input(format!("{}: {e}", path.display())))?;

    let (s3, endpoint) = connect(sdk);
    let transport = S3Transport::new(s3, endpoint, layout.clone());
    for bucket in [&deployment.bucket, &deployment.results_bucket] {
        transport.check_bucket(bucket).await?;
    }
    let file_name = path
        .file_name()
        .map_or_else(|| "input".into(), |n| n.to_string_lossy().into_owned());
    let input_key = layout.input_key(&stream, &file_name);
    transport
        .upload_file(&deployment.bucket, &input_key, path)
        .await?;

    let results = ResultsLocation {
        bucket: deployment.results_bucket.clone(),
        key: format!("reports/{stream}/{name}.json"),
    };
    let job = stream_job(
        stream.clone(),
        format!("s3://{}/{input_key}", deployment.bucket),
        path.display().to_string(),
        config,
        layout,
        results.clone(),
    )
    .map_err(|e| ClientError::Input(e.to_string()))?;

    let runner = ChunkRunner {
        sfn: &sfn,
        machine: &deployment.state_machine_arn,
        name: &name,
        job: &job,
        // Express executions on AWS report their end only to a synchronous start (there is
        // no DescribeExecution for them); emulators lack the synchronous call and its
        // `sync-` host.
        express_sync: machine_type == MachineType::Express && sdk.endpoint_url().is_none(),
        attempts: options.attempts,
    };
    let total = chunks.len() as u64;
    let finished = std::sync::atomic::AtomicU64::new(0);
    let in_order = std::sync::Mutex::new(InOrder::<Vec<IncidentEvent>>::default());
    let mut outcomes: Vec<ChunkOutcome> = futures::stream::iter(chunks.iter().copied())
        .map(|chunk| {
            let (runner, finished, options, in_order, stream) =
                (&runner, &finished, &options, &in_order, &stream);
            async move {
                let mut outcome = runner.run(chunk).await?;
                let done = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if let Some(progress) = &options.progress {
                    progress(done, total);
                }
                let events = std::mem::take(&mut outcome.events);
                let mut in_order = in_order.lock().unwrap_or_else(|p| p.into_inner());
                for event in in_order.arrived(chunk.index, events).into_iter().flatten() {
                    if let Some(sink) = &options.events {
                        sink(stream, &event);
                    }
                }
                Ok::<_, ClientError>(outcome)
            }
        })
        // Chunks start in order, so the earliest unfinished chunk is always running: the
        // ones after it, waiting for it to be applied, cannot hold it up.
        .buffer_unordered(options.concurrency)
        .try_collect()
        .await?;

    let report = read_report(&transport, &results, &format!("run {name}")).await?;

    let mut run = DistributedRun::new(report, name.clone(), machine_type, groups as u64);
    run.chunks = total;
    outcomes.sort_by_key(|o| o.chunk);
    for outcome in &outcomes {
        run.skipped.extend(outcome.skipped.clone());
    }
    let executions: Vec<String> = outcomes
        .iter()
        .flat_map(|o| o.executions.iter().cloned())
        .collect();
    account(&sfn, &executions, &mut run).await;
    let (segments, groups) = (run.segments, run.groups);
    // Without histories: each chunk's share of the segments, as the definition implies.
    let per_chunk = segments.div_ceil(total.max(1));
    run.transitions_from_definition = total * state_transitions(per_chunk, groups);
    run.wall_seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

/// A stream's execution input, for its chunks to fill in; refused when it cannot fit in a
/// state's payload.
fn stream_job(
    stream: StreamId,
    input: String,
    input_name: String,
    config: &PipelineConfig,
    transport: S3Layout,
    results: ResultsLocation,
) -> Result<Job, vqa_deploy_lambda::payload::PayloadTooLarge> {
    let job = Job {
        stream,
        input,
        input_name,
        config: config.clone(),
        transport,
        results,
        chunk: Chunk::WHOLE,
        skip: None,
        live: None,
        preroll: Vec::new(),
    };
    check_size(
        "the execution input",
        &job,
        "shorten the configuration (the model path, the detector list)",
    )?;
    Ok(job)
}

/// The state machine's type and definition.
async fn describe(sfn: &Sfn, arn: &str) -> Result<(MachineType, Value), ClientError> {
    let machine = sfn
        .client
        .describe_state_machine()
        .state_machine_arn(arn)
        .send()
        .await
        .map_err(|e| sfn.error(&format!("state machine {arn}"), e))?;
    let machine_type = match machine.r#type() {
        StateMachineType::Express => MachineType::Express,
        _ => MachineType::Standard,
    };
    let definition: Value = serde_json::from_str(machine.definition()).unwrap_or(Value::Null);
    Ok((machine_type, definition))
}

/// What chunks' executions report, released in the chunks' order however their ends are
/// seen.
struct InOrder<T> {
    next: u64,
    waiting: std::collections::BTreeMap<u64, T>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder {
            next: 0,
            waiting: Default::default(),
        }
    }
}

impl<T> InOrder<T> {
    fn arrived(&mut self, chunk: u64, item: T) -> Vec<T> {
        self.waiting.insert(chunk, item);
        let mut ready = Vec::new();
        while let Some(item) = self.waiting.remove(&self.next) {
            ready.push(item);
            self.next += 1;
        }
        ready
    }
}

/// How one chunk's executions went.
struct ChunkOutcome {
    chunk: u64,
    /// The incidents its aggregator opened and closed, and the segments it applied.
    events: Vec<IncidentEvent>,
    segments: u64,
    /// Every execution started for it, in order.
    executions: Vec<String>,
    /// Why it was recorded as not analysed, if it was.
    skipped: Option<String>,
}

/// Starts a chunk's executions: reruns one that failed (deterministic artifact keys and the
/// aggregator's chunk cursor make a rerun neither lose nor repeat a segment), and once its
/// attempts are spent, records the chunk as not analysed with an execution that does only
/// that, so the stream's later chunks go on.
struct ChunkRunner<'a> {
    sfn: &'a Sfn,
    machine: &'a str,
    name: &'a str,
    job: &'a Job,
    express_sync: bool,
    attempts: u32,
}

impl ChunkRunner<'_> {
    async fn run(&self, chunk: Chunk) -> Result<ChunkOutcome, ClientError> {
        let mut outcome = ChunkOutcome {
            chunk: chunk.index,
            events: Vec::new(),
            segments: 0,
            executions: Vec::new(),
            skipped: None,
        };
        let mut job = self.job.clone();
        job.chunk = chunk;
        for attempt in 0..=self.attempts {
            let name = format!("{}-c{:05}-{attempt}", self.name, chunk.index);
            let input =
                serde_json::to_string(&job).map_err(|e| ClientError::Input(e.to_string()))?;
            let ended = if self.express_sync {
                run_sync_execution(self.sfn, self.machine, &name, input).await?
            } else {
                run_execution(self.sfn, self.machine, &name, input).await?
            };
            let (arn, error) = match ended {
                Ended::Succeeded { arn, output } => {
                    outcome.executions.push(arn);
                    outcome.events = output
                        .get("events")
                        .and_then(|e| serde_json::from_value(e.clone()).ok())
                        .unwrap_or_default();
                    outcome.segments = output.get("segments").and_then(Value::as_u64).unwrap_or(0);
                    return Ok(outcome);
                }
                Ended::Failed { arn, error } => (arn, error),
            };
            outcome.executions.push(arn);
            if error.error == SKIPPED_ERROR {
                // The state machine recorded the chunk as not analysed (damaged input).
                outcome.skipped = Some(format!(
                    "chunk {} could not be analysed: {}",
                    chunk.index,
                    error.message()
                ));
                return Ok(outcome);
            }
            if job.skip.is_some() {
                return Err(ClientError::Execution(format!(
                    "execution {name} failed recording chunk {} as not analysed: {}",
                    chunk.index,
                    error.message()
                )));
            }
            let rerun = attempt + 1 < self.attempts;
            tracing::warn!(
                "execution {name} failed ({}); {}",
                error.message(),
                if rerun {
                    "running the chunk again"
                } else {
                    "recording the chunk as not analysed"
                }
            );
            if !rerun {
                job.skip = Some(error);
            }
        }
        Err(ClientError::Execution(format!(
            "chunk {} of run {} did not end",
            chunk.index, self.name
        )))
    }
}

/// The stream report the last chunk of `what` wrote at `results`.
async fn read_report(
    transport: &S3Transport,
    results: &ResultsLocation,
    what: &str,
) -> Result<StreamReport, ClientError> {
    let body = transport
        .read_object(&results.bucket, &results.key)
        .await?
        .ok_or_else(|| {
            ClientError::Report(format!(
                "{what} ended but wrote no report at {}",
                results.uri()
            ))
        })?;
    serde_json::from_slice(&body)
        .map_err(|e| ClientError::Report(format!("report {}: {e}", results.uri())))
}

/// [`check_limits`] for chunks of up to `segments` segments of `stream` stored in `layout`.
fn check_chunk_limits(
    stream: &StreamId,
    layout: &S3Layout,
    segments: u64,
    groups: u64,
    machine_type: MachineType,
) -> Result<(), String> {
    let key = vqa_core::ArtifactKey::segment(stream, u64::MAX / 2);
    let handle = vqa_core::Handle {
        location: layout.location(&key),
        key,
    };
    let handle_bytes = serde_json::to_vec(&handle).map_or(0, |h| h.len() + 1);
    check_limits(segments, handle_bytes, groups, machine_type)
}

/// Refuses, before anything runs, an input one execution cannot carry: the converter's list
/// of segment handles must fit in a state's payload, and a Standard execution's history in
/// its event limit.
pub fn check_limits(
    segments: u64,
    handle_bytes: usize,
    groups: u64,
    machine_type: MachineType,
) -> Result<(), String> {
    // The converter's output also carries the stream summary: leave it 8 KiB.
    let handles = segments as usize * handle_bytes;
    if handles + 8 * 1024 > PAYLOAD_LIMIT {
        return Err(format!(
            "payload too large: chunks of about {segments} segments, whose handles take about {} \
             KiB, over Step Functions' 256 KiB payload limit; use shorter chunks \
             (--chunk-segments) or longer segments (segment_seconds)",
            handles / 1024
        ));
    }
    let events = history_events(segments, groups);
    if machine_type == MachineType::Standard && events > STANDARD_HISTORY_LIMIT {
        return Err(format!(
            "chunks too long for one Standard execution: about {segments} segments × {groups} \
             detector groups write about {events} history events, over Step Functions' limit of \
             {STANDARD_HISTORY_LIMIT}; use shorter chunks (--chunk-segments), or deploy with \
             fewer groups (`vqa deploy --detector-groups all`)"
        ));
    }
    Ok(())
}

/// The deployed definition must run exactly the configuration's detectors.
fn check_groups(
    definition: &Value,
    config: &PipelineConfig,
    arn: &str,
) -> Result<usize, ClientError> {
    let groups = deployed_groups(definition).ok_or_else(|| {
        ClientError::Deployment(format!(
            "state machine {arn} is not one vqa generated; deploy it with `vqa deploy`"
        ))
    })?;
    let mut deployed: Vec<String> = groups.iter().flatten().cloned().collect();
    deployed.sort();
    let mut wanted: Vec<String> = config.detectors.iter().map(|d| d.to_string()).collect();
    wanted.sort();
    if deployed != wanted {
        return Err(ClientError::Deployment(format!(
            "state machine {arn} runs detectors {}, the configuration enables {}; redeploy it with this configuration (`vqa deploy --config ...`) or change the configuration",
            deployed.join(","),
            wanted.join(",")
        )));
    }
    Ok(groups.len())
}

/// How an execution ended.
enum Ended {
    /// The execution's output: the aggregator's selected result.
    Succeeded {
        arn: String,
        output: Value,
    },
    Failed {
        arn: String,
        error: TaskError,
    },
}

impl Ended {
    /// From what DescribeExecution or StartSyncExecution says of an ended execution: its
    /// status (`SUCCEEDED`, `FAILED`, `TIMED_OUT`, ...), error, cause and output.
    fn from_status(
        arn: String,
        status: &str,
        error: Option<&str>,
        cause: Option<&str>,
        output: Option<&str>,
    ) -> Self {
        if status == "SUCCEEDED" {
            let output = output
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(Value::Null);
            return Ended::Succeeded { arn, output };
        }
        let error = TaskError {
            error: error.map_or_else(|| status.to_lowercase().replace('_', " "), str::to_string),
            cause: cause.unwrap_or_default().to_string(),
        };
        Ended::Failed { arn, error }
    }
}

/// Starts an execution and waits for its end.
async fn run_execution(
    sfn: &Sfn,
    machine: &str,
    name: &str,
    input: String,
) -> Result<Ended, ClientError> {
    let started = sfn
        .client
        .start_execution()
        .state_machine_arn(machine)
        .name(name)
        .input(input)
        .send()
        .await
        .map_err(|e| sfn.error(&format!("starting an execution of {machine}"), e))?;
    let arn = started.execution_arn().to_string();
    let mut wait = Duration::from_millis(100);
    loop {
        let d = sfn
            .client
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .map_err(|e| sfn.error(&format!("execution {name}"), e))?;
        match d.status() {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {}
            ended => {
                return Ok(Ended::from_status(
                    arn,
                    ended.as_str(),
                    d.error(),
                    d.cause(),
                    d.output(),
                ))
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

async fn run_sync_execution(
    sfn: &Sfn,
    machine: &str,
    name: &str,
    input: String,
) -> Result<Ended, ClientError> {
    let out = sfn
        .client
        .start_sync_execution()
        .state_machine_arn(machine)
        .name(name)
        .input(input)
        .send()
        .await
        .map_err(|e| sfn.error(&format!("running an execution of {machine}"), e))?;
    Ok(Ended::from_status(
        out.execution_arn().to_string(),
        out.status().as_str(),
        out.error(),
        out.cause(),
        out.output(),
    ))
}

async fn history(sfn: &Sfn, arn: &str) -> Result<Vec<HistoryEvent>, ClientError> {
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let page = sfn
            .client
            .get_execution_history()
            .execution_arn(arn)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sfn.error("execution history", e))?;
        events.extend(page.events().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(events);
        }
    }
}

/// Counts states entered and Lambda invocations, sums the tasks' handoff counters, and
/// times the execution, its top-level states, each Lambda task and each segment's latency.
fn count_history(events: &[HistoryEvent], run: &mut DistributedRun) {
    use std::collections::HashMap;
    let by_id: HashMap<i64, &HistoryEvent> = events.iter().map(|e| (e.id(), e)).collect();
    let secs = |e: &HistoryEvent| e.timestamp().as_secs_f64();
    let mut transitions = 0;
    let (mut task_states, mut tasks_scheduled) = (0u64, 0u64);
    let mut invocations = 0;
    let mut entered: HashMap<String, f64> = HashMap::new();
    let mut stored_at: Vec<u64> = Vec::new();
    let mut written_at: Option<u64> = None;
    for e in events {
        let kind = e.r#type().as_str();
        // A retried task runs its state's step again, which Step Functions bills as a
        // transition too: count each task scheduled after the first of its state.
        match kind {
            "TaskStateEntered" => task_states += 1,
            "TaskScheduled" => tasks_scheduled += 1,
            _ => {}
        }
        if kind.ends_with("StateEntered") {
            transitions += 1;
            if let Some(d) = e.state_entered_event_details() {
                entered.insert(d.name().to_string(), secs(e));
            }
        }
        if let Some(d) = e.state_exited_event_details() {
            if matches!(d.name(), "Convert" | "Detect" | "Aggregate") {
                if let Some(t0) = entered.get(d.name()) {
                    run.stage_seconds.push((d.name().to_string(), secs(e) - t0));
                }
            }
        }
        if matches!(kind, "TaskSucceeded" | "TaskFailed" | "TaskTimedOut") {
            invocations += 1;
            // TaskSucceeded ← TaskStarted ← TaskScheduled (which names the function).
            let started = by_id.get(&e.previous_event_id());
            let scheduled = started.and_then(|s| by_id.get(&s.previous_event_id()));
            let function = scheduled
                .and_then(|s| s.task_scheduled_event_details())
                .and_then(|d| serde_json::from_str::<Value>(d.parameters()).ok())
                .and_then(|p| {
                    p.get("FunctionName")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            if let (Some(started), Some(function)) = (started, function) {
                let name = function.rsplit(':').next().unwrap_or(&function).to_string();
                run.tasks.push((name, secs(e) - secs(started)));
            }
        }
        let Some(output) = e
            .task_succeeded_event_details()
            .and_then(|d| d.output())
            .and_then(|o| serde_json::from_str::<Value>(o).ok())
        else {
            continue;
        };
        if let Some(handoff) = output
            .pointer("/Payload/handoff")
            .and_then(|h| serde_json::from_value::<HandoffMetrics>(h.clone()).ok())
        {
            run.handoff = run.handoff.plus(&handoff);
        }
        let count = |field: &str| output.pointer(field).and_then(Value::as_u64).unwrap_or(0);
        run.input_reads += count("/Payload/input_reads");
        run.input_bytes += count("/Payload/input_bytes");
        if let Some(times) = output
            .pointer("/Payload/stored_at_ms")
            .and_then(|t| serde_json::from_value::<Vec<u64>>(t.clone()).ok())
        {
            stored_at = times;
        }
        if let Some(t) = output
            .pointer("/Payload/written_at_ms")
            .and_then(Value::as_u64)
        {
            written_at = Some(t);
        }
    }
    if let Some(written) = written_at {
        run.latencies_ms
            .extend(stored_at.iter().map(|s| written.saturating_sub(*s) as f64));
    }
    if let (Some(first), Some(last)) = (events.first(), events.last()) {
        let (start, end) = (secs(first), secs(last));
        run.window = Some(match run.window {
            Some((a, b)) => (a.min(start), b.max(end)),
            None => (start, end),
        });
        run.execution_durations.push(end - start);
        run.execution_seconds = run.execution_seconds.map(|s| s + end - start);
    }
    let add = |total: Option<u64>, n: u64| total.map(|t| t + n);
    run.retries += tasks_scheduled.saturating_sub(task_states);
    run.transitions = add(
        run.transitions,
        transitions + tasks_scheduled.saturating_sub(task_states),
    );
    run.history_events = add(run.history_events, events.len() as u64);
    run.invocations = add(run.invocations, invocations);
}

/// Creates the state machine, or updates its definition and role when it exists; returns
/// its ARN.
pub async fn deploy(
    sdk: &SdkConfig,
    name: &str,
    definition: &str,
    role_arn: &str,
    machine_type: MachineType,
) -> Result<String, ClientError> {
    let sfn = Sfn::new(sdk);
    let mut token = None;
    loop {
        let page = sfn
            .client
            .list_state_machines()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| sfn.error("listing state machines", e))?;
        if let Some(existing) = page.state_machines().iter().find(|m| m.name() == name) {
            let arn = existing.state_machine_arn().to_string();
            if existing.r#type().as_str() != machine_type.as_aws() {
                return Err(ClientError::Deployment(format!(
                    "state machine {name} exists as {}; a type cannot change: deploy under another --name",
                    existing.r#type().as_str()
                )));
            }
            sfn.client
                .update_state_machine()
                .state_machine_arn(&arn)
                .definition(definition)
                .role_arn(role_arn)
                .send()
                .await
                .map_err(|e| sfn.error(&format!("updating state machine {name}"), e))?;
            return Ok(arn);
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let created = sfn
        .client
        .create_state_machine()
        .name(name)
        .definition(definition)
        .role_arn(role_arn)
        .r#type(StateMachineType::from(machine_type.as_aws()))
        .send()
        .await
        .map_err(|e| sfn.error(&format!("creating state machine {name}"), e))?;
    Ok(created.state_machine_arn().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_are_valid_execution_names() {
        let n = run_name(&StreamId::new("my clip/ü"));
        assert!(n.len() <= 80);
        assert!(n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert!(n.starts_with("my-clip--"));
    }

    #[test]
    fn inputs_one_execution_cannot_carry_are_refused_before_it_starts() {
        // 1,000 segments × 150-byte handles = 146 KiB: fits; 2,000 (293 KiB) does not.
        assert!(check_limits(1_000, 150, 1, MachineType::Express).is_ok());
        let err = check_limits(2_000, 150, 1, MachineType::Express).unwrap_err();
        assert!(
            err.starts_with("payload too large") && err.contains("292 KiB"),
            "{err}"
        );
        // Standard: 18 + 1,000 × (6 + 5 × 4) = 26,018 events > 25,000; 3 groups: 21,018.
        let err = check_limits(1_000, 150, 4, MachineType::Standard).unwrap_err();
        assert!(err.contains("26018 history events"), "{err}");
        assert!(check_limits(1_000, 150, 3, MachineType::Standard).is_ok());
        assert!(check_limits(1_000, 150, 4, MachineType::Express).is_ok());
    }
}
