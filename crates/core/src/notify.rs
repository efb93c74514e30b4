//! Real-time notifications: one event when an incident opens, one when it closes (never one
//! per segment), in the form every notifier sends (JSON lines, webhooks, SNS).

use serde::{Deserialize, Serialize};

use crate::aggregate::IncidentEvent;
use crate::model::StreamId;
use crate::report::{Evidence, IncidentKind, Severity};
use crate::time;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Opened,
    Closed,
    /// A kind that reports events (an SCTE-35 cue): one notification each, with its evidence.
    Event,
}

/// What a notification says. Times are seconds from the start of the input, as in reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub event: Phase,
    pub stream: StreamId,
    pub kind: IncidentKind,
    pub channel: Option<u16>,
    pub start: f64,
    /// When it ended; only on `closed`.
    pub end: Option<f64>,
    /// `major` on opening (it has lasted its kind's minimum duration); on closing, the final
    /// severity.
    pub severity: Severity,
    /// The measurements over the whole incident; only on `closed`.
    pub evidence: Evidence,
    /// Where the stream report is (or will be) stored, when it is.
    pub report: Option<String>,
}

impl Notification {
    pub fn from_event(stream: &StreamId, event: &IncidentEvent, report: Option<&str>) -> Self {
        let report = report.map(str::to_string);
        match event {
            IncidentEvent::Opened {
                kind,
                channel,
                start,
            } => Notification {
                event: Phase::Opened,
                stream: stream.clone(),
                kind: *kind,
                channel: *channel,
                start: time::to_secs(*start),
                end: None,
                severity: Severity::Major,
                evidence: Evidence::new(),
                report,
            },
            IncidentEvent::Closed(i) => Notification {
                event: if i.kind.is_event() {
                    Phase::Event
                } else {
                    Phase::Closed
                },
                stream: stream.clone(),
                kind: i.kind,
                channel: i.channel,
                start: time::to_secs(i.start),
                end: Some(time::to_secs(i.end)),
                severity: i.severity,
                evidence: i.evidence.clone(),
                report,
            },
        }
    }

    /// One line of JSON (for JSON-lines output).
    pub fn to_json_line(&self) -> String {
        // Invariant: plain data with string map keys always serialises.
        serde_json::to_string(self).expect("notifications serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_says_major_and_has_no_end_until_it_closes() {
        let stream = StreamId::new("cam");
        let opened = IncidentEvent::Opened {
            kind: IncidentKind::Freeze,
            channel: None,
            start: 2_000_000,
        };
        let n = Notification::from_event(&stream, &opened, Some("s3://r/reports/cam.json"));
        assert_eq!((n.event, n.start, n.end), (Phase::Opened, 2.0, None));
        assert_eq!(n.severity, Severity::Major);
        let line: serde_json::Value = serde_json::from_str(&n.to_json_line()).unwrap();
        assert_eq!(line["event"], "opened");
        assert_eq!(line["kind"], "freeze");
        assert_eq!(line["report"], "s3://r/reports/cam.json");
    }
}
