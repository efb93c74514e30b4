//! The command line: the top-level parser, the subcommands, and the flag groups several
//! subcommands share (pipeline configuration, notification sinks, the distributed
//! deployment). Each subcommand's own flags are in its module.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use vqa_core::config::Profile;
use vqa_core::{DetectorName, PipelineConfig};
use vqa_deploy_lambda::state_machine::{self, DetectorGroups, MachineOptions};
use vqa_notify::{Notifiers, NotifyError};
use vqa_sfn_client::Deployment;

use crate::{analyze, bench, deploy, eval, monitor, router};

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
pub struct Cli {
    /// More logging on stderr (-v: incidents as they open and close; -vv: debug). RUST_LOG
    /// overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Analyse one input and report its incidents.
    Analyze(analyze::AnalyzeArgs),
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
    Monitor(monitor::MonitorArgs),
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
    Router(router::RouterArgs),
    /// Print the Step Functions state machine (Amazon States Language) for a configuration,
    /// with ${ConverterFunctionArn}, ${DetectorFunctionArn} and ${AggregatorFunctionArn}
    /// placeholders (CloudFormation's DefinitionSubstitutions fill them).
    StateMachine(deploy::StateMachineArgs),
    /// Create or update the state machine for a configuration (aws-sdk-sfn), and print the
    /// environment `vqa analyze --topology distributed` needs.
    Deploy(deploy::DeployArgs),
    /// Print the effective pipeline configuration (defaults, the file and flags applied) as TOML.
    Config(ConfigArgs),
    /// Score the detectors on a labelled corpus, side by side with FFmpeg's own filters.
    ///
    /// The corpus is a directory with clips and a corpus.json listing their defects, as
    /// `vqa-make-clip --corpus DIR` writes it. Clips marked `"clean": true` also make a
    /// section of false alarms per hour of clean content, under both alarm profiles unless
    /// `--profile` names one. Exit status: 0 every clip was scored (whatever the scores); 1
    /// the corpus could not be read or a clip could not be analysed.
    Eval(eval::EvalArgs),
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
    Bench(bench::BenchArgs),
}

/// `vqa config`.
#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// A summary for people.
    Text,
    /// The stream report as JSON.
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Topology {
    /// One process, in-memory handoff (the ECS deployment).
    Single,
    /// The deployed (or emulated) Lambda functions under Step Functions, handing off
    /// through S3. Reads VQA_STATE_MACHINE_ARN, VQA_BUCKET, VQA_RESULTS_BUCKET, VQA_PREFIX
    /// and the usual AWS configuration (AWS_ENDPOINT_URL for an emulator).
    Distributed,
}

#[derive(clap::Args)]
pub struct DistributedArgs {
    #[command(flatten)]
    pub deployment: DeploymentArgs,

    /// Distributed handoff: one S3 object per segment, or one per picture (plus a manifest)
    /// as the original design uploaded frames.
    #[arg(long, value_name = "segment|frame", default_value = "segment")]
    pub granularity: vqa_transport_s3::Granularity,

    /// Distributed handoff encoding: the wire form as is, or zstd-compressed.
    #[arg(long, value_name = "raw|zstd", default_value = "raw")]
    pub encoding: vqa_transport_s3::Encoding,

    /// Segments per chunk: the input is analysed one chunk per execution (a minute of it
    /// with 1 s segments, by default).
    #[arg(long, value_name = "N", default_value_t = vqa_sfn_client::DEFAULT_CHUNK_SEGMENTS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_segments: u64,

    /// Chunk executions running at once.
    #[arg(long, value_name = "N", default_value_t = vqa_sfn_client::DEFAULT_CONCURRENCY,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub concurrency: usize,

    /// Executions a chunk gets (the first and its reruns) before it is recorded in the
    /// report as not analysed.
    #[arg(long, value_name = "N", default_value_t = vqa_sfn_client::DEFAULT_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub attempts: u32,
}

#[derive(clap::Args)]
pub struct DeploymentArgs {
    /// The deployed state machine (the stack's StateMachineArn output).
    #[arg(long, env = "VQA_STATE_MACHINE_ARN", value_name = "ARN")]
    pub state_machine: Option<String>,

    /// The intermediate bucket (inputs and artifacts).
    #[arg(long, env = "VQA_BUCKET", value_name = "NAME")]
    pub bucket: Option<String>,

    /// The bucket the aggregator writes reports to.
    #[arg(long, env = "VQA_RESULTS_BUCKET", value_name = "NAME")]
    pub results_bucket: Option<String>,

    /// Key prefix in the intermediate bucket.
    #[arg(
        long,
        env = "VQA_PREFIX",
        value_name = "PREFIX",
        default_value = "vqa/"
    )]
    pub prefix: String,

    /// AWS endpoint (an emulator's, e.g. http://127.0.0.1:5001); overrides AWS_ENDPOINT_URL.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl DeploymentArgs {
    pub fn deployment(&self) -> anyhow::Result<Deployment> {
        self.deployment_with(self.state_machine.as_deref())
    }

    /// The deployment with another state machine over the same buckets.
    pub fn deployment_with(&self, state_machine: Option<&str>) -> anyhow::Result<Deployment> {
        Ok(Deployment::new(
            state_machine,
            self.bucket.as_deref(),
            self.results_bucket.as_deref(),
            &self.prefix,
        )?)
    }
}

#[derive(clap::Args)]
pub struct MachineArgs {
    /// How detectors are split into parallel branches: `each` (one Lambda invocation per
    /// detector and segment, the original design), `all` (one), or groups such as
    /// `freeze,black;silence,loudness`.
    #[arg(long, value_name = "SPEC", default_value = state_machine::DEFAULT_GROUPS)]
    pub detector_groups: String,

    /// Segments whose detectors run at once (the Map state's MaxConcurrency).
    #[arg(long, value_name = "N", default_value_t = state_machine::DEFAULT_MAP_CONCURRENCY)]
    pub map_concurrency: u32,
}

impl MachineArgs {
    pub fn options(&self, config: &PipelineConfig) -> anyhow::Result<MachineOptions> {
        Ok(MachineOptions {
            groups: DetectorGroups::parse(&self.detector_groups, config)
                .context("--detector-groups")?,
            map_concurrency: self.map_concurrency,
        })
    }
}

#[derive(clap::Args)]
pub struct PipelineArgs {
    /// Pipeline configuration file (TOML). Fields not given keep their defaults; `vqa config`
    /// prints them all.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Alarm timings the defaults follow: file_qc (short raise times, incidents close at
    /// once) or broadcast (raise after 10 s of black, freeze or silence, clear after 10 s,
    /// loudness over 30 s; the default of `vqa monitor` and `vqa router`). Overrides the
    /// file's `profile`; `vqa config --profile NAME` prints every value.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<Profile>,

    /// Run only these detectors (comma-separated, e.g. freeze,black,silence; all names in
    /// `vqa config`). Overrides the file.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub detectors: Option<Vec<String>>,

    /// Segment length in seconds. Overrides the file.
    #[arg(long, value_name = "SECONDS")]
    pub segment_seconds: Option<f64>,

    /// Video decoder threads (0: as many as FFmpeg sees fit). Overrides the file.
    #[arg(long, value_name = "N")]
    pub decoder_threads: Option<usize>,
}

/// Where notifications go besides the JSON lines: the same flags on analyze, monitor and router.
#[derive(clap::Args)]
pub struct SinkArgs {
    /// Also POST each notification (the same JSON) to this URL, retrying with backoff on
    /// connection errors, 429 and 5xx; with `Authorization: Bearer $VQA_WEBHOOK_TOKEN` when
    /// that is set (a shard's webhook to its router: the router's VQA_CONTROL_TOKEN).
    /// Repeatable.
    #[arg(long, value_name = "URL")]
    pub webhook: Vec<String>,

    /// Also publish each notification to this Amazon SNS topic (ARN; credentials, region
    /// and endpoint from the AWS configuration). Repeatable.
    #[arg(long, value_name = "TOPIC_ARN")]
    pub sns: Vec<String>,
}

impl SinkArgs {
    /// Every destination of a run's notifications: JSON lines to `lines` (`-`: stdout), then
    /// the webhooks and SNS topics; `report` is the report location notifications carry.
    pub async fn notifiers(
        &self,
        lines: Option<&Path>,
        report: Option<String>,
        endpoint: Option<&str>,
    ) -> Result<Notifiers, NotifyError> {
        let mut notifiers = Notifiers::new(report);
        if let Some(path) = lines {
            notifiers.add_lines(path)?;
        }
        let token = std::env::var("VQA_WEBHOOK_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        for url in &self.webhook {
            notifiers.add_webhook(url, token.as_deref())?;
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

impl PipelineArgs {
    /// The configuration, over the file QC profile's defaults unless a profile is chosen.
    pub fn load(&self) -> anyhow::Result<PipelineConfig> {
        self.load_for(Profile::FileQc)
    }

    /// The configuration, over `default`'s defaults unless `--profile` or the file
    /// chooses a profile.
    pub fn load_for(&self, default: Profile) -> anyhow::Result<PipelineConfig> {
        self.load_chosen(self.profile, default)
    }

    /// The configuration over `profile`'s defaults, whatever `--profile` and the file say;
    /// the file's other values and the flags still apply.
    pub fn load_as(&self, profile: Profile) -> anyhow::Result<PipelineConfig> {
        self.load_chosen(Some(profile), profile)
    }

    fn load_chosen(
        &self,
        chosen: Option<Profile>,
        default: Profile,
    ) -> anyhow::Result<PipelineConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("{}: cannot read the configuration file", path.display())
                })?;
                PipelineConfig::from_toml_profiled(&text, chosen, default)
                    .with_context(|| format!("{}: fix the configuration", path.display()))?
            }
            None => PipelineConfig::for_profile(chosen.unwrap_or(default)),
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

/// A `--duration`/`--seconds` value as a `Duration` (negative: none; infinite: forever).
pub fn seconds(value: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(std::time::Duration::MAX)
}
