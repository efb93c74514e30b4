//! `audio_mono`: mono carried as stereo — the two channels of a pair the same sound at the
//! same level, so the programme has no stereo image (a mono source routed to both legs, a
//! 2.0 track made by copying one channel).
//!
//! Per 100 ms step, a pair is mono when its correlation over the window centred on the step
//! (`audio_mono.window`, 0.3 s) is at least `min_correlation` (0.99) and its channels' levels
//! differ by at most `max_level_difference_db` (1 dB; a mono source panned off centre is
//! still mono, but not this check's "copied channel"). As for `audio_phase`, steps whose
//! louder channel is below `gate_dbfs` are not judged, and a finding's `channel` is the
//! pair's first channel (`second_channel` in its evidence).
//!
//! Off by default: a stereo programme is legitimately near mono for long stretches (a
//! talking head, archive material), so only a deliverable spec that requires real stereo
//! should turn it on.

use vqa_core::config::AudioMonoConfig;
use vqa_core::model::Segment;
use vqa_core::report::{Finding, IncidentKind};
use vqa_core::{time, Detector, DetectorName};

use crate::stereo::{half_window, pair_findings, PairSums};

pub struct AudioMonoDetector {
    min_correlation: f64,
    max_level_difference_db: f64,
    gate_dbfs: f64,
    half_window: usize,
    min_duration: i64,
}

impl AudioMonoDetector {
    pub fn new(config: &AudioMonoConfig) -> Self {
        AudioMonoDetector {
            min_correlation: config.min_correlation,
            max_level_difference_db: config.max_level_difference_db,
            gate_dbfs: config.gate_dbfs,
            half_window: half_window(config.window),
            min_duration: time::from_secs(config.min_duration),
        }
    }
}

impl Detector for AudioMonoDetector {
    fn name(&self) -> DetectorName {
        DetectorName::AudioMono
    }

    fn needs_pictures(&self) -> bool {
        false // audio only
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let judge = |window: &PairSums| {
            let r = window.correlation()?;
            let difference = window.level_difference_db();
            (r >= self.min_correlation && difference.abs() <= self.max_level_difference_db)
                .then_some([("correlation", r), ("level_difference_db", difference)])
        };
        pair_findings(
            segment,
            IncidentKind::AudioMono,
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

    fn detect(seg: &Segment) -> Vec<Finding> {
        AudioMonoDetector::new(&AudioMonoConfig::default()).analyze(seg)
    }

    fn programme(t: f64) -> f32 {
        tone(t, 220.0, 0.2, 0.0) + noise(t, 3, 0.1)
    }

    #[test]
    fn copies_of_one_channel_are_mono() {
        let found = detect(&segment(1, 2, None, |t, _| programme(t)));
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!((f.channel, f.start, f.end), (Some(0), 1_000_000, 2_000_000));
        assert!(f.evidence["correlation"].min > 0.999);
        assert!(f.evidence["level_difference_db"].max.abs() < 0.01);
    }

    #[test]
    fn stereo_inverted_panned_and_unrelated_pairs_are_not_mono() {
        let stereo = |t, c: u16| tone(t, 220.0, 0.2, 0.0) + noise(t, u64::from(c), 0.1);
        assert!(detect(&segment(1, 2, None, stereo)).is_empty());
        let inverted = |t, c: u16| if c == 1 { -programme(t) } else { programme(t) };
        assert!(detect(&segment(1, 2, None, inverted)).is_empty());
        // The same sound 6 dB down on one side: panned, not a copied channel.
        let panned = |t, c: u16| {
            if c == 1 {
                0.5 * programme(t)
            } else {
                programme(t)
            }
        };
        assert!(detect(&segment(1, 2, None, panned)).is_empty());
        let unrelated = |t, c: u16| noise(t, u64::from(c) + 11, 0.3);
        assert!(detect(&segment(1, 2, None, unrelated)).is_empty());
    }

    #[test]
    fn silence_is_not_mono() {
        assert!(detect(&segment(1, 2, None, |_, _| 0.0)).is_empty());
        assert!(detect(&segment(1, 2, None, |t, _| 0.0005 * programme(t))).is_empty());
    }

    #[test]
    fn a_surround_pair_copied_is_found_on_its_own() {
        let seg = segment(1, 6, Some(3), |t, c| match c {
            4 | 5 => programme(t),
            _ => noise(t, u64::from(c), 0.2),
        });
        let found = detect(&seg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].channel, Some(4));
        assert_eq!(found[0].evidence["second_channel"].max, 5.0);
    }
}
