//! FFmpeg's own detector filters, run with the `ffmpeg` CLI on a corpus clip, so that vqa's
//! detectors can be scored side by side with them.
//!
//! One `ffmpeg` run per clip applies every filter the evaluated kinds need:
//! `freezedetect`, `blackdetect` and `blurdetect` on the video, `silencedetect` and `ebur128`
//! on the audio, and `blockdetect` on windows of the video. Two FFmpeg 5.1 behaviours shape
//! the recipe:
//!
//! * `blockdetect` never resets its gradient sums, so its per-frame value is an average
//!   since the first frame it saw; each window therefore gets its own instance (behind
//!   `trim`), named `blockdetect@wN` so its closing "block mean" line says which window it
//!   measured.
//! * `ebur128` logs every 100 ms step with the short-term loudness of the 3 s before it,
//!   and −120.7 LUFS until the first window is full; values below −70 LUFS are silence
//!   (not judged, as in vqa).

use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;
use serde_json::Value;
use vqa_core::{IncidentKind, PipelineConfig};

use super::Span;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("the ffmpeg CLI is not installed (apt-get install ffmpeg); or pass --no-ffmpeg")]
    NotInstalled,
    #[error("cannot run {program}: {message}")]
    Spawn {
        program: &'static str,
        message: String,
    },
    #[error("{program} failed: {message}")]
    Failed {
        program: &'static str,
        message: String,
    },
}

/// Thresholds for FFmpeg's filters. Where a filter has a parameter vqa's detector shares,
/// it takes vqa's configured value; the rest were chosen for this comparison and are
/// printed with the results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReferenceSettings {
    /// freezedetect `n` (dB) and `d` (s): vqa's `freeze.noise_db` and `freeze.min_duration`.
    pub freeze_noise_db: f64,
    pub freeze_min_duration: f64,
    /// blackdetect `pix_th`, `pic_th` and `d`: vqa's `black.*`.
    pub black_pixel_threshold: f64,
    pub black_picture_ratio: f64,
    pub black_min_duration: f64,
    /// silencedetect `n` (dB) and `d` (s): vqa's `silence.*`.
    pub silence_noise_db: f64,
    pub silence_min_duration: f64,
    /// blockdetect: window length (s), the window's "block mean" at or above which it is
    /// blocky, and the shortest blocky run (vqa's `blockiness.min_duration`).
    pub block_window: f64,
    pub block_threshold: f64,
    pub block_min_duration: f64,
    /// blurdetect: per-frame `lavfi.blur` (mean edge width, pixels) at or above this,
    /// scaled from 1080 lines to the clip's height, is blurred; shortest run is vqa's
    /// `blur.min_duration`.
    pub blur_threshold_1080: f64,
    pub blur_min_duration: f64,
    /// ebur128: short-term loudness outside `[low, high]` LUFS (vqa's `loudness_jump`
    /// bounds; `low` is -inf unless vqa judges dips) for at least vqa's
    /// `loudness_jump.min_duration`.
    pub loudness_low_lufs: f64,
    pub loudness_high_lufs: f64,
    pub loudness_min_duration: f64,
}

/// Short-term loudness below this is silence, not a loudness excursion (as in vqa).
const SILENT_LUFS: f64 = -70.0;
/// Length of one `ebur128` log step, seconds.
const EBUR128_STEP: f64 = 0.1;

impl ReferenceSettings {
    pub fn from_config(config: &PipelineConfig) -> Self {
        let loudness = &config.loudness;
        ReferenceSettings {
            freeze_noise_db: config.freeze.noise_db,
            freeze_min_duration: config.freeze.min_duration,
            black_pixel_threshold: config.black.pixel_threshold,
            black_picture_ratio: config.black.picture_ratio,
            black_min_duration: config.black.min_duration,
            silence_noise_db: config.silence.noise_db,
            silence_min_duration: config.silence.min_duration,
            block_window: 0.25,
            // Measured on the quick corpus: natural content's windows stay below 4, a
            // starved MPEG-2 picture's measure 5.5-18. Test patterns measure 15-20 and colour
            // bars thousands whatever the encoder did (their regular edges read as a block
            // grid), so no threshold clears them.
            block_threshold: 5.0,
            block_min_duration: config.blockiness.min_duration,
            // Measured on the quick corpus, scaled to 1080 lines: sharp pictures 13-24,
            // blurred (sigma 3-4) 24-55; flat scenes with few edges give erratic values.
            blur_threshold_1080: 25.0,
            blur_min_duration: config.blur.min_duration,
            loudness_low_lufs: if loudness.max_below_lu > 0.0 {
                loudness.target_lufs - loudness.max_below_lu
            } else {
                f64::NEG_INFINITY
            },
            loudness_high_lufs: loudness.target_lufs + loudness.max_above_lu,
            loudness_min_duration: config.loudness_jump.min_duration,
        }
    }

    /// The filter and thresholds used for `kind`, in words; `None` when FFmpeg has no
    /// filter for it.
    pub fn describe(&self, kind: IncidentKind) -> Option<String> {
        Some(match kind {
            IncidentKind::Freeze => format!(
                "freezedetect n={}dB d={}",
                self.freeze_noise_db, self.freeze_min_duration
            ),
            IncidentKind::Black => format!(
                "blackdetect pix_th={} pic_th={} d={}",
                self.black_pixel_threshold, self.black_picture_ratio, self.black_min_duration
            ),
            IncidentKind::Silence => format!(
                "silencedetect n={}dB d={}",
                self.silence_noise_db, self.silence_min_duration
            ),
            IncidentKind::Blockiness => format!(
                "blockdetect (defaults), one instance per {} s window, window mean >= {}, runs >= {} s",
                self.block_window, self.block_threshold, self.block_min_duration
            ),
            IncidentKind::Blur => format!(
                "blurdetect (defaults), lavfi.blur >= {} px x height/1080, runs >= {} s",
                self.blur_threshold_1080, self.blur_min_duration
            ),
            IncidentKind::LoudnessJump => format!(
                "ebur128 short-term outside [{}, {}] LUFS (above {SILENT_LUFS}), runs >= {} s",
                self.loudness_low_lufs, self.loudness_high_lufs, self.loudness_min_duration
            ),
            _ => return None,
        })
    }
}

/// Kinds FFmpeg has a filter for.
pub fn has_filter(kind: IncidentKind) -> bool {
    matches!(
        kind,
        IncidentKind::Freeze
            | IncidentKind::Black
            | IncidentKind::Silence
            | IncidentKind::Blockiness
            | IncidentKind::Blur
            | IncidentKind::LoudnessJump
    )
}

/// True when `ffmpeg` and `ffprobe` both run.
pub fn available() -> bool {
    ["ffmpeg", "ffprobe"].iter().all(|tool| {
        Command::new(tool)
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Runs `program` and returns (stdout, stderr), failing with the last line of stderr.
fn run(program: &'static str, args: &[String]) -> Result<(String, String), ReferenceError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => ReferenceError::NotInstalled,
            _ => ReferenceError::Spawn {
                program,
                message: e.to_string(),
            },
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(ReferenceError::Failed {
            program,
            message: last.unwrap_or("no message").trim().to_string(),
        });
    }
    Ok((String::from_utf8_lossy(&output.stdout).into_owned(), stderr))
}

/// What `ffprobe` says about the clip: enough to build the filter graph.
struct Media {
    video_height: Option<u32>,
    audio: bool,
    duration: f64,
}

fn probe(path: &Path) -> Result<Media, ReferenceError> {
    let args = [
        "-v",
        "error",
        "-show_entries",
        "format=duration:stream=codec_type,height",
        "-of",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([path.to_string_lossy().into_owned()])
    .collect::<Vec<_>>();
    let (stdout, _) = run("ffprobe", &args)?;
    let json: Value = serde_json::from_str(&stdout).map_err(|e| ReferenceError::Failed {
        program: "ffprobe",
        message: format!("invalid JSON: {e}"),
    })?;
    let streams = json
        .get("streams")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let of_type = |t: &str| {
        streams
            .iter()
            .find(|s| s.get("codec_type").and_then(Value::as_str) == Some(t))
    };
    let duration = json
        .get("format")
        .and_then(|f| f.get("duration"))
        .and_then(Value::as_str)
        .and_then(|d| d.parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok(Media {
        video_height: of_type("video").map(|v| {
            v.get("height")
                .and_then(Value::as_u64)
                .map_or(0, |h| h as u32)
        }),
        audio: of_type("audio").is_some(),
        duration,
    })
}

/// Runs FFmpeg's filters for those of `kinds` it has one for, and returns what they found,
/// in seconds from the start of the file.
pub fn detect(
    path: &Path,
    settings: &ReferenceSettings,
    kinds: &[IncidentKind],
) -> Result<Vec<Span>, ReferenceError> {
    let wants = |k: IncidentKind| kinds.contains(&k);
    let media = probe(path)?;
    let mut graph: Vec<String> = Vec::new();
    let mut maps: Vec<&str> = Vec::new();
    let mut windows = 0usize;
    if media.video_height.is_some() {
        let mut chain: Vec<String> = Vec::new();
        let s = settings;
        if wants(IncidentKind::Freeze) {
            chain.push(format!(
                "freezedetect=n={}dB:d={}",
                s.freeze_noise_db, s.freeze_min_duration
            ));
        }
        if wants(IncidentKind::Black) {
            chain.push(format!(
                "blackdetect=d={}:pix_th={}:pic_th={}",
                s.black_min_duration, s.black_pixel_threshold, s.black_picture_ratio
            ));
        }
        if wants(IncidentKind::Blur) {
            chain.push("blurdetect,metadata=mode=print:key=lavfi.blur".to_string());
        }
        if wants(IncidentKind::Blockiness) && media.duration > 0.0 {
            windows = (media.duration / s.block_window).ceil() as usize;
        }
        if !chain.is_empty() || windows > 0 {
            if chain.is_empty() {
                chain.push("null".to_string());
            }
            let labels: String = (0..windows).map(|w| format!("[w{w}]")).collect();
            graph.push(format!(
                "[0:v:0]split={}[vmain]{labels};[vmain]{}[vout]",
                windows + 1,
                chain.join(",")
            ));
            for w in 0..windows {
                let start = w as f64 * s.block_window;
                graph.push(format!(
                    "[w{w}]trim=start={start}:end={},blockdetect@w{w},nullsink",
                    start + s.block_window
                ));
            }
            maps.push("[vout]");
        }
    }
    if media.audio {
        let mut chain: Vec<String> = Vec::new();
        if wants(IncidentKind::Silence) {
            chain.push(format!(
                "silencedetect=n={}dB:d={}",
                settings.silence_noise_db, settings.silence_min_duration
            ));
        }
        if wants(IncidentKind::LoudnessJump) {
            chain.push("ebur128=framelog=info".to_string());
        }
        if !chain.is_empty() {
            graph.push(format!("[0:a:0]{}[aout]", chain.join(",")));
            maps.push("[aout]");
        }
    }
    if maps.is_empty() {
        return Ok(Vec::new());
    }
    let mut args: Vec<String> = [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "info",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(path.to_string_lossy().into_owned());
    args.extend(["-filter_complex".to_string(), graph.join(";")]);
    for map in maps {
        args.extend(["-map".to_string(), map.to_string()]);
    }
    args.extend(["-f", "null", "-"].map(String::from));
    let (_, log) = run("ffmpeg", &args)?;
    let height = media.video_height.unwrap_or(0);
    Ok(parse_log(&log, settings, height, media.duration))
}

/// The number after `key` in `line`.
fn value_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.trim_start()
        .split(|c: char| c.is_whitespace() || c == '|')
        .next()?
        .parse()
        .ok()
}

/// Two intervals this close are contiguous: ffmpeg prints times with 6 significant digits
/// (`t: 9.99998`, then `t: 10.1`), far coarser than any frame or 100 ms step edge needs.
const CONTIGUOUS: f64 = 1e-3;

/// Joins flagged intervals that follow each other without a gap and keeps runs of at least
/// `min` seconds.
fn runs(intervals: &[(f64, f64, bool)], min: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut open: Option<(f64, f64)> = None;
    for &(start, end, flagged) in intervals {
        match (flagged, open.as_mut()) {
            (true, Some(run)) if start <= run.1 + CONTIGUOUS => run.1 = end,
            (true, _) => {
                out.extend(open.take());
                open = Some((start, end));
            }
            (false, _) => out.extend(open.take()),
        }
    }
    out.extend(open);
    out.retain(|(s, e)| e - s >= min - 1e-9);
    out
}

/// Everything the filters reported in ffmpeg's log. Freezes and silences still open at
/// the end close at `duration`.
pub(crate) fn parse_log(
    log: &str,
    settings: &ReferenceSettings,
    height: u32,
    duration: f64,
) -> Vec<Span> {
    let mut found = Vec::new();
    let (mut open_freeze, mut open_silence) = (None, None);
    let mut blur_frames: Vec<(f64, f64)> = Vec::new();
    let mut frame_time: Option<f64> = None;
    let mut windows: Vec<(usize, f64)> = Vec::new();
    let mut loudness_steps: Vec<(f64, f64, bool)> = Vec::new();
    let span = |kind, start, end| Span { kind, start, end };
    for line in log.lines() {
        if let Some(t) = value_after(line, "freeze_start:") {
            open_freeze = Some(t);
        } else if let Some(t) = value_after(line, "freeze_end:") {
            if let Some(start) = open_freeze.take() {
                found.push(span(IncidentKind::Freeze, start, t));
            }
        } else if let (Some(s), Some(e)) = (
            value_after(line, "black_start:"),
            value_after(line, "black_end:"),
        ) {
            found.push(span(IncidentKind::Black, s, e));
        } else if let Some(t) = value_after(line, "silence_start:") {
            open_silence = Some(t);
        } else if let Some(t) = value_after(line, "silence_end:") {
            if let Some(start) = open_silence.take() {
                found.push(span(IncidentKind::Silence, start, t));
            }
        } else if let Some(t) = value_after(line, "pts_time:") {
            frame_time = Some(t);
        } else if let Some(v) = value_after(line, "lavfi.blur=") {
            if let Some(t) = frame_time.take() {
                blur_frames.push((t, v));
            }
        } else if line.contains("block mean:") {
            let window = line
                .split("blockdetect@w")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<usize>().ok());
            if let (Some(w), Some(v)) = (window, value_after(line, "block mean:")) {
                windows.push((w, v));
            }
        } else if line.contains("TARGET:") {
            if let (Some(t), Some(s)) = (value_after(line, "t:"), value_after(line, " S:")) {
                let out = s > SILENT_LUFS
                    && (s < settings.loudness_low_lufs || s > settings.loudness_high_lufs);
                loudness_steps.push((t - EBUR128_STEP, t, out));
            }
        }
    }
    if let Some(start) = open_freeze {
        found.push(span(IncidentKind::Freeze, start, duration));
    }
    if let Some(start) = open_silence {
        found.push(span(IncidentKind::Silence, start, duration));
    }

    // Blur: each frame lasts until the next (the last as long as the one before it).
    let threshold = settings.blur_threshold_1080 * f64::from(height) / 1080.0;
    let frames: Vec<(f64, f64, bool)> = blur_frames
        .iter()
        .enumerate()
        .map(|(i, &(t, v))| {
            let next = blur_frames.get(i + 1).map(|f| f.0).unwrap_or_else(|| {
                let step = i.checked_sub(1).map_or(0.04, |p| t - blur_frames[p].0);
                t + step
            });
            (t, next, v >= threshold)
        })
        .collect();
    for (s, e) in runs(&frames, settings.blur_min_duration) {
        found.push(span(IncidentKind::Blur, s, e));
    }

    windows.sort_by_key(|&(w, _)| w);
    let window = settings.block_window;
    let windows: Vec<(f64, f64, bool)> = windows
        .iter()
        .map(|&(w, v)| {
            let start = w as f64 * window;
            // A window past the end of the video never saw a frame and never logs.
            (
                start,
                (start + window).min(duration),
                v >= settings.block_threshold,
            )
        })
        .collect();
    for (s, e) in runs(&windows, settings.block_min_duration) {
        found.push(span(IncidentKind::Blockiness, s, e));
    }
    for (s, e) in runs(&loudness_steps, settings.loudness_min_duration) {
        found.push(span(IncidentKind::LoudnessJump, s, e));
    }
    found.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.kind.cmp(&b.kind)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_filter_and_applies_the_thresholds() {
        let settings = ReferenceSettings {
            block_window: 0.5,
            loudness_min_duration: 0.3,
            blur_min_duration: 0.08,
            ..ReferenceSettings::from_config(&PipelineConfig::default())
        };
        let log = "\
[freezedetect @ 0x1] lavfi.freezedetect.freeze_start: 2.02
[freezedetect @ 0x1] lavfi.freezedetect.freeze_end: 4.02
[blackdetect @ 0x2] black_start:6.02 black_end:7.02 black_duration:1
[silencedetect @ 0x3] silence_start: 8.5
[silencedetect @ 0x3] silence_end: 9.5 | silence_duration: 1
[Parsed_metadata_2 @ 0x4] frame:0    pts:0       pts_time:0
[Parsed_metadata_2 @ 0x4] lavfi.blur=4.9
[Parsed_metadata_2 @ 0x4] frame:1    pts:512     pts_time:0.04
[Parsed_metadata_2 @ 0x4] lavfi.blur=14.1
[Parsed_metadata_2 @ 0x4] frame:2    pts:1024    pts_time:0.08
[Parsed_metadata_2 @ 0x4] lavfi.blur=13.8
[Parsed_metadata_2 @ 0x4] frame:3    pts:1536    pts_time:0.12
[Parsed_metadata_2 @ 0x4] lavfi.blur=5.0
[blockdetect@w1 @ 0x5] block mean: 7.5
[blockdetect@w0 @ 0x5] block mean: 1.1
[blockdetect@w2 @ 0x5] block mean: 5.5
[blockdetect@w3 @ 0x5] block mean: nan
[Parsed_ebur128_9 @ 0x6] t: 0.0999792  TARGET:-23 LUFS    M:-120.7 S:-120.7     I: -70.0 LUFS
[Parsed_ebur128_9 @ 0x6] t: 0.199979   TARGET:-23 LUFS    M: -10.0 S: -12.0     I: -70.0 LUFS
[Parsed_ebur128_9 @ 0x6] t: 0.299979   TARGET:-23 LUFS    M: -10.0 S: -12.5     I: -70.0 LUFS
[Parsed_ebur128_9 @ 0x6] t: 0.399979   TARGET:-23 LUFS    M: -10.0 S: -13.0     I: -70.0 LUFS
[Parsed_ebur128_9 @ 0x6] t: 0.499979   TARGET:-23 LUFS    M: -23.0 S: -23.0     I: -70.0 LUFS
[silencedetect @ 0x3] silence_start: 11.5
";
        let found = parse_log(log, &settings, 240, 12.0);
        let got: Vec<(IncidentKind, f64, f64)> = found
            .iter()
            .map(|s| {
                (
                    s.kind,
                    (s.start * 1e3).round() / 1e3,
                    (s.end * 1e3).round() / 1e3,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                // 25 px at 1080 lines is 5.6 px at 240: frames 1 and 2.
                (IncidentKind::Blur, 0.04, 0.12),
                (IncidentKind::LoudnessJump, 0.1, 0.4),
                (IncidentKind::Blockiness, 0.5, 1.5),
                (IncidentKind::Freeze, 2.02, 4.02),
                (IncidentKind::Black, 6.02, 7.02),
                (IncidentKind::Silence, 8.5, 9.5),
                (IncidentKind::Silence, 11.5, 12.0),
            ]
        );
    }

    #[test]
    fn runs_join_neighbours_and_drop_short_ones() {
        let intervals = [
            (0.0, 1.0, true),
            (1.0, 2.0, true),
            (2.0, 3.0, false),
            (3.0, 3.5, true),
        ];
        assert_eq!(runs(&intervals, 1.0), vec![(0.0, 2.0)]);
        assert_eq!(runs(&intervals, 0.5), vec![(0.0, 2.0), (3.0, 3.5)]);
        // A window that never logged (no frames) separates its neighbours.
        let gap = [(0.0, 1.0, true), (2.0, 3.0, true)];
        assert_eq!(runs(&gap, 0.5), vec![(0.0, 1.0), (2.0, 3.0)]);
        // ebur128's `t: 9.99998` then `t: 10.1`: the steps still touch.
        let printed = [(9.89998, 9.99998, true), (10.0, 10.1, true)];
        assert_eq!(runs(&printed, 0.2), vec![(9.89998, 10.1)]);
    }
}
