//! `field_order`: interlaced content against the declared scan, judged per picture as
//! FFmpeg's idet filter (libavfilter/vf_idet.c) does, on the luma.
//!
//! For each line `y` of the current picture, idet measures the combing `|a + c - 2b|`
//! between the current picture's lines `y - 1` and `y + 1` and line `y` of the previous
//! picture, of the next, and of the current one: the first two add to `alpha[y & 1]` and
//! `alpha[(y ^ 1) & 1]`, the last to `delta`. Top field first when `alpha[0]` exceeds
//! `alpha[1]` by `interlace_threshold` (idet's `intl_thres`, 1.04), bottom field first the
//! other way round, progressive when `alpha[1]` exceeds `delta` by `progressive_threshold`
//! (`prog_thres`, 1.5), undetermined otherwise (a still or flat picture). Only pairs of
//! lines in every [`ROW_GROUP`] are measured (both parities, an eighth of the picture), on
//! one picture in [`STRIDE`], and on every picture of a segment where those contradict the
//! declaration by half the margins below.
//!
//! A segment contradicts its declaration when at least `min_judged` of its pictures were
//! judged and `min_share` of those show one scan against it: interlaced with one field
//! first where the stream declares progressive, or with the other field first. One scan:
//! idet misjudges moving progressive pictures (testsrc2's, say) as top first and bottom
//! first about equally, while interlaced content shows its order in picture after
//! picture, and plainly: the contradicting pictures' deciding ratio must average
//! `min_ratio` (idet also misjudges a progressive pan as one order steadily, but barely,
//! at 1.04-1.2). Progressive content declared interlaced is no contradiction (a progressive
//! picture shows right whichever way it is deinterlaced).

use vqa_core::config::FieldOrderConfig;
use vqa_core::model::{Scan, Segment, VideoFrame};
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::{Detector, DetectorName};

/// Of each group of this many lines, the first two are measured.
pub const ROW_GROUP: usize = 16;

/// One picture in this many is judged first, and every picture only in a segment where
/// those look like a contradiction: judging every picture of every segment was the most
/// costly part of the default suite after decoding (0.12 ms per 720p picture).
pub const STRIDE: usize = 4;

pub struct FieldOrderDetector {
    interlace_threshold: f64,
    progressive_threshold: f64,
    min_share: f64,
    min_judged: f64,
    min_ratio: f64,
}

/// What idet makes of one picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combing {
    TopFirst,
    BottomFirst,
    Progressive,
    Undetermined,
}

/// idet's `filter_line`, `Σ |a + c - 2b|` over a line, for three middle lines at once
/// (`bs`: the previous picture's, the next's, the current's), in 16-bit lanes the compiler
/// vectorises (`|a + c - 2b| ≤ 510`; 64 of them fit in a `u16`).
fn comb3(a: &[u8], bs: [&[u8]; 3], c: &[u8]) -> [u64; 3] {
    const LANES: usize = 64;
    let mut total = [0u64; 3];
    let n = a
        .len()
        .min(c.len())
        .min(bs.iter().map(|b| b.len()).min().unwrap_or(0));
    let mut x = 0;
    while x < n {
        let end = (x + LANES).min(n);
        let (a, c) = (&a[x..end], &c[x..end]);
        for (t, b) in total.iter_mut().zip(bs) {
            // Wrapping operations: none can overflow (see above), and checked ones would
            // keep the loop from being vectorised in builds with overflow checks.
            let mut s = 0u16;
            for ((&a, &b), &c) in a.iter().zip(&b[x..end]).zip(c) {
                let v = i16::from(a)
                    .wrapping_add(i16::from(c))
                    .wrapping_sub(i16::from(b).wrapping_mul(2));
                s = s.wrapping_add(v.unsigned_abs());
            }
            *t += u64::from(s);
        }
        x = end;
    }
    total
}

impl FieldOrderDetector {
    pub fn new(config: &FieldOrderConfig) -> Self {
        FieldOrderDetector {
            interlace_threshold: config.interlace_threshold,
            progressive_threshold: config.progressive_threshold,
            min_share: config.min_share,
            min_judged: config.min_judged,
            min_ratio: config.min_ratio,
        }
    }

    /// idet's single-picture verdict on `cur` between `prev` and `next` (its neighbours in
    /// time, of its size; otherwise undetermined), with the ratio that decided it.
    pub fn judge(&self, prev: &VideoFrame, cur: &VideoFrame, next: &VideoFrame) -> (Combing, f64) {
        let same =
            |f: &VideoFrame| f.width == cur.width && f.height == cur.height && f.is_well_formed();
        // idet compares neighbours: pictures apart in time (dropped, or thinned by a monitor
        // shedding load) say nothing of the fields.
        let adjacent = |a: &VideoFrame, b: &VideoFrame| (b.pts - a.end()).abs() <= a.duration / 2;
        let comparable =
            [prev, cur, next].into_iter().all(same) && adjacent(prev, cur) && adjacent(cur, next);
        if !comparable || cur.height < 6 {
            return (Combing::Undetermined, 0.0);
        }
        fn line(f: &VideoFrame, y: usize) -> &[u8] {
            let (w, s) = (f.width as usize, f.stride as usize);
            &f.luma[y * s..y * s + w]
        }
        let (mut alpha, mut delta) = ([0u64; 2], 0u64);
        for y in (2..cur.height as usize - 2).filter(|y| y % ROW_GROUP < 2) {
            let (above, below) = (line(cur, y - 1), line(cur, y + 1));
            let [p, n, c] = comb3(above, [line(prev, y), line(next, y), line(cur, y)], below);
            alpha[y & 1] += p;
            alpha[(y ^ 1) & 1] += n;
            delta += c;
        }
        let (a0, a1, d) = (alpha[0] as f64, alpha[1] as f64, delta as f64);
        if a0 > self.interlace_threshold * a1 {
            (Combing::TopFirst, a0 / a1.max(1.0))
        } else if a1 > self.interlace_threshold * a0 {
            (Combing::BottomFirst, a1 / a0.max(1.0))
        } else if a1 > self.progressive_threshold * d {
            (Combing::Progressive, a1 / d.max(1.0))
        } else {
            (Combing::Undetermined, 0.0)
        }
    }
}

/// The scan pictures combed so show, if any.
fn shown(combing: Combing) -> Option<Scan> {
    match combing {
        Combing::TopFirst => Some(Scan::TopFieldFirst),
        Combing::BottomFirst => Some(Scan::BottomFieldFirst),
        Combing::Progressive => Some(Scan::Progressive),
        Combing::Undetermined => None,
    }
}

/// Whether content showing `shown` contradicts the declared scan. Progressive content
/// declared interlaced does not: it shows right however it is deinterlaced.
fn contradicts(declared: Scan, shown: Scan) -> bool {
    use Scan::*;
    matches!(
        (declared, shown),
        (Progressive, TopFieldFirst | BottomFieldFirst)
            | (TopFieldFirst, BottomFieldFirst)
            | (BottomFieldFirst, TopFieldFirst)
    )
}

impl Detector for FieldOrderDetector {
    fn name(&self) -> DetectorName {
        DetectorName::FieldOrder
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let pictures: Vec<&VideoFrame> = segment.lead_in.iter().chain(&segment.video).collect();
        let lead = pictures.len() - segment.video.len();
        // The segment's pictures that have both neighbours, in steps of `step`.
        let every = |step: usize| -> Vec<usize> {
            (lead.max(1)..pictures.len().saturating_sub(1))
                .filter(|i| (i - lead).is_multiple_of(step))
                .collect()
        };
        // One picture in `STRIDE` first; every picture only where those look like a
        // contradiction (by half the margins), so the verdict is the one every picture
        // gives: six pictures can pass the share by chance where idet misjudges a moving
        // progressive picture.
        if self.tally(&pictures, &every(STRIDE), 0.5).is_none() {
            return Vec::new();
        }
        let Some(evidence) = self.tally(&pictures, &every(1), 1.0) else {
            return Vec::new();
        };
        let (Some(first), Some(last)) = (segment.video.first(), segment.video.last()) else {
            return Vec::new();
        };
        vec![Finding {
            kind: IncidentKind::FieldOrder,
            channel: None,
            start: first.pts,
            end: last.end(),
            reaches_end: true,
            starts_anew: false,
            level: Level::Raise,
            evidence,
        }]
    }
}

impl FieldOrderDetector {
    /// Judges `pictures[i]` for each `i` of `picks` (between its neighbours) and, when they
    /// contradict their declaration, the evidence: per scan shown, the deciding ratios, and
    /// the declaration. `strictness` scales the margins: 1 the configured ones, 0.5 half
    /// of each (`min_share`, `min_judged`, and `min_ratio`'s excess over 1).
    fn tally(
        &self,
        pictures: &[&VideoFrame],
        picks: &[usize],
        strictness: f64,
    ) -> Option<Evidence> {
        let declared_pictures = picks
            .iter()
            .filter(|&&i| pictures[i].format.scan != Scan::Unknown)
            .count();
        let mut evidence = Evidence::new();
        // Pictures judged, by declared scan (progressive, tff, bff) and scan shown, and the
        // sum of their deciding ratios.
        let mut judged = [[0usize; 3]; 3];
        let mut ratios = [[0f64; 3]; 3];
        let index = |scan: Scan| match scan {
            Scan::TopFieldFirst => Some(1),
            Scan::BottomFieldFirst => Some(2),
            Scan::Progressive => Some(0),
            Scan::Unknown => None,
        };
        for &i in picks {
            let cur = pictures[i];
            let Some(declared) = index(cur.format.scan) else {
                continue;
            };
            let (combing, ratio) = self.judge(pictures[i - 1], cur, pictures[i + 1]);
            let Some(scan) = shown(combing) else {
                continue;
            };
            let shown = index(scan).unwrap_or(0);
            judged[declared][shown] += 1;
            ratios[declared][shown] += ratio;
            evidence
                .entry(scan.as_str().to_string())
                .and_modify(|s| s.add(ratio))
                .or_insert_with(|| Summary::of(ratio));
        }
        // The declaration most pictures carry, and the one scan most of them show against
        // it: progressive content misjudged shows both field orders, or one but barely
        // (its combing ratio near idet's threshold); interlaced content shows one order
        // plainly, picture after picture.
        let all: usize = judged.iter().flatten().sum();
        let declared = (0..3).max_by_key(|&d| judged[d].iter().sum::<usize>())?;
        let scans = [
            Scan::Progressive,
            Scan::TopFieldFirst,
            Scan::BottomFieldFirst,
        ];
        let against = (0..3)
            .filter(|&s| contradicts(scans[declared], scans[s]))
            .max_by_key(|&s| judged[declared][s])?;
        let count = judged[declared][against];
        let mean_ratio = ratios[declared][against] / count.max(1) as f64;
        let enough =
            all > 0 && all as f64 >= strictness * self.min_judged * declared_pictures as f64;
        let share = (count as f64) >= strictness * self.min_share * all as f64;
        let plain = mean_ratio >= 1.0 + strictness * (self.min_ratio - 1.0);
        if !(enough && share && plain && count > 0) {
            return None;
        }
        evidence.insert("declared".into(), Summary::of(declared as f64));
        Some(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, video_segment, FRAME};

    /// A vertical bar moving right 4 px a picture on a 64x36 picture; interlaced, each
    /// field is sampled at its own instant: the first field half a picture before the
    /// second (`Some(true)`: top first, `Some(false)`: bottom first, `None`: progressive).
    fn moving(n: i64, interlaced: Option<bool>, scan: Scan) -> VideoFrame {
        let mut f = frame(n * FRAME, move |x, y| {
            let half = match interlaced {
                None => 0,
                Some(top_first) => usize::from((y % 2 == 1) == top_first) * 2,
            };
            let pos = ((n + 1) as usize * 4 + half) % 64;
            let d = (x + 64 - pos) % 64;
            if d < 10 {
                200
            } else {
                40 + (x % 7) as u8
            }
        });
        f.format.scan = scan;
        f
    }

    fn run(interlaced: Option<bool>, scan: Scan) -> Vec<Finding> {
        let d = FieldOrderDetector::new(&FieldOrderConfig::default());
        let frames = (0..25).map(|n| moving(n, interlaced, scan)).collect();
        d.analyze(&video_segment(
            0,
            Some(moving(-1, interlaced, scan)),
            frames,
        ))
    }

    #[test]
    fn pictures_are_judged_as_idet_does() {
        let d = FieldOrderDetector::new(&FieldOrderConfig::default());
        let t = |interlaced| {
            let f = |n| moving(n, interlaced, Scan::Unknown);
            d.judge(&f(0), &f(1), &f(2)).0
        };
        assert_eq!(t(Some(true)), Combing::TopFirst);
        assert_eq!(t(Some(false)), Combing::BottomFirst);
        assert_eq!(t(None), Combing::Progressive);
        // Pictures apart in time (one in two kept) say nothing.
        let f = |n| moving(n, Some(true), Scan::Unknown);
        assert_eq!(d.judge(&f(0), &f(2), &f(4)).0, Combing::Undetermined);
        // A still picture shows nothing.
        let still = frame(0, |x, _| (x * 3) as u8);
        assert_eq!(d.judge(&still, &still, &still).0, Combing::Undetermined);
    }

    #[test]
    fn contradictions_are_found_and_agreements_are_not() {
        let found = run(Some(true), Scan::Progressive);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].start, found[0].end), (0, 25 * FRAME));
        assert_eq!(found[0].evidence["declared"].max, 0.0);
        assert!(found[0].evidence["tff"].count >= 20, "{found:?}");
        let found = run(Some(false), Scan::TopFieldFirst);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].evidence["declared"].max, 1.0);
        assert_eq!(run(Some(true), Scan::BottomFieldFirst).len(), 1);
        // Agreeing, progressive declared interlaced, or nothing declared: nothing.
        assert!(run(Some(true), Scan::TopFieldFirst).is_empty());
        assert!(run(Some(false), Scan::BottomFieldFirst).is_empty());
        assert!(run(None, Scan::Progressive).is_empty());
        assert!(run(None, Scan::TopFieldFirst).is_empty());
        assert!(run(Some(true), Scan::Unknown).is_empty());
        // Combing too faint for `min_ratio`: nothing.
        let faint = FieldOrderDetector::new(&FieldOrderConfig {
            min_ratio: 1000.0,
            ..FieldOrderConfig::default()
        });
        let frames = (0..25)
            .map(|n| moving(n, Some(true), Scan::Progressive))
            .collect();
        let lead_in = Some(moving(-1, Some(true), Scan::Progressive));
        assert!(faint.analyze(&video_segment(0, lead_in, frames)).is_empty());
    }

    #[test]
    fn both_field_orders_in_turn_are_no_contradiction() {
        // Half the segment woven top first, half bottom first, declared progressive: what
        // idet makes of moving progressive pictures, not interlaced content.
        let d = FieldOrderDetector::new(&FieldOrderConfig::default());
        let mixed = |n: i64| moving(n, Some(n < 12), Scan::Progressive);
        let frames = (0..25).map(mixed).collect();
        let found = d.analyze(&video_segment(0, Some(mixed(-1)), frames));
        assert!(found.is_empty(), "{found:?}");
    }
}
