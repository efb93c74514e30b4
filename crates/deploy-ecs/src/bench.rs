//! `vqa bench`: how fast the single-process pipeline runs, against pure decoding.
//!
//! Measures decode alone (the converter, segments dropped), then the whole pipeline on the
//! same input, and reports frames per second of each plus the time inside the detectors
//! relative to decoding. Pin to one core (`taskset -c 0`) with `--decoder-threads 1` to get
//! per-core figures.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use vqa_core::{Converter, PipelineConfig};

use crate::{open_input, run, stream_id_for, RunError, RunStats, DEFAULT_IN_FLIGHT};

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
    let analysis = run(converter, config, stream, DEFAULT_IN_FLIGHT, None, None).await?;
    let s = analysis.stats;
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
    })
}

/// The result as a short table.
pub fn render(r: &BenchResult) -> String {
    let h = &r.pipeline.handoff;
    format!(
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
    )
}
