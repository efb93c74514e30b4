//! `audio_phase`: a stereo pair out of phase — one channel's polarity inverted, or the two
//! carrying the same sound half a period apart — which cancels when the pair is summed to
//! mono (a mono receiver, a downmix) and sounds hollow in stereo.
//!
//! A correlation meter's reading: per 100 ms step, the correlation of the pair over a window
//! centred on it (`audio_phase.window`, 0.3 s), +1 for identical channels, 0 for unrelated
//! ones, -1 for one the other inverted. A step is out of phase when it reads below
//! `max_correlation` (-0.3) and the louder channel of the pair is above `gate_dbfs` over the
//! step: silence and near-silence are never judged (and interrupt a run). Pairs: L/R of
//! stereo, L/R and Ls/Rs of 5.1 (`stereo::pairs`); a finding's `channel` is the pair's first
//! channel, `second_channel` in its evidence the other.

use vqa_core::config::AudioPhaseConfig;
use vqa_core::model::Segment;
use vqa_core::report::{Finding, IncidentKind};
use vqa_core::{time, Detector, DetectorName};

use crate::stereo::{half_window, pair_findings, PairSums};

pub struct AudioPhaseDetector {
    max_correlation: f64,
    gate_dbfs: f64,
    half_window: usize,
    min_duration: i64,
}

impl AudioPhaseDetector {
    pub fn new(config: &AudioPhaseConfig) -> Self {
        AudioPhaseDetector {
            max_correlation: config.max_correlation,
            gate_dbfs: config.gate_dbfs,
            half_window: half_window(config.window),
            min_duration: time::from_secs(config.min_duration),
        }
    }
}

impl Detector for AudioPhaseDetector {
    fn name(&self) -> DetectorName {
        DetectorName::AudioPhase
    }

    fn needs_pictures(&self) -> bool {
        false // audio only
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let judge = |window: &PairSums| {
            let r = window.correlation()?;
            (r < self.max_correlation).then_some([("correlation", r)])
        };
        pair_findings(
            segment,
            IncidentKind::AudioPhase,
            self.half_window,
            self.gate_dbfs,
            self.min_duration,
            judge,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stereo::signals::{noise, segment, tone};
    use std::f64::consts::PI;
    use vqa_core::Micros;

    fn detect(seg: &Segment) -> Vec<Finding> {
        AudioPhaseDetector::new(&AudioPhaseConfig::default()).analyze(seg)
    }

    fn spans(found: &[Finding]) -> Vec<(Option<u16>, Micros, Micros)> {
        found.iter().map(|f| (f.channel, f.start, f.end)).collect()
    }

    /// A programme-like stereo pair: a shared tone and each channel's own noise.
    fn stereo(t: f64, c: u16) -> f32 {
        tone(t, 220.0, 0.2, 0.0) + noise(t, u64::from(c), 0.1)
    }

    #[test]
    fn an_inverted_channel_is_out_of_phase_over_the_whole_segment() {
        let found = detect(&segment(1, 2, None, |t, c| {
            let s = stereo(t, 0);
            if c == 1 {
                -s
            } else {
                s
            }
        }));
        assert_eq!(spans(&found), vec![(Some(0), 1_000_000, 2_000_000)]);
        let f = &found[0];
        assert!(f.reaches_end);
        assert!(f.evidence["correlation"].max < -0.99, "{:?}", f.evidence);
        assert_eq!(f.evidence["second_channel"].max, 1.0);
    }

    #[test]
    fn a_tone_half_a_period_apart_is_out_of_phase_a_quarter_is_not() {
        let shifted = |phase: f64| {
            detect(&segment(1, 2, None, move |t, c| {
                tone(t, 1000.0, 0.3, if c == 1 { phase } else { 0.0 })
            }))
        };
        let opposite = shifted(PI);
        assert_eq!(opposite.len(), 1, "{opposite:?}");
        assert!(opposite[0].evidence["correlation"].max < -0.99);
        assert!(shifted(PI / 2.0).is_empty());
        assert!(shifted(0.0).is_empty());
    }

    #[test]
    fn stereo_in_phase_and_unrelated_channels_are_not_out_of_phase() {
        assert!(detect(&segment(1, 2, None, stereo)).is_empty());
        let unrelated = |t, c| noise(t, u64::from(c) + 7, 0.3);
        assert!(detect(&segment(1, 2, None, unrelated)).is_empty());
    }

    #[test]
    fn silence_and_near_silence_are_not_judged() {
        assert!(detect(&segment(1, 2, None, |_, _| 0.0)).is_empty());
        // Inverted, but at -66 dBFS: below the -50 dBFS gate.
        let quiet = |t, c| tone(t, 440.0, 0.0005, if c == 1 { PI } else { 0.0 });
        assert!(detect(&segment(1, 2, None, quiet)).is_empty());
    }

    #[test]
    fn an_inverted_stretch_is_found_to_the_step() {
        let seg = segment(1, 2, None, |t, c| {
            let s = stereo(t, 0);
            if c == 1 && (1.3..1.8).contains(&t) {
                -s
            } else {
                s
            }
        });
        let found = detect(&seg);
        // Inside the segment, 0.5 s is shorter than the 1 s minimum.
        assert!(found.is_empty(), "{found:?}");
        let short = AudioPhaseDetector::new(&AudioPhaseConfig {
            min_duration: 0.3,
            ..Default::default()
        });
        let found = short.analyze(&seg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!((found[0].start - 1_300_000).abs() <= 100_000, "{found:?}");
        assert!((found[0].end - 1_800_000).abs() <= 100_000, "{found:?}");
    }

    #[test]
    fn surround_pairs_are_judged_on_their_own() {
        // 5.1: FL FR FC LFE BL BR; the back pair inverted, centre and LFE unrelated.
        let seg = segment(1, 6, Some(3), |t, c| match c {
            0 | 1 => stereo(t, c),
            4 => stereo(t, 4),
            5 => -stereo(t, 4),
            2 => tone(t, 300.0, 0.2, 0.0),
            _ => -tone(t, 300.0, 0.2, 0.0),
        });
        let found = detect(&seg);
        assert_eq!(spans(&found), vec![(Some(4), 1_000_000, 2_000_000)]);
        assert_eq!(found[0].evidence["second_channel"].max, 5.0);
    }
}
