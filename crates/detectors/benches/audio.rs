//! Cost of the audio detectors per second of 48 kHz stereo (one segment of programme-like
//! audio with its lead-in), each alone with its default configuration:
//! `cargo bench -p vqa-detectors --bench audio`.

use criterion::{criterion_group, criterion_main, Criterion};
use vqa_core::model::{AudioBlock, Segment};
use vqa_core::{Detector, DetectorName, PipelineConfig};

const RATE: i64 = 48_000;

/// One second of stereo from `from` seconds: a shared tone and each channel's own, in
/// decoder-sized blocks of 1024.
fn second(from: i64) -> Vec<AudioBlock> {
    let samples: Vec<f32> = (0..RATE)
        .flat_map(|i| {
            let t = (from * RATE + i) as f32 / RATE as f32;
            let shared = 0.2 * (std::f32::consts::TAU * 220.0 * t).sin();
            [
                shared + 0.1 * (std::f32::consts::TAU * 523.0 * t).sin(),
                shared + 0.1 * (std::f32::consts::TAU * 659.0 * t).sin(),
            ]
        })
        .collect();
    samples
        .chunks(2048)
        .enumerate()
        .map(|(k, chunk)| AudioBlock {
            pts: from * 1_000_000 + k as i64 * 1024 * 1_000_000 / RATE,
            skipped: 0,
            rate: RATE as u32,
            channels: 2,
            lfe: None,
            samples: chunk.to_vec().into(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut segment: Segment = vqa_core::testing::audio_segment(1, second(1));
    segment.audio_lead_in = second(0);
    for name in [
        DetectorName::AudioClicks,
        DetectorName::AudioPhase,
        DetectorName::AudioMono,
        DetectorName::AudioLevel,
        DetectorName::Silence,
        DetectorName::Clipping,
    ] {
        let config = PipelineConfig {
            detectors: vec![name],
            ..PipelineConfig::default()
        };
        let detectors = vqa_detectors::from_config(&config).expect("no model to load");
        let detector: &dyn Detector = detectors[0].as_ref();
        c.bench_function(&format!("{name} per second of 48 kHz stereo"), |b| {
            b.iter(|| detector.analyze(std::hint::black_box(&segment)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
