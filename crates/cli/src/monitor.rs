//! `vqa monitor`: many live streams in one process (the ECS service), until stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use vqa_deploy_ecs::monitor::service::{self, ServiceOptions, StopWhen};

use crate::args::seconds;
use crate::args::{PipelineArgs, SinkArgs};
use crate::output;

#[derive(clap::Args)]
pub struct MonitorArgs {
    /// The stream list (TOML). Optional with --control (the list then comes over HTTP;
    /// a file with only [monitor] settings can still set them).
    pub list: Option<PathBuf>,

    /// Also accept stream lists over HTTP on --listen: PUT /streams replaces the list,
    /// GET /streams shows it, GET /reports/ID serves a finished stream's report. This
    /// is how `vqa router` drives detector shards; listen on a private address, and set
    /// VQA_CONTROL_TOKEN (the same for the router) to require it as a bearer token.
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

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

pub async fn monitor(mut args: MonitorArgs) -> anyhow::Result<ExitCode> {
    // Decoding stays on the monitor's worker pool, not on FFmpeg threads per stream.
    args.pipeline.decoder_threads = args.pipeline.decoder_threads.or(Some(1));
    if args.list.is_none() && !args.control {
        bail!("vqa monitor: give a stream list file, or --control --listen ADDR to receive lists over HTTP");
    }
    let base = args.pipeline.load()?;
    let list = service::load_list(args.list.as_deref(), &base)?;
    let notifiers = args.sinks.notifiers(Some(&args.notify), None, None).await?;
    let options = ServiceOptions {
        list_file: args.list,
        reports_dir: args.reports,
        listen: args.listen,
        control: args.control,
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
