//! `colorbars`: SMPTE (SD and HD) or EBU colour bars in place of programme.
//!
//! Luma alone identifies them: in every bar pattern the top part of the picture is a row of
//! flat, equally wide vertical bars whose luma falls from left to right (white, yellow, cyan,
//! green, magenta, red, blue, and black for EBU). Three rows in the upper half are each cut
//! into flat runs; a frame shows bars when each row has at least `min_bars` consecutive wide
//! runs of similar width with falling luma, at the same places in every row.

use vqa_core::config::ColorbarsConfig;
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Finding, IncidentKind};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;

/// Largest step, in code values, within one flat run (compression ringing stays below it).
const FLAT: i32 = 10;
/// Smallest luma fall from one bar to the next.
const MIN_STEP: f64 = 8.0;

pub struct ColorbarsDetector {
    min_bars: usize,
    min_duration: Micros,
}

impl ColorbarsDetector {
    pub fn new(config: &ColorbarsConfig) -> Self {
        ColorbarsDetector {
            min_bars: config.min_bars as usize,
            min_duration: time::from_secs(config.min_duration),
        }
    }

    /// The bars' left edges if the frame shows colour bars.
    fn bars(&self, frame: &VideoFrame) -> Option<Vec<usize>> {
        let (w, h, s) = (
            frame.width as usize,
            frame.height as usize,
            frame.stride as usize,
        );
        if w < 64 || h < 16 {
            return None;
        }
        let mut first: Option<Vec<usize>> = None;
        for y in [h / 5, h * 3 / 10, h * 2 / 5] {
            let row = &frame.luma[y * s..y * s + w];
            let edges = bar_row(row, self.min_bars)?;
            match &first {
                None => first = Some(edges),
                Some(f) => {
                    let tolerance = w / 50;
                    let same = f.len() == edges.len()
                        && f.iter()
                            .zip(&edges)
                            .all(|(a, b)| a.abs_diff(*b) <= tolerance);
                    if !same {
                        return None;
                    }
                }
            }
        }
        first
    }
}

/// Flat runs of a row: (start, end, mean).
fn flat_runs(row: &[u8]) -> Vec<(usize, usize, f64)> {
    let mut runs = Vec::new();
    let (mut start, mut sum) = (0usize, 0u64);
    for (x, &p) in row.iter().enumerate() {
        let level = i32::from(row[start]);
        if x > start && (i32::from(p) - level).abs() > FLAT {
            runs.push((start, x, sum as f64 / (x - start) as f64));
            start = x;
            sum = 0;
        }
        sum += u64::from(p);
    }
    runs.push((start, row.len(), sum as f64 / (row.len() - start) as f64));
    runs
}

/// Left edges of the longest sequence of bars in a row, if it has at least `min_bars`.
fn bar_row(row: &[u8], min_bars: usize) -> Option<Vec<usize>> {
    let w = row.len();
    // Bars are at least 1/20 of the width (EBU's 8 bars fill it; SMPTE HD's 7 fill 3/4);
    // narrower runs are transitions between bars and are skipped.
    let wide: Vec<(usize, usize, f64)> = flat_runs(row)
        .into_iter()
        .filter(|(a, b, _)| b - a >= w / 20)
        .collect();
    let mut best: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < wide.len() {
        let mut j = i + 1;
        while j < wide.len() {
            let (pa, pb, pm) = wide[j - 1];
            let (a, b, m) = wide[j];
            let (wp, wc) = ((pb - pa) as f64, (b - a) as f64);
            let adjacent = a - pb <= w / 40;
            let similar = wc <= wp * 1.3 + 2.0 && wp <= wc * 1.3 + 2.0;
            if !(adjacent && similar && pm - m >= MIN_STEP) {
                break;
            }
            j += 1;
        }
        if j - i > best.len() {
            best = wide[i..j].iter().map(|r| r.0).collect();
        }
        i = j;
    }
    (best.len() >= min_bars).then_some(best)
}

impl Detector for ColorbarsDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Colorbars
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let mut runs = Runs::new(IncidentKind::Colorbars, self.min_duration);
        for frame in &segment.video {
            let bars = self.bars(frame).map(|b| b.len() as f64);
            let hit = bars.map(|n| [("bars", n)]);
            runs.push(frame.pts, frame.end(), hit.as_ref().map(|h| &h[..]));
        }
        runs.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};

    /// SMPTE 75% bars' luma (limited range), then the lower castellations.
    const SMPTE: [u8; 7] = [180, 162, 131, 112, 84, 65, 35];

    fn bars_frame(n: i64) -> VideoFrame {
        // 64 px wide test frames: 7 bars of 9 px (+1 px ringing at each edge).
        frame(n * FRAME, |x, y| {
            if y > 27 {
                return if x % 16 < 8 { 16 } else { 235 };
            }
            let bar = (x / 9).min(6);
            let ring = if x % 9 == 0 && x > 0 { 6 } else { 0 };
            SMPTE[bar] + ring
        })
    }

    #[test]
    fn smpte_bars_are_found_and_programme_is_not() {
        let d = ColorbarsDetector::new(&ColorbarsConfig::default());
        let found = d.analyze(&video_segment(0, None, (0..25).map(bars_frame).collect()));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (0, 25 * FRAME));
        assert_eq!(found[0].evidence["bars"].min, 7.0);
        // A gradient, a picture with rising bars, and random texture are not bars.
        let gradient = |n: i64| frame(n * FRAME, |x, _| 16 + 3 * x as u8);
        let rising = |n: i64| frame(n * FRAME, |x, _| SMPTE[6 - (x / 9).min(6)]);
        let texture = |n: i64| frame(n * FRAME, |x, y| ((x * 37 + y * 91) % 200) as u8 + 16);
        for f in [&gradient as &dyn Fn(i64) -> VideoFrame, &rising, &texture] {
            let seg = video_segment(0, None, (0..25).map(f).collect());
            assert!(d.analyze(&seg).is_empty());
        }
    }
}
