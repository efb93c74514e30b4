//! `borders`: the picture's black borders — letterbox rows at the top and bottom, pillarbox
//! columns at the left and right — measured on each picture, as FFmpeg's cropdetect does:
//! from each edge inwards, a line is border while its mean luma is at most `limit` above
//! black (cropdetect's test), and, more strictly than cropdetect, while none of its
//! sampled pixels is more than `max_pixel` above black (a border is dark all along; a
//! night sky seldom is).
//!
//! A picture is measured only when the measurement can be trusted: the first line inside
//! each border is content, at least `min_content` above black (a border ending in dim
//! picture may go on into it); borders facing each other are about as large
//! (`max_asymmetry`); and some picture is left between them. A black picture (the `black`
//! detector's), a fade or a dark scene is not measured, and counts neither for nor against
//! a geometry.
//!
//! The detector reports each run of pictures measured alike (within `tolerance_px`) as a
//! finding at the hold level with the run's sizes (`top_px`, `bottom_px`, `left_px`,
//! `right_px`); the aggregator compares them across segments with the geometry that held
//! before, and reports a change once the new one has held `min_duration`
//! (`IncidentAggregator::judge_borders`). Lines are sampled (about [`SAMPLES`] pixels of
//! each), only the lines of the borders and the first of the picture are read, and one
//! picture in `stride` is measured where the geometry stays the same (`sparse.rs`).

use vqa_core::config::BordersConfig;
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::{Detector, DetectorName};

use crate::sparse::sparse_scores;

/// Pixels sampled along a line (at least; every pixel of a line shorter than this).
pub const SAMPLES: usize = 256;

/// Black borders of one picture, pixels: top, bottom, left, right.
pub type Geometry = [u32; 4];

pub struct BordersDetector {
    limit: f64,
    max_pixel: f64,
    min_content: f64,
    max_asymmetry: f64,
    tolerance_px: u32,
    stride: usize,
}

/// A line's sampled pixels: their mean and largest value.
#[derive(Clone, Copy)]
struct Line {
    mean: f64,
    max: u8,
}

impl Line {
    fn of(pixels: impl Iterator<Item = u8>) -> Line {
        let (mut sum, mut n, mut max) = (0u64, 0u64, 0u8);
        for p in pixels {
            sum += u64::from(p);
            n += 1;
            max = max.max(p);
        }
        Line {
            mean: sum as f64 / n.max(1) as f64,
            max,
        }
    }
}

impl BordersDetector {
    pub fn new(config: &BordersConfig) -> Self {
        BordersDetector {
            limit: config.limit,
            max_pixel: config.max_pixel,
            min_content: config.min_content,
            max_asymmetry: config.max_asymmetry,
            tolerance_px: config.tolerance_px,
            stride: config.stride.max(1) as usize,
        }
    }

    /// The picture's borders, or none when it cannot be measured (black, a border running
    /// into dim picture, dark on one side only).
    pub fn measure(&self, frame: &VideoFrame) -> Option<Geometry> {
        if !frame.is_well_formed() {
            return None;
        }
        let black = f64::from(frame.range.black_white().0);
        let (w, h, s) = (
            frame.width as usize,
            frame.height as usize,
            frame.stride as usize,
        );
        let luma = &frame.luma[..];
        let is_border =
            |l: Line| l.mean <= black + self.limit && f64::from(l.max) <= black + self.max_pixel;
        let is_content = |l: Line| l.mean >= black + self.min_content;
        let step_x = (w / SAMPLES).max(1);
        let row = |y: usize| Line::of(luma[y * s..y * s + w].iter().step_by(step_x).copied());
        // From an edge inwards: how many lines are border; where there are some, the next
        // must be content (a border ending in dim picture may go on into it). Borders reach
        // at most to the middle: a picture all border is black, not boxed.
        let scan = |lines: &mut dyn Iterator<Item = Line>| -> Option<u32> {
            for (n, line) in lines.enumerate() {
                if !is_border(line) {
                    return (n == 0 || is_content(line)).then_some(n as u32);
                }
            }
            None
        };
        let top = scan(&mut (0..h / 2).map(row))?;
        let bottom = scan(&mut (0..h / 2).map(|i| row(h - 1 - i)))?;
        let (y0, y1) = (top as usize, h - bottom as usize);
        let step_y = ((y1 - y0) / SAMPLES).max(1);
        let column = |x: usize| Line::of((y0..y1).step_by(step_y).map(|y| luma[y * s + x]));
        let left = scan(&mut (0..w / 2).map(column))?;
        let right = scan(&mut (0..w / 2).map(|i| column(w - 1 - i)))?;
        let balanced = |a: u32, b: u32| {
            f64::from(a.abs_diff(b))
                <= f64::from(self.tolerance_px) + self.max_asymmetry * f64::from(a.max(b))
        };
        (balanced(top, bottom) && balanced(left, right)).then_some([top, bottom, left, right])
    }

    fn alike(&self, a: Option<Geometry>, b: Option<Geometry>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a
                .iter()
                .zip(b)
                .all(|(x, y)| x.abs_diff(y) <= self.tolerance_px),
            _ => false,
        }
    }
}

/// A run of pictures measured alike.
struct Run {
    start: i64,
    end: i64,
    first: Geometry,
    edges: [Summary; 4],
}

impl Run {
    fn finding(self) -> Finding {
        let mut evidence = Evidence::new();
        for (name, s) in ["top_px", "bottom_px", "left_px", "right_px"]
            .into_iter()
            .zip(self.edges)
        {
            evidence.insert(name.into(), s);
        }
        Finding {
            kind: IncidentKind::Borders,
            channel: None,
            start: self.start,
            end: self.end,
            reaches_end: false,
            starts_anew: false,
            level: Level::Hold,
            evidence,
        }
    }
}

impl Detector for BordersDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Borders
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let frames = &segment.video;
        let geometries = sparse_scores(
            frames.len(),
            self.stride,
            |i| self.measure(&frames[i]),
            |a, b| self.alike(a, b),
        );
        let mut findings = Vec::new();
        let mut run: Option<Run> = None;
        for (frame, geometry) in frames.iter().zip(geometries) {
            // Pictures not measured neither continue nor break a run.
            let Some(g) = geometry else { continue };
            match run.as_mut() {
                Some(r) if self.alike(Some(r.first), Some(g)) => {
                    r.end = frame.end();
                    for (s, v) in r.edges.iter_mut().zip(g) {
                        s.add(f64::from(v));
                    }
                }
                _ => {
                    findings.extend(run.take().map(Run::finding));
                    run = Some(Run {
                        start: frame.pts,
                        end: frame.end(),
                        first: g,
                        edges: g.map(|v| Summary::of(f64::from(v))),
                    });
                }
            }
        }
        findings.extend(run.map(Run::finding));
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};
    use vqa_core::model::LumaRange;

    fn detector() -> BordersDetector {
        BordersDetector::new(&BordersConfig::default())
    }

    /// A 64x36 picture with `top`/`bottom` black rows and `left`/`right` black columns
    /// around a textured picture (luma 60 to 180), black at TV level with coding noise.
    fn boxed(n: i64, [top, bottom, left, right]: [usize; 4]) -> VideoFrame {
        frame(n * FRAME, move |x, y| {
            let border = y < top || y >= 36 - bottom || x < left || x >= 64 - right;
            if border {
                16 + ((x + y) % 3) as u8
            } else {
                60 + ((x * 7 + y * 13 + n as usize * 5) % 120) as u8
            }
        })
    }

    #[test]
    fn measures_letterbox_and_pillarbox_sizes() {
        let d = detector();
        assert_eq!(d.measure(&boxed(0, [0, 0, 0, 0])), Some([0, 0, 0, 0]));
        assert_eq!(d.measure(&boxed(0, [5, 5, 0, 0])), Some([5, 5, 0, 0]));
        assert_eq!(d.measure(&boxed(0, [0, 0, 8, 8])), Some([0, 0, 8, 8]));
        assert_eq!(d.measure(&boxed(0, [4, 5, 6, 7])), Some([4, 5, 6, 7]));
        // Full range: black at 0, TV black (16) is 16 above it, past the limit of 8: no
        // border.
        let mut full = boxed(0, [5, 5, 0, 0]);
        full.range = LumaRange::Full;
        assert_eq!(d.measure(&full), Some([0, 0, 0, 0]));
    }

    #[test]
    fn black_dark_and_one_sided_pictures_are_not_measured() {
        let d = detector();
        // Black: every line is border.
        assert_eq!(d.measure(&frame(0, |_, _| 16)), None);
        // A dark scene: rows dark along their length but with bright spots, or dim.
        let night = frame(0, |x, y| if y < 10 && x % 9 == 0 { 120 } else { 22 });
        assert_eq!(d.measure(&night), None);
        // A picture dim at its edge (a fade): the first line inside the border is not
        // content.
        let fade = frame(0, |_, y| if (5..31).contains(&y) { 30 } else { 16 });
        assert_eq!(d.measure(&fade), None);
        // Dark rows at the top only: not a letterbox.
        assert_eq!(d.measure(&boxed(0, [10, 0, 0, 0])), None);
    }

    /// `n` pictures from picture `first` on, boxed as `geometry`.
    fn pictures(first: i64, n: i64, geometry: [usize; 4]) -> Vec<VideoFrame> {
        (first..first + n).map(|i| boxed(i, geometry)).collect()
    }

    fn runs(found: &[Finding]) -> Vec<(i64, i64, Geometry)> {
        found
            .iter()
            .map(|f| {
                let e = |k: &str| f.evidence[k].mean as u32;
                (
                    f.start / FRAME,
                    f.end / FRAME,
                    [e("top_px"), e("bottom_px"), e("left_px"), e("right_px")],
                )
            })
            .collect()
    }

    #[test]
    fn reports_runs_of_one_geometry_exact_to_the_picture_ignoring_black_pictures() {
        // 12 plain pictures, 3 black ones, 10 letterboxed.
        let mut frames = pictures(0, 12, [0, 0, 0, 0]);
        frames.extend((12..15).map(|i| frame(i * FRAME, |_, _| 16)));
        frames.extend(pictures(15, 10, [6, 6, 0, 0]));
        let found = detector().analyze(&video_segment(0, None, frames));
        assert_eq!(
            runs(&found),
            vec![(0, 12, [0, 0, 0, 0]), (15, 25, [6, 6, 0, 0])]
        );
        assert!(found.iter().all(|f| f.level == Level::Hold));
        // Changes within the tolerance are one run.
        let mut frames = pictures(0, 12, [6, 6, 0, 0]);
        frames.extend(pictures(12, 13, [7, 7, 0, 0]));
        let found = detector().analyze(&video_segment(0, None, frames));
        assert_eq!(runs(&found).len(), 1, "{found:?}");
    }
}
