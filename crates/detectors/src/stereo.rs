//! What the audio pair detectors (`audio_phase`, `audio_mono`) and `audio_level` share:
//! cutting a segment's audio into steps of stream time, the channel pairs judged, and a
//! pair's correlation over a sliding window of steps.
//!
//! Steps are aligned to the segment's start, so every topology cuts them alike; a window is
//! centred on its step and reaches back into the audio lead-in, so a step at the segment's
//! start is judged as one in its middle. At the segment's end the window is cut short (the
//! audio after it is the next segment's).

use vqa_core::model::{AudioBlock, Segment};
use vqa_core::report::{Finding, IncidentKind};
use vqa_core::Micros;

use crate::runs::Runs;

/// The length of a step, the unit a verdict is given for: 100 ms.
pub(crate) const STEP: Micros = 100_000;

/// The first sample instant of `block` at or after `t` (`frames()` if none).
fn frame_at(block: &AudioBlock, t: Micros) -> usize {
    let frames = block.frames();
    // time_of is monotonic in the index.
    let (mut lo, mut hi) = (0usize, frames);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if block.time_of(mid) < t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Calls `f(k, samples)` for each run of `block`'s sample instants in `span` that falls in
/// step `k` (the step `[origin + k·step, origin + (k+1)·step)`; `span` starts at or after
/// `origin`), with those instants' interleaved samples.
pub(crate) fn for_each_step(
    block: &AudioBlock,
    origin: Micros,
    span: std::ops::Range<Micros>,
    step: Micros,
    mut f: impl FnMut(usize, &[f32]),
) {
    let channels = block.channels.max(1) as usize;
    let last = frame_at(block, span.end);
    let mut i = frame_at(block, span.start.max(origin));
    let from = origin;
    while i < last {
        let k = ((block.time_of(i) - from) / step) as usize;
        let boundary = from + (k as Micros + 1) * step;
        let j = frame_at(block, boundary).clamp(i + 1, last);
        f(k, &block.samples[i * channels..j * channels]);
        i = j;
    }
}

/// The channel pairs of a block judged as stereo pairs: L/R of stereo; L/R and Ls/Rs of 5.1
/// (and the back pair of 7.1), whose front centre and LFE (channels 2 and 3, the LFE as the
/// converter marks it) are single channels; the first two channels of any other layout.
pub(crate) fn pairs(block: &AudioBlock) -> Vec<(u16, u16)> {
    match block.channels {
        0 | 1 => Vec::new(),
        c if c >= 6 && block.lfe == Some(3) => std::iter::once((0, 1))
            .chain((4..c - 1).step_by(2).map(|a| (a, a + 1)))
            .collect(),
        _ => vec![(0, 1)],
    }
}

/// Sums of one pair's samples over a step or a window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PairSums {
    pub xx: f64,
    pub yy: f64,
    pub xy: f64,
    pub n: u64,
}

impl PairSums {
    fn add(&mut self, o: &PairSums) {
        self.xx += o.xx;
        self.yy += o.yy;
        self.xy += o.xy;
        self.n += o.n;
    }

    /// Pearson correlation without removing the mean (what a correlation meter shows:
    /// +1 identical, -1 inverted, 0 unrelated); `None` when either channel is all zero.
    pub fn correlation(&self) -> Option<f64> {
        let d = (self.xx * self.yy).sqrt();
        (d > 0.0).then(|| (self.xy / d).clamp(-1.0, 1.0))
    }

    /// RMS level of the louder channel, dBFS (-inf for digital silence).
    pub fn level_dbfs(&self) -> f64 {
        if self.n == 0 {
            return f64::NEG_INFINITY;
        }
        10.0 * (self.xx.max(self.yy) / self.n as f64).log10()
    }

    /// The first channel's level over the second's, dB.
    pub fn level_difference_db(&self) -> f64 {
        10.0 * (self.xx / self.yy).log10()
    }
}

/// One pair's verdict material for one step of the segment.
pub(crate) struct PairStep {
    pub start: Micros,
    pub end: Micros,
    /// The step itself (for its level gate).
    pub own: PairSums,
    /// The window centred on the step.
    pub window: PairSums,
}

/// For every pair of the segment's audio, its steps from the segment's start to its end,
/// each with the sums over the window of `half_window` steps either side.
pub(crate) fn pair_steps(
    segment: &Segment,
    half_window: usize,
) -> Vec<((u16, u16), Vec<PairStep>)> {
    let Some(first) = segment.audio.iter().find(|b| b.frames() > 0) else {
        return Vec::new();
    };
    let layout_pairs = pairs(first);
    if layout_pairs.is_empty() || segment.end <= segment.start {
        return Vec::new();
    }
    let lead = half_window as Micros * STEP;
    let from = segment.start - lead;
    let total = ((segment.end - from + STEP - 1) / STEP) as usize;
    let mut sums = vec![vec![PairSums::default(); total]; layout_pairs.len()];
    let mut seen = vec![false; total];
    let lead_in = segment
        .audio_lead_in
        .iter()
        .map(|b| (b, from..segment.start));
    let own = segment
        .audio
        .iter()
        .map(|b| (b, segment.start..segment.end));
    for (block, span) in lead_in.chain(own) {
        if block.channels != first.channels {
            continue;
        }
        let channels = block.channels as usize;
        for_each_step(block, from, span, STEP, |k, samples| {
            seen[k] = true;
            for (p, &(a, b)) in layout_pairs.iter().enumerate() {
                let s = &mut sums[p][k];
                let (mut xx, mut yy, mut xy) = (0f32, 0f32, 0f32);
                for frame in samples.chunks_exact(channels) {
                    let (x, y) = (frame[a as usize], frame[b as usize]);
                    xx += x * x;
                    yy += y * y;
                    xy += x * y;
                }
                s.xx += f64::from(xx);
                s.yy += f64::from(yy);
                s.xy += f64::from(xy);
                s.n += (samples.len() / channels) as u64;
            }
        });
    }
    layout_pairs
        .iter()
        .zip(sums)
        .map(|(&pair, steps)| {
            let judged = (half_window..total)
                .filter(|&k| seen[k])
                .map(|k| {
                    let mut window = PairSums::default();
                    for s in &steps[k.saturating_sub(half_window)..(k + half_window + 1).min(total)]
                    {
                        window.add(s);
                    }
                    let start = from + k as Micros * STEP;
                    PairStep {
                        start,
                        end: (start + STEP).min(segment.end),
                        own: steps[k],
                        window,
                    }
                })
                .collect();
            (pair, judged)
        })
        .collect()
}

/// The findings of `kind` on each pair of the segment: runs of steps whose window `judge`
/// finds the condition in (its measurements are the evidence) and whose louder channel is
/// at or above `gate_dbfs` over the step (quieter steps are not judged: they end a run).
/// A finding's `channel` is the pair's first channel, `second_channel` in its evidence the
/// other.
pub(crate) fn pair_findings<const N: usize>(
    segment: &Segment,
    kind: IncidentKind,
    half_window: usize,
    gate_dbfs: f64,
    min_duration: Micros,
    judge: impl Fn(&PairSums) -> Option<[(&'static str, f64); N]>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for ((a, b), steps) in pair_steps(segment, half_window) {
        let mut runs = Runs::on_channel(kind, Some(a), min_duration);
        for step in steps {
            let measured = (step.own.level_dbfs() >= gate_dbfs)
                .then(|| judge(&step.window))
                .flatten();
            match measured {
                Some(values) => {
                    let mut evidence = values.to_vec();
                    evidence.push(("second_channel", f64::from(b)));
                    runs.push(step.start, step.end, Some(&evidence));
                }
                None => runs.push(step.start, step.end, None),
            }
        }
        findings.extend(runs.finish());
    }
    findings
}

/// Steps of `window_secs` seconds either side of the judged one (the window is
/// `2·half + 1` steps).
pub(crate) fn half_window(window_secs: f64) -> usize {
    let steps = (window_secs * 1e6 / STEP as f64).round().max(1.0) as usize;
    steps / 2
}

/// Synthetic audio for the audio detectors' tests.
#[cfg(test)]
pub(crate) mod signals {
    use vqa_core::model::{AudioBlock, Segment};

    use crate::testing::audio_segment;

    pub const RATE: u32 = 48_000;

    /// Segment `index` (1 s) of `channels` channels whose sample at time `t` (seconds from
    /// the stream's start) on channel `c` is `f(t, c)`, in decoder-sized blocks of 1024, with
    /// the second before it as its audio lead-in.
    pub fn segment(
        index: u64,
        channels: u16,
        lfe: Option<u16>,
        f: impl Fn(f64, u16) -> f32,
    ) -> Segment {
        let blocks = |from: i64| -> Vec<AudioBlock> {
            let samples: Vec<f32> = (0..RATE as i64)
                .flat_map(|i| {
                    let t = (from * RATE as i64 + i) as f64 / f64::from(RATE);
                    (0..channels).map(move |c| (t, c))
                })
                .map(|(t, c)| f(t, c))
                .collect();
            samples
                .chunks(1024 * channels as usize)
                .enumerate()
                .map(|(k, chunk)| AudioBlock {
                    pts: from * 1_000_000 + (k as i64 * 1024 * 1_000_000) / i64::from(RATE),
                    skipped: 0,
                    rate: RATE,
                    channels,
                    lfe,
                    samples: chunk.to_vec().into(),
                })
                .collect()
        };
        let mut seg = audio_segment(index, blocks(index as i64));
        if index > 0 {
            seg.audio_lead_in = blocks(index as i64 - 1);
        }
        seg
    }

    /// A sine of `hz` at amplitude `a`, phase-shifted by `phase` radians.
    pub fn tone(t: f64, hz: f64, a: f64, phase: f64) -> f32 {
        (a * (std::f64::consts::TAU * hz * t + phase).sin()) as f32
    }

    /// White noise in [-a, a], a different sequence per `seed`, reproducible per `t`.
    pub fn noise(t: f64, seed: u64, a: f64) -> f32 {
        let n = (t * f64::from(RATE)).round() as u64;
        let mut x =
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 29;
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        (a * (2.0 * unit - 1.0)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::audio_segment;

    fn block(channels: u16, lfe: Option<u16>, frames: usize) -> AudioBlock {
        AudioBlock {
            pts: 0,
            skipped: 0,
            rate: 48_000,
            channels,
            lfe,
            samples: vec![0.5; frames * channels as usize].into(),
        }
    }

    #[test]
    fn pairs_of_common_layouts() {
        assert!(pairs(&block(1, None, 1)).is_empty());
        assert_eq!(pairs(&block(2, None, 1)), vec![(0, 1)]);
        assert_eq!(pairs(&block(6, Some(3), 1)), vec![(0, 1), (4, 5)]);
        assert_eq!(pairs(&block(8, Some(3), 1)), vec![(0, 1), (4, 5), (6, 7)]);
        assert_eq!(pairs(&block(3, Some(2), 1)), vec![(0, 1)]);
    }

    #[test]
    fn steps_split_a_block_at_step_boundaries_of_stream_time() {
        let b = block(2, None, 48_000);
        let mut counts = [0usize; 10];
        for_each_step(&b, 0, 0..1_000_000, STEP, |k, s| counts[k] += s.len() / 2);
        assert_eq!(counts, [4_800; 10]);
        // Steps from 50 ms before the block: the first and last hold half a step each.
        let mut counts = [0usize; 11];
        for_each_step(&b, -50_000, 0..1_000_000, STEP, |k, s| {
            counts[k] += s.len() / 2
        });
        assert_eq!((counts[0], counts[5], counts[10]), (2_400, 4_800, 2_400));
        assert_eq!(counts.iter().sum::<usize>(), 48_000);
    }

    #[test]
    fn the_window_reaches_into_the_lead_in_and_ends_with_the_segment() {
        let mut seg = audio_segment(
            1,
            vec![AudioBlock {
                pts: 1_000_000,
                ..block(2, None, 48_000)
            }],
        );
        seg.audio_lead_in = vec![AudioBlock {
            pts: 500_000,
            ..block(2, None, 24_000)
        }];
        let steps = pair_steps(&seg, 2);
        let (pair, steps) = &steps[0];
        assert_eq!(*pair, (0, 1));
        assert_eq!(steps.len(), 10);
        assert_eq!(steps[0].start, 1_000_000);
        // Five steps of 4 800 instants, two of them from the lead-in; three at the end.
        assert_eq!(steps[0].window.n, 5 * 4_800);
        assert_eq!(steps[9].window.n, 3 * 4_800);
        assert_eq!(steps[0].own.n, 4_800);
    }
}
