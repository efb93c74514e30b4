//! `vqa bench`: how fast the single-process pipeline runs, against pure decoding.
//!
//! Measures decode alone (the converter, segments dropped), then the whole pipeline on the
//! same input, and reports frames per second of each plus the time inside the detectors
//! relative to decoding; then each detector's own time per frame (one more decode, each
//! detector timed alone on every segment); and, when the `ffmpeg` CLI is installed, FFmpeg's
//! own filter chain for the same analyses (`freezedetect,blackdetect,blockdetect` +
//! `silencedetect,ebur128`) on the same input, single-threaded. Pin to one core
//! (`taskset -c 0`) with `--decoder-threads 1` to get per-core figures.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use vqa_core::{Converter, PipelineConfig};

use vqa_deploy_ecs::resources::peak_rss_mb;
use vqa_deploy_ecs::{open_input, run, stream_id_for, RunError, RunStats, DEFAULT_IN_FLIGHT};

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub input: String,
    pub media_seconds: f64,
    pub video_frames: u64,
    /// Converter alone: frames per second of demux + decode + cutting into segments.
    pub decode_fps: f64,
    /// Converter, detectors, aggregator and handoffs: frames per second end to end.
    pub pipeline_fps: f64,
    /// Time inside the detectors as a fraction of the time inside the converter, same run.
    pub detect_to_decode: f64,
    /// Handoff time (moving, encoding, back-pressure aside) as a fraction of the pipeline's
    /// segment processing time (convert + detect + aggregate).
    pub handoff_share: f64,
    pub pipeline: RunStats,
    /// Each detector's time per video frame (audio detectors: per video frame of the same
    /// stretch), in milliseconds, measured alone, in the configuration's order.
    pub detector_ms_per_frame: Vec<(String, f64)>,
    /// FFmpeg's filter chain on the same input, if the `ffmpeg` CLI is installed.
    pub ffmpeg_chain_fps: Option<f64>,
    /// Peak resident memory of this process over the whole benchmark, MB.
    pub peak_rss_mb: f64,
}

/// FFmpeg's own analysis chain, as close as FFmpeg gets to vqa's default detectors.
pub const FFMPEG_CHAIN: &str = "freezedetect,blackdetect,blockdetect + silencedetect,ebur128";

/// Seconds FFmpeg takes to run its analysis filters over the input on one thread, or `None`
/// when it is not installed or fails.
fn ffmpeg_chain_seconds(path: &Path, has_video: bool, has_audio: bool) -> Option<f64> {
    let mut graph = Vec::new();
    if has_video {
        graph.push("[0:v:0]freezedetect,blackdetect,blockdetect[v]");
    }
    if has_audio {
        graph.push("[0:a:0]silencedetect,ebur128[a]");
    }
    if graph.is_empty() {
        return None;
    }
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-threads",
        "1",
    ])
    .args(["-filter_threads", "1", "-filter_complex_threads", "1", "-i"])
    .arg(path)
    .args(["-filter_complex", &graph.join(";")]);
    if has_video {
        cmd.args(["-map", "[v]"]);
    }
    if has_audio {
        cmd.args(["-map", "[a]"]);
    }
    cmd.args(["-f", "null", "-"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let t = Instant::now();
    let status = cmd.status().ok()?;
    status.success().then(|| t.elapsed().as_secs_f64())
}

pub async fn bench(path: &Path, config: &PipelineConfig) -> Result<BenchResult, RunError> {
    let stream = stream_id_for(path);

    let mut converter = open_input(path, stream.clone(), config)?;
    let t = Instant::now();
    let mut frames = 0u64;
    while let Some(segment) = converter.next_segment() {
        frames += segment.video.len() as u64;
    }
    let decode_seconds = t.elapsed().as_secs_f64();

    let converter = open_input(path, stream.clone(), config)?;
    let analysis = run(
        converter,
        config,
        stream.clone(),
        DEFAULT_IN_FLIGHT,
        None,
        None,
    )
    .await?;
    let s = analysis.stats;

    // Each detector alone on the same segments.
    let detectors = vqa_detectors::from_config(config)?;
    let mut spent = vec![0f64; detectors.len()];
    let mut converter = open_input(path, stream.clone(), config)?;
    let (has_video, has_audio) = (
        converter.media().video.is_some(),
        converter.media().audio.is_some(),
    );
    let mut timed_frames = 0u64;
    while let Some(segment) = converter.next_segment() {
        timed_frames += segment.video.len() as u64;
        for (d, t) in detectors.iter().zip(&mut spent) {
            let mut m = vqa_core::Measurements::default();
            let start = Instant::now();
            std::hint::black_box(d.analyze_measuring(&segment, &mut m));
            *t += start.elapsed().as_secs_f64();
        }
    }
    let detector_ms_per_frame = detectors
        .iter()
        .zip(&spent)
        .map(|(d, &t)| {
            (
                d.name().to_string(),
                t * 1000.0 / timed_frames.max(1) as f64,
            )
        })
        .collect();
    let ffmpeg_chain_fps =
        ffmpeg_chain_seconds(path, has_video, has_audio).map(|t| frames as f64 / t);

    let processing = s.convert_seconds + s.detect_seconds + s.aggregate_seconds;
    let handoff = (s.handoff.transfer_nanos + s.handoff.encode_nanos) as f64 / 1e9;
    Ok(BenchResult {
        input: path.display().to_string(),
        media_seconds: vqa_core::time::to_secs(analysis.report.coverage.analysed),
        video_frames: frames,
        decode_fps: frames as f64 / decode_seconds,
        pipeline_fps: s.video_frames as f64 / s.wall_seconds,
        detect_to_decode: s.detect_seconds / s.convert_seconds,
        handoff_share: handoff / processing,
        pipeline: s,
        detector_ms_per_frame,
        ffmpeg_chain_fps,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// The result as a short table.
pub fn render(r: &BenchResult) -> String {
    let h = &r.pipeline.handoff;
    let mut per_detector = String::new();
    for (name, ms) in &r.detector_ms_per_frame {
        per_detector.push_str(&format!("  {name:<18} {ms:>8.3} ms per frame\n"));
    }
    let ffmpeg = match r.ffmpeg_chain_fps {
        Some(fps) => format!(
            "ffmpeg chain         {fps:>8.1} fps   ({FFMPEG_CHAIN}, one thread); \
             vqa is {:.1}x faster\n",
            r.pipeline_fps / fps
        ),
        None => "ffmpeg chain         not measured (no ffmpeg CLI)\n".to_string(),
    };
    let table = format!(
        "{input}: {secs:.1} s, {frames} frames\n\
         decode only          {dfps:>8.1} fps\n\
         decode + detectors   {pfps:>8.1} fps   (wall {wall:.2} s)\n\
         time in converter    {conv:>8.3} s\n\
         time in detectors    {det:>8.3} s   ({ratio:.1}% of converter time)\n\
         time in aggregator   {agg:>8.3} s\n\
         handoff              {req} requests, {payload} payload bytes, {copied} bytes copied, \
         {fcopied} frame bytes copied, {hs:.4}% of processing time\n",
        input = r.input,
        secs = r.media_seconds,
        frames = r.video_frames,
        dfps = r.decode_fps,
        pfps = r.pipeline_fps,
        wall = r.pipeline.wall_seconds,
        conv = r.pipeline.convert_seconds,
        det = r.pipeline.detect_seconds,
        ratio = r.detect_to_decode * 100.0,
        agg = r.pipeline.aggregate_seconds,
        req = h.requests(),
        payload = h.payload_bytes_put,
        copied = h.copied_bytes,
        fcopied = h.frame_bytes_copied,
        hs = r.handoff_share * 100.0,
    );
    format!(
        "{table}{ffmpeg}pipeline / decode    {:>8.1}%\npeak RSS             {:>8.1} MB\n\
         each detector alone:\n{per_detector}",
        r.pipeline_fps / r.decode_fps * 100.0,
        r.peak_rss_mb
    )
}
