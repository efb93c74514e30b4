//! The per-second graphs under the timeline: what each plots, from which measurement, against
//! which configured limits, and how one is drawn.

use std::fmt::Write;

use vqa_core::config::PipelineConfig;
use vqa_core::loudness::{MOMENTARY, SHORT_TERM, TRUE_PEAK};
use vqa_core::report::{Histogram, Incident, Measurements, Summary, AV_SYNC_OFFSET_MS};
use vqa_core::{time, DetectorName, IncidentKind, MediaInfo};

use crate::series::Point;
use crate::svg::{esc, TimeAxis, PALETTE};

/// Measurement: mean absolute difference of consecutive frames, 8-bit code values (the
/// freeze detector's).
pub const FREEZE_MAFD: &str = "freeze.mafd";
/// Measurement: share of a frame's pixels that are black, 0 to 1 (the black detector's).
pub const BLACK_RATIO: &str = "black.ratio";
pub use vqa_core::report::BLUR_EDGE_WIDTH;
/// Every measurement whose name starts with one of these is a block corruption score: the
/// blockiness detector's measure may be renamed or joined by others without this page
/// changing.
pub const BLOCK_CORRUPTION_PREFIXES: [&str; 1] = ["blockiness."];

/// Colours of several lines on one graph: the palette without the severities' orange and
/// red.
const LINE_COLOURS: [&str; 6] = [
    PALETTE[0],
    PALETTE[4],
    PALETTE[6],
    PALETTE[3],
    PALETTE[8],
    PALETTE[11],
];

/// Height of a graph's plotting area, px.
const PLOT_HEIGHT: f64 = 110.0;
/// Above the plot: the title and legend.
const TOP: f64 = 28.0;
/// Below the plot: the time labels.
const BOTTOM: f64 = 22.0;

/// One plotted quantity: per point, the lowest, typical and highest value (drawn as a band
/// and a line), or nothing where the segment did not measure it.
struct Line {
    name: String,
    colour: &'static str,
    values: Vec<Option<Span>>,
    /// Drawn as dots rather than a line: the measurement is sparse (one per event).
    dots: bool,
}

/// Lowest, typical and highest value of a segment's measurement.
type Span = (f64, f64, f64);

/// A configured limit: a line (`lo == hi`) or a band.
struct Guide {
    lo: f64,
    hi: f64,
    label: String,
}

/// A graph, ready to draw.
pub(crate) struct Graph {
    /// Its name in the page (`data-graph`), for tests and anchors.
    id: &'static str,
    title: String,
    y: (f64, f64),
    lines: Vec<Line>,
    guides: Vec<Guide>,
    /// Incidents of these kinds are shaded behind the plot.
    kinds: Vec<IncidentKind>,
    /// Said in place of the plot when no point has a value.
    absent: String,
}

fn summary_of(m: &Measurements, name: &str) -> Option<Summary> {
    m.values.get(name).copied()
}

fn span(s: Summary, f: impl Fn(f64) -> f64) -> Span {
    (f(s.min), f(s.mean), f(s.max))
}

/// Lowest, mean and highest value of a histogram of 0.1-unit bins.
fn histogram_span(h: &Histogram) -> Option<Span> {
    let lo = f64::from(*h.keys().next()?) / 10.0;
    let hi = f64::from(*h.keys().next_back()?) / 10.0;
    let (sum, n) = h.iter().fold((0.0, 0u64), |(s, n), (&b, &c)| {
        (s + f64::from(b) / 10.0 * c as f64, n + c)
    });
    Some((lo, sum / n.max(1) as f64, hi))
}

/// Mean absolute difference (code values) as dB of full scale, as `freeze.noise_db` is.
fn mafd_db(mafd: f64) -> f64 {
    20.0 * (mafd.max(1e-6) / 255.0).log10()
}

/// Why a graph has no data, in words.
fn absent(config: &PipelineConfig, media: &MediaInfo, detector: DetectorName) -> String {
    let audio = matches!(
        detector,
        DetectorName::Loudness | DetectorName::AvSync | DetectorName::Silence
    );
    if !config.detectors.contains(&detector) {
        format!("not measured: the {detector} detector did not run")
    } else if audio && media.audio.is_none() {
        "not measured: the input has no audio".into()
    } else if !audio && media.video.is_none() {
        "not measured: the input has no video".into()
    } else if detector == DetectorName::AvSync {
        "not measured: no sync test pattern (white flash with a beep) was found".into()
    } else {
        "not measured in any segment".into()
    }
}

/// Highest of the values and `floor`, for an automatic upper bound.
fn top_of(lines: &[Line], floor: f64) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .map(|v| v.2)
        .fold(floor, f64::max)
}

/// The graphs of the page, in order.
pub(crate) fn graphs(points: &[Point], config: &PipelineConfig, media: &MediaInfo) -> Vec<Graph> {
    let line = |name: &str, colour, f: &dyn Fn(&Measurements) -> Option<Span>| Line {
        name: name.to_string(),
        colour,
        values: points.iter().map(|p| f(&p.measurements)).collect(),
        dots: false,
    };
    let mut out = Vec::new();

    let freeze = line("frame difference", PALETTE[0], &|m| {
        summary_of(m, FREEZE_MAFD).map(|s| span(s, mafd_db))
    });
    out.push(Graph {
        id: "freeze",
        title: "Frame difference, dB of full scale (freeze)".into(),
        y: (-80.0, 0.0),
        lines: vec![freeze],
        guides: vec![Guide {
            lo: config.freeze.noise_db,
            hi: config.freeze.noise_db,
            label: format!("unchanged below {} dB", config.freeze.noise_db),
        }],
        kinds: vec![IncidentKind::Freeze],
        absent: absent(config, media, DetectorName::Freeze),
    });

    let black = line("black pixels", PALETTE[0], &|m| {
        summary_of(m, BLACK_RATIO).map(|s| span(s, |v| v * 100.0))
    });
    let ratio = config.black.picture_ratio * 100.0;
    out.push(Graph {
        id: "black",
        title: "Black pixels, % of the picture (black)".into(),
        y: (0.0, 100.0),
        lines: vec![black],
        guides: vec![Guide {
            lo: ratio,
            hi: ratio,
            label: format!("black at {ratio:.0}%"),
        }],
        kinds: vec![IncidentKind::Black],
        absent: absent(config, media, DetectorName::Black),
    });

    let mut names: Vec<&String> = points
        .iter()
        .flat_map(|p| p.measurements.values.keys())
        .filter(|n| BLOCK_CORRUPTION_PREFIXES.iter().any(|p| n.starts_with(p)))
        .collect();
    names.sort();
    names.dedup();
    let blocks: Vec<Line> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            line(name, LINE_COLOURS[i % LINE_COLOURS.len()], &|m| {
                summary_of(m, name).map(|s| span(s, |v| v))
            })
        })
        .collect();
    // The section's `threshold`, when it has one on the scale of its measure.
    let threshold = serde_json::to_value(&config.blockiness)
        .ok()
        .and_then(|v| v.get("threshold").and_then(serde_json::Value::as_f64));
    out.push(Graph {
        id: "blockiness",
        title: "Block corruption score (blockiness)".into(),
        y: (
            0.0,
            top_of(&blocks, threshold.unwrap_or(0.0)).max(1e-3) * 1.15,
        ),
        lines: blocks,
        guides: threshold
            .filter(|_| names.len() == 1)
            .map(|t| Guide {
                lo: t,
                hi: t,
                label: format!("blocky above {t}"),
            })
            .into_iter()
            .collect(),
        kinds: vec![IncidentKind::Blockiness, IncidentKind::Corruption],
        absent: absent(config, media, DetectorName::Blockiness),
    });

    let blur = line("edge width", PALETTE[0], &|m| {
        summary_of(m, BLUR_EDGE_WIDTH).map(|s| span(s, |v| v))
    });
    let max_width = config.blur.max_edge_width;
    let blur_top = top_of(std::slice::from_ref(&blur), max_width * 1.5);
    out.push(Graph {
        id: "blur",
        title: "Sharpness: edge width, px, wider is softer (blur)".into(),
        y: (0.0, blur_top * 1.05),
        lines: vec![blur],
        guides: vec![Guide {
            lo: max_width,
            hi: max_width,
            label: format!("blurred above {max_width} px"),
        }],
        kinds: vec![IncidentKind::Blur],
        absent: absent(config, media, DetectorName::Blur),
    });

    let l = &config.loudness;
    let momentary = line("momentary (400 ms)", PALETTE[0], &|m| {
        m.histograms.get(MOMENTARY).and_then(histogram_span)
    });
    // Not orange: that is a major incident's colour.
    let short_term = line("short-term (3 s)", PALETTE[6], &|m| {
        m.histograms.get(SHORT_TERM).and_then(histogram_span)
    });
    out.push(Graph {
        id: "loudness",
        title: "Loudness, LUFS (loudness)".into(),
        y: (-60.0, 0.0),
        lines: vec![momentary, short_term],
        guides: vec![
            Guide {
                lo: l.target_lufs - l.tolerance_lu,
                hi: l.target_lufs + l.tolerance_lu,
                label: format!(
                    "target {} LUFS ±{} LU (programme, {})",
                    l.target_lufs,
                    l.tolerance_lu,
                    if l.programme_window > 0.0 {
                        format!("last {} s", l.programme_window)
                    } else {
                        "whole input".to_string()
                    }
                ),
            },
            Guide {
                lo: l.target_lufs + l.max_above_lu,
                hi: l.target_lufs + l.max_above_lu,
                label: format!("short-term maximum {} LUFS", l.target_lufs + l.max_above_lu),
            },
        ],
        kinds: vec![
            IncidentKind::Loudness,
            IncidentKind::LoudnessJump,
            IncidentKind::Silence,
        ],
        absent: absent(config, media, DetectorName::Loudness),
    });

    let peak = line("true peak", PALETTE[0], &|m| {
        summary_of(m, TRUE_PEAK).map(|s| span(s, |v| v))
    });
    out.push(Graph {
        id: "true_peak",
        title: "True peak, dBTP (loudness)".into(),
        y: (-40.0, 3.0),
        lines: vec![peak],
        guides: vec![Guide {
            lo: l.max_true_peak_dbtp,
            hi: l.max_true_peak_dbtp,
            label: format!("maximum {} dBTP", l.max_true_peak_dbtp),
        }],
        kinds: vec![IncidentKind::TruePeak, IncidentKind::Clipping],
        absent: absent(config, media, DetectorName::Loudness),
    });

    let a = &config.av_sync;
    let mut offset = line("audio minus picture", PALETTE[0], &|m| {
        summary_of(m, AV_SYNC_OFFSET_MS).map(|s| span(s, |v| v))
    });
    offset.dots = true;
    let reach = offset
        .values
        .iter()
        .flatten()
        .map(|v| v.0.abs().max(v.2.abs()))
        .fold(a.max_late_ms.max(a.max_early_ms).max(50.0), f64::max)
        * 1.25;
    out.push(Graph {
        id: "av_sync",
        title: "A/V offset, ms, positive: audio late (av_sync)".into(),
        y: (-reach, reach),
        lines: vec![offset],
        guides: vec![Guide {
            lo: -a.max_early_ms,
            hi: a.max_late_ms,
            label: format!(
                "tolerated: {} ms early to {} ms late",
                a.max_early_ms, a.max_late_ms
            ),
        }],
        kinds: vec![IncidentKind::AvSync],
        absent: absent(config, media, DetectorName::AvSync),
    });
    out
}

impl Graph {
    pub(crate) fn points_with_data(&self) -> usize {
        self.lines
            .iter()
            .map(|l| l.values.iter().flatten().count())
            .sum()
    }

    /// The graph as an SVG as wide as the timeline, on its time axis.
    pub(crate) fn draw(
        &self,
        points: &[Point],
        incidents: &[Incident],
        axis: &TimeAxis,
        width: f64,
    ) -> String {
        let height = TOP + PLOT_HEIGHT + BOTTOM;
        let (top, bottom) = (TOP, TOP + PLOT_HEIGHT);
        let (y0, y1) = self.y;
        let y = |v: f64| bottom - ((v - y0) / (y1 - y0)).clamp(0.0, 1.0) * PLOT_HEIGHT;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" class="graph" data-graph="{id}" data-points="{n}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"##,
            id = self.id,
            n = self.points_with_data(),
        );
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="16" font-size="14" font-weight="bold">{}</text>"##,
            axis.left,
            esc(&self.title)
        );
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{PLOT_HEIGHT}" fill="#fafafa" stroke="#ccc"/>"##,
            axis.left, axis.width
        );
        svg.push_str(&axis.grid(top, bottom, true));
        // The incidents this graph explains, shaded behind it.
        for i in incidents.iter().filter(|i| self.kinds.contains(&i.kind)) {
            let x = axis.x(time::to_secs(i.start));
            let w = (axis.x(time::to_secs(i.end)) - x).max(2.0);
            let _ = write!(
                svg,
                r##"<rect class="incident-shade" x="{x:.1}" y="{top}" width="{w:.1}" height="{PLOT_HEIGHT}" fill="#e15759" fill-opacity="0.13"><title>{}</title></rect>"##,
                esc(&crate::incident_title(i))
            );
        }
        for g in &self.guides {
            if g.lo == g.hi {
                let gy = y(g.lo);
                let _ = write!(
                    svg,
                    r##"<line class="guide" x1="{:.1}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#c0392b" stroke-dasharray="5 4"/>"##,
                    axis.left,
                    axis.left + axis.width
                );
            } else {
                let (a, b) = (y(g.hi), y(g.lo));
                let _ = write!(
                    svg,
                    r##"<rect class="guide" x="{:.1}" y="{a:.1}" width="{:.1}" height="{:.1}" fill="#59a14f" fill-opacity="0.16" stroke="#59a14f" stroke-opacity="0.5" stroke-dasharray="5 4"/>"##,
                    axis.left,
                    axis.width,
                    b - a
                );
            }
        }
        // Value labels on the left: the range and each limit.
        let mut labels: Vec<f64> = vec![y0, y1];
        for g in &self.guides {
            labels.push(g.lo);
            if g.hi != g.lo {
                labels.push(g.hi);
            }
        }
        let mut placed: Vec<f64> = Vec::new();
        for v in labels {
            let ly = y(v);
            if placed.iter().any(|p| (p - ly).abs() < 11.0) {
                continue;
            }
            placed.push(ly);
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
                axis.left - 6.0,
                ly + 4.0,
                number(v)
            );
        }
        if self.points_with_data() == 0 {
            let _ = write!(
                svg,
                r##"<text class="absent" x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888" font-size="14">{}</text>"##,
                axis.left + axis.width / 2.0,
                top + PLOT_HEIGHT / 2.0 + 5.0,
                esc(&self.absent)
            );
        }
        for line in &self.lines {
            svg.push_str(&draw_line(line, points, axis, &y));
        }
        // Legend: each line, then each limit, along the top right.
        let mut legend: Vec<(String, &str, bool)> = self
            .lines
            .iter()
            .map(|l| (l.name.clone(), l.colour, false))
            .collect();
        legend.extend(self.guides.iter().map(|g| {
            let colour = if g.lo == g.hi { "#c0392b" } else { "#59a14f" };
            (g.label.clone(), colour, true)
        }));
        let mut x = axis.left + axis.width;
        for (label, colour, guide) in legend.iter().rev() {
            let _ = write!(
                svg,
                r##"<text x="{x:.1}" y="16" text-anchor="end" fill="#333">{}</text>"##,
                esc(label)
            );
            // About 7 px per character at 12 px, and a gap before the swatch.
            x -= label.chars().count() as f64 * 7.2 + 24.0;
            if *guide {
                let _ = write!(
                    svg,
                    r##"<line x1="{x:.1}" y1="12" x2="{:.1}" y2="12" stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"/>"##,
                    x + 15.0
                );
            } else {
                let _ = write!(
                    svg,
                    r##"<rect x="{x:.1}" y="6" width="15" height="10" fill="{colour}"/>"##
                );
            }
            x -= 16.0;
        }
        svg.push_str("</svg>");
        svg
    }
}

/// A value label: no more decimals than it needs.
fn number(v: f64) -> String {
    let s = if v.abs() >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// One line: its band (lowest to highest per segment), and its typical value as a polyline
/// through the segments' middles, broken where a segment has no value; or as dots.
fn draw_line(line: &Line, points: &[Point], axis: &TimeAxis, y: &dyn Fn(f64) -> f64) -> String {
    let mut svg = String::new();
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut previous_end: Option<vqa_core::Micros> = None;
    for (p, v) in points.iter().zip(&line.values) {
        let Some((lo, mid, hi)) = *v else {
            previous_end = None;
            continue;
        };
        let (x0, x1) = (axis.x(time::to_secs(p.start)), axis.x(time::to_secs(p.end)));
        let (top, bottom) = (y(hi), y(lo));
        if bottom - top > 0.5 {
            let _ = write!(
                svg,
                r##"<rect x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.22"/>"##,
                (x1 - x0).max(0.5),
                bottom - top,
                line.colour
            );
        }
        let point = ((x0 + x1) / 2.0, y(mid));
        // A gap of more than a millisecond between segments breaks the line.
        match (previous_end, runs.last_mut()) {
            (Some(end), Some(run)) if (p.start - end).abs() <= 1_000 => run.push(point),
            _ => runs.push(vec![point]),
        }
        previous_end = Some(p.end);
    }
    for run in &runs {
        if line.dots || run.len() == 1 {
            for (x, y) in run {
                let _ = write!(
                    svg,
                    r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{}"/>"##,
                    line.colour
                );
            }
        }
        if !line.dots && run.len() > 1 {
            let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                svg,
                r##"<polyline class="series" data-name="{}" points="{}" fill="none" stroke="{}" stroke-width="1.6"/>"##,
                esc(&line.name),
                pts.join(" "),
                line.colour
            );
        }
    }
    svg
}
