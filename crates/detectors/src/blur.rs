//! `blur`: loss of sharpness, by edge width (the Marziliano metric FFmpeg's blurdetect
//! builds on).
//!
//! On sparse rows, every edge — a local maximum of the horizontal gradient of at least
//! `MIN_SLOPE` code values per pixel — is followed both ways for as long as the luma keeps
//! strictly rising (or falling); its width is the distance between the two ends, kept when the luma
//! changes by at least `MIN_CONTRAST` across it. Blurring widens every edge, while soft but
//! intact content (gradients, smooth shapes) keeps some sharp ones: the frame's measure is
//! the 20th percentile of its edge widths, in pixels. A frame without edges (flat, or
//! blurred beyond recognition of any edge) is not judged.

use vqa_core::config::BlurConfig;
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Finding, IncidentKind, Measurements};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;

const MIN_SLOPE: i16 = 4;
const MIN_CONTRAST: i16 = 24;
/// The frame's measure is this percentile of its edge widths.
const SHARPEST_PERCENT: u32 = 20;
/// Fewest edges for a verdict.
const MIN_EDGES: usize = 16;
/// Longest edge followed, in pixels: beyond it a ramp is shading, not an edge.
const MAX_WIDTH: usize = 64;

pub struct BlurDetector {
    max_edge_width: f64,
    min_duration: Micros,
}

impl BlurDetector {
    pub fn new(config: &BlurConfig) -> Self {
        BlurDetector {
            max_edge_width: config.max_edge_width,
            min_duration: time::from_secs(config.min_duration),
        }
    }
}

/// The 20th percentile of the frame's edge widths in pixels, or `None` without enough edges.
pub fn edge_width(frame: &VideoFrame) -> Option<f64> {
    let (w, h, s) = (
        frame.width as usize,
        frame.height as usize,
        frame.stride as usize,
    );
    if w < 8 || h < 8 {
        return None;
    }
    let rows = (h / 32).max(16).min(h);
    // How many edges of each width.
    let mut widths = [0u32; MAX_WIDTH * 2 + 2];
    for r in 0..rows {
        let y = (r * h + h / 2) / rows;
        let row = &frame.luma[y * s..y * s + w];
        let g = |x: usize| i16::from(row[x + 1]) - i16::from(row[x]);
        let mut x = 1;
        while x + 2 < w {
            let (gp, gx, gn) = (g(x - 1), g(x), g(x + 1));
            if gx.abs() < MIN_SLOPE || gx.abs() < gp.abs() || gx.abs() < gn.abs() {
                x += 1;
                continue;
            }
            let dir = gx.signum();
            // Follow the edge down to its start and up to its end.
            let mut a = x;
            while a > 0 && x - a < MAX_WIDTH && g(a - 1) * dir > 0 {
                a -= 1;
            }
            let mut b = x + 1;
            while b + 1 < w && b - x < MAX_WIDTH && g(b) * dir > 0 {
                b += 1;
            }
            let contrast = (i16::from(row[b]) - i16::from(row[a])) * dir;
            if contrast >= MIN_CONTRAST {
                widths[b - a] += 1;
            }
            x = b.max(x + 1);
        }
    }
    let edges: u32 = widths.iter().sum();
    if (edges as usize) < MIN_EDGES {
        return None;
    }
    // The sharpest edges tell: soft content keeps some, a blurred picture has none.
    let rank = edges * SHARPEST_PERCENT / 100;
    let mut seen = 0;
    for (width, &n) in widths.iter().enumerate() {
        seen += n;
        if seen > rank {
            return Some(width as f64);
        }
    }
    None
}

impl Detector for BlurDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Blur
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let mut runs = Runs::new(IncidentKind::Blur, self.min_duration);
        for frame in &segment.video {
            let width = edge_width(frame);
            if let Some(w) = width {
                m.add("blur.edge_width", w);
            }
            let hit = width.map(|w| [("edge_width", w)]);
            let blurred = width.is_some_and(|w| w > self.max_edge_width);
            runs.push(
                frame.pts,
                frame.end(),
                hit.as_ref().filter(|_| blurred).map(|h| &h[..]),
            );
        }
        runs.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};

    /// Vertical stripes 8 px wide, with edges softened over `soft` pixels.
    fn stripes(soft: usize) -> impl Fn(usize, usize) -> u8 {
        move |x, _| {
            let period = 16 + 2 * soft;
            let p = x % period;
            let ramp = |t: usize| 40 + (150 * t / soft.max(1)).min(150) as u8;
            if p < 8 {
                40
            } else if p < 8 + soft {
                ramp(p - 8 + 1)
            } else if p < 16 + soft {
                190
            } else {
                190 - (ramp(p - 16 - soft + 1) - 40)
            }
        }
    }

    #[test]
    fn sharp_edges_are_narrow_and_soft_edges_wide() {
        let sharp = edge_width(&frame(0, stripes(1))).unwrap();
        let soft = edge_width(&frame(0, stripes(8))).unwrap();
        assert!(sharp <= 2.0, "{sharp}");
        assert!(soft >= 7.0, "{soft}");
        assert_eq!(edge_width(&frame(0, |_, _| 80)), None);
    }

    #[test]
    fn blurred_frames_are_reported() {
        let d = BlurDetector::new(&BlurConfig::default());
        let seg = |soft| {
            video_segment(
                0,
                None,
                (0..25).map(|n| frame(n * FRAME, stripes(soft))).collect(),
            )
        };
        assert!(d.analyze(&seg(1)).is_empty());
        let found = d.analyze(&seg(8));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (0, 25 * FRAME));
    }
}
