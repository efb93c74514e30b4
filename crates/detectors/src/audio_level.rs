//! `audio_level`: the audio level too low or too high for long — a feed 30 dB down, or one
//! driven hot against full scale — as broadcast monitors' level alarms judge it (Volicon:
//! below -40 or above -1 for 30 s).
//!
//! A peak meter's reading: per `audio_level.window` (0.5 s) of stream time, aligned to the
//! segment's start, the sample peak of the loudest channel but the LFE. A window is too low
//! below `low_dbfs` — unless it is below the silence level (`silence.noise_db`), which is
//! silence's — and too high at or above `high_dbfs`; the evidence says which
//! (`low_peak_dbfs` or `high_peak_dbfs`). The incident's raise-after time (30 s in both
//! profiles) is what makes it a long-window check: `true_peak` and `clipping` report a
//! moment's overs, `loudness` the programme's integrated loudness, `silence` what is below
//! the noise level; this reports a level that stays out of range.

use vqa_core::config::{AudioLevelConfig, SilenceConfig};
use vqa_core::model::Segment;
use vqa_core::report::{Finding, IncidentKind};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;
use crate::stereo::for_each_step;

/// Peaks of digital silence are reported as this, not as minus infinity.
const FLOOR_DBFS: f64 = -120.0;

pub struct AudioLevelDetector {
    low_dbfs: f64,
    high_dbfs: f64,
    silence_dbfs: f64,
    window: Micros,
    min_duration: Micros,
}

impl AudioLevelDetector {
    pub fn new(config: &AudioLevelConfig, silence: &SilenceConfig) -> Self {
        AudioLevelDetector {
            low_dbfs: config.low_dbfs,
            high_dbfs: config.high_dbfs,
            silence_dbfs: silence.noise_db,
            window: time::from_secs(config.window).max(1),
            min_duration: time::from_secs(config.min_duration),
        }
    }
}

impl Detector for AudioLevelDetector {
    fn name(&self) -> DetectorName {
        DetectorName::AudioLevel
    }

    fn needs_pictures(&self) -> bool {
        false // audio only
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let (start, end) = (segment.start, segment.end);
        if end <= start {
            return Vec::new();
        }
        let windows = ((end - start + self.window - 1) / self.window) as usize;
        let mut peaks: Vec<Option<f32>> = vec![None; windows];
        for block in &segment.audio {
            let channels = block.channels.max(1) as usize;
            let lfe = block.lfe.map(usize::from);
            for_each_step(block, start, start..end, self.window, |k, samples| {
                let mut peak = 0f32;
                for frame in samples.chunks_exact(channels) {
                    for (c, s) in frame.iter().enumerate() {
                        if Some(c) != lfe || channels == 1 {
                            peak = peak.max(s.abs());
                        }
                    }
                }
                let p = peaks[k].get_or_insert(0.0);
                *p = p.max(peak);
            });
        }
        let mut low = Runs::new(IncidentKind::AudioLevel, self.min_duration);
        let mut high = Runs::new(IncidentKind::AudioLevel, self.min_duration);
        for (k, peak) in peaks.into_iter().enumerate() {
            let Some(peak) = peak else { continue };
            let from = start + k as Micros * self.window;
            let to = (from + self.window).min(end);
            let dbfs = (20.0 * f64::from(peak).log10()).max(FLOOR_DBFS);
            let is_low = dbfs < self.low_dbfs && dbfs >= self.silence_dbfs;
            let is_high = dbfs >= self.high_dbfs;
            low.push(from, to, is_low.then_some(&[("low_peak_dbfs", dbfs)][..]));
            high.push(from, to, is_high.then_some(&[("high_peak_dbfs", dbfs)][..]));
        }
        let mut findings = low.finish();
        findings.extend(high.finish());
        findings.sort_by_key(|f| f.start);
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stereo::signals::{segment, tone};

    fn detect(seg: &Segment) -> Vec<Finding> {
        AudioLevelDetector::new(&AudioLevelConfig::default(), &SilenceConfig::default())
            .analyze(seg)
    }

    /// Stereo tone whose peak is `dbfs`.
    fn at(dbfs: f64) -> Segment {
        let a = 10f64.powf(dbfs / 20.0);
        segment(1, 2, None, move |t, c| {
            tone(t, 440.0 + 110.0 * f64::from(c), a, 0.0)
        })
    }

    #[test]
    fn a_level_in_range_is_no_finding() {
        assert!(detect(&at(-20.0)).is_empty());
        assert!(detect(&at(-2.0)).is_empty());
    }

    #[test]
    fn too_low_and_too_high_say_which() {
        let low = detect(&at(-50.0));
        assert_eq!(low.len(), 1, "{low:?}");
        assert_eq!((low[0].start, low[0].end), (1_000_000, 2_000_000));
        assert!((low[0].evidence["low_peak_dbfs"].max + 50.0).abs() < 0.1);
        assert!(!low[0].evidence.contains_key("high_peak_dbfs"));
        let high = detect(&at(-0.5));
        assert_eq!(high.len(), 1, "{high:?}");
        assert!((high[0].evidence["high_peak_dbfs"].min + 0.5).abs() < 0.1);
    }

    #[test]
    fn silence_is_silences_not_too_low() {
        assert!(detect(&at(-70.0)).is_empty());
        assert!(detect(&segment(1, 2, None, |_, _| 0.0)).is_empty());
    }

    #[test]
    fn the_lfe_channel_does_not_lift_a_quiet_mix() {
        let seg = segment(1, 6, Some(3), |t, c| {
            let a = if c == 3 { 0.5 } else { 0.005 }; // -46 dBFS but the LFE
            tone(t, 60.0 + 100.0 * f64::from(c), a, 0.0)
        });
        let found = detect(&seg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].evidence.contains_key("low_peak_dbfs"));
    }

    #[test]
    fn a_short_excursion_inside_a_segment_is_not_kept() {
        // Too high from 1.25 to 1.75 s, read in quarter-second windows: shorter than 30 s
        // and touching neither edge of the segment.
        let seg = segment(1, 2, None, |t, _| {
            let a = if (1.25..1.75).contains(&t) { 0.99 } else { 0.1 };
            tone(t, 440.0, a, 0.0)
        });
        let detector = |min_duration| {
            AudioLevelDetector::new(
                &AudioLevelConfig {
                    min_duration,
                    window: 0.25,
                    ..Default::default()
                },
                &SilenceConfig::default(),
            )
        };
        assert!(detector(30.0).analyze(&seg).is_empty());
        let found = detector(0.2).analyze(&seg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start, found[0].end), (1_250_000, 1_750_000));
    }
}
