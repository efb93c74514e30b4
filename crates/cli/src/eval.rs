//! `vqa eval`: the detectors scored on a labelled corpus.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use vqa_core::config::Profile;

use crate::args::{Format, PipelineArgs};
use crate::output;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The corpus directory.
    pub corpus: PathBuf,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Do not run FFmpeg's filters (the ffmpeg CLI is then not needed).
    #[arg(long)]
    pub no_ffmpeg: bool,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// `vqa eval`: prints the scores even when some clips failed, then fails naming them.
pub async fn eval_corpus(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let config = args.pipeline.load()?;
    let dir = args.corpus.as_path();
    let bar = output::ticking("{spinner} {pos}/{len} {msg}", Some(0));
    let progress = |position: usize, total: usize, clip: &Path| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(position as u64);
            b.set_message(clip.display().to_string());
        }
    };
    // Clean clips are judged under both alarm profiles unless `--profile` names one.
    let clean_profiles = match args.pipeline.profile {
        Some(_) => Vec::new(),
        None => Profile::ALL
            .into_iter()
            .map(|p| args.pipeline.load_as(p))
            .collect::<anyhow::Result<_>>()?,
    };
    let options = vqa_eval::EvalOptions {
        ffmpeg: !args.no_ffmpeg,
        clean_profiles,
    };
    let result = vqa_eval::evaluate(dir, &config, &options, Some(&progress)).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let evaluation = result?;
    output::print(args.format, &evaluation, vqa_eval::render)?;
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
