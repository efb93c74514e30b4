//! FFmpeg's own detectors (`freezedetect`, `blackdetect`, `silencedetect`) as an
//! independent reference: the testkit checks its ground truth against them, and
//! tests of the analyser can use them to tell "my detector is wrong" from "the clip
//! is not what I think it is".

use std::path::Path;

use anyhow::{Context, Result};

use crate::tools::{probe, run_ffmpeg_info};
use crate::Defect;

/// Thresholds for the reference detectors.
///
/// The defaults detect injected defects exactly on testkit clips; FFmpeg's own
/// default minimum durations (2 s) are too long for short test defects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceSettings {
    /// freezedetect `n` (dB): frames closer than this count as identical.
    pub freeze_noise_db: f64,
    /// freezedetect `d` (s): minimum freeze length.
    pub freeze_min_seconds: f64,
    /// blackdetect `d` (s): minimum black length.
    pub black_min_seconds: f64,
    /// silencedetect `n` (dB): samples below this count as silent.
    pub silence_noise_db: f64,
    /// silencedetect `d` (s): minimum silence length.
    pub silence_min_seconds: f64,
}

impl Default for ReferenceSettings {
    fn default() -> Self {
        Self {
            freeze_noise_db: -60.0,
            freeze_min_seconds: 0.5,
            black_min_seconds: 0.5,
            silence_noise_db: -50.0,
            silence_min_seconds: 0.3,
        }
    }
}

/// Runs FFmpeg's detectors over `path` and returns what they report, in seconds from
/// the start of the file (ffmpeg's CLI subtracts the file's start time), sorted by
/// start. A defect still open at the end of the stream is closed at the file's
/// duration.
///
/// This is the one ffmpeg call made at `-loglevel info`: the detectors only report at
/// that level.
pub fn ffmpeg_reference(path: &Path, settings: &ReferenceSettings) -> Result<Vec<Defect>> {
    let info = probe(path)?;
    let has_video = info.count("video") > 0;
    let has_audio = info.count("audio") > 0;
    let mut args: Vec<String> = vec!["-i".into(), path.to_string_lossy().into_owned()];
    if has_video {
        args.extend([
            "-map".into(),
            "0:v:0".into(),
            "-filter:v".into(),
            format!(
                "freezedetect=n={}dB:d={},blackdetect=d={}",
                settings.freeze_noise_db, settings.freeze_min_seconds, settings.black_min_seconds
            ),
        ]);
    }
    if has_audio {
        args.extend([
            "-map".into(),
            "0:a:0".into(),
            "-filter:a".into(),
            format!(
                "silencedetect=n={}dB:d={}",
                settings.silence_noise_db, settings.silence_min_seconds
            ),
        ]);
    }
    args.extend(["-f".into(), "null".into(), "-".into()]);
    let stderr = run_ffmpeg_info(&args)
        .with_context(|| format!("running FFmpeg's detectors on {}", path.display()))?;
    let end_of_file = info.duration.unwrap_or(f64::INFINITY);
    Ok(parse_detector_log(&stderr, end_of_file))
}

/// The number that follows `key` in `line`, if `key` occurs.
fn value_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let token = rest
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '|')
        .next()?;
    token.parse().ok()
}

/// Parses freezedetect / blackdetect / silencedetect lines from ffmpeg's stderr.
pub(crate) fn parse_detector_log(stderr: &str, end_of_file: f64) -> Vec<Defect> {
    let mut found = Vec::new();
    let mut open_freeze: Option<f64> = None;
    let mut open_silence: Option<f64> = None;
    for line in stderr.lines() {
        if let Some(start) = value_after(line, "freeze_start:") {
            open_freeze = Some(start);
        } else if let Some(end) = value_after(line, "freeze_end:") {
            if let Some(start) = open_freeze.take() {
                found.push(Defect::freeze(start, end));
            }
        } else if let (Some(start), Some(end)) = (
            value_after(line, "black_start:"),
            value_after(line, "black_end:"),
        ) {
            found.push(Defect::black(start, end));
        } else if let Some(start) = value_after(line, "silence_start:") {
            open_silence = Some(start);
        } else if let Some(end) = value_after(line, "silence_end:") {
            if let Some(start) = open_silence.take() {
                found.push(Defect::silence(start, end));
            }
        }
    }
    if let Some(start) = open_freeze {
        found.push(Defect::freeze(start, end_of_file));
    }
    if let Some(start) = open_silence {
        found.push(Defect::silence(start, end_of_file));
    }
    found.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.kind.cmp(&b.kind)));
    found
}

/// Pretty form for test output: `freeze 2.000–4.500`.
pub fn describe(defects: &[Defect]) -> String {
    defects
        .iter()
        .map(|d| format!("{} {:.4}–{:.4}", d.kind, d.start, d.end))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DefectKind;

    #[test]
    fn parses_all_three_detectors() {
        let log = "\
[freezedetect @ 0x1] lavfi.freezedetect.freeze_start: 2.021
[freezedetect @ 0x1] lavfi.freezedetect.freeze_duration: 2
[freezedetect @ 0x1] lavfi.freezedetect.freeze_end: 4.021
[blackdetect @ 0x2] black_start:6.021 black_end:7.021 black_duration:1
[silencedetect @ 0x3] silence_start: 8.52335
[silencedetect @ 0x3] silence_end: 10.0267 | silence_duration: 1.50331
[freezedetect @ 0x1] lavfi.freezedetect.freeze_start: 11
";
        let found = parse_detector_log(log, 12.0);
        assert_eq!(
            found,
            vec![
                Defect::freeze(2.021, 4.021),
                Defect::black(6.021, 7.021),
                Defect::silence(8.52335, 10.0267),
                Defect::freeze(11.0, 12.0),
            ]
        );
        assert_eq!(
            describe(&found[..1]),
            format!("{} 2.0210–4.0210", DefectKind::Freeze)
        );
    }
}
