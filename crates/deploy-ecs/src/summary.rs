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
        IncidentKind::Blockiness => {
            get("block_ratio").map(|s| format!("block-edge ratio {:.2} (mean)", s.mean))
        }
        IncidentKind::Corruption => get("corrupt_frames")
            .map(|s| format!("{} damaged pictures", s.count))
            .or_else(|| get("decode_errors").map(|s| format!("{} decoder errors", s.max))),
        IncidentKind::Blur => get("edge_width").map(|s| format!("edge width {:.1} px", s.mean)),
        IncidentKind::Colorbars => get("bars").map(|s| format!("{} bars", s.max)),
        IncidentKind::FrameDrop => get("missing_frames")
            .map(|s| format!("{:.0} frames missing", s.mean * s.count as f64))
            .or_else(|| get("backwards_ms").map(|s| format!("time back {:.0} ms", s.max))),
        IncidentKind::Loudness => {
            get("short_term_lufs").map(|s| format!("short-term {:.1} to {:.1} LUFS", s.min, s.max))
        }
        IncidentKind::Clipping => get("clipped_samples")
            .map(|s| format!("{:.0} clipped samples", s.mean * s.count as f64)),
        IncidentKind::AvSync => get("offset_ms").map(|s| {
            let side = if s.mean > 0.0 { "late" } else { "early" };
            format!("audio {:.0} ms {side}", s.mean.abs())
        }),
        IncidentKind::Onnx => get("score").map(|s| format!("model score {:.2} (mean)", s.mean)),
        IncidentKind::InputLoss => {
            get("reconnect_attempts").map(|s| format!("{:.0} reconnection attempts", s.max))
        }
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
