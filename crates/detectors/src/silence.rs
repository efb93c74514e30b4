//! `silence`: every channel below the noise level.
//!
//! Like FFmpeg's silencedetect, a sample instant is silent when its amplitude is below the
//! noise level (-60 dBFS by default) on every channel; silences are runs of silent instants,
//! reported from the first silent sample to the first loud one, at sample precision.

use vqa_core::config::{db_to_ratio, SilenceConfig};
use vqa_core::model::{AudioBlock, Segment};
use vqa_core::report::{Finding, IncidentKind};
use vqa_core::{time, Detector, DetectorName};

use crate::runs::Runs;

/// Peak levels of digital silence are reported as this, not as minus infinity.
const FLOOR_DBFS: f64 = -120.0;

pub struct SilenceDetector {
    noise: f32,
    min_duration: i64,
}

impl SilenceDetector {
    pub fn new(config: &SilenceConfig) -> Self {
        SilenceDetector {
            noise: db_to_ratio(config.noise_db) as f32,
            min_duration: time::from_secs(config.min_duration),
        }
    }

    /// Splits a block into alternating quiet and loud runs of sample instants.
    fn scan(&self, block: &AudioBlock, runs: &mut Runs) {
        let channels = block.channels.max(1) as usize;
        let instants = block.samples.chunks_exact(channels);
        let mut run_start = 0usize;
        let mut run_quiet = None::<bool>;
        let mut run_peak = 0f32;
        let flush = |from: usize, to: usize, quiet: bool, peak: f32, runs: &mut Runs| {
            let (start, end) = (block.time_of(from), block.time_of(to));
            if quiet {
                let peak_dbfs = (20.0 * (peak as f64).log10()).max(FLOOR_DBFS);
                runs.push(start, end, Some(&[("peak_dbfs", peak_dbfs)]));
            } else {
                runs.push(start, end, None);
            }
        };
        for (i, instant) in instants.enumerate() {
            let peak = instant.iter().fold(0f32, |m, s| m.max(s.abs()));
            let quiet = peak < self.noise;
            match run_quiet {
                Some(q) if q == quiet => run_peak = run_peak.max(peak),
                Some(q) => {
                    flush(run_start, i, q, run_peak, runs);
                    (run_start, run_quiet, run_peak) = (i, Some(quiet), peak);
                }
                None => (run_quiet, run_peak) = (Some(quiet), peak),
            }
        }
        if let Some(q) = run_quiet {
            flush(run_start, block.frames(), q, run_peak, runs);
        }
    }
}

impl Detector for SilenceDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Silence
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let mut runs = Runs::new(IncidentKind::Silence, self.min_duration);
        for block in &segment.audio {
            self.scan(block, &mut runs);
        }
        runs.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::audio_segment;

    const RATE: u32 = 48_000;

    /// One second of stereo: a tone on both channels except where `quiet(t)` holds.
    fn second(index: u64, quiet: impl Fn(f64) -> bool, quiet_level: f32) -> Segment {
        let mut samples = Vec::new();
        for i in 0..RATE as usize {
            let t = index as f64 + i as f64 / RATE as f64;
            let tone = (0.3 * (t * 2.0 * std::f64::consts::PI * 440.0).sin()) as f32 + 0.05;
            let v = if quiet(t) { quiet_level } else { tone };
            samples.extend([v, -v]);
        }
        // Split into decoder-sized blocks to exercise joins between blocks.
        let blocks = samples
            .chunks(1024 * 2)
            .enumerate()
            .map(|(k, chunk)| AudioBlock {
                pts: index as i64 * 1_000_000
                    + (k as i64 * 1024 * 1_000_000 + RATE as i64 / 2) / RATE as i64,
                skipped: 0,
                rate: RATE,
                channels: 2,
                samples: chunk.to_vec().into(),
            })
            .collect();
        audio_segment(index, blocks)
    }

    fn detector() -> SilenceDetector {
        SilenceDetector::new(&SilenceConfig::default())
    }

    #[test]
    fn silence_is_found_at_sample_precision_across_blocks() {
        let seg = second(0, |t| (0.25..0.75).contains(&t), 0.0);
        let short = SilenceConfig {
            min_duration: 0.5,
            ..SilenceConfig::default()
        };
        let f = SilenceDetector::new(&short).analyze(&seg);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].start, f[0].end), (250_000, 750_000));
        assert_eq!(f[0].evidence["peak_dbfs"].max, FLOOR_DBFS);
        // With the default 1 s minimum, a 0.5 s silence inside the segment is no finding.
        assert!(detector().analyze(&seg).is_empty());
    }

    #[test]
    fn quiet_noise_below_the_level_is_silence_above_is_not() {
        assert_eq!(detector().analyze(&second(0, |_| true, 0.0005)).len(), 1); // -66 dBFS
        assert!(detector().analyze(&second(0, |_| true, 0.002)).is_empty()); // -54 dBFS
    }

    #[test]
    fn tone_zero_crossings_are_not_silence() {
        assert!(detector().analyze(&second(0, |_| false, 0.0)).is_empty());
    }

    #[test]
    fn one_live_channel_is_not_silence() {
        let mut seg = second(0, |_| true, 0.0);
        for block in &mut seg.audio {
            let mut s = block.samples.to_vec();
            for (i, v) in s.iter_mut().enumerate().filter(|(i, _)| i % 2 == 1) {
                *v = 0.3 * ((i as f32) * 0.05).sin() + 0.05;
            }
            block.samples = s.into();
        }
        assert!(detector().analyze(&seg).is_empty());
    }
}
