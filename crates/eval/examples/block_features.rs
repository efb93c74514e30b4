//! Prints every picture's blockiness features, for training the blockiness model
//! (`scripts/corpus/train.py`): `cargo run --release -p vqa-eval --example block_features --
//! FILE...` writes `file, pts (s from the first picture), features...` as tab-separated lines.
//! With `--time` first, prints instead what the detector costs per picture on each file:
//! one picture's score (features and model) and the detector on whole segments, which
//! scores one picture in a few (single thread, wall clock).

use std::path::{Path, PathBuf};
use std::time::Instant;

use vqa_converter::FfmpegConverter;
use vqa_core::config::BlockinessConfig;
use vqa_core::{Converter, Detector, PipelineConfig, Segment, StreamId};
use vqa_detectors::BlockinessDetector;

fn segments(path: &Path) -> anyhow::Result<Vec<Segment>> {
    let mut converter =
        FfmpegConverter::open(path, StreamId::new("f"), &PipelineConfig::default())?;
    let mut out = Vec::new();
    while let Some(segment) = converter.next_segment() {
        out.push(segment);
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let time = args.first().is_some_and(|a| a == "--time");
    if time {
        args.remove(0);
    }
    for path in args.into_iter().map(PathBuf::from) {
        let segments = segments(&path)?;
        if time {
            let frames: Vec<_> = segments.iter().flat_map(|s| &s.video).collect();
            let rounds = 5;
            let started = Instant::now();
            for _ in 0..rounds {
                for f in &frames {
                    std::hint::black_box(vqa_detectors::frame_score(f));
                }
            }
            let one = started.elapsed().as_secs_f64() / (rounds * frames.len()) as f64;
            let detector = BlockinessDetector::new(&BlockinessConfig::default());
            let started = Instant::now();
            for _ in 0..rounds {
                for s in &segments {
                    std::hint::black_box(detector.analyze(s));
                }
            }
            let amortised = started.elapsed().as_secs_f64() / (rounds * frames.len()) as f64;
            let (w, h) = frames.first().map_or((0, 0), |f| (f.width, f.height));
            println!(
                "{}: {w}x{h}, {} pictures: {:.3} ms to score one, {:.3} ms per picture amortised",
                path.display(),
                frames.len(),
                one * 1e3,
                amortised * 1e3
            );
            continue;
        }
        let mut first = None;
        for frame in segments.iter().flat_map(|s| &s.video) {
            let Some(features) = vqa_detectors::block_features(frame) else {
                continue;
            };
            let t0 = *first.get_or_insert(frame.pts);
            let values: Vec<String> = features.iter().map(|v| format!("{v:.5}")).collect();
            println!(
                "{}\t{:.4}\t{}",
                path.display(),
                (frame.pts - t0) as f64 / 1e6,
                values.join("\t")
            );
        }
    }
    Ok(())
}
