//! `blockiness`: macroblocking, without a reference.
//!
//! Codecs quantise the picture in 8x8 (and 4x4, 16x16) blocks. When they are starved of bits,
//! or conceal lost slices, the block edges stand out: the luma step across the block grid
//! grows while the picture inside blocks goes flat. Per frame, absolute luma differences
//! between neighbouring pixels are summed by position modulo 8, horizontally (sparse rows)
//! and vertically (sparse column strips); the strongest of the 8 phases is the grid (so a
//! cropped picture's shifted grid is found too) and is compared with the mean of the other
//! seven (a frame's verdict is the median over the five frames around it). Differences are clipped at 12 code values (block steps are small) so that strong
//! natural or synthetic edges that happen to line up with the grid cannot dominate. A frame is blocky when both directions'
//! ratios reach the threshold; clean pictures, detailed or flat, measure about 1.

use vqa_core::config::BlockinessConfig;
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Finding, IncidentKind, Measurements};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;

const CLIP: u8 = 12;
/// Added to both sides of the ratio, in code values: flat pictures measure 1, not 0/0.
const FLOOR: f64 = 1.0;
/// Every n-th row for horizontal differences.
const ROW_STEP: usize = 8;
/// Every n-th band of 8 rows for vertical differences.
const BAND_STEP: usize = 4;
/// Vertical differences on strips of this many columns, one every `STRIP_STEP`.
const STRIP: usize = 64;
const STRIP_STEP: usize = 256;

pub struct BlockinessDetector {
    threshold: f64,
    min_duration: Micros,
}

impl BlockinessDetector {
    pub fn new(config: &BlockinessConfig) -> Self {
        BlockinessDetector {
            threshold: config.threshold,
            min_duration: time::from_secs(config.min_duration),
        }
    }
}

/// Mean clipped difference on the grid phase and inside blocks.
fn grid_and_inside(bins: &[u64; 8], counts: &[u64; 8]) -> (f64, f64) {
    let means: Vec<f64> = bins
        .iter()
        .zip(counts)
        .map(|(&b, &c)| if c == 0 { 0.0 } else { b as f64 / c as f64 })
        .collect();
    let (grid, at) =
        means.iter().enumerate().fold(
            (f64::MIN, 0),
            |(m, i), (j, &v)| if v > m { (v, j) } else { (m, i) },
        );
    let inside = means
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != at)
        .map(|(_, v)| v)
        .sum::<f64>()
        / 7.0;
    (grid, inside)
}

/// Grid-to-inside ratio of a (grid, inside) pair.
pub fn ratio((grid, inside): (f64, f64)) -> f64 {
    (grid + FLOOR) / (inside + FLOOR)
}

/// Grid-to-inside gradient ratios, horizontal and vertical.
pub fn block_ratios(frame: &VideoFrame) -> (f64, f64) {
    let (h, v) = block_edges(frame);
    (ratio(h), ratio(v))
}

/// Mean luma differences across the block grid and inside blocks, horizontal and vertical.
pub fn block_edges(frame: &VideoFrame) -> ((f64, f64), (f64, f64)) {
    let (w, h, s) = (
        frame.width as usize,
        frame.height as usize,
        frame.stride as usize,
    );
    let luma = &frame.luma[..];
    let diff = |a: u8, b: u8| a.abs_diff(b).min(CLIP);

    let mut hb = [0u64; 8];
    let mut hc = [0u64; 8];
    let full = (w - 1) / 8 * 8;
    let mut d = vec![0u8; full];
    for y in (0..h).step_by(ROW_STEP) {
        let row = &luma[y * s..y * s + w];
        // d[x] = |row[x] - row[x - 1]|, clipped: one vectorisable pass.
        for (out, pair) in d[1..].iter_mut().zip(row[..full].windows(2)) {
            *out = pair[1].abs_diff(pair[0]).min(CLIP);
        }
        // Phase sums over chunks of 8 (from x = 8: every phase has its left neighbour).
        let mut acc = [0u32; 8];
        for chunk in d[8..].chunks_exact(8) {
            for k in 0..8 {
                acc[k] += u32::from(chunk[k]);
            }
        }
        for k in 0..8 {
            hb[k] += u64::from(acc[k]);
            hc[k] += (full / 8 - 1) as u64;
        }
    }

    let mut vb = [0u64; 8];
    let mut vc = [0u64; 8];
    let strips: Vec<usize> = if w <= STRIP {
        vec![0]
    } else {
        (0..=w - STRIP).step_by(STRIP_STEP).collect()
    };
    let width = STRIP.min(w);
    // Row pairs of every `BAND_STEP`-th band of 8 rows: all 8 phases, a fraction of the rows.
    // From the second band, so that every band has the row above its first.
    for band in (1..h / 8).step_by(BAND_STEP) {
        for y in band * 8..band * 8 + 8 {
            let (above, here) = (&luma[(y - 1) * s..], &luma[y * s..]);
            let mut sum = 0u64;
            for &x in &strips {
                let a = &above[x..x + width];
                let b = &here[x..x + width];
                sum += a
                    .iter()
                    .zip(b)
                    .map(|(&p, &q)| u32::from(diff(p, q)))
                    .sum::<u32>() as u64;
            }
            vb[y % 8] += sum;
            vc[y % 8] += (strips.len() * width) as u64;
        }
    }
    (grid_and_inside(&hb, &hc), grid_and_inside(&vb, &vc))
}

impl Detector for BlockinessDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Blockiness
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let scores: Vec<Option<f64>> = segment
            .video
            .iter()
            .map(|frame| {
                (frame.width >= 32 && frame.height >= 16).then(|| {
                    let (h, v) = block_ratios(frame);
                    h.min(v)
                })
            })
            .collect();
        let mut runs = Runs::new(IncidentKind::Blockiness, self.min_duration);
        for (i, frame) in segment.video.iter().enumerate() {
            // A starved encoder's frames alternate between worse and better (I/P/B): judge
            // each frame by the median of the (up to) five around it in the segment.
            let mut around: Vec<f64> = scores[i.saturating_sub(2)..(i + 3).min(scores.len())]
                .iter()
                .flatten()
                .copied()
                .collect();
            let Some(score) = scores[i] else {
                runs.push(frame.pts, frame.end(), None);
                continue;
            };
            m.add("blockiness.ratio", score);
            around.sort_by(f64::total_cmp);
            let median = around[around.len() / 2];
            let hit = [("block_ratio", median)];
            runs.push(
                frame.pts,
                frame.end(),
                (median >= self.threshold).then_some(&hit[..]),
            );
        }
        runs.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};

    fn texture(x: usize, y: usize) -> u8 {
        // Deterministic detail: a hash of the position.
        let v = (x as u32).wrapping_mul(2_654_435_761) ^ (y as u32).wrapping_mul(40_503);
        60 + (v >> 27) as u8 * 4
    }

    #[test]
    fn detailed_and_flat_pictures_are_not_blocky() {
        let d = BlockinessDetector::new(&BlockinessConfig::default());
        let detailed = video_segment(0, None, vec![frame(0, texture)]);
        assert!(d.analyze(&detailed).is_empty());
        let (h, v) = block_ratios(&detailed.video[0]);
        assert!(h < 1.2 && v < 1.2, "{h} {v}");
        let flat = video_segment(0, None, vec![frame(0, |_, _| 90)]);
        assert!(d.analyze(&flat).is_empty());
    }

    #[test]
    fn a_picture_made_of_flat_8x8_blocks_is_blocky_whatever_the_grid_offset() {
        let d = BlockinessDetector::new(&BlockinessConfig::default());
        for offset in [0, 3] {
            // Each 8x8 block at the mean of a detailed picture's block: a starved encoder.
            let blocky = move |x: usize, y: usize| {
                let (bx, by) = ((x + offset) / 8, (y + offset) / 8);
                50 + ((bx * 37 + by * 23) % 9) as u8 * 6
            };
            let seg = video_segment(0, None, (0..25).map(|n| frame(n * FRAME, blocky)).collect());
            let found = d.analyze(&seg);
            assert_eq!(found.len(), 1, "offset {offset}");
            assert!(found[0].evidence["block_ratio"].min > 3.0);
        }
    }
}
