//! The aggregator: joins per-segment findings into incidents that span segments.
//!
//! It is pure: state in, state out. The pipeline step ([`crate::step`]) loads and stores the
//! [`AggregatorState`] through the transport's state store, so a stateless Lambda can run it
//! as well as a long-lived process.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{IncidentRule, PipelineConfig};
use crate::loudness::LoudnessSummary;
use crate::model::StreamId;
use crate::report::{
    merge_evidence, Coverage, Evidence, Finding, Incident, IncidentKind, Measurements,
    SegmentReport, Severity, StreamReport, StreamSummary,
};
use crate::time::{self, Micros};

/// A run of findings of one kind, not yet closed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Run {
    start: Micros,
    end: Micros,
    first_segment: u64,
    last_segment: u64,
    evidence: Evidence,
    /// An `Opened` event was emitted for it.
    announced: bool,
}

/// What a run is of: a kind of defect, on one channel or on the whole stream.
type RunKey = (IncidentKind, Option<u16>);

fn key_of(f: &Finding) -> RunKey {
    (f.kind, f.channel)
}

/// Everything the aggregator must remember between segments of one stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AggregatorState {
    /// The segment sequence number expected next.
    next_index: u64,
    /// Reports that arrived before their predecessors (possible when detectors run in parallel).
    pending: BTreeMap<u64, SegmentReport>,
    open: BTreeMap<RunKey, Run>,
    /// Incidents closed and not yet archived, in the order they closed.
    incidents: Vec<Incident>,
    /// Batches of closed incidents moved out of the state ([`AggregatorState::take_batch`]).
    archived: u64,
    coverage: Coverage,
    measurements: Measurements,
}

/// Closed incidents the state holds before they move out in one batch: the state a segment
/// loads and stores stays this small however long the stream runs.
pub const INCIDENT_BATCH: usize = 64;

impl AggregatorState {
    /// The end of the last segment applied (µs of stream time).
    pub fn analysed(&self) -> Micros {
        self.coverage.analysed
    }

    /// Incidents closed and not yet archived, in the order they closed.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// Takes the closed incidents out as batch number `n` once there are
    /// [`INCIDENT_BATCH`] of them; the caller stores the batch where
    /// [`restore`](Self::restore) can find it by number.
    pub fn take_batch(&mut self) -> Option<(u64, Vec<Incident>)> {
        if self.incidents.len() < INCIDENT_BATCH {
            return None;
        }
        let n = self.archived;
        self.archived += 1;
        Some((n, std::mem::take(&mut self.incidents)))
    }

    /// How many batches were taken out.
    pub fn batches(&self) -> u64 {
        self.archived
    }

    /// Puts the batches taken out back (in their order) ahead of the incidents closed since.
    pub fn restore(&mut self, batches: Vec<Vec<Incident>>) {
        let mut all: Vec<Incident> = batches.into_iter().flatten().collect();
        all.append(&mut self.incidents);
        self.incidents = all;
        self.archived = 0;
    }
}

/// What changed after a segment: for real-time notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum IncidentEvent {
    /// A run of findings reached its kind's minimum duration.
    Opened {
        kind: IncidentKind,
        channel: Option<u16>,
        #[serde(with = "time::as_secs")]
        start: Micros,
    },
    /// The incident ended.
    Closed(Incident),
}

/// Joins findings into incidents by the configured rules.
#[derive(Clone, Debug)]
pub struct IncidentAggregator {
    rules: BTreeMap<IncidentKind, IncidentRule>,
}

impl IncidentAggregator {
    pub fn new(config: &PipelineConfig) -> Self {
        let rules = IncidentKind::ALL
            .into_iter()
            .map(|k| (k, config.rule(k)))
            .collect();
        IncidentAggregator { rules }
    }

    /// Takes one segment's findings (in any order; duplicates of an already applied segment
    /// are ignored, so a retried stage is harmless) and returns the incidents opened or closed.
    pub fn apply(&self, state: &mut AggregatorState, report: SegmentReport) -> Vec<IncidentEvent> {
        let mut events = Vec::new();
        if report.index < state.next_index {
            return events;
        }
        state.pending.insert(report.index, report);
        while let Some(report) = state.pending.remove(&state.next_index) {
            self.process(state, report, &mut events);
            state.next_index += 1;
        }
        events
    }

    fn process(
        &self,
        state: &mut AggregatorState,
        report: SegmentReport,
        events: &mut Vec<IncidentEvent>,
    ) {
        let c = &mut state.coverage;
        c.segments += 1;
        c.video_frames += u64::from(report.video_frames);
        c.audio_frames += report.audio_frames;
        c.decode_errors += u64::from(report.decode_errors);
        c.analysed = c.analysed.max(report.end);
        state.measurements.merge(&report.measurements);

        let mut findings: Vec<&Finding> = report.findings.iter().collect();
        findings.sort_by_key(|f| (key_of(f), f.start));
        for f in findings {
            let key = key_of(f);
            let joins = state
                .open
                .get(&key)
                .is_some_and(|run| f.start <= run.end + self.rule(f.kind).join_gap);
            if !joins {
                if let Some(run) = state.open.remove(&key) {
                    self.close(state, key, run, events);
                }
                state.open.insert(
                    key,
                    Run {
                        start: f.start,
                        end: f.end,
                        first_segment: report.index,
                        last_segment: report.index,
                        evidence: f.evidence.clone(),
                        announced: false,
                    },
                );
            } else if let Some(run) = state.open.get_mut(&key) {
                run.end = run.end.max(f.end);
                run.last_segment = report.index;
                merge_evidence(&mut run.evidence, &f.evidence);
            }
            if let Some(run) = state.open.get_mut(&key) {
                if !run.announced && run.end - run.start >= self.rule(f.kind).min_duration {
                    run.announced = true;
                    events.push(IncidentEvent::Opened {
                        kind: f.kind,
                        channel: f.channel,
                        start: run.start,
                    });
                }
            }
        }
        // A run this segment did not carry to its end cannot continue into the next one.
        let continuing: Vec<RunKey> = report
            .findings
            .iter()
            .filter(|f| f.reaches_end)
            .map(key_of)
            .collect();
        let ended: Vec<RunKey> = state
            .open
            .keys()
            .filter(|key| !continuing.contains(key))
            .copied()
            .collect();
        for key in ended {
            if let Some(run) = state.open.remove(&key) {
                self.close(state, key, run, events);
            }
        }
    }

    fn rule(&self, kind: IncidentKind) -> IncidentRule {
        self.rules[&kind]
    }

    fn close(
        &self,
        state: &mut AggregatorState,
        (kind, channel): RunKey,
        run: Run,
        events: &mut Vec<IncidentEvent>,
    ) {
        let rule = self.rule(kind);
        let duration = run.end - run.start;
        if duration < rule.min_duration {
            return;
        }
        let severity = if duration >= rule.critical_after {
            Severity::Critical
        } else {
            Severity::Major
        };
        let incident = Incident {
            kind,
            channel,
            start: run.start,
            end: run.end,
            duration,
            severity,
            segments: [run.first_segment, run.last_segment],
            evidence: run.evidence,
        };
        events.push(IncidentEvent::Closed(incident.clone()));
        state.incidents.push(incident);
    }

    /// Closes what is still open at the end of the stream and writes the stream report.
    pub fn finish(
        &self,
        mut state: AggregatorState,
        stream: StreamId,
        summary: StreamSummary,
    ) -> (StreamReport, Vec<IncidentEvent>) {
        let mut events = Vec::new();
        // Segments lost in flight leave a hole in the sequence; analyse what did arrive.
        for (_, report) in std::mem::take(&mut state.pending) {
            self.process(&mut state, report, &mut events);
        }
        for (key, run) in std::mem::take(&mut state.open) {
            self.close(&mut state, key, run, &mut events);
        }
        let mut incidents = state.incidents;
        incidents.sort_by_key(|i| (i.start, i.kind, i.channel));
        let report = StreamReport {
            stream,
            input: summary.input,
            missing_tracks: summary.media.missing_tracks(),
            media: summary.media,
            complete: summary.complete,
            warnings: summary.warnings,
            coverage: state.coverage,
            incidents,
            loudness: LoudnessSummary::from_measurements(&state.measurements),
            measurements: state.measurements.values,
            divergences: Vec::new(),
            cost: Vec::new(),
        };
        (report, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn report(index: u64, findings: Vec<(IncidentKind, Micros, Micros)>) -> SegmentReport {
        SegmentReport {
            stream: StreamId::new("t"),
            index,
            start: index as i64 * S,
            end: (index as i64 + 1) * S,
            video_frames: 25,
            audio_frames: 48_000,
            decode_errors: 0,
            measurements: Measurements::default(),
            findings: findings
                .into_iter()
                .map(|(kind, start, end)| Finding {
                    kind,
                    start,
                    end,
                    channel: None,
                    reaches_end: end == (index as i64 + 1) * S,
                    evidence: Evidence::new(),
                })
                .collect(),
        }
    }

    fn run_all(reports: Vec<SegmentReport>) -> (Vec<Incident>, Vec<IncidentEvent>) {
        let agg = IncidentAggregator::new(&PipelineConfig::default());
        let mut state = AggregatorState::default();
        let mut events = Vec::new();
        for r in reports {
            events.extend(agg.apply(&mut state, r));
        }
        let (report, tail) = agg.finish(state, StreamId::new("t"), StreamSummary::default());
        events.extend(tail);
        (report.incidents, events)
    }

    use IncidentKind::*;

    #[test]
    fn a_freeze_across_three_segments_is_one_incident() {
        // Video findings overlap by the lead-in frame at each boundary.
        let (incidents, events) = run_all(vec![
            report(0, vec![(Freeze, 600_000, S)]),
            report(1, vec![(Freeze, 960_000, 2 * S)]),
            report(2, vec![(Freeze, 1_960_000, 2_600_000)]),
            report(3, vec![]),
        ]);
        assert_eq!(incidents.len(), 1);
        let i = &incidents[0];
        assert_eq!(
            (i.start, i.end, i.duration, i.segments),
            (600_000, 2_600_000, 2_000_000, [0, 2])
        );
        assert_eq!(i.severity, Severity::Major);
        assert!(matches!(
            events[0],
            IncidentEvent::Opened {
                kind: Freeze,
                channel: None,
                start: 600_000
            }
        ));
        assert!(matches!(&events[1], IncidentEvent::Closed(c) if c == i));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn a_finding_left_open_before_the_segment_end_joins_the_next_segment() {
        // The freeze detector could not judge the segment's last pair (a keyframe): its finding
        // ends one frame early but reaches_end, and the next segment's piece is adjacent.
        let mut first = report(0, vec![(Freeze, 200_000, 960_000)]);
        first.findings[0].reaches_end = true;
        let (incidents, _) = run_all(vec![first, report(1, vec![(Freeze, 960_000, 1_500_000)])]);
        assert_eq!(
            incidents
                .iter()
                .map(|i| (i.start, i.end))
                .collect::<Vec<_>>(),
            vec![(200_000, 1_500_000)]
        );
        // Without reaches_end the first piece closes, too short, and the second stands alone.
        let (incidents, _) = run_all(vec![
            report(0, vec![(Freeze, 200_000, 960_000)]),
            report(1, vec![(Freeze, 960_000, 1_500_000)]),
        ]);
        assert!(incidents.is_empty(), "{incidents:?}");
    }

    #[test]
    fn runs_shorter_than_the_minimum_are_dropped_and_gaps_split_incidents() {
        let (incidents, _) = run_all(vec![
            // 0.3 s of black: under black's 0.5 s minimum.
            report(0, vec![(Black, 100_000, 400_000), (Black, 500_000, S)]),
            // A gap of 0.1 s splits 0.5..1.0 from 1.1..2.0.
            report(1, vec![(Black, 1_100_000, 2 * S)]),
        ]);
        let spans: Vec<_> = incidents.iter().map(|i| (i.start, i.end)).collect();
        assert_eq!(spans, vec![(500_000, S), (1_100_000, 2 * S)]);
    }

    #[test]
    fn out_of_order_and_repeated_reports_give_the_same_incidents() {
        let reports = vec![
            report(0, vec![(Silence, 200_000, S)]),
            report(1, vec![(Silence, S, 2 * S), (Black, 1_500_000, 2 * S)]),
            report(
                2,
                vec![(Silence, 2 * S, 2_100_000), (Black, 2 * S, 2_200_000)],
            ),
        ];
        let (in_order, _) = run_all(reports.clone());
        let shuffled = vec![
            reports[2].clone(),
            reports[0].clone(),
            reports[0].clone(),
            reports[1].clone(),
            reports[2].clone(),
        ];
        let (out_of_order, _) = run_all(shuffled);
        assert_eq!(in_order, out_of_order);
        assert_eq!(in_order.len(), 2);
        assert_eq!(
            (in_order[0].kind, in_order[0].start, in_order[0].end),
            (Silence, 200_000, 2_100_000)
        );
        assert_eq!(
            (in_order[1].kind, in_order[1].start, in_order[1].end),
            (Black, 1_500_000, 2_200_000)
        );
    }

    #[test]
    fn state_survives_the_wire_between_segments() {
        let agg = IncidentAggregator::new(&PipelineConfig::default());
        let mut state = AggregatorState::default();
        for r in [
            report(0, vec![(Freeze, 0, S)]),
            report(1, vec![(Freeze, 960_000, 12 * S)]),
        ] {
            agg.apply(&mut state, r);
            let bytes = crate::wire::encode_state(&state);
            state = crate::wire::decode_state("k", &bytes).unwrap();
        }
        let (report, _) = agg.finish(state, StreamId::new("t"), StreamSummary::default());
        assert_eq!(report.incidents.len(), 1);
        assert_eq!(report.incidents[0].severity, Severity::Critical);
        assert_eq!(report.coverage.segments, 2);
    }
}
