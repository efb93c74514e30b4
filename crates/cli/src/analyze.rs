//! `vqa analyze`: one input through either topology, its report on stdout and optionally to
//! a file or S3 object, incidents notified as they open and close.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use vqa_core::{IncidentEvent, PipelineConfig, StreamId, StreamReport};
use vqa_deploy_ecs::{
    open_input, run_with_layers, shown, stream_id_for, RunError, DEFAULT_IN_FLIGHT,
};
use vqa_notify::Notifiers;
use vqa_sfn_client::RunOptions;

use crate::args::{DistributedArgs, Format, PipelineArgs, SinkArgs, Topology};
use crate::output;
use crate::summary;

/// Exit status when the report covers only part of the input.
const EXIT_PARTIAL: u8 = 3;

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// The audio/video file to analyse (any format FFmpeg reads), or an s3://bucket/key
    /// object (fetched first; credentials and endpoint from the usual AWS configuration).
    pub input: PathBuf,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write the stream report as JSON to this file, or to an s3://bucket/key object.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Never show a progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,

    /// Where the stages run.
    #[arg(long, value_enum, default_value_t = Topology::Single)]
    pub topology: Topology,

    /// Write one JSON line per incident opened and closed, as soon as it is known, to
    /// this file (`-`: stdout, before the report).
    #[arg(long, value_name = "FILE")]
    pub notify: Option<PathBuf>,

    /// Also write a visual report to this HTML file: the incidents on a timeline over
    /// per-second graphs of the measurements behind them (frame difference, black share,
    /// block corruption, sharpness, loudness against its target, true peak, A/V offset).
    /// One self-contained page; the graphs need --topology single.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    #[command(flatten)]
    pub sinks: SinkArgs,

    #[command(flatten)]
    pub distributed: DistributedArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// `s3://bucket/key` split, for inputs and reports on S3 (the ECS task's default).
fn s3_location(path: &Path) -> Option<(String, String)> {
    let (bucket, key) = vqa_transport_s3::parse_s3_uri(path.to_str()?)?;
    Some((bucket.to_string(), key.to_string()))
}

async fn s3_transport() -> vqa_transport_s3::S3Transport {
    let sdk = vqa_transport_s3::aws_config(None).await;
    let (client, endpoint) = vqa_transport_s3::connect(&sdk);
    vqa_transport_s3::S3Transport::new(client, endpoint, vqa_transport_s3::S3Layout::new("", ""))
}

pub async fn analyze(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let config = args.pipeline.load()?;
    let input = args.input.as_path();
    let out = args.out.as_deref();
    let out_s3 = out.and_then(s3_location);
    if let (Some(out), None) = (out, &out_s3) {
        output::check_writable(out, "--out")?;
    }
    if let Some(html) = &args.html {
        output::check_writable(html, "--html")?;
    }
    // The per-segment measurements behind the HTML page's graphs, kept as the step runs.
    let recorder = args
        .html
        .as_ref()
        .map(|_| Arc::new(vqa_report_html::Recorder::default()));
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
            args.notify.as_deref(),
            out.map(shown),
            args.distributed.deployment.endpoint_url.as_deref(),
        )
        .await?;
    let notifiers = Arc::new(notifiers);
    let mut report = match args.topology {
        Topology::Single => {
            let layers = recorder
                .iter()
                .map(|r| r.clone() as Arc<dyn vqa_core::step::StepLayer>)
                .collect();
            analyze_single(&local, args.no_progress, &config, notifiers.clone(), layers).await?
        }
        Topology::Distributed => {
            analyze_distributed(&local, &args.distributed, &config, notifiers.clone()).await?
        }
    };
    // The run has ended and dropped its event sink: wait for the webhooks to deliver.
    if let Ok(notifiers) = Arc::try_unwrap(notifiers) {
        output::report_undelivered(&notifiers.finish());
    }
    report.input = shown(input);
    match (&out_s3, out) {
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
    if let Some(html) = &args.html {
        // Written for a partly analysed input too: the page shows what could be analysed.
        let points = recorder.map(|r| r.take());
        let page = vqa_report_html::render(&report, points.as_deref(), &config);
        std::fs::write(html, page)
            .with_context(|| format!("{}: cannot write the HTML report", html.display()))?;
    }
    output::print(args.format, &report, summary::render)?;
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
    notifiers: Arc<Notifiers>,
    layers: Vec<Arc<dyn vqa_core::step::StepLayer>>,
) -> anyhow::Result<StreamReport> {
    let stream = stream_id_for(input);
    let converter =
        open_input(input, stream.clone(), config).map_err(|e| output::about_input(input, e))?;
    let bar = output::input_bar(vqa_core::Converter::media(&converter).duration, no_progress);
    let progress = bar.clone().map(|b| -> vqa_deploy_ecs::ProgressSink {
        Box::new(move |s| b.set_position((s * 1000.0) as u64))
    });
    let events: vqa_deploy_ecs::EventSink =
        Box::new(move |stream, event| notify(&notifiers, stream, event));
    let analysis = run_with_layers(
        converter,
        config,
        stream,
        DEFAULT_IN_FLIGHT,
        progress,
        Some(events),
        layers,
    )
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match analysis {
        Ok(a) => Ok(a.report),
        // A missing model is the configuration's fault, not the input's.
        Err(RunError::Model(e)) => bail!("{e}"),
        Err(e) => Err(output::about_input(input, e)),
    }
}

/// An incident opened or closed: logged, and sent to the notifiers.
fn notify(notifiers: &Notifiers, stream: &StreamId, event: &IncidentEvent) {
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
}

async fn analyze_distributed(
    input: &Path,
    args: &DistributedArgs,
    config: &PipelineConfig,
    notifiers: Arc<Notifiers>,
) -> anyhow::Result<StreamReport> {
    let deployment = args.deployment.deployment()?;
    let sdk = vqa_transport_s3::aws_config(args.deployment.endpoint_url.as_deref()).await;
    // Chunks report as they finish: a bar counts them.
    let bar = output::ticking(
        "{spinner} {msg} [{bar:40}] {pos}/{len} chunks [{elapsed}]",
        Some(1),
    );
    if let Some(bar) = &bar {
        bar.set_message(format!(
            "running {} through the state machine",
            shown(input)
        ));
    }
    let progress = bar.clone().map(|b| {
        std::sync::Arc::new(move |done: u64, total: u64| {
            b.set_length(total);
            b.set_position(done);
        }) as std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>
    });
    let options = RunOptions {
        granularity: args.granularity,
        encoding: args.encoding,
        chunk_segments: args.chunk_segments,
        concurrency: args.concurrency,
        attempts: args.attempts,
        progress,
        // As each chunk's execution ends, its incidents go to the notifiers, in order.
        events: (!notifiers.is_empty()).then(|| {
            Arc::new(move |stream: &StreamId, event: &IncidentEvent| {
                notify(&notifiers, stream, event)
            }) as vqa_sfn_client::EventSink
        }),
    };
    let run = vqa_sfn_client::analyze(
        &sdk,
        input,
        stream_id_for(input),
        config,
        &deployment,
        options,
    )
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let run = run?;
    let h = &run.handoff;
    let transitions = match run.transitions {
        Some(n) => format!(
            "{n} state transitions ({} of them task retries)",
            run.retries
        ),
        None => format!(
            "{} state transitions (counted from the definition: no history)",
            run.transitions_from_definition
        ),
    };
    eprintln!(
        "vqa: {} run {} in {:.1} s: {} chunks in {} executions, {} segments, {transitions}, \
         {} Lambda invocations, {} S3 requests ({} PUT, {} GET, {} DELETE), {:.1} MB sent or \
         received; the input read in {} ranged GETs ({:.1} MB)",
        run.machine_type,
        run.run_name,
        run.wall_seconds,
        run.chunks,
        run.executions,
        run.segments,
        run.invocations
            .map_or_else(|| "?".into(), |n| n.to_string()),
        h.requests(),
        h.puts + h.state_stores,
        h.gets + h.state_loads,
        h.deletes,
        h.copied_bytes as f64 / 1e6,
        run.input_reads,
        run.input_bytes as f64 / 1e6
    );
    for why in &run.skipped {
        eprintln!("vqa: {}: {why}", shown(input));
    }
    Ok(run.report)
}
