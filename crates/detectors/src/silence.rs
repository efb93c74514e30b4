//! `silence`: every channel below the noise level, or one channel while others carry sound.
//!
//! Like FFmpeg's silencedetect, a sample instant is silent when its amplitude is below the
//! noise level (-60 dBFS by default) on every channel; silences are runs of silent instants,
//! reported from the first silent sample to the first loud one, at sample precision.
//!
//! With `per_channel`, each channel (the LFE channel only with `include_lfe`) is also checked
//! on its own, and reported with its `channel` where the whole stream is not silent: a dead
//! channel in a 5.1 mix is a defect a listener on that speaker hears.

use std::collections::BTreeMap;

use vqa_core::config::{db_to_ratio, SilenceConfig};
use vqa_core::model::{AudioBlock, Segment};
use vqa_core::report::{Finding, IncidentKind, Level};
use vqa_core::{time, Detector, DetectorName};

use crate::runs::Runs;

/// Peak levels of digital silence are reported as this, not as minus infinity.
const FLOOR_DBFS: f64 = -120.0;

pub struct SilenceDetector {
    noise: f32,
    min_duration: i64,
    per_channel: bool,
    include_lfe: bool,
}

impl SilenceDetector {
    pub fn new(config: &SilenceConfig) -> Self {
        SilenceDetector {
            noise: db_to_ratio(config.noise_db) as f32,
            min_duration: time::from_secs(config.min_duration),
            per_channel: config.per_channel,
            include_lfe: config.include_lfe,
        }
    }

    /// Splits a block into alternating quiet and loud runs of sample instants, where
    /// `level` gives an instant's amplitude (the loudest channel, or one channel).
    fn scan(&self, block: &AudioBlock, runs: &mut Runs, level: impl Fn(&[f32]) -> f32) {
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
            let peak = level(instant);
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

    /// The channels checked on their own in this block.
    fn single_channels(&self, block: &AudioBlock) -> Vec<u16> {
        if !self.per_channel || block.channels < 2 {
            return Vec::new();
        }
        (0..block.channels)
            .filter(|c| self.include_lfe || Some(*c) != block.lfe)
            .collect()
    }
}

/// The parts of `finding` outside every one of `covering` (sorted, non-overlapping).
fn outside(finding: Finding, covering: &[Finding]) -> Vec<Finding> {
    let mut pieces = Vec::new();
    let mut from = finding.start;
    for c in covering
        .iter()
        .filter(|c| c.end > finding.start && c.start < finding.end)
    {
        if c.start > from {
            pieces.push(Finding {
                start: from,
                end: c.start,
                reaches_end: false,
                starts_anew: false,
                level: Level::Raise,
                ..finding.clone()
            });
        }
        from = from.max(c.end);
    }
    if from < finding.end {
        pieces.push(Finding {
            start: from,
            ..finding
        });
    }
    pieces
}

impl Detector for SilenceDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Silence
    }

    fn needs_pictures(&self) -> bool {
        false // audio only
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let mut whole = Runs::new(IncidentKind::Silence, self.min_duration);
        let mut single: BTreeMap<u16, Runs> = BTreeMap::new();
        for block in &segment.audio {
            self.scan(block, &mut whole, |instant| {
                instant.iter().fold(0f32, |m, s| m.max(s.abs()))
            });
            for c in self.single_channels(block) {
                let runs = single.entry(c).or_insert_with(|| {
                    Runs::on_channel(IncidentKind::Silence, Some(c), self.min_duration)
                });
                self.scan(block, runs, |instant| instant[c as usize].abs());
            }
        }
        let mut findings = whole.finish();
        // Where everything is silent, that is the finding; a channel is reported for the
        // rest of its silence only. Codecs smear silence edges differently per channel, so
        // what remains there is a few milliseconds, which the aggregator's minimum drops.
        let channel_findings: Vec<Finding> = single
            .into_values()
            .flat_map(Runs::finish)
            .flat_map(|f| outside(f, &findings))
            .collect();
        findings.extend(channel_findings);
        findings
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
                lfe: None,
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

    /// One second of 6 channels, a tone on each except the `dead` ones, which are zero.
    fn surround(dead: &[usize]) -> Segment {
        let samples: Vec<f32> = (0..RATE as usize)
            .flat_map(|i| {
                (0..6).map(move |c| {
                    let t = i as f32 / RATE as f32;
                    let tone =
                        0.3 * (t * std::f32::consts::TAU * (200.0 + 50.0 * c as f32)).sin() + 0.05;
                    if dead.contains(&c) {
                        0.0
                    } else {
                        tone
                    }
                })
            })
            .collect();
        let block = AudioBlock {
            pts: 0,
            skipped: 0,
            rate: RATE,
            channels: 6,
            lfe: Some(3),
            samples: samples.into(),
        };
        audio_segment(0, vec![block])
    }

    fn spans(f: &[Finding]) -> Vec<(Option<u16>, i64, i64)> {
        f.iter().map(|f| (f.channel, f.start, f.end)).collect()
    }

    #[test]
    fn one_dead_channel_is_reported_with_its_number_but_not_as_silence() {
        assert_eq!(
            spans(&detector().analyze(&surround(&[1]))),
            vec![(Some(1), 0, 1_000_000)]
        );
        let whole_only = SilenceConfig {
            per_channel: false,
            ..SilenceConfig::default()
        };
        assert!(SilenceDetector::new(&whole_only)
            .analyze(&surround(&[1]))
            .is_empty());
    }

    #[test]
    fn a_silent_lfe_channel_is_reported_only_when_asked() {
        assert!(detector().analyze(&surround(&[3])).is_empty());
        let with_lfe = SilenceConfig {
            include_lfe: true,
            ..SilenceConfig::default()
        };
        assert_eq!(
            spans(&SilenceDetector::new(&with_lfe).analyze(&surround(&[3]))),
            vec![(Some(3), 0, 1_000_000)]
        );
    }

    #[test]
    fn a_channel_silent_a_little_longer_than_the_rest_leaves_only_the_difference() {
        let channel = |start, end, reaches_end| Finding {
            kind: IncidentKind::Silence,
            channel: Some(0),
            start,
            end,
            reaches_end,
            starts_anew: false,
            level: Level::Raise,
            evidence: Default::default(),
        };
        let whole = Finding {
            channel: None,
            ..channel(3_000, 900_000, false)
        };
        let pieces = outside(
            channel(1_000, 1_000_000, true),
            std::slice::from_ref(&whole),
        );
        assert_eq!(
            spans(&pieces),
            vec![(Some(0), 1_000, 3_000), (Some(0), 900_000, 1_000_000)]
        );
        assert_eq!(
            pieces.iter().map(|p| p.reaches_end).collect::<Vec<_>>(),
            vec![false, true]
        );
        assert!(outside(channel(3_000, 900_000, false), &[whole]).is_empty());
    }

    #[test]
    fn when_every_channel_is_silent_only_the_whole_stream_silence_is_reported() {
        assert_eq!(
            spans(&detector().analyze(&surround(&[0, 1, 2, 3, 4, 5]))),
            vec![(None, 0, 1_000_000)]
        );
    }
}
