//! `audio_clicks`: clicks and pops — sample discontinuities inside the decoded audio: a bad
//! splice's step, a single corrupt sample, a few samples lost or zeroed inside a block (a
//! "micro-dropout" that leaves no hole in the timeline for `audio_dropout` to see).
//!
//! The signal is predicted from the two samples before (a straight line: `2x[n-1] - x[n-2]`);
//! the **jump** is how far a sample lands from that prediction (the second difference). A
//! smooth waveform stays close to its line; a discontinuity does not. A sample is a click
//! where its jump is at least `min_jump_dbfs` (−30 dBFS) and stands far above the audio around
//! it, on both sides: at least `min_ratio` times the RMS of the jumps over `window_ms` before
//! and after it (1 to 2 ms either side left out, so the click's own samples do not count; the
//! windows are whole 1 ms bins, see `scan`), and at least `min_slope_ratio` times the RMS of
//! the first difference there. The larger side sets
//! the level, so the onset of a drum or a plosive (quiet before, busy after) is judged against
//! what follows it. The first test rejects noise-like and bright content, whose jumps are all
//! large; the second, low-frequency content, whose corners (a tone starting or ending at a
//! zero crossing, a clipped waveform's flat tops) change the slope but not the value. Jumps
//! of one channel closer than 1 ms (an impulse's three, a short zeroed stretch's two edges)
//! are one click.
//!
//! A periodic waveform whose discontinuities are its nature — a square wave, a sawtooth —
//! has others in the window of each above about 50 Hz and is judged against them: no clicks.
//! At lower rates each edge stands alone and is a click, as it sounds.
//!
//! A click is judged in the segment that holds the sample `window_ms` + 3 ms after it (the
//! audio lead-in holds what came before), so each is judged once and with its whole windows;
//! its finding may start a few milliseconds before the segment. Holes in the timeline (more
//! than `audio_dropout.min_gap_ms`) restart the prediction: they are `audio_dropout`'s. Each
//! channel is judged on its own (`channel`); clicks closer than `clear_after` are one
//! finding, whose `jump_dbfs` evidence counts them and holds the loudest.

use vqa_core::config::{AudioClicksConfig, AudioDropoutConfig};
use vqa_core::model::{AudioBlock, Segment};
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::join_within;

/// Samples either side of a jump left out of its window: a click's own (an impulse's three
/// jumps, a zeroed stretch's two edges) and its ringing after a codec.
const GUARD_SECS: f64 = 0.001;

pub struct AudioClicksDetector {
    min_jump: f32,
    min_ratio_sq: f64,
    min_slope_ratio_sq: f64,
    window_secs: f64,
    max_hole: Micros,
    join_gap: Micros,
}

impl AudioClicksDetector {
    pub fn new(config: &AudioClicksConfig, dropout: &AudioDropoutConfig) -> Self {
        AudioClicksDetector {
            min_jump: 10f64.powf(config.min_jump_dbfs / 20.0) as f32,
            min_ratio_sq: config.min_ratio * config.min_ratio,
            min_slope_ratio_sq: config.min_slope_ratio * config.min_slope_ratio,
            window_secs: config.window_ms / 1000.0,
            max_hole: time::from_secs(dropout.min_gap_ms / 1000.0),
            join_gap: time::from_secs(config.clear_after),
        }
    }
}

/// One click on one channel.
struct Click {
    channel: u16,
    start: Micros,
    end: Micros,
    /// The largest jump of its samples (full scale 1).
    jump: f32,
}

/// Blocks back to back in time (no hole between them), in order; `own` marks the segment's
/// own blocks (the others are its audio lead-in).
struct Stretch<'a> {
    blocks: Vec<(&'a AudioBlock, bool)>,
}

impl Stretch<'_> {
    /// The time of sample instant `i` of the stretch.
    fn time_of(&self, mut i: usize) -> Micros {
        for (b, _) in &self.blocks {
            if i < b.frames() {
                return b.time_of(i);
            }
            i -= b.frames();
        }
        // `i` is past the last sample: the stretch's end.
        self.blocks.last().map_or(0, |(b, _)| b.end())
    }

    /// The segment's own sample instants, `[from, to)` (empty if none).
    fn own(&self) -> (usize, usize) {
        let (mut at, mut from, mut to) = (0, usize::MAX, 0);
        for (b, own) in &self.blocks {
            if *own {
                from = from.min(at);
                to = at + b.frames();
            }
            at += b.frames();
        }
        (from.min(to), to)
    }
}

impl AudioClicksDetector {
    /// The segment's audio, lead-in first, cut into stretches at holes and at changes of
    /// layout or rate (across which nothing is predicted).
    fn stretches<'a>(&self, segment: &'a Segment) -> Vec<Stretch<'a>> {
        let mut blocks: Vec<(&AudioBlock, bool)> = segment
            .audio_lead_in
            .iter()
            .map(|b| (b, false))
            .chain(segment.audio.iter().map(|b| (b, true)))
            .filter(|(b, _)| b.frames() > 0 && b.channels > 0 && b.rate > 0)
            .collect();
        blocks.sort_by_key(|(b, _)| b.time_of(0));
        let mut stretches: Vec<Stretch> = Vec::new();
        for (block, own) in blocks {
            let continues =
                stretches
                    .last()
                    .and_then(|s| s.blocks.last())
                    .is_some_and(|(before, _)| {
                        before.channels == block.channels
                            && before.rate == block.rate
                            && (block.time_of(0) - before.end()).abs() <= self.max_hole
                    });
            match stretches.last_mut() {
                Some(s) if continues => s.blocks.push((block, own)),
                _ => stretches.push(Stretch {
                    blocks: vec![(block, own)],
                }),
            }
        }
        stretches
    }

    /// The clicks of one stretch judged in this segment: those whose windows end in the
    /// segment's own audio.
    ///
    /// The windows are measured in whole bins of 1 ms (`guard` samples): the sums of the
    /// squared jumps and slopes of each bin are taken once, in one pass the compiler
    /// vectorises, and a jump in bin `j` is judged against bins `j-1-W .. j-1` before it and
    /// `j+2 .. j+2+W` after it (W bins: `window_ms`), which leaves out 1 to 2 ms either side.
    /// Only bins holding a jump of `min_jump` or more are looked into.
    fn scan(&self, stretch: &Stretch, clicks: &mut Vec<Click>) {
        let Some(&(first, _)) = stretch.blocks.first() else {
            return;
        };
        let channels = usize::from(first.channels);
        let rate = f64::from(first.rate);
        let guard = (GUARD_SECS * rate).round().max(1.0) as usize;
        let window = (self.window_secs / GUARD_SECS).round().max(1.0) as usize;
        // A jump at stretch instant i is judged here if i + reach is among the own instants:
        // its bins after end before that.
        let reach = (window + 3) * guard;
        let (own_from, own_to) = stretch.own();
        if own_to <= own_from || own_to < 2 * reach + 3 {
            return;
        }
        let judged = own_from.saturating_sub(reach).max(reach + 2)..own_to - reach;
        if judged.is_empty() {
            return;
        }
        // Samples from `from` (two before the first jump of the first bin) to the end of the
        // own audio; bin j holds the jumps of [from + 2 + j·guard, ... + guard).
        let from = judged.start - reach - 2;
        let n = own_to - from;
        let bins = (n - 2) / guard;
        let mut x = vec![0f32; n];
        let mut slope = vec![0f32; n];
        let mut jump = vec![0f32; n];
        let mut bin_jumps = vec![0f64; bins];
        let mut bin_slopes = vec![0f64; bins];
        let mut loud_bins: Vec<usize> = Vec::new();
        for c in 0..channels {
            // This channel's samples, `from..own_to` of the stretch.
            let mut at = 0usize;
            for (b, _) in &stretch.blocks {
                let frames = b.frames();
                let (lo, hi) = (from.max(at), own_to.min(at + frames));
                if lo < hi {
                    let samples = b.samples[(lo - at) * channels..(hi - at) * channels]
                        .iter()
                        .skip(c)
                        .step_by(channels);
                    for (to, &v) in x[lo - from..hi - from].iter_mut().zip(samples) {
                        *to = v;
                    }
                }
                at += frames;
            }
            for k in 1..n {
                slope[k] = x[k] - x[k - 1];
            }
            for k in 2..n {
                jump[k] = slope[k] - slope[k - 1];
            }
            loud_bins.clear();
            for j in 0..bins {
                let span = 2 + j * guard..2 + (j + 1) * guard;
                let (jumps, slopes, largest) = bin_sums(&jump[span.clone()], &slope[span]);
                bin_jumps[j] = f64::from(jumps);
                bin_slopes[j] = f64::from(slopes);
                if largest >= self.min_jump {
                    loud_bins.push(j);
                }
            }
            let mut current: Option<Click> = None;
            for &j in &loud_bins {
                if j < window + 1 || j + window + 2 > bins {
                    continue;
                }
                let level = |sums: &[f64]| {
                    let before: f64 = sums[j - 1 - window..j - 1].iter().sum();
                    let after: f64 = sums[j + 2..j + 2 + window].iter().sum();
                    before.max(after) / (window * guard) as f64
                };
                let (jump_level, slope_level) = (level(&bin_jumps), level(&bin_slopes));
                let first = 2 + j * guard;
                for (k, size) in (first..).zip(&jump[first..first + guard]) {
                    let (i, size) = (k + from, size.abs());
                    let size_sq = f64::from(size) * f64::from(size);
                    if size < self.min_jump
                        || !judged.contains(&i)
                        || size_sq < self.min_ratio_sq * jump_level
                        || size_sq < self.min_slope_ratio_sq * slope_level
                    {
                        continue;
                    }
                    let (start, end) = (stretch.time_of(i), stretch.time_of(i + 1));
                    match current.as_mut() {
                        Some(click) if start - click.end <= time::from_secs(GUARD_SECS) => {
                            click.end = end;
                            click.jump = click.jump.max(size);
                        }
                        _ => {
                            clicks.extend(current.take());
                            current = Some(Click {
                                channel: c as u16,
                                start,
                                end,
                                jump: size,
                            });
                        }
                    }
                }
            }
            clicks.extend(current);
        }
    }
}

/// The sums of the squares of `jumps` and of `slopes` (of equal length) and the largest
/// jump's size, in eight lanes the compiler keeps in vector registers.
fn bin_sums(jumps: &[f32], slopes: &[f32]) -> (f32, f32, f32) {
    const LANES: usize = 8;
    let (mut sj, mut ss, mut largest) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
    let (j8, s8) = (jumps.chunks_exact(LANES), slopes.chunks_exact(LANES));
    let (j_rest, s_rest) = (j8.remainder(), s8.remainder());
    for (j, s) in j8.zip(s8) {
        for l in 0..LANES {
            sj[l] += j[l] * j[l];
            ss[l] += s[l] * s[l];
            largest[l] = largest[l].max(j[l].abs());
        }
    }
    let (mut jumps_sq, mut slopes_sq, mut max) = (
        sj.iter().sum::<f32>(),
        ss.iter().sum::<f32>(),
        largest.iter().copied().fold(0f32, f32::max),
    );
    for (j, s) in j_rest.iter().zip(s_rest) {
        jumps_sq += j * j;
        slopes_sq += s * s;
        max = max.max(j.abs());
    }
    (jumps_sq, slopes_sq, max)
}

impl Detector for AudioClicksDetector {
    fn name(&self) -> DetectorName {
        DetectorName::AudioClicks
    }

    fn needs_pictures(&self) -> bool {
        false // audio only
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let mut clicks = Vec::new();
        for stretch in self.stretches(segment) {
            self.scan(&stretch, &mut clicks);
        }
        clicks.sort_by_key(|c| (c.channel, c.start));
        let mut findings = Vec::new();
        for channel in clicks.chunk_by(|a, b| a.channel == b.channel) {
            let found = channel
                .iter()
                .map(|click| Finding {
                    kind: IncidentKind::AudioClicks,
                    channel: Some(click.channel),
                    start: click.start,
                    end: click.end,
                    reaches_end: false,
                    starts_anew: false,
                    level: Level::Raise,
                    evidence: Evidence::from([(
                        "jump_dbfs".to_string(),
                        Summary::of(20.0 * f64::from(click.jump).log10()),
                    )]),
                })
                .collect();
            findings.extend(join_within(found, self.join_gap, segment.end));
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stereo::signals::{noise, segment, tone, RATE};

    fn detect(seg: &Segment) -> Vec<Finding> {
        AudioClicksDetector::new(
            &AudioClicksConfig::default(),
            &AudioDropoutConfig::default(),
        )
        .analyze(seg)
    }

    /// Each click alone (joined within 1 µs): channel, start, end.
    fn clicks(seg: &Segment) -> Vec<(Option<u16>, Micros, Micros)> {
        let alone = AudioClicksDetector::new(
            &AudioClicksConfig {
                clear_after: 0.0,
                ..Default::default()
            },
            &AudioDropoutConfig::default(),
        );
        alone
            .analyze(seg)
            .iter()
            .map(|f| (f.channel, f.start, f.end))
            .collect()
    }

    /// The sample index (from the stream's start) of time `t`.
    fn index(t: f64) -> i64 {
        (t * f64::from(RATE)).round() as i64
    }

    /// The time of sample index `n`, as blocks give it.
    fn at(n: i64) -> Micros {
        (n * 1_000_000 + i64::from(RATE) / 2) / i64::from(RATE)
    }

    /// Segment 1 (1 s to 2 s, with the second before as its lead-in) of stereo `f(t, c)`.
    fn stereo(f: impl Fn(f64, u16) -> f32) -> Segment {
        segment(1, 2, None, f)
    }

    /// Programme-like: a low tone, a higher one, and a little noise.
    fn music(t: f64, c: u16) -> f32 {
        tone(t, 110.0, 0.25, 0.0)
            + tone(t, 660.0 + 3.0 * f64::from(c), 0.1, 0.3)
            + noise(t, u64::from(c), 0.005)
    }

    /// Asserts exactly the clicks at the given (channel, sample index) are found, each
    /// within a millisecond.
    fn assert_clicks_at(seg: &Segment, expected: &[(u16, i64)]) {
        let found = clicks(seg);
        assert_eq!(found.len(), expected.len(), "{found:?} vs {expected:?}");
        for ((channel, start, end), &(c, n)) in found.iter().zip(expected) {
            assert_eq!(*channel, Some(c), "{found:?}");
            assert!((start - at(n)).abs() <= 1_000, "{found:?} vs sample {n}");
            assert!(end - start <= 2_000, "{found:?}");
        }
    }

    #[test]
    fn a_single_sample_impulse_is_a_click_where_it_is() {
        for (name, base) in [
            (
                "tone",
                (|t, _| tone(t, 440.0, 0.5, 0.0)) as fn(f64, u16) -> f32,
            ),
            ("noise", |t, c| noise(t, u64::from(c), 0.01)),
            ("music", music),
        ] {
            let n = index(1.3);
            let seg = stereo(move |t, c| {
                let s = base(t, c);
                if c == 1 && index(t) == n {
                    s + 0.3
                } else {
                    s
                }
            });
            assert_clicks_at(&seg, &[(1, n)]);
            let f = &detect(&seg)[0];
            assert_eq!(f.evidence["jump_dbfs"].count, 1, "{name}");
            // An impulse of 0.3 jumps twice that from the line through the samples before.
            let jump = f.evidence["jump_dbfs"].max;
            assert!((jump - 20.0 * 0.6f64.log10()).abs() < 1.0, "{name}: {jump}");
        }
    }

    #[test]
    fn a_splice_step_and_a_zeroed_stretch_are_clicks() {
        // A splice: the tone's phase jumps by half a period.
        let splice = index(1.25);
        let seg = stereo(move |t, _| {
            let phase = if index(t) >= splice { 2.0 } else { 0.0 };
            tone(t, 440.0, 0.5, phase) + noise(t, 3, 0.002)
        });
        assert_clicks_at(&seg, &[(0, splice), (1, splice)]);
        // 8 samples zeroed inside a loud tone: a micro-dropout, no hole in the timeline.
        let zeroed = index(1.6) + 5;
        let seg = stereo(move |t, c| {
            let n = index(t);
            if c == 0 && (zeroed..zeroed + 8).contains(&n) {
                0.0
            } else {
                tone(t, 1000.0, 0.5, 0.0)
            }
        });
        assert_clicks_at(&seg, &[(0, zeroed)]);
    }

    #[test]
    fn clicks_closer_than_clear_after_are_one_finding_counting_them() {
        let at_ms = [1100, 1400, 1450, 1800];
        let seg = stereo(move |t, c| {
            let s = music(t, c);
            let hit = at_ms
                .iter()
                .any(|&ms| index(t) == index(f64::from(ms) / 1000.0));
            if c == 0 && hit {
                s - 0.4
            } else {
                s
            }
        });
        assert_eq!(clicks(&seg).len(), 4);
        let found = detect(&seg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].evidence["jump_dbfs"].count, 4);
        assert!(found[0].reaches_end, "within 1 s of the segment's end");
        assert!((found[0].start - 1_100_000).abs() <= 1_000);
        assert!((found[0].end - 1_800_000).abs() <= 1_000);
    }

    #[test]
    fn a_click_near_a_segment_edge_is_judged_once() {
        // 4 ms before the segment's start: judged in this segment (its window ends here),
        // not in the one before (whose audio ends before the window after it does).
        let n = index(1.0) - 192;
        let f = move |t: f64, _| {
            let s = tone(t, 300.0, 0.3, 0.0);
            if index(t) == n {
                s + 0.2
            } else {
                s
            }
        };
        assert_clicks_at(&segment(1, 1, None, f), &[(0, n)]);
        assert!(clicks(&segment(0, 1, None, f)).is_empty());
        // 4 ms before the end: the next segment's.
        let n = index(2.0) - 192;
        let g = move |t: f64, _| {
            let s = tone(t, 300.0, 0.3, 0.0);
            if index(t) == n {
                s + 0.2
            } else {
                s
            }
        };
        assert!(clicks(&segment(1, 1, None, g)).is_empty());
        assert_clicks_at(&segment(2, 1, None, g), &[(0, n)]);
    }

    #[test]
    fn quiet_jumps_are_no_clicks() {
        // 0.02 is -34 dBFS as a jump after the line through the samples before (twice it).
        let n = index(1.5);
        let seg = stereo(move |t, _| if index(t) == n { 0.012 } else { 0.0 });
        assert!(clicks(&seg).is_empty());
        let seg = stereo(move |t, _| if index(t) == n { 0.02 } else { 0.0 });
        assert_eq!(
            clicks(&seg).len(),
            2,
            "a pop in digital silence, both channels"
        );
    }

    type Signal = dyn Fn(f64, u16) -> f32;

    /// A drum-like hit every 250 ms: noise with a 1.5 ms attack, decaying over 60 ms.
    fn drum(t: f64, c: u16) -> f32 {
        let since = (t * 4.0).fract() / 4.0;
        let envelope = (since / 0.0015).min(1.0) * (-since / 0.06).exp();
        (envelope * f64::from(noise(t, u64::from(c) + 11, 0.8))) as f32
    }

    /// Syllable-like bursts: a voiced tone with harmonics under a 4 Hz envelope, a plosive
    /// burst of noise opening each.
    fn speech(t: f64, _: u16) -> f32 {
        let since = (t * 4.0).fract() / 4.0;
        let voiced = (std::f64::consts::PI * since / 0.2).sin().max(0.0);
        let plosive = (since / 0.002).min(1.0) * (-since / 0.01).exp();
        let pitch = 120.0 + 20.0 * (t * 3.0).sin();
        (voiced
            * f64::from(
                tone(t, pitch, 0.3, 0.0)
                    + tone(t, 2.0 * pitch, 0.15, 0.0)
                    + tone(t, 3.0 * pitch, 0.08, 0.0),
            )
            + plosive * f64::from(noise(t, 5, 0.5))) as f32
    }

    #[test]
    fn natural_transients_are_no_clicks() {
        let clipped = |t, _| (2.0 * tone(t, 220.0, 1.0, 0.0)).clamp(-0.9, 0.9);
        let onsets = |t: f64, c| {
            // 1 kHz at -6 dBFS and 300 Hz near full scale, starting and stopping at zero
            // crossings, silence between: the first sample of 300 Hz jumps by -28 dBFS,
            // 36 times the tone's own jumps (but only 1.4 times its slope).
            let hz = if c == 0 { 1000.0 } else { 300.0 };
            if (t * 5.0).fract() < 0.5 {
                tone(t, hz, if c == 0 { 0.5 } else { 0.9 }, 0.0)
            } else {
                0.0
            }
        };
        let cases: [(&str, &Signal); 6] = [
            ("drum", &drum),
            ("speech", &speech),
            ("clipped sine", &clipped),
            ("tone onsets at zero crossings", &onsets),
            ("music", &music),
            ("loud noise", &|t, c| noise(t, u64::from(c), 0.9)),
        ];
        for (name, f) in cases {
            let found = clicks(&stereo(f));
            assert!(found.is_empty(), "{name}: {found:?}");
        }
    }

    #[test]
    fn a_square_wave_clicks_only_where_its_edges_stand_alone() {
        let square = |hz: f64| move |t: f64, _| if (t * hz).fract() < 0.5 { 0.5 } else { -0.5 };
        // 1 kHz, 100 Hz: every window holds other edges.
        assert!(clicks(&segment(1, 1, None, square(1000.0))).is_empty());
        assert!(clicks(&segment(1, 1, None, square(100.0))).is_empty());
        // 10 Hz: an edge every 50 ms, each alone in its window: 20 clicks a second.
        assert_eq!(clicks(&segment(1, 1, None, square(10.0))).len(), 20);
    }

    #[test]
    fn a_hole_in_the_timeline_is_no_click() {
        // Blocks of a loud tone with two (1024-sample) blocks missing: audio_dropout's.
        let mut seg = stereo(|t, _| tone(t, 440.0, 0.5, 0.0));
        seg.audio.remove(10);
        seg.audio.remove(10);
        assert!(clicks(&seg).is_empty());
    }
}
