//! `aspect_ratio`: the declared display aspect ratio (width × sample aspect ratio / height)
//! changing from one picture to the next — a stream switching its 16:9 / 4:3 signalling, or
//! its resolution without keeping the shape. The pair across the segment's start is judged
//! through the lead-in picture (the segment before's last), so a change at a segment edge
//! is found once. Reads no pixels.

use vqa_core::config::AspectRatioConfig;
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::{Detector, DetectorName};

pub struct AspectRatioDetector {
    tolerance: f64,
}

/// The picture's display aspect ratio as declared (square pixels when no sample aspect
/// ratio is).
pub fn display_aspect(frame: &VideoFrame) -> f64 {
    f64::from(frame.width) * frame.format.sar_value() / f64::from(frame.height.max(1))
}

impl AspectRatioDetector {
    pub fn new(config: &AspectRatioConfig) -> Self {
        AspectRatioDetector {
            tolerance: config.tolerance,
        }
    }
}

impl Detector for AspectRatioDetector {
    fn name(&self) -> DetectorName {
        DetectorName::AspectRatio
    }

    fn needs_pictures(&self) -> bool {
        false
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let pictures: Vec<&VideoFrame> = segment.lead_in.iter().chain(&segment.video).collect();
        pictures
            .windows(2)
            .filter_map(|pair| {
                let (was, now) = (display_aspect(pair[0]), display_aspect(pair[1]));
                if (now - was).abs() <= self.tolerance * was.max(now) {
                    return None;
                }
                let mut evidence = Evidence::new();
                evidence.insert("dar_before".into(), Summary::of(was));
                evidence.insert("dar".into(), Summary::of(now));
                evidence.insert("sar".into(), Summary::of(pair[1].format.sar_value()));
                Some(Finding {
                    kind: IncidentKind::AspectRatio,
                    channel: None,
                    start: pair[1].pts,
                    end: pair[1].end(),
                    reaches_end: false,
                    starts_anew: true,
                    level: Level::Raise,
                    evidence,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};

    fn picture(n: i64, sar: (u32, u32)) -> VideoFrame {
        let mut f = frame(n * FRAME, |_, _| 100);
        f.format.sar = sar;
        f
    }

    #[test]
    fn a_change_of_sample_aspect_ratio_is_found_at_its_picture_and_across_the_edge() {
        let d = AspectRatioDetector::new(&AspectRatioConfig::default());
        // 64x36 is 16:9 with square pixels; SAR 3:4 makes it 4:3.
        let frames = (0..25)
            .map(|n| picture(n, if n < 10 { (1, 1) } else { (3, 4) }))
            .collect();
        let found = d.analyze(&video_segment(0, None, frames));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start, found[0].end), (10 * FRAME, 11 * FRAME));
        assert!((found[0].evidence["dar_before"].mean - 16.0 / 9.0).abs() < 1e-9);
        assert!((found[0].evidence["dar"].mean - 4.0 / 3.0).abs() < 1e-9);
        // The segment after: the lead-in says what the ratio was.
        let lead_in = Some(picture(24, (3, 4)));
        let frames = (25..50).map(|n| picture(n, (1, 1))).collect();
        let found = d.analyze(&video_segment(1, lead_in, frames));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].start, 25 * FRAME);
    }

    #[test]
    fn undeclared_and_square_are_alike_and_a_steady_ratio_raises_nothing() {
        let d = AspectRatioDetector::new(&AspectRatioConfig::default());
        let frames = (0..25)
            .map(|n| picture(n, if n % 2 == 0 { (0, 1) } else { (1, 1) }))
            .collect();
        assert!(d.analyze(&video_segment(0, None, frames)).is_empty());
        let frames = (0..25).map(|n| picture(n, (4, 3))).collect();
        assert!(d
            .analyze(&video_segment(0, Some(picture(-1, (4, 3))), frames))
            .is_empty());
    }
}
