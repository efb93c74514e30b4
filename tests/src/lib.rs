//! Test clips with defects at known times, made with the `ffmpeg` command line, and
//! their exact ground truth.
//!
//! Clips are rendered from lavfi sources only (no downloads): `testsrc2` or a
//! "natural programme" of generated scenes with hard cuts and light grain, plus a tone
//! per audio channel. Defects are injected by frame number and sample number, so the
//! ground truth is exact:
//!
//! * **freeze** `[S, E)`: frames `F = round(S·fps)` … `L = round(E·fps) − 1` all show
//!   frame `F` (`freezeframes`). Truth is `[F/fps, (L+1)/fps)`. Halves round up, so a
//!   freeze requested to end at 4.5 s at 25 fps (frame 112.5) ends at 4.52 s.
//! * **black** `[S, E)`: the same frame range is filled black (`drawbox`, enabled with
//!   `between(n, F, L)` on the frame number). A black span is also a run of identical
//!   frames, so an analyser may legitimately report a freeze there too: those freezes
//!   are listed in [`Clip::implied`], which a test may accept but must not require.
//! * **silence** `[S, E)`: samples `round(S·sr)` … `round(E·sr) − 1` are exactly 0 on
//!   every channel (`aevalsrc` gates each sample by its index `n`). After AAC the
//!   interior decodes to exact zeros; the edges smear by a few milliseconds (2–3 ms
//!   in stereo, up to ~25 ms on the band-limited 5.1 LFE channel).
//!
//! Outside the defects the video changes every frame and the audio is never quiet, so
//! a correct analyser reports exactly the truth (plus, optionally, the implied
//! freezes). One caveat: a keyframe inside a freeze re-encodes the frozen picture, see
//! [`Clip::keyframes`].
//!
//! Times are seconds from the start of the file as ffmpeg's CLI reports them (stream
//! time minus the file's start time). FFmpeg's AAC encoder adds 1024 samples of
//! priming. MP4 signals it in an edit list and decoders drop it, so MP4 truth equals
//! the frame/sample positions. MKV and MPEG-TS cannot signal it: the priming is
//! decoded as audio and the muxer delays the video by the same amount to keep sync, so
//! in files with audio everything lands `1024 / sample_rate` later (21.3 ms at
//! 48 kHz). [`make_clip`] measures the stream start times with `ffprobe` and shifts
//! the truth accordingly ([`Clip::video_offset`], [`Clip::audio_offset`]).
//!
//! ```no_run
//! use vqa_testkit::{make_clip, ClipSpec, Defect};
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = std::env::temp_dir();
//! let spec = ClipSpec {
//!     defects: vec![Defect::freeze(2.0, 4.0), Defect::silence(6.0, 7.5)],
//!     ..ClipSpec::default()
//! };
//! let clip = make_clip(&dir, "example", &spec)?;
//! for defect in &clip.truth {
//!     println!("{} {:.3}–{:.3}", defect.kind, defect.start, defect.end);
//! }
//! # Ok(())
//! # }
//! ```

mod bad_inputs;
mod graph;
mod reference;
mod tools;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Context, Result};
use serde::{Deserialize, Serialize};

pub use bad_inputs::{make_bad_inputs, BadInputs};
pub use reference::{describe, ffmpeg_reference, ReferenceSettings};
pub use tools::{
    ffmpeg_available, ffmpeg_or_skip, probe, run_ffmpeg, video_keyframes, ProbeInfo, StreamInfo,
    FFMPEG_INSTALL_HINT,
};

/// Samples of priming (encoder delay) FFmpeg's native AAC encoder puts before the
/// first real sample.
pub const AAC_PRIMING_SAMPLES: u32 = 1024;

/// What kind of defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefectKind {
    /// The picture stops changing.
    Freeze,
    /// The picture is entirely black.
    Black,
    /// The audio is digital silence on all channels.
    Silence,
}

impl DefectKind {
    /// All kinds, in a fixed order.
    pub const ALL: [DefectKind; 3] = [DefectKind::Freeze, DefectKind::Black, DefectKind::Silence];

    /// Lower-case name: `"freeze"`, `"black"` or `"silence"` (same as the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            DefectKind::Freeze => "freeze",
            DefectKind::Black => "black",
            DefectKind::Silence => "silence",
        }
    }
}

impl fmt::Display for DefectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A defect over the half-open interval `[start, end)`, in seconds from the start of
/// the file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Defect {
    pub kind: DefectKind,
    pub start: f64,
    pub end: f64,
}

impl Defect {
    pub fn new(kind: DefectKind, start: f64, end: f64) -> Self {
        Self { kind, start, end }
    }

    pub fn freeze(start: f64, end: f64) -> Self {
        Self::new(DefectKind::Freeze, start, end)
    }

    pub fn black(start: f64, end: f64) -> Self {
        Self::new(DefectKind::Black, start, end)
    }

    pub fn silence(start: f64, end: f64) -> Self {
        Self::new(DefectKind::Silence, start, end)
    }

    /// Length in seconds.
    pub fn duration(&self) -> f64 {
        self.end - self.start
    }

    /// True when this defect is of `kind` and shares some time with `[start, end)`.
    pub fn overlaps(&self, kind: DefectKind, start: f64, end: f64) -> bool {
        self.kind == kind && self.start < end && start < self.end
    }

    /// True when `other` has the same kind and both ends within `tolerance` seconds.
    pub fn matches(&self, other: &Defect, tolerance: f64) -> bool {
        self.kind == other.kind
            && (self.start - other.start).abs() <= tolerance
            && (self.end - other.end).abs() <= tolerance
    }
}

/// What the picture shows outside defects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// FFmpeg's `testsrc2`: colour bars with moving elements and a frame counter.
    #[default]
    TestPattern,
    /// Generated scenes (fractal zooms, Game of Life, gradients, cellular automata)
    /// with hard cuts every 2–2.8 s and light temporal grain: every frame differs
    /// from the previous one, encodes like real footage and has real scene changes.
    Natural,
}

/// Output container; the codecs are always H.264 (libx264, yuv420p) and AAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    /// MP4 with `-movflags +faststart` (index first, so a truncated copy still opens).
    #[default]
    Mp4,
    /// Matroska.
    Mkv,
    /// MPEG transport stream.
    Ts,
}

impl Container {
    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mkv => "mkv",
            Container::Ts => "ts",
        }
    }

    /// The container for a path's extension (`mp4`/`m4a`, `mkv`/`mka`, `ts`).
    pub fn from_path(path: &Path) -> Option<Container> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "mp4" | "m4a" | "m4v" | "mov" => Some(Container::Mp4),
            "mkv" | "mka" => Some(Container::Mkv),
            "ts" | "m2ts" | "mts" => Some(Container::Ts),
            _ => None,
        }
    }

    /// ffmpeg muxer name and muxer-specific flags.
    fn muxer_args(self) -> &'static [&'static str] {
        match self {
            Container::Mp4 => &["-movflags", "+faststart", "-f", "mp4"],
            Container::Mkv => &["-f", "matroska"],
            Container::Ts => &["-f", "mpegts"],
        }
    }

    /// Whether the container tells decoders to drop the AAC priming samples
    /// (MP4 does, with an edit list; Matroska and MPEG-TS as written by FFmpeg 5.1 do
    /// not).
    fn signals_audio_priming(self) -> bool {
        matches!(self, Container::Mp4)
    }
}

/// What clip to make. Start from [`ClipSpec::default`] and override fields (in JSON,
/// missing fields take their default values too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipSpec {
    /// Length in seconds.
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub content: Content,
    /// false: audio-only file.
    pub video: bool,
    /// 0: no audio track. 1, 2, 6 (5.1) and 8 (7.1) are supported.
    pub audio_channels: u16,
    pub sample_rate: u32,
    /// Requested defects. Times are rounded to whole frames / samples.
    pub defects: Vec<Defect>,
    pub container: Container,
    /// Fixed GOP length in frames (keyframe every `gop` frames, no scene-cut
    /// keyframes); `None` lets x264 decide (keyframes at scene cuts, at most 250
    /// frames apart). Keyframes inside a freeze make it not bit-exact there; see
    /// [`Clip::keyframes`].
    pub gop: Option<u32>,
    /// x264 preset; faster presets keep test set-up short.
    pub x264_preset: String,
    /// x264 constant rate factor.
    pub crf: u8,
}

impl Default for ClipSpec {
    /// 10 s, 320x240, 25 fps, test pattern, video plus stereo 48 kHz, no defects, MP4.
    fn default() -> Self {
        Self {
            duration: 10.0,
            width: 320,
            height: 240,
            fps: 25,
            content: Content::TestPattern,
            video: true,
            audio_channels: 2,
            sample_rate: 48_000,
            defects: Vec::new(),
            container: Container::Mp4,
            gop: None,
            x264_preset: "veryfast".to_owned(),
            crf: 20,
        }
    }
}

/// A generated clip and its ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clip {
    pub path: PathBuf,
    pub spec: ClipSpec,
    /// The requested defects as they really are in the file (frame/sample aligned,
    /// shifted by the container's start offsets), sorted by start time.
    pub truth: Vec<Defect>,
    /// Defects that follow from the requested ones and that an analyser may report
    /// but need not: a freeze over every black span (black frames are identical).
    pub implied: Vec<Defect>,
    /// Seconds added to frame-aligned times to get video truth (0 for MP4; the AAC
    /// priming delay for MKV/TS with audio).
    pub video_offset: f64,
    /// Seconds added to sample-aligned times to get audio truth.
    pub audio_offset: f64,
    /// Times of the video keyframes, seconds from the start of the file.
    ///
    /// A keyframe inside a freeze re-encodes the frozen picture from scratch, so the
    /// decoded keyframe is not identical to the frame before it: on natural content it
    /// differs by about 1.5–2 grey levels on average (≈ −43 dB), enough for FFmpeg's
    /// freezedetect to split the freeze there. An analyser should bridge such
    /// one-frame blips; a test can use these times to see why a freeze was split.
    pub keyframes: Vec<f64>,
}

/// Outcome of [`Clip::compare`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// (truth, reported) pairs that agree within the tolerance.
    pub matched: Vec<(Defect, Defect)>,
    /// Truth entries nothing reported matched.
    pub missed: Vec<Defect>,
    /// Reported defects that are neither truth nor implied (false positives).
    pub unexpected: Vec<Defect>,
}

impl Comparison {
    /// No misses and no false positives.
    pub fn is_exact(&self) -> bool {
        self.missed.is_empty() && self.unexpected.is_empty()
    }
}

impl Clip {
    /// Truth entries of one kind.
    pub fn truth_of(&self, kind: DefectKind) -> impl Iterator<Item = &Defect> + '_ {
        self.truth.iter().filter(move |d| d.kind == kind)
    }

    /// True when `[start, end)` overlaps a requested defect of `kind`.
    pub fn overlaps_requested(&self, kind: DefectKind, start: f64, end: f64) -> bool {
        self.truth.iter().any(|d| d.overlaps(kind, start, end))
    }

    /// Spans of `kind` that may be reported: truth plus implied, merged where they
    /// touch or overlap (within `tolerance`). A freeze that runs straight into a black
    /// span is one long run of repeated frames, and may be reported as such.
    fn allowed_spans(&self, kind: DefectKind, tolerance: f64) -> Vec<(f64, f64)> {
        let mut spans: Vec<(f64, f64)> = self
            .truth
            .iter()
            .chain(&self.implied)
            .filter(|d| d.kind == kind)
            .map(|d| (d.start, d.end))
            .collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, f64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 + tolerance => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// True when a reported `[start, end)` of `kind` is explained by the truth or the
    /// implied defects, within `tolerance` seconds at each end.
    pub fn is_expected(&self, kind: DefectKind, start: f64, end: f64, tolerance: f64) -> bool {
        self.allowed_spans(kind, tolerance)
            .iter()
            .any(|&(s, e)| s - tolerance <= start && end <= e + tolerance)
    }

    /// Compares reported defects with the truth. A truth entry counts as found when a
    /// reported defect of the same kind has both ends within `tolerance` of it, or of
    /// the merged truth-plus-implied span that contains it (see `is_expected`).
    pub fn compare(&self, reported: &[Defect], tolerance: f64) -> Comparison {
        let mut result = Comparison::default();
        for truth in &self.truth {
            let merged = self
                .allowed_spans(truth.kind, tolerance)
                .into_iter()
                .find(|&(s, e)| s <= truth.start && truth.end <= e)
                .map(|(s, e)| Defect::new(truth.kind, s, e));
            let hit = reported.iter().find(|r| {
                r.matches(truth, tolerance) || merged.is_some_and(|m| r.matches(&m, tolerance))
            });
            match hit {
                Some(r) => result.matched.push((*truth, *r)),
                None => result.missed.push(*truth),
            }
        }
        result.unexpected = reported
            .iter()
            .filter(|r| !self.is_expected(r.kind, r.start, r.end, tolerance))
            .copied()
            .collect();
        result
    }
}

/// `dir/name.ext`, without doubling an extension `name` already has.
fn output_path(dir: &Path, name: &str, container: Container) -> PathBuf {
    let extension = container.extension();
    let stem = name.strip_suffix(&format!(".{extension}")).unwrap_or(name);
    dir.join(format!("{stem}.{extension}"))
}

/// Rounds to whole nanoseconds, far below one audio sample, so that truth prints as
/// `1.341` rather than `1.3410000000000002`.
fn tidy_seconds(seconds: f64) -> f64 {
    (seconds * 1e9).round() / 1e9
}

/// Renders `spec` into `dir/name.<ext>` and returns the clip with its ground truth.
///
/// The file is written under a temporary name and renamed when complete, so a path
/// that exists is always a whole clip. Errors name the offending spec field, or carry
/// ffmpeg's stderr.
pub fn make_clip(dir: &Path, name: &str, spec: &ClipSpec) -> Result<Clip> {
    let layout = graph::layout(spec).context("invalid clip spec")?;
    let graph = graph::filter_complex(spec, &layout)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = output_path(dir, name, spec.container);
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("clip name {name:?} gives no file name"))?
        .to_string_lossy()
        .into_owned();
    let partial = dir.join(format!(".{file_name}.partial"));

    let mut args: Vec<String> = vec!["-filter_complex".into(), graph];
    if spec.video {
        args.extend(
            [
                "-map", "[vout]", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset",
            ]
            .map(String::from),
        );
        args.push(spec.x264_preset.clone());
        args.extend(["-crf".to_owned(), spec.crf.to_string()]);
        if let Some(gop) = spec.gop {
            let gop = gop.to_string();
            args.extend(["-g".into(), gop.clone(), "-keyint_min".into(), gop]);
            args.extend(["-sc_threshold".into(), "0".into()]);
        }
    }
    if spec.audio_channels > 0 {
        let bitrate = format!("{}k", 64 * u32::from(spec.audio_channels));
        args.extend(["-map", "[aout]", "-c:a", "aac", "-b:a"].map(String::from));
        args.push(bitrate);
    }
    args.extend(spec.container.muxer_args().iter().map(|s| s.to_string()));
    args.push(partial.to_string_lossy().into_owned());

    let rendered = run_ffmpeg(&args).with_context(|| format!("rendering {}", path.display()));
    if let Err(err) = rendered {
        let _ = fs::remove_file(&partial);
        return Err(err);
    }
    fs::rename(&partial, &path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;

    let info = probe(&path)?;
    let stream_start = |kind: &str| -> Result<f64> {
        let stream = info
            .first(kind)
            .ok_or_else(|| anyhow!("{} has no {kind} stream after rendering", path.display()))?;
        Ok(stream.start_time.unwrap_or(info.format_start) - info.format_start)
    };
    let video_offset = if spec.video {
        stream_start("video")?
    } else {
        0.0
    };
    let audio_offset = if spec.audio_channels > 0 {
        let priming = if spec.container.signals_audio_priming() {
            0.0
        } else {
            f64::from(AAC_PRIMING_SAMPLES) / f64::from(spec.sample_rate)
        };
        stream_start("audio")? + priming
    } else {
        0.0
    };

    let mut truth: Vec<Defect> = layout
        .defects
        .iter()
        .map(|placed| {
            let (rate, offset) = match placed.kind {
                DefectKind::Freeze | DefectKind::Black => (f64::from(spec.fps), video_offset),
                DefectKind::Silence => (f64::from(spec.sample_rate), audio_offset),
            };
            Defect::new(
                placed.kind,
                tidy_seconds(placed.span.first as f64 / rate + offset),
                tidy_seconds(placed.span.end as f64 / rate + offset),
            )
        })
        .collect();
    truth.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.kind.cmp(&b.kind)));
    let implied = truth
        .iter()
        .filter(|d| d.kind == DefectKind::Black)
        .map(|d| Defect::freeze(d.start, d.end))
        .collect();
    let keyframes = if spec.video {
        video_keyframes(&path)?
    } else {
        Vec::new()
    };

    Ok(Clip {
        path,
        spec: spec.clone(),
        truth,
        implied,
        video_offset,
        audio_offset,
        keyframes,
    })
}

/// The spec [`make_bench_clip`] renders: 1920x1080 25 fps natural content, stereo
/// 48 kHz AAC, MP4, 2 s GOP, no defects. Add defects to it for end-to-end benchmarks.
pub fn bench_clip_spec(seconds: f64) -> ClipSpec {
    ClipSpec {
        duration: seconds,
        width: 1920,
        height: 1080,
        fps: 25,
        content: Content::Natural,
        gop: Some(50),
        x264_preset: "veryfast".to_owned(),
        crf: 23,
        ..ClipSpec::default()
    }
}

/// A 1080p25 H.264 + stereo AAC natural-content clip of `seconds` for benchmarks, at
/// `dir/bench-1080p25-<seconds>s.mp4`.
///
/// Rendering takes a while (roughly real time on two cores), so a complete existing
/// file with the right duration and streams is reused.
pub fn make_bench_clip(dir: &Path, seconds: f64) -> Result<PathBuf> {
    ensure!(
        seconds > 0.0,
        "benchmark clip length must be positive, got {seconds}"
    );
    let spec = bench_clip_spec(seconds);
    let name = format!("bench-1080p25-{seconds}s");
    let path = output_path(dir, &name, spec.container);
    if path.exists() {
        if let Ok(info) = probe(&path) {
            let video_ok = info
                .first("video")
                .is_some_and(|v| v.width == Some(spec.width) && v.height == Some(spec.height));
            let duration_ok = info.duration.is_some_and(|d| (d - seconds).abs() < 0.1);
            if video_ok && duration_ok && info.count("audio") == 1 {
                return Ok(path);
            }
        }
    }
    Ok(make_clip(dir, &name, &spec)?.path)
}

#[cfg(test)]
mod ffmpeg_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn clip_with(truth: Vec<Defect>, implied: Vec<Defect>) -> Clip {
        Clip {
            path: PathBuf::from("x.mp4"),
            spec: ClipSpec::default(),
            truth,
            implied,
            video_offset: 0.0,
            audio_offset: 0.0,
            keyframes: Vec::new(),
        }
    }

    #[test]
    fn kinds_have_stable_names() {
        let names: Vec<&str> = DefectKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, ["freeze", "black", "silence"]);
        let json = serde_json::to_string(&Defect::silence(1.0, 2.5)).expect("serialises");
        assert_eq!(json, r#"{"kind":"silence","start":1.0,"end":2.5}"#);
    }

    #[test]
    fn spec_json_fills_missing_fields_with_defaults() {
        let spec: ClipSpec =
            serde_json::from_str(r#"{"duration":4.0,"container":"ts","content":"natural"}"#)
                .expect("parses");
        assert_eq!(
            spec,
            ClipSpec {
                duration: 4.0,
                container: Container::Ts,
                content: Content::Natural,
                ..ClipSpec::default()
            }
        );
    }

    #[test]
    fn output_path_does_not_double_extensions() {
        let dir = Path::new("/tmp/x");
        assert_eq!(output_path(dir, "a", Container::Mkv), dir.join("a.mkv"));
        assert_eq!(output_path(dir, "a.ts", Container::Ts), dir.join("a.ts"));
        assert_eq!(
            Container::from_path(Path::new("o/U.MP4")),
            Some(Container::Mp4)
        );
        assert_eq!(Container::from_path(Path::new("o/u.avi")), None);
    }

    #[test]
    fn compare_accepts_implied_freezes_but_not_other_extras() {
        let clip = clip_with(
            vec![
                Defect::freeze(2.0, 4.0),
                Defect::black(4.0, 5.0),
                Defect::silence(8.0, 9.0),
            ],
            vec![Defect::freeze(4.0, 5.0)],
        );
        // The freeze runs into the black span: one merged 2–5 s freeze is fine.
        let merged = [
            Defect::freeze(2.0, 5.0),
            Defect::black(4.02, 5.0),
            Defect::silence(8.003, 9.0),
        ];
        let result = clip.compare(&merged, 0.05);
        assert!(result.is_exact(), "{result:?}");

        let wrong = [Defect::freeze(2.0, 4.0), Defect::freeze(6.0, 7.0)];
        let result = clip.compare(&wrong, 0.05);
        assert_eq!(
            result.missed,
            vec![Defect::black(4.0, 5.0), Defect::silence(8.0, 9.0)]
        );
        assert_eq!(result.unexpected, vec![Defect::freeze(6.0, 7.0)]);
        assert!(clip.overlaps_requested(DefectKind::Silence, 8.5, 10.0));
        assert!(!clip.overlaps_requested(DefectKind::Silence, 9.0, 10.0));
    }
}
