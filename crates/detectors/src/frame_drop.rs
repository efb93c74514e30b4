//! `frame_drop`: gaps, jumps and reversals in the video timestamps.
//!
//! The nominal frame step is the median step between the segment's frames (the lead-in frame
//! included), so variable-rate metadata and a container's stretched duration for the frame
//! before a gap do not hide the gap. A step longer than `max_gap_frames` nominal steps is a
//! drop covering the missing frames' time; a step that does not advance is a reversal. Each
//! step is judged in the segment holding its later frame, so none is counted twice.

use vqa_core::config::FrameDropConfig;
use vqa_core::model::Segment;
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::{Detector, DetectorName, Micros};

use crate::runs::join_within;

pub struct FrameDropDetector {
    max_gap_frames: f64,
    join_gap: Micros,
}

impl FrameDropDetector {
    pub fn new(config: &FrameDropConfig) -> Self {
        FrameDropDetector {
            max_gap_frames: config.max_gap_frames,
            join_gap: vqa_core::time::from_secs(config.clear_after),
        }
    }
}

fn median(mut v: Vec<Micros>) -> Option<Micros> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

impl Detector for FrameDropDetector {
    fn name(&self) -> DetectorName {
        DetectorName::FrameDrop
    }

    fn needs_pictures(&self) -> bool {
        false // frame timestamps and flags only
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let frames: Vec<_> = segment.lead_in.iter().chain(&segment.video).collect();
        let steps: Vec<Micros> = frames.windows(2).map(|w| w[1].pts - w[0].pts).collect();
        let positive: Vec<Micros> = steps.iter().copied().filter(|&s| s > 0).collect();
        // Few frames (a short or gappy segment): fall back on the frames' own durations.
        let nominal = if positive.len() >= 3 {
            median(positive)
        } else {
            median(
                frames
                    .iter()
                    .map(|f| f.duration)
                    .chain(positive)
                    .filter(|&d| d > 0)
                    .collect(),
            )
            .map(|m| m.min(frames.iter().map(|f| f.duration).min().unwrap_or(m).max(1)))
        };
        let Some(nominal) = nominal else {
            return Vec::new();
        };
        let mut findings: Vec<Finding> = Vec::new();
        for (pair, &step) in frames.windows(2).zip(&steps) {
            let (prev, cur) = (pair[0], pair[1]);
            let (start, end, evidence) = if step <= 0 {
                let back = (-step) as f64 / 1000.0;
                (
                    cur.pts,
                    cur.pts + nominal,
                    Evidence::from([("backwards_ms".to_string(), Summary::of(back))]),
                )
            } else if step as f64 > self.max_gap_frames * nominal as f64 {
                let missing = (step as f64 / nominal as f64).round() - 1.0;
                (
                    prev.pts + nominal,
                    cur.pts,
                    Evidence::from([
                        ("missing_frames".to_string(), Summary::of(missing.max(1.0))),
                        ("gap_ms".to_string(), Summary::of(step as f64 / 1000.0)),
                    ]),
                )
            } else {
                continue;
            };
            findings.push(Finding {
                kind: IncidentKind::FrameDrop,
                channel: None,
                start,
                end,
                reaches_end: false,
                starts_anew: false,
                level: Level::Raise,
                evidence,
            });
        }
        join_within(findings, self.join_gap, segment.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};

    fn seg(pts: &[i64], lead: Option<i64>) -> Segment {
        let f = |p: i64| frame(p, |x, _| x as u8);
        video_segment(0, lead.map(f), pts.iter().map(|&p| f(p)).collect())
    }

    fn detector() -> FrameDropDetector {
        FrameDropDetector::new(&FrameDropConfig::default())
    }

    #[test]
    fn steady_frames_are_fine() {
        let pts: Vec<i64> = (0..25).map(|n| n * FRAME).collect();
        assert!(detector().analyze(&seg(&pts, None)).is_empty());
    }

    #[test]
    fn missing_frames_are_a_gap_over_their_time() {
        // Frames 3..=7 missing.
        let pts: Vec<i64> = (0..25)
            .filter(|n| !(3..8).contains(n))
            .map(|n| n * FRAME)
            .collect();
        let found = detector().analyze(&seg(&pts, None));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start, found[0].end), (3 * FRAME, 8 * FRAME));
        assert_eq!(found[0].evidence["missing_frames"].max, 5.0);
        assert!(!found[0].reaches_end);
    }

    #[test]
    fn a_gap_across_the_segment_edge_is_seen_through_the_lead_in_frame() {
        let pts: Vec<i64> = (3..25).map(|n| n * FRAME).collect();
        let found = detector().analyze(&seg(&pts, Some(-FRAME)));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (0, 3 * FRAME));
    }

    #[test]
    fn time_going_backwards_is_reported() {
        let mut pts: Vec<i64> = (0..25).map(|n| n * FRAME).collect();
        pts[12] = 5 * FRAME;
        let found = detector().analyze(&seg(&pts, None));
        // The step back and the jump forward again are one incident.
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].evidence["backwards_ms"].max, 240.0);
    }
}
