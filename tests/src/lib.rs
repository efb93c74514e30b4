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
//! * **blur** `[S, E)`: the frame range through `gblur` (sigma [`ClipSpec::blur_sigma`],
//!   at least 3), enabled by frame number.
//! * **colorbars** `[S, E)`: the frame range replaced by [`ClipSpec::bars`] (SMPTE, SMPTE
//!   HD or EBU bars). Still bars are identical frames: a freeze there is implied.
//! * **blockiness** `[S, E)`: the frame range taken from a second rendering of the
//!   picture coded as intra-only MPEG-2 at quantiser scale 31, whose 8x8 blocks then
//!   survive the clip's H.264 encoding. (A starved x264 — zones at QP 51 — is no exact
//!   truth: its P-frames mostly copy the good picture before them, so the blocks show
//!   only where the content changes.)
//! * **frame_drop** `[S, E)`: the frame range removed (`select`) and the rest encoded
//!   with its timestamps (`-fps_mode passthrough`). Truth is the gap: from the first
//!   missing frame's time to the next present frame's. A player shows the frame before
//!   the gap until the next one: a freeze from that frame is implied.
//! * **corruption** `[S, E)`: the rendered clip's video packets of the frame range
//!   damaged by the `noise` bitstream filter (about one byte in 100). Needs a fixed GOP
//!   ([`ClipSpec::gop`]) and is encoded without B-frames, so damage runs forward in
//!   time. Truth is measured, not assumed: the packets whose hash changed, each until the
//!   next undamaged keyframe (the decoder's references stay broken until then). Damaged
//!   pictures may be concealed into blocks or dropped: blockiness and a frame drop over
//!   the span are implied.
//! * **loudness_jump** `[S, E)`: samples of the range multiplied by
//!   [`ClipSpec::loudness_gain_db`] (at least 6 dB up, never clipping): a passage louder
//!   than the programme, as a commercial can be. Truth is the range;
//!   a short-term meter (3 s window) lags it by up to 3 s at either end.
//! * **clipping** `[S, E)`: samples of the range driven by [`ClipSpec::clipping_gain_db`]
//!   past full scale and cut off at ±1. The passage is loud too: a loudness jump from its start
//!   to 3 s after its end is implied.
//! * **audio_dropout** `[S, E)`: the audio packets whose time falls in the range removed
//!   from the rendered file (the `noise` bitstream filter's `drop`), timestamps kept, as
//!   packets lost in transport leave them. Truth is measured, not assumed: from the first
//!   missing packet's time to the next present packet's.
//! * **audio_clicks** `[S, E)`: clicks on the first channel — sample `round(S·sr)`, every
//!   0.25 s after it and the span's last sample each raised by 0.5 (single-sample impulses at
//!   −6 dBFS). Truth is the span: from the first click to just after the last.
//! * **borders** `[S, E)`: black bars over the frame range — [`ClipSpec::letterbox_px`] rows
//!   at the top and bottom, [`ClipSpec::pillarbox_px`] columns at the left and right
//!   (`drawbox`, enabled by frame number). Truth is the changes, not the span: the bars
//!   appearing, `[F/fps, F/fps + hold)`, and, when the span ends before the clip does, going
//!   again, `[(L+1)/fps, (L+1)/fps + hold)`, where `hold` is vqa's default
//!   `borders.min_duration` (1 s): a change is reported once the new borders held that long,
//!   so each edge is an incident of its own.
//! * **aspect_ratio** `[S, E)`: the frame range declared with [`ClipSpec::span_sar`]
//!   instead of square pixels. The clip is MPEG-TS (the H.264 SPS repeats at every
//!   keyframe), keyframes are forced at `F` and `L + 1`, and the SPS of the keyframes in the
//!   range are rewritten (`h264_metadata`, same size, spliced in packet by packet). Truth is
//!   measured with ffprobe, not assumed: each picture whose sample aspect ratio differs from
//!   the one before it, for one picture.
//! * **field_order** `[S, E)`: the frame range interlaced — each frame's bottom field taken
//!   from the frame before (`phase=mode=t`: moving content combs, bottom field first) —
//!   while the stream stays declared progressive. At least 6 s: vqa raises one after 5 s.
//! * **av_sync**: on [`Content::SyncPattern`], every beep moved by
//!   [`ClipSpec::av_offset_ms`]. The measured offset is [`Clip::av_offset_ms`]; beyond
//!   [`AV_SYNC_MAX_LATE_MS`] late or [`AV_SYNC_MAX_EARLY_MS`] early the whole clip is an
//!   av_sync defect.
//!
//! Audio defects are placed by sample index inside the `aevalsrc` expression, video ones
//! by frame number. [`corpus`] renders labelled sets of such clips for `vqa eval`.
//!
//! Outside the defects the video changes every frame and the audio is never quiet, so
//! a correct analyser reports exactly the truth (plus, optionally, the implied
//! defects). One caveat: a keyframe inside a freeze re-encodes the frozen picture, see
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
pub mod captions;
pub mod corpus;
pub mod emulator;
mod graph;
mod reference;
mod tools;
pub mod ts_edit;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Context, Result};
use serde::{Deserialize, Serialize};

pub use bad_inputs::{make_bad_inputs, BadInputs};
pub use corpus::{write_corpus, CorpusEntry, CorpusSize, Manifest};
pub use reference::{describe, ffmpeg_reference, ReferenceSettings};
pub use tools::{
    ffmpeg_available, ffmpeg_or_skip, probe, run_ffmpeg, video_keyframes, video_packets, ProbeInfo,
    StreamInfo, VideoPacket, FFMPEG_INSTALL_HINT,
};

/// Samples of priming (encoder delay) FFmpeg's native AAC encoder puts before the
/// first real sample.
pub const AAC_PRIMING_SAMPLES: u32 = 1024;

/// Samples per AAC frame (one audio packet): the least an audio dropout can lose.
pub const AAC_FRAME_SAMPLES: u64 = 1024;

/// Audio later than the picture by more than this many milliseconds is an A/V sync
/// defect (vqa's default `av_sync.max_late_ms`).
pub const AV_SYNC_MAX_LATE_MS: f64 = 45.0;
/// Audio earlier than the picture by more than this many milliseconds is an A/V sync
/// defect (vqa's default `av_sync.max_early_ms`).
pub const AV_SYNC_MAX_EARLY_MS: f64 = 15.0;

/// The EBU R128 short-term loudness window, seconds. Loudness truth is the span whose
/// gain was changed; a meter's verdict lags it by up to this much at either end, and a
/// passage driven into clipping may read as too loud until this long after it ends.
pub const SHORT_TERM_WINDOW: f64 = 3.0;

/// The `noise` bitstream filter damages one byte in this many in each packet of a
/// corruption span (about 1%: every packet of a few hundred bytes or more is hit).
const CORRUPTION_BYTE_INTERVAL: u32 = 100;

/// What kind of defect: vqa's incident kinds, from its one table of kinds
/// (`vqa_core::kinds`). A clip can carry those in [`INJECTABLE`].
pub use vqa_core::IncidentKind as DefectKind;

/// The kinds a clip can carry, in a fixed order: not `onnx` (a model's verdict) nor
/// `input_loss` (a live input's).
pub const INJECTABLE: [DefectKind; 21] = [
    DefectKind::Freeze,
    DefectKind::Black,
    DefectKind::Silence,
    DefectKind::Blockiness,
    DefectKind::Corruption,
    DefectKind::Blur,
    DefectKind::Colorbars,
    DefectKind::FrameDrop,
    DefectKind::LoudnessJump,
    DefectKind::Clipping,
    DefectKind::AvSync,
    DefectKind::AudioDropout,
    DefectKind::AudioPhase,
    DefectKind::AudioClicks,
    DefectKind::Borders,
    DefectKind::AspectRatio,
    DefectKind::FieldOrder,
    DefectKind::TsPriority1,
    DefectKind::TsPriority2,
    DefectKind::AudioLevel,
    DefectKind::Scte35,
];

/// Which track a defect is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    Video,
    Audio,
    Both,
}

/// A photograph for tests that need natural detail: scikit-learn's china.jpg, which
/// scripts/corpus/fetch-test-image.sh fetches from Debian (python3-sklearn) and caches.
pub fn test_photo() -> PathBuf {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/corpus/fetch-test-image.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{} failed (it fetches python3-sklearn with apt-get): {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The track a defect of `kind` is rendered in.
pub(crate) fn track(kind: DefectKind) -> Track {
    match kind {
        DefectKind::Silence
        | DefectKind::LoudnessJump
        | DefectKind::Clipping
        | DefectKind::AudioDropout
        | DefectKind::AudioPhase
        | DefectKind::AudioClicks
        | DefectKind::AudioLevel => Track::Audio,
        DefectKind::AvSync => Track::Both,
        _ => Track::Video,
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
    /// An A/V sync test pattern: `testsrc2` dimmed to a dark picture with one white
    /// frame every second at frame `round(fps/2)` (0.52 s at 25 fps, then every second),
    /// and on every channel a 40 ms 1 kHz beep at −6 dBFS at the same instants over a
    /// −50 dBFS noise floor, moved by [`ClipSpec::av_offset_ms`].
    SyncPattern,
}

/// Which colour bars a [`DefectKind::Colorbars`] span shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BarsPattern {
    /// SMPTE EG 1 bars (`smptebars`).
    #[default]
    Smpte,
    /// SMPTE RP 219 HD bars (`smptehdbars`).
    SmpteHd,
    /// EBU 75% bars (`pal75bars`).
    Pal75,
}

impl BarsPattern {
    /// The lavfi source that draws them.
    pub(crate) fn source(self) -> &'static str {
        match self {
            BarsPattern::Smpte => "smptebars",
            BarsPattern::SmpteHd => "smptehdbars",
            BarsPattern::Pal75 => "pal75bars",
        }
    }
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
            // A PCR at least every 20 ms: FFmpeg's variable-rate TS otherwise carries one
            // only with a picture, 40 ms apart at 25 fps, which TR 101 290 counts as PCR
            // repetition errors.
            Container::Ts => &["-pcr_period", "20", "-f", "mpegts"],
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
    /// Peak level of each channel's test tone, dBFS; `None`: 0.3 of full scale (about
    /// −10.5 dBFS, which measures about −11 LUFS in stereo). −22.4 dBFS measures
    /// −23.0 LUFS (EBU R128's target) in stereo.
    pub audio_level_db: Option<f64>,
    /// Gain over each [`DefectKind::LoudnessJump`] span, dB: at least 6 dB up, and the
    /// passage must stay below full scale.
    pub loudness_gain_db: f64,
    /// Gain over each [`DefectKind::Clipping`] span, dB; it must drive the tone past
    /// full scale, where every sample is cut off at ±1.
    pub clipping_gain_db: f64,
    /// Gain over each [`DefectKind::AudioLevel`] span, dB: it must take the peak level
    /// below vqa's `audio_level.low_dbfs` (but above the silence level) or to its
    /// `high_dbfs` (but below full scale).
    pub level_gain_db: f64,
    /// Gaussian blur sigma over each [`DefectKind::Blur`] span, pixels (at least 3).
    pub blur_sigma: f64,
    /// The bars every [`DefectKind::Colorbars`] span shows.
    pub bars: BarsPattern,
    /// [`Content::SyncPattern`] only: how much later the beeps are than the flashes,
    /// milliseconds (negative: audio early), within ±400 ms. Outside vqa's default
    /// tolerance ([`AV_SYNC_MAX_LATE_MS`] late, [`AV_SYNC_MAX_EARLY_MS`] early) the
    /// whole clip is an [`DefectKind::AvSync`] defect.
    pub av_offset_ms: f64,
    /// Black rows at the top and at the bottom over each [`DefectKind::Borders`] span (even;
    /// at most a quarter of the height each).
    pub letterbox_px: u32,
    /// Black columns at the left and at the right over each [`DefectKind::Borders`] span
    /// (even; at most a quarter of the width each).
    pub pillarbox_px: u32,
    /// The sample aspect ratio each [`DefectKind::AspectRatio`] span declares (the rest of
    /// the clip declares square pixels): one of H.264's table of ratios (4:3, 12:11, 10:11,
    /// 16:11, 40:33, 24:11, 20:11, 32:11, 80:33, 18:11, 15:11, 64:33, 160:99, 3:2, 2:1).
    pub span_sar: [u32; 2],
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
            audio_level_db: None,
            loudness_gain_db: 15.0,
            clipping_gain_db: 12.0,
            level_gain_db: -25.0,
            blur_sigma: 4.0,
            bars: BarsPattern::Smpte,
            av_offset_ms: 0.0,
            letterbox_px: 40,
            pillarbox_px: 0,
            span_sar: [4, 3],
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
    /// but need not: a freeze over every black or colour-bars span (their frames are
    /// identical), a freeze over a frame drop, blockiness and a frame drop over corruption,
    /// loudness after clipping.
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
    /// [`Content::SyncPattern`] only: how much later each beep starts than its flash
    /// frame in the file, milliseconds (the requested offset rounded to whole samples,
    /// plus any difference between the streams' start offsets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub av_offset_ms: Option<f64>,
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

/// A 6 s clip named `name` with a freeze (0.8–2.4 s), a black span (3.0–4.2 s) and a silence
/// (2.0–3.5 s): defects that span the boundaries of 1 s segments and 2-segment chunks. The
/// clip several tests run; panics when the ffmpeg CLI cannot make it.
pub fn three_defects(dir: &Path, name: &str) -> PathBuf {
    let spec = ClipSpec {
        duration: 6.0,
        defects: vec![
            Defect::freeze(0.8, 2.4),
            Defect::black(3.0, 4.2),
            Defect::silence(2.0, 3.5),
        ],
        ..ClipSpec::default()
    };
    make_clip(dir, name, &spec).expect("make clip").path
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
    let damaged = dir.join(format!(".{file_name}.damaged.partial"));
    let blocky = dir.join(format!(".{file_name}.blocky.partial"));
    let holed = dir.join(format!(".{file_name}.holed.partial"));
    let sar_plain = dir.join(format!(".{file_name}.sar.partial"));
    let sar_changed = dir.join(format!(".{file_name}.sar-changed.partial"));
    let ts_damaged = dir.join(format!(".{file_name}.ts-damaged.partial"));
    let cued = dir.join(format!(".{file_name}.cued.partial"));
    let cleanup = || {
        let _ = fs::remove_file(&cued);
        let _ = fs::remove_file(&ts_damaged);
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_file(&sar_plain);
        let _ = fs::remove_file(&sar_changed);
        let _ = fs::remove_file(&damaged);
        let _ = fs::remove_file(&holed);
        let _ = fs::remove_file(&blocky);
    };

    let with_blockiness = layout.spans(DefectKind::Blockiness).next().is_some();
    let rendered = if with_blockiness {
        run_ffmpeg(graph::blocky_pass_args(
            spec,
            &layout,
            &blocky.to_string_lossy(),
        ))
        .with_context(|| format!("rendering the blocky picture for {}", path.display()))
    } else {
        Ok(())
    }
    .and_then(|()| {
        let blocky = with_blockiness.then_some(blocky.as_path());
        run_ffmpeg(render_args(spec, &layout, graph, blocky, &partial))
            .with_context(|| format!("rendering {}", path.display()))
    });
    if let Err(err) = rendered {
        cleanup();
        return Err(err);
    }
    let corrupted = match damage_expression(&layout) {
        Some(expression) => match damage_packets(spec, &partial, &damaged, &expression) {
            Ok(spans) => Some(spans),
            Err(err) => {
                cleanup();
                return Err(err.context(format!("damaging {}", path.display())));
            }
        },
        None => None,
    };
    let finished = if corrupted.is_some() {
        &damaged
    } else {
        &partial
    };
    let dropped = match dropout_expression(spec, &layout) {
        Some(expression) => match drop_audio_packets(spec, finished, &holed, &expression) {
            Ok(spans) => spans,
            Err(err) => {
                cleanup();
                return Err(err.context(format!("dropping audio from {}", path.display())));
            }
        },
        None => Vec::new(),
    };
    let finished = if dropped.is_empty() { finished } else { &holed };
    let finished = if layout.spans(DefectKind::AspectRatio).next().is_some() {
        if let Err(err) = declare_span_sar(spec, &layout, finished, &sar_plain, &sar_changed) {
            cleanup();
            return Err(err.context(format!("changing the aspect ratio in {}", path.display())));
        }
        &sar_plain
    } else {
        finished
    };
    let ts_damage = match damage_transport(&layout, finished, &ts_damaged) {
        Ok(damage) => damage,
        Err(err) => {
            cleanup();
            return Err(err.context(format!("damaging the TS packets of {}", path.display())));
        }
    };
    let finished = if ts_damage.is_empty() {
        finished
    } else {
        &ts_damaged
    };
    let cues = match add_cues(spec, &layout, finished, &cued) {
        Ok(cues) => cues,
        Err(err) => {
            cleanup();
            return Err(err.context(format!("adding SCTE-35 cues to {}", path.display())));
        }
    };
    let finished = if cues.is_empty() { finished } else { &cued };
    fs::rename(finished, &path)
        .with_context(|| format!("renaming {} to {}", finished.display(), path.display()))?;
    cleanup();

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
    let packets = if spec.video {
        video_packets(&path)?
    } else {
        Vec::new()
    };
    let keyframes: Vec<f64> = packets
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| p.time)
        .collect();

    let fps = f64::from(spec.fps);
    let sample_rate = f64::from(spec.sample_rate);
    let mut truth: Vec<Defect> = Vec::new();
    for placed in &layout.defects {
        let (first, end) = (placed.span.first as f64, placed.span.end as f64);
        let (rate, offset) = match track(placed.kind) {
            Track::Audio => (sample_rate, audio_offset),
            Track::Video | Track::Both => (fps, video_offset),
        };
        match placed.kind {
            // Corruption, audio dropout, aspect ratio and TS damage truth is where the
            // damage or the change really is, measured.
            DefectKind::Corruption
            | DefectKind::AudioDropout
            | DefectKind::AspectRatio
            | DefectKind::TsPriority1
            | DefectKind::TsPriority2
            | DefectKind::Scte35 => {}
            // The borders appearing, and going again where the clip goes on without them.
            DefectKind::Borders => {
                let hold = vqa_core::config::BordersConfig::default().min_duration;
                let edges =
                    std::iter::once(first).chain((placed.span.end < layout.frames).then_some(end));
                for edge in edges {
                    let start = edge / rate + offset;
                    truth.push(Defect::new(
                        placed.kind,
                        tidy_seconds(start),
                        tidy_seconds(start + hold),
                    ));
                }
            }
            _ => truth.push(Defect::new(
                placed.kind,
                tidy_seconds(first / rate + offset),
                tidy_seconds(end / rate + offset),
            )),
        }
    }
    if layout.spans(DefectKind::AspectRatio).next().is_some() {
        truth.extend(aspect_changes(spec, &layout, &path)?);
    }
    let video_end = layout.frames as f64 / fps + video_offset;
    truth.extend(
        dropped
            .iter()
            .map(|&(start, end)| Defect::new(DefectKind::AudioDropout, start, end)),
    );
    if let Some(damaged_times) = &corrupted {
        for (start, end) in corruption_spans(damaged_times, &keyframes, video_end) {
            truth.push(Defect::new(
                DefectKind::Corruption,
                tidy_seconds(start),
                tidy_seconds(end),
            ));
        }
    }
    let av_offset_ms = layout.sync.map(|sync| {
        let flash = sync.first_flash as f64 / fps + video_offset;
        let beep = sync.first_beep as f64 / sample_rate + audio_offset;
        tidy_seconds(beep - flash) * 1000.0
    });
    if let Some(offset) = av_offset_ms {
        if offset > AV_SYNC_MAX_LATE_MS || -offset > AV_SYNC_MAX_EARLY_MS {
            truth.push(Defect::new(
                DefectKind::AvSync,
                0.0,
                tidy_seconds(video_end),
            ));
        }
    }
    // TS damage is in the stream from when its first packet arrives until the last damaged
    // picture has been shown. The picture is decoded damaged, and the pictures predicted
    // from it up to the next keyframe: what corruption reports may be reported there.
    let mut ts_damaged_at: Vec<f64> = Vec::new();
    for damage in &ts_damage {
        let Some(last) = damage.pictures.iter().copied().reduce(f64::max) else {
            continue;
        };
        truth.push(Defect::new(
            damage.kind,
            tidy_seconds(damage.first_arrival),
            tidy_seconds(last + 1.0 / fps),
        ));
        ts_damaged_at.extend(&damage.pictures);
    }
    truth.extend(
        cues.iter()
            .map(|&(start, end)| Defect::new(DefectKind::Scte35, start, end)),
    );
    ts_damaged_at.sort_by(f64::total_cmp);
    truth.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.kind.cmp(&b.kind)));
    let audio_end = layout.samples as f64 / sample_rate + audio_offset;
    let mut implied = implied_defects(&truth, 1.0 / fps, audio_end);
    for (start, end) in corruption_spans(&ts_damaged_at, &keyframes, video_end) {
        for kind in [
            DefectKind::Corruption,
            DefectKind::Blockiness,
            DefectKind::FrameDrop,
        ] {
            implied.push(Defect::new(kind, tidy_seconds(start), tidy_seconds(end)));
        }
    }
    implied.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.kind.cmp(&b.kind)));

    Ok(Clip {
        path,
        spec: spec.clone(),
        truth,
        implied,
        video_offset,
        audio_offset,
        keyframes,
        av_offset_ms,
    })
}

/// The ffmpeg arguments that render `spec` (before any damage) into `out`, taking the
/// frames of blockiness spans from `blocky` (a raw MPEG-2 stream).
fn render_args(
    spec: &ClipSpec,
    layout: &graph::Layout,
    graph: String,
    blocky: Option<&Path>,
    out: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if let Some(blocky) = blocky {
        args.extend(["-f".into(), "mpegvideo".into(), "-i".into()]);
        args.push(blocky.to_string_lossy().into_owned());
    }
    args.extend(["-filter_complex".into(), graph]);
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
        if [
            DefectKind::Corruption,
            DefectKind::TsPriority1,
            DefectKind::TsPriority2,
        ]
        .into_iter()
        .any(|kind| layout.spans(kind).next().is_some())
        {
            // Without B-frames, decode order is display order: packet n is frame n, and
            // damage runs forward in time from the first damaged packet.
            args.extend(["-bf".into(), "0".into()]);
        }
        if layout.spans(DefectKind::FrameDrop).next().is_some() {
            // Keep the timestamps `select` left, gaps included.
            args.extend(["-fps_mode".into(), "passthrough".into()]);
        }
        if let Some(keyframes) = sar_keyframes(layout) {
            // An IDR picture (with the SPS) where each aspect ratio span starts and ends.
            args.extend(["-force_key_frames".into(), keyframes]);
            args.extend(["-forced-idr".into(), "1".into()]);
        }
    }
    if spec.audio_channels > 0 {
        let bitrate = format!("{}k", 64 * u32::from(spec.audio_channels));
        args.extend(["-map", "[aout]", "-c:a", "aac", "-b:a"].map(String::from));
        args.push(bitrate);
    }
    args.extend(spec.container.muxer_args().iter().map(|s| s.to_string()));
    args.push(out.to_string_lossy().into_owned());
    args
}

/// The `-force_key_frames` expression that puts a keyframe at the first frame of every
/// aspect ratio span and at the first frame after it (by the encoder's frame numbers), or
/// `None` without such spans.
fn sar_keyframes(layout: &graph::Layout) -> Option<String> {
    let terms: Vec<String> = layout
        .spans(DefectKind::AspectRatio)
        .flat_map(|s| [s.first, s.end])
        .filter(|&frame| frame < layout.frames)
        .map(|frame| format!("eq(n,{})", layout.encoded_index(frame)))
        .collect();
    (!terms.is_empty()).then(|| format!("expr:{}", terms.join("+")))
}

/// Copies the MPEG-TS `from` to `plain` with the aspect ratio spans declaring
/// [`ClipSpec::span_sar`]: both the clip and a copy declaring that ratio throughout go
/// through `h264_metadata` (so they are muxed alike and differ only in their SPS, which keeps
/// its size: both ratios are in H.264's table), and the TS packets of the keyframes inside
/// a span are taken from the copy (`changed`).
fn declare_span_sar(
    spec: &ClipSpec,
    layout: &graph::Layout,
    from: &Path,
    plain: &Path,
    changed: &Path,
) -> Result<()> {
    let [num, den] = spec.span_sar;
    for (sar, to) in [((1, 1), plain), ((num, den), changed)] {
        copy_through_bsf(
            spec,
            from,
            to,
            "-bsf:v",
            &format!("h264_metadata=sample_aspect_ratio={}/{}", sar.0, sar.1),
        )?;
    }
    let mut bytes = fs::read(plain).with_context(|| format!("reading {}", plain.display()))?;
    let other = fs::read(changed).with_context(|| format!("reading {}", changed.display()))?;
    ensure!(
        bytes.len() == other.len() && bytes.len() % ts_edit::PACKET == 0,
        "declaring {num}:{den} changed the stream's size ({} to {} bytes): the SPS did not \
         keep its size",
        bytes.len(),
        other.len()
    );
    // Pictures in file order by where their first TS packet is; their times in display
    // order name the frames.
    let pictures = ts_edit::pictures_in_file_order(plain)?;
    let mut times: Vec<f64> = pictures.iter().map(|p| p.1).collect();
    times.sort_by(f64::total_cmp);
    let time_of = |frame: u64| {
        usize::try_from(layout.encoded_index(frame))
            .ok()
            .and_then(|i| times.get(i).copied())
            .unwrap_or(f64::INFINITY)
    };
    // Half a frame early, so a picture's own time is safely inside.
    let early = 0.5 / f64::from(spec.fps);
    let spans: Vec<(f64, f64)> = layout
        .spans(DefectKind::AspectRatio)
        .map(|s| (time_of(s.first) - early, time_of(s.end) - early))
        .collect();
    let mut spliced = 0;
    for (offset, packet) in other.chunks_exact(ts_edit::PACKET).enumerate() {
        let offset = offset * ts_edit::PACKET;
        if bytes[offset..offset + ts_edit::PACKET] == *packet {
            continue;
        }
        let picture = pictures.partition_point(|p| p.0 <= offset);
        let time = picture
            .checked_sub(1)
            .map(|i| pictures[i].1)
            .ok_or_else(|| anyhow!("the SPS changed at byte {offset}, before any picture"))?;
        if spans.iter().any(|&(s, e)| s <= time && time < e) {
            bytes[offset..offset + ts_edit::PACKET].copy_from_slice(packet);
            spliced += 1;
        }
    }
    ensure!(
        spliced > 0,
        "no keyframe inside an aspect_ratio span declares {num}:{den}"
    );
    fs::write(plain, bytes).with_context(|| format!("writing {}", plain.display()))
}

/// The aspect ratio changes really in the file: each picture whose sample aspect ratio
/// differs from the one before it, as ffprobe decodes them; there must be one where each
/// span starts and one where it ends (unless it ends with the clip).
fn aspect_changes(spec: &ClipSpec, layout: &graph::Layout, path: &Path) -> Result<Vec<Defect>> {
    let frame = 1.0 / f64::from(spec.fps);
    let square = |sar: [u32; 2]| if sar[0] == 0 { [1, 1] } else { sar };
    let changes: Vec<Defect> = tools::frame_sars(path)?
        .windows(2)
        .filter(|w| square(w[0].1) != square(w[1].1))
        .map(|w| {
            let start = tidy_seconds(w[1].0);
            Defect::new(DefectKind::AspectRatio, start, tidy_seconds(start + frame))
        })
        .collect();
    let expected: usize = layout
        .spans(DefectKind::AspectRatio)
        .map(|s| if s.end < layout.frames { 2 } else { 1 })
        .sum();
    ensure!(
        changes.len() == expected,
        "{} declares {} aspect ratio changes, {expected} were asked for: {changes:?}",
        path.display(),
        changes.len()
    );
    Ok(changes)
}

/// The `noise` bitstream filter's `amount` expression that damages the packets of every
/// corruption span (packet `n` is encoded frame `n`: no B-frames), or `None`.
fn damage_expression(layout: &graph::Layout) -> Option<String> {
    let terms: Vec<String> = layout
        .spans(DefectKind::Corruption)
        .map(|s| {
            format!(
                "between(n\\,{}\\,{})",
                layout.encoded_index(s.first),
                layout.encoded_index(s.end - 1)
            )
        })
        .collect();
    (!terms.is_empty()).then(|| format!("if({}\\,{CORRUPTION_BYTE_INTERVAL}\\,0)", terms.join("+")))
}

/// Copies `from` to `to` (every stream, no re-encoding) through the bitstream `filter`
/// (`noise=...`, `h264_metadata=...`), on the streams `bsf` (`-bsf:v` or `-bsf:a`) names.
fn copy_through_bsf(
    spec: &ClipSpec,
    from: &Path,
    to: &Path,
    bsf: &str,
    filter: &str,
) -> Result<()> {
    let mut args: Vec<String> = vec!["-i".into(), from.to_string_lossy().into_owned()];
    args.extend(["-map", "0", "-c", "copy", bsf, filter].map(String::from));
    args.extend(spec.container.muxer_args().iter().map(|s| s.to_string()));
    args.push(to.to_string_lossy().into_owned());
    run_ffmpeg(&args)
}

/// A span of TS damage as it is in the file: its kind, the arrival time of its first
/// damaged packet (on the multiplex's clock, the first byte at 0), and the times of the
/// pictures whose packets were damaged.
struct TsDamage {
    kind: DefectKind,
    first_arrival: f64,
    pictures: Vec<f64>,
}

/// Copies the MPEG-TS `from` to `to` with one video TS packet of every picture of each
/// ts_priority1 span lost and of each ts_priority2 span flagged with a transport error
/// ([`ts_edit::damage_pictures`]), and returns where the damage is; nothing (and no copy)
/// without such spans.
fn damage_transport(layout: &graph::Layout, from: &Path, to: &Path) -> Result<Vec<TsDamage>> {
    let spans: Vec<(DefectKind, graph::Span, ts_edit::PacketDamage)> = [
        (DefectKind::TsPriority1, ts_edit::PacketDamage::Lose),
        (
            DefectKind::TsPriority2,
            ts_edit::PacketDamage::TransportError,
        ),
    ]
    .into_iter()
    .flat_map(|(kind, how)| layout.spans(kind).map(move |span| (kind, span, how)))
    .collect();
    if spans.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    // Pictures in file order are in display order: the clip has no B-frames.
    let pictures = ts_edit::pictures_in_file_order(from)?;
    let video_pid = pictures
        .first()
        .and_then(|p| bytes.get(p.0..p.0 + ts_edit::PACKET))
        .map(ts_edit::pid)
        .ok_or_else(|| anyhow!("{} has no video packets", from.display()))?;
    let mut damage = Vec::new();
    let mut chosen_per_span = Vec::new();
    for (kind, span, how) in spans {
        let frames = layout.encoded_index(span.first)..layout.encoded_index(span.end);
        let chosen: Vec<&(usize, f64, u64)> = frames
            .filter_map(|i| usize::try_from(i).ok().and_then(|i| pictures.get(i)))
            .collect();
        ensure!(
            !chosen.is_empty(),
            "a {kind} defect covers no picture of the encoded clip"
        );
        damage.extend(chosen.iter().map(|p| (p.0, how)));
        chosen_per_span.push((kind, chosen));
    }
    let (out, damaged_packets) = ts_edit::damage_pictures(&bytes, video_pid, &damage)?;
    let arrivals = ts_edit::arrival_times_from_start(&bytes)?;
    let mut damaged_packets = damaged_packets.into_iter();
    let mut result = Vec::new();
    for (kind, chosen) in chosen_per_span {
        let first_arrival = damaged_packets
            .by_ref()
            .take(chosen.len())
            .filter_map(|i| arrivals.get(i))
            .fold(f64::INFINITY, |a, &b| a.min(b));
        result.push(TsDamage {
            kind,
            first_arrival,
            pictures: chosen.iter().map(|p| p.1).collect(),
        });
    }
    fs::write(to, out).with_context(|| format!("writing {}", to.display()))?;
    Ok(result)
}

/// The PID the corpus's SCTE-35 cues are sent on.
const SCTE35_PID: u16 = 0x1F4;

/// How long before its splice point a corpus cue is sent, seconds.
const CUE_PRE_ROLL: f64 = 2.0;

/// Copies the MPEG-TS `from` to `to` with SCTE-35 cues ([`ts_edit::with_scte35`]): for each
/// scte35 span, a splice_insert out of the network sent with its first picture (the break's
/// duration the span's, the splice point [`CUE_PRE_ROLL`] later) and one back in sent with
/// the picture after it, unless the clip ends first. Returns each cue's packet on the
/// multiplex's clock (the first byte at 0, whole microseconds, as vqa times them): from its
/// arrival to the next packet's; nothing (and no copy) without such spans.
fn add_cues(
    spec: &ClipSpec,
    layout: &graph::Layout,
    from: &Path,
    to: &Path,
) -> Result<Vec<(f64, f64)>> {
    let spans: Vec<graph::Span> = layout.spans(DefectKind::Scte35).collect();
    if spans.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let pictures = ts_edit::pictures_in_file_order(from)?;
    let picture = |frame: u64| {
        usize::try_from(layout.encoded_index(frame))
            .ok()
            .and_then(|i| pictures.get(i))
    };
    let ticks = |seconds: f64| (seconds * 90_000.0).round() as u64;
    let mut cues: Vec<(usize, Vec<u8>)> = Vec::new();
    for (event, span) in (1u32..).zip(&spans) {
        let first = picture(span.first)
            .ok_or_else(|| anyhow!("an scte35 defect starts after the last picture"))?;
        let duration = (span.end - span.first) as f64 / f64::from(spec.fps);
        let splice = first.2 + ticks(CUE_PRE_ROLL);
        cues.push((
            first.0,
            ts_edit::splice_insert(event, true, splice, Some(ticks(duration))),
        ));
        if let Some(back) = picture(span.end).filter(|_| span.end < layout.frames) {
            let splice = back.2 + ticks(CUE_PRE_ROLL);
            cues.push((back.0, ts_edit::splice_insert(event, false, splice, None)));
        }
    }
    cues.sort_by_key(|c| c.0);
    let out = ts_edit::with_scte35(&bytes, SCTE35_PID, &cues)?;
    let arrivals = ts_edit::arrival_times_from_start(&out)?;
    let micros = |i: usize| {
        arrivals
            .get(i)
            .map(|t| (t * 1e6).floor() / 1e6)
            .ok_or_else(|| anyhow!("no packet {i} after a cue"))
    };
    // The k-th cue's packet went in before the packet at its offset, after k others.
    let mut times = Vec::with_capacity(cues.len());
    for (k, (offset, _)) in cues.iter().enumerate() {
        let index = offset / ts_edit::PACKET + k;
        times.push((
            tidy_seconds(micros(index)?),
            tidy_seconds(micros(index + 1)?),
        ));
    }
    fs::write(to, out).with_context(|| format!("writing {}", to.display()))?;
    Ok(times)
}

/// Copies `clean` to `damaged` with the video packets `expression` selects damaged, and
/// returns the times of the packets that really differ (every byte might have escaped).
fn damage_packets(
    spec: &ClipSpec,
    clean: &Path,
    damaged: &Path,
    expression: &str,
) -> Result<Vec<f64>> {
    copy_through_bsf(
        spec,
        clean,
        damaged,
        "-bsf:v",
        &format!("noise=amount={expression}"),
    )?;
    let before = video_packets(clean)?;
    let after = video_packets(damaged)?;
    ensure!(
        before.len() == after.len(),
        "the noise filter changed the packet count ({} to {})",
        before.len(),
        after.len()
    );
    let times: Vec<f64> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.hash != a.hash)
        .map(|(_, a)| a.time)
        .collect();
    ensure!(!times.is_empty(), "the noise filter damaged no packet");
    Ok(times)
}

/// The `noise` bitstream filter's `drop` expression that removes the audio packets of
/// every audio_dropout span (by packet time, in the stream's own time base), or `None`.
fn dropout_expression(spec: &ClipSpec, layout: &graph::Layout) -> Option<String> {
    let rate = f64::from(spec.sample_rate);
    let terms: Vec<String> = layout
        .spans(DefectKind::AudioDropout)
        .map(|s| {
            format!(
                "between(pts*tb\\,{:.6}\\,{:.6})",
                s.first as f64 / rate,
                s.end as f64 / rate
            )
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join("+"))
}

/// Copies `from` to `to` without the audio packets `expression` selects, and returns the
/// holes really left: from each first missing packet's time to the next present one's.
fn drop_audio_packets(
    spec: &ClipSpec,
    from: &Path,
    to: &Path,
    expression: &str,
) -> Result<Vec<(f64, f64)>> {
    copy_through_bsf(
        spec,
        from,
        to,
        "-bsf:a",
        &format!("noise=drop={expression}"),
    )?;
    let before = tools::audio_packet_times(from)?;
    let after = tools::audio_packet_times(to)?;
    let present = |t: f64| after.iter().any(|a| (a - t).abs() < 1e-6);
    let mut holes: Vec<(f64, f64)> = Vec::new();
    let mut open: Option<f64> = None;
    for &t in &before {
        match (present(t), open) {
            (false, None) => open = Some(t),
            (true, Some(start)) => {
                holes.push((tidy_seconds(start), tidy_seconds(t)));
                open = None;
            }
            _ => {}
        }
    }
    ensure!(
        open.is_none(),
        "the dropped audio runs to the end of the clip: end the audio_dropout span earlier"
    );
    ensure!(
        !holes.is_empty(),
        "the noise filter dropped no audio packet"
    );
    Ok(holes)
}

/// Spans of visible damage: from each damaged packet to the next keyframe that is not
/// itself damaged (or the end of the video), merged.
fn corruption_spans(damaged: &[f64], keyframes: &[f64], video_end: f64) -> Vec<(f64, f64)> {
    let is_damaged = |t: f64| damaged.iter().any(|d| (d - t).abs() < 1e-6);
    let mut spans: Vec<(f64, f64)> = Vec::new();
    for &t in damaged {
        let end = keyframes
            .iter()
            .copied()
            .find(|&k| k > t + 1e-6 && !is_damaged(k))
            .unwrap_or(video_end);
        match spans.last_mut() {
            Some(last) if t <= last.1 + 1e-6 => last.1 = last.1.max(end),
            _ => spans.push((t, end)),
        }
    }
    spans
}

/// Defects that follow from the truth and that an analyser may report but need not:
///
/// * a freeze over every black or colour-bars span (their frames are identical);
/// * blockiness and a frame drop over every corruption span (concealed damage is blocky,
///   and a decoder may drop a picture it cannot decode);
/// * a freeze over every frame drop, from the last frame before the gap (a player shows it
///   until the next frame comes);
/// * a loudness jump from the start of every clipping span until a short-term window after
///   it (the passage was driven far past its level), and true peak overs over it.
fn implied_defects(truth: &[Defect], frame_seconds: f64, audio_end: f64) -> Vec<Defect> {
    let mut implied = Vec::new();
    for d in truth {
        match d.kind {
            DefectKind::Black | DefectKind::Colorbars => {
                implied.push(Defect::freeze(d.start, d.end));
            }
            DefectKind::FrameDrop => implied.push(Defect::freeze(
                tidy_seconds((d.start - frame_seconds).max(0.0)),
                d.end,
            )),
            DefectKind::Corruption => {
                implied.push(Defect::new(DefectKind::Blockiness, d.start, d.end));
                implied.push(Defect::new(DefectKind::FrameDrop, d.start, d.end));
            }
            DefectKind::AudioLevel => {
                implied.push(Defect::new(
                    DefectKind::LoudnessJump,
                    d.start,
                    tidy_seconds((d.end + SHORT_TERM_WINDOW).min(audio_end)),
                ));
                implied.push(Defect::new(DefectKind::TruePeak, d.start, d.end));
            }
            DefectKind::Clipping => {
                implied.push(Defect::new(
                    DefectKind::LoudnessJump,
                    d.start,
                    tidy_seconds((d.end + SHORT_TERM_WINDOW).min(audio_end)),
                ));
                implied.push(Defect::new(DefectKind::TruePeak, d.start, d.end));
            }
            _ => {}
        }
    }
    implied.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.kind.cmp(&b.kind)));
    implied
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
            av_offset_ms: None,
        }
    }

    #[test]
    fn kinds_have_stable_names() {
        let names: Vec<&str> = INJECTABLE.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "freeze",
                "black",
                "silence",
                "blockiness",
                "corruption",
                "blur",
                "colorbars",
                "frame_drop",
                "loudness_jump",
                "clipping",
                "av_sync",
                "audio_dropout",
                "audio_phase",
                "audio_clicks",
                "borders",
                "aspect_ratio",
                "field_order",
                "ts_priority1",
                "ts_priority2",
                "audio_level",
                "scte35"
            ]
        );
        let json = serde_json::to_string(&Defect::new(DefectKind::FrameDrop, 1.0, 1.2))
            .expect("serialises");
        assert_eq!(json, r#"{"kind":"frame_drop","start":1.0,"end":1.2}"#);
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

    #[test]
    fn corruption_lasts_to_the_next_undamaged_keyframe() {
        let keyframes = [0.0, 1.0, 2.0, 3.0, 4.0];
        // Three damaged frames inside a GOP: to the next keyframe.
        assert_eq!(
            corruption_spans(&[2.2, 2.24, 2.28], &keyframes, 5.0),
            vec![(2.2, 3.0)]
        );
        // The keyframe itself damaged: on to the one after it.
        assert_eq!(
            corruption_spans(&[2.96, 3.0, 3.04], &keyframes, 5.0),
            vec![(2.96, 4.0)]
        );
        // Two separate bursts; the last one runs to the end of the video.
        assert_eq!(
            corruption_spans(&[0.5, 4.5], &keyframes, 5.0),
            vec![(0.5, 1.0), (4.5, 5.0)]
        );
    }

    #[test]
    fn implied_defects_follow_from_the_truth() {
        let truth = [
            Defect::new(DefectKind::FrameDrop, 2.0, 2.12),
            Defect::new(DefectKind::Clipping, 6.0, 7.0),
            Defect::new(DefectKind::Corruption, 3.0, 4.0),
            Defect::new(DefectKind::Colorbars, 8.0, 9.0),
            Defect::new(DefectKind::Blur, 5.0, 6.0),
        ];
        assert_eq!(
            implied_defects(&truth, 0.04, 9.5),
            vec![
                Defect::freeze(1.96, 2.12),
                Defect::new(DefectKind::Blockiness, 3.0, 4.0),
                Defect::new(DefectKind::FrameDrop, 3.0, 4.0),
                Defect::new(DefectKind::LoudnessJump, 6.0, 9.5),
                Defect::new(DefectKind::TruePeak, 6.0, 7.0),
                Defect::freeze(8.0, 9.0),
            ]
        );
    }
}
