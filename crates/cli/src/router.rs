//! `vqa router`: drives detector shards (`vqa monitor --control`), relays their
//! notifications and merges their reports.

use std::path::PathBuf;
use std::process::ExitCode;

use vqa_deploy_ecs::monitor::service::StopWhen;
use vqa_deploy_ecs::router::service::{self, RouterOptions};

use crate::args::seconds;
use crate::args::{PipelineArgs, SinkArgs};
use crate::output;

#[derive(clap::Args)]
pub struct RouterArgs {
    /// The stream list (the `vqa monitor` format), reloaded when edited.
    pub list: PathBuf,

    /// The shards file.
    #[arg(long, value_name = "FILE")]
    pub shards: PathBuf,

    /// Where shards POST their notifications (/notify) and /healthz is served. With
    /// VQA_CONTROL_TOKEN set, /notify requires it as a bearer token (the shards send it as
    /// VQA_WEBHOOK_TOKEN); required unless ADDR is a loopback address.
    #[arg(long, value_name = "ADDR")]
    pub listen: String,

    /// Where the JSON lines of incidents opened and closed go (`-`: stdout).
    #[arg(long, value_name = "FILE", default_value = "-")]
    pub notify: PathBuf,

    #[command(flatten)]
    pub sinks: SinkArgs,

    /// Write each stream's merged report to DIR/<id>.json once every shard finished it.
    #[arg(long, value_name = "DIR")]
    pub reports: Option<PathBuf>,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// Stop once every stream's merged report is written.
    #[arg(long)]
    pub until_done: bool,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

pub async fn router(args: RouterArgs) -> anyhow::Result<ExitCode> {
    let base = args
        .pipeline
        .load_for(vqa_core::config::Profile::Broadcast)?;
    let options = RouterOptions {
        list_file: args.list,
        shards_file: args.shards,
        listen: args.listen,
        reports_dir: args.reports,
    };
    let stop = StopWhen {
        after: args.duration.map(seconds),
        all_ended: args.until_done,
    };
    let notifiers = args.sinks.notifiers(Some(&args.notify), None, None);
    let stopped = service::run(options, &base, notifiers, stop).await?;
    if stopped.pending > 0 {
        eprintln!(
            "vqa: {} stream(s) not merged: a shard did not report them",
            stopped.pending
        );
    }
    for r in &stopped.merged {
        eprintln!(
            "vqa: stream {}: {} segments, {} incidents (merged)",
            r.stream,
            r.coverage.segments,
            r.incidents.len()
        );
    }
    output::report_undelivered(&stopped.webhooks);
    Ok(if stopped.pending > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
