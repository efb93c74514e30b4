//! `ts_priority1`, `ts_priority2`: ETSI TR 101 290 errors of an MPEG-TS input.
//!
//! The converter analyses the input's transport stream as FFmpeg's demuxer reads it
//! (`vqa-ts-health`) and hands each segment the errors in its span
//! ([`Segment::ts_events`]): points for errors in one packet, intervals for conditions (sync
//! lost, a table or PID absent) from the error to where it cleared. This detector only turns
//! them into findings, one kind per TR 101 290 priority, the indicators in the evidence
//! (each named like the indicator, one value per error: its PID, or -1 for sync errors).

use vqa_core::model::{Segment, TsEvent};
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::{Detector, DetectorName, Micros};

/// How long an error found in one packet lasts as a finding: a point has no length, and a
/// run of errors closer than the kind's `clear_after` is joined by the aggregator anyway.
const POINT: Micros = 1_000;

#[derive(Default)]
pub struct TsHealthDetector;

impl TsHealthDetector {
    pub fn new() -> Self {
        TsHealthDetector
    }
}

impl Detector for TsHealthDetector {
    fn name(&self) -> DetectorName {
        DetectorName::TsPriority1
    }

    fn needs_pictures(&self) -> bool {
        false
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (priority, kind) in [
            (1, IncidentKind::TsPriority1),
            (2, IncidentKind::TsPriority2),
        ] {
            let mut events: Vec<&TsEvent> = segment
                .ts_events
                .iter()
                .filter(|e| e.priority == priority)
                .collect();
            events.sort_by_key(|e| e.start);
            let mut current: Option<Finding> = None;
            for event in events {
                let end = if event.ongoing {
                    segment.end
                } else {
                    event.end.max(event.start + POINT).min(segment.end)
                };
                let pid = event.pid.map_or(-1.0, f64::from);
                // The aggregator adds the segments' evidence up: each error once.
                let counted = event.found_here();
                let f = match current.as_mut().filter(|f| event.start <= f.end) {
                    Some(f) => {
                        f.end = f.end.max(end);
                        f.reaches_end |= event.ongoing;
                        f
                    }
                    None => {
                        findings.extend(current.take());
                        current.insert(Finding {
                            kind,
                            channel: None,
                            start: event.start,
                            end,
                            reaches_end: event.ongoing,
                            starts_anew: false,
                            level: Level::Raise,
                            evidence: Evidence::new(),
                        })
                    }
                };
                if counted {
                    f.evidence
                        .entry(event.indicator.clone())
                        .and_modify(|s| s.add(pid))
                        .or_insert_with(|| Summary::of(pid));
                }
            }
            findings.extend(current);
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::video_segment;

    fn event(indicator: &str, priority: u8, start: Micros, end: Micros, ongoing: bool) -> TsEvent {
        TsEvent {
            indicator: indicator.into(),
            priority,
            pid: Some(256),
            start,
            end,
            ongoing,
            detail: "found here".into(),
        }
    }

    #[test]
    fn events_become_findings_per_priority_with_their_indicators() {
        let mut seg = video_segment(0, None, vec![]);
        seg.end = 1_000_000;
        seg.ts_events = vec![
            event("Continuity_count_error", 1, 200_000, 200_000, false),
            event("Continuity_count_error", 1, 200_500, 200_500, false),
            event("CRC_error", 2, 300_000, 300_000, false),
            event("PAT_error", 1, 600_000, 1_000_000, true),
        ];
        let found = TsHealthDetector::new().analyze(&seg);
        let spans: Vec<_> = found
            .iter()
            .map(|f| (f.kind, f.start, f.end, f.reaches_end))
            .collect();
        assert_eq!(
            spans,
            [
                (IncidentKind::TsPriority1, 200_000, 201_500, false),
                (IncidentKind::TsPriority1, 600_000, 1_000_000, true),
                (IncidentKind::TsPriority2, 300_000, 301_000, false),
            ]
        );
        assert_eq!(found[0].evidence["Continuity_count_error"].count, 2);
        assert_eq!(found[0].evidence["Continuity_count_error"].max, 256.0);
        assert_eq!(
            IncidentKind::TsPriority1
                .headline(&found[0].evidence)
                .as_deref(),
            Some("Continuity_count_error ×2")
        );
        assert!(TsHealthDetector::new()
            .analyze(&video_segment(0, None, vec![]))
            .is_empty());
        // The same PAT absence going on in the next segment: a finding, not counted again.
        let mut next = video_segment(1, None, vec![]);
        next.ts_events = vec![TsEvent {
            detail: String::new(),
            ..event("PAT_error", 1, next.start, next.start + 300_000, false)
        }];
        let found = TsHealthDetector::new().analyze(&next);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].start, found[0].end),
            (next.start, next.start + 300_000)
        );
        assert!(found[0].evidence.is_empty());
    }
}
