//! How `vqa bench`'s comparison is shown: a table on the terminal, and a self-contained
//! HTML page with SVG charts (cost per stream-hour by topology and billing dimension; time
//! per segment by stage).

use std::fmt::Write;

// The palette has enough distinct colours for every billing dimension (and every stage).
use vqa_report_html::svg::{esc, PALETTE};

use crate::compare::{Comparison, TopologyResult};

fn per_segment(r: &TopologyResult, n: u64) -> f64 {
    n as f64 / r.segments.max(1) as f64
}

fn usd(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v < 0.01 {
        format!("{v:.5}")
    } else if v < 100.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.0}")
    }
}

/// The load the story's service was built for, as a stream count: the ceilings are put
/// against it.
const TARGET_STREAMS: u64 = 1000;

/// The terminal table, with each topology's bill by dimension below it.
pub fn render_text(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {:.1} s, {} detectors; prices {} ({}), {} streams",
        c.input,
        c.media_seconds,
        c.detectors.len(),
        c.prices.region,
        c.prices.collected,
        c.streams
    );
    let _ = writeln!(
        out,
        "\n{:<20} {:>7} {:>9} {:>8} {:>9} {:>7} {:>7} {:>8} {:>11} {:>13} {:>9}",
        "topology",
        "wall s",
        "lat. ms",
        "S3 req",
        "MB moved",
        "trans.",
        "λ inv.",
        "λ GB-s",
        "$/stream-h",
        format!("$/month ×{}", c.streams),
        "max strm"
    );
    if let Some(live) = c.live_seconds {
        let _ = writeln!(
            out,
            "live: the input replayed as one stream, paced and looped, for {live:.0} s through each \
             topology's monitor; latency is an alert's, from the moment it qualified"
        );
    }
    let _ = writeln!(
        out,
        "{:<20} {:>7} {:>9} {:>8} {:>9} {:>7} {:>7} {:>8}",
        "",
        "",
        if c.live_seconds.is_some() {
            "alert p50"
        } else {
            "p50"
        },
        "/segment",
        "/segment",
        "/seg",
        "/seg",
        "/seg"
    );
    for r in &c.topologies {
        let h = &r.handoff;
        let lambda = r.lambda.as_ref();
        let _ = writeln!(
            out,
            "{:<20} {:>7.2} {:>9} {:>8.1} {:>9.1} {:>7} {:>7} {:>8} {:>11} {:>13} {:>9}",
            r.name,
            r.wall_seconds,
            r.latency
                .as_ref()
                .map_or("-".into(), |l| format!("{:.0}", l.p50_ms)),
            if r.usage.orchestration == crate::cost::Orchestration::SingleProcess {
                0.0
            } else {
                per_segment(r, h.requests())
            },
            if r.usage.orchestration == crate::cost::Orchestration::SingleProcess {
                h.frame_bytes_copied as f64 / 1e6 / r.segments.max(1) as f64
            } else {
                h.copied_bytes as f64 / 1e6 / r.segments.max(1) as f64
            },
            r.state_transitions
                .map_or("-".into(), |t| format!("{:.1}", per_segment(r, t))),
            lambda.map_or("-".into(), |l| format!(
                "{:.1}",
                per_segment(r, l.invocations)
            )),
            lambda.map_or("-".into(), |l| format!(
                "{:.2}",
                l.gb_seconds / r.segments.max(1) as f64
            )),
            usd(r.cost_per_stream_hour_usd),
            usd(r.cost_per_month_usd),
            r.max_concurrent_streams
                .map_or("no quota".into(), |m| m.to_string()),
        );
    }
    if let Some(single) = c.topologies.iter().find(|r| r.name == "single") {
        for r in c.topologies.iter().filter(|r| r.name != "single") {
            if single.cost_per_stream_hour_usd > 0.0 {
                if let Some(max) = r.max_concurrent_streams {
                    let _ = writeln!(
                        out,
                        "{}: the single process costs {:.1}% of it; its ceiling of {max} streams is {:.1}% of a {TARGET_STREAMS}-stream target",
                        r.name,
                        100.0 * single.cost_per_stream_hour_usd / r.cost_per_stream_hour_usd.max(f64::MIN_POSITIVE),
                        100.0 * max as f64 / TARGET_STREAMS as f64
                    );
                }
                let times = r.cost_per_stream_hour_usd / single.cost_per_stream_hour_usd;
                let _ = writeln!(
                    out,
                    "{} costs {:.*}x the single process per stream-hour{}",
                    r.name,
                    if times < 10.0 { 1 } else { 0 },
                    times,
                    match r.same_report_as_single {
                        Some(true) => ", same report",
                        Some(false) => ", REPORT DIFFERS from the single process's",
                        None => "",
                    }
                );
            }
        }
    }
    for r in &c.topologies {
        let _ = writeln!(out, "\n{} — {}", r.name, r.description);
        for i in &r.cost.items {
            let _ = writeln!(
                out,
                "  {:<28} {:>14.3} {:<12} ${}/stream-hour",
                i.dimension,
                i.quantity_per_stream_hour,
                i.unit,
                usd(i.usd_per_stream_hour)
            );
        }
        let _ = writeln!(out, "  ceiling: {}", r.limited_by);
        if let Some(l) = &r.lambda {
            let _ = writeln!(
                out,
                "  Lambda figures from the {}; transitions from the {}",
                l.source,
                r.transitions_source.as_deref().unwrap_or("-")
            );
        }
        let single = r.usage.orchestration == crate::cost::Orchestration::SingleProcess;
        if let (Some(cpu), Some(rss), false) = (r.cpu_seconds, r.peak_rss_mb, single) {
            let _ = writeln!(
                out,
                "  the live reader: CPU {cpu:.1} s for {:.1} s of stream, peak RSS {rss:.0} MB",
                r.usage.stream_seconds
            );
        }
        if let (Some(cpu), Some(rss), true) = (r.cpu_seconds, r.peak_rss_mb, single) {
            let h = &r.handoff;
            // Against the process's whole CPU time: FFmpeg's decoder threads do much of the
            // work and are in no stage's own timing.
            let _ = writeln!(
                out,
                "  CPU {cpu:.1} s for {:.1} s of stream, peak RSS {rss:.0} MB; handoff copied {} frame bytes and took {:.2}% of the CPU time",
                r.usage.stream_seconds,
                h.frame_bytes_copied,
                (h.transfer_nanos + h.encode_nanos) as f64 / 1e9 / cpu.max(1e-9) * 100.0
            );
        }
    }
    out
}

/// A value with its unit: dollars before, others after.
fn amount(v: f64, unit: &str) -> String {
    if unit == "$" {
        format!("${}", usd(v))
    } else {
        format!("{} {unit}", usd(v))
    }
}

/// A horizontal stacked bar chart: one bar per row, one colour per series.
fn stacked_bars(title: &str, unit: &str, rows: &[(String, Vec<(String, f64)>)]) -> String {
    let mut series: Vec<String> = Vec::new();
    for (_, parts) in rows {
        for (name, _) in parts {
            if !series.contains(name) {
                series.push(name.clone());
            }
        }
    }
    let max = rows
        .iter()
        .map(|(_, p)| p.iter().map(|x| x.1).sum::<f64>())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let (label_w, bar_w, row_h) = (170.0, 560.0, 34.0);
    let legend_rows = series.len().div_ceil(3);
    let height = 50.0 + rows.len() as f64 * row_h + 24.0 * legend_rows as f64 + 20.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="860" height="{height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(
        svg,
        r#"<text x="0" y="20" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, (label, parts)) in rows.iter().enumerate() {
        let y = 40.0 + i as f64 * row_h;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + 17.0,
            esc(label)
        );
        let mut x = label_w;
        for (name, v) in parts {
            let w = v / max * bar_w;
            let colour =
                PALETTE[series.iter().position(|s| s == name).unwrap_or(0) % PALETTE.len()];
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.2}" height="24" fill="{colour}"><title>{}: {}</title></rect>"#,
                esc(name),
                esc(&amount(*v, unit))
            );
            x += w;
        }
        let total: f64 = parts.iter().map(|p| p.1).sum();
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}">{}</text>"#,
            x + 6.0,
            y + 17.0,
            esc(&amount(total, unit))
        );
    }
    let legend_y = 50.0 + rows.len() as f64 * row_h;
    for (i, name) in series.iter().enumerate() {
        let (col, row) = (i % 3, i / 3);
        let (x, y) = (label_w + col as f64 * 200.0, legend_y + row as f64 * 24.0);
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{y}" width="14" height="14" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            PALETTE[i % PALETTE.len()],
            x + 20.0,
            y + 12.0,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A self-contained HTML page (no scripts, no external files).
pub fn render_html(c: &Comparison) -> String {
    let cost_rows: Vec<(String, Vec<(String, f64)>)> = c
        .topologies
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.cost
                    .items
                    .iter()
                    .map(|i| (i.dimension.to_string(), i.usd_per_stream_hour))
                    .collect(),
            )
        })
        .collect();
    let time_rows: Vec<(String, Vec<(String, f64)>)> = c
        .topologies
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.stage_seconds
                    .iter()
                    .map(|(stage, s)| (stage.to_lowercase(), s * 1000.0 / r.segments.max(1) as f64))
                    .collect(),
            )
        })
        .collect();
    let mut rows = String::new();
    for r in &c.topologies {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>${}</td><td>${}</td><td>{}</td></tr>",
            esc(&r.name),
            esc(&r.description),
            r.wall_seconds,
            r.state_transitions.map_or("-".into(), |t| t.to_string()),
            if r.usage.orchestration == crate::cost::Orchestration::SingleProcess {
                format!("0 ({} in memory)", r.handoff.requests())
            } else {
                r.handoff.requests().to_string()
            },
            r.lambda.as_ref().map_or("-".into(), |l| l.invocations.to_string()),
            usd(r.cost_per_stream_hour_usd),
            usd(r.cost_per_month_usd),
            esc(&match r.max_concurrent_streams {
                Some(m) => format!("{m} ({})", r.limited_by),
                None => r.limited_by.clone(),
            }),
        );
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vqa bench: {input}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:960px}}table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:4px 6px;text-align:right}}td:first-child,td:nth-child(2),th{{text-align:left}}p.note{{color:#555;font-size:13px}}</style>
</head><body>
<h1>vqa bench</h1>
<p>{input}: {seconds:.1} s of stream, {detectors} detectors ({list}). Prices: {region}, collected {collected} ({source}). Monthly figures for {streams} streams around the clock.</p>
{cost_chart}
<p class="note">Each bar is one topology's bill for one hour of one stream, split by billing dimension, from the counters measured in this run.</p>
{time_chart}
<p class="note">Time per segment in each stage: CPU time for the single process (its stages overlap), each state's wall time for an execution.</p>
<table><tr><th>topology</th><th>what</th><th>wall s</th><th>transitions</th><th>S3 requests</th><th>Lambda invocations</th><th>$/stream-hour</th><th>$/month</th><th>max concurrent streams</th></tr>
{rows}</table>
</body></html>
"#,
        input = esc(&c.input),
        seconds = c.media_seconds,
        detectors = c.detectors.len(),
        list = esc(&c.detectors.join(", ")),
        region = esc(&c.prices.region),
        collected = esc(&c.prices.collected),
        source = esc(&c.prices.source),
        streams = c.streams,
        cost_chart = stacked_bars(
            "Cost per stream-hour, by billing dimension",
            "$",
            &cost_rows
        ),
        time_chart = stacked_bars("Time per segment, by stage", "ms", &time_rows),
        rows = rows,
    )
}
