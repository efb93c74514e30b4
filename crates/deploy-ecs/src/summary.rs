//! The human summary of a stream report, as `vqa analyze` prints it.

use std::fmt::Write;

use vqa_core::report::{Incident, IncidentKind};
use vqa_core::{time, StreamReport};

/// The incident's most telling measurement, in words.
fn evidence_line(incident: &Incident) -> String {
    let e = &incident.evidence;
    let get = |name: &str| e.get(name);
    let channel = incident
        .channel
        .map(|c| format!("channel {c}: "))
        .unwrap_or_default();
    let measured = match incident.kind {
        IncidentKind::Freeze => get("mafd").map(|s| format!("frame difference ≤ {:.3}", s.max)),
        IncidentKind::Black => {
            get("black_ratio").map(|s| format!("≥ {:.1}% black pixels", s.min * 100.0))
        }
        IncidentKind::Silence => get("peak_dbfs").map(|s| format!("peak {:.1} dBFS", s.max)),
    };
    channel + &measured.unwrap_or_default()
}

fn describe_media(report: &StreamReport) -> String {
    let m = &report.media;
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
