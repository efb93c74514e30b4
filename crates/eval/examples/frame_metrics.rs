//! Prints per-frame measures of the video detectors, for calibrating thresholds:
//! `cargo run --release -p vqa-eval --example frame_metrics -- FILE [EVERY]`.

use std::path::PathBuf;

use vqa_converter::FfmpegConverter;
use vqa_core::{Converter, PipelineConfig, StreamId};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: FILE [EVERY]"))?,
    );
    let every: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let mut converter =
        FfmpegConverter::open(&path, StreamId::new("m"), &PipelineConfig::default())?;
    let mut n = 0usize;
    println!("time\tblock_score\tedge_width");
    while let Some(segment) = converter.next_segment() {
        for frame in &segment.video {
            if n.is_multiple_of(every) {
                let b = vqa_detectors::frame_score(frame).unwrap_or(f64::NAN);
                let w = vqa_detectors::edge_width(frame).unwrap_or(f64::NAN);
                println!(
                    "{:.2}\t{b:.3}\t{w:.2}{}",
                    frame.pts as f64 / 1e6,
                    if frame.corrupt { "\tcorrupt" } else { "" }
                );
            }
            n += 1;
        }
    }
    Ok(())
}
