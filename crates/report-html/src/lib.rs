//! vqa's visual report (`vqa analyze INPUT --html FILE`): one self-contained HTML page — inline
//! CSS and SVG, no scripts, no external files — with a header (input, media, coverage,
//! incidents by kind), a timeline of the incidents (a lane per kind and channel, coloured by
//! severity, each bar titled with its times and evidence), and under it, on the same time
//! axis, per-second graphs of the measurements behind them: frame difference, black share,
//! block corruption score, sharpness, momentary and short-term loudness against the target
//! window, true peak and A/V offset, each against its configured limits (what QCTools shows
//! archivists, for monitoring).
//!
//! Rendering is a pure function of the stream report, the per-segment measurements a
//! [`Recorder`] kept while the step ran, and the configuration. [`svg`] holds what vqa's
//! HTML pages share (the bench page too).

mod graphs;
mod series;
pub mod svg;

use std::collections::BTreeMap;
use std::fmt::Write;

use vqa_core::config::PipelineConfig;
use vqa_core::report::{Incident, Severity};
use vqa_core::{time, IncidentKind, MediaInfo, StreamReport};

pub use graphs::{BLACK_RATIO, BLOCK_CORRUPTION_PREFIXES, BLUR_EDGE_WIDTH, FREEZE_MAFD};
pub use series::{Point, Recorder};

use svg::{esc, TimeAxis};

/// The page's charts: width, and the column of lane labels on their left, px.
const WIDTH: f64 = 1320.0;
const LABELS: f64 = 150.0;
const RIGHT: f64 = 16.0;
const LANE: f64 = 26.0;

/// A bar's colour by severity.
pub fn severity_colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "#4e79a7",
        Severity::Major => "#f28e2b",
        Severity::Critical => "#d62728",
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Major => "major",
        Severity::Critical => "critical",
    }
}

/// The media in one line: `h264 640x360 25 fps, aac stereo 48000 Hz`.
pub fn describe_media(m: &MediaInfo) -> String {
    let mut parts = vec![];
    if let Some(v) = &m.video {
        // 25 fps, 29.97 fps: no trailing zeros.
        let fps = v.frame_rate.map(|r| {
            format!(
                " {} fps",
                format!("{r:.3}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
            )
        });
        parts.push(format!(
            "{} {}x{}{}",
            v.codec,
            v.width,
            v.height,
            fps.unwrap_or_default()
        ));
    }
    if let Some(a) = &m.audio {
        parts.push(format!("{} {} {} Hz", a.codec, a.layout, a.sample_rate));
    }
    parts.join(", ")
}

/// A lane's name: the kind, and the channel for a defect on one channel.
fn lane_name(kind: IncidentKind, channel: Option<u16>) -> String {
    match channel {
        Some(c) => format!("{kind} ch {c}"),
        None => kind.to_string(),
    }
}

/// What hovering over an incident says: kind, times, severity and its evidence's headline.
pub(crate) fn incident_title(i: &Incident) -> String {
    let mut s = format!(
        "{}: {:.3} – {:.3} s ({:.3} s), {}",
        lane_name(i.kind, i.channel),
        time::to_secs(i.start),
        time::to_secs(i.end),
        time::to_secs(i.duration),
        severity_name(i.severity)
    );
    if let Some(h) = i.kind.headline(&i.evidence) {
        s.push_str(": ");
        s.push_str(&h);
    }
    s
}

/// The time span the charts show: the analysed part, and anything reported beyond it.
fn span_seconds(report: &StreamReport, points: &[Point]) -> f64 {
    let mut end = report.coverage.analysed;
    end = points.iter().map(|p| p.end).fold(end, i64::max);
    end = report.incidents.iter().map(|i| i.end).fold(end, i64::max);
    time::to_secs(end)
}

/// The incidents' timeline: one lane per kind and channel, bars coloured by severity.
fn timeline(incidents: &[Incident], axis: &TimeAxis) -> String {
    let mut lanes: BTreeMap<(IncidentKind, Option<u16>), Vec<&Incident>> = BTreeMap::new();
    for i in incidents {
        lanes.entry((i.kind, i.channel)).or_default().push(i);
    }
    let rows = lanes.len().max(1) as f64;
    let (top, bottom) = (8.0, 8.0 + rows * LANE);
    let height = bottom + 22.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">"##
    );
    let _ = write!(
        svg,
        r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{:.1}" fill="#fafafa" stroke="#ccc"/>"##,
        axis.left,
        axis.width,
        bottom - top
    );
    svg.push_str(&axis.grid(top, bottom, true));
    if lanes.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#3a7d2c" font-size="14">No incidents</text>"##,
            axis.left + axis.width / 2.0,
            top + LANE / 2.0 + 5.0
        );
    }
    for (row, ((kind, channel), incidents)) in lanes.iter().enumerate() {
        let y = top + row as f64 * LANE;
        if row % 2 == 1 {
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{LANE}" fill="#f0f0f0"/>"##,
                axis.left, axis.width
            );
        }
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            axis.left - 8.0,
            y + LANE / 2.0 + 4.5,
            esc(&lane_name(*kind, *channel))
        );
        for i in incidents {
            let (start, end) = (time::to_secs(i.start), time::to_secs(i.end));
            let x = axis.x(start);
            // Even a one-frame incident stays visible.
            let w = (axis.x(end) - x).max(3.0);
            let _ = write!(
                svg,
                r##"<rect class="incident" data-kind="{kind}" data-start="{start:.3}" data-end="{end:.3}" x="{x:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" rx="2" fill="{}"><title>{}</title></rect>"##,
                y + 4.0,
                LANE - 8.0,
                severity_colour(i.severity),
                esc(&incident_title(i))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The header's facts: input, media, coverage, loudness, and the incidents by kind.
fn header(report: &StreamReport) -> String {
    let c = &report.coverage;
    let mut facts = vec![
        ("media", describe_media(&report.media)),
        (
            "analysed",
            format!(
                "{:.2} s{} in {} segments: {} video frames, {} audio samples, {} decoder errors",
                time::to_secs(c.analysed),
                report
                    .media
                    .duration
                    .map(|d| format!(" of {d:.2} s"))
                    .unwrap_or_default(),
                c.segments,
                c.video_frames,
                c.audio_frames,
                c.decode_errors
            ),
        ),
        (
            "complete",
            if report.complete {
                "yes: the whole input was read".into()
            } else {
                "no: only part of the input could be analysed".into()
            },
        ),
    ];
    if let Some(l) = &report.loudness {
        let f = |v: Option<f64>, unit: &str| v.map_or("–".into(), |v| format!("{v:.1} {unit}"));
        facts.push((
            "loudness",
            format!(
                "integrated {}, range {}, max true peak {}",
                f(l.integrated_lufs, "LUFS"),
                f(l.range_lu, "LU"),
                f(l.max_true_peak_dbtp, "dBTP")
            ),
        ));
    }
    if !report.missing_tracks.is_empty() {
        let missing: Vec<String> = report
            .missing_tracks
            .iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect();
        facts.push(("missing tracks", missing.join(", ")));
    }
    let mut html = String::from("<table class=\"facts\">");
    for (name, value) in facts {
        let _ = write!(html, "<tr><th>{name}</th><td>{}</td></tr>", esc(&value));
    }
    html.push_str("</table>");

    let mut by_kind: BTreeMap<IncidentKind, (usize, usize, usize)> = BTreeMap::new();
    for i in &report.incidents {
        let n = by_kind.entry(i.kind).or_default();
        match i.severity {
            Severity::Info => n.2 += 1,
            Severity::Major => n.0 += 1,
            Severity::Critical => n.1 += 1,
        }
    }
    // Events (SCTE-35 cues) are listed with the incidents but not counted as defects.
    let defects = report
        .incidents
        .iter()
        .filter(|i| i.severity != Severity::Info)
        .count();
    let _ = write!(
        html,
        "<p class=\"counts\"><b>{} incident{}</b>",
        defects,
        if defects == 1 { "" } else { "s" }
    );
    for (kind, (major, critical, info)) in by_kind {
        let mut what = vec![];
        if info > 0 {
            what.push(format!("{info} event{}", if info == 1 { "" } else { "s" }));
        }
        if major > 0 {
            what.push(format!("{major} major"));
        }
        if critical > 0 {
            what.push(format!("{critical} critical"));
        }
        let _ = write!(
            html,
            " <span class=\"chip\">{kind}: {}</span>",
            what.join(", ")
        );
    }
    html.push_str("</p>");
    if !report.warnings.is_empty() {
        html.push_str("<ul class=\"warnings\">");
        for w in &report.warnings {
            let _ = write!(html, "<li>{}</li>", esc(w));
        }
        html.push_str("</ul>");
    }
    html
}

/// The page. `points` are the per-segment measurements a [`Recorder`] kept, or `None` when
/// the stages ran elsewhere (the distributed topology keeps none here): the graphs then say
/// so instead of plotting.
pub fn render(report: &StreamReport, points: Option<&[Point]>, config: &PipelineConfig) -> String {
    let kept = points.unwrap_or_default();
    let axis = TimeAxis::new(LABELS, WIDTH - LABELS - RIGHT, span_seconds(report, kept));
    let mut graphs = String::new();
    for g in graphs::graphs(kept, config, &report.media) {
        graphs.push_str(&g.draw(kept, &report.incidents, &axis, WIDTH));
        graphs.push('\n');
    }
    let measured_note = if points.is_some() {
        "One value per segment (per second by default): the line is the segment's mean, the \
         band its lowest to highest; shaded spans are the incidents each graph explains, dashed \
         lines and green bands the configured limits."
    } else {
        "The per-second measurements are kept only when the stages run in this process \
         (--topology single): the graphs below are empty."
    };
    let legend = format!(
        r##"<span class="chip"><i style="background:{}"></i>major</span> <span class="chip"><i style="background:{}"></i>critical</span>"##,
        severity_colour(Severity::Major),
        severity_colour(Severity::Critical)
    );
    format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vqa report: {input}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:20px 24px;color:#222;max-width:{WIDTH}px}}
h1{{font-size:22px;margin:0 0 4px}} h1 small{{font-weight:normal;color:#555;word-break:break-all}}
h2{{font-size:17px;margin:22px 0 6px}}
table.facts{{border-collapse:collapse;font-size:14px}} table.facts th{{text-align:left;color:#555;font-weight:normal;padding:2px 14px 2px 0;vertical-align:top}} table.facts td{{padding:2px 0}}
p.counts{{font-size:15px}} .chip{{display:inline-block;background:#f2f2f2;border-radius:10px;padding:1px 9px;margin:0 3px;font-size:13px}}
.chip i{{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}}
ul.warnings{{color:#9a3412;font-size:14px}} p.note{{color:#555;font-size:13px;margin:4px 0 8px}}
svg{{display:block;margin:2px 0}}
</style>
</head><body>
<h1>vqa report <small>{input}</small></h1>
{header}
<h2>Incidents {legend}</h2>
{timeline}
<h2>Measurements</h2>
<p class="note">{measured_note}</p>
{graphs}</body></html>
"##,
        input = esc(&report.input),
        header = header(report),
        timeline = timeline(&report.incidents, &axis),
    )
}

#[cfg(test)]
mod tests;
