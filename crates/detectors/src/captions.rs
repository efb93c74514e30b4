//! `captions`: closed captions (CEA-608/708 in ATSC A/53 picture user data) absent.
//!
//! The converter sets [`VideoFrame::captions`](vqa_core::VideoFrame) from each decoded
//! picture's A/53 `cc_data` ([`vqa_core::captions`]: padding is not captions). This detector
//! reports the spans of the segment whose pictures carried none, and measures the share of
//! pictures that carried each service ([`CEA608_SHARE`], [`CEA708_SHARE`]): the stream's
//! "captions present". Whether an absence is a loss — captions were there before it, or
//! `captions.required` — spans segments, so the aggregator judges it (it remembers the
//! services last seen); a span that follows captions within the segment names them in its
//! evidence (`cea608`, `cea708`).
//!
//! Spans are cut at the segment's edges rather than at the first and last picture's times,
//! and each picture counts up to the next one's time, so that absence continuing from one
//! segment to the next joins exactly whatever the pictures' timestamps' rounding, and a
//! dropped picture does not restart the count towards `min_duration`.

use vqa_core::captions::{Captions, CEA608, CEA608_SHARE, CEA708, CEA708_SHARE};
use vqa_core::config::CaptionsConfig;
use vqa_core::model::Segment;
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Measurements};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;

pub struct CaptionsDetector {
    min_duration: Micros,
}

impl CaptionsDetector {
    pub fn new(config: &CaptionsConfig) -> Self {
        CaptionsDetector {
            min_duration: time::from_secs(config.min_duration),
        }
    }
}

impl Detector for CaptionsDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Captions
    }

    fn needs_pictures(&self) -> bool {
        false // the pictures' caption flags only
    }

    fn analyze_measuring(
        &self,
        segment: &Segment,
        measurements: &mut Measurements,
    ) -> Vec<Finding> {
        if !segment.has_video {
            return Vec::new();
        }
        if segment.video.is_empty() {
            // Pictures missing (the decoder produced none): no captions either.
            return vec![Finding {
                kind: IncidentKind::Captions,
                channel: None,
                start: segment.start,
                end: segment.end,
                reaches_end: true,
                starts_anew: false,
                level: Level::Raise,
                evidence: Evidence::new(),
            }];
        }
        const AFTER_608: &[(&str, f64)] = &[(CEA608, 1.0)];
        const AFTER_708: &[(&str, f64)] = &[(CEA708, 1.0)];
        const AFTER_BOTH: &[(&str, f64)] = &[(CEA608, 1.0), (CEA708, 1.0)];
        let mut runs = Runs::new(IncidentKind::Captions, self.min_duration);
        // The services of the last picture in the segment that carried captions.
        let mut last = Captions::NONE;
        let (mut with_608, mut with_708) = (0u32, 0u32);
        for (i, frame) in segment.video.iter().enumerate() {
            // Up to the next picture: a picture missing between two without captions
            // carried none either, and does not split their span.
            let next = segment.video.get(i + 1).map_or(frame.end(), |f| f.pts);
            let c = frame.captions;
            with_608 += u32::from(c.cea608);
            with_708 += u32::from(c.cea708);
            let hit: Option<&[(&str, f64)]> = if c.any() {
                last = c;
                None
            } else {
                Some(match (last.cea608, last.cea708) {
                    (true, true) => AFTER_BOTH,
                    (true, false) => AFTER_608,
                    (false, true) => AFTER_708,
                    (false, false) => &[],
                })
            };
            runs.push(frame.pts, frame.end().max(next), hit);
        }
        let pictures = segment.video.len() as f64;
        measurements.add(CEA608_SHARE, f64::from(with_608) / pictures);
        measurements.add(CEA708_SHARE, f64::from(with_708) / pictures);
        let first = segment.video[0].pts;
        let mut findings = runs.finish();
        for f in &mut findings {
            if f.start == first && !f.starts_anew {
                f.start = segment.start.min(f.start);
            }
            if f.reaches_end {
                f.end = segment.end.max(f.end);
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};
    use vqa_core::Summary;

    const S608: Captions = Captions {
        cea608: true,
        cea708: false,
    };
    const S708: Captions = Captions {
        cea608: false,
        cea708: true,
    };

    /// Segment `index` (1 s, 25 pictures) whose picture `n` carries `captions(n)`.
    fn segment(index: u64, captions: impl Fn(i64) -> Captions) -> Segment {
        let base = index as i64 * 25;
        let frames = (0..25)
            .map(|n| {
                let mut f = frame((base + n) * FRAME, |_, _| 16);
                f.captions = captions(n);
                f
            })
            .collect();
        video_segment(index, None, frames)
    }

    fn run(segment: &Segment) -> (Vec<Finding>, Measurements) {
        let mut m = Measurements::default();
        let found =
            CaptionsDetector::new(&CaptionsConfig::default()).analyze_measuring(segment, &mut m);
        (found, m)
    }

    #[test]
    fn captions_throughout_find_nothing_and_measure_their_share() {
        let (found, m) = run(&segment(3, |_| S608));
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(m.values[CEA608_SHARE], Summary::of(1.0));
        assert_eq!(m.values[CEA708_SHARE], Summary::of(0.0));
    }

    #[test]
    fn a_loss_inside_the_segment_starts_anew_and_names_the_service() {
        let seg = segment(2, |n| if n < 10 { S708 } else { Captions::NONE });
        let (found, m) = run(&seg);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!((f.start, f.end), ((50 + 10) * FRAME, seg.end));
        assert!(f.reaches_end && f.starts_anew);
        assert!(f.evidence.contains_key(CEA708) && !f.evidence.contains_key(CEA608));
        assert_eq!(m.values[CEA708_SHARE].max, 0.4);
    }

    #[test]
    fn absence_throughout_spans_the_segment_without_services() {
        let seg = segment(4, |_| Captions::NONE);
        let (found, _) = run(&seg);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!((f.start, f.end), (seg.start, seg.end));
        assert!(f.reaches_end && !f.starts_anew);
        assert!(f.evidence.is_empty(), "{:?}", f.evidence);
    }

    #[test]
    fn returning_captions_end_the_span_and_short_gaps_inside_are_dropped() {
        // Absent for the first 5 pictures (continuing), a 3-picture gap inside, then
        // captions to the end.
        let seg = segment(1, |n| {
            if n < 5 || (12..15).contains(&n) {
                Captions::NONE
            } else {
                S608
            }
        });
        let (found, _) = run(&seg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].start, found[0].end),
            (seg.start, (25 + 5) * FRAME)
        );
        assert!(!found[0].reaches_end);
    }

    #[test]
    fn a_missing_picture_does_not_split_an_absence() {
        let mut seg = segment(0, |_| Captions::NONE);
        seg.video.remove(12);
        let (found, _) = run(&seg);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start, found[0].end), (seg.start, seg.end));
    }

    #[test]
    fn no_pictures_no_captions_and_no_video_no_judgement() {
        let empty = video_segment(5, None, vec![]);
        let (found, m) = run(&empty);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (empty.start, empty.end));
        assert!(m.is_empty());
        let audio_only = Segment {
            has_video: false,
            ..empty
        };
        assert!(run(&audio_only).0.is_empty());
    }
}
