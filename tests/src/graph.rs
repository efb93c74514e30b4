//! Turning a [`ClipSpec`] into frame/sample-exact defect spans and an ffmpeg
//! `-filter_complex` graph that renders them.
//!
//! Defects are placed by frame number and sample number, never by time expressions,
//! because `between(t, S, E)` on floating-point timestamps can include or exclude a
//! boundary frame depending on rounding; integer indices make the ground truth exact.

use std::fmt::Write as _;

use anyhow::{bail, ensure, Result};

use crate::bad_inputs::SplitMix64;
use crate::{ClipSpec, Content, DefectKind, Track};

/// Scene generators render at most this wide and are scaled up: fractals and cellular
/// automata at 1080p would make generation (and encoding) many times slower, and the
/// upscaled soft look is closer to natural footage anyway. The Game of Life renders
/// at 1/8 and the cellular automaton at 1/4 of this: at finer scales their
/// one-pixel detail is so costly to encode that x264 keeps refining a frozen picture
/// for many frames, and a frozen span drifts by more than FFmpeg's freezedetect
/// tolerates (−60 dB, ~0.25 grey levels).
const RENDER_MAX_WIDTH: u32 = 640;

/// Scene lengths for [`Content::Natural`], cycled: hard cuts every 2–2.8 s.
const SCENE_SECONDS: [f64; 5] = [2.4, 2.0, 2.8, 2.2, 2.6];

/// Strength of the temporal grain added to natural content (0–100, ffmpeg `noise`).
/// Light enough to keep the bitrate sane at 1080p; the scenes themselves move every
/// frame, the grain makes sure no two consecutive frames are ever bit-identical.
const GRAIN_STRENGTH: u32 = 2;

/// Amplitude of the per-channel test tone (linear, full scale = 1).
const TONE_AMPLITUDE: f64 = 0.3;
/// Amplitude of the white noise added to the tone, so the signal is never a pure
/// sine (and never near zero for more than a few samples).
const NOISE_AMPLITUDE: f64 = 0.03;
/// Noise amplitude relative to the tone (`NOISE_AMPLITUDE / TONE_AMPLITUDE`), for clips
/// with their own [`ClipSpec::audio_level_db`].
const NOISE_RATIO: f64 = 0.1;
/// Sync pattern: amplitude of the 1 kHz beep (−13 dBFS): a beep a second integrates to
/// about −23 LUFS (EBU R128's target; −6 dBFS beeps were −16), so a sync clip is on target
/// like every other clip.
const BEEP_AMPLITUDE: f64 = 0.22;
/// Sync pattern: beep frequency, Hz.
const BEEP_FREQUENCY: f64 = 1000.0;
/// Sync pattern: beep length, seconds.
const BEEP_SECONDS: f64 = 0.04;
/// Sync pattern: amplitude of the noise floor between beeps (−50 dBFS): quiet enough for a
/// beep onset to stand out, loud enough not to be digital silence.
const SYNC_NOISE_AMPLITUDE: f64 = 0.00316;
/// Sync pattern: the dimmed background's luma is `16 + (Y − 16) · SYNC_DIM`, so a white
/// flash frame stands out and the picture is dark but never black.
const SYNC_DIM: f64 = 0.4;
/// Largest sync offset, ms: beyond half the flash period a beep would pair with the wrong
/// flash.
pub(crate) const MAX_AV_OFFSET_MS: f64 = 400.0;
/// MPEG-2 quantiser scale of the blocky picture (its coarsest).
const STARVED_QSCALE: u32 = 31;
/// H.264's sample aspect ratios with an `aspect_ratio_idc` (Table E-1) other than 1:1: an
/// aspect ratio span declares one of these, coded in the same 8 bits as 1:1.
const H264_SAR_TABLE: [[u32; 2]; 15] = [
    [12, 11],
    [10, 11],
    [16, 11],
    [40, 33],
    [24, 11],
    [20, 11],
    [32, 11],
    [80, 33],
    [18, 11],
    [15, 11],
    [64, 33],
    [160, 99],
    [4, 3],
    [3, 2],
    [2, 1],
];
/// A field_order span lasts at least this long: vqa raises one after 5 s
/// (`field_order.min_duration`), and the first segment may be judged otherwise.
const FIELD_ORDER_MIN_SECONDS: f64 = 6.0;
/// Frame rates MPEG-2 can code (integer ones), hence those a blockiness clip may have.
const MPEG2_FRAME_RATES: [u32; 5] = [24, 25, 30, 50, 60];

/// Tone frequency per channel index; different per channel so channel mix-ups show.
/// Index 3 is the LFE channel in 5.1 and 7.1, hence a low tone there.
const CHANNEL_FREQUENCIES: [f64; 8] = [440.0, 554.37, 659.25, 97.0, 880.0, 329.63, 493.88, 587.33];

/// A half-open range of frame or sample indices `[first, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub first: u64,
    pub end: u64,
}

/// A requested defect, resolved to the frame or sample indices that carry it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PlacedDefect {
    pub kind: DefectKind,
    pub span: Span,
}

/// The spec resolved to integer frame/sample positions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// Number of video frames rendered (0 for audio-only clips), dropped ones included.
    pub frames: u64,
    /// Number of audio samples per channel (0 without audio).
    pub samples: u64,
    /// Requested defects in request order.
    pub defects: Vec<PlacedDefect>,
    /// Sync pattern: the first flash frame and the first beep sample (one of each per
    /// second from there on; the beep pattern also extends backwards to sample 0).
    pub sync: Option<SyncTiming>,
}

/// Where the sync pattern's flashes and beeps are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncTiming {
    pub first_flash: u64,
    pub first_beep: u64,
}

impl Layout {
    pub(crate) fn spans(&self, kind: DefectKind) -> impl Iterator<Item = Span> + '_ {
        self.defects
            .iter()
            .filter(move |d| d.kind == kind)
            .map(|d| d.span)
    }

    /// The index the encoder (and the muxed stream) gives source frame `frame`: frames
    /// removed by frame-drop spans before it do not count.
    pub(crate) fn encoded_index(&self, frame: u64) -> u64 {
        let dropped: u64 = self
            .spans(DefectKind::FrameDrop)
            .map(|s| s.end.min(frame).saturating_sub(s.first))
            .sum();
        frame - dropped
    }
}

/// FFmpeg channel layout name for a channel count.
pub(crate) fn channel_layout(channels: u16) -> Result<&'static str> {
    Ok(match channels {
        1 => "mono",
        2 => "stereo",
        6 => "5.1",
        8 => "7.1",
        other => bail!("unsupported audio channel count {other} (use 0, 1, 2, 6 or 8)"),
    })
}

/// `round(seconds * rate)`, with halves always rounded up: 9.7 s at 25 fps is
/// 242.49999999999997 in floating point but means frame 242.5, which rounds to 243.
pub(crate) fn round_index(seconds: f64, rate: u32) -> u64 {
    (seconds * f64::from(rate) + 1e-6).round().max(0.0) as u64
}

/// Linear amplitude of the test tone.
pub(crate) fn tone_amplitude(spec: &ClipSpec) -> f64 {
    spec.audio_level_db
        .map_or(TONE_AMPLITUDE, |db| 10f64.powf(db / 20.0))
}

/// The largest sample magnitude of the undamaged audio (sine plus noise, or beep plus
/// noise floor).
fn audio_peak(spec: &ClipSpec) -> f64 {
    match spec.content {
        Content::SyncPattern => BEEP_AMPLITUDE + SYNC_NOISE_AMPLITUDE,
        _ => tone_amplitude(spec) * (1.0 + NOISE_RATIO),
    }
}

/// The amplitude of the signal a clipping span drives past full scale (the sine or
/// beep alone, without its noise).
fn audio_carrier(spec: &ClipSpec) -> f64 {
    match spec.content {
        Content::SyncPattern => BEEP_AMPLITUDE,
        _ => tone_amplitude(spec),
    }
}

fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Checks the spec and resolves every defect to frame or sample indices.
pub(crate) fn layout(spec: &ClipSpec) -> Result<Layout> {
    ensure!(
        spec.duration.is_finite() && spec.duration > 0.0,
        "clip duration must be positive, got {}",
        spec.duration
    );
    ensure!(
        spec.video || spec.audio_channels > 0,
        "a clip needs video or audio (video = false and audio_channels = 0)"
    );
    if spec.video {
        ensure!(spec.fps > 0, "fps must be positive");
        ensure!(
            spec.width >= 16 && spec.height >= 16 && (spec.width | spec.height) & 1 == 0,
            "width and height must be even and at least 16 (H.264 4:2:0), got {}x{}",
            spec.width,
            spec.height
        );
        ensure!(spec.gop != Some(0), "gop must be at least 1 frame");
    }
    if spec.audio_channels > 0 {
        channel_layout(spec.audio_channels)?;
        ensure!(
            (8000..=96000).contains(&spec.sample_rate),
            "sample rate {} is outside 8000..=96000",
            spec.sample_rate
        );
    }
    if let Some(db) = spec.audio_level_db {
        ensure!(
            db.is_finite() && (-60.0..=-1.0).contains(&db),
            "audio_level_db {db} is outside -60..=-1 dBFS"
        );
    }
    let frames = if spec.video {
        round_index(spec.duration, spec.fps)
    } else {
        0
    };
    let samples = if spec.audio_channels > 0 {
        round_index(spec.duration, spec.sample_rate)
    } else {
        0
    };
    if spec.video {
        ensure!(
            frames >= 2,
            "a {} s clip at {} fps has fewer than 2 frames",
            spec.duration,
            spec.fps
        );
    }

    let mut defects = Vec::with_capacity(spec.defects.len());
    for defect in &spec.defects {
        ensure!(
            defect.start.is_finite()
                && defect.end.is_finite()
                && defect.start >= 0.0
                && defect.start < defect.end
                && defect.end <= spec.duration + 1e-9,
            "{} defect [{}, {}) must satisfy 0 <= start < end <= duration ({})",
            defect.kind,
            defect.start,
            defect.end,
            spec.duration
        );
        let span = match crate::track(defect.kind) {
            Track::Video => {
                ensure!(spec.video, "a {} defect needs a video stream", defect.kind);
                let span = Span {
                    first: round_index(defect.start, spec.fps),
                    end: round_index(defect.end, spec.fps).min(frames),
                };
                // A freeze is "frames F+1..L repeat frame F": it needs at least 2 frames.
                let min_frames = if defect.kind == DefectKind::Freeze {
                    2
                } else {
                    1
                };
                ensure!(
                    span.end >= span.first + min_frames,
                    "{} defect [{}, {}) covers fewer than {min_frames} frame(s) at {} fps",
                    defect.kind,
                    defect.start,
                    defect.end,
                    spec.fps
                );
                span
            }
            Track::Audio => {
                ensure!(
                    spec.audio_channels > 0,
                    "a {} defect needs an audio stream",
                    defect.kind
                );
                let span = Span {
                    first: round_index(defect.start, spec.sample_rate),
                    end: round_index(defect.end, spec.sample_rate).min(samples),
                };
                ensure!(
                    span.end > span.first,
                    "{} defect [{}, {}) is empty",
                    defect.kind,
                    defect.start,
                    defect.end
                );
                span
            }
            Track::Both => bail!(
                "av_sync is not requested as a span: use content = \"sync_pattern\" and set \
                 av_offset_ms (the whole clip is then out of sync)"
            ),
        };
        check_kind(spec, defect.kind, span, frames)?;
        defects.push(PlacedDefect {
            kind: defect.kind,
            span,
        });
    }
    let layout_spans = |kind: DefectKind| {
        let mut spans: Vec<Span> = defects
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.span)
            .collect();
        spans.sort_by_key(|s| s.first);
        spans
    };
    let drops = layout_spans(DefectKind::FrameDrop);
    ensure!(
        drops.windows(2).all(|w| w[0].end < w[1].first),
        "frame_drop defects must be separated by at least one kept frame"
    );
    for kind in [DefectKind::Blockiness, DefectKind::Corruption] {
        for span in layout_spans(kind) {
            ensure!(
                drops
                    .iter()
                    .all(|d| d.end <= span.first || span.end <= d.first),
                "a {kind} defect may not overlap a frame_drop defect (its frames would not exist)"
            );
        }
    }
    ensure!(
        spec.av_offset_ms.is_finite() && spec.av_offset_ms.abs() <= MAX_AV_OFFSET_MS,
        "av_offset_ms {} is outside ±{MAX_AV_OFFSET_MS} ms",
        spec.av_offset_ms
    );
    let sync = if spec.content == Content::SyncPattern {
        ensure!(
            spec.video && spec.audio_channels > 0,
            "the sync pattern needs video and audio"
        );
        ensure!(spec.fps >= 2, "the sync pattern needs at least 2 fps");
        let first_flash = round_index(0.5, spec.fps);
        let beep_seconds = first_flash as f64 / f64::from(spec.fps) + spec.av_offset_ms / 1000.0;
        Some(SyncTiming {
            first_flash,
            first_beep: round_index(beep_seconds, spec.sample_rate),
        })
    } else {
        ensure!(
            spec.av_offset_ms == 0.0,
            "av_offset_ms needs content = \"sync_pattern\""
        );
        None
    };
    Ok(Layout {
        frames,
        samples,
        defects,
        sync,
    })
}

/// Checks what only one kind of defect needs.
fn check_kind(spec: &ClipSpec, kind: DefectKind, span: Span, frames: u64) -> Result<()> {
    ensure!(
        crate::INJECTABLE.contains(&kind),
        "a {kind} defect cannot be injected into a clip (injectable: {})",
        crate::INJECTABLE.map(|k| k.as_str()).join(", ")
    );
    match kind {
        DefectKind::Blockiness => ensure!(
            MPEG2_FRAME_RATES.contains(&spec.fps),
            "a blockiness defect needs a frame rate MPEG-2 can code ({MPEG2_FRAME_RATES:?}), \
             got {} fps",
            spec.fps
        ),
        DefectKind::Corruption => ensure!(
            spec.gop.is_some(),
            "a corruption defect needs a fixed GOP (set gop): damage lasts to the next keyframe"
        ),
        DefectKind::FrameDrop => ensure!(
            span.first >= 1 && span.end < frames,
            "a frame_drop defect needs a kept frame before and after it (frames 1..{})",
            frames.saturating_sub(1)
        ),
        DefectKind::AudioDropout => {
            let rate = u64::from(spec.sample_rate);
            ensure!(
                span.end - span.first >= crate::AAC_FRAME_SAMPLES && span.end - span.first <= rate,
                "an audio_dropout defect loses whole audio packets: it must last from one \
                 AAC frame ({} samples) to 1 s",
                crate::AAC_FRAME_SAMPLES
            );
        }
        DefectKind::Blur => ensure!(
            spec.blur_sigma.is_finite() && spec.blur_sigma >= 3.0,
            "blur_sigma {} is below 3 (too faint to be a defect)",
            spec.blur_sigma
        ),
        DefectKind::LoudnessJump => {
            let gain = spec.loudness_gain_db;
            ensure!(
                gain.is_finite() && gain >= 6.0,
                "loudness_gain_db {gain} must be at least 6 dB up (a quieter passage is no \
                 loudness jump)"
            );
            let peak = audio_peak(spec) * db_to_gain(gain);
            ensure!(
                peak < 1.0,
                "loudness_gain_db {gain} would clip the audio (peak {:.1} dBFS); lower \
                 audio_level_db",
                20.0 * peak.log10()
            );
        }
        DefectKind::AudioClicks => ensure!(
            spec.audio_level_db.is_none_or(|db| db <= -12.0),
            "an audio_clicks defect adds half of full scale to single samples: audio_level_db \
             must be -12 dBFS or lower, or the clicks would clip"
        ),
        DefectKind::Borders => {
            let (rows, columns) = (spec.letterbox_px, spec.pillarbox_px);
            ensure!(
                rows % 2 == 0 && columns % 2 == 0 && rows.max(columns) >= 4,
                "letterbox_px {rows} and pillarbox_px {columns} must be even and one of them 4 \
                 or more (vqa reports changes of more than 2 px)"
            );
            ensure!(
                4 * rows <= spec.height && 4 * columns <= spec.width,
                "letterbox_px {rows} / pillarbox_px {columns} leave too little picture: at most \
                 a quarter of the height / width on each side"
            );
            // A change is one once the new borders held this long; the clip's own borders
            // must hold as long first.
            let hold = round_index(
                vqa_core::config::BordersConfig::default().min_duration,
                spec.fps,
            );
            ensure!(
                span.first >= hold
                    && span.end - span.first >= hold
                    && (span.end == frames || frames - span.end >= hold),
                "a borders defect needs {hold} frames without borders before it, must last \
                 {hold} frames, and must leave {hold} frames after it (or reach the end): \
                 vqa reports a change once the new borders held {hold} frames"
            );
        }
        DefectKind::AspectRatio => {
            ensure!(
                spec.container == crate::Container::Ts,
                "an aspect_ratio defect changes the SPS that MPEG-TS repeats at each keyframe: \
                 container must be ts"
            );
            ensure!(
                H264_SAR_TABLE.contains(&spec.span_sar),
                "span_sar {:?} is not in H.264's table of sample aspect ratios (other than 1:1): \
                 {H264_SAR_TABLE:?}",
                spec.span_sar
            );
            ensure!(
                span.first >= 1,
                "an aspect_ratio defect needs a picture before it to change from"
            );
        }
        DefectKind::Scte35 => ensure!(
            spec.container == crate::Container::Ts && span.first >= 1 && span.end > span.first,
            "an scte35 defect sends splice cues in the transport stream: container must be ts, \
             with a picture before it, and it must last a picture or more"
        ),
        DefectKind::TsPriority1 | DefectKind::TsPriority2 => ensure!(
            spec.container == crate::Container::Ts && spec.gop.is_some() && span.first >= 1,
            "a {kind} defect damages TS packets of the pictures it covers: container must be ts, \
             the GOP fixed (set gop: damage lasts to the next keyframe) and a picture before it"
        ),
        DefectKind::FieldOrder => {
            let least = round_index(FIELD_ORDER_MIN_SECONDS, spec.fps);
            ensure!(
                span.first >= 1 && span.end - span.first >= least,
                "a field_order defect takes each bottom field from the frame before (it needs \
                 one) and must last {FIELD_ORDER_MIN_SECONDS} s: vqa raises one after 5 s"
            );
        }
        DefectKind::AudioLevel => {
            let gain = spec.level_gain_db;
            ensure!(gain.is_finite(), "level_gain_db must be a number");
            let level = vqa_core::config::AudioLevelConfig::default();
            let silence = vqa_core::config::SilenceConfig::default().noise_db;
            let peak = 20.0 * (audio_peak(spec) * db_to_gain(gain)).log10();
            let carrier = 20.0 * (audio_carrier(spec) * db_to_gain(gain)).log10();
            ensure!(
                (silence + 3.0 < carrier && peak < level.low_dbfs - 3.0)
                    || (level.high_dbfs + 0.3 <= peak && peak <= -0.5),
                "level_gain_db {gain} takes the peak to {peak:.1} dBFS: an audio_level defect \
                 needs it 3 dB below {} dBFS (but 3 dB above the silence level, {silence} dB), \
                 or between 0.3 dB above {} dBFS and -0.5 dBFS (clear of clipping's 0.99)",
                level.low_dbfs,
                level.high_dbfs
            );
            let least = round_index(level.min_duration + 1.0, spec.sample_rate);
            ensure!(
                span.end - span.first >= least,
                "an audio_level defect must last {} s: vqa raises one after {} s",
                level.min_duration + 1.0,
                level.min_duration
            );
        }
        DefectKind::AudioPhase => ensure!(
            spec.audio_channels >= 2,
            "an audio_phase defect inverts the second channel: audio_channels must be 2 or more"
        ),
        DefectKind::Clipping => {
            let gain = spec.clipping_gain_db;
            ensure!(gain.is_finite(), "clipping_gain_db must be a number");
            let peak = audio_carrier(spec) * db_to_gain(gain);
            ensure!(
                peak >= 1.12,
                "clipping_gain_db {gain} drives the audio to only {:.1} dBFS: it must pass \
                 full scale by at least 1 dB",
                20.0 * peak.log10()
            );
        }
        _ => {}
    }
    Ok(())
}

/// Size at which scene generators render before being scaled to the output size.
fn render_size(width: u32, height: u32) -> (u32, u32) {
    if width <= RENDER_MAX_WIDTH {
        return (width, height);
    }
    let scaled = f64::from(height) * f64::from(RENDER_MAX_WIDTH) / f64::from(width);
    let even_height = ((scaled / 2.0).round() as u32).max(8) * 2;
    (RENDER_MAX_WIDTH, even_height)
}

/// The source filter for natural-content scene number `index`.
///
/// Five kinds of scene are cycled, each instance with its own seed or start point so
/// repeated cycles do not look the same; every one of them changes every frame
/// (fractal zoom, Game of Life with mould trails, rotating gradients, a scrolling
/// cellular automaton).
fn natural_scene_source(index: usize, width: u32, height: u32, fps: u32) -> String {
    let cycle = index / SCENE_SECONDS.len();
    let seed = 1000 + index;
    let quarter = (((width / 4) & !1).max(16), ((height / 4) & !1).max(16));
    let eighth = (((width / 8) & !1).max(16), ((height / 8) & !1).max(16));
    match index % SCENE_SECONDS.len() {
        0 => {
            let start_scale = [3.0, 1.5, 0.8][cycle % 3];
            format!(
                "mandelbrot=s={width}x{height}:r={fps}:maxiter=256:start_scale={start_scale}:\
                 end_scale=0.3:end_pts=200:outer=normalized_iteration_count"
            )
        }
        1 => format!(
            "life=s={}x{}:r={fps}:ratio=0.3:seed={seed}:mold=10:\
             life_color=0xf0c080:death_color=0x402010:mold_color=0x205030",
            eighth.0, eighth.1
        ),
        2 => {
            // gradients draws its colours at random whatever its seed: give it colours
            // from the seed, so the clip is the same every time it is rendered.
            let mut rng = SplitMix64(seed as u64);
            let colours: String = (0..5)
                .map(|c| format!(":c{c}=0x{:06x}", rng.next_u64() & 0xff_ffff))
                .collect();
            format!("gradients=s={width}x{height}:r={fps}:speed=0.2:n=5:seed={seed}{colours}")
        }
        3 => {
            let rule = [110, 30, 150][cycle % 3];
            format!(
                "cellauto=s={}x{}:r={fps}:rule={rule}:ratio=0.5:seed={seed}",
                quarter.0, quarter.1
            )
        }
        _ => {
            let start_scale = [0.2, 0.1, 0.05][cycle % 3];
            format!(
                "mandelbrot=s={width}x{height}:r={fps}:maxiter=256:start_x=-0.7453:start_y=0.1127:\
                 start_scale={start_scale}:end_scale=0.005:end_pts=300:inner=period"
            )
        }
    }
}

/// Appends the base video (label `[v0]`, exactly `frames` frames, yuv420p) to `graph`.
fn push_base_video(graph: &mut String, spec: &ClipSpec, layout: &Layout) {
    let (w, h, fps, frames) = (spec.width, spec.height, spec.fps, layout.frames);
    match spec.content {
        Content::TestPattern => {
            let _ = write!(
                graph,
                "testsrc2=s={w}x{h}:r={fps},trim=end_frame={frames},format=yuv420p[v0];"
            );
        }
        Content::SyncPattern => {
            let first_flash = layout.sync.map_or(0, |s| s.first_flash);
            let _ = write!(
                graph,
                "testsrc2=s={w}x{h}:r={fps},trim=end_frame={frames},format=yuv420p,\
                 lutyuv=y=16+(val-16)*{SYNC_DIM},\
                 drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:\
                 enable='eq(mod(n,{fps}),{first_flash})'[v0];"
            );
        }
        Content::Natural => {
            let (rw, rh) = render_size(w, h);
            let mut produced = 0u64;
            let mut labels = String::new();
            let mut index = 0usize;
            while produced < frames {
                let nominal = SCENE_SECONDS[index % SCENE_SECONDS.len()];
                let length = round_index(nominal, fps).max(1).min(frames - produced);
                let _ = write!(
                    graph,
                    "{},trim=end_frame={length},setpts=PTS-STARTPTS,\
                     scale={w}:{h}:flags=bicubic,setsar=1,format=yuv420p[s{index}];",
                    natural_scene_source(index, rw, rh, fps)
                );
                let _ = write!(labels, "[s{index}]");
                produced += length;
                index += 1;
            }
            let _ = write!(
                graph,
                "{labels}concat=n={index}:v=1:a=0,\
                 noise=alls={GRAIN_STRENGTH}:allf=t:all_seed=12345,format=yuv420p[v0];"
            );
        }
    }
}

/// `between(n,F,L)+...` over the frame spans of `kind`, or `None` without any.
fn frames_expression(layout: &Layout, kind: DefectKind) -> Option<String> {
    let terms: Vec<String> = layout
        .spans(kind)
        .map(|s| format!("between(n,{},{})", s.first, s.end - 1))
        .collect();
    (!terms.is_empty()).then(|| terms.join("+"))
}

/// Which rendering pass a graph is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The clip itself; with blockiness spans, the blocky pass's output is input 0.
    Clip,
    /// The picture to code as blocky MPEG-2: every frame, no frame dropped.
    Blocky,
}

/// Appends the video defect chain from `[v0]` to `[vout]`: freezes, then blur, colour
/// bars and black over the (possibly frozen) picture, interlacing and black borders, then
/// blockiness (frames from the blocky pass, input 0) and the frame drops.
fn push_video_defects(graph: &mut String, spec: &ClipSpec, layout: &Layout, pass: Pass) {
    let mut current = 0usize;
    // Freezes first, so a black span inside a freeze is still black.
    for (i, span) in layout.spans(DefectKind::Freeze).enumerate() {
        let (first, last) = (span.first, span.end - 1);
        let _ = write!(
            graph,
            "[v{current}]split[fa{i}][fb{i}];\
             [fa{i}][fb{i}]freezeframes=first={first}:last={last}:replace={first}[v{}];",
            current + 1
        );
        current += 1;
    }
    if let Some(enable) = frames_expression(layout, DefectKind::Blur) {
        let _ = write!(
            graph,
            "[v{current}]gblur=sigma={}:enable='{enable}'[v{}];",
            spec.blur_sigma,
            current + 1
        );
        current += 1;
    }
    if let Some(enable) = frames_expression(layout, DefectKind::Colorbars) {
        let _ = write!(
            graph,
            "{}=s={}x{}:r={},trim=end_frame={},format=yuv420p[bars];\
             [v{current}][bars]overlay=eof_action=pass:enable='{enable}'[v{}];",
            spec.bars.source(),
            spec.width,
            spec.height,
            spec.fps,
            layout.frames,
            current + 1
        );
        current += 1;
    }
    let _ = write!(graph, "[v{current}]");
    if let Some(enable) = frames_expression(layout, DefectKind::Black) {
        let _ = write!(
            graph,
            "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='{enable}',"
        );
    }
    if let Some(enable) = frames_expression(layout, DefectKind::FieldOrder) {
        // Each frame's bottom field from the frame before: fields from two instants woven
        // into one progressive frame, combing where the picture moves.
        let _ = write!(
            graph,
            "format=yuv420p,split[fo_a][fo_b];[fo_b]phase=mode=t[fo_c];\
             [fo_a][fo_c]overlay=eof_action=pass:enable='{enable}',"
        );
    }
    if let Some(enable) = frames_expression(layout, DefectKind::Borders) {
        let (rows, columns) = (spec.letterbox_px, spec.pillarbox_px);
        let mut bars = Vec::new();
        if rows > 0 {
            bars.push(format!("x=0:y=0:w=iw:h={rows}"));
            bars.push(format!("x=0:y=ih-{rows}:w=iw:h={rows}"));
        }
        if columns > 0 {
            bars.push(format!("x=0:y=0:w={columns}:h=ih"));
            bars.push(format!("x=iw-{columns}:y=0:w={columns}:h=ih"));
        }
        for bar in bars {
            let _ = write!(graph, "drawbox={bar}:color=black:t=fill:enable='{enable}',");
        }
    }
    if pass == Pass::Blocky {
        graph.push_str("format=yuv420p[vout]");
        return;
    }
    if let Some(enable) = frames_expression(layout, DefectKind::Blockiness) {
        // Both inputs count frames from 0 at the same rate: give the raw MPEG-2 stream
        // the same timestamps, so overlay pairs frame n with frame n.
        let _ = write!(
            graph,
            "format=yuv420p[vpre];[0:v:0]settb=1/{fps},setpts=N[blocky];\
             [vpre][blocky]overlay=eof_action=pass:enable='{enable}',",
            fps = spec.fps
        );
    }
    if let Some(dropped) = frames_expression(layout, DefectKind::FrameDrop) {
        let _ = write!(graph, "select='not({dropped})',");
    }
    graph.push_str("format=yuv420p[vout]");
}

/// `(1+(g-1)*gte(n,a)*lt(n,b))*...`: gain `g` over the sample spans of `kind`.
fn gain_expression(layout: &Layout, kind: DefectKind, gain_db: f64) -> Option<String> {
    let extra = db_to_gain(gain_db) - 1.0;
    let factors: Vec<String> = layout
        .spans(kind)
        .map(|s| format!("(1+{extra}*gte(n,{})*lt(n,{}))", s.first, s.end))
        .collect();
    (!factors.is_empty()).then(|| factors.join("*"))
}

/// Height of an injected click: one sample raised by half of full scale (-6 dBFS).
const CLICK_AMPLITUDE: f64 = 0.5;

/// Clicks of an audio_clicks span come this often, in seconds: one incident (they are
/// closer than `audio_clicks.clear_after`), a crackle rather than one pop.
const CLICK_INTERVAL: f64 = 0.25;

/// The sample indices of the first channel that carry a click: the first and last samples of
/// each audio_clicks span, and every [`CLICK_INTERVAL`] between.
fn click_samples(layout: &Layout, rate: u32) -> impl Iterator<Item = u64> + '_ {
    let step = round_index(CLICK_INTERVAL, rate).max(1);
    layout.spans(DefectKind::AudioClicks).flat_map(move |s| {
        let last = s.end.saturating_sub(1).max(s.first);
        (s.first..last)
            .step_by(step as usize)
            .chain(std::iter::once(last))
    })
}

/// The `aevalsrc` expression for one channel: tone plus noise (or the sync pattern's
/// beeps over a noise floor), times the loudness and clipping gains (clipped to ±1 when
/// a clipping span drives it past full scale), multiplied by a gate that is exactly 0 on
/// silenced sample indices. aevalsrc evaluates per sample with `n` = sample index, so
/// every audio defect is sample-exact (unlike `volume`'s per-frame timeline `enable`).
fn channel_expression(channel: usize, spec: &ClipSpec, layout: &Layout) -> String {
    let mut signal = match layout.sync {
        Some(sync) => {
            // A beep starts at every sample n ≡ first_beep (mod sample_rate); `phase` makes
            // the argument of mod non-negative.
            let rate = u64::from(spec.sample_rate);
            let phase = (rate - sync.first_beep % rate) % rate;
            let length = round_index(BEEP_SECONDS, spec.sample_rate);
            format!(
                "({BEEP_AMPLITUDE}*sin(2*PI*{BEEP_FREQUENCY}*t)*lt(mod(n+{phase},{rate}),{length})\
                 +{SYNC_NOISE_AMPLITUDE}*(2*random(0)-1))"
            )
        }
        None => {
            let frequency = CHANNEL_FREQUENCIES[channel % CHANNEL_FREQUENCIES.len()];
            match spec.audio_level_db {
                None => format!(
                    "({TONE_AMPLITUDE}*sin(2*PI*{frequency}*t)+{NOISE_AMPLITUDE}*(2*random(0)-1))"
                ),
                Some(_) => {
                    let tone = tone_amplitude(spec);
                    let noise = tone * NOISE_RATIO;
                    format!("({tone}*sin(2*PI*{frequency}*t)+{noise}*(2*random(0)-1))")
                }
            }
        }
    };
    if let Some(gains) = gain_expression(layout, DefectKind::LoudnessJump, spec.loudness_gain_db) {
        signal = format!("{signal}*{gains}");
    }
    if let Some(gains) = gain_expression(layout, DefectKind::AudioLevel, spec.level_gain_db) {
        signal = format!("{signal}*{gains}");
    }
    if let Some(gains) = gain_expression(layout, DefectKind::Clipping, spec.clipping_gain_db) {
        signal = format!("clip({signal}*{gains},-1,1)");
    }
    // Out of phase: the second channel is the first's inverse over the spans (the channels'
    // noise is one sequence, `random(0)` seeded alike in each, so the inversion is exact).
    let inverted: Vec<String> = layout
        .spans(DefectKind::AudioPhase)
        .map(|s| format!("gte(n,{})*lt(n,{})", s.first, s.end))
        .collect();
    if channel == 1 && !inverted.is_empty() {
        let first = channel_expression(0, spec, layout);
        signal = format!("if({},-({first}),{signal})", inverted.join("+"));
    }
    if channel == 0 {
        let clicks: Vec<String> = click_samples(layout, spec.sample_rate)
            .map(|n| format!("eq(n,{n})"))
            .collect();
        if !clicks.is_empty() {
            signal = format!("({signal}+{CLICK_AMPLITUDE}*({}))", clicks.join("+"));
        }
    }
    let gates: Vec<String> = layout
        .spans(DefectKind::Silence)
        .map(|s| format!("(1-gte(n,{})*lt(n,{}))", s.first, s.end))
        .collect();
    let gate = if gates.is_empty() {
        "1".to_owned()
    } else {
        gates.join("*")
    };
    format!("{signal}*{gate}")
}

/// Appends the audio source (label `[aout]`, exactly `samples` samples per channel).
fn push_audio(graph: &mut String, spec: &ClipSpec, layout: &Layout) -> Result<()> {
    let channel_layout = channel_layout(spec.audio_channels)?;
    let expressions: Vec<String> = (0..usize::from(spec.audio_channels))
        .map(|c| channel_expression(c, spec, layout))
        .collect();
    let _ = write!(
        graph,
        "aevalsrc=exprs='{}':s={}:c={channel_layout},atrim=end_sample={}[aout]",
        expressions.join("|"),
        spec.sample_rate,
        layout.samples
    );
    Ok(())
}

/// The whole `-filter_complex` graph; outputs are labelled `[vout]` and `[aout]`.
pub(crate) fn filter_complex(spec: &ClipSpec, layout: &Layout) -> Result<String> {
    let mut graph = String::new();
    if spec.video {
        push_base_video(&mut graph, spec, layout);
        push_video_defects(&mut graph, spec, layout, Pass::Clip);
    }
    if spec.audio_channels > 0 {
        if spec.video {
            graph.push(';');
        }
        push_audio(&mut graph, spec, layout)?;
    }
    Ok(graph)
}

/// The ffmpeg arguments that render the blocky picture every blockiness span takes its
/// frames from: the clip's picture (with its other defects, before frames are dropped)
/// coded as intra-only MPEG-2 at the coarsest quantiser, which has no deblocking filter
/// and no intra prediction to hide its 8x8 blocks. Writes a raw `.m2v` stream to `out`.
pub(crate) fn blocky_pass_args(spec: &ClipSpec, layout: &Layout, out: &str) -> Vec<String> {
    let mut graph = String::new();
    push_base_video(&mut graph, spec, layout);
    push_video_defects(&mut graph, spec, layout, Pass::Blocky);
    let mut args = vec!["-filter_complex".to_owned(), graph];
    args.extend(
        ["-map", "[vout]", "-c:v", "mpeg2video", "-g", "1", "-q:v"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.extend([STARVED_QSCALE.to_string(), "-f".into(), "mpeg2video".into()]);
    args.push(out.to_owned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Defect;

    #[test]
    fn defects_resolve_to_frame_and_sample_indices() {
        let spec = ClipSpec {
            defects: vec![
                Defect::freeze(2.0, 4.5),
                Defect::black(6.0, 7.0),
                Defect::silence(8.5, 10.0),
            ],
            ..ClipSpec::default()
        };
        let layout = layout(&spec).expect("valid spec");
        assert_eq!(layout.frames, 250);
        assert_eq!(layout.samples, 480_000);
        let spans: Vec<(DefectKind, u64, u64)> = layout
            .defects
            .iter()
            .map(|d| (d.kind, d.span.first, d.span.end))
            .collect();
        assert_eq!(
            spans,
            vec![
                (DefectKind::Freeze, 50, 113),
                (DefectKind::Black, 150, 175),
                (DefectKind::Silence, 408_000, 480_000),
            ]
        );
        let graph = filter_complex(&spec, &layout).expect("graph");
        assert!(
            graph.contains("freezeframes=first=50:last=112:replace=50"),
            "{graph}"
        );
        assert!(graph.contains("between(n,150,174)"), "{graph}");
        assert!(graph.contains("(1-gte(n,408000)*lt(n,480000))"), "{graph}");
    }

    #[test]
    fn rejects_impossible_specs() {
        let bad = |defects: Vec<Defect>, video: bool, channels: u16| {
            layout(&ClipSpec {
                defects,
                video,
                audio_channels: channels,
                ..ClipSpec::default()
            })
            .is_err()
        };
        assert!(
            bad(vec![Defect::freeze(9.0, 11.0)], true, 2),
            "past the end"
        );
        assert!(bad(vec![Defect::black(3.0, 3.0)], true, 2), "empty");
        assert!(
            bad(vec![Defect::freeze(3.0, 3.04)], true, 2),
            "1-frame freeze"
        );
        assert!(
            bad(vec![Defect::silence(1.0, 2.0)], true, 0),
            "silence without audio"
        );
        assert!(
            bad(vec![Defect::black(1.0, 2.0)], false, 2),
            "black without video"
        );
        assert!(bad(vec![], false, 0), "no streams");
        assert!(bad(vec![], true, 3), "3 channels");
        assert!(
            !bad(vec![Defect::black(3.0, 3.04)], true, 2),
            "1-frame black is fine"
        );
    }

    #[test]
    fn render_size_keeps_aspect_and_parity() {
        assert_eq!(render_size(320, 240), (320, 240));
        assert_eq!(render_size(1920, 1080), (640, 360));
        assert_eq!(render_size(1280, 534), (640, 268));
    }

    #[test]
    fn new_kinds_render_by_frame_and_sample_index() {
        let spec = ClipSpec {
            audio_level_db: Some(-22.0),
            clipping_gain_db: 24.0,
            loudness_gain_db: 12.0,
            bars: crate::BarsPattern::Pal75,
            defects: vec![
                Defect::new(DefectKind::Blur, 1.0, 2.0),
                Defect::new(DefectKind::Colorbars, 2.0, 3.0),
                Defect::new(DefectKind::FrameDrop, 3.0, 3.2),
                Defect::new(DefectKind::Blockiness, 4.0, 4.4),
                Defect::new(DefectKind::LoudnessJump, 5.0, 6.0),
                Defect::new(DefectKind::Clipping, 7.0, 7.5),
            ],
            ..ClipSpec::default()
        };
        let layout = layout(&spec).expect("valid spec");
        let graph = filter_complex(&spec, &layout).expect("graph");
        for part in [
            "gblur=sigma=4:enable='between(n,25,49)'",
            "pal75bars=s=320x240:r=25,trim=end_frame=250",
            "overlay=eof_action=pass:enable='between(n,50,74)'",
            "[0:v:0]settb=1/25,setpts=N[blocky]",
            "enable='between(n,100,109)'",
            "select='not(between(n,75,79))'",
            "*gte(n,240000)*lt(n,288000))",
            "clip(",
            "*gte(n,336000)*lt(n,360000)),-1,1)",
        ] {
            assert!(graph.contains(part), "{part} in {graph}");
        }
        // The encoder numbers frames after the drop: frame 100 is its 95th.
        assert_eq!(layout.encoded_index(100), 95);
        assert_eq!(layout.encoded_index(76), 75);
        let blocky = blocky_pass_args(&spec, &layout, "b.m2v").join(" ");
        assert!(blocky.contains("mpeg2video -g 1 -q:v 31"), "{blocky}");
        assert!(!blocky.contains("select="), "every frame: {blocky}");
    }

    #[test]
    fn picture_format_kinds_render_by_frame_index_and_refuse_what_vqa_could_not_see() {
        let spec = ClipSpec {
            letterbox_px: 30,
            pillarbox_px: 20,
            defects: vec![
                Defect::new(DefectKind::FieldOrder, 1.0, 7.0),
                Defect::new(DefectKind::Borders, 2.0, 4.0),
            ],
            ..ClipSpec::default()
        };
        let placed = layout(&spec).expect("valid spec");
        let graph = filter_complex(&spec, &placed).expect("graph");
        for part in [
            "[fo_b]phase=mode=t[fo_c];[fo_a][fo_c]overlay=eof_action=pass:enable='between(n,25,174)'",
            "drawbox=x=0:y=ih-30:w=iw:h=30:color=black:t=fill:enable='between(n,50,99)'",
            "drawbox=x=iw-20:y=0:w=20:h=ih:color=black:t=fill:enable='between(n,50,99)'",
        ] {
            assert!(graph.contains(part), "{part} in {graph}");
        }
        let bad = |spec: ClipSpec| layout(&spec).map(|_| ()).map_err(|e| e.to_string());
        let with = |defect: Defect| ClipSpec {
            defects: vec![defect],
            ..ClipSpec::default()
        };
        let borders = |start, end| with(Defect::new(DefectKind::Borders, start, end));
        assert!(
            bad(borders(0.5, 4.0)).is_err(),
            "no borders of its own before"
        );
        assert!(bad(borders(2.0, 2.5)).is_err(), "shorter than vqa's hold");
        assert!(bad(borders(2.0, 9.5)).is_err(), "gone too close to the end");
        assert!(bad(borders(2.0, 10.0)).is_ok(), "to the end");
        assert!(bad(ClipSpec {
            letterbox_px: 2,
            ..borders(2.0, 4.0)
        })
        .is_err());
        assert!(bad(ClipSpec {
            letterbox_px: 70,
            ..borders(2.0, 4.0)
        })
        .is_err_and(|e| e.contains("quarter")));
        let aspect = with(Defect::new(DefectKind::AspectRatio, 2.0, 4.0));
        assert!(bad(aspect.clone()).is_err_and(|e| e.contains("ts")));
        let aspect = ClipSpec {
            container: crate::Container::Ts,
            ..aspect
        };
        assert!(bad(aspect.clone()).is_ok());
        assert!(bad(ClipSpec {
            span_sar: [3, 4],
            ..aspect
        })
        .is_err_and(|e| e.contains("table")));
        let interlaced = |start, end| with(Defect::new(DefectKind::FieldOrder, start, end));
        assert!(bad(interlaced(2.0, 7.0)).is_err(), "5 s is too short");
        assert!(bad(interlaced(0.0, 7.0)).is_err(), "no frame before");
        assert!(bad(interlaced(2.0, 8.0)).is_ok());
    }

    #[test]
    fn the_sync_pattern_flashes_and_beeps_on_schedule() {
        let spec = ClipSpec {
            content: Content::SyncPattern,
            av_offset_ms: -100.0,
            ..ClipSpec::default()
        };
        let layout = layout(&spec).expect("valid spec");
        // Frame 13 (0.52 s); the beep 100 ms earlier, at sample 20160.
        assert_eq!(
            layout.sync,
            Some(SyncTiming {
                first_flash: 13,
                first_beep: 20_160
            })
        );
        let graph = filter_complex(&spec, &layout).expect("graph");
        assert!(graph.contains("enable='eq(mod(n,25),13)'"), "{graph}");
        assert!(
            graph.contains("lt(mod(n+27840,48000),1920)"),
            "48000 - 20160 = 27840: {graph}"
        );
    }

    #[test]
    fn rejects_impossible_new_defects() {
        let bad = |spec: ClipSpec| layout(&spec).map(|_| ()).map_err(|e| e.to_string());
        let with = |defect: Defect| ClipSpec {
            defects: vec![defect],
            ..ClipSpec::default()
        };
        let corruption = with(Defect::new(DefectKind::Corruption, 2.0, 3.0));
        assert!(bad(corruption.clone()).is_err_and(|e| e.contains("gop")));
        assert!(bad(ClipSpec {
            gop: Some(25),
            ..corruption
        })
        .is_ok());
        for (start, end) in [(0.0, 0.2), (9.8, 10.0)] {
            let drop = with(Defect::new(DefectKind::FrameDrop, start, end));
            assert!(
                bad(drop).is_err_and(|e| e.contains("kept frame")),
                "{start}"
            );
        }
        let loud = with(Defect::new(DefectKind::LoudnessJump, 2.0, 9.0));
        assert!(bad(loud.clone()).is_err_and(|e| e.contains("would clip")));
        assert!(bad(ClipSpec {
            audio_level_db: Some(-22.4),
            ..loud
        })
        .is_ok());
        let clip = with(Defect::new(DefectKind::Clipping, 2.0, 3.0));
        assert!(bad(ClipSpec {
            audio_level_db: Some(-22.4),
            ..clip.clone()
        })
        .is_err_and(|e| e.contains("full scale")));
        assert!(bad(clip).is_ok(), "default tone + 12 dB clips");
        let blur = with(Defect::new(DefectKind::Blur, 2.0, 3.0));
        assert!(bad(ClipSpec {
            blur_sigma: 1.0,
            ..blur
        })
        .is_err());
        let blocky = with(Defect::new(DefectKind::Blockiness, 2.0, 3.0));
        assert!(bad(ClipSpec { fps: 29, ..blocky }).is_err_and(|e| e.contains("MPEG-2")));
        assert!(bad(with(Defect::new(DefectKind::AvSync, 0.0, 5.0)))
            .is_err_and(|e| e.contains("av_offset_ms")));
        assert!(bad(ClipSpec {
            av_offset_ms: 80.0,
            ..ClipSpec::default()
        })
        .is_err_and(|e| e.contains("sync_pattern")));
        assert!(bad(ClipSpec {
            content: Content::SyncPattern,
            av_offset_ms: 450.0,
            ..ClipSpec::default()
        })
        .is_err());
    }
}
