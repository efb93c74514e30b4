//! `blockiness`: macroblocking (a starved encoder, concealed damage), without a reference.
//!
//! Codecs quantise the picture in 8x8 blocks (4x4 and 16x16 too). When they are starved of
//! bits, or conceal lost slices, the picture goes flat inside blocks and steps at their
//! edges; a deblocking filter softens the steps but leaves the flat blocks. Per picture, on a
//! sample of 8-row bands over the full width (about 32 bands whatever the height), each 8x8
//! block's luma differences are summed across its left and top edges and inside it; the
//! picture's 24 features (per direction: the profile of differences by distance from the
//! grid, the shares of nearly constant, flat and smooth blocks, of flat blocks with a small
//! step at their edge and of blocks whose edge stands out, and activity) go through a small
//! neural network trained on natural content (`scripts/corpus/train.py`, weights in
//! `models/blockiness_natural.rs`, docs/block-corruption.md): the probability that the
//! picture is visibly blocky, with the raise threshold chosen in training folded into it
//! (the configured 0.5 is where the network was chosen to raise).
//!
//! Cost: one picture in [`STRIDE`] is scored; where two scored pictures disagree, the pictures
//! between them are scored too, so a run's edges are exact to the frame. The grid is assumed
//! at the picture's top-left (where the last encoder put it, which is where damage happens).

use vqa_core::config::BlockinessConfig;
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Finding, IncidentKind, Measurements};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;

#[allow(clippy::excessive_precision, clippy::unreadable_literal)]
mod model {
    include!("../../../models/blockiness_natural.rs");
}

/// The number of features per picture.
pub const FEATURES: usize = model::FEATURES;
/// One picture in this many is scored outright.
pub const STRIDE: usize = 4;
/// About this many 8-row bands are sampled per picture.
const BANDS: usize = 32;

pub struct BlockinessDetector {
    levels: Levels,
    min_duration: Micros,
}

/// The raise and clear thresholds of the blocky probability.
#[derive(Clone, Copy)]
struct Levels {
    raise: f64,
    clear: f64,
}

impl Levels {
    /// 2 at or above the raise threshold, 1 at or above the clear one, else 0.
    fn of(self, p: Option<f64>) -> Option<u8> {
        p.map(|p| u8::from(p >= self.raise) + u8::from(p >= self.clear))
    }
}

impl BlockinessDetector {
    pub fn new(config: &BlockinessConfig) -> Self {
        BlockinessDetector {
            levels: Levels {
                raise: config.threshold,
                clear: config.clear_threshold.min(config.threshold),
            },
            min_duration: time::from_secs(config.min_duration),
        }
    }
}

/// Differences are clipped here: a natural edge counts no more than a strong block step.
const DIFF_CLIP: u8 = 32;
/// A block's difference inside (over 56 pixel pairs) at most these is flat: nearly
/// constant, flat (0.5 per pair), smooth (1.5 per pair).
const FLAT: [u32; 3] = [8, 28, 84];
/// Per-block edge sums (8 pixel pairs) are clipped here in the means.
const EDGE_CLIP: u32 = 20 * 8;

/// Sums over the sampled blocks and pixels of one direction.
#[derive(Default)]
struct Direction {
    blocks: u32,
    /// Edge differences per pixel pair, summed over blocks.
    edge: f64,
    /// Differences inside, per pixel pair, summed over blocks.
    inside: f64,
    flat: [u32; 3],
    /// Flat blocks with a small step (1 to 20 per pixel pair) at their edge.
    flat_step: u32,
    /// Blocks whose edge stands out from their inside.
    standing_out: u32,
    /// Differences summed by position modulo 16 (0: across a 16-grid edge, 8: an 8-only one).
    profile: [u64; 16],
}

impl Direction {
    /// One block: `edge` summed over 8 pixel pairs, `inside` over 56.
    fn add(&mut self, edge: u32, inside: u32) {
        let e = f64::from(edge.min(EDGE_CLIP)) / 8.0;
        let i = f64::from(inside) / 56.0;
        self.blocks += 1;
        self.edge += e;
        self.inside += i;
        for (n, &limit) in self.flat.iter_mut().zip(&FLAT) {
            *n += u32::from(inside <= limit);
        }
        if inside <= FLAT[1] && (8..EDGE_CLIP).contains(&edge) {
            self.flat_step += 1;
        }
        if e > 2.0 * i + 2.0 {
            self.standing_out += 1;
        }
    }

    /// Position profile (ln of each distance class from the grid over the mean), flatness,
    /// edges and activity.
    fn features(&self) -> [f32; FEATURES / 2] {
        let n = f64::from(self.blocks.max(1));
        let p = self.profile.map(|v| v as f64);
        let mean = p.iter().sum::<f64>() / 16.0;
        let floor = 0.02 * mean + 1.0;
        let class = |ks: &[usize]| {
            let v = ks.iter().map(|&k| p[k]).sum::<f64>() / ks.len() as f64;
            ((v + floor) / (mean + floor)).ln() as f32
        };
        let share = |k: u32| (f64::from(k) / n) as f32;
        [
            class(&[0]),
            class(&[8]),
            class(&[1, 7, 9, 15]),
            class(&[2, 6, 10, 14]),
            class(&[3, 5, 11, 13]),
            class(&[4, 12]),
            share(self.flat[0]),
            share(self.flat[1]),
            share(self.flat[2]),
            (f64::from(self.flat_step) / (f64::from(self.flat[1]) + 1.0)) as f32,
            share(self.standing_out),
            (self.inside / n).ln_1p() as f32,
        ]
    }
}

/// The picture's block features (horizontal twelve, then vertical twelve); `None` for
/// pictures under 24x24 or malformed.
pub fn block_features(frame: &VideoFrame) -> Option<[f32; FEATURES]> {
    let (w, h, s) = (
        frame.width as usize,
        frame.height as usize,
        frame.stride as usize,
    );
    if w < 24 || h < 24 || !frame.is_well_formed() {
        return None;
    }
    let luma = &frame.luma[..];
    let row = |y: usize| &luma[y * s..y * s + w];
    let cols = w / 16 * 16;
    let bands = h / 8;
    // An odd step, so that sampled bands alternate between 16-grid and 8-only top edges.
    let step = ((bands - 1) / BANDS).max(1) | 1;
    // Per column x of one band: horizontal differences |p(x) - p(x-1)| summed over its 8
    // rows; vertical |p(y) - p(y-1)| at its top edge and summed inside it.
    let mut across = vec![0u16; cols];
    let mut vertical = vec![0u8; cols];
    let mut top = vec![0u8; cols];
    let mut down = vec![0u16; cols];
    let (mut hd, mut vd) = (Direction::default(), Direction::default());
    for band in (1..bands).step_by(step) {
        let y0 = band * 8;
        across.fill(0);
        down.fill(0);
        for y in y0..y0 + 8 {
            let (above, here) = (&row(y - 1)[..cols], &row(y)[..cols]);
            for (a, pair) in across[1..].iter_mut().zip(here.windows(2)) {
                *a += u16::from(pair[1].abs_diff(pair[0]).min(DIFF_CLIP));
            }
            for ((v, &p), &q) in vertical.iter_mut().zip(above).zip(here) {
                *v = p.abs_diff(q).min(DIFF_CLIP);
            }
            let total: u64 = vertical.iter().map(|&v| u64::from(v)).sum();
            vd.profile[(band % 2) * 8 + (y - y0)] += total;
            if y == y0 {
                top.copy_from_slice(&vertical);
            } else {
                for (d, &v) in down.iter_mut().zip(&vertical) {
                    *d += u16::from(v);
                }
            }
        }
        for chunk in across.chunks_exact(16) {
            for (p, &v) in hd.profile.iter_mut().zip(chunk) {
                *p += u64::from(v);
            }
        }
        for c in 1..cols / 8 {
            let x0 = c * 8;
            let sum = |v: &[u16]| v.iter().map(|&d| u32::from(d)).sum::<u32>();
            hd.add(u32::from(across[x0]), sum(&across[x0 + 1..x0 + 8]));
            let edge_v: u32 = top[x0..x0 + 8].iter().map(|&v| u32::from(v)).sum();
            vd.add(edge_v, sum(&down[x0..x0 + 8]));
        }
    }
    let mut out = [0f32; FEATURES];
    out[..FEATURES / 2].copy_from_slice(&hd.features());
    out[FEATURES / 2..].copy_from_slice(&vd.features());
    Some(out)
}

/// The probability that a picture with these features is visibly blocky.
pub fn blocky_probability(features: &[f32; FEATURES]) -> f64 {
    let x: Vec<f32> = features
        .iter()
        .zip(&model::MEAN)
        .zip(&model::SCALE)
        .map(|((&f, &m), &s)| (f - m) / s)
        .collect();
    let mut z = model::B2;
    for (weights, (&bias, &out)) in model::W1.iter().zip(model::B1.iter().zip(&model::W2)) {
        let a: f32 = bias + weights.iter().zip(&x).map(|(w, v)| w * v).sum::<f32>();
        z += out * a.max(0.0);
    }
    1.0 / (1.0 + f64::from(-z).exp())
}

/// The picture's blocky probability; `None` for pictures too small to judge.
pub fn frame_score(frame: &VideoFrame) -> Option<f64> {
    block_features(frame).map(|f| blocky_probability(&f))
}

/// Every picture's score, scoring one in [`STRIDE`] and the pictures around a change of
/// level ([`crate::sparse`]).
fn scores(frames: &[VideoFrame], levels: Levels) -> Vec<Option<f64>> {
    crate::sparse::sparse_scores(
        frames.len(),
        STRIDE,
        |i| frame_score(&frames[i]),
        |a, b| levels.of(a) == levels.of(b),
    )
}

impl Detector for BlockinessDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Blockiness
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let scores = scores(&segment.video, self.levels);
        let mut raises = Runs::new(IncidentKind::Blockiness, self.min_duration);
        let mut holds = Runs::holding(IncidentKind::Blockiness);
        for (frame, &score) in segment.video.iter().zip(&scores) {
            if let Some(p) = score {
                m.add("blockiness.score", p);
            }
            let hit = score.map(|p| [("block_score", p)]);
            let level = self.levels.of(score).unwrap_or(0);
            let at = |want: u8| hit.as_ref().filter(|_| level == want).map(|h| &h[..]);
            raises.push(frame.pts, frame.end(), at(2));
            holds.push(frame.pts, frame.end(), at(1));
        }
        let mut findings = raises.finish();
        findings.extend(holds.finish());
        findings
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
    fn flat_blocks_stepping_at_the_grid_read_as_blocks_and_texture_does_not() {
        let detailed = block_features(&frame(0, texture)).expect("64x36 is scored");
        let blocky = block_features(&frame(0, |x, y| {
            50 + (((x / 8) * 37 + (y / 8) * 10) % 9) as u8 * 6
        }))
        .expect("64x36 is scored");
        // Differences across the grid over the mean (ln), both directions: about 0 on
        // texture, large on blocks.
        // The texture varies along rows (its rows repeat): its horizontal half is detailed.
        let half = FEATURES / 2;
        for k in [0, 1] {
            assert!(detailed[k].abs() < 0.3, "{k}: {}", detailed[k]);
        }
        for k in [0, 1, half, half + 1] {
            assert!(blocky[k] > 1.0, "{k}: {}", blocky[k]);
        }
        assert_eq!(detailed[7], 0.0, "no textured block is flat");
        // Every block is flat, and most step at their edge (where neighbours differ).
        for k in [7, half + 7] {
            assert_eq!(blocky[k], 1.0, "{k}");
            assert!(blocky[k + 2] > 0.8, "{}", blocky[k + 2]);
        }
    }

    #[test]
    fn tiny_or_malformed_pictures_are_not_scored() {
        let mut f = frame(0, texture);
        f.height = 16;
        assert!(block_features(&f).is_none());
        let mut g = frame(0, texture);
        g.stride = 10;
        assert!(block_features(&g).is_none());
    }

    #[test]
    fn every_picture_gets_a_score_and_steady_runs_score_few() {
        let seg = video_segment(
            0,
            None,
            (0..25).map(|n| frame(n * FRAME, texture)).collect(),
        );
        let levels = Levels {
            raise: 0.5,
            clear: 0.3,
        };
        let s = scores(&seg.video, levels);
        assert_eq!(s.len(), 25);
        assert!(s.iter().all(|v| v.is_some()));
        // Identical pictures: the anchors agree, so the pictures between take their score.
        assert!(s.windows(2).all(|w| w[0] == w[1]));
    }
}
