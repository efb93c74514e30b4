//! Turning a [`ClipSpec`] into frame/sample-exact defect spans and an ffmpeg
//! `-filter_complex` graph that renders them.
//!
//! Defects are placed by frame number and sample number, never by time expressions,
//! because `between(t, S, E)` on floating-point timestamps can include or exclude a
//! boundary frame depending on rounding; integer indices make the ground truth exact.

use std::fmt::Write as _;

use anyhow::{bail, ensure, Result};

use crate::{ClipSpec, Content, DefectKind};

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
    /// Number of video frames (0 for audio-only clips).
    pub frames: u64,
    /// Number of audio samples per channel (0 without audio).
    pub samples: u64,
    /// Requested defects in request order.
    pub defects: Vec<PlacedDefect>,
}

impl Layout {
    fn spans(&self, kind: DefectKind) -> impl Iterator<Item = Span> + '_ {
        self.defects
            .iter()
            .filter(move |d| d.kind == kind)
            .map(|d| d.span)
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
fn round_index(seconds: f64, rate: u32) -> u64 {
    (seconds * f64::from(rate) + 1e-6).round().max(0.0) as u64
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
        let span = match defect.kind {
            DefectKind::Freeze | DefectKind::Black => {
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
            DefectKind::Silence => {
                ensure!(
                    spec.audio_channels > 0,
                    "a silence defect needs an audio stream"
                );
                let span = Span {
                    first: round_index(defect.start, spec.sample_rate),
                    end: round_index(defect.end, spec.sample_rate).min(samples),
                };
                ensure!(
                    span.end > span.first,
                    "silence defect [{}, {}) is empty",
                    defect.start,
                    defect.end
                );
                span
            }
        };
        defects.push(PlacedDefect {
            kind: defect.kind,
            span,
        });
    }
    Ok(Layout {
        frames,
        samples,
        defects,
    })
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
        2 => format!("gradients=s={width}x{height}:r={fps}:speed=0.2:n=5:seed={seed}"),
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
fn push_base_video(graph: &mut String, spec: &ClipSpec, frames: u64) {
    let (w, h, fps) = (spec.width, spec.height, spec.fps);
    match spec.content {
        Content::TestPattern => {
            let _ = write!(
                graph,
                "testsrc2=s={w}x{h}:r={fps},trim=end_frame={frames},format=yuv420p[v0];"
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

/// Appends the video defect chain from `[v0]` to `[vout]`.
fn push_video_defects(graph: &mut String, layout: &Layout) {
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
    let blacks: Vec<String> = layout
        .spans(DefectKind::Black)
        .map(|s| format!("between(n,{},{})", s.first, s.end - 1))
        .collect();
    let _ = write!(graph, "[v{current}]");
    if !blacks.is_empty() {
        let _ = write!(
            graph,
            "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='{}',",
            blacks.join("+")
        );
    }
    graph.push_str("format=yuv420p[vout]");
}

/// The `aevalsrc` expression for one channel: tone plus noise, multiplied by a gate
/// that is exactly 0 on silenced sample indices. aevalsrc evaluates per sample with
/// `n` = sample index, so the silence is sample-exact (unlike `volume`'s per-frame
/// timeline `enable`).
fn channel_expression(channel: usize, layout: &Layout) -> String {
    let frequency = CHANNEL_FREQUENCIES[channel % CHANNEL_FREQUENCIES.len()];
    let gates: Vec<String> = layout
        .spans(DefectKind::Silence)
        .map(|s| format!("(1-gte(n,{})*lt(n,{}))", s.first, s.end))
        .collect();
    let gate = if gates.is_empty() {
        "1".to_owned()
    } else {
        gates.join("*")
    };
    format!("({TONE_AMPLITUDE}*sin(2*PI*{frequency}*t)+{NOISE_AMPLITUDE}*(2*random(0)-1))*{gate}")
}

/// Appends the audio source (label `[aout]`, exactly `samples` samples per channel).
fn push_audio(graph: &mut String, spec: &ClipSpec, layout: &Layout) -> Result<()> {
    let channel_layout = channel_layout(spec.audio_channels)?;
    let expressions: Vec<String> = (0..usize::from(spec.audio_channels))
        .map(|c| channel_expression(c, layout))
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
        push_base_video(&mut graph, spec, layout.frames);
        push_video_defects(&mut graph, layout);
    }
    if spec.audio_channels > 0 {
        if spec.video {
            graph.push(';');
        }
        push_audio(&mut graph, spec, layout)?;
    }
    Ok(graph)
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
}
