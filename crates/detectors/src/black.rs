//! `black`: (nearly) entirely black frames.
//!
//! Like FFmpeg's blackdetect, a pixel is black when its luma is at most `pixel_threshold` of
//! the way from the black level to the white level (which depend on the frame's luma range),
//! and a frame is black when at least `picture_ratio` of its pixels are.
//!
//! Every frame's share of black pixels is also a measurement ([`RATIO`]) for the per-second
//! graph of `vqa analyze --html`: exact for a black frame, and for one other frame in
//! [`MEASURED_EVERY`] from one row in [`MEASURED_ROW_STEP`] (the judgement stops early on a
//! bright picture; a graph of a point per second needs no more).

use vqa_core::config::BlackConfig;
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Finding, IncidentKind, Measurements};
use vqa_core::{time, Detector, DetectorName};

use crate::runs::Runs;

/// Measurement: share of a frame's pixels that are black, 0 to 1.
pub const RATIO: &str = "black.ratio";

/// The measured share of a frame that is not black comes from one row in this many.
const MEASURED_ROW_STEP: usize = 8;
/// Of the frames not judged black, one in this many is measured.
const MEASURED_EVERY: usize = 5;

pub struct BlackDetector {
    pixel_threshold: f64,
    picture_ratio: f64,
    min_duration: i64,
}

/// What a black frame looked like.
pub(crate) struct BlackFrame {
    pub ratio: f64,
    pub mean_luma: f64,
}

impl BlackDetector {
    pub fn new(config: &BlackConfig) -> Self {
        BlackDetector {
            pixel_threshold: config.pixel_threshold,
            picture_ratio: config.picture_ratio,
            min_duration: time::from_secs(config.min_duration),
        }
    }

    /// The luma at or below which a pixel of this frame is black.
    fn threshold(&self, frame: &VideoFrame) -> u8 {
        let (black, white) = frame.range.black_white();
        (black as f64 + self.pixel_threshold * (white - black) as f64).floor() as u8
    }

    /// The share of black pixels, from one row in [`MEASURED_ROW_STEP`].
    fn sampled_ratio(&self, frame: &VideoFrame) -> Option<f64> {
        let threshold = self.threshold(frame);
        let (mut bright, mut rows) = (0u64, 0u64);
        for row in frame.rows().step_by(MEASURED_ROW_STEP) {
            bright += row_stats(row, threshold).0;
            rows += 1;
        }
        let pixels = rows * u64::from(frame.width);
        (pixels > 0).then(|| 1.0 - bright as f64 / pixels as f64)
    }

    pub(crate) fn black_frame(&self, frame: &VideoFrame) -> Option<BlackFrame> {
        let threshold = self.threshold(frame);
        let pixels = frame.width as u64 * frame.height as u64;
        // Stop once too many bright pixels were seen for the frame to be black.
        let max_bright = pixels - (self.picture_ratio * pixels as f64).ceil() as u64;
        let (mut bright, mut sum) = (0u64, 0u64);
        for row in frame.rows() {
            let (b, s) = row_stats(row, threshold);
            bright += b;
            sum += s;
            if bright > max_bright {
                return None;
            }
        }
        Some(BlackFrame {
            ratio: 1.0 - bright as f64 / pixels as f64,
            mean_luma: sum as f64 / pixels as f64,
        })
    }
}

/// Pixels above `threshold`, and the sum of all pixel values, of one row.
fn row_stats(row: &[u8], threshold: u8) -> (u64, u64) {
    const LANES: usize = 64;
    let (mut bright, mut sum) = (0u64, 0u64);
    let chunks = row.chunks_exact(LANES);
    for &p in chunks.remainder() {
        bright += (p > threshold) as u64;
        sum += p as u64;
    }
    for chunk in chunks {
        let (mut b, mut s) = (0u32, 0u32);
        for &p in chunk {
            b += (p > threshold) as u32;
            s += p as u32;
        }
        bright += b as u64;
        sum += s as u64;
    }
    (bright, sum)
}

impl Detector for BlackDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Black
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let mut runs = Runs::new(IncidentKind::Black, self.min_duration);
        for (k, frame) in segment.video.iter().enumerate() {
            match self.black_frame(frame) {
                Some(b) => {
                    m.add(RATIO, b.ratio);
                    runs.push(
                        frame.pts,
                        frame.end(),
                        Some(&[("black_ratio", b.ratio), ("mean_luma", b.mean_luma)]),
                    )
                }
                None => {
                    if let Some(ratio) = (k.is_multiple_of(MEASURED_EVERY))
                        .then(|| self.sampled_ratio(frame))
                        .flatten()
                    {
                        m.add(RATIO, ratio);
                    }
                    runs.push(frame.pts, frame.end(), None)
                }
            }
        }
        runs.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};
    use vqa_core::model::LumaRange;

    fn detector() -> BlackDetector {
        BlackDetector::new(&BlackConfig::default())
    }

    #[test]
    fn black_frames_with_a_little_noise_or_a_small_logo_are_black() {
        // TV black (16) with noise up to 30 (threshold 16 + 0.1 * 219 = 37) and a 2% logo.
        let f = |n: i64| {
            frame(n * FRAME, move |x, y| {
                if x < 6 && y < 7 {
                    200
                } else {
                    16 + ((x * 7 + y * 3 + n as usize) % 15) as u8
                }
            })
        };
        let found = detector().analyze(&video_segment(0, None, (0..25).map(f).collect()));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (0, 25 * FRAME));
        let ratio = found[0].evidence["black_ratio"];
        assert!(ratio.min >= 0.98 && ratio.max < 1.0, "{ratio:?}");
    }

    #[test]
    fn dark_scenes_and_large_bright_areas_are_not_black() {
        let dark = |n: i64| frame(n * FRAME, |_, _| 45);
        assert!(detector()
            .analyze(&video_segment(0, None, (0..25).map(dark).collect()))
            .is_empty());
        let half = |n: i64| frame(n * FRAME, |x, _| if x < 32 { 16 } else { 180 });
        assert!(detector()
            .analyze(&video_segment(0, None, (0..25).map(half).collect()))
            .is_empty());
    }

    #[test]
    fn black_frames_and_one_other_in_five_are_measured() {
        // Ten black frames, then fifteen with the left quarter black.
        let f = |n: i64| {
            frame(
                n * FRAME,
                move |x, _| if n < 10 || x < 16 { 16 } else { 180 },
            )
        };
        let mut m = Measurements::default();
        detector().analyze_measuring(&video_segment(0, None, (0..25).map(f).collect()), &mut m);
        let s = m.values[RATIO];
        // The ten black frames, and frames 10, 15 and 20 of the others.
        assert_eq!(s.count, 13);
        assert_eq!((s.min, s.max), (0.25, 1.0));
        assert!((s.mean - (10.0 + 3.0 * 0.25) / 13.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn the_threshold_follows_the_luma_range() {
        // 30 is black in TV range (threshold 37) but not in full range (threshold 25).
        let mk = |range| {
            let mut f = frame(0, |_, _| 30);
            f.range = range;
            video_segment(0, None, vec![f])
        };
        assert_eq!(detector().analyze(&mk(LumaRange::Limited)).len(), 1);
        assert!(detector().analyze(&mk(LumaRange::Full)).is_empty());
    }

    #[test]
    fn a_black_run_inside_the_segment_spans_first_black_to_end_of_last_black() {
        let frames = (0..25)
            .map(|n| {
                frame(n * FRAME, move |x, _| {
                    if (5..20).contains(&n) {
                        16
                    } else {
                        (x * 3) as u8 + 40
                    }
                })
            })
            .collect();
        let found = detector().analyze(&video_segment(0, None, frames));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (5 * FRAME, 20 * FRAME));
        assert_eq!(found[0].evidence["mean_luma"].mean, 16.0);
    }
}
