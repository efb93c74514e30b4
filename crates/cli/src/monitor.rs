//! `vqa monitor`: many live streams in one process (the ECS service), until stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use vqa_deploy_ecs::monitor::service::{self, ServiceOptions, StopWhen};
use vqa_deploy_ecs::monitor::Stages;

use crate::args::seconds;
use crate::args::{DeploymentArgs, PipelineArgs, SinkArgs};
use crate::output;

#[derive(clap::Args)]
pub struct MonitorArgs {
    /// The stream list (TOML). Optional with --control (the list then comes over HTTP;
    /// a file with only [monitor] settings can still set them).
    pub list: Option<PathBuf>,

    /// Also accept stream lists over HTTP on --listen: PUT /streams replaces the list,
    /// GET /streams shows it, GET /reports/ID serves a finished stream's report. This
    /// is how `vqa router` drives detector shards; listen on a private address, and set
    /// VQA_CONTROL_TOKEN (the same for the router) to require it as a bearer token
    /// (required unless --listen is a loopback address). Bodies up to 4 MiB.
    #[arg(long, requires = "listen")]
    pub control: bool,

    /// Where the JSON lines of incidents opened and closed go (`-`: stdout).
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub notify: PathBuf,

    #[command(flatten)]
    pub sinks: SinkArgs,

    /// Write each stream's report to DIR/<id>.json when it stops (removed from the list,
    /// ended, or the monitor stops).
    #[arg(long, value_name = "DIR")]
    pub reports: Option<PathBuf>,

    /// Serve Prometheus metrics at /metrics and a health check at /healthz on this
    /// address, e.g. 0.0.0.0:9090.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// Stop once every stream has ended (local files replayed with allow_local_files;
    /// live inputs never end, they reconnect).
    #[arg(long)]
    pub until_done: bool,

    /// Where the stages run (the deployment for distributed and ab as for `vqa analyze
    /// --topology distributed`).
    #[arg(long, value_enum, default_value_t = MonitorTopology::Single)]
    pub topology: MonitorTopology,

    /// Segments per chunk of a live stream (distributed): an incident is notified about a
    /// chunk's length plus its execution's time after it qualifies, and each chunk costs an
    /// execution, so this trades alert latency against cost.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIVE_CHUNK_SEGMENTS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_segments: u64,

    /// Executions a chunk gets (the first and its reruns) before it is recorded in the
    /// report as not analysed (distributed).
    #[arg(long, value_name = "N", default_value_t = vqa_sfn_client::DEFAULT_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub attempts: u32,

    /// Price table (TOML, as prices/aws-us-east-1.toml) for the cost gauges in /metrics
    /// (vqa_cost_usd_per_stream_hour, vqa_cost_usd_total per stream and topology).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,

    #[command(flatten)]
    pub deployment: DeploymentArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Where `vqa monitor` runs the stages.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MonitorTopology {
    /// In this process.
    Single,
    /// This process only reads the streams: it cuts each into chunks of --chunk-segments,
    /// stores them in the deployment's bucket, runs one execution of the state machine per
    /// chunk, and notifies the incidents the executions report.
    Distributed,
    /// Both at once, each source read once: notifications come from this process; the
    /// executions' incidents are compared with them, and each disagreement (an incident one
    /// side has and the other not, or with another start or end) is logged, counted in
    /// /metrics (vqa_ab_divergences) and listed in the stream's report (divergences).
    Ab,
}

/// Segments per chunk of a live stream by default: 10 s of it per execution keeps alerts
/// within about 10 s plus an execution, at 360 executions per stream-hour.
pub const DEFAULT_LIVE_CHUNK_SEGMENTS: u64 = 10;

pub async fn monitor(mut args: MonitorArgs) -> anyhow::Result<ExitCode> {
    // Decoding stays on the monitor's worker pool, not on FFmpeg threads per stream.
    args.pipeline.decoder_threads = args.pipeline.decoder_threads.or(Some(1));
    if args.list.is_none() && !args.control {
        bail!("vqa monitor: give a stream list file, or --control --listen ADDR to receive lists over HTTP");
    }
    let base = args
        .pipeline
        .load_for(vqa_core::config::Profile::Broadcast)?;
    let prices = (args.prices.as_deref())
        .map(vqa_bench::cost::load_prices)
        .transpose()?;
    let list = service::load_list(args.list.as_deref(), &base)?;
    let notifiers = args.sinks.notifiers(Some(&args.notify), None, None).await?;
    let stages = match args.topology {
        MonitorTopology::Single => Stages::InProcess,
        MonitorTopology::Distributed | MonitorTopology::Ab => {
            let deployment = args.deployment.deployment()?;
            let sdk = vqa_transport_s3::aws_config(args.deployment.endpoint_url.as_deref()).await;
            let options = vqa_sfn_client::RunOptions {
                chunk_segments: args.chunk_segments,
                attempts: args.attempts,
                ..Default::default()
            };
            let sink = vqa_sfn_client::LiveSink::connect(&sdk, &deployment, options).await?;
            let sink = std::sync::Arc::new(sink) as std::sync::Arc<dyn vqa_core::live::ChunkSink>;
            match args.topology {
                MonitorTopology::Ab => Stages::Both(sink),
                _ => Stages::Distributed(sink),
            }
        }
    };
    let options = ServiceOptions {
        list_file: args.list,
        reports_dir: args.reports,
        listen: args.listen,
        control: args.control,
        stages,
        prices,
    };
    let stop = StopWhen {
        after: args.duration.map(seconds),
        all_ended: args.until_done,
    };
    let stopped = service::run(list, options, &base, notifiers, stop).await?;
    let mut failed = 0;
    for s in &stopped.streams {
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
    output::report_undelivered(&stopped.finished.webhooks);
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
