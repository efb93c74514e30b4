//! `vqa bench`: each topology measured and priced (the default), decode speed (`--speed`),
//! or live streams per core (`--live`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use vqa_bench::{compare, cost, live, render, speed};
use vqa_core::PipelineConfig;
use vqa_deploy_ecs::{open_input, stream_id_for};

use crate::args::{DeploymentArgs, Format, PipelineArgs};
use crate::output;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The audio/video file to measure on.
    pub input: PathBuf,

    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Variants to run, comma-separated (default: those that are configured).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub variants: Option<Vec<String>>,

    /// Streams for the monthly figures.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub streams: u64,

    /// Price table (TOML, as prices/aws-us-east-1.toml).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,

    /// Also write the comparison as a self-contained HTML page with charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// The deployed Express state machine, for the express-* variants.
    #[arg(long, env = "VQA_EXPRESS_STATE_MACHINE_ARN", value_name = "ARN")]
    pub express_state_machine: Option<String>,

    #[command(flatten)]
    pub deployment: DeploymentArgs,

    /// Measure decode speed alone and with the detectors (one process) instead.
    #[arg(long)]
    pub speed: bool,

    /// Measure live monitoring instead: replay the input as this many live streams at
    /// once (comma-separated counts, one run each, e.g. 8,10,12), paced at real time,
    /// and report which counts the cores keep up with, memory per stream and the
    /// latency of segments and alerts.
    #[arg(long, value_name = "COUNTS", value_delimiter = ',')]
    pub live: Option<Vec<usize>>,

    /// Measure each topology on a live stream instead of a file: the input replayed as one
    /// stream, paced at real time and looped, for this many minutes through `vqa monitor`
    /// (the distributed variants with --topology distributed), priced per stream-hour from
    /// that run's counters, the reader's CPU and memory included.
    #[arg(long, value_name = "MINUTES", conflicts_with_all = ["live", "speed"],
          value_parser = live_minutes)]
    pub live_minutes: Option<f64>,

    /// With --live-minutes: segments per chunk of the live stream (distributed variants).
    #[arg(long, value_name = "N", default_value_t = crate::monitor::DEFAULT_LIVE_CHUNK_SEGMENTS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_segments: u64,

    /// With --live: cores to run on (the process is pinned to them).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: usize,

    /// With --live: seconds per run.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub seconds: f64,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

pub async fn bench(mut args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(counts) = args.live.clone() {
        args.pipeline.decoder_threads = args.pipeline.decoder_threads.or(Some(1));
        let config = args.pipeline.load()?;
        return bench_live(&args, &counts, &config);
    }
    if args.speed {
        args.pipeline.decoder_threads = args.pipeline.decoder_threads.or(Some(1));
        let config = args.pipeline.load()?;
        let result = speed::bench(&args.input, &config)
            .await
            .map_err(|e| output::about_input(&args.input, e))?;
        output::print(args.format, &result, speed::render)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.live_minutes.is_some() {
        // As `vqa monitor` decodes: on its worker pool, not on FFmpeg threads per stream.
        args.pipeline.decoder_threads = args.pipeline.decoder_threads.or(Some(1));
    }
    let config = args.pipeline.load()?;
    bench_topologies(args, &config).await
}

/// `vqa bench`: every variant on the same input, measured and priced.
async fn bench_topologies(args: BenchArgs, config: &PipelineConfig) -> anyhow::Result<ExitCode> {
    let input = args.input.as_path();
    let prices = match &args.prices {
        Some(path) => cost::load_prices(path)?,
        None => cost::PriceTable::shipped(),
    };
    if let Some(html) = &args.html {
        output::check_writable(html, "--html")?;
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
        None => compare::Variant::defaults(standard, express, args.live_minutes.is_some()),
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
    let bar = output::ticking(
        "{spinner} [{elapsed_precise}] {pos}/{len} {msg}",
        Some(variants.len() as u64),
    );
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
        live: args.live_minutes.map(|minutes| compare::LiveSetup {
            seconds: minutes * 60.0,
            chunk_segments: args.chunk_segments,
        }),
    };
    let result = compare::compare(input, setup, Some(&progress)).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let comparison = result?;
    if let Some(html) = &args.html {
        std::fs::write(html, render::render_html(&comparison))
            .with_context(|| format!("{}: cannot write the HTML report", html.display()))?;
    }
    output::print(args.format, &comparison, render::render_text)?;
    Ok(ExitCode::SUCCESS)
}

fn live_minutes(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(m) if m.is_finite() && m >= 0.25 => Ok(m),
        _ => Err(format!("{text:?}: give at least 0.25 minutes")),
    }
}

fn bench_live(
    args: &BenchArgs,
    counts: &[usize],
    config: &PipelineConfig,
) -> anyhow::Result<ExitCode> {
    let (input, cpus, seconds) = (args.input.as_path(), args.cpus, args.seconds);
    if counts.is_empty() || counts.contains(&0) {
        bail!("--live: give stream counts above 0, e.g. --live 8,10,12");
    }
    if !(seconds.is_finite() && seconds >= 5.0) {
        bail!("--seconds {seconds}: give at least 5 seconds per run");
    }
    // Fails here, in one line, on an input that cannot be read at all.
    open_input(input, stream_id_for(input), config).map_err(|e| output::about_input(input, e))?;
    let mut runs = Vec::new();
    for &n in counts {
        eprintln!("vqa: {n} live stream(s) on {cpus} core(s) for {seconds:.0} s ...");
        let (input, config) = (input.to_path_buf(), config.clone());
        // A thread of its own, pinned to the cores measured (so are the threads it starts).
        let run = std::thread::spawn(move || live::run_live(&input, n, cpus, seconds, &config))
            .join()
            .map_err(|_| anyhow::anyhow!("the live benchmark stopped on an internal error"))??;
        runs.push(run);
    }
    output::print(args.format, &runs, |r| live::render(r))?;
    Ok(ExitCode::SUCCESS)
}
