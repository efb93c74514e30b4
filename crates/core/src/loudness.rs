//! Stream-wide programme loudness (EBU R128 / ITU-R BS.1770-4) from per-segment histograms.
//!
//! The loudness detector measures each 400 ms gating block (momentary loudness, 100 ms
//! hop) and each 3 s window (short-term loudness) and reports them as histograms in 0.1 LU
//! bins; summed over segments they give integrated loudness and loudness range for the whole
//! stream without keeping any audio, the way libebur128's histogram mode does.

use serde::{Deserialize, Serialize};

use crate::report::{Histogram, Measurements};

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

fn round2(v: f64) -> f64 {
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

    #[test]
    fn range_spans_the_10th_to_95th_percentile() {
        // 100 short-term values evenly from -30.0 to -20.1 in 0.1 LU steps.
        let values: Vec<(f64, u64)> = (0..100).map(|i| (-30.0 + i as f64 * 0.1, 1)).collect();
        let lra = range(&hist(&values)).unwrap();
        // ranks 10 and 94 of 0..=99 → -29.0 and -20.6
        assert!((lra - 8.4).abs() < 1e-9, "{lra}");
    }
}
