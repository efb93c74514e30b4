//! What the distributed topology's test files share: the configuration they compare the
//! topologies on, and a run through each.

#![allow(dead_code)] // each test file uses its own share

use std::path::Path;

use vqa_core::{DetectorName, PipelineConfig, StreamReport};
use vqa_sfn_client::{analyze, Deployment, DistributedRun, RunOptions};
use vqa_testkit::emulator::Emulator;

/// Video and audio detectors, one with measurements merged across groups (loudness).
pub fn four_detectors() -> PipelineConfig {
    use DetectorName::*;
    PipelineConfig {
        detectors: vec![Freeze, Black, Silence, Loudness],
        ..PipelineConfig::default()
    }
}

/// The single process's report.
pub async fn single_process(path: &Path, config: &PipelineConfig) -> StreamReport {
    vqa_deploy_ecs::analyze_file(path, config)
        .await
        .expect("single-process analysis")
        .report
}

/// A run through the deployed state machine on the emulator.
pub async fn distributed(
    emulator: &Emulator,
    deployment: &Deployment,
    path: &Path,
    config: &PipelineConfig,
    options: RunOptions,
) -> DistributedRun {
    analyze(
        &emulator.sdk().await,
        path,
        vqa_deploy_ecs::stream_id_for(path),
        config,
        deployment,
        options,
    )
    .await
    .unwrap_or_else(|e| panic!("distributed analysis failed: {e}"))
}

/// Asserts two reports (as JSON) equal, numbers to 0.01: FFmpeg's audio decoders dither, so
/// audio decoded from a chunk's keyframe differs that little from one pass (see the live
/// tests).
pub fn assert_close(what: &str, got: &serde_json::Value, expected: &serde_json::Value) {
    use serde_json::Value;
    fn close(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 0.01
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| close(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
            }
            _ => a == b,
        }
    }
    assert!(
        close(got, expected),
        "{what} differs:\n got: {got}\nwant: {expected}"
    );
}

/// `clip` with its sound as DVB carries it, MPEG-1 Layer II, in MPEG-TS (`broadcast.ts` in
/// `dir`). FFmpeg's audio decoders keep random state from frame to frame — MP2's rounding
/// dither (±1 LSB of 16 bits), AC-3's dither of zero-bit mantissas, AAC's noise substitution
/// — so a chunk decoded from its keyframe gets samples that differ that little from the same
/// samples decoded in one pass (measured: MP2 at most 3.1e-5, AC-3 4.7e-3, AAC 1.6e-2 of
/// full scale). A single monitor joining a live stream a moment later would differ as much.
/// Audio figures are therefore compared to 0.01 (dB, LU, s, [`assert_close`]); everything
/// else exactly.
pub fn broadcast_ts(clip: &Path, dir: &Path) -> std::path::PathBuf {
    let source = dir.join("broadcast.ts");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(clip)
        .args(["-map", "0", "-c:v", "copy", "-c:a", "mp2", "-b:a", "192k"])
        .arg(&source)
        .status()
        .expect("ffmpeg");
    assert!(
        status.success(),
        "ffmpeg could not remux {}",
        clip.display()
    );
    source
}
