//! `blur`: the whole picture loses its sharpness, by edge width (the Marziliano metric FFmpeg's
//! blurdetect builds on), judged tile by tile.
//!
//! Every edge — a local maximum of the luma gradient of at least `MIN_SLOPE` code values per
//! pixel along sparse rows and columns — is followed both ways for as long as the luma keeps
//! strictly rising (or falling), and kept when the luma changes by at least `MIN_CONTRAST`
//! across it. Its width is the 10-90% rise distance across it, in fractions of a pixel:
//! under 1 px for a sharp edge, 2.56 σ for a Gaussian blur of σ; unlike the distance
//! between the ends it does not grow with the long shallow tails noise and shading leave.
//! Blurring widens every
//! edge, while soft but intact content (gradients, smooth shapes) keeps some sharp ones: a
//! tile's width is the 20th percentile of its edges' widths.
//!
//! A defocused or upscaled feed loses detail everywhere at once, whereas a natural shot is
//! often soft in places on purpose: a shallow depth of field leaves the background out of
//! focus around a sharp subject, and motion blurs along one direction only (edges across the
//! other stay sharp, which is why columns are scanned as well as rows). So the picture is
//! split into tiles (8x6), only tiles with enough edges to judge (textured) count, and the
//! frame's measure is the width of its textured tiles' 5th percentile, sharpest first (and
//! at least the third sharpest): a frame is blurred only when nearly all (95%) of its
//! textured picture is soft. An absolute
//! per-frame measure cannot tell a scene that is soft all over (a sky of clouds) from a
//! blurred one; what spans frames and segments is the aggregator's. A frame with too few textured tiles (flat, or
//! blurred beyond recognition of any edge) is not judged.

use vqa_core::config::BlurConfig;
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Finding, IncidentKind, Measurements, BLUR_EDGE_WIDTH};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;

const MIN_SLOPE: i16 = 4;
const MIN_CONTRAST: i16 = 24;
/// A tile's width is this percentile of its edge widths.
const SHARPEST_PERCENT: u32 = 20;
/// Longest edge followed, in pixels: beyond it a ramp is shading, not an edge.
const MAX_WIDTH: usize = 64;
/// The grid of tiles, across and down (fewer on pictures too small for tiles of `MIN_TILE`).
const TILES_ACROSS: usize = 8;
const TILES_DOWN: usize = 6;
/// Smallest tile side, pixels.
const MIN_TILE: usize = 16;
/// Rows (and columns) scanned through each tile.
const LINES_PER_TILE: usize = 6;
/// Fewest edges that make a tile textured: enough to judge its sharpness.
const MIN_TILE_EDGES: u32 = 8;
/// Fewest textured tiles for a verdict on the frame.
const MIN_TEXTURED_TILES: usize = 3;
/// The frame's measure is the width of the tile at this percentile of its textured tiles,
/// sharpest first: blurred means the rest are soft too.
const SHARP_TILES_PERCENT: usize = 5;

/// One picture in this many is measured, and those around a change of verdict
/// ([`crate::sparse`]): blur lasts (1 s at least: `min_duration`), and a picture costs
/// about half a millisecond at 1080p. In 8, three pictures of the shortest blur are scored.
pub const STRIDE: usize = 8;

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

/// Each edge along one line of luma: calls `edge(position, width)` with the edge's middle.
fn line_edges(line: &[u8], mut edge: impl FnMut(usize, f32)) {
    let w = line.len();
    let g = |x: usize| i16::from(line[x + 1]) - i16::from(line[x]);
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
        let contrast = (i16::from(line[b]) - i16::from(line[a])) * dir;
        if contrast >= MIN_CONTRAST {
            edge((a + b) / 2, rise_width(&line[a..=b], dir));
        }
        x = b.max(x + 1);
    }
}

/// The 10-90% width of a monotonic run of luma (rising for `dir` 1, falling for -1): the
/// distance, interpolated between pixels, from where it has covered a tenth of its contrast
/// to where it has covered nine tenths. About 0.8 px for a sharp step, 2.56 σ for a
/// Gaussian blur of σ; unlike the run's length it ignores the long shallow tails that noise
/// and shading add, and unlike the steepest slope it is not shortened by one steep pixel in
/// a soft ramp.
fn rise_width(run: &[u8], dir: i16) -> f32 {
    let level = |p: u8| f32::from(i16::from(p) * dir);
    let (first, last) = (level(run[0]), level(run[run.len() - 1]));
    let crossing = |share: f32| {
        let target = first + share * (last - first);
        run.windows(2)
            .enumerate()
            .find(|(_, w)| level(w[1]) >= target)
            .map_or(run.len() as f32 - 1.0, |(i, w)| {
                let (p, q) = (level(w[0]), level(w[1]));
                i as f32 + (target - p) / (q - p).max(f32::MIN_POSITIVE)
            })
    };
    crossing(0.9) - crossing(0.1)
}

/// The `SHARPEST_PERCENT` percentile of a tile's edge widths, or `None` for a tile with too
/// few edges to judge.
fn tile_width(widths: &mut [f32]) -> Option<f64> {
    if widths.len() < MIN_TILE_EDGES as usize {
        return None;
    }
    let rank = widths.len() * SHARPEST_PERCENT as usize / 100;
    let (_, w, _) = widths.select_nth_unstable_by(rank, f32::total_cmp);
    Some(f64::from(*w))
}

/// Each textured tile's width (the 20th percentile of its edge widths, pixels), sharpest
/// first.
pub fn tile_widths(frame: &VideoFrame) -> Vec<f64> {
    let (w, h, s) = (
        frame.width as usize,
        frame.height as usize,
        frame.stride as usize,
    );
    if w < 8 || h < 8 {
        return Vec::new();
    }
    let across = TILES_ACROSS.min(w / MIN_TILE).max(1);
    let down = TILES_DOWN.min(h / MIN_TILE).max(1);
    let mut tiles: Vec<Vec<f32>> = vec![Vec::new(); across * down];
    let tile_of = |x: usize, y: usize| {
        (y * down / h).min(down - 1) * across + (x * across / w).min(across - 1)
    };
    // Rows: `LINES_PER_TILE` through each band of tiles, spread evenly.
    let rows = (down * LINES_PER_TILE).min(h);
    for r in 0..rows {
        let y = (r * h + h / 2) / rows;
        line_edges(&frame.luma[y * s..y * s + w], |x, width| {
            tiles[tile_of(x, y)].push(width);
        });
    }
    // Columns, the same way: motion blurs one direction, and a column sees the other.
    // They are gathered row by row, all at once (one pass down the picture instead of one
    // per column, which would touch every row's cache line once per column).
    let cols = (across * LINES_PER_TILE).min(w);
    let xs: Vec<usize> = (0..cols).map(|c| (c * w + w / 2) / cols).collect();
    let mut columns = vec![0u8; cols * h];
    for (y, row) in frame.luma.chunks(s).take(h).enumerate() {
        for (c, &x) in xs.iter().enumerate() {
            columns[c * h + y] = row[x];
        }
    }
    for (column, &x) in columns.chunks_exact(h).zip(&xs) {
        line_edges(column, |y, width| {
            tiles[tile_of(x, y)].push(width);
        });
    }
    let mut widths: Vec<f64> = tiles.iter_mut().filter_map(|t| tile_width(t)).collect();
    widths.sort_by(f64::total_cmp);
    widths
}

/// The frame's edge width in pixels: that of its textured tiles' 5th percentile, sharpest
/// first, so the frame is blurred only when nearly all of its textured picture is; `None`
/// with too few textured tiles to tell.
pub fn edge_width(frame: &VideoFrame) -> Option<f64> {
    let widths = tile_widths(frame);
    if widths.len() < MIN_TEXTURED_TILES {
        return None;
    }
    // Never fewer than `MIN_TEXTURED_TILES - 1` sharper tiles: one or two sharp spots (an
    // overlay, a tile of noise) do not make a picture with few textured tiles sharp.
    let rank = (widths.len() * SHARP_TILES_PERCENT / 100).max(MIN_TEXTURED_TILES - 1);
    widths.get(rank).copied()
}

impl Detector for BlurDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Blur
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let mut runs = Runs::new(IncidentKind::Blur, self.min_duration);
        let blurred = |w: Option<f64>| w.map(|w| w > self.max_edge_width);
        let widths = crate::sparse::sparse_scores(
            segment.video.len(),
            STRIDE,
            |i| edge_width(&segment.video[i]),
            |a, b| blurred(a) == blurred(b),
        );
        for (frame, &width) in segment.video.iter().zip(&widths) {
            if let Some(w) = width {
                m.add(BLUR_EDGE_WIDTH, w);
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
    use crate::testing::{video_segment, FRAME};
    use vqa_core::model::LumaRange;

    /// A 320x180 picture (40x30 tiles of the 8x6 grid).
    fn picture(pts: i64, fill: impl Fn(usize, usize) -> u8) -> VideoFrame {
        let (w, h) = (320usize, 180usize);
        let luma: Vec<u8> = (0..w * h).map(|i| fill(i % w, i / w)).collect();
        VideoFrame {
            pts,
            duration: FRAME,
            width: w as u32,
            height: h as u32,
            stride: w as u32,
            range: LumaRange::Limited,
            keyframe: false,
            corrupt: false,
            format: Default::default(),
            captions: Default::default(),
            luma: luma.into(),
        }
    }

    /// Luma at `t` along a square wave of 8-px levels 40 and 190 whose edges ramp over
    /// `soft` pixels.
    fn wave(t: usize, soft: usize) -> u8 {
        let period = 16 + 2 * soft;
        let p = t % period;
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

    /// Vertical stripes with edges softened over `soft` pixels.
    fn stripes(soft: usize) -> impl Fn(usize, usize) -> u8 {
        move |x, _| wave(x, soft)
    }

    /// A checkerboard-like texture: stripes both ways, softened over `soft_x` pixels across
    /// and `soft_y` down.
    fn texture(soft_x: usize, soft_y: usize) -> impl Fn(usize, usize) -> u8 {
        move |x, y| ((u16::from(wave(x, soft_x)) + u16::from(wave(y, soft_y))) / 2) as u8
    }

    #[test]
    fn sharp_edges_are_narrow_and_soft_edges_wide() {
        let sharp = edge_width(&picture(0, stripes(1))).unwrap();
        let soft = edge_width(&picture(0, stripes(8))).unwrap();
        assert!(sharp <= 2.0, "{sharp}");
        // A linear 8-px ramp rises from 10% to 90% in 6.4 px.
        assert!(soft >= 6.0, "{soft}");
        // Nothing to judge on a flat picture.
        assert_eq!(edge_width(&picture(0, |_, _| 80)), None);
    }

    #[test]
    fn blurred_frames_are_reported() {
        let d = BlurDetector::new(&BlurConfig::default());
        let seg = |soft| {
            video_segment(
                0,
                None,
                (0..25).map(|n| picture(n * FRAME, stripes(soft))).collect(),
            )
        };
        assert!(d.analyze(&seg(1)).is_empty());
        let found = d.analyze(&seg(8));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].start, found[0].end), (0, 25 * FRAME));
    }

    #[test]
    fn a_sharp_subject_before_a_soft_background_is_not_blur() {
        // Shallow focus: the subject, a sharp texture, fills a sixth of the picture (the
        // middle 128x72); around it the same texture out of focus.
        let sharp = texture(1, 1);
        let soft = texture(9, 9);
        let shallow = move |x: usize, y: usize| {
            if (96..224).contains(&x) && (54..126).contains(&y) {
                sharp(x, y)
            } else {
                soft(x, y)
            }
        };
        let shallow = picture(0, shallow);
        let widths = tile_widths(&shallow);
        assert!(widths.len() >= 40, "textured tiles: {widths:?}");
        let soft_tiles = widths.iter().filter(|w| **w > 4.0).count();
        assert!(
            soft_tiles * 3 >= widths.len() * 2,
            "most tiles soft: {widths:?}"
        );
        let width = edge_width(&shallow).unwrap();
        assert!(width <= 2.0, "{width}");
        // The whole picture out of focus is blur.
        let defocused = edge_width(&picture(0, texture(9, 9))).unwrap();
        assert!(
            defocused > BlurConfig::default().max_edge_width,
            "{defocused}"
        );
    }

    #[test]
    fn motion_blur_along_one_direction_is_not_blur() {
        // A horizontal pan smears vertical edges over 12 px; horizontal edges stay sharp.
        let d = BlurDetector::new(&BlurConfig::default());
        let frames = (0..25)
            .map(|n| picture(n * FRAME, texture(12, 1)))
            .collect();
        let seg = video_segment(0, None, frames);
        assert!(d.analyze(&seg).is_empty());
        let width = edge_width(&picture(0, texture(12, 1))).unwrap();
        assert!(width <= 2.0, "{width}");
    }

    #[test]
    fn small_pictures_are_judged_on_fewer_tiles() {
        // 64x36: a 4x2 grid of 16x18 tiles.
        let sharp = vqa_core::testing::frame(0, |x, y| wave(x, 1) / 2 + wave(y, 1) / 2);
        assert!(edge_width(&sharp).is_some_and(|w| w <= 2.0));
    }
}
