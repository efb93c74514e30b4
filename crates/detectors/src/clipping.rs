//! `clipping`: runs of consecutive samples at full scale, on any channel.
//!
//! A waveform cut off at full scale stays there for several samples; an intact loud waveform
//! touches its peak for one or two. Clips closer than `clear_after` form one passage.

use vqa_core::config::ClippingConfig;
use vqa_core::model::Segment;
use vqa_core::report::{Finding, IncidentKind, Level, Measurements, Summary};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::join_within;

pub struct ClippingDetector {
    level: f32,
    min_run: usize,
    join_gap: Micros,
}

impl ClippingDetector {
    pub fn new(config: &ClippingConfig) -> Self {
        ClippingDetector {
            level: config.level as f32,
            min_run: config.min_run as usize,
            join_gap: time::from_secs(config.clear_after),
        }
    }
}

impl Detector for ClippingDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Clipping
    }

    fn needs_pictures(&self) -> bool {
        false // audio only
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let mut findings: Vec<Finding> = Vec::new();
        let mut clipped_samples = 0u64;
        for block in &segment.audio {
            let channels = block.channels.max(1) as usize;
            // Per channel: length of the current full-scale run and where it started.
            let mut run = vec![(0usize, 0usize); channels];
            let mut flush = |c: usize, len: usize, first: usize, findings: &mut Vec<Finding>| {
                if len < self.min_run {
                    return;
                }
                clipped_samples += len as u64;
                findings.push(Finding {
                    kind: IncidentKind::Clipping,
                    channel: None,
                    start: block.time_of(first),
                    end: block.time_of(first + len),
                    reaches_end: false,
                    starts_anew: false,
                    level: Level::Raise,
                    evidence: [
                        ("clipped_samples".to_string(), Summary::of(len as f64)),
                        ("channel".to_string(), Summary::of(c as f64)),
                    ]
                    .into(),
                });
            };
            for (i, frame) in block.samples.chunks_exact(channels).enumerate() {
                for (c, &s) in frame.iter().enumerate() {
                    let (len, first) = &mut run[c];
                    if s.abs() >= self.level {
                        if *len == 0 {
                            *first = i;
                        }
                        *len += 1;
                    } else if *len > 0 {
                        flush(c, *len, *first, &mut findings);
                        *len = 0;
                    }
                }
            }
            for (c, (len, first)) in run.into_iter().enumerate() {
                flush(c, len, first, &mut findings);
            }
        }
        // Clips of every channel and block, in time order, joined into passages.
        findings.sort_by_key(|f| f.start);
        let joined = join_within(findings, self.join_gap, segment.end);
        if segment.has_audio {
            m.add("clipping.clipped_samples", clipped_samples as f64);
        }
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::audio_segment;
    use vqa_core::model::AudioBlock;

    fn tone(clip_at: f32, from: f64, to: f64) -> Segment {
        // 1 kHz sine at 0.9 amplitude, 48 kHz stereo; between `from` and `to` seconds it is
        // driven 4x and cut off at `clip_at`.
        let samples: Vec<f32> = (0..48_000)
            .flat_map(|i| {
                let t = i as f64 / 48_000.0;
                let mut s = 0.9 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin();
                if (from..to).contains(&t) {
                    s = (s * 4.0).clamp(-clip_at as f64, clip_at as f64);
                }
                [s as f32, (s * 0.5) as f32]
            })
            .collect();
        audio_segment(
            0,
            vec![AudioBlock {
                pts: 0,
                skipped: 0,
                rate: 48_000,
                channels: 2,
                lfe: None,
                samples: samples.into(),
            }],
        )
    }

    #[test]
    fn a_loud_intact_tone_is_not_clipping() {
        let d = ClippingDetector::new(&ClippingConfig::default());
        // Peaks at 0.9: below the level.
        assert!(d.analyze(&tone(1.0, 0.0, 0.0)).is_empty());
        // Driven to peak exactly at full scale without being cut: touches it for 1-2 samples.
        let intact = ClippingDetector::new(&ClippingConfig {
            level: 0.899,
            ..Default::default()
        });
        assert!(intact.analyze(&tone(1.0, 0.0, 0.0)).is_empty());
    }

    #[test]
    fn a_clipped_passage_is_one_finding_with_its_time() {
        let d = ClippingDetector::new(&ClippingConfig::default());
        let found = d.analyze(&tone(1.0, 0.25, 0.5));
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert!((f.start - 250_000).abs() < 1_000, "{}", f.start);
        assert!((f.end - 500_000).abs() < 1_000, "{}", f.end);
        assert_eq!(f.evidence["channel"].max, 0.0);
        assert!(!f.reaches_end);
    }
}
