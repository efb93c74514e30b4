//! Stream-wide programme loudness (EBU R128 / ITU-R BS.1770-4) from per-segment histograms.
//!
//! The loudness detector measures each 400 ms gating block (momentary loudness, 100 ms
//! hop) and each 3 s window (short-term loudness) and reports them as histograms in 0.1 LU
//! bins; summed over segments they give integrated loudness and loudness range for the whole
//! stream without keeping any audio, the way libebur128's histogram mode does.
//!
//! Programme loudness for alarms is the same measure over the whole input (file QC: judged
//! once it ends) or over a sliding window ([`ProgrammeWindow`]): the aggregator keeps the
//! recent momentary histograms (blocks above the absolute gate only) of the last
//! `loudness.programme_window` seconds.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::report::{Histogram, Measurements};
use crate::time::Micros;

/// Histogram of momentary (400 ms block) loudness, LUFS.
pub const MOMENTARY: &str = "loudness.momentary_lufs";
/// Histogram of short-term (3 s window) loudness, LUFS.
pub const SHORT_TERM: &str = "loudness.short_term_lufs";
/// Value: true peak, dBTP.
pub const TRUE_PEAK: &str = "loudness.true_peak_dbtp";

const ABSOLUTE_GATE: f64 = -70.0;

/// Programme loudness of a whole stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoudnessSummary {
    /// Gated integrated loudness, LUFS (`None` if every block was below the -70 LUFS gate).
    pub integrated_lufs: Option<f64>,
    /// Loudness range (EBU Tech 3342), LU.
    pub range_lu: Option<f64>,
    pub max_momentary_lufs: Option<f64>,
    pub max_short_term_lufs: Option<f64>,
    /// Highest true peak, dBTP.
    pub max_true_peak_dbtp: Option<f64>,
}

impl LoudnessSummary {
    /// `None` when the measurements hold no loudness histogram (detector off, or no audio).
    pub fn from_measurements(m: &Measurements) -> Option<Self> {
        let momentary = m.histograms.get(MOMENTARY)?;
        let short_term = m.histograms.get(SHORT_TERM);
        Some(LoudnessSummary {
            integrated_lufs: integrated(momentary).map(round2),
            range_lu: short_term.and_then(range).map(round2),
            max_momentary_lufs: max_bin(momentary),
            max_short_term_lufs: short_term.and_then(max_bin),
            max_true_peak_dbtp: m.values.get(TRUE_PEAK).map(|s| round2(s.max)),
        })
    }
}

pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn value(bin: i32) -> f64 {
    f64::from(bin) / 10.0
}

fn energy(lufs: f64) -> f64 {
    10f64.powf((lufs + 0.691) / 10.0)
}

fn lufs(energy: f64) -> f64 {
    -0.691 + 10.0 * energy.log10()
}

fn max_bin(h: &Histogram) -> Option<f64> {
    h.keys().next_back().map(|&b| value(b))
}

/// Mean energy of the blocks at or above `gate`, as loudness.
fn gated_mean(h: &Histogram, gate: f64) -> Option<f64> {
    let (sum, n) = h
        .iter()
        .filter(|(&b, _)| value(b) >= gate)
        .fold((0.0, 0u64), |(s, n), (&b, &c)| {
            (s + energy(value(b)) * c as f64, n + c)
        });
    (n > 0).then(|| lufs(sum / n as f64))
}

/// BS.1770-4 integrated loudness: absolute gate at -70 LUFS, relative gate 10 LU below the
/// absolute-gated mean.
pub fn integrated(momentary: &Histogram) -> Option<f64> {
    let relative = gated_mean(momentary, ABSOLUTE_GATE)? - 10.0;
    gated_mean(momentary, relative.max(ABSOLUTE_GATE))
}

/// The momentary loudness of the most recent stretch of a stream, a segment at a time:
/// what programme loudness is judged by. It holds the fewest segments that cover the
/// window, merged into buckets of a sixtieth of it (at most 61 entries, or window /
/// segment length + 1 when segments are longer), each as a histogram of its blocks above
/// the absolute gate, so it stays small in the aggregator's state however long the window
/// and the stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgrammeWindow {
    segments: VecDeque<WindowSegment>,
    /// The end of the last segment whose window was judged within tolerance: a programme
    /// incident starts no earlier.
    within_until: Option<Micros>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct WindowSegment {
    start: Micros,
    end: Micros,
    momentary: Histogram,
}

/// A programme window holds at most this many entries (and one more), each a histogram of
/// the window's share of the stream.
const BUCKETS_PER_WINDOW: Micros = 60;

/// A verdict on the window's programme loudness.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProgrammeVerdict {
    /// Gated integrated loudness of the window, LUFS.
    pub lufs: f64,
    /// Outside the target ± tolerance.
    pub out: bool,
    /// Where the condition is known to hold from: the window's start, or the end of the
    /// last window judged within tolerance, whichever is later.
    pub since: Micros,
}

impl ProgrammeWindow {
    /// Adds a segment's momentary histogram and lets go of the segments the window no
    /// longer needs.
    pub fn push(&mut self, start: Micros, end: Micros, momentary: &Histogram, window: Micros) {
        let gated: Histogram = momentary
            .iter()
            .filter(|(&b, _)| value(b) >= ABSOLUTE_GATE)
            .map(|(&b, &c)| (b, c))
            .collect();
        // Segments merge into buckets of a sixtieth of the window: a long window's state
        // stays as small as a minute's, at the price of sliding in steps of a sixtieth.
        let bucket = window / BUCKETS_PER_WINDOW;
        match self.segments.back_mut() {
            Some(back) if end - back.start <= bucket => {
                back.end = end;
                for (b, c) in gated {
                    *back.momentary.entry(b).or_insert(0) += c;
                }
            }
            _ => self.segments.push_back(WindowSegment {
                start,
                end,
                momentary: gated,
            }),
        }
        while self.segments.len() > 1 && end - self.segments[1].start >= window {
            self.segments.pop_front();
        }
    }

    /// How many segments it holds.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Stream time from the first segment's start to the last one's end.
    pub fn span(&self) -> Micros {
        match (self.segments.front(), self.segments.back()) {
            (Some(first), Some(last)) => last.end - first.start,
            _ => 0,
        }
    }

    /// Gated integrated loudness of what it holds (`None` if all of it is below the
    /// absolute gate).
    pub fn integrated(&self) -> Option<f64> {
        let mut all = Histogram::new();
        for s in &self.segments {
            for (&b, &c) in &s.momentary {
                *all.entry(b).or_insert(0) += c;
            }
        }
        integrated(&all)
    }

    /// Judges the window once it covers `window`: its integrated loudness against
    /// `target ± tolerance`. `None` until then, or when the window is silent (silence is
    /// the silence detector's).
    pub fn judge(
        &mut self,
        window: Micros,
        target: f64,
        tolerance: f64,
    ) -> Option<ProgrammeVerdict> {
        if self.span() < window {
            return None;
        }
        let lufs = self.integrated()?;
        let out = (lufs - target).abs() > tolerance;
        let first = self.segments.front().map_or(0, |s| s.start);
        let since = self.within_until.map_or(first, |w| w.max(first));
        if !out {
            self.within_until = self.segments.back().map(|s| s.end);
        }
        Some(ProgrammeVerdict {
            lufs: round2(lufs),
            out,
            since,
        })
    }
}

/// EBU Tech 3342 loudness range: short-term values gated at -70 LUFS and 20 LU below their
/// mean, from the 10th to the 95th percentile.
pub fn range(short_term: &Histogram) -> Option<f64> {
    let gate = (gated_mean(short_term, ABSOLUTE_GATE)? - 20.0).max(ABSOLUTE_GATE);
    let kept: Vec<(f64, u64)> = short_term
        .iter()
        .filter(|(&b, _)| value(b) >= gate)
        .map(|(&b, &c)| (value(b), c))
        .collect();
    let total: u64 = kept.iter().map(|(_, c)| c).sum();
    let percentile = |p: f64| {
        let rank = ((total as f64 - 1.0) * p).round() as u64;
        let mut seen = 0;
        for (v, c) in &kept {
            seen += c;
            if seen > rank {
                return *v;
            }
        }
        kept.last().map_or(0.0, |(v, _)| *v)
    };
    (total > 0).then(|| percentile(0.95) - percentile(0.10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::histogram_add;

    fn hist(values: &[(f64, u64)]) -> Histogram {
        let mut h = Histogram::new();
        for &(v, n) in values {
            for _ in 0..n {
                histogram_add(&mut h, v);
            }
        }
        h
    }

    #[test]
    fn steady_programme_integrates_to_its_level() {
        let h = hist(&[(-23.0, 600)]);
        assert!((integrated(&h).unwrap() + 23.0).abs() < 1e-9);
    }

    #[test]
    fn silence_is_gated_out_absolutely_and_quiet_passages_relatively() {
        // Half the programme at -20, a quarter silent (-90, below the absolute gate), a
        // quarter at -40 (more than 10 LU below the mean of the rest: relative gate).
        let h = hist(&[(-20.0, 200), (-90.0, 100), (-40.0, 100)]);
        assert!((integrated(&h).unwrap() + 20.0).abs() < 1e-9);
        // Without the relative gate the -40 blocks would pull the mean down by ~1.7 LU:
        // energy mean of 2:1 at -20/-40 is -21.75.
        let both = gated_mean(&h, ABSOLUTE_GATE).unwrap();
        assert!((both + 21.747).abs() < 0.01, "{both}");
        assert_eq!(integrated(&hist(&[(-80.0, 10)])), None);
    }

    const S: Micros = 1_000_000;

    /// One second of ten momentary blocks at `lufs`.
    fn second(lufs: f64) -> Histogram {
        hist(&[(lufs, 10)])
    }

    #[test]
    fn the_window_integrates_only_its_last_seconds_and_stays_bounded() {
        let mut w = ProgrammeWindow::default();
        // 100 s at -23, then 60 s at -34: the 60 s window forgets the first part.
        for i in 0..160 {
            let lufs = if i < 100 { -23.0 } else { -34.0 };
            w.push(i * S, (i + 1) * S, &second(lufs), 60 * S);
            assert!(w.len() <= 61, "{}", w.len());
        }
        assert_eq!(w.span(), 60 * S);
        assert!((w.integrated().unwrap() + 34.0).abs() < 1e-9);
        // Half at -23, half at -31 (8 LU below: inside the relative gate): the energy
        // mean, -25.37, not the mean of the LUFS values, -27.
        let mut w = ProgrammeWindow::default();
        for i in 0..60 {
            let lufs = if i < 30 { -23.0 } else { -31.0 };
            w.push(i * S, (i + 1) * S, &second(lufs), 60 * S);
        }
        let l = w.integrated().unwrap();
        assert!((l + 25.37).abs() < 0.01, "{l}");
    }

    #[test]
    fn the_window_gates_silence_and_quiet_passages_like_the_stream() {
        let mut w = ProgrammeWindow::default();
        // 30 s at -23, 15 s of digital silence, 15 s at -40 (relative gate).
        for i in 0..60 {
            let lufs = match i {
                0..30 => -23.0,
                30..45 => -200.0,
                _ => -40.0,
            };
            w.push(i * S, (i + 1) * S, &second(lufs), 60 * S);
        }
        assert!((w.integrated().unwrap() + 23.0).abs() < 1e-9);
        let mut silent = ProgrammeWindow::default();
        for i in 0..60 {
            silent.push(i * S, (i + 1) * S, &second(-200.0), 60 * S);
        }
        assert_eq!(silent.judge(60 * S, -23.0, 1.0), None);
    }

    #[test]
    fn a_window_is_judged_once_full_and_an_excursion_starts_after_the_last_good_window() {
        let mut w = ProgrammeWindow::default();
        let mut verdicts = Vec::new();
        for i in 0..200 {
            let lufs = if i < 100 { -23.5 } else { -34.0 };
            w.push(i * S, (i + 1) * S, &second(lufs), 60 * S);
            verdicts.push(w.judge(60 * S, -23.0, 1.0));
        }
        assert!(verdicts[..59].iter().all(Option::is_none));
        assert!(verdicts[59..100].iter().all(|v| v.is_some_and(|v| !v.out)));
        let first_out = verdicts.iter().position(|v| v.is_some_and(|v| v.out));
        // The window falls below -24 once 8 s of -34 are in it: energy mean of 52 s at
        // -23.5 and 8 s at -34 is -24.06 (7 s: -23.99), and -34 is then within the
        // relative gate.
        let first_out = first_out.unwrap();
        assert_eq!(first_out, 107);
        let v = verdicts[first_out].unwrap();
        assert_eq!(v.since, first_out as i64 * S);
        assert!(v.lufs < -24.0);
        // ATSC A/85's -24 ± 2 takes longer to leave.
        let mut w = ProgrammeWindow::default();
        let a85 = (0..200)
            .map(|i| {
                let lufs = if i < 100 { -23.5 } else { -34.0 };
                w.push(i * S, (i + 1) * S, &second(lufs), 60 * S);
                w.judge(60 * S, -24.0, 2.0)
            })
            .position(|v| v.is_some_and(|v| v.out))
            .unwrap();
        assert!(a85 > first_out + 5, "{a85} vs {first_out}");
    }

    #[test]
    fn range_spans_the_10th_to_95th_percentile() {
        // 100 short-term values evenly from -30.0 to -20.1 in 0.1 LU steps.
        let values: Vec<(f64, u64)> = (0..100).map(|i| (-30.0 + i as f64 * 0.1, 1)).collect();
        let lra = range(&hist(&values)).unwrap();
        // ranks 10 and 94 of 0..=99 → -29.0 and -20.6
        assert!((lra - 8.4).abs() < 1e-9, "{lra}");
    }
}
