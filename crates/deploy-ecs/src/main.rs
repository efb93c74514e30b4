//! `vqa`: analyse audio/video inputs for perceptual defects, in one process or through the
//! distributed topology (Lambda functions under Step Functions), and compare what each costs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use vqa_core::{DetectorName, IncidentEvent, PipelineConfig, StreamReport};
use vqa_deploy_ecs::notify::Notifiers;
use vqa_deploy_ecs::{
    bench, bench_report, compare, cost, eval, open_input, run, shown, stream_id_for, summary,
    RunError, DEFAULT_IN_FLIGHT,
};
use vqa_deploy_lambda::client::{Deployment, RunOptions};
use vqa_deploy_lambda::state_machine::{self, DetectorGroups, MachineOptions, MachineType};

/// Exit status when the report covers only part of the input.
const EXIT_PARTIAL: u8 = 3;

#[derive(Parser)]
#[command(
    name = "vqa",
    version,
    about = "Find perceptual defects (freeze, black, blockiness, blur, silence, loudness, ...) in audio/video inputs",
    long_about = "Find perceptual defects in audio/video inputs: frozen, black, blocky, corrupt or blurred \
                  pictures, colour bars, dropped frames, silent, too loud or too quiet or clipped audio, and \
                  A/V offset on sync patterns, with their start and end times.\n\nThe input is decoded with FFmpeg and cut into \
                  segments (1 s by default); detectors look at one segment at a time and an aggregator joins \
                  what they saw into incidents that can span many segments.\n\nThe same stages run in one \
                  process (the default) or as Lambda functions under a Step Functions state machine, handing \
                  segments over through S3 (--topology distributed; see `vqa state-machine` and `vqa deploy`); \
                  `vqa bench` measures and prices both.\n\n`vqa monitor` watches many live streams (UDP, SRT, \
                  RTMP, HLS) in one process and notifies incidents as they open and close; `vqa router` \
                  spreads the detectors over several monitors (detector shards).",
    after_help = "Exit status: 0 the whole input was analysed; 1 the input could not be analysed (the error \
                  says why); 2 bad command line; 3 only part of the input could be analysed (truncated or \
                  damaged input): the report covers that part and says so."
)]
struct Cli {
    /// More logging on stderr (-v: incidents as they open and close; -vv: debug). RUST_LOG
    /// overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// A summary for people.
    Text,
    /// The stream report as JSON.
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Topology {
    /// One process, in-memory handoff (the ECS deployment).
    Single,
    /// The deployed (or emulated) Lambda functions under Step Functions, handing off
    /// through S3. Reads VQA_STATE_MACHINE_ARN, VQA_BUCKET, VQA_RESULTS_BUCKET, VQA_PREFIX
    /// and the usual AWS configuration (AWS_ENDPOINT_URL for an emulator).
    Distributed,
}

#[derive(clap::Args)]
struct DistributedArgs {
    #[command(flatten)]
    deployment: DeploymentArgs,

    /// Distributed handoff: one S3 object per segment, or one per picture (plus a manifest)
    /// as the original design uploaded frames.
    #[arg(long, value_name = "segment|frame", default_value = "segment")]
    granularity: vqa_transport_s3::Granularity,

    /// Distributed handoff encoding: the wire form as is, or zstd-compressed.
    #[arg(long, value_name = "raw|zstd", default_value = "raw")]
    encoding: vqa_transport_s3::Encoding,
}

#[derive(clap::Args)]
struct DeploymentArgs {
    /// The deployed state machine (the stack's StateMachineArn output).
    #[arg(long, env = "VQA_STATE_MACHINE_ARN", value_name = "ARN")]
    state_machine: Option<String>,

    /// The intermediate bucket (inputs and artifacts).
    #[arg(long, env = "VQA_BUCKET", value_name = "NAME")]
    bucket: Option<String>,

    /// The bucket the aggregator writes reports to.
    #[arg(long, env = "VQA_RESULTS_BUCKET", value_name = "NAME")]
    results_bucket: Option<String>,

    /// Key prefix in the intermediate bucket.
    #[arg(
        long,
        env = "VQA_PREFIX",
        value_name = "PREFIX",
        default_value = "vqa/"
    )]
    prefix: String,

    /// AWS endpoint (an emulator's, e.g. http://127.0.0.1:5001); overrides AWS_ENDPOINT_URL.
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

impl DeploymentArgs {
    fn deployment(&self) -> anyhow::Result<Deployment> {
        self.deployment_with(self.state_machine.as_deref())
    }

    /// The deployment with another state machine over the same buckets.
    fn deployment_with(&self, state_machine: Option<&str>) -> anyhow::Result<Deployment> {
        Ok(Deployment::new(
            state_machine,
            self.bucket.as_deref(),
            self.results_bucket.as_deref(),
            &self.prefix,
        )?)
    }
}

#[derive(clap::Args)]
struct MachineArgs {
    /// How detectors are split into parallel branches: `each` (one Lambda invocation per
    /// detector and segment, the original design), `all` (one), or groups such as
    /// `freeze,black;silence,loudness`.
    #[arg(long, value_name = "SPEC", default_value = state_machine::DEFAULT_GROUPS)]
    detector_groups: String,

    /// Segments whose detectors run at once (the Map state's MaxConcurrency).
    #[arg(long, value_name = "N", default_value_t = state_machine::DEFAULT_MAP_CONCURRENCY)]
    map_concurrency: u32,
}

impl MachineArgs {
    fn options(&self, config: &PipelineConfig) -> anyhow::Result<MachineOptions> {
        Ok(MachineOptions {
            groups: DetectorGroups::parse(&self.detector_groups, config)
                .map_err(anyhow::Error::msg)
                .context("--detector-groups")?,
            map_concurrency: self.map_concurrency,
        })
    }
}

#[derive(clap::Args)]
struct PipelineArgs {
    /// Pipeline configuration file (TOML). Fields not given keep their defaults; `vqa config`
    /// prints them all.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Run only these detectors (comma-separated, e.g. freeze,black,silence; all names in
    /// `vqa config`). Overrides the file.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    detectors: Option<Vec<String>>,

    /// Segment length in seconds. Overrides the file.
    #[arg(long, value_name = "SECONDS")]
    segment_seconds: Option<f64>,

    /// Video decoder threads (0: as many as FFmpeg sees fit). Overrides the file.
    #[arg(long, value_name = "N")]
    decoder_threads: Option<usize>,
}

/// Where notifications go besides the JSON lines: the same flags on analyze, monitor and router.
#[derive(clap::Args)]
struct SinkArgs {
    /// Also POST each notification (the same JSON) to this URL, retrying with backoff on
    /// connection errors, 429 and 5xx. Repeatable.
    #[arg(long, value_name = "URL")]
    webhook: Vec<String>,

    /// Also publish each notification to this Amazon SNS topic (ARN; credentials, region
    /// and endpoint from the AWS configuration). Repeatable.
    #[arg(long, value_name = "TOPIC_ARN")]
    sns: Vec<String>,
}

impl SinkArgs {
    /// Every destination of a run's notifications: JSON lines to `lines` (`-`: stdout), then
    /// the webhooks and SNS topics; `report` is the report location notifications carry.
    async fn notifiers(
        &self,
        lines: Option<&Path>,
        report: Option<String>,
        endpoint: Option<&str>,
    ) -> anyhow::Result<Notifiers> {
        let mut notifiers = Notifiers::new(report);
        if let Some(path) = lines {
            notifiers.add_lines(path)?;
        }
        for url in &self.webhook {
            notifiers.add_webhook(url)?;
        }
        if !self.sns.is_empty() {
            let sdk = vqa_transport_s3::aws_config(endpoint).await;
            for topic in &self.sns {
                notifiers.add_sns(topic, &sdk)?;
            }
        }
        Ok(notifiers)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Analyse one input and report its incidents.
    Analyze {
        /// The audio/video file to analyse (any format FFmpeg reads), or an s3://bucket/key
        /// object (fetched first; credentials and endpoint from the usual AWS configuration).
        input: PathBuf,

        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,

        /// Also write the stream report as JSON to this file, or to an s3://bucket/key object.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,

        /// Never show a progress bar (it is shown only when stderr is a terminal).
        #[arg(long)]
        no_progress: bool,

        /// Where the stages run.
        #[arg(long, value_enum, default_value_t = Topology::Single)]
        topology: Topology,

        /// Write one JSON line per incident opened and closed, as soon as it is known, to
        /// this file (`-`: stdout, before the report).
        #[arg(long, value_name = "FILE")]
        notify: Option<PathBuf>,

        #[command(flatten)]
        sinks: SinkArgs,

        #[command(flatten)]
        distributed: DistributedArgs,

        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Monitor live streams listed in a file, many per process: decode and analyse them as
    /// they arrive and notify incidents as they open and close.
    #[command(
        long_about = "Monitor live streams listed in a file, many per process: decode and analyse them as \
                      they arrive and notify incidents as they open and close.\n\nInputs are URLs FFmpeg \
                      reads within converter.allowed_protocols: MPEG-TS over UDP/RTP, SRT, RTMP, HLS over \
                      HTTP(S). A stream that stops sending is an input_loss incident; it is reconnected with \
                      backoff and monitoring resumes when it is back. Decoding and detection for all streams \
                      run on one pool of worker threads; queues are bounded in media time; when analysis falls \
                      behind real time the lag is reported and the costliest detectors see fewer pictures.\n\n\
                      The list is TOML:\n\n  [monitor]            # optional: workers, queue_seconds, shed_after, shed,\n  \
                      #                      reconnect_min, reconnect_max, allow_local_files, report_every\n  [defaults]           \
                      # pipeline configuration for every stream (`vqa config` keys)\n  [[stream]]\n  id = \"news\"\n  \
                      url = \"udp://239.0.0.1:5000\"\n  detectors = [\"freeze\", \"black\"]   # optional\n  \
                      [stream.config]      # optional overrides for this stream\n\nEdit the file while vqa runs: \
                      streams added, removed or changed are started, stopped or restarted within a second.",
        after_help = "Stops on Ctrl-C or SIGTERM (or --duration, --until-done): open incidents are closed and \
                      every report written. Exit status: 0; 1 if the list is invalid at start or a stream could \
                      not be monitored at all (the error names it)."
    )]
    Monitor {
        /// The stream list (TOML). Optional with --control (the list then comes over HTTP;
        /// a file with only [monitor] settings can still set them).
        list: Option<PathBuf>,

        /// Also accept stream lists over HTTP on --listen: PUT /streams replaces the list,
        /// GET /streams shows it, GET /reports/ID serves a finished stream's report. This
        /// is how `vqa router` drives detector shards; listen on a private address, and set
        /// VQA_CONTROL_TOKEN (the same for the router) to require it as a bearer token.
        #[arg(long, requires = "listen")]
        control: bool,

        /// Where the JSON lines of incidents opened and closed go (`-`: stdout).
        #[arg(long, value_name = "FILE", default_value = "-")]
        notify: PathBuf,

        #[command(flatten)]
        sinks: SinkArgs,

        /// Write each stream's report to DIR/<id>.json when it stops (removed from the list,
        /// ended, or the monitor stops).
        #[arg(long, value_name = "DIR")]
        reports: Option<PathBuf>,

        /// Serve Prometheus metrics at /metrics and a health check at /healthz on this
        /// address, e.g. 0.0.0.0:9090.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,

        /// Stop after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,

        /// Stop once every stream has ended (local files replayed with allow_local_files;
        /// live inputs never end, they reconnect).
        #[arg(long)]
        until_done: bool,

        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Drive detector shards: assign each stream's detectors to `vqa monitor --control`
    /// processes (each decodes the stream itself and runs its share of the detectors),
    /// relay their notifications and merge their reports into one report per stream.
    #[command(
        after_help = "Shards file (TOML):\n\n  [[shard]]\n  name = \"video\"\n  url = \"http://10.0.0.5:9090\"   \
                            # the shard's --listen\n  detectors = [\"freeze\", \"black\", \"blockiness\", \"blur\", \
                            \"colorbars\", \"corruption\", \"frame_drop\"]\n  [[shard]]\n  name = \"audio\"\n  \
                            url = \"http://10.0.0.6:9090\"\n  detectors = [\"silence\", \"loudness\", \"clipping\", \"av_sync\"]\n\n\
                            Start each shard as `vqa monitor --control --listen ADDR --webhook http://ROUTER/notify` \
                            (ROUTER: this router's --listen). Each detector of a stream goes to the first shard \
                            that lists it."
    )]
    Router {
        /// The stream list (the `vqa monitor` format), reloaded when edited.
        list: PathBuf,

        /// The shards file.
        #[arg(long, value_name = "FILE")]
        shards: PathBuf,

        /// Where shards POST their notifications (/notify) and /healthz is served.
        #[arg(long, value_name = "ADDR")]
        listen: String,

        /// Where the JSON lines of incidents opened and closed go (`-`: stdout).
        #[arg(long, value_name = "FILE", default_value = "-")]
        notify: PathBuf,

        #[command(flatten)]
        sinks: SinkArgs,

        /// Write each stream's merged report to DIR/<id>.json once every shard finished it.
        #[arg(long, value_name = "DIR")]
        reports: Option<PathBuf>,

        /// Stop after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,

        /// Stop once every stream's merged report is written.
        #[arg(long)]
        until_done: bool,

        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Print the Step Functions state machine (Amazon States Language) for a configuration,
    /// with ${ConverterFunctionArn}, ${DetectorFunctionArn} and ${AggregatorFunctionArn}
    /// placeholders (CloudFormation's DefinitionSubstitutions fill them).
    StateMachine {
        #[command(flatten)]
        machine: MachineArgs,

        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Create or update the state machine for a configuration (aws-sdk-sfn), and print the
    /// environment `vqa analyze --topology distributed` needs.
    Deploy {
        /// The state machine's name.
        #[arg(long, default_value = "vqa")]
        name: String,

        /// Standard (exactly once, billed per state transition) or Express (up to 5 min,
        /// billed per request and duration).
        #[arg(
            long = "type",
            value_name = "standard|express",
            default_value = "standard"
        )]
        machine_type: MachineType,

        #[arg(long, env = "VQA_CONVERTER_ARN", value_name = "ARN")]
        converter_arn: String,

        #[arg(long, env = "VQA_DETECTOR_ARN", value_name = "ARN")]
        detector_arn: String,

        #[arg(long, env = "VQA_AGGREGATOR_ARN", value_name = "ARN")]
        aggregator_arn: String,

        /// The role Step Functions assumes to invoke the functions.
        #[arg(long, env = "VQA_STATES_ROLE_ARN", value_name = "ARN")]
        role_arn: String,

        #[command(flatten)]
        machine: MachineArgs,

        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Print the effective pipeline configuration (defaults, the file and flags applied) as TOML.
    Config {
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Score the detectors on a labelled corpus, side by side with FFmpeg's own filters.
    ///
    /// The corpus is a directory with clips and a corpus.json listing their defects, as
    /// `vqa-make-clip --corpus DIR` writes it. Exit status: 0 every clip was scored (whatever
    /// the scores); 1 the corpus could not be read or a clip could not be analysed.
    Eval {
        /// The corpus directory.
        corpus: PathBuf,

        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,

        /// Do not run FFmpeg's filters (the ffmpeg CLI is then not needed).
        #[arg(long)]
        no_ffmpeg: bool,

        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Run the input through each topology, measure what each used, and price it.
    ///
    /// Variants: single (one process, in-memory handoff), standard-segment,
    /// standard-frame (one S3 object per picture, as the original design),
    /// standard-frame-zstd, express-segment. The distributed ones run on the deployed state
    /// machines (--state-machine for Standard, --express-state-machine for Express); by
    /// default every variant whose state machine is configured runs. Costs come from the
    /// price table (prices/aws-us-east-1.toml, or --prices).
    ///
    /// With --speed: decode speed alone and with the detectors instead (for one-core
    /// figures: `taskset -c 0 vqa bench --speed INPUT`).
    Bench {
        /// The audio/video file to measure on.
        input: PathBuf,

        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,

        /// Variants to run, comma-separated (default: those that are configured).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        variants: Option<Vec<String>>,

        /// Streams for the monthly figures.
        #[arg(long, value_name = "N", default_value_t = 100)]
        streams: u64,

        /// Price table (TOML, as prices/aws-us-east-1.toml).
        #[arg(long, value_name = "FILE")]
        prices: Option<PathBuf>,

        /// Also write the comparison as a self-contained HTML page with charts.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,

        /// The deployed Express state machine, for the express-* variants.
        #[arg(long, env = "VQA_EXPRESS_STATE_MACHINE_ARN", value_name = "ARN")]
        express_state_machine: Option<String>,

        #[command(flatten)]
        deployment: DeploymentArgs,

        /// Measure decode speed alone and with the detectors (one process) instead.
        #[arg(long)]
        speed: bool,

        /// Measure live monitoring instead: replay the input as this many live streams at
        /// once (comma-separated counts, one run each, e.g. 8,10,12), paced at real time,
        /// and report which counts the cores keep up with, memory per stream and the
        /// latency of segments and alerts.
        #[arg(long, value_name = "COUNTS", value_delimiter = ',')]
        live: Option<Vec<usize>>,

        /// With --live: cores to run on (the process is pinned to them).
        #[arg(long, value_name = "N", default_value_t = 1)]
        cpus: usize,

        /// With --live: seconds per run.
        #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
        seconds: f64,

        #[command(flatten)]
        pipeline: PipelineArgs,
    },
}

impl PipelineArgs {
    fn load(&self) -> anyhow::Result<PipelineConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("{}: cannot read the configuration file", path.display())
                })?;
                PipelineConfig::from_toml(&text)
                    .with_context(|| format!("{}: fix the configuration", path.display()))?
            }
            None => PipelineConfig::default(),
        };
        if let Some(list) = &self.detectors {
            config.detectors = list
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.parse::<DetectorName>())
                .collect::<Result<_, _>>()
                .context("--detectors")?;
        }
        if let Some(s) = self.segment_seconds {
            config.segment_seconds = s;
        }
        if let Some(n) = self.decoder_threads {
            config.converter.decoder_threads = n;
        }
        config.validate().context("invalid settings")?;
        Ok(config)
    }
}

fn init_logging(verbose: u8) {
    // The AWS SDK warns at length while it looks for credentials in places that have none
    // (instance metadata); a missing credential is reported once, as vqa's error.
    let default = match verbose {
        0 => "warn,aws_config=error",
        1 => "info,aws_config=error",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn progress_bar(duration: Option<f64>, hidden: bool) -> Option<ProgressBar> {
    if hidden || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match duration {
        Some(d) => {
            let bar = ProgressBar::new((d * 1000.0) as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {percent:>3}%  eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        }
        None => ProgressBar::new_spinner(),
    };
    bar.set_message("analysing");
    Some(bar)
}

/// Fails early, before a long analysis, if the report could not be written.
fn check_writable(path: &Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{}: the directory {} does not exist; create it or choose another --out",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

struct AnalyzeArgs<'a> {
    input: &'a Path,
    notify: Option<&'a Path>,
    sinks: &'a SinkArgs,
    format: Format,
    out: Option<&'a Path>,
    no_progress: bool,
    topology: Topology,
    distributed: &'a DistributedArgs,
}

/// `s3://bucket/key` split, for inputs and reports on S3 (the ECS task's default).
fn s3_location(path: &Path) -> Option<(String, String)> {
    let (bucket, key) = vqa_deploy_lambda::handlers::parse_s3_uri(path.to_str()?)?;
    Some((bucket.to_string(), key.to_string()))
}

async fn s3_transport() -> vqa_transport_s3::S3Transport {
    let sdk = vqa_transport_s3::aws_config(None).await;
    let (client, endpoint) = vqa_transport_s3::connect(&sdk);
    vqa_transport_s3::S3Transport::new(client, endpoint, vqa_transport_s3::S3Layout::new("", ""))
}

async fn analyze(args: AnalyzeArgs<'_>, config: PipelineConfig) -> anyhow::Result<ExitCode> {
    let input = args.input;
    let out_s3 = args.out.and_then(s3_location);
    if let (Some(out), None) = (args.out, &out_s3) {
        check_writable(out)?;
    }
    // An input on S3 is fetched to a temporary file first; the report names the URI.
    let scratch = tempfile::tempdir().context("cannot create a temporary directory")?;
    let local = match s3_location(input) {
        Some((bucket, key)) => {
            let name = Path::new(&key)
                .file_name()
                .map_or_else(|| "input".into(), |n| n.to_os_string());
            let local = scratch.path().join(name);
            s3_transport()
                .await
                .download_file(&bucket, &key, &local)
                .await?;
            local
        }
        None => input.to_path_buf(),
    };
    let notifiers = args
        .sinks
        .notifiers(
            args.notify,
            args.out.map(shown),
            args.distributed.deployment.endpoint_url.as_deref(),
        )
        .await?;
    if !notifiers.is_empty() && args.topology == Topology::Distributed {
        bail!(
            "--notify/--webhook/--sns: in the distributed topology the aggregator function \
             notifies, to the SNS topic it was deployed with (VQA_NOTIFY_TOPIC_ARN, the \
             template's NotifyTopicArn)"
        );
    }
    let notifiers = std::sync::Arc::new(notifiers);
    let mut report = match args.topology {
        Topology::Single => {
            analyze_single(&local, args.no_progress, &config, notifiers.clone()).await?
        }
        Topology::Distributed => analyze_distributed(&local, args.distributed, &config).await?,
    };
    // The run has ended and dropped its event sink: wait for the webhooks to deliver.
    if let Ok(notifiers) = std::sync::Arc::try_unwrap(notifiers) {
        for (name, stats) in notifiers.finish() {
            if stats.failed > 0 {
                eprintln!(
                    "vqa: {name}: {} of {} notifications not delivered",
                    stats.failed,
                    stats.failed + stats.delivered
                );
            }
        }
    }
    report.input = shown(input);
    match (&out_s3, args.out) {
        (Some((bucket, key)), _) => {
            let json = serde_json::to_vec_pretty(&report)?;
            s3_transport()
                .await
                .write_object(bucket, key, json.into(), "application/json")
                .await?;
        }
        (None, Some(out)) => vqa_deploy_ecs::write_report(out, &report)
            .with_context(|| format!("{}: cannot write the report", out.display()))?,
        (None, None) => {}
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", summary::render(&report)),
    }
    if report.complete {
        Ok(ExitCode::SUCCESS)
    } else {
        let why = report
            .warnings
            .first()
            .map(String::as_str)
            .unwrap_or("the input could not be read to the end");
        eprintln!("vqa: error: {}: only partly analysed: {why}", shown(input));
        Ok(ExitCode::from(EXIT_PARTIAL))
    }
}

async fn analyze_single(
    input: &Path,
    no_progress: bool,
    config: &PipelineConfig,
    notifiers: std::sync::Arc<Notifiers>,
) -> anyhow::Result<StreamReport> {
    let stream = stream_id_for(input);
    let converter = open_input(input, stream.clone(), config)
        .map_err(|e| anyhow::anyhow!("{}: {e}", shown(input)))?;
    let bar = progress_bar(vqa_core::Converter::media(&converter).duration, no_progress);
    let progress = bar.clone().map(|b| -> vqa_deploy_ecs::ProgressSink {
        Box::new(move |s| b.set_position((s * 1000.0) as u64))
    });
    let events: vqa_deploy_ecs::EventSink = Box::new(move |stream, event| {
        match event {
            IncidentEvent::Opened {
                kind,
                channel,
                start,
            } => {
                tracing::info!(%stream, %kind, ?channel, start = vqa_core::time::to_secs(*start), "incident opened")
            }
            IncidentEvent::Closed(i) => tracing::info!(
                %stream,
                kind = %i.kind,
                channel = ?i.channel,
                start = vqa_core::time::to_secs(i.start),
                end = vqa_core::time::to_secs(i.end),
                "incident closed"
            ),
        }
        notifiers.send(stream, event);
    });
    let analysis = run(
        converter,
        config,
        stream,
        DEFAULT_IN_FLIGHT,
        progress,
        Some(events),
    )
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match analysis {
        Ok(a) => Ok(a.report),
        Err(RunError::Open(e)) => bail!("{}: {e}", shown(input)),
        Err(RunError::Model(e)) => bail!("{e}"),
        Err(e) => bail!("{}: {e}", shown(input)),
    }
}

async fn analyze_distributed(
    input: &Path,
    args: &DistributedArgs,
    config: &PipelineConfig,
) -> anyhow::Result<StreamReport> {
    let deployment = args.deployment.deployment()?;
    let sdk = vqa_transport_s3::aws_config(args.deployment.endpoint_url.as_deref()).await;
    let options = RunOptions {
        granularity: args.granularity,
        encoding: args.encoding,
    };
    // An execution reports nothing until it ends: a spinner says it is under way.
    let spinner = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!(
            "running {} through the state machine",
            shown(input)
        ));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let run = vqa_deploy_lambda::client::analyze(
        &sdk,
        input,
        stream_id_for(input),
        config,
        &deployment,
        options,
    )
    .await;
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let run = run?;
    let h = &run.handoff;
    let transitions = match run.transitions {
        Some(n) => format!("{n} state transitions"),
        None => format!(
            "{} state transitions (counted from the definition: no history)",
            run.transitions_from_definition
        ),
    };
    eprintln!(
        "vqa: {} execution {} in {:.1} s: {} segments, {transitions}, {} Lambda invocations, \
         {} S3 requests ({} PUT, {} GET, {} DELETE), {:.1} MB sent or received",
        run.machine_type,
        run.execution_arn.rsplit(':').next().unwrap_or_default(),
        run.wall_seconds,
        run.segments,
        run.invocations
            .map_or_else(|| "?".into(), |n| n.to_string()),
        h.requests(),
        h.puts + h.state_stores,
        h.gets + h.state_loads,
        h.deletes,
        h.copied_bytes as f64 / 1e6
    );
    Ok(run.report)
}

struct BenchArgs {
    variants: Option<Vec<String>>,
    streams: u64,
    prices: Option<PathBuf>,
    html: Option<PathBuf>,
    express_state_machine: Option<String>,
    deployment: DeploymentArgs,
}

/// `vqa bench`: every variant on the same input, measured and priced.
async fn bench_topologies(
    input: &Path,
    format: Format,
    args: BenchArgs,
    config: &PipelineConfig,
) -> anyhow::Result<ExitCode> {
    let prices = match &args.prices {
        Some(path) => cost::PriceTable::load(path)?,
        None => cost::PriceTable::shipped(),
    };
    if let Some(html) = &args.html {
        check_writable(html)?;
    }
    let (standard, express) = (
        args.deployment.state_machine.as_deref(),
        args.express_state_machine.as_deref(),
    );
    let variants = match &args.variants {
        Some(names) => names
            .iter()
            .map(|n| compare::Variant::named(n.trim(), standard, express))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)
            .context("--variants")?,
        None => compare::Variant::defaults(standard, express),
    };
    let distributed = variants
        .iter()
        .any(|v| matches!(v.kind, compare::VariantKind::Distributed { .. }));
    let (deployment, sdk) = if distributed {
        let deployment = args.deployment.deployment_with(standard.or(express))?;
        let sdk = vqa_transport_s3::aws_config(args.deployment.endpoint_url.as_deref()).await;
        (Some(deployment), Some(sdk))
    } else if args.variants.is_none() {
        eprintln!(
            "vqa: bench: no state machine configured (VQA_STATE_MACHINE_ARN, \
             VQA_EXPRESS_STATE_MACHINE_ARN): measuring the single process only"
        );
        (None, None)
    } else {
        (None, None)
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(variants.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let progress = |i: usize, _n: usize, name: &str| {
        if let Some(b) = &bar {
            b.set_position(i as u64);
            b.set_message(format!("running {name}"));
        }
    };
    let setup = compare::BenchSetup {
        config,
        variants,
        prices,
        streams: args.streams,
        deployment,
        sdk,
        emulator_dir: std::env::var_os("VQA_EMULATOR_DIR").map(PathBuf::from),
    };
    let result = compare::compare(input, setup, Some(&progress)).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let comparison = result?;
    if let Some(html) = &args.html {
        std::fs::write(html, bench_report::render_html(&comparison))
            .with_context(|| format!("{}: cannot write the HTML report", html.display()))?;
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&comparison)?),
        Format::Text => print!("{}", bench_report::render_text(&comparison)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `vqa eval`: prints the scores even when some clips failed, then fails naming them.
async fn eval_corpus(
    dir: &Path,
    format: Format,
    no_ffmpeg: bool,
    config: PipelineConfig,
) -> anyhow::Result<ExitCode> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |position: usize, total: usize, clip: &Path| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(position as u64);
            b.set_message(clip.display().to_string());
        }
    };
    let options = eval::EvalOptions { ffmpeg: !no_ffmpeg };
    let result = eval::evaluate(dir, &config, &options, Some(&progress)).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let evaluation = result?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&evaluation)?),
        Format::Text => print!("{}", eval::render(&evaluation)),
    }
    if let Some(first) = evaluation.errors.first() {
        bail!(
            "{}: {} of {} clips could not be scored; first: {}: {}",
            dir.display(),
            evaluation.errors.len(),
            evaluation.clips,
            first.clip.display(),
            first.error
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn main_result(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Analyze {
            input,
            format,
            out,
            no_progress,
            topology,
            notify,
            sinks,
            distributed,
            pipeline,
        } => {
            let args = AnalyzeArgs {
                input: &input,
                notify: notify.as_deref(),
                sinks: &sinks,
                format,
                out: out.as_deref(),
                no_progress,
                topology,
                distributed: &distributed,
            };
            analyze(args, pipeline.load()?).await
        }
        Command::StateMachine { machine, pipeline } => {
            let options = machine.options(&pipeline.load()?)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&state_machine::definition(&options))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            name,
            machine_type,
            converter_arn,
            detector_arn,
            aggregator_arn,
            role_arn,
            machine,
            pipeline,
        } => {
            let options = machine.options(&pipeline.load()?)?;
            let definition = state_machine::substitute(
                &serde_json::to_string_pretty(&state_machine::definition(&options))?,
                &converter_arn,
                &detector_arn,
                &aggregator_arn,
            );
            let sdk = vqa_transport_s3::aws_config(None).await;
            let arn = vqa_deploy_lambda::client::deploy(
                &sdk,
                &name,
                &definition,
                &role_arn,
                machine_type,
            )
            .await?;
            let var = match machine_type {
                MachineType::Standard => "VQA_STATE_MACHINE_ARN",
                MachineType::Express => "VQA_EXPRESS_STATE_MACHINE_ARN",
            };
            println!("export {var}={arn}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval {
            corpus,
            format,
            no_ffmpeg,
            pipeline,
        } => eval_corpus(&corpus, format, no_ffmpeg, pipeline.load()?).await,
        Command::Monitor {
            list,
            control,
            notify,
            sinks,
            reports,
            listen,
            duration,
            until_done,
            mut pipeline,
        } => {
            // Decoding stays on the monitor's worker pool, not on FFmpeg threads per stream.
            pipeline.decoder_threads = pipeline.decoder_threads.or(Some(1));
            if list.is_none() && !control {
                bail!("vqa monitor: give a stream list file, or --control --listen ADDR to receive lists over HTTP");
            }
            let args = MonitorArgs {
                list: list.as_deref(),
                control,
                notify: &notify,
                sinks: &sinks,
                reports,
                listen: listen.as_deref(),
                duration,
                until_done,
            };
            monitor(args, &pipeline.load()?).await
        }
        Command::Router {
            list,
            shards,
            listen,
            notify,
            sinks,
            reports,
            duration,
            until_done,
            pipeline,
        } => {
            let args = RouterArgs {
                list: &list,
                shards: &shards,
                listen: &listen,
                notify: &notify,
                sinks: &sinks,
                reports,
                duration,
                until_done,
            };
            router(args, &pipeline.load()?).await
        }
        Command::Config { pipeline } => {
            print!("{}", pipeline.load()?.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            input,
            format,
            variants,
            streams,
            prices,
            html,
            express_state_machine,
            deployment,
            speed,
            live,
            cpus,
            seconds,
            mut pipeline,
        } => {
            if let Some(counts) = live {
                pipeline.decoder_threads = pipeline.decoder_threads.or(Some(1));
                let config = pipeline.load()?;
                return bench_live(&input, &counts, cpus, seconds, format, &config);
            }
            if speed {
                pipeline.decoder_threads = pipeline.decoder_threads.or(Some(1));
                let config = pipeline.load()?;
                let result = bench::bench(&input, &config)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", shown(&input)))?;
                match format {
                    Format::Json => println!("{}", serde_json::to_string_pretty(&result)?),
                    Format::Text => print!("{}", bench::render(&result)),
                }
                return Ok(ExitCode::SUCCESS);
            }
            let config = pipeline.load()?;
            let args = BenchArgs {
                variants,
                streams,
                prices,
                html,
                express_state_machine,
                deployment,
            };
            bench_topologies(&input, format, args, &config).await
        }
    }
}

fn bench_live(
    input: &Path,
    counts: &[usize],
    cpus: usize,
    seconds: f64,
    format: Format,
    config: &PipelineConfig,
) -> anyhow::Result<ExitCode> {
    use vqa_deploy_ecs::live_bench;
    if counts.is_empty() || counts.contains(&0) {
        bail!("--live: give stream counts above 0, e.g. --live 8,10,12");
    }
    if !(seconds.is_finite() && seconds >= 5.0) {
        bail!("--seconds {seconds}: give at least 5 seconds per run");
    }
    // Fails here, in one line, on an input that cannot be read at all.
    open_input(input, stream_id_for(input), config)
        .map_err(|e| anyhow::anyhow!("{}: {e}", shown(input)))?;
    let mut runs = Vec::new();
    for &n in counts {
        eprintln!("vqa: {n} live stream(s) on {cpus} core(s) for {seconds:.0} s ...");
        let (input, config) = (input.to_path_buf(), config.clone());
        // A thread of its own, pinned to the cores measured (so are the threads it starts).
        let run =
            std::thread::spawn(move || live_bench::run_live(&input, n, cpus, seconds, &config))
                .join()
                .map_err(|_| {
                    anyhow::anyhow!("the live benchmark stopped on an internal error")
                })??;
        runs.push(run);
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
        Format::Text => print!("{}", live_bench::render(&runs)),
    }
    Ok(ExitCode::SUCCESS)
}

struct MonitorArgs<'a> {
    list: Option<&'a Path>,
    control: bool,
    notify: &'a Path,
    sinks: &'a SinkArgs,
    reports: Option<PathBuf>,
    listen: Option<&'a str>,
    duration: Option<f64>,
    until_done: bool,
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn monitor(args: MonitorArgs<'_>, base: &PipelineConfig) -> anyhow::Result<ExitCode> {
    use std::time::{Duration, Instant};
    use vqa_deploy_ecs::monitor::{metrics, Monitor, StreamList};

    let list = match args.list {
        Some(path) => StreamList::load(path, base)?,
        None => StreamList::parse("", base)?,
    };
    let notifiers = args.sinks.notifiers(Some(args.notify), None, None).await?;
    let settings = list.monitor.clone();
    let monitor = Monitor::new(settings.clone(), notifiers, args.reports)?;
    if let Some(addr) = args.listen {
        let control = args.control.then(|| metrics::Control {
            base: base.clone(),
            last: Default::default(),
            token: std::env::var("VQA_CONTROL_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        });
        let local = metrics::serve(addr, monitor.env(), control)?;
        tracing::info!("metrics at http://{local}/metrics, health at http://{local}/healthz");
    }
    let changes = monitor.apply(&list);
    tracing::info!(
        "monitoring {} stream(s) on {} worker(s)",
        changes.added.len(),
        monitor.workers()
    );
    let mut seen = args.list.and_then(modified);
    let started = Instant::now();
    let mut last_tick = Instant::now();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            monitor.tick();
            last_tick = Instant::now();
        }
        let now_modified = args.list.and_then(modified);
        if let (Some(path), true) = (args.list, now_modified != seen) {
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
        if args
            .duration
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
            || (args.until_done && monitor.running() == 0)
        {
            break;
        }
    }
    let streams = monitor.streams();
    let finished =
        tokio::task::spawn_blocking(move || monitor.shutdown(Duration::from_secs(30))).await?;
    let mut failed = 0;
    for s in &streams {
        let st = &s.stats;
        use std::sync::atomic::Ordering::Relaxed;
        let error = s.error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(e) = &error {
            failed += 1;
            eprintln!("vqa: stream {}: not monitored: {e}", s.spec.id);
            continue;
        }
        eprintln!(
            "vqa: stream {}: {} segments, {} incidents, input lost {} time(s), max lag {:.1} s, {} pictures shed{}",
            s.spec.id,
            st.segments.load(Relaxed),
            st.incidents_closed.load(Relaxed),
            st.losses.load(Relaxed),
            st.max_lag.load(Relaxed) as f64 / 1e6,
            st.shed_frames.load(Relaxed),
            s.report_path
                .as_ref()
                .map(|p| format!(", report {}", p.display()))
                .unwrap_or_default()
        );
    }
    for (name, stats) in finished.webhooks {
        if stats.failed > 0 {
            eprintln!(
                "vqa: {name}: {} of {} notifications not delivered",
                stats.failed,
                stats.failed + stats.delivered
            );
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

struct RouterArgs<'a> {
    list: &'a Path,
    shards: &'a Path,
    listen: &'a str,
    notify: &'a Path,
    sinks: &'a SinkArgs,
    reports: Option<PathBuf>,
    duration: Option<f64>,
    until_done: bool,
}

async fn router(args: RouterArgs<'_>, base: &PipelineConfig) -> anyhow::Result<ExitCode> {
    use std::time::{Duration, Instant};
    use vqa_deploy_ecs::monitor::StreamList;
    use vqa_deploy_ecs::router::{load_shards, serve, Relay, Router};

    let shards = load_shards(args.shards)?;
    let list = StreamList::load(args.list, base)?;
    let notifiers = args.sinks.notifiers(Some(args.notify), None, None).await?;
    let relay = std::sync::Arc::new(Relay::new(notifiers, args.reports.clone()));
    let local = serve(args.listen, relay.clone())?;
    tracing::info!("router at http://{local} (shards POST to /notify)");
    let mut router = Router::new(shards, args.reports)?;
    router
        .set_list(&list)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.list.display()))?;
    let mut seen = modified(args.list);
    let started = Instant::now();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        router = tokio::task::spawn_blocking(move || {
            router.reconcile();
            router
        })
        .await?;
        if args.until_done && router.pending() == 0 {
            break;
        }
        if args
            .duration
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let now = modified(args.list);
        if now != seen {
            seen = now;
            match StreamList::load(args.list, base).and_then(|l| router.set_list(&l)) {
                Ok(()) => tracing::info!(
                    "{}: {} stream(s) assigned",
                    args.list.display(),
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
        .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if router.pending() > 0 {
        eprintln!(
            "vqa: {} stream(s) not merged: a shard did not report them",
            router.pending()
        );
    }
    for r in &router.merged {
        eprintln!(
            "vqa: stream {}: {} segments, {} incidents (merged)",
            r.stream,
            r.coverage.segments,
            r.incidents.len()
        );
    }
    // Shards send their last notifications from queues: let them arrive, then deliver.
    let drained = relay.clone();
    tokio::task::spawn_blocking(move || {
        drained.drain(Duration::from_secs(1), Duration::from_secs(10))
    })
    .await?;
    for (name, stats) in relay.finish() {
        if stats.failed > 0 {
            eprintln!(
                "vqa: {name}: {} of {} notifications not delivered",
                stats.failed,
                stats.failed + stats.delivered
            );
        }
    }
    Ok(if router.pending() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vqa: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(main_result(cli));
    // Do not wait for stage threads that an error left blocked: the result is decided.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain of causes, outermost first.
            let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("vqa: error: {}", causes.join(": "));
            ExitCode::FAILURE
        }
    }
}
