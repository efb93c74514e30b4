//! `av_sync`: audio/video offset on a sync test pattern — a white flash with a simultaneous
//! beep, repeating.
//!
//! A flash is a frame at least 80% of the way to white after one under 50%; a beep onset is
//! the first sample at or above -20 dBFS after at least 100 ms below -40 dBFS. Each flash of
//! the segment is paired with the nearest onset within `search_ms` (the segment's audio
//! lead-in covers beeps that come early); the offset is onset minus flash, positive when the
//! audio is late, measured to the sample against the frame's timestamp. Offsets beyond the
//! tolerance are findings from the flash to the next one (from the segment's start for its
//! first flash, so a steady offset is one incident across segments).

use vqa_core::config::AvSyncConfig;
use vqa_core::model::{AudioBlock, Segment, VideoFrame};
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Measurements};
use vqa_core::{Detector, DetectorName, Micros};

use crate::runs::Runs;

use vqa_core::report::AV_SYNC_OFFSET_MS as OFFSET;

const FLASH: f64 = 0.8;
const DARK: f64 = 0.5;
const ONSET: f32 = 0.1;
const QUIET: f32 = 0.01;
const QUIET_BEFORE: Micros = 100_000;

pub struct AvSyncDetector {
    max_late: Micros,
    max_early: Micros,
    search: Micros,
}

impl AvSyncDetector {
    pub fn new(config: &AvSyncConfig) -> Self {
        let ms = |v: f64| (v * 1000.0).round() as Micros;
        AvSyncDetector {
            max_late: ms(config.max_late_ms),
            max_early: ms(config.max_early_ms),
            search: ms(config.search_ms),
        }
    }
}

/// Mean brightness of a frame from 0 (black level) to 1 (white level), on a sparse grid.
pub(crate) fn brightness(frame: &VideoFrame) -> f64 {
    let (black, white) = frame.range.black_white();
    let (mut sum, mut n) = (0u64, 0u64);
    for row in frame.rows().step_by(8) {
        for chunk in row.chunks(64).step_by(2) {
            sum += chunk.iter().map(|&p| u64::from(p)).sum::<u64>();
            n += chunk.len() as u64;
        }
    }
    if n == 0 {
        return 0.0;
    }
    (sum as f64 / n as f64 - f64::from(black)) / f64::from(white - black)
}

/// Flash onsets: frames much brighter than the one before.
fn flashes(segment: &Segment) -> Vec<Micros> {
    let mut prev = segment.lead_in.as_ref().map(brightness);
    let mut out = Vec::new();
    for frame in &segment.video {
        let b = brightness(frame);
        if b >= FLASH && prev.is_some_and(|p| p < DARK) {
            out.push(frame.pts);
        }
        prev = Some(b);
    }
    out
}

/// Beep onsets in the given audio, and the time up to which audio was seen.
fn onsets(blocks: &[&AudioBlock]) -> Vec<Micros> {
    let mut out = Vec::new();
    let mut quiet_since: Option<Micros> = None;
    for block in blocks {
        let channels = block.channels.max(1) as usize;
        for (i, frame) in block.samples.chunks_exact(channels).enumerate() {
            let peak = frame.iter().fold(0f32, |m, s| m.max(s.abs()));
            let t = block.time_of(i);
            if peak < QUIET {
                quiet_since.get_or_insert(t);
            } else if peak >= ONSET {
                if quiet_since.is_some_and(|q| t - q >= QUIET_BEFORE) {
                    out.push(t);
                }
                quiet_since = None;
            }
        }
    }
    out
}

impl Detector for AvSyncDetector {
    fn name(&self) -> DetectorName {
        DetectorName::AvSync
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let flashes = flashes(segment);
        if flashes.is_empty() {
            return Vec::new();
        }
        let audio: Vec<&AudioBlock> = segment.audio_lead_in.iter().chain(&segment.audio).collect();
        let heard_until = audio.iter().map(|b| b.end()).max().unwrap_or(Micros::MIN);
        let onsets = onsets(&audio);
        let mut runs = Runs::new(IncidentKind::AvSync, 0);
        let mut cleared = Vec::new();
        for (k, &flash) in flashes.iter().enumerate() {
            let nearest = onsets
                .iter()
                .copied()
                .filter(|&t| (t - flash).abs() <= self.search)
                .min_by_key(|&t| (t - flash).abs());
            let from = if k == 0 { segment.start } else { flash };
            let to = flashes.get(k + 1).copied().unwrap_or(segment.end);
            let Some(onset) = nearest else {
                // The beep may still come after the segment's audio ends: undecided.
                if flash + self.search > heard_until {
                    runs.push_undecided();
                } else {
                    runs.push(from, to, None);
                }
                continue;
            };
            let offset = onset - flash;
            let offset_ms = offset as f64 / 1000.0;
            m.add(OFFSET, offset_ms);
            let off = offset > self.max_late || -offset > self.max_early;
            runs.push(from, to, off.then_some(&[("offset_ms", offset_ms)][..]));
            if !off {
                // Measured in tolerance: an out-of-sync incident (open between flashes)
                // is over here.
                cleared.push(Finding {
                    kind: IncidentKind::AvSync,
                    channel: None,
                    start: flash,
                    end: flash,
                    reaches_end: false,
                    starts_anew: false,
                    level: Level::Clear,
                    evidence: Evidence::new(),
                });
            }
        }
        let mut findings = runs.finish();
        findings.append(&mut cleared);
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, FRAME};
    use vqa_core::model::StreamId;

    /// One second of a sync pattern: a white frame at `flash` and a 1 kHz beep of 40 ms
    /// starting `offset` µs after it, with `lead` µs of audio lead-in before the segment.
    fn pattern(index: i64, flash: Micros, offset: Micros) -> Segment {
        let start = index * 1_000_000;
        let video = (0..25)
            .map(|n| {
                let pts = start + n * FRAME;
                frame(pts, move |_, _| if pts == flash { 235 } else { 40 })
            })
            .collect();
        let beep = flash + offset;
        let block = |from: Micros, to: Micros| {
            let n = ((to - from) * 48 / 1000) as usize;
            let samples: Vec<f32> = (0..n)
                .map(|i| {
                    let t = from + (i as i64 * 1_000_000) / 48_000;
                    if (beep..beep + 40_000).contains(&t) {
                        0.5 * ((t - beep) as f64 * 2e-3 * std::f64::consts::PI)
                            .sin()
                            .signum() as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            AudioBlock {
                pts: from,
                skipped: 0,
                rate: 48_000,
                channels: 1,
                lfe: None,
                samples: samples.into(),
            }
        };
        Segment {
            stream: StreamId::new("t"),
            index: index as u64,
            start,
            end: start + 1_000_000,
            has_video: true,
            has_audio: true,
            lead_in: Some(frame(start - FRAME, |_, _| 40)),
            video,
            audio: vec![block(start, start + 1_000_000)],
            audio_lead_in: vec![block(start - 500_000, start)],
            decode_errors: 0,
            ts_events: vec![],
            splice_cues: vec![],
        }
    }

    fn run(seg: &Segment) -> (Vec<Finding>, Measurements) {
        let mut m = Measurements::default();
        let f = AvSyncDetector::new(&AvSyncConfig::default()).analyze_measuring(seg, &mut m);
        (f, m)
    }

    /// The findings that say the condition holds (not the in-tolerance measurements).
    fn raised(found: &[Finding]) -> Vec<&Finding> {
        found.iter().filter(|f| f.level != Level::Clear).collect()
    }

    #[test]
    fn in_sync_pattern_measures_zero_and_clears_at_the_flash() {
        let (found, m) = run(&pattern(1, 1_400_000, 0));
        assert!(raised(&found).is_empty());
        let clear: Vec<_> = found.iter().map(|f| (f.level, f.start)).collect();
        assert_eq!(clear, vec![(Level::Clear, 1_400_000)]);
        let s = m.values[OFFSET];
        assert_eq!(s.count, 1);
        assert!(s.mean.abs() <= 0.03, "{s:?}");
    }

    #[test]
    fn late_audio_beyond_tolerance_is_an_incident_with_its_offset() {
        let (found, m) = run(&pattern(1, 1_400_000, 80_000));
        assert!((m.values[OFFSET].mean - 80.0).abs() < 0.05);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (1_000_000, 2_000_000));
        assert!(found[0].reaches_end);
        // 30 ms late is within the 45 ms tolerance; 30 ms early is not (15 ms).
        assert!(raised(&run(&pattern(1, 1_400_000, 30_000)).0).is_empty());
        assert_eq!(raised(&run(&pattern(1, 1_400_000, -30_000)).0).len(), 1);
    }

    #[test]
    fn an_early_beep_before_the_segment_is_found_in_the_lead_in() {
        let (_, m) = run(&pattern(1, 1_000_000, -60_000));
        assert!(
            (m.values[OFFSET].mean + 60.0).abs() < 0.05,
            "{:?}",
            m.values
        );
    }
}
