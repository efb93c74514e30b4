//! `scte35`, `scte35_absent`: the SCTE-35 splice cues of an MPEG-TS input.
//!
//! The converter's TS analyser decodes every splice_info_section on a PID the PMT declares
//! as SCTE-35 (`vqa-ts-health`) and hands each segment the cues that arrived in its span
//! ([`Segment::splice_cues`]). Each cue (heartbeats aside, unless asked for) becomes a
//! finding of kind `scte35` at its arrival, which the aggregator reports as an event
//! (severity `info`) with the cue in its evidence; `scte35_absent`, when enabled, covers
//! the time since the last cue, so that its rule's raise-after is the longest a stream may
//! go without one.

use vqa_core::config::{Scte35AbsentConfig, Scte35Config};
use vqa_core::model::{Segment, SpliceCue};
use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::{time, Detector, DetectorName, Micros};

/// A cue is a point in time: its finding lasts a millisecond.
const POINT: Micros = 1_000;

pub struct Scte35Detector {
    heartbeats: bool,
    absent_alarm: bool,
}

impl Scte35Detector {
    pub fn new(config: &Scte35Config, absent: &Scte35AbsentConfig) -> Self {
        Scte35Detector {
            heartbeats: config.heartbeats,
            absent_alarm: absent.enabled,
        }
    }

    fn reported(&self, cue: &SpliceCue) -> bool {
        self.heartbeats || cue.signals()
    }
}

/// A cue's evidence: every field it has, as numbers.
fn evidence(cue: &SpliceCue) -> Evidence {
    let mut e = Evidence::new();
    let mut put = |name: &str, v: f64| {
        e.insert(name.to_string(), Summary::of(v));
    };
    put("command", f64::from(cue.command));
    put("pid", f64::from(cue.pid));
    if let Some(id) = cue.event_id {
        put("event_id", f64::from(id));
    }
    if cue.cancel {
        put("cancel", 1.0);
    }
    if let Some(out) = cue.out_of_network {
        put("out_of_network", if out { 1.0 } else { 0.0 });
    }
    if cue.immediate {
        put("immediate", 1.0);
    }
    if let Some(p) = cue.pre_roll {
        put("pre_roll_s", time::to_secs(p));
    }
    if let Some(d) = cue.duration {
        put("duration_s", time::to_secs(d));
        put("auto_return", if cue.auto_return { 1.0 } else { 0.0 });
    }
    if cue.encrypted {
        put("encrypted", 1.0);
    }
    for &t in &cue.segmentation_types {
        e.entry("segmentation_type_id".to_string())
            .and_modify(|s| s.add(f64::from(t)))
            .or_insert_with(|| Summary::of(f64::from(t)));
    }
    e
}

impl Detector for Scte35Detector {
    fn name(&self) -> DetectorName {
        DetectorName::Scte35
    }

    fn needs_pictures(&self) -> bool {
        false
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let mut cues: Vec<&SpliceCue> = segment
            .splice_cues
            .iter()
            .filter(|c| self.reported(c))
            .collect();
        cues.sort_by_key(|c| c.at);
        let mut findings: Vec<Finding> = cues
            .iter()
            .map(|cue| {
                let start = cue.at.clamp(segment.start, segment.end);
                Finding {
                    kind: IncidentKind::Scte35,
                    channel: None,
                    start,
                    end: (start + POINT).min(segment.end.max(start + 1)),
                    reaches_end: false,
                    // Two cues are two events, however close.
                    starts_anew: true,
                    level: Level::Raise,
                    evidence: evidence(cue),
                }
            })
            .collect();
        if self.absent_alarm {
            // The time without a cue: up to the first cue (continuing the run from the
            // segments before), and from the last one on (a new run).
            let first = cues
                .first()
                .map_or(segment.end, |c| c.at.max(segment.start));
            if first > segment.start {
                findings.push(absent(segment.start, first, cues.is_empty(), false));
            }
            if let Some(last) = cues.last() {
                let from = last.at.clamp(segment.start, segment.end);
                if from < segment.end {
                    findings.push(absent(from, segment.end, true, true));
                }
            }
        }
        findings
    }
}

fn absent(start: Micros, end: Micros, reaches_end: bool, starts_anew: bool) -> Finding {
    let mut evidence = Evidence::new();
    evidence.insert(
        "without_cue_s".into(),
        Summary::of(time::to_secs(end - start)),
    );
    Finding {
        kind: IncidentKind::Scte35Absent,
        channel: None,
        start,
        end,
        reaches_end,
        starts_anew,
        level: Level::Raise,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::video_segment;

    fn cue(at: Micros, command: u8) -> SpliceCue {
        SpliceCue {
            at,
            pid: 500,
            command,
            event_id: Some(42),
            out_of_network: Some(true),
            pre_roll: Some(4_000_000),
            duration: Some(30_000_000),
            auto_return: true,
            ..SpliceCue::default()
        }
    }

    fn segment(cues: Vec<SpliceCue>) -> Segment {
        let mut seg = video_segment(0, None, vec![]);
        seg.start = 10_000_000;
        seg.end = 11_000_000;
        seg.splice_cues = cues;
        seg
    }

    fn detector(heartbeats: bool, absent: bool) -> Scte35Detector {
        Scte35Detector::new(
            &Scte35Config { heartbeats },
            &Scte35AbsentConfig {
                enabled: absent,
                ..Scte35AbsentConfig::default()
            },
        )
    }

    #[test]
    fn each_cue_is_a_finding_at_its_arrival_with_what_it_says() {
        let seg = segment(vec![
            cue(10_600_000, SpliceCue::SPLICE_INSERT),
            cue(10_200_000, SpliceCue::TIME_SIGNAL),
            cue(10_300_000, SpliceCue::SPLICE_NULL),
        ]);
        let found = detector(false, false).analyze(&seg);
        let spans: Vec<_> = found.iter().map(|f| (f.kind, f.start, f.end)).collect();
        assert_eq!(
            spans,
            vec![
                (IncidentKind::Scte35, 10_200_000, 10_201_000),
                (IncidentKind::Scte35, 10_600_000, 10_601_000),
            ],
            "in time order, the heartbeat left out"
        );
        let e = &found[1].evidence;
        assert_eq!(e["command"].max, 5.0);
        assert_eq!(e["event_id"].max, 42.0);
        assert_eq!(e["out_of_network"].max, 1.0);
        assert_eq!(e["pre_roll_s"].max, 4.0);
        assert_eq!(e["duration_s"].max, 30.0);
        assert_eq!(
            IncidentKind::Scte35.headline(e).as_deref(),
            Some("splice_insert out, event 42, pre-roll 4.0 s, duration 30.0 s")
        );
        assert!(found.iter().all(|f| f.starts_anew));
        assert_eq!(
            detector(true, false).analyze(&seg).len(),
            3,
            "heartbeats asked for"
        );
    }

    #[test]
    fn absence_runs_from_the_last_cue_when_enabled() {
        assert!(detector(false, false).analyze(&segment(vec![])).is_empty());
        let none = detector(false, true).analyze(&segment(vec![]));
        assert_eq!(none.len(), 1);
        assert_eq!(
            (
                none[0].kind,
                none[0].start,
                none[0].end,
                none[0].reaches_end,
                none[0].starts_anew
            ),
            (
                IncidentKind::Scte35Absent,
                10_000_000,
                11_000_000,
                true,
                false
            )
        );
        let one = detector(false, true).analyze(&segment(vec![
            cue(10_400_000, SpliceCue::SPLICE_INSERT),
            cue(10_500_000, SpliceCue::SPLICE_NULL),
        ]));
        let absent: Vec<_> = one
            .iter()
            .filter(|f| f.kind == IncidentKind::Scte35Absent)
            .map(|f| (f.start, f.end, f.reaches_end, f.starts_anew))
            .collect();
        assert_eq!(
            absent,
            vec![
                (10_000_000, 10_400_000, false, false),
                (10_400_000, 11_000_000, true, true)
            ],
            "a heartbeat does not reset it"
        );
    }
}
