//! The pipeline configuration: one serialisable value that both topologies run from.
//!
//! Every field has a documented default, so an empty file is a valid configuration and a file
//! only names what it changes. Unknown fields are errors, so a misspelt threshold is not
//! silently ignored.

use serde::{Deserialize, Serialize};

pub use crate::kinds::DetectorName;
use crate::kinds::IncidentKind;
use crate::time::{self, Micros};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("line {line}: {message}")]
    Toml { line: usize, message: String },
    #[error("invalid JSON configuration: {0}")]
    Json(String),
    #[error("`{field}` = {value}: {expected}")]
    OutOfRange {
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error("unknown detector `{0}` (known: {known})", known = DetectorName::list())]
    UnknownDetector(String),
}

/// The whole pipeline's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Whose alarm timings the defaults follow (default `file_qc`; `vqa monitor` and
    /// `vqa router` default to `broadcast`): see [`Profile`]. Values the file gives win.
    pub profile: Profile,
    /// Length of one segment in seconds (default 1.0). Every detector sees one segment at a time.
    pub segment_seconds: f64,
    /// Detectors to run (default: all but `onnx`, which needs a model file).
    pub detectors: Vec<DetectorName>,
    pub freeze: FreezeConfig,
    pub black: BlackConfig,
    pub silence: SilenceConfig,
    pub blockiness: BlockinessConfig,
    pub corruption: CorruptionConfig,
    pub blur: BlurConfig,
    pub colorbars: ColorbarsConfig,
    pub borders: BordersConfig,
    pub aspect_ratio: AspectRatioConfig,
    pub field_order: FieldOrderConfig,
    pub frame_drop: FrameDropConfig,
    pub loudness: LoudnessConfig,
    pub loudness_jump: LoudnessJumpConfig,
    pub true_peak: TruePeakConfig,
    pub clipping: ClippingConfig,
    pub av_sync: AvSyncConfig,
    pub audio_dropout: AudioDropoutConfig,
    pub audio_clicks: AudioClicksConfig,
    pub audio_phase: AudioPhaseConfig,
    pub audio_mono: AudioMonoConfig,
    pub audio_level: AudioLevelConfig,
    pub captions: CaptionsConfig,
    pub onnx: OnnxConfig,
    pub ts_health: TsHealthConfig,
    pub scte35: Scte35Config,
    pub scte35_absent: Scte35AbsentConfig,
    pub input_loss: InputLossConfig,
    pub aggregator: AggregatorConfig,
    pub converter: ConverterConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            profile: Profile::FileQc,
            segment_seconds: 1.0,
            detectors: DetectorName::defaults(),
            freeze: FreezeConfig::default(),
            black: BlackConfig::default(),
            silence: SilenceConfig::default(),
            blockiness: BlockinessConfig::default(),
            corruption: CorruptionConfig::default(),
            blur: BlurConfig::default(),
            colorbars: ColorbarsConfig::default(),
            borders: BordersConfig::default(),
            aspect_ratio: AspectRatioConfig::default(),
            field_order: FieldOrderConfig::default(),
            frame_drop: FrameDropConfig::default(),
            loudness: LoudnessConfig::default(),
            loudness_jump: LoudnessJumpConfig::default(),
            true_peak: TruePeakConfig::default(),
            clipping: ClippingConfig::default(),
            av_sync: AvSyncConfig::default(),
            audio_dropout: AudioDropoutConfig::default(),
            audio_clicks: AudioClicksConfig::default(),
            audio_phase: AudioPhaseConfig::default(),
            audio_mono: AudioMonoConfig::default(),
            audio_level: AudioLevelConfig::default(),
            captions: CaptionsConfig::default(),
            onnx: OnnxConfig::default(),
            ts_health: TsHealthConfig::default(),
            scte35: Scte35Config::default(),
            scte35_absent: Scte35AbsentConfig::default(),
            input_loss: InputLossConfig::default(),
            aggregator: AggregatorConfig::default(),
            converter: ConverterConfig::default(),
        }
    }
}

/// `freeze`: consecutive frames whose mean absolute luma difference stays below `noise_db`.
/// Defaults follow FFmpeg's freezedetect (n = -60 dB), with a 1 s minimum duration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FreezeConfig {
    /// Largest mean absolute difference between consecutive frames, in dB of full scale, that
    /// still counts as "no change" (default -60 dB, i.e. 0.1% of full scale).
    pub noise_db: f64,
    /// Shortest freeze reported, in seconds (default 1.0).
    pub min_duration: f64,
    /// Freezes at least this long are critical (default 10.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
    /// Largest difference, in dB of full scale, between a frame and the keyframe after it
    /// that still counts as no change (default -36 dB, about 4 code values): a keyframe
    /// re-encodes a still picture and differs from it by compression noise (1.6-1.8 code
    /// values measured with x264 at CRF 20), far less than any cut.
    pub keyframe_noise_db: f64,
    /// Also report an unchanging black picture as a freeze, as FFmpeg's freezedetect does
    /// (default false: it is reported as `black` only, by the black detector's criteria).
    pub include_black: bool,
}

impl Default for FreezeConfig {
    fn default() -> Self {
        FreezeConfig {
            noise_db: -60.0,
            min_duration: 1.0,
            critical_after: 10.0,
            clear_after: 0.0,
            keyframe_noise_db: -36.0,
            include_black: false,
        }
    }
}

impl KindSection for FreezeConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        f.db("noise_db", self.noise_db)?;
        f.db("keyframe_noise_db", self.keyframe_noise_db)
    }
}

/// `black`: frames where at least `picture_ratio` of pixels are darker than `pixel_threshold`.
/// Defaults follow FFmpeg's blackdetect (pix_th = 0.10, pic_th = 0.98), with a 0.5 s minimum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlackConfig {
    /// A pixel is black when its luma is at most this fraction of the way from black to white
    /// (default 0.10).
    pub pixel_threshold: f64,
    /// A frame is black when at least this fraction of its pixels are black (default 0.98).
    pub picture_ratio: f64,
    /// Shortest black run reported, in seconds (default 0.5).
    pub min_duration: f64,
    /// Black runs at least this long are critical (default 10.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
}

impl Default for BlackConfig {
    fn default() -> Self {
        BlackConfig {
            pixel_threshold: 0.10,
            picture_ratio: 0.98,
            min_duration: 0.5,
            critical_after: 10.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for BlackConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let ratio = self.pixel_threshold;
        f.check(
            "pixel_threshold",
            ratio,
            (0.0..=1.0).contains(&ratio),
            "expected a fraction between 0 and 1",
        )?;
        let ratio = self.picture_ratio;
        f.check(
            "picture_ratio",
            ratio,
            ratio > 0.0 && ratio <= 1.0,
            "expected a fraction in (0, 1]",
        )
    }
}

/// `silence`: every channel below `noise_db` for at least `min_duration`; and, per channel,
/// one channel below it while others are not.
/// Defaults follow FFmpeg's silencedetect level (-60 dB), with a 1 s minimum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceConfig {
    /// Sample amplitude, in dB of full scale, below which audio counts as silent (default -60).
    pub noise_db: f64,
    /// Shortest silence reported, in seconds (default 1.0).
    pub min_duration: f64,
    /// Silences at least this long are critical (default 10.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
    /// Also report one channel silent while others carry sound, e.g. a dead channel in 5.1
    /// (default true).
    pub per_channel: bool,
    /// Check the low-frequency effects channel on its own too (default false: programmes
    /// often leave it silent by design).
    pub include_lfe: bool,
}

impl Default for SilenceConfig {
    fn default() -> Self {
        SilenceConfig {
            noise_db: -60.0,
            min_duration: 1.0,
            critical_after: 10.0,
            clear_after: 0.0,
            per_channel: true,
            include_lfe: false,
        }
    }
}

impl KindSection for SilenceConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        f.db("noise_db", self.noise_db)
    }
}

/// `blockiness`: visible block structure (a starved encoder, concealed damage), no reference
/// needed. Per picture, block-edge and inside-block luma differences on the 8x8 grid feed a
/// small model trained on natural content (docs/block-corruption.md) that gives the
/// probability the picture is visibly blocky.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockinessConfig {
    /// A picture is blocky when the model's probability that it is reaches this (default
    /// 0.5; between 0 and 1).
    pub threshold: f64,
    /// An open incident continues while the probability stays at or above this (default
    /// 0.3, at most `threshold`): a starved encoder's pictures alternate between worse and
    /// better, and one better picture should not close it.
    pub clear_threshold: f64,
    /// Shortest blocky run reported, in seconds (default 0.5).
    pub min_duration: f64,
    /// Blocky runs at least this long are critical (default 5.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
}

impl Default for BlockinessConfig {
    fn default() -> Self {
        BlockinessConfig {
            threshold: 0.5,
            clear_threshold: 0.3,
            min_duration: 0.5,
            critical_after: 5.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for BlockinessConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let t = self.threshold;
        f.check(
            "threshold",
            t,
            t > 0.0 && t < 1.0,
            "expected a probability between 0 and 1",
        )?;
        let c = self.clear_threshold;
        f.check(
            "clear_threshold",
            c,
            c > 0.0 && c <= t,
            "expected a probability above 0 and at most threshold",
        )
    }
}

/// `corruption`: pictures the decoder flagged as damaged or concealed, and packets it
/// rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorruptionConfig {
    /// Shortest corruption reported, in seconds (default 0: one damaged picture is enough).
    pub min_duration: f64,
    /// Corruption lasting at least this long is critical (default 2.0 s).
    pub critical_after: f64,
    /// Damaged pictures at most this many seconds apart are one incident: the incident closes once the
    /// condition has been absent this long (default 1.0; `join_gap` is an older name).
    #[serde(alias = "join_gap")]
    pub clear_after: f64,
}

impl Default for CorruptionConfig {
    fn default() -> Self {
        CorruptionConfig {
            min_duration: 0.0,
            critical_after: 2.0,
            clear_after: 1.0,
        }
    }
}

impl KindSection for CorruptionConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration_or_zero("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)
    }
}

/// `blur`: the picture's sharpest edges grow wide, measured as the Marziliano edge width that
/// FFmpeg's blurdetect builds on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlurConfig {
    /// A frame is blurred when its edge width, in pixels, exceeds this (default 2.75). An
    /// edge's width is its 10-90% rise distance; a tile's is the 20th percentile of its
    /// edges', and the frame's that of its textured tiles' 5th percentile, sharpest first
    /// (at least the third), so a sharp subject before an out-of-focus background keeps the
    /// frame sharp. Sharp pictures measure about 1 px, shallow-focus close-ups up to 2.5, a
    /// Gaussian blur of sigma 2 at 720p about 3, a 3x upscale 2.5-3.5.
    pub max_edge_width: f64,
    /// A blurred run opens only where the picture lost its detail at once, as a defocused
    /// lens or a switch to an upscaled feed does: its edge width is at least `min_rise`
    /// times the sharpest width (per segment, averaged) of the last `onset_window` seconds
    /// of picture not in a blurred run (default 2.0 s; 0: judge every frame by
    /// `max_edge_width` alone). A scene soft all along, a zoom that drifts into an
    /// out-of-focus background over seconds, or a stream that starts soft opens none; a
    /// cut to a scene soft all over does, like a defocus. The judgement is the
    /// aggregator's, across segments.
    pub onset_window: f64,
    /// How many times wider the edges must have grown (default 2.0). Injected blur and
    /// defocus grow them 3-10x; natural pans onto soft parts of a scene 1.3-1.8x within
    /// 2 s (docs/alarms.md).
    pub min_rise: f64,
    /// Shortest blurred run reported, in seconds (default 1.0).
    pub min_duration: f64,
    /// Blurred runs at least this long are critical (default 10.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
}

impl Default for BlurConfig {
    fn default() -> Self {
        BlurConfig {
            max_edge_width: 2.75,
            onset_window: 2.0,
            min_rise: 2.0,
            min_duration: 1.0,
            critical_after: 10.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for BlurConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let w = self.max_edge_width;
        f.check("max_edge_width", w, w > 1.0, "expected pixels above 1")?;
        let o = self.onset_window;
        f.check(
            "onset_window",
            o,
            o == 0.0 || (0.5..=600.0).contains(&o),
            "expected seconds, 0 (no onset judged) or 0.5 to 600",
        )?;
        let r = self.min_rise;
        f.check("min_rise", r, r >= 1.0, "expected a factor, 1 or more")
    }
}

/// `borders`: letterbox or pillarbox appearing, disappearing or changing size — the black
/// rows at the top and bottom, columns at the left and right, measured on each picture as
/// FFmpeg's cropdetect does (a line is black when its mean luma is at most `limit` above
/// black), and compared across segments by the aggregator: a geometry differing from the
/// established one by more than `tolerance_px` on any edge, held for `min_duration`, is a
/// change. docs/picture-format.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BordersConfig {
    /// A row or column is border when its mean luma is at most this far above the black
    /// level (8-bit code values; default 8: cropdetect's `limit` 24 on TV-range black 16).
    pub limit: f64,
    /// ... and none of its sampled pixels is more than this far above black (default 32):
    /// a border is uniformly dark along its length, a dark scene's row seldom is.
    pub max_pixel: f64,
    /// The picture's first line inside a border must be content: its mean at least this
    /// far above black (default 24); a border ending in dim picture (a fade, a night
    /// scene) is not measured.
    pub min_content: f64,
    /// Borders facing each other (top and bottom, left and right) may differ by at most
    /// this share of the larger plus `tolerance_px` (default 0.25); a picture with one
    /// much larger is dark at one edge, not boxed, and is not measured.
    pub max_asymmetry: f64,
    /// A change is more than this many pixels on some edge (default 2).
    pub tolerance_px: u32,
    /// Pictures measured: one in this many, and every picture between two measured ones
    /// that differ (default 5), so a change is exact to the picture.
    pub stride: u32,
    /// The new geometry must hold this long, in seconds, to be a change (default 1.0: a
    /// change is reported within 2 s of 1 s segments); the incident spans it.
    pub min_duration: f64,
    /// Incidents lasting at least this long are critical (default 3600 s: a change is
    /// an event, seldom critical).
    pub critical_after: f64,
}

impl Default for BordersConfig {
    fn default() -> Self {
        BordersConfig {
            limit: 8.0,
            max_pixel: 32.0,
            min_content: 24.0,
            max_asymmetry: 0.25,
            tolerance_px: 2,
            stride: 5,
            min_duration: 1.0,
            critical_after: 3600.0,
        }
    }
}

impl KindSection for BordersConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        let code = "expected 8-bit code values above black, 0 to 255";
        f.check(
            "limit",
            self.limit,
            (0.0..=255.0).contains(&self.limit),
            code,
        )?;
        let p = self.max_pixel;
        f.check("max_pixel", p, (self.limit..=255.0).contains(&p), code)?;
        let c = self.min_content;
        f.check("min_content", c, (0.0..=255.0).contains(&c), code)?;
        let a = self.max_asymmetry;
        f.check(
            "max_asymmetry",
            a,
            (0.0..=1.0).contains(&a),
            "expected a share, 0 to 1",
        )?;
        let t = f64::from(self.tolerance_px);
        f.check("tolerance_px", t, t <= 100.0, "expected pixels, 0 to 100")?;
        let s = f64::from(self.stride);
        f.check(
            "stride",
            s,
            (1.0..=100.0).contains(&s),
            "expected pictures, 1 to 100",
        )
    }
}

/// `aspect_ratio`: the declared display aspect ratio (width × sample aspect ratio / height)
/// changing from one picture to the next, as a stream switching between 16:9 and 4:3
/// signalling does. A stream that declares no sample aspect ratio displays square pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AspectRatioConfig {
    /// A change is a relative difference of more than this (default 0.01: 16:9 against
    /// 4:3 is 0.33, rounding of SAR to small integers less than 0.005).
    pub tolerance: f64,
    /// Incidents lasting at least this long are critical (default 3600 s: a change is an
    /// event).
    pub critical_after: f64,
}

impl Default for AspectRatioConfig {
    fn default() -> Self {
        AspectRatioConfig {
            tolerance: 0.01,
            critical_after: 3600.0,
        }
    }
}

impl KindSection for AspectRatioConfig {
    fn rule(&self) -> Rule {
        // One picture with the new ratio is the change.
        Rule::new(0.0, self.critical_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("critical_after", self.critical_after)?;
        let t = self.tolerance;
        f.check(
            "tolerance",
            t,
            t > 0.0 && t < 1.0,
            "expected a share above 0, below 1",
        )
    }
}

/// `field_order`: interlaced content against the declared scan — declared progressive but
/// combed, or declared top field first but bottom first (and vice versa) — judged per
/// picture as FFmpeg's idet does (thresholds its `intl_thres` and `prog_thres`) and per
/// segment by majority. docs/picture-format.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldOrderConfig {
    /// A picture is interlaced with one field first when that order's combing exceeds the
    /// other's this many times (default 1.04: idet's `intl_thres`).
    pub interlace_threshold: f64,
    /// ... and progressive when the combing across frames exceeds the combing within the
    /// picture this many times (default 1.5: idet's `prog_thres`).
    pub progressive_threshold: f64,
    /// A segment contradicts its declaration when at least this share of its pictures
    /// judged show one scan against it (default 0.6) ...
    pub min_share: f64,
    /// ... those pictures comb plainly: their deciding ratio (one field order's combing
    /// over the other's) is this much on average (default 1.2: interlaced pans measure
    /// 1.5-1.8, progressive pictures idet misjudges 1.04-1.1) ...
    pub min_ratio: f64,
    /// ... and at least this share of its pictures were judged at all (default 0.5: a
    /// still or flat picture shows no combing).
    pub min_judged: f64,
    /// Shortest contradiction reported, in seconds (default 5.0: sustained).
    pub min_duration: f64,
    /// Incidents lasting at least this long are critical (default 60.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 5.0): a still scene in an interlaced programme does not end it.
    pub clear_after: f64,
}

impl Default for FieldOrderConfig {
    fn default() -> Self {
        FieldOrderConfig {
            interlace_threshold: 1.04,
            progressive_threshold: 1.5,
            min_share: 0.6,
            min_ratio: 1.2,
            min_judged: 0.5,
            min_duration: 5.0,
            critical_after: 60.0,
            clear_after: 5.0,
        }
    }
}

impl KindSection for FieldOrderConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let factor = "expected a factor above 1";
        let i = self.interlace_threshold;
        f.check("interlace_threshold", i, i > 1.0, factor)?;
        let p = self.progressive_threshold;
        f.check("progressive_threshold", p, p > 1.0, factor)?;
        let share = "expected a share above 0, at most 1";
        let m = self.min_share;
        f.check("min_share", m, m > 0.0 && m <= 1.0, share)?;
        let r = self.min_ratio;
        f.check("min_ratio", r, r >= 1.0, "expected a factor, 1 or more")?;
        let j = self.min_judged;
        f.check("min_judged", j, j > 0.0 && j <= 1.0, share)
    }
}

/// `colorbars`: SMPTE (SD and HD) or EBU colour bars in place of programme: a row of at least
/// `min_bars` flat, equally wide bars whose luma falls from left to right.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColorbarsConfig {
    /// Fewest bars that make a bar pattern (default 6; SMPTE has 7, EBU 8).
    pub min_bars: u32,
    /// Shortest run of bars reported, in seconds (default 1.0).
    pub min_duration: f64,
    /// Bars at least this long are critical (default 10.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
}

impl Default for ColorbarsConfig {
    fn default() -> Self {
        ColorbarsConfig {
            min_bars: 6,
            min_duration: 1.0,
            critical_after: 10.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for ColorbarsConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        f.check(
            "min_bars",
            f64::from(self.min_bars),
            (3..=16).contains(&self.min_bars),
            "expected between 3 and 16 bars",
        )
    }
}

/// `frame_drop`: video timestamps that jump forward by more than `max_gap_frames` frame
/// durations (frames missing) or go backwards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrameDropConfig {
    /// Largest step between frames, in frame durations, that is not a drop (default 1.5).
    pub max_gap_frames: f64,
    /// Shortest gap reported, in seconds (default 0: one missing frame is enough).
    pub min_duration: f64,
    /// Gaps at least this long are critical (default 1.0 s).
    pub critical_after: f64,
    /// Gaps at most this many seconds apart are one incident: the incident closes once the
    /// condition has been absent this long (default 0.5; `join_gap` is an older name).
    #[serde(alias = "join_gap")]
    pub clear_after: f64,
}

impl Default for FrameDropConfig {
    fn default() -> Self {
        FrameDropConfig {
            max_gap_frames: 1.5,
            min_duration: 0.0,
            critical_after: 1.0,
            clear_after: 0.5,
        }
    }
}

impl KindSection for FrameDropConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration_or_zero("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let g = self.max_gap_frames;
        f.check(
            "max_gap_frames",
            g,
            g > 1.0,
            "expected frame durations above 1",
        )
    }
}

/// A loudness standard: the target, the programme's tolerance and the true-peak maximum
/// that `[loudness]` takes unless the file sets them (docs/alarms.md has the sources).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoudnessStandard {
    /// EBU R128: -23 LUFS, ±1 LU for live programmes (R128 s1 / Tech 3343), -1 dBTP.
    #[default]
    EbuR128,
    /// ATSC A/85: -24 LKFS, ±2 dB, -2 dBTP.
    AtscA85,
}

impl LoudnessStandard {
    /// (target LUFS, programme tolerance LU, maximum true peak dBTP).
    pub fn values(self) -> (f64, f64, f64) {
        match self {
            LoudnessStandard::EbuR128 => (-23.0, 1.0, -1.0),
            LoudnessStandard::AtscA85 => (-24.0, 2.0, -2.0),
        }
    }
}

/// `loudness`: programme loudness (BS.1770 gated integrated loudness over the last
/// `programme_window` seconds, judged by the aggregator) outside `target_lufs ±
/// tolerance_lu`; and the thresholds of the two momentary kinds the loudness detector
/// reports, `loudness_jump` (short-term loudness) and `true_peak`. The stream's integrated
/// loudness, loudness range and true peak are in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoudnessConfig {
    /// Which standard's target, tolerance and true-peak maximum apply (default `ebu_r128`;
    /// `atsc_a85`). `target_lufs`, `tolerance_lu` and `max_true_peak_dbtp` given in the file
    /// win over the standard's.
    pub standard: LoudnessStandard,
    /// Target programme loudness, LUFS (EBU R128 -23, ATSC A/85 -24).
    pub target_lufs: f64,
    /// The programme's loudness may be this many LU off the target (EBU R128 1, for live
    /// programmes; ATSC A/85 2).
    pub tolerance_lu: f64,
    /// Programme loudness is integrated over this many seconds of the most recent audio;
    /// 0 (file QC's default): over the whole input, judged once it ends, as EBU Tech
    /// 3341's integrated loudness runs from start to stop. Broadcast monitoring's default
    /// is 600: a sliding ten minutes, long enough to be the programme's level rather than
    /// a passage's (a minute of orchestral music at -23 LUFS over its 75 s is 1-2 LU
    /// off; Volicon's long-term programme loudness offers the last hour or day). A
    /// stream shorter than the window is not judged (its integrated loudness is in the
    /// report).
    pub programme_window: f64,
    /// True peak above this, dBTP, is a `true_peak` finding (EBU R128 -1, ATSC A/85 -2).
    pub max_true_peak_dbtp: f64,
    /// Short-term loudness more than this many LU above the target is a `loudness_jump`
    /// (default 5: EBU R128 s1's maximum short-term loudness, -18 LUFS).
    pub max_above_lu: f64,
    /// Short-term loudness more than this many LU below both the target and the programme
    /// level is a `loudness_jump` (a dip); 0, the default, judges no dips: music's quiet
    /// passages and fades are no fault (20 minutes of orchestral music at -34 LUFS dip
    /// more than 10 LU below their programme level 7 times), a quiet programme is the
    /// programme's incident, and audio below -70 LUFS is silence, the silence detector's.
    pub max_below_lu: f64,
    /// Hysteresis of `loudness_jump`: an excursion is over only once short-term loudness is
    /// back this many LU inside (default 1.0), so a passage hovering at a bound is one
    /// incident, not an alarm going on and off.
    pub clear_lu: f64,
    /// Raise after: the programme was out of tolerance this long, in seconds (default 5.0).
    pub min_duration: f64,
    /// Programme loudness incidents at least this long are critical (default 30.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
}

impl Default for LoudnessConfig {
    fn default() -> Self {
        LoudnessConfig::for_standard(LoudnessStandard::EbuR128)
    }
}

/// The keys of `[loudness]` that a standard sets unless the file does.
const STANDARD_KEYS: [&str; 3] = ["target_lufs", "tolerance_lu", "max_true_peak_dbtp"];

impl LoudnessConfig {
    /// The defaults under a standard.
    pub fn for_standard(standard: LoudnessStandard) -> Self {
        let (target_lufs, tolerance_lu, max_true_peak_dbtp) = standard.values();
        LoudnessConfig {
            standard,
            target_lufs,
            tolerance_lu,
            programme_window: 0.0,
            max_true_peak_dbtp,
            max_above_lu: 5.0,
            max_below_lu: 0.0,
            clear_lu: 1.0,
            min_duration: 5.0,
            critical_after: 30.0,
            clear_after: 0.0,
        }
    }

    /// Takes the standard's values for the keys the file's section does not name (`given`).
    fn apply_standard(&mut self, given: impl Fn(&str) -> bool) {
        let values = self.standard.values();
        let fields = [
            &mut self.target_lufs,
            &mut self.tolerance_lu,
            &mut self.max_true_peak_dbtp,
        ];
        for ((key, field), value) in STANDARD_KEYS
            .iter()
            .zip(fields)
            .zip([values.0, values.1, values.2])
        {
            if !given(key) {
                *field = value;
            }
        }
    }
}

impl KindSection for LoudnessConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let t = self.target_lufs;
        f.check(
            "target_lufs",
            t,
            (-70.0..=0.0).contains(&t),
            "expected LUFS between -70 and 0",
        )?;
        let tol = self.tolerance_lu;
        f.check("tolerance_lu", tol, tol > 0.0, "expected LU above 0")?;
        let w = self.programme_window;
        f.check(
            "programme_window",
            w,
            w == 0.0 || (3.0..=86_400.0).contains(&w),
            "expected seconds, 0 (the whole input) or 3 (a short-term window) to 86400 (a day)",
        )?;
        let tp = self.max_true_peak_dbtp;
        f.check(
            "max_true_peak_dbtp",
            tp,
            (-20.0..=6.0).contains(&tp),
            "expected dBTP between -20 and 6",
        )?;
        let (above, below) = (self.max_above_lu, self.max_below_lu);
        f.check("max_above_lu", above, above > 0.0, "expected LU above 0")?;
        f.check(
            "max_below_lu",
            below,
            below >= 0.0,
            "expected LU, 0 (no dips judged) or more",
        )?;
        let clear = self.clear_lu;
        f.check(
            "clear_lu",
            clear,
            clear >= 0.0 && clear < (above + below) / 2.0,
            "expected LU, 0 or more and less than half the window",
        )
    }
}

/// `loudness_jump`: short-term (3 s) loudness more than `loudness.max_above_lu` above the
/// target (a commercial louder than the programme), or, if `loudness.max_below_lu` is set,
/// a dip that far below both the target and the programme level. The thresholds are `[loudness]`'s; this
/// section holds the alarm timings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoudnessJumpConfig {
    /// Shortest excursion reported, in seconds (default 5.0).
    pub min_duration: f64,
    /// Excursions at least this long are critical (default 30.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once).
    pub clear_after: f64,
}

impl Default for LoudnessJumpConfig {
    fn default() -> Self {
        LoudnessJumpConfig {
            min_duration: 5.0,
            critical_after: 30.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for LoudnessJumpConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration_or_zero("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)
    }
}

/// `true_peak`: true peak (BS.1770 4x oversampled) above `loudness.max_true_peak_dbtp`, per
/// 100 ms step. A sporadic kind: overs at most `clear_after` apart are one incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TruePeakConfig {
    /// Shortest passage of overs reported, in seconds (default 0: one over is a defect).
    pub min_duration: f64,
    /// Passages of overs at least this long are critical (default 5.0 s).
    pub critical_after: f64,
    /// Overs at most this many seconds apart are one incident (default 0.5).
    pub clear_after: f64,
}

impl Default for TruePeakConfig {
    fn default() -> Self {
        TruePeakConfig {
            min_duration: 0.0,
            critical_after: 5.0,
            clear_after: 0.5,
        }
    }
}

impl KindSection for TruePeakConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration_or_zero("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)
    }
}

/// `clipping`: runs of consecutive samples at full scale on any channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClippingConfig {
    /// A sample is at full scale when its magnitude is at least this (default 0.99).
    pub level: f64,
    /// Fewest consecutive full-scale samples that count as a clip (default 4): a loud but
    /// intact waveform touches its peak for one or two samples.
    pub min_run: u32,
    /// Shortest clipped passage reported, in seconds (default 0).
    pub min_duration: f64,
    /// Clipped passages at least this long are critical (default 5.0 s).
    pub critical_after: f64,
    /// Clips at most this many seconds apart are one passage: the incident closes once the
    /// condition has been absent this long (default 0.5; `join_gap` is an older name).
    #[serde(alias = "join_gap")]
    pub clear_after: f64,
}

impl Default for ClippingConfig {
    fn default() -> Self {
        ClippingConfig {
            level: 0.99,
            min_run: 4,
            min_duration: 0.0,
            critical_after: 5.0,
            clear_after: 0.5,
        }
    }
}

impl KindSection for ClippingConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration_or_zero("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let level = self.level;
        f.check(
            "level",
            level,
            level > 0.0 && level <= 1.0,
            "expected a fraction of full scale in (0, 1]",
        )?;
        f.check(
            "min_run",
            f64::from(self.min_run),
            self.min_run >= 1,
            "expected at least 1 sample",
        )
    }
}

/// `av_sync`: on a sync test pattern (a white flash with a simultaneous beep, repeating), the
/// audio onset's offset from the flash, positive when audio is late.
///
/// The offset is measured only where there is a flash, so an out-of-sync incident stays
/// open between flashes until a flash measures the audio back in tolerance (continuity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvSyncConfig {
    /// Audio later than the picture by more than this is an incident (default 45 ms).
    pub max_late_ms: f64,
    /// Audio earlier than the picture by more than this is an incident (default 15 ms).
    pub max_early_ms: f64,
    /// How far from a flash its beep is looked for (default 500 ms).
    pub search_ms: f64,
    /// Shortest out-of-sync run reported, in seconds (default 0: one measurement).
    pub min_duration: f64,
    /// Out-of-sync runs at least this long are critical (default 10.0 s).
    pub critical_after: f64,
    /// The incident closes once the audio has been measured in tolerance and no
    /// measurement said otherwise for this long, in seconds (default 0: at the first
    /// in-tolerance measurement).
    pub clear_after: f64,
}

impl Default for AvSyncConfig {
    fn default() -> Self {
        AvSyncConfig {
            max_late_ms: 45.0,
            max_early_ms: 15.0,
            search_ms: 500.0,
            min_duration: 0.0,
            critical_after: 10.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for AvSyncConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after)
            .clearing(self.clear_after)
            .continuing()
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration_or_zero("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let (late, early, search) = (self.max_late_ms, self.max_early_ms, self.search_ms);
        f.check(
            "max_late_ms",
            late,
            late >= 0.0,
            "expected milliseconds >= 0",
        )?;
        f.check(
            "max_early_ms",
            early,
            early >= 0.0,
            "expected milliseconds >= 0",
        )?;
        f.check(
            "search_ms",
            search,
            (40.0..=2000.0).contains(&search),
            "expected milliseconds between 40 and 2000",
        )
    }
}

/// `audio_dropout`: holes in the audio timeline, where packets were lost in transport or
/// rejected by the decoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioDropoutConfig {
    /// Shortest hole reported, in milliseconds (default 10: transport timestamps jitter by
    /// less than a millisecond, one lost AAC frame is 21 ms).
    pub min_gap_ms: f64,
    /// Shortest dropout reported, in seconds (default 0: one hole is enough).
    pub min_duration: f64,
    /// Dropouts lasting at least this long are critical (default 1.0 s).
    pub critical_after: f64,
    /// Holes at most this many seconds apart are one incident: the incident closes once the
    /// audio has been whole this long (default 0.5).
    pub clear_after: f64,
}

impl Default for AudioDropoutConfig {
    fn default() -> Self {
        AudioDropoutConfig {
            min_gap_ms: 10.0,
            min_duration: 0.0,
            critical_after: 1.0,
            clear_after: 0.5,
        }
    }
}

impl KindSection for AudioDropoutConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration_or_zero("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let g = self.min_gap_ms;
        f.check(
            "min_gap_ms",
            g,
            (0.0..=1000.0).contains(&g),
            "expected milliseconds between 0 and 1000",
        )
    }
}

/// `audio_clicks`: clicks and pops — a sample that jumps away from the straight line through
/// the two before it by at least `min_jump_dbfs`, far more than the audio around it does
/// (`min_ratio`, `min_slope_ratio` over `window_ms` either side). docs/audio.md has the
/// method and the sources of the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioClicksConfig {
    /// Smallest jump that can be a click, dBFS (default -30, the issue's "−30 dBFS or
    /// louder"): how far a sample lands from the straight line through the two before it
    /// (a step of that height, half an impulse's).
    pub min_jump_dbfs: f64,
    /// A click's jump is at least this many times the RMS of the jumps around it (default
    /// 30): noise and bright content jump all the time, a click stands alone. Orchestral
    /// music after AAC or MP2 reaches 25 on the clean natural corpus; a click on programme
    /// sound reads 30 to several hundred.
    pub min_ratio: f64,
    /// ... and at least this many times the RMS of the first difference around it (default
    /// 5): a low tone's corners (a start at a zero crossing, clipped tops) change its slope
    /// by about its own slope (1.4 to 8 times the RMS), a click its value by far more.
    pub min_slope_ratio: f64,
    /// How much audio either side of a jump it is judged against, in milliseconds (default
    /// 10, between 2 and 50), after leaving out 1 to 2 ms either side (the click's own
    /// samples).
    pub window_ms: f64,
    /// Shortest incident reported, in seconds (default 0: one click is enough).
    pub min_duration: f64,
    /// Clicking that lasts at least this long is critical (default 10 s: crackle, not a
    /// click).
    pub critical_after: f64,
    /// Clicks at most this many seconds apart are one incident: it closes once the audio has
    /// been clean this long (default 1.0).
    pub clear_after: f64,
}

impl Default for AudioClicksConfig {
    fn default() -> Self {
        AudioClicksConfig {
            min_jump_dbfs: -30.0,
            min_ratio: 30.0,
            min_slope_ratio: 5.0,
            window_ms: 10.0,
            min_duration: 0.0,
            critical_after: 10.0,
            clear_after: 1.0,
        }
    }
}

impl KindSection for AudioClicksConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration_or_zero("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        let j = self.min_jump_dbfs;
        f.check(
            "min_jump_dbfs",
            j,
            (-120.0..=6.0).contains(&j),
            "expected dBFS between -120 and 6",
        )?;
        for (name, ratio) in [
            ("min_ratio", self.min_ratio),
            ("min_slope_ratio", self.min_slope_ratio),
        ] {
            f.check(
                name,
                ratio,
                (1.0..=1000.0).contains(&ratio),
                "expected a ratio between 1 and 1000",
            )?;
        }
        let w = self.window_ms;
        f.check(
            "window_ms",
            w,
            (2.0..=50.0).contains(&w),
            "expected milliseconds between 2 and 50",
        )
    }
}

/// `audio_phase`: a stereo pair out of phase (one channel's polarity inverted, or the same
/// sound half a period apart): per 100 ms step, the pair's correlation over a window centred
/// on it below `max_correlation`, where the pair is not near silence. docs/audio.md has the
/// sources of the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioPhaseConfig {
    /// A pair is out of phase where its correlation is below this (default -0.3, between
    /// -1 and 1): an inverted channel of a stereo programme reads -0.3 to -1, programme in
    /// phase reads 0 to +1 (Tektronix: +0.5 to +1).
    pub max_correlation: f64,
    /// Length of the window the correlation is measured over, in seconds (default 0.3,
    /// between 0.1 and 5): a correlation meter's integration time. A run is found to
    /// within half of it.
    pub window: f64,
    /// Steps where the louder channel of the pair is below this RMS level, dBFS, are not
    /// judged (default -50): silence and near-silence have no phase.
    pub gate_dbfs: f64,
    /// Shortest out-of-phase run reported, in seconds (default 3.0: music reads below
    /// -0.3 for up to 1.6 s on the clean natural corpus; an inverted channel reads so all
    /// along).
    pub min_duration: f64,
    /// Out-of-phase runs at least this long are critical (default 10.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
}

impl Default for AudioPhaseConfig {
    fn default() -> Self {
        AudioPhaseConfig {
            max_correlation: -0.3,
            window: 0.3,
            gate_dbfs: -50.0,
            min_duration: 3.0,
            critical_after: 10.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for AudioPhaseConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        f.db("gate_dbfs", self.gate_dbfs)?;
        correlation_window(f, self.window)?;
        let c = self.max_correlation;
        f.check(
            "max_correlation",
            c,
            (-1.0..1.0).contains(&c),
            "expected a correlation from -1 up to 1",
        )
    }
}

/// The window a pair's correlation is measured over: a tenth of a second to five.
fn correlation_window(f: &Fields, window: f64) -> Result<(), ConfigError> {
    f.check(
        "window",
        window,
        (0.1..=5.0).contains(&window),
        "expected seconds between 0.1 and 5",
    )
}

/// `audio_mono`: mono carried as stereo — a pair's channels the same sound at the same
/// level (correlation at least `min_correlation`, levels within `max_level_difference_db`),
/// where the pair is not near silence. Off by default (not in the default `detectors`): a
/// stereo programme is legitimately near mono for long stretches (a talking head).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioMonoConfig {
    /// A pair is mono where its correlation is at least this (default 0.99, between 0 and
    /// 1): copies of one channel read 1, less only by coding noise.
    pub min_correlation: f64,
    /// ... and its channels' RMS levels differ by at most this, dB (default 1.0).
    pub max_level_difference_db: f64,
    /// Length of the window the correlation is measured over, in seconds (default 0.3).
    pub window: f64,
    /// Steps where the louder channel of the pair is below this RMS level, dBFS, are not
    /// judged (default -50).
    pub gate_dbfs: f64,
    /// Shortest mono run reported, in seconds (default 10.0).
    pub min_duration: f64,
    /// Mono runs at least this long are critical (default 60.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
}

impl Default for AudioMonoConfig {
    fn default() -> Self {
        AudioMonoConfig {
            min_correlation: 0.99,
            max_level_difference_db: 1.0,
            window: 0.3,
            gate_dbfs: -50.0,
            min_duration: 10.0,
            critical_after: 60.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for AudioMonoConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        f.db("gate_dbfs", self.gate_dbfs)?;
        correlation_window(f, self.window)?;
        let c = self.min_correlation;
        f.check(
            "min_correlation",
            c,
            c > 0.0 && c <= 1.0,
            "expected a correlation above 0 and at most 1",
        )?;
        let d = self.max_level_difference_db;
        f.check(
            "max_level_difference_db",
            d,
            (0.0..=20.0).contains(&d),
            "expected dB between 0 and 20",
        )
    }
}

/// `audio_level`: the audio's peak level (the loudest channel but the LFE, per `window`)
/// below `low_dbfs` (but above the silence level, which is silence's) or at or above
/// `high_dbfs` for `min_duration`. Defaults are Volicon's level alarms: -40 and -1, 30 s to
/// raise, 10 s to clear (broadcast).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioLevelConfig {
    /// Too low below this peak level, dBFS (default -40).
    pub low_dbfs: f64,
    /// Too high at or above this peak level, dBFS (default -1).
    pub high_dbfs: f64,
    /// The meter's window: each window's peak is one reading, in seconds (default 0.5,
    /// between 0.1 and 5).
    pub window: f64,
    /// How long the level must stay out of range before the incident is raised, in seconds
    /// (default 30).
    pub min_duration: f64,
    /// Incidents at least this long are critical (default 120.0 s).
    pub critical_after: f64,
    /// The incident closes only once the level has been back in range this long, in
    /// seconds (default 0: at once; broadcast 10).
    pub clear_after: f64,
}

impl Default for AudioLevelConfig {
    fn default() -> Self {
        AudioLevelConfig {
            low_dbfs: -40.0,
            high_dbfs: -1.0,
            window: 0.5,
            min_duration: 30.0,
            critical_after: 120.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for AudioLevelConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        f.db("low_dbfs", self.low_dbfs)?;
        f.db("high_dbfs", self.high_dbfs)?;
        f.check(
            "high_dbfs",
            self.high_dbfs,
            self.high_dbfs > self.low_dbfs && self.high_dbfs <= 0.0,
            "expected dBFS above low_dbfs and at most 0",
        )?;
        let w = self.window;
        f.check(
            "window",
            w,
            (0.1..=5.0).contains(&w),
            "expected seconds between 0.1 and 5",
        )
    }
}

/// `captions`: closed captions (CEA-608/708 in ATSC A/53 picture user data) lost — present,
/// then absent for `min_duration` — or, with `required`, absent from the start. Defaults
/// follow Grass Valley Kaleido's closed-caption alarm: 30 s without captions. docs/captions.md
/// has the sources.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptionsConfig {
    /// Captions must be there from the start: their absence counts before any were seen
    /// (default false: a stream that never carried captions raises nothing).
    pub required: bool,
    /// How long captions must be absent before the incident is raised, in seconds (default
    /// 30, Kaleido's).
    pub min_duration: f64,
    /// Incidents at least this long are critical (default 120.0 s).
    pub critical_after: f64,
    /// The incident closes only once captions have been back this long, in seconds
    /// (default 0: at once; broadcast 10).
    pub clear_after: f64,
}

impl Default for CaptionsConfig {
    fn default() -> Self {
        CaptionsConfig {
            required: false,
            min_duration: 30.0,
            critical_after: 120.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for CaptionsConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)
    }
}

/// `onnx`: any ONNX image model, run with tract on luma patches or on the resized frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnnxConfig {
    /// Path of the `.onnx` file (required when the detector is enabled). The repository ships
    /// `models/blockiness.onnx`, a macroblocking classifier on 32x32 luma patches.
    pub model: String,
    /// `patches`: the model scores `input_width` x `input_height` patches cut at native
    /// resolution on a grid aligned to 16 pixels, and the frame's score is their mean;
    /// `resize`: the model scores the whole frame scaled to its input size (default patches).
    pub mode: OnnxMode,
    /// Model input width and height in pixels (default 32 x 32).
    pub input_width: u32,
    pub input_height: u32,
    /// Input channels: 1 feeds luma; 3 feeds luma to each channel (default 1).
    pub channels: u32,
    /// Input value = (luma * scale - mean) / std (defaults 1/255, 0, 1).
    pub scale: f64,
    pub mean: f64,
    pub std: f64,
    /// Which element of each output row is the defect score (default 0).
    pub output_index: u32,
    /// A frame whose score is at least this is defective (default 0.5).
    pub threshold: f64,
    /// Patches per frame in `patches` mode (default 24).
    pub patches: u32,
    /// Score every n-th frame (default 5: 5 frames a second at 25 fps).
    pub frame_step: u32,
    /// Shortest defective run reported, in seconds (default 0.5).
    pub min_duration: f64,
    /// Runs at least this long are critical (default 5.0 s).
    pub critical_after: f64,
    /// The incident closes only once the condition has been absent this long, in seconds
    /// (default 0: at once); a shorter return of the condition continues it.
    pub clear_after: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnnxMode {
    #[default]
    Patches,
    Resize,
}

impl Default for OnnxConfig {
    fn default() -> Self {
        OnnxConfig {
            model: String::new(),
            mode: OnnxMode::Patches,
            input_width: 32,
            input_height: 32,
            channels: 1,
            scale: 1.0 / 255.0,
            mean: 0.0,
            std: 1.0,
            output_index: 0,
            threshold: 0.5,
            patches: 24,
            frame_step: 5,
            min_duration: 0.5,
            critical_after: 5.0,
            clear_after: 0.0,
        }
    }
}

impl KindSection for OnnxConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)?;
        f.check(
            "threshold",
            self.threshold,
            true,
            "expected a finite number",
        )?;
        f.check(
            "std",
            self.std,
            self.std != 0.0,
            "expected a non-zero number",
        )?;
        f.check(
            "input_width",
            f64::from(self.input_width),
            (1..=4096).contains(&self.input_width) && (1..=4096).contains(&self.input_height),
            "expected input_width and input_height between 1 and 4096",
        )?;
        f.check(
            "channels",
            f64::from(self.channels),
            self.channels == 1 || self.channels == 3,
            "expected 1 or 3",
        )?;
        f.check(
            "patches",
            f64::from(self.patches),
            (1..=1024).contains(&self.patches),
            "expected between 1 and 1024",
        )?;
        f.check(
            "frame_step",
            f64::from(self.frame_step),
            self.frame_step >= 1,
            "expected at least 1",
        )?;
        if f.enabled() && self.model.trim().is_empty() {
            return Err(f.error(
                "model",
                "\"\"".into(),
                "the onnx detector needs a model file: set onnx.model to a .onnx path, e.g. models/blockiness.onnx",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Findings of one kind separated by at most this many seconds are one incident
    /// (default 0.01 s: only rounding; a single different frame ends a freeze).
    pub join_gap: f64,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig { join_gap: 0.01 }
    }
}

/// `input_loss`: a live input stopped sending (or could not be reached) while monitored
/// (`vqa monitor`); the incident lasts until it is back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputLossConfig {
    /// Losses at least this long are critical (default 10.0 s).
    pub critical_after: f64,
}

impl Default for InputLossConfig {
    fn default() -> Self {
        InputLossConfig {
            critical_after: 10.0,
        }
    }
}

impl KindSection for InputLossConfig {
    fn rule(&self) -> Rule {
        // Reported as soon as reading fails; every moment without input is lost.
        Rule::new(0.0, self.critical_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        let c = self.critical_after;
        f.check("critical_after", c, c >= 0.0, "expected seconds, 0 or more")
    }
}

/// `ts_health` (kinds `ts_priority1`, `ts_priority2`): ETSI TR 101 290 (V1.4.1) priority 1
/// and 2 errors of an MPEG-TS input, found in the bytes FFmpeg's demuxer reads
/// (docs/ts-health.md). Runs on MPEG-TS inputs only, when the `ts_priority1` detector is on
/// (by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TsHealthConfig {
    /// PAT and each PMT must recur within this many seconds (default 0.5: TR 101 290
    /// 1.3 PAT_error, 1.5 PMT_error).
    pub section_interval: f64,
    /// A PID a PMT refers to must occur within this many seconds (default 5.0: TR 101 290
    /// 1.6 PID_error leaves it "user specified"; 5 s is tsduck's and most analysers').
    pub pid_absence: f64,
    /// PCRs must recur within this many seconds (default 0.04: 2.3a PCR_repetition_error).
    pub pcr_repetition: f64,
    /// Consecutive PCRs may differ by at most this many seconds without the
    /// discontinuity_indicator (default 0.1: 2.3b PCR_discontinuity_indicator_error).
    pub pcr_discontinuity: f64,
    /// PTSs must recur within this many seconds on a PID that carries them (default 0.7:
    /// 2.5 PTS_error).
    pub pts_repetition: f64,
    /// Shortest incident reported, in seconds (default 0: one error is enough).
    pub min_duration: f64,
    /// Incidents lasting at least this long are critical (default 2.0 s).
    pub critical_after: f64,
    /// Errors at most this many seconds apart are one incident (default 1.0), as for
    /// `corruption`: a burst of lost packets is one incident.
    pub clear_after: f64,
}

impl Default for TsHealthConfig {
    fn default() -> Self {
        TsHealthConfig {
            section_interval: 0.5,
            pid_absence: 5.0,
            pcr_repetition: 0.04,
            pcr_discontinuity: 0.1,
            pts_repetition: 0.7,
            min_duration: 0.0,
            critical_after: 2.0,
            clear_after: 1.0,
        }
    }
}

impl KindSection for TsHealthConfig {
    fn rule(&self) -> Rule {
        Rule::new(self.min_duration, self.critical_after).clearing(self.clear_after)
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("section_interval", self.section_interval)?;
        f.duration("pid_absence", self.pid_absence)?;
        f.duration("pcr_repetition", self.pcr_repetition)?;
        f.duration("pcr_discontinuity", self.pcr_discontinuity)?;
        f.duration("pts_repetition", self.pts_repetition)?;
        f.duration_or_zero("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)?;
        f.duration_or_zero("clear_after", self.clear_after)
    }
}

/// `scte35`: the SCTE-35 splice cues of an MPEG-TS input (ANSI/SCTE 35), decoded and
/// reported as they arrive: each cue an event of severity `info` in the report and in the
/// notifications, with its command, event id, out of or back into the network, pre-roll and
/// duration (docs/scte35.md). Runs on MPEG-TS inputs whose PMT declares an SCTE-35 PID, when
/// the `scte35` detector is on (by default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scte35Config {
    /// Report `splice_null` and `bandwidth_reservation` commands too (default false: they
    /// are the heartbeats and filler an encoder sends between cues, as often as every second).
    pub heartbeats: bool,
}

impl KindSection for Scte35Config {
    fn rule(&self) -> Rule {
        // Each cue is its own event, reported at once; repeats of a cue are events too.
        Rule::new(0.0, 0.0)
    }

    fn validate(&self, _: &Fields) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// `scte35_absent`: an alarm when no SCTE-35 cue (other than heartbeats) arrived for
/// `min_duration` — the ad-insertion signalling stopped. Off by default, since a channel
/// without breaks for an hour is normal for many; Grass Valley Kaleido's "SCTE-35 absent"
/// alarm, likewise optional, defaults to 60 minutes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scte35AbsentConfig {
    /// Raise the alarm (default false).
    pub enabled: bool,
    /// No cue for this many seconds raises it (default 3600: Kaleido's 60 minutes).
    pub min_duration: f64,
    /// Critical after this many seconds without a cue (default 7200).
    pub critical_after: f64,
}

impl Default for Scte35AbsentConfig {
    fn default() -> Self {
        Scte35AbsentConfig {
            enabled: false,
            min_duration: 3600.0,
            critical_after: 7200.0,
        }
    }
}

impl KindSection for Scte35AbsentConfig {
    fn rule(&self) -> Rule {
        // A cue ends the time without one exactly where it arrived.
        Rule::new(self.min_duration, self.critical_after).exact()
    }

    fn validate(&self, f: &Fields) -> Result<(), ConfigError> {
        f.duration("min_duration", self.min_duration)?;
        f.duration("critical_after", self.critical_after)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConverterConfig {
    /// Video decoder threads; 0 lets FFmpeg choose from the number of cores (default 0).
    pub decoder_threads: usize,
    /// Protocols FFmpeg may open for an input given as a URL, and for anything that input
    /// refers to (an HLS playlist's segments): FFmpeg's `protocol_whitelist`. The default has
    /// the network protocols and none that read local files (`file`, `concat`, `subfile`,
    /// ...), so a URL from a stream list cannot make vqa read this machine's files. Plain
    /// paths are local files and are always read.
    pub allowed_protocols: Vec<String>,
    /// Seconds a URL input may send nothing before reading it fails (default 10): a source
    /// that went silent ends the input (`vqa analyze`) or is an `input_loss` (`vqa monitor`).
    pub read_timeout: f64,
    /// Whether a TLS source (`https`, `tls`, `rtmps`) must present a certificate that the
    /// system's CA certificates vouch for (default true; the file named by `SSL_CERT_FILE`,
    /// else `/etc/ssl/certs/ca-certificates.crt`). False accepts any certificate, as FFmpeg
    /// does by default: encrypted, but anyone on the path can pose as the source. FFmpeg's
    /// HLS demuxer does not pass the check on to the segments a playlist names.
    pub tls_verify: bool,
}

impl Default for ConverterConfig {
    fn default() -> Self {
        ConverterConfig {
            decoder_threads: 0,
            allowed_protocols: [
                "http", "https", "tls", "tcp", "udp", "rtp", "srt", "rtmp", "rtmps", "crypto",
            ]
            .map(String::from)
            .to_vec(),
            read_timeout: 10.0,
            tls_verify: true,
        }
    }
}

/// When an incident of one kind is raised, when it is cleared, and when it is critical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncidentRule {
    /// Raise after: the condition held this long.
    pub min_duration: Micros,
    pub critical_after: Micros,
    /// Clear after: the condition was absent this long (at least `aggregator.join_gap`, the
    /// rounding of timestamps). Findings closer than this are one incident.
    pub clear_after: Micros,
    /// Open until a measurement clears it (see [`Rule::continuity`]).
    pub continuity: bool,
}

/// A set of defaults for when incidents are raised and cleared: file QC reports every
/// defect of a file however short; broadcast monitoring pages an operator only for what
/// lasts, as monitors do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// File QC: short raise times (black 0.5 s, freeze and silence 1 s, loudness 5 s),
    /// incidents close as soon as the condition is gone.
    #[default]
    FileQc,
    /// Broadcast monitoring: raise after 10 s of black, freeze, silence or bars (AWS
    /// Elemental MediaConnect's content quality analysis takes 10–60 s, Hybrik's black and
    /// silence analysis 10 s by default), clear after 10 s without (Volicon: 10 s to
    /// clear), programme loudness after 30 s outside the target window with 2 LU of
    /// hysteresis; sporadic defects (damaged pictures, dropped frames, clipping) within 5 s
    /// of each other are one incident. docs/alarms.md has the whole table and its sources.
    Broadcast,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::FileQc, Profile::Broadcast];

    /// The name in configuration files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::FileQc => "file_qc",
            Profile::Broadcast => "broadcast",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().replace('-', "_");
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| ConfigError::OutOfRange {
                field: "profile".into(),
                value: s.trim().to_string(),
                expected: "expected file_qc or broadcast",
            })
    }
}

/// Merges `over` into `base`, table by table (a value in `over` wins).
pub fn merge_toml(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_toml(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl PipelineConfig {
    /// The defaults of a profile.
    pub fn for_profile(profile: Profile) -> Self {
        let mut c = PipelineConfig {
            profile,
            ..PipelineConfig::default()
        };
        if profile == Profile::Broadcast {
            // (raise after, clear after, critical after), seconds.
            macro_rules! timings {
                ($($section:ident),+ => $t:expr) => {
                    $((
                        c.$section.min_duration,
                        c.$section.clear_after,
                        c.$section.critical_after,
                    ) = $t;)+
                };
            }
            timings!(black, freeze, silence, colorbars => (10.0, 10.0, 30.0));
            timings!(blur => (10.0, 10.0, 60.0));
            timings!(blockiness => (1.0, 5.0, 10.0));
            timings!(loudness => (30.0, 10.0, 120.0));
            timings!(loudness_jump => (10.0, 5.0, 60.0));
            timings!(true_peak => (0.0, 5.0, 5.0));
            timings!(audio_phase => (10.0, 10.0, 60.0));
            timings!(audio_mono => (60.0, 10.0, 300.0));
            timings!(audio_level => (30.0, 10.0, 120.0));
            timings!(captions => (30.0, 10.0, 120.0));
            (c.onnx.min_duration, c.onnx.clear_after) = (1.0, 5.0);
            c.loudness.clear_lu = 2.0;
            c.loudness.programme_window = 600.0;
            (c.av_sync.min_duration, c.av_sync.critical_after) = (10.0, 60.0);
            c.corruption.clear_after = 5.0;
            c.frame_drop.clear_after = 5.0;
            c.clipping.clear_after = 5.0;
            c.audio_dropout.clear_after = 5.0;
            c.audio_clicks.clear_after = 5.0;
        }
        c
    }

    /// The alarm timings of every kind under each profile, as TOML comments (what
    /// `vqa config` prints ahead of the configuration; `current` is marked).
    pub fn profiles_table(current: Profile) -> String {
        let configs = Profile::ALL.map(Self::for_profile);
        let mut out = String::from(
            "# Alarm timings per profile (seconds): raise after / clear after / critical after.\n\
             # Choose with --profile or `profile = \"...\"`; values set below win.\n#\n",
        );
        let mut line = format!("# {:<12}", "kind");
        for p in Profile::ALL {
            let mark = if p == current { " (this)" } else { "" };
            line += &format!(" | {:<22}", format!("{p}{mark}"));
        }
        out += line.trim_end();
        out += "\n";
        for kind in IncidentKind::ALL {
            let mut line = format!("# {:<12}", kind.as_str());
            for c in &configs {
                let r = kind.section(c).rule();
                let mut cell = format!(
                    "{} / {} / {}",
                    r.min_duration, r.clear_after, r.critical_after
                );
                if r.continuity {
                    cell += " (cont.)";
                }
                line += &format!(" | {cell:<22}");
            }
            out += line.trim_end();
            out += "\n";
        }
        out + "#\n"
    }

    /// Parses TOML, the format of configuration files, over the file QC profile's defaults
    /// (or those of the profile the file names).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_profiled(text, None, Profile::FileQc)
    }

    /// Parses TOML over a profile's defaults: `chosen` (a command-line flag) if given, else
    /// the file's own `profile`, else `default` (the command's).
    pub fn from_toml_profiled(
        text: &str,
        chosen: Option<Profile>,
        default: Profile,
    ) -> Result<Self, ConfigError> {
        let file = Self::parse_toml(text)?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Toml {
                line: 1,
                message: e.message().trim().to_string(),
            })?;
        let profile = chosen.unwrap_or(if table.contains_key("profile") {
            file.profile
        } else {
            default
        });
        let loudness_keys = table.get("loudness").and_then(toml::Value::as_table);
        let given = |key: &str| loudness_keys.is_some_and(|t| t.contains_key(key));
        if profile == file.profile && profile == Profile::default() {
            let mut file = file;
            file.loudness.apply_standard(given);
            file.validate()?;
            return Ok(file);
        }
        let mut base = toml::Table::try_from(Self::for_profile(profile))
            .map_err(|e| ConfigError::Json(e.to_string()))?;
        merge_toml(&mut base, &table);
        base.insert("profile".into(), profile.as_str().into());
        let mut config: PipelineConfig =
            base.try_into()
                .map_err(|e: toml::de::Error| ConfigError::Toml {
                    line: 1,
                    message: e.message().trim().to_string(),
                })?;
        config.loudness.apply_standard(given);
        config.validate()?;
        Ok(config)
    }

    fn parse_toml(text: &str) -> Result<Self, ConfigError> {
        let config: PipelineConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |span| span.start);
            let line = 1 + text.as_bytes()[..at.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            ConfigError::Toml {
                line,
                message: e.message().trim().to_string(),
            }
        })?;
        Ok(config)
    }

    /// Parses JSON, the form the configuration takes inside a Step Functions payload.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        let loudness_keys = value.get("loudness").and_then(|l| l.as_object()).cloned();
        let mut config: PipelineConfig =
            serde_json::from_value(value).map_err(|e| ConfigError::Json(e.to_string()))?;
        config
            .loudness
            .apply_standard(|key| loudness_keys.as_ref().is_some_and(|t| t.contains_key(key)));
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        // Invariant: every field is a plain number, string or list, all representable in TOML.
        toml::to_string_pretty(self).expect("PipelineConfig is representable in TOML")
    }

    pub fn segment_length(&self) -> Micros {
        time::from_secs(self.segment_seconds)
    }

    pub fn is_enabled(&self, detector: DetectorName) -> bool {
        self.detectors.contains(&detector)
    }

    pub fn rule(&self, kind: IncidentKind) -> IncidentRule {
        let rule = kind.section(self).rule();
        IncidentRule {
            min_duration: time::from_secs(rule.min_duration),
            critical_after: time::from_secs(rule.critical_after),
            clear_after: time::from_secs(if rule.exact {
                rule.clear_after
            } else {
                rule.clear_after.max(self.aggregator.join_gap)
            }),
            continuity: rule.continuity,
        }
    }

    /// Audio before each segment's start the detectors need (loudness: the rest of a 3 s
    /// short-term window; av_sync: a beep ahead of its flash; audio_dropout: where the audio
    /// before the segment ended; audio_clicks: the windows before a click). The converter
    /// hands it over with the segment as `audio_lead_in`.
    pub fn audio_lead_in(&self) -> Micros {
        let mut secs: f64 = 0.0;
        if self.is_enabled(DetectorName::Loudness) {
            // A 3 s short-term window ending at the segment's first 100 ms step.
            secs = secs.max(2.9);
        }
        if self.is_enabled(DetectorName::AvSync) {
            secs = secs.max(self.av_sync.search_ms / 1000.0);
        }
        if self.is_enabled(DetectorName::AudioDropout) {
            // Where the audio before the segment ended: a hole across its start.
            secs = secs.max(1.0);
        }
        if self.is_enabled(DetectorName::AudioClicks) {
            // A click is judged with its window either side: the audio before the segment
            // holds the window before those in its first milliseconds.
            secs = secs.max((2.0 * (self.audio_clicks.window_ms + 3.0) + 1.0) / 1000.0);
        }
        if self.is_enabled(DetectorName::AudioPhase) {
            // Half a correlation window, centred on the segment's first step.
            secs = secs.max(self.audio_phase.window / 2.0);
        }
        if self.is_enabled(DetectorName::AudioMono) {
            secs = secs.max(self.audio_mono.window / 2.0);
        }
        time::from_secs(secs)
    }

    /// Checks every value is in its meaningful range; the error names the field. Each
    /// kind's section checks its own values ([`KindSection::validate`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let top = Fields::top();
        let s = self.segment_seconds;
        top.check(
            "segment_seconds",
            s,
            (0.1..=60.0).contains(&s),
            "expected seconds between 0.1 and 60",
        )?;
        for kind in IncidentKind::ALL {
            let enabled = kind.detector().is_some_and(|d| self.is_enabled(d));
            kind.section(self)
                .validate(&Fields::section(kind.as_str(), enabled))?;
        }
        let t = self.converter.read_timeout;
        Fields::section("converter", true).check(
            "read_timeout",
            t,
            t > 0.0 && t <= 3600.0,
            "expected seconds, more than 0 and at most 3600",
        )?;
        let g = self.aggregator.join_gap;
        Fields::section("aggregator", true).check(
            "join_gap",
            g,
            (0.0..=10.0).contains(&g),
            "expected seconds between 0 and 10",
        )?;
        if self.detectors.is_empty() {
            return Err(top.error("detectors", "[]".into(), "expected at least one detector"));
        }
        Ok(())
    }
}

/// A kind's configuration section (`[freeze]`, `[input_loss]`, ...): when its incidents are
/// reported, and the checks of its own values. [`IncidentKind::section`] finds it.
pub trait KindSection {
    /// When incidents of the kind are reported and when they are critical.
    fn rule(&self) -> Rule;
    /// Checks the section's values; a bad one is named through `fields`.
    fn validate(&self, fields: &Fields) -> Result<(), ConfigError>;
}

/// A kind's incident rule in the configuration's seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// The condition must hold this long before the incident is raised.
    pub min_duration: f64,
    pub critical_after: f64,
    /// The condition must be absent this long before the incident closes.
    pub clear_after: f64,
    /// The condition is measured only now and then (A/V offset: where there is a flash and a
    /// beep): an incident stays open until a measurement says the condition is gone
    /// ([`crate::report::Level::Clear`]).
    pub continuity: bool,
    /// The findings' times are exact (spans of whole segments, cue arrivals: no picture
    /// timestamps to round), so `aggregator.join_gap` does not bridge them.
    pub exact: bool,
}

impl Rule {
    pub fn new(min_duration: f64, critical_after: f64) -> Self {
        Rule {
            min_duration,
            critical_after,
            clear_after: 0.0,
            continuity: false,
            exact: false,
        }
    }

    pub fn exact(self) -> Self {
        Rule {
            exact: true,
            ..self
        }
    }

    pub fn clearing(self, clear_after: f64) -> Self {
        Rule {
            clear_after,
            ..self
        }
    }

    pub fn continuing(self) -> Self {
        Rule {
            continuity: true,
            ..self
        }
    }
}

/// Names the fields of one section in errors (`freeze.min_duration`), with the checks
/// sections share.
pub struct Fields {
    section: &'static str,
    enabled: bool,
}

impl Fields {
    fn top() -> Self {
        Fields {
            section: "",
            enabled: true,
        }
    }

    fn section(section: &'static str, enabled: bool) -> Self {
        Fields { section, enabled }
    }

    /// Whether the section's detector runs (some checks apply only then).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The error for `field` of this section.
    pub fn error(&self, field: &str, value: String, expected: &'static str) -> ConfigError {
        let field = if self.section.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.section)
        };
        ConfigError::OutOfRange {
            field,
            value,
            expected,
        }
    }

    /// `value` must be finite and `ok`.
    pub fn check(
        &self,
        field: &str,
        value: f64,
        ok: bool,
        expected: &'static str,
    ) -> Result<(), ConfigError> {
        if ok && value.is_finite() {
            Ok(())
        } else {
            Err(self.error(field, value.to_string(), expected))
        }
    }

    /// A duration in seconds, more than 0 and at most a day.
    pub fn duration(&self, field: &str, v: f64) -> Result<(), ConfigError> {
        let ok = v > 0.0 && v <= 86_400.0;
        self.check(field, v, ok, "expected a duration in seconds, > 0")
    }

    /// A duration in seconds, 0 or more (kinds where one event is a defect may report it
    /// however short), at most a day.
    pub fn duration_or_zero(&self, field: &str, v: f64) -> Result<(), ConfigError> {
        let ok = (0.0..=86_400.0).contains(&v);
        self.check(field, v, ok, "expected a duration in seconds, >= 0")
    }

    /// A level in dB of full scale.
    pub fn db(&self, field: &str, v: f64) -> Result<(), ConfigError> {
        let ok = (-150.0..=0.0).contains(&v);
        self.check(field, v, ok, "expected dB of full scale between -150 and 0")
    }
}

/// dB of full scale to a linear amplitude ratio.
pub fn db_to_ratio(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults_and_defaults_round_trip() {
        let empty = PipelineConfig::from_toml("").unwrap();
        assert_eq!(empty, PipelineConfig::default());
        let again = PipelineConfig::from_toml(&empty.to_toml()).unwrap();
        assert_eq!(again, empty);
        let json = serde_json::to_string(&empty).unwrap();
        assert_eq!(PipelineConfig::from_json(&json).unwrap(), empty);
    }

    #[test]
    fn partial_file_changes_only_what_it_names() {
        let c =
            PipelineConfig::from_toml("detectors = [\"black\"]\n[freeze]\nmin_duration = 2.5\n")
                .unwrap();
        assert_eq!(c.detectors, vec![DetectorName::Black]);
        assert_eq!(c.freeze.min_duration, 2.5);
        assert_eq!(c.freeze.noise_db, -60.0);
        assert_eq!(c.rule(IncidentKind::Freeze).min_duration, 2_500_000);
    }

    #[test]
    fn misspelt_or_out_of_range_values_are_errors_naming_the_field() {
        let e = PipelineConfig::from_toml("[freeze]\nmin_duraton = 2\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 2: unknown field `min_duraton`"),
            "{e}"
        );
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
        let e = PipelineConfig::from_toml("segment_seconds = 0\n").unwrap_err();
        assert!(e.to_string().contains("segment_seconds"), "{e}");
        let e = PipelineConfig::from_toml("[black]\npicture_ratio = 1.5\n").unwrap_err();
        assert!(e.to_string().contains("black.picture_ratio"), "{e}");
        let e = PipelineConfig::from_toml("detectors = [\"blurr\"]\n").unwrap_err();
        assert!(e.to_string().contains("blurr"), "{e}");
    }

    #[test]
    fn profiles_set_defaults_and_a_file_or_flag_chooses_them() {
        let qc = PipelineConfig::from_toml("").unwrap();
        assert_eq!(qc.profile, Profile::FileQc);
        assert_eq!(qc.black.min_duration, 0.5);
        // A command whose default is broadcast (vqa monitor).
        let b = PipelineConfig::from_toml_profiled("", None, Profile::Broadcast).unwrap();
        assert_eq!(b, PipelineConfig::for_profile(Profile::Broadcast));
        assert_eq!(
            (
                b.black.min_duration,
                b.black.clear_after,
                b.loudness.clear_lu
            ),
            (10.0, 10.0, 2.0)
        );
        // Values the file gives win over the profile's, the others follow the profile.
        let text = "[black]\nmin_duration = 3.0\n";
        let b = PipelineConfig::from_toml_profiled(text, None, Profile::Broadcast).unwrap();
        assert_eq!((b.black.min_duration, b.black.clear_after), (3.0, 10.0));
        assert_eq!(b.freeze.min_duration, 10.0);
        // The file's own profile wins over the command's default; a flag wins over both.
        let text = "profile = \"file_qc\"\n[black]\nclear_after = 1.0\n";
        let q = PipelineConfig::from_toml_profiled(text, None, Profile::Broadcast).unwrap();
        assert_eq!(
            (q.profile, q.freeze.min_duration, q.black.clear_after),
            (Profile::FileQc, 1.0, 1.0)
        );
        let b = PipelineConfig::from_toml_profiled(text, Some(Profile::Broadcast), Profile::FileQc)
            .unwrap();
        assert_eq!(
            (b.profile, b.freeze.min_duration, b.black.clear_after),
            (Profile::Broadcast, 10.0, 1.0)
        );
        // Printed and read back, a profile's configuration is itself.
        let again = PipelineConfig::from_toml(&b.to_toml()).unwrap();
        assert_eq!(again, b);
        let e = PipelineConfig::from_toml("profile = \"broadcats\"\n").unwrap_err();
        assert!(
            e.to_string().starts_with("line 1:") && e.to_string().contains("broadcats"),
            "{e}"
        );
        assert!("broadcast".parse::<Profile>().is_ok() && "file-qc".parse::<Profile>().is_ok());
        assert!("tv".parse::<Profile>().is_err());
    }

    #[test]
    fn a_loudness_standard_sets_what_the_file_does_not() {
        let r128 = PipelineConfig::from_toml("").unwrap().loudness;
        assert_eq!(r128.standard, LoudnessStandard::EbuR128);
        assert_eq!(
            (r128.target_lufs, r128.tolerance_lu, r128.max_true_peak_dbtp),
            (-23.0, 1.0, -1.0)
        );
        let text = "[loudness]\nstandard = \"atsc_a85\"\n";
        for profile in Profile::ALL {
            let a85 = PipelineConfig::from_toml_profiled(text, Some(profile), profile)
                .unwrap()
                .loudness;
            assert_eq!(
                (a85.target_lufs, a85.tolerance_lu, a85.max_true_peak_dbtp),
                (-24.0, 2.0, -2.0),
                "{profile}"
            );
        }
        // An explicit value wins over the standard's; the others follow it.
        let text = "[loudness]\nstandard = \"atsc_a85\"\ntarget_lufs = -22.0\n";
        let c = PipelineConfig::from_toml(text).unwrap();
        assert_eq!(
            (c.loudness.target_lufs, c.loudness.tolerance_lu),
            (-22.0, 2.0)
        );
        // Printed and read back (TOML and the JSON of a payload), it is itself.
        assert_eq!(PipelineConfig::from_toml(&c.to_toml()).unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(PipelineConfig::from_json(&json).unwrap(), c);
        let partial = r#"{"loudness": {"standard": "atsc_a85"}}"#;
        let j = PipelineConfig::from_json(partial).unwrap();
        assert_eq!(j.loudness.target_lufs, -24.0);
        // A file from before the standards still loads, with its own values.
        let old = "[loudness]\ntarget_lufs = -24.0\nmax_above_lu = 4.0\nmax_below_lu = 8.0\n\
                   clear_lu = 1.5\nmin_duration = 2.0\n";
        let o = PipelineConfig::from_toml(old).unwrap().loudness;
        assert_eq!(
            (
                o.target_lufs,
                o.max_above_lu,
                o.tolerance_lu,
                o.min_duration
            ),
            (-24.0, 4.0, 1.0, 2.0)
        );
        let e = PipelineConfig::from_toml("[loudness]\nstandard = \"r128\"\n").unwrap_err();
        assert!(e.to_string().contains("r128"), "{e}");
    }

    #[test]
    fn the_older_join_gap_name_still_reads() {
        let c = PipelineConfig::from_toml("[corruption]\njoin_gap = 2.5\n").unwrap();
        assert_eq!(c.corruption.clear_after, 2.5);
        assert_eq!(c.rule(IncidentKind::Corruption).clear_after, 2_500_000);
    }

    #[test]
    fn detector_names_parse() {
        assert_eq!(
            "silence".parse::<DetectorName>().unwrap(),
            DetectorName::Silence
        );
        assert!(" nope".parse::<DetectorName>().is_err());
    }
}
