//! `freeze`: the picture stops changing.
//!
//! Like FFmpeg's freezedetect, a frame is "the same" as the first frame of the run it would
//! continue when their mean absolute luma difference is below the noise level (-60 dB of
//! full scale by default). Comparing with the run's first frame rather than the frame just
//! before lets slow motion add up: a slow pan or zoom over a still (a few hundredths of a
//! code value a frame, less than the noise level) leaves the first frame behind within a
//! second, where frame-to-frame differences alone would call all of it frozen. A freeze
//! over frames F..L (all equal to F) is reported as `[pts(F), end(L))`. The segment's
//! lead-in frame makes the pair straddling the segment boundary visible; the reference
//! starts again from it in each segment, and the aggregator carries the run's drift over
//! segment edges (each finding's largest `mafd` from its reference, summed: an upper
//! bound), ending the run where the sum passes the noise level. A run that starts with a
//! changed picture says so (`starts_anew`): it touches the run before it, which it does
//! not continue.
//!
//! A keyframe inside a freeze re-encodes the still picture and so differs from the frame
//! before it by compression noise; a pair from an inter-coded frame to a keyframe is the same
//! up to the looser `keyframe_noise_db`, so such a freeze is not cut in pieces at every
//! keyframe. The comparison goes on from the keyframe, the drift up to it carried (the
//! pairs' `mafd` within a freeze is the drift from its first frame so far): a picture
//! creeping over keyframes still adds up, as it does with FFmpeg's freezedetect, which has
//! no keyframe tolerance. In intra-only streams (every frame a keyframe) the strict level
//! applies.
//!
//! An unchanging black picture is black, not frozen: unless `include_black` is set, pairs of
//! black frames (by the black detector's criteria) are not counted as frozen.
//!
//! Every pair's difference is also a measurement ([`MAFD`]), for the per-second graph of
//! `vqa analyze --html`: exact for a pair judged frozen, and for one other pair in
//! [`MEASURED_EVERY`] from one row in [`MEASURED_ROW_STEP`] (the judgement stops early on
//! changing pictures, so the full difference is not at hand; a graph of a point per second
//! needs no more, and the estimate would otherwise cost more than the judgement).

use vqa_core::config::{db_to_ratio, BlackConfig, FreezeConfig};
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Finding, IncidentKind, Measurements};
use vqa_core::{time, Detector, DetectorName};

use crate::black::BlackDetector;
use crate::runs::Runs;

/// Measurement: mean absolute luma difference of a frame from the one before (within a
/// freeze, its drift from the freeze's first frame: see [`FreezeDetector`]), 8-bit code
/// values.
pub const MAFD: &str = "freeze.mafd";

/// The measured difference of a changing pair comes from one row in this many.
const MEASURED_ROW_STEP: usize = 8;
/// Of the pairs not judged frozen, one in this many is measured.
const MEASURED_EVERY: usize = 5;

pub struct FreezeDetector {
    /// Largest mean absolute difference, in 8-bit code values, that counts as no change.
    max_mafd: f64,
    /// The same, for a pair whose second frame is a keyframe.
    keyframe_max_mafd: f64,
    min_duration: i64,
    /// Set when black pictures are not freezes: tells which they are.
    black: Option<BlackDetector>,
}

impl FreezeDetector {
    pub fn new(config: &FreezeConfig, black: &BlackConfig) -> Self {
        FreezeDetector {
            max_mafd: db_to_ratio(config.noise_db) * 255.0,
            keyframe_max_mafd: db_to_ratio(config.noise_db.max(config.keyframe_noise_db)) * 255.0,
            min_duration: time::from_secs(config.min_duration),
            black: (!config.include_black).then(|| BlackDetector::new(black)),
        }
    }

    /// Judges frame `b` against `reference`, the first frame of the run it would continue
    /// or the last keyframe that refreshed it, `carried` being how far the picture had
    /// drifted from the run's first frame by then (`a`, the frame just before `b`, tells
    /// whether `b` refreshes an inter-coded picture). A frozen pair's value is the drift so
    /// far: `carried` plus `b`'s difference from `reference`.
    fn judge(&self, reference: &VideoFrame, carried: f64, a: &VideoFrame, b: &VideoFrame) -> Pair {
        // Only a keyframe after an inter-coded frame is a refresh: in intra-only streams every
        // frame is a keyframe and the strict level applies.
        let refresh = b.keyframe && !a.keyframe;
        let max = if refresh {
            self.keyframe_max_mafd
        } else {
            self.max_mafd - carried
        };
        // Checked only for frozen pairs, which are rare: the black test scans the frame.
        match self
            .frozen_mafd(reference, b, max)
            .filter(|_| !self.is_black(b))
        {
            Some(mafd) if carried + mafd <= self.max_mafd => Pair::Frozen(carried + mafd),
            Some(mafd) => Pair::Refresh(mafd),
            None => Pair::Changed,
        }
    }

    /// Whether the frame is black and black pictures are not to be reported as freezes.
    fn is_black(&self, frame: &VideoFrame) -> bool {
        self.black
            .as_ref()
            .is_some_and(|d| d.black_frame(frame).is_some())
    }

    /// The mean absolute difference of two frames if it is at most `max_mafd`.
    fn frozen_mafd(&self, a: &VideoFrame, b: &VideoFrame, max_mafd: f64) -> Option<f64> {
        if (a.width, a.height) != (b.width, b.height) {
            return None;
        }
        let pixels = a.width as u64 * a.height as u64;
        // Stop as soon as the frames are clearly different: moving pictures cost a few rows.
        let limit = (max_mafd * pixels as f64) as u64;
        let mut sad = 0u64;
        for (ra, rb) in a.rows().zip(b.rows()) {
            sad += row_sad(ra, rb);
            if sad > limit {
                return None;
            }
        }
        Some(sad as f64 / pixels as f64)
    }
}

/// The mean absolute difference of two frames estimated from one row in
/// [`MEASURED_ROW_STEP`]; `None` for frames of different sizes.
fn sampled_mafd(a: &VideoFrame, b: &VideoFrame) -> Option<f64> {
    if (a.width, a.height) != (b.width, b.height) || a.width == 0 || a.height == 0 {
        return None;
    }
    let (mut sad, mut rows) = (0u64, 0u64);
    for (ra, rb) in a.rows().zip(b.rows()).step_by(MEASURED_ROW_STEP) {
        sad += row_sad(ra, rb);
        rows += 1;
    }
    Some(sad as f64 / (rows * u64::from(a.width)) as f64)
}

/// Sum of absolute differences of two rows, in a shape the compiler vectorises (psadbw).
fn row_sad(a: &[u8], b: &[u8]) -> u64 {
    const LANES: usize = 64;
    let mut total = 0u64;
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: u64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x.abs_diff(*y) as u64)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        let mut acc = 0u32;
        for i in 0..LANES {
            acc += xa[i].abs_diff(xb[i]) as u32;
        }
        total += acc as u64;
    }
    total + tail
}

/// What a pair of consecutive frames shows.
#[derive(Clone, Copy)]
enum Pair {
    /// The same picture (mean absolute difference given).
    Frozen(f64),
    /// The same picture up to keyframe re-encoding noise: frozen if the pairs around it are.
    Refresh(f64),
    Changed,
}

impl Detector for FreezeDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Freeze
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let mut runs = Runs::new(IncidentKind::Freeze, self.min_duration);
        let frames: Vec<&VideoFrame> = segment.lead_in.iter().chain(&segment.video).collect();
        let pairs: Vec<(&VideoFrame, &VideoFrame)> =
            frames.windows(2).map(|w| (w[0], w[1])).collect();
        // Each frame against the first frame of the run it would continue: a changed frame
        // starts the next comparison. So does a keyframe re-encoding the still picture (the
        // frames after it predict from it, not from the picture before), but the drift up to
        // it is carried: a picture creeping across keyframes still adds up.
        let mut reference = frames.first().copied();
        let (mut drift, mut carried) = (0.0, 0.0);
        let verdicts: Vec<Pair> = pairs
            .iter()
            .map(|&(a, b)| {
                let verdict = self.judge(reference.unwrap_or(a), carried, a, b);
                match verdict {
                    Pair::Frozen(so_far) => drift = so_far,
                    Pair::Refresh(_) => {
                        carried = drift;
                        reference = Some(b);
                    }
                    Pair::Changed => {
                        (drift, carried) = (0.0, 0.0);
                        reference = Some(b);
                    }
                }
                verdict
            })
            .collect();
        for (k, ((a, b), verdict)) in pairs.iter().zip(&verdicts).enumerate() {
            let mafd = match *verdict {
                Pair::Frozen(mafd) | Pair::Refresh(mafd) => Some(mafd),
                Pair::Changed if k.is_multiple_of(MEASURED_EVERY) => sampled_mafd(a, b),
                Pair::Changed => None,
            };
            if let Some(mafd) = mafd {
                m.add(MAFD, mafd);
            }
        }
        let frozen_at = |i: Option<usize>| {
            i.and_then(|i| verdicts.get(i))
                .map(|v| matches!(v, Pair::Frozen(_)))
        };
        for (i, ((a, b), verdict)) in pairs.iter().zip(&verdicts).enumerate() {
            match *verdict {
                Pair::Frozen(mafd) => runs.push(a.pts, b.end(), Some(&[("mafd", mafd)])),
                Pair::Changed => runs.push(a.pts, b.end(), None),
                // A keyframe bridges a freeze only between frozen pairs; at the segment's edge
                // one side is in the neighbouring segment and the aggregator decides.
                Pair::Refresh(mafd) => {
                    match (frozen_at(i.checked_sub(1)), frozen_at(Some(i + 1))) {
                        (Some(true), Some(true)) => {
                            runs.push(a.pts, b.end(), Some(&[("keyframe_mafd", mafd)]))
                        }
                        (Some(false), _) | (_, Some(false)) => runs.push(a.pts, b.end(), None),
                        _ => runs.push_undecided(),
                    }
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

    fn moving(n: i64) -> VideoFrame {
        frame(n * FRAME, move |x, y| {
            ((x + y + 3 * n as usize) % 200) as u8 + 16
        })
    }

    fn still(n: i64) -> VideoFrame {
        frame(n * FRAME, |x, y| ((x * y) % 200) as u8 + 16)
    }

    /// One segment of 25 frames, moving except for the still frames in `still_frames`.
    fn still_during(still_frames: std::ops::Range<i64>) -> Vec<VideoFrame> {
        (0..25)
            .map(|n| {
                if still_frames.contains(&n) {
                    still(n)
                } else {
                    moving(n)
                }
            })
            .collect()
    }

    fn detector() -> FreezeDetector {
        FreezeDetector::new(&FreezeConfig::default(), &BlackConfig::default())
    }

    #[test]
    fn identical_frames_inside_a_segment_are_a_freeze_from_first_to_end_of_last() {
        // frames 0..4 move, 5..19 identical, 20..24 move: 0.6 s, reported with a 0.5 s minimum
        let frames = still_during(5..20);
        let half_second = FreezeConfig {
            min_duration: 0.5,
            ..FreezeConfig::default()
        };
        let f = FreezeDetector::new(&half_second, &BlackConfig::default())
            .analyze(&video_segment(0, None, frames));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].start, f[0].end), (5 * FRAME, 20 * FRAME));
        assert_eq!(f[0].evidence["mafd"].max, 0.0);
        assert_eq!(f[0].evidence["mafd"].count, 14);
    }

    #[test]
    fn a_freeze_continuing_from_the_previous_segment_starts_at_the_lead_in() {
        let frames = (25..50)
            .map(|n| if n < 30 { still(n) } else { moving(n) })
            .collect();
        let f = detector().analyze(&video_segment(1, Some(still(24)), frames));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].start, f[0].end), (24 * FRAME, 30 * FRAME));
    }

    #[test]
    fn a_freeze_of_the_next_picture_starts_anew_where_the_first_ends() {
        // Picture A for frames 0..10, picture B from frame 10: two runs that touch (each
        // compared with its own first frame); the second says it starts anew, so the
        // aggregator does not take them for one.
        let other = |n: i64| frame(n * FRAME, |x, y| ((x + 2 * y) % 150) as u8 + 40);
        let frames = (0..25)
            .map(|n| if n < 10 { still(n) } else { other(n) })
            .collect();
        let f = detector().analyze(&video_segment(0, None, frames));
        let runs: Vec<(i64, i64, bool)> =
            f.iter().map(|f| (f.start, f.end, f.starts_anew)).collect();
        assert_eq!(
            runs,
            vec![(0, 10 * FRAME, false), (10 * FRAME, 25 * FRAME, true)]
        );
    }

    #[test]
    fn changes_below_the_noise_floor_are_still_a_freeze_changes_above_are_not() {
        // One pixel changed by 1 level in 64x36: mafd 0.0004, far below 0.255.
        let tiny = |n: i64| {
            frame(n * FRAME, move |x, y| {
                if (x, y) == (0, 0) {
                    16 + (n % 2) as u8
                } else {
                    100
                }
            })
        };
        let f = detector().analyze(&video_segment(0, None, (0..25).map(tiny).collect()));
        assert_eq!(f.len(), 1);
        // A 10% brightness step across half the frame is change.
        let step = |n: i64| {
            frame(n * FRAME, move |x, _| {
                if x < 32 {
                    100 + (n % 2) as u8 * 25
                } else {
                    100
                }
            })
        };
        assert!(detector()
            .analyze(&video_segment(0, None, (0..25).map(step).collect()))
            .is_empty());
    }

    #[test]
    fn a_pan_slower_than_the_noise_level_per_frame_is_no_freeze() {
        // Each frame moves 1 more pixel in 10 up by one level: 0.1 code values from the
        // frame before (below the 0.255 noise level), but 1.0 from the first after ten
        // frames. FFmpeg's freezedetect compares with the freeze's first frame too.
        let drifting = |n: i64| {
            frame(n * FRAME, move |x, y| {
                let i = (y * 64 + x) as i64;
                100 + u8::from(i % 10 < n % 10) + (n / 10) as u8
            })
        };
        let frames: Vec<VideoFrame> = (0..25).map(drifting).collect();
        let consecutive = sampled_mafd(&frames[3], &frames[4]).unwrap();
        assert!(consecutive < 0.255, "{consecutive}");
        // Only the first few frames, at the segment's edge, wait for the aggregator (the
        // run might go on from the segment before); compared frame to frame, all 25 were
        // one freeze.
        let found = detector().analyze(&video_segment(0, None, frames));
        assert!(
            found.iter().all(|f| f.start == 0 && f.end <= 3 * FRAME),
            "{found:?}"
        );
    }

    #[test]
    fn inner_freezes_shorter_than_the_minimum_are_not_findings() {
        let frames = still_during(5..20);
        assert!(detector()
            .analyze(&video_segment(0, None, frames))
            .is_empty());
    }

    #[test]
    fn a_keyframe_re_encoding_the_still_picture_does_not_cut_the_freeze() {
        // A still picture; frame 12 is 3 code values brighter everywhere (-39 dB).
        #[derive(PartialEq)]
        enum Keyframes {
            None,
            Twelfth,
            All,
        }
        let refreshed = |keyframes: Keyframes| {
            let frames = (0..25)
                .map(|n| {
                    let mut f = frame(n * FRAME, move |x, y| {
                        ((x * y) % 200) as u8 + 16 + 3 * (n >= 12) as u8
                    });
                    f.keyframe =
                        keyframes == Keyframes::All || (keyframes == Keyframes::Twelfth && n == 12);
                    f
                })
                .collect();
            detector().analyze(&video_segment(0, None, frames))
        };
        let f = refreshed(Keyframes::Twelfth);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].start, f[0].end), (0, 25 * FRAME));
        assert_eq!(f[0].evidence["keyframe_mafd"].max, 3.0);
        assert_eq!(f[0].evidence["mafd"].max, 0.0);
        // The same change on an ordinary frame, or in an intra-only stream where every frame
        // is a keyframe, is a change: two pieces, one at each edge.
        for keyframes in [Keyframes::None, Keyframes::All] {
            let f = refreshed(keyframes);
            let spans: Vec<_> = f.iter().map(|f| (f.start, f.end)).collect();
            assert_eq!(spans, vec![(0, 12 * FRAME), (12 * FRAME, 25 * FRAME)]);
        }
    }

    #[test]
    fn a_keyframe_never_moves_a_freeze_edge() {
        // Motion changing 2 code values a frame (under the keyframe level), still from frame
        // 12 on, and frame 12 a keyframe: the freeze starts at 12, not at 11.
        let slow = |n: i64| {
            frame(n * FRAME, move |x, y| {
                ((x * y) % 200) as u8 + 16 + 2 * n.min(12) as u8
            })
        };
        let mut frames: Vec<VideoFrame> = (0..25).map(slow).collect();
        frames[12].keyframe = true;
        let half_second = FreezeConfig {
            min_duration: 0.5,
            ..FreezeConfig::default()
        };
        let f = FreezeDetector::new(&half_second, &BlackConfig::default())
            .analyze(&video_segment(0, None, frames));
        assert_eq!(
            f.iter().map(|f| (f.start, f.end)).collect::<Vec<_>>(),
            vec![(12 * FRAME, 25 * FRAME)]
        );
    }

    #[test]
    fn a_keyframe_opening_a_segment_leaves_the_decision_to_the_aggregator() {
        // Still picture, refreshed by a keyframe that opens the segment; the freeze then ends
        // after 3 frames. The short piece is kept (it may continue the previous segment's).
        let still_then_moving = |n: i64| {
            let shift = 3 * (n >= 25) as usize + 9 * (n - 27).max(0) as usize;
            frame(n * FRAME, move |x, y| {
                (((x * y) % 200 + 16 + shift) % 256) as u8
            })
        };
        let mut frames: Vec<VideoFrame> = (25..50).map(still_then_moving).collect();
        frames[0].keyframe = true;
        let f = detector().analyze(&video_segment(1, Some(still_then_moving(24)), frames));
        assert_eq!(
            f.iter().map(|f| (f.start, f.end)).collect::<Vec<_>>(),
            vec![(25 * FRAME, 28 * FRAME)]
        );
    }

    #[test]
    fn a_still_black_picture_is_a_freeze_only_when_asked() {
        let black = |n: i64| frame(n * FRAME, |_, _| 16);
        let seg = video_segment(0, None, (0..25).map(black).collect());
        assert!(detector().analyze(&seg).is_empty());
        let include = FreezeConfig {
            include_black: true,
            ..FreezeConfig::default()
        };
        assert_eq!(
            FreezeDetector::new(&include, &BlackConfig::default())
                .analyze(&seg)
                .len(),
            1
        );
    }

    #[test]
    fn frozen_pairs_are_measured_exactly_and_one_other_in_five_estimated() {
        // 24 pairs; the 14 between frames 5..19 still (pairs 5..=18); of the others, pairs
        // 0 and 20 are measured.
        let frames = still_during(5..20);
        let exact = |a: &VideoFrame, b: &VideoFrame| {
            let sad: u64 = a.rows().zip(b.rows()).map(|(x, y)| row_sad(x, y)).sum();
            sad as f64 / (a.width * a.height) as f64
        };
        let measured = |k: &usize| (5..=18).contains(k) || k.is_multiple_of(MEASURED_EVERY);
        let exact_mean = frames
            .windows(2)
            .enumerate()
            .filter(|(k, _)| measured(k))
            .map(|(_, w)| exact(&w[0], &w[1]))
            .sum::<f64>()
            / 16.0;
        // Two moving pairs among 14 still ones.
        assert!(exact_mean > 0.2, "{exact_mean}");
        let mut m = Measurements::default();
        detector().analyze_measuring(&video_segment(0, None, frames), &mut m);
        let s = m.values[MAFD];
        assert_eq!(s.count, 16);
        assert_eq!(s.min, 0.0, "the still pairs");
        // The estimates from one row in eight are close to the whole frames' differences.
        assert!(
            (s.mean - exact_mean).abs() < 0.1 * exact_mean,
            "{} vs {exact_mean}",
            s.mean
        );
    }

    #[test]
    fn row_sad_matches_the_plain_sum() {
        let a: Vec<u8> = (0..200u32).map(|i| (i * 37 % 256) as u8).collect();
        let b: Vec<u8> = (0..200u32).map(|i| (i * 11 % 256) as u8).collect();
        let plain: u64 = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
        assert_eq!(row_sad(&a, &b), plain);
    }
}
