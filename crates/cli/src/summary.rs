//! The human summary of a stream report, as `vqa analyze` prints it.

use std::fmt::Write;

use vqa_core::report::Incident;
use vqa_core::{time, StreamReport};

/// The incident's most telling measurement, in words (the kinds table's headline).
fn evidence_line(incident: &Incident) -> String {
    let channel = incident
        .channel
        .map(|c| format!("channel {c}: "))
        .unwrap_or_default();
    channel
        + &incident
            .kind
            .headline(&incident.evidence)
            .unwrap_or_default()
}

fn describe_media(report: &StreamReport) -> String {
    vqa_report_html::describe_media(&report.media)
}

/// Renders the report for a terminal: one line per incident, then warnings.
pub fn render(report: &StreamReport) -> String {
    let mut out = String::new();
    let n = report.incidents.len();
    let _ = writeln!(
        out,
        "{}: {:.2} s analysed ({}): {} incident{}",
        report.input,
        time::to_secs(report.coverage.analysed),
        describe_media(report),
        n,
        if n == 1 { "" } else { "s" }
    );
    for i in &report.incidents {
        let _ = writeln!(
            out,
            "  {:<8} {:>9.3} – {:>9.3} s  ({:>7.3} s)  {:<8}  {}",
            i.kind.as_str(),
            time::to_secs(i.start),
            time::to_secs(i.end),
            time::to_secs(i.duration),
            format!("{:?}", i.severity).to_lowercase(),
            evidence_line(i)
        );
    }
    if let Some(l) = &report.loudness {
        let fmt =
            |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.1} {unit}"));
        let _ = writeln!(
            out,
            "  loudness: integrated {}, range {}, true peak {}",
            fmt(l.integrated_lufs, "LUFS"),
            fmt(l.range_lu, "LU"),
            fmt(l.max_true_peak_dbtp, "dBTP")
        );
    }
    if let Some(s) = report.measurements.get(vqa_core::report::AV_SYNC_OFFSET_MS) {
        let _ = writeln!(
            out,
            "  a/v offset: {:+.1} ms mean ({:+.1} to {:+.1}, {} flashes; + is audio late)",
            s.mean, s.min, s.max, s.count
        );
    }
    let captions: Vec<String> = [
        ("CEA-608", vqa_core::captions::CEA608_SHARE),
        ("CEA-708", vqa_core::captions::CEA708_SHARE),
    ]
    .into_iter()
    .filter_map(|(name, key)| report.measurements.get(key).map(|s| (name, s)))
    .filter(|(_, s)| s.max > 0.0)
    .map(|(name, s)| format!("{name} in {:.0}% of pictures", s.mean * 100.0))
    .collect();
    if !captions.is_empty() {
        let _ = writeln!(out, "  captions: {}", captions.join(", "));
    }
    if let Some(ts) = &report.ts_health {
        let errors: Vec<String> = ts
            .errors
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        let programmes: Vec<String> = ts
            .programmes
            .iter()
            .map(|p| format!("{} ({} streams)", p.number, p.streams.len()))
            .collect();
        let scte35 = if ts.scte35_pids.is_empty() {
            String::new()
        } else {
            format!(", SCTE-35 on PID {:?}", ts.scte35_pids)
        };
        let _ = writeln!(
            out,
            "  TS health (TR 101 290): {} priority 1, {} priority 2 errors{} in {} packets; programmes {}{scte35}",
            ts.errors_of_priority(1),
            ts.errors_of_priority(2),
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join(", "))
            },
            ts.packets,
            if programmes.is_empty() {
                "none".to_string()
            } else {
                programmes.join(", ")
            },
        );
    }
    for track in &report.missing_tracks {
        let _ = writeln!(
            out,
            "  note: the input has no {track} track; {track} detectors had nothing to analyse"
        );
    }
    for w in &report.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    out
}
