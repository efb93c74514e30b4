//! `corruption`: pictures the decoder flagged as damaged (corrupt bitstream, missing
//! references, error concealment) and packets it rejected outright.
//!
//! The converter sets [`VideoFrame::corrupt`](vqa_core::VideoFrame) from FFmpeg's
//! `decode_error_flags` and `AV_FRAME_FLAG_CORRUPT`, and on the first picture decoded after a
//! rejected packet, so damage is placed in time to the frame. A segment whose decoder errors
//! produced no picture at all is reported whole.

use vqa_core::config::CorruptionConfig;
use vqa_core::model::Segment;
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;

pub struct CorruptionDetector {
    min_duration: Micros,
}

impl CorruptionDetector {
    pub fn new(config: &CorruptionConfig) -> Self {
        CorruptionDetector {
            min_duration: time::from_secs(config.min_duration),
        }
    }
}

impl Detector for CorruptionDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Corruption
    }

    fn needs_pictures(&self) -> bool {
        false // frame timestamps and flags only
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let mut runs = Runs::new(IncidentKind::Corruption, self.min_duration);
        for frame in &segment.video {
            let hit: &[(&str, f64)] = &[("corrupt_frames", 1.0)];
            runs.push(frame.pts, frame.end(), frame.corrupt.then_some(hit));
        }
        let mut findings = runs.finish();
        if findings.is_empty() && segment.decode_errors > 0 {
            let errors = f64::from(segment.decode_errors);
            findings.push(Finding {
                kind: IncidentKind::Corruption,
                channel: None,
                start: segment.start,
                end: segment.end,
                reaches_end: false,
                starts_anew: false,
                level: Level::Raise,
                evidence: Evidence::from([("decode_errors".to_string(), Summary::of(errors))]),
            });
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};

    #[test]
    fn flagged_frames_become_findings_and_clean_ones_do_not() {
        let frames = (0..25)
            .map(|n| {
                let mut f = frame(n * FRAME, |x, _| x as u8);
                f.corrupt = (10..13).contains(&n);
                f
            })
            .collect();
        let found = CorruptionDetector::new(&CorruptionConfig::default())
            .analyze(&video_segment(0, None, frames));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (10 * FRAME, 13 * FRAME));
        assert_eq!(found[0].evidence["corrupt_frames"].count, 3);
    }

    #[test]
    fn rejected_packets_without_a_picture_mark_the_segment() {
        let mut seg = video_segment(2, None, vec![]);
        seg.decode_errors = 4;
        let found = CorruptionDetector::new(&CorruptionConfig::default()).analyze(&seg);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (seg.start, seg.end));
        assert_eq!(found[0].evidence["decode_errors"].max, 4.0);
        let clean = video_segment(2, None, vec![frame(2_000_000, |_, _| 9)]);
        assert!(CorruptionDetector::new(&CorruptionConfig::default())
            .analyze(&clean)
            .is_empty());
    }
}
