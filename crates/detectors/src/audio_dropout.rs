//! `audio_dropout`: audio missing from the timeline — packets lost in transport (MPEG-TS
//! over UDP) or rejected by the decoder leave a hole between one decoded block and the next.
//!
//! Blocks carry their own times (`AudioBlock::time_of`), so a hole is where a block starts
//! later than the one before it ends, by more than `min_gap_ms` (timestamps of a transport
//! stream jitter by a fraction of a millisecond; one lost AAC frame is 21 ms). The audio
//! lead-in shows what came just before the segment, so a hole across the segment's start is
//! seen; each hole is judged in the segment holding the block after it, so none is counted
//! twice. Holes longer than the audio lead-in (1 s) end up in silence's or input loss's
//! territory and are not measured here.

use vqa_core::config::AudioDropoutConfig;
use vqa_core::model::{AudioBlock, Segment};
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::join_within;

pub struct AudioDropoutDetector {
    min_gap: Micros,
    join_gap: Micros,
}

impl AudioDropoutDetector {
    pub fn new(config: &AudioDropoutConfig) -> Self {
        AudioDropoutDetector {
            min_gap: time::from_secs(config.min_gap_ms / 1000.0),
            join_gap: time::from_secs(config.clear_after),
        }
    }
}

impl Detector for AudioDropoutDetector {
    fn name(&self) -> DetectorName {
        DetectorName::AudioDropout
    }

    fn needs_pictures(&self) -> bool {
        false // audio only
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let mut blocks: Vec<&AudioBlock> = segment
            .audio_lead_in
            .iter()
            .chain(&segment.audio)
            .filter(|b| b.frames() > 0)
            .collect();
        blocks.sort_by_key(|b| b.time_of(0));
        let mut holes = Vec::new();
        for pair in blocks.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let (from, to) = (before.end(), after.time_of(0));
            if to - from <= self.min_gap || !(segment.start..segment.end).contains(&to) {
                continue;
            }
            let gap_ms = (to - from) as f64 / 1000.0;
            holes.push(Finding {
                kind: IncidentKind::AudioDropout,
                channel: None,
                start: from,
                end: to,
                reaches_end: false,
                starts_anew: false,
                level: Level::Raise,
                evidence: Evidence::from([("gap_ms".to_string(), Summary::of(gap_ms))]),
            });
        }
        join_within(holes, self.join_gap, segment.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{audio_segment, stereo_frames};
    use vqa_core::config::AudioDropoutConfig;

    /// An AAC frame's worth: 1024 samples at 48 kHz (21.3 ms).
    const FRAMES: usize = 1024;

    fn block(pts: Micros) -> AudioBlock {
        stereo_frames(pts, FRAMES, 0.1)
    }

    fn detect(seg: &Segment) -> Vec<(Micros, Micros)> {
        AudioDropoutDetector::new(&AudioDropoutConfig::default())
            .analyze(seg)
            .iter()
            .map(|f| (f.start, f.end))
            .collect()
    }

    /// The time of the `i`-th block from `start`, back to back.
    fn at(start: Micros, i: usize) -> Micros {
        start + (i * FRAMES) as Micros * 1_000_000 / 48_000
    }

    /// Blocks back to back from `start`, without those at `lost`.
    fn blocks(start: Micros, n: usize, lost: &[usize]) -> Vec<AudioBlock> {
        (0..n)
            .filter(|i| !lost.contains(i))
            .map(|i| block(at(start, i)))
            .collect()
    }

    #[test]
    fn a_lost_block_is_a_hole_where_it_was() {
        let whole = audio_segment(0, blocks(0, 46, &[]));
        assert!(detect(&whole).is_empty());
        let holed = audio_segment(0, blocks(0, 46, &[3, 4]));
        assert_eq!(detect(&holed), vec![(block(at(0, 2)).end(), at(0, 5))]);
        // Timestamp jitter under min_gap_ms is no hole.
        let mut jittery = blocks(0, 46, &[]);
        jittery[10].pts += 2_000;
        assert!(detect(&audio_segment(0, jittery)).is_empty());
    }

    #[test]
    fn a_hole_across_the_segment_start_is_judged_once_with_the_lead_in() {
        // The block just before the segment's start was lost: the lead-in ends early.
        let start = 1_000_000;
        let mut seg = audio_segment(1, blocks(start, 46, &[]));
        let lead_from = at(start, 0) - 4 * (at(0, 1));
        seg.audio_lead_in = blocks(lead_from, 3, &[]);
        let lead_end = seg.audio_lead_in[2].end();
        assert_eq!(detect(&seg), vec![(lead_end, start)]);
        // A hole inside the lead-in is the previous segment's: not reported again.
        let mut seg = audio_segment(1, blocks(start, 46, &[]));
        seg.audio_lead_in = blocks(at(start, 0) - 4 * at(0, 1), 4, &[1]);
        assert!(detect(&seg).is_empty());
    }
}
