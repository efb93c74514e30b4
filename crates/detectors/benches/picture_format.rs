//! Cost of the picture format detectors per second of 1080p25 (one segment of 25 textured
//! pictures with its lead-in), each alone with its default configuration, on a plain and
//! on a letterboxed picture (2.39:1 in 16:9: 140 black rows at the top and bottom):
//! `cargo bench --profile dev -p vqa-detectors --bench picture_format`.

use criterion::{criterion_group, criterion_main, Criterion};
use vqa_core::model::{Scan, Segment, VideoFrame};
use vqa_core::testing::{textured_frame, video_segment, FRAME};
use vqa_core::{Detector, DetectorName, PipelineConfig};

const BORDER: usize = 140;

fn picture(n: i64, seed: &mut u32, letterboxed: bool) -> VideoFrame {
    let mut f = textured_frame(n * FRAME, 1920, 1080, seed);
    f.format.scan = Scan::Progressive;
    if letterboxed {
        let mut luma = f.luma.to_vec();
        let row = 1920;
        luma[..BORDER * row].fill(16);
        let len = luma.len();
        luma[len - BORDER * row..].fill(16);
        f.luma = luma.into();
    }
    f
}

fn segment(letterboxed: bool) -> Segment {
    let mut seed = 7;
    let lead_in = picture(24, &mut seed, letterboxed);
    let frames = (25..50)
        .map(|n| picture(n, &mut seed, letterboxed))
        .collect();
    video_segment(1, Some(lead_in), frames)
}

fn bench(c: &mut Criterion) {
    for (what, segment) in [("plain", segment(false)), ("letterboxed", segment(true))] {
        for name in [
            DetectorName::Borders,
            DetectorName::AspectRatio,
            DetectorName::FieldOrder,
        ] {
            let config = PipelineConfig {
                detectors: vec![name],
                ..PipelineConfig::default()
            };
            let detectors = vqa_detectors::from_config(&config).expect("no model to load");
            let detector: &dyn Detector = detectors[0].as_ref();
            c.bench_function(&format!("{name} per second of 1080p25, {what}"), |b| {
                b.iter(|| detector.analyze(std::hint::black_box(&segment)))
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
