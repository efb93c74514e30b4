//! The aggregator: joins per-segment findings into incidents that span segments.
//!
//! It is pure: state in, state out. The pipeline step ([`crate::step`]) loads and stores the
//! [`AggregatorState`] through the transport's state store, so a stateless Lambda can run it
//! as well as a long-lived process.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::captions::{Captions, CEA608, CEA608_SHARE, CEA708, CEA708_SHARE, REQUIRED};
use crate::config::{IncidentRule, PipelineConfig};
use crate::loudness::{LoudnessSummary, ProgrammeWindow, MOMENTARY};
use crate::model::StreamId;
use crate::report::{
    merge_evidence, Coverage, Evidence, Finding, Incident, IncidentKind, Level, Measurements,
    SegmentReport, Severity, StreamReport, StreamSummary, Summary, BLUR_EDGE_WIDTH,
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
    /// The end of the last finding at the raise level (the rest of the run may be at the
    /// clear level of a hysteresis): the kind's raise-after time is judged up to here.
    #[serde(default)]
    raised_until: Micros,
    /// A measurement said the condition was gone (kinds with continuity: until then the run
    /// stays open between measurements).
    #[serde(default)]
    cleared: bool,
}

impl Run {
    /// A run opened by a condition at the raise level from `start` to `end`, seen in
    /// segments `segments`.
    fn raised(start: Micros, end: Micros, segments: [u64; 2], evidence: Evidence) -> Self {
        Run {
            start,
            end,
            first_segment: segments[0],
            last_segment: segments[1],
            evidence,
            announced: false,
            raised_until: end,
            cleared: false,
        }
    }
}

/// What a run is of: a kind of defect, on one channel or on the whole stream.
type RunKey = (IncidentKind, Option<u16>);

fn key_of(f: &Finding) -> RunKey {
    (f.kind, f.channel)
}

impl IncidentRule {
    /// How long the condition may be absent with its run going on: the kind's clear-after
    /// time once the incident is raised, and none before. The raise-after time counts a
    /// condition that lasted, not fragments of one bridged by the clear-after time (a
    /// tone's quiet instants at segment edges, ten seconds apart, are no silence).
    fn bridge(&self, raised: bool) -> Micros {
        if raised {
            self.clear_after
        } else {
            0
        }
    }
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
    /// The last `loudness.programme_window` of momentary loudness (bounded: see
    /// [`ProgrammeWindow`]).
    #[serde(default)]
    programme: ProgrammeWindow,
    /// The picture's recent sharpness, which a blur's onset is judged against.
    #[serde(default)]
    sharpness: SharpnessWindow,
    /// How far the last frame of the open freeze run may be from the run's first frame
    /// (mean absolute luma difference, an upper bound), with the run's end it was taken at.
    #[serde(default)]
    freeze_drift: Option<(Micros, f64)>,
    /// The picture's established black borders and a different geometry being confirmed.
    #[serde(default)]
    borders: BorderState,
    /// The caption services of the last segment that carried captions (none before any
    /// did): what a loss of captions lost.
    #[serde(default)]
    captions_seen: Captions,
}

/// The mean edge width of each segment of the last `blur.onset_window` of picture that was
/// in no blurred run, oldest first, with the segment's duration: at most window / segment
/// length + 1 entries. Segments of a blurred run stay out, so a run that breaks up before
/// it is raised is judged against the same sharp picture when it resumes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct SharpnessWindow(VecDeque<(Micros, f64)>);

impl SharpnessWindow {
    fn push(&mut self, duration: Micros, width: f64, window: Micros) {
        self.0.push_back((duration, width));
        let mut held: Micros = self.0.iter().map(|&(d, _)| d).sum();
        while self.0.len() > 1 && self.0.front().is_some_and(|&(d, _)| held - d >= window) {
            held -= self.0.pop_front().map_or(0, |(d, _)| d);
        }
    }

    /// The sharpest segment's width, pixels.
    fn sharpest(&self) -> Option<f64> {
        self.0.iter().map(|&(_, w)| w).min_by(f64::total_cmp)
    }
}

/// Black borders (top, bottom, left, right) in pixels.
type Geometry = [u32; 4];

/// What the aggregator knows of the picture's borders across segments: the geometry that
/// last held `borders.min_duration` (none before the first did), and a different one seen
/// since, with when it was first seen, the end of its last sighting and how long it was
/// seen (pictures not measured, black or dim, are neither for nor against it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct BorderState {
    established: Option<Geometry>,
    candidate: Option<BorderCandidate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct BorderCandidate {
    geometry: Geometry,
    start: Micros,
    end: Micros,
    seen: Micros,
}

/// The geometry of a run of pictures the borders detector measured alike (the rounded
/// mean of each edge).
fn run_geometry(evidence: &Evidence) -> Option<Geometry> {
    let edge = |name: &str| {
        evidence
            .get(name)
            .map(|s| s.mean.round().clamp(0.0, f64::from(u32::MAX)) as u32)
    };
    Some([
        edge("top_px")?,
        edge("bottom_px")?,
        edge("left_px")?,
        edge("right_px")?,
    ])
}

/// Closed incidents the state holds before they move out in one batch: the state a segment
/// loads and stores stays this small however long the stream runs.
pub const INCIDENT_BATCH: usize = 64;

impl AggregatorState {
    /// Gated integrated loudness of all the audio applied so far, LUFS (the programme
    /// level over the whole input).
    fn integrated_so_far(&self) -> Option<f64> {
        self.measurements
            .histograms
            .get(MOMENTARY)
            .and_then(crate::loudness::integrated)
    }

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
    /// Programme loudness, when the loudness detector runs.
    programme: Option<ProgrammeRule>,
    /// Blur's onset, when the blur detector runs and `blur.onset_window` is set.
    blur_onset: Option<OnsetRule>,
    /// Freeze's noise level (mean absolute luma difference, 8-bit code values), when the
    /// freeze detector runs.
    freeze_noise: Option<f64>,
    /// Border changes, when the borders detector runs.
    borders: Option<BorderRule>,
    /// `captions.required`, when the captions detector runs.
    captions_required: Option<bool>,
}

/// How a blur's onset is judged (`[blur]`).
#[derive(Clone, Copy, Debug)]
struct OnsetRule {
    window: Micros,
    min_rise: f64,
}

/// How border changes are judged (`[borders]`).
#[derive(Clone, Copy, Debug)]
struct BorderRule {
    tolerance_px: u32,
    hold: Micros,
}

/// How programme loudness is judged (`[loudness]`).
#[derive(Clone, Copy, Debug)]
struct ProgrammeRule {
    /// 0: the whole input, judged when it ends.
    window: Micros,
    target: f64,
    tolerance: f64,
    /// A short-term dip is a `loudness_jump` only this far below the programme level too.
    max_below: f64,
}

impl IncidentAggregator {
    pub fn new(config: &PipelineConfig) -> Self {
        let rules = IncidentKind::ALL
            .into_iter()
            .map(|k| (k, config.rule(k)))
            .collect();
        let l = &config.loudness;
        let programme = config
            .is_enabled(crate::DetectorName::Loudness)
            .then(|| ProgrammeRule {
                window: time::from_secs(l.programme_window),
                target: l.target_lufs,
                tolerance: l.tolerance_lu,
                max_below: l.max_below_lu,
            });
        let b = &config.blur;
        let blur_onset = (config.is_enabled(crate::DetectorName::Blur) && b.onset_window > 0.0)
            .then(|| OnsetRule {
                window: time::from_secs(b.onset_window),
                min_rise: b.min_rise,
            });
        let freeze_noise = config
            .is_enabled(crate::DetectorName::Freeze)
            .then(|| crate::config::db_to_ratio(config.freeze.noise_db) * 255.0);
        let captions_required = config
            .is_enabled(crate::DetectorName::Captions)
            .then_some(config.captions.required);
        let borders = config
            .is_enabled(crate::DetectorName::Borders)
            .then(|| BorderRule {
                tolerance_px: config.borders.tolerance_px,
                hold: time::from_secs(config.borders.min_duration),
            });
        IncidentAggregator {
            borders,
            rules,
            programme,
            blur_onset,
            freeze_noise,
            captions_required,
        }
    }

    /// Carries a freeze's reference over segment edges. The freeze detector compares each
    /// frame with the first frame of its run, as FFmpeg's freezedetect does, so slow motion
    /// adds up and ends the run; but in each segment it starts again from the lead-in frame,
    /// and a picture creeping by less than the noise level per segment would be frozen
    /// however far it went. The open freeze run remembers how far its last frame may be from
    /// its first: the sum, over its segments, of the largest difference from the segment's
    /// reference (an upper bound: a mean absolute difference obeys the triangle inequality).
    /// A finding that continues the run (from the lead-in frame, or from a keyframe the
    /// detector could not judge at the segment's edge) and takes the sum past the noise
    /// level starts anew at the segment's edge: the picture moved.
    fn judge_freeze(&self, state: &mut AggregatorState, report: &mut SegmentReport) {
        let Some(noise) = self.freeze_noise else {
            return;
        };
        let open_end = state
            .open
            .get(&(IncidentKind::Freeze, None))
            .map(|run| run.end);
        let carried = state
            .freeze_drift
            .take()
            .filter(|&(end, _)| Some(end) == open_end)
            .map(|(_, drift)| drift);
        let mut freezes: Vec<&mut Finding> = report
            .findings
            .iter_mut()
            .filter(|f| f.kind == IncidentKind::Freeze && f.level == Level::Raise)
            .collect();
        freezes.sort_by_key(|f| f.start);
        for f in freezes {
            let drift = f.evidence.get("mafd").map_or(0.0, |s| s.max);
            let mut total = drift;
            if let (Some(end), Some(carried)) = (open_end, carried) {
                // Overlapping the run by the lead-in frame, or touching it past a keyframe.
                let continues = !f.starts_anew && f.start <= end;
                if continues && carried + drift > noise {
                    f.start = end;
                    f.starts_anew = true;
                } else if continues {
                    total = carried + drift;
                }
            }
            if f.reaches_end {
                state.freeze_drift = Some((f.end, total));
            }
        }
    }

    /// Keeps the segment's `captions` findings (spans without captions) that count: those
    /// after captions were seen, earlier in the stream (the services the state remembers)
    /// or earlier in the segment (the services the detector names in the finding's
    /// evidence), and with `captions.required` all of them; each names the services lost,
    /// or `required`. A stream that never carried captions raises nothing unless required.
    /// Then the segment's own captions (its `captions.*` measurements) join the state.
    fn judge_captions(&self, state: &mut AggregatorState, report: &mut SegmentReport) {
        let Some(required) = self.captions_required else {
            return;
        };
        let seen = state.captions_seen;
        report.findings.retain_mut(|f| {
            if f.kind != IncidentKind::Captions {
                return true;
            }
            let before = Captions {
                cea608: f.evidence.contains_key(CEA608),
                cea708: f.evidence.contains_key(CEA708),
            };
            let lost = if before.any() { before } else { seen };
            for name in lost.names() {
                f.evidence.insert(name.into(), Summary::of(1.0));
            }
            if !lost.any() && required {
                f.evidence.insert(REQUIRED.into(), Summary::of(1.0));
            }
            lost.any() || required
        });
        let present = |name: &str| {
            report
                .measurements
                .values
                .get(name)
                .is_some_and(|s| s.max > 0.0)
        };
        let here = Captions {
            cea608: present(CEA608_SHARE),
            cea708: present(CEA708_SHARE),
        };
        if here.any() {
            state.captions_seen = here;
        }
    }

    /// Turns the borders detector's measurements (findings at the hold level: runs of
    /// pictures with one geometry, `top_px` ... `right_px`) into changes: a geometry more
    /// than `tolerance_px` from the established one on some edge, seen for
    /// `borders.min_duration`, is a `borders` finding from where it was first seen to where
    /// that was reached, with the sizes before (`before_top_px` ...) and after; it becomes
    /// the established geometry. The first geometry to hold is established without one.
    fn judge_borders(&self, state: &mut AggregatorState, report: &mut SegmentReport) {
        let (mut runs, mut findings): (Vec<Finding>, Vec<Finding>) =
            std::mem::take(&mut report.findings)
                .into_iter()
                .partition(|f| f.kind == IncidentKind::Borders && f.level == Level::Hold);
        let Some(rule) = self.borders else {
            report.findings = findings;
            return;
        };
        let close = |a: &Geometry, b: &Geometry| {
            a.iter()
                .zip(b)
                .all(|(x, y)| x.abs_diff(*y) <= rule.tolerance_px)
        };
        runs.sort_by_key(|f| f.start);
        let b = &mut state.borders;
        for run in runs {
            let Some(geometry) = run_geometry(&run.evidence) else {
                continue;
            };
            if b.established.is_some_and(|e| close(&e, &geometry)) {
                b.candidate = None;
                continue;
            }
            let c = match b.candidate.as_mut() {
                Some(c) if close(&c.geometry, &geometry) => {
                    c.end = c.end.max(run.end);
                    c.seen += run.end - run.start;
                    c
                }
                _ => b.candidate.insert(BorderCandidate {
                    geometry,
                    start: run.start,
                    end: run.end,
                    seen: run.end - run.start,
                }),
            };
            if c.seen < rule.hold {
                continue;
            }
            let (new, start, end) = (c.geometry, c.start, c.end);
            b.candidate = None;
            if let Some(old) = b.established.replace(new) {
                let mut evidence = Evidence::new();
                for (i, edge) in ["top", "bottom", "left", "right"].iter().enumerate() {
                    let px = |g: &Geometry| Summary::of(f64::from(g[i]));
                    evidence.insert(format!("before_{edge}_px"), px(&old));
                    evidence.insert(format!("{edge}_px"), px(&new));
                }
                findings.push(Finding {
                    kind: IncidentKind::Borders,
                    channel: None,
                    start,
                    end,
                    reaches_end: false,
                    starts_anew: true,
                    level: Level::Raise,
                    evidence,
                });
            }
        }
        report.findings = findings;
    }

    /// Keeps the segment's blur findings that continue a blurred run or open one where the
    /// picture lost its detail at once: edges at least `min_rise` times as wide as the
    /// sharpest recent segment's. A picture soft all along, or softening over seconds (a
    /// zoom into an out-of-focus background), opens none; nor does a stream before it has
    /// any sharpness to compare with. Segments in no blurred run join the recent sharpness.
    fn judge_blur(&self, state: &mut AggregatorState, report: &mut SegmentReport) {
        let Some(rule) = self.blur_onset else {
            return;
        };
        let key = (IncidentKind::Blur, None);
        let (mut blurs, mut findings): (Vec<Finding>, Vec<Finding>) =
            std::mem::take(&mut report.findings)
                .into_iter()
                .partition(|f| f.kind == IncidentKind::Blur);
        let blur_rule = self.rule(IncidentKind::Blur);
        // How far the open run reaches: a finding starting by then continues it.
        let mut reach = state
            .open
            .get(&key)
            .map(|run| run.end + blur_rule.bridge(run.announced));
        let sharpest = state.sharpness.sharpest();
        let mut blurred = false;
        blurs.sort_by_key(|f| f.start);
        for f in blurs {
            let continues = reach.is_some_and(|r| f.start <= r);
            let onset = f.level == Level::Raise
                && f.evidence
                    .get("edge_width")
                    .zip(sharpest)
                    .is_some_and(|(w, sharp)| w.mean >= rule.min_rise * sharp);
            if continues || onset || f.level != Level::Raise {
                if f.level == Level::Raise {
                    blurred = true;
                    reach = Some(reach.map_or(f.end, |r| r.max(f.end)));
                }
                findings.push(f);
            }
        }
        report.findings = findings;
        if !blurred {
            if let Some(width) = report.measurements.values.get(BLUR_EDGE_WIDTH) {
                state
                    .sharpness
                    .push(report.end - report.start, width.mean, rule.window);
            }
        }
    }

    /// The segment's programme loudness finding, if the window is out of tolerance; and
    /// whether a short-term dip the detector found is a dip of the programme too (a quiet
    /// programme's short-term loudness is below the target all along: that is the
    /// programme's incident, not a jump).
    fn judge_loudness(&self, state: &mut AggregatorState, report: &mut SegmentReport) {
        let Some(rule) = self.programme else {
            return;
        };
        let Some(momentary) = report.measurements.histograms.get(MOMENTARY) else {
            return;
        };
        let level = if rule.window == 0 {
            // The whole input so far (this segment's measurements join the stream's after).
            state.integrated_so_far()
        } else {
            state
                .programme
                .push(report.start, report.end, momentary, rule.window);
            state.programme.integrated()
        };
        report.findings.retain(|f| {
            let dip = f.kind == IncidentKind::LoudnessJump
                && f.level == Level::Raise
                && f.evidence
                    .get("short_term_lufs")
                    .is_some_and(|s| s.max < rule.target);
            match (dip, level) {
                (true, Some(level)) => f
                    .evidence
                    .get("short_term_lufs")
                    .is_some_and(|s| s.max < level - rule.max_below),
                _ => true,
            }
        });
        if rule.window == 0 {
            return;
        }
        let Some(verdict) = state
            .programme
            .judge(rule.window, rule.target, rule.tolerance)
        else {
            return;
        };
        if verdict.out {
            let mut evidence = Evidence::new();
            evidence.insert("programme_lufs".into(), Summary::of(verdict.lufs));
            report.findings.push(Finding {
                kind: IncidentKind::Loudness,
                start: verdict.since,
                end: report.end,
                channel: None,
                reaches_end: true,
                starts_anew: false,
                level: Level::Raise,
                evidence,
            });
        }
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
        let mut report = report;
        self.judge_loudness(state, &mut report);
        self.judge_blur(state, &mut report);
        self.judge_freeze(state, &mut report);
        self.judge_borders(state, &mut report);
        self.judge_captions(state, &mut report);
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
            let rule = self.rule(f.kind);
            // A finding that starts anew continues a run only across a gap the clear-after
            // time bridges, not one it merely touches; an event continues none.
            let joins = !f.kind.is_event()
                && state.open.get(&key).is_some_and(|run| {
                    let reach = run.end + rule.bridge(run.announced);
                    f.start < reach || (f.start == reach && !f.starts_anew)
                });
            match (f.level, joins) {
                (Level::Clear, _) => {
                    // Only a kind measured now and then needs to be told: for the others,
                    // a segment without the finding says it.
                    if let Some(run) = state.open.get_mut(&key) {
                        if rule.continuity && !run.cleared {
                            run.end = run.end.max(f.start);
                            run.cleared = true;
                        }
                    }
                    continue;
                }
                (_, true) => {
                    if let Some(run) = state.open.get_mut(&key) {
                        run.end = run.end.max(f.end);
                        run.last_segment = report.index;
                        if f.level == Level::Raise {
                            run.raised_until = run.raised_until.max(f.end);
                            run.cleared = false;
                        }
                        merge_evidence(&mut run.evidence, &f.evidence);
                    }
                }
                (level, false) => {
                    if let Some(run) = state.open.remove(&key) {
                        self.close(state, key, run, events);
                    }
                    // Between the raise and clear thresholds, a condition continues an
                    // incident but does not open one.
                    if level == Level::Hold {
                        continue;
                    }
                    state.open.insert(
                        key,
                        Run::raised(
                            f.start,
                            f.end,
                            [report.index, report.index],
                            f.evidence.clone(),
                        ),
                    );
                }
            }
            self.announce(state, key, events);
        }
        // A run this segment did not carry to its end closes once the condition has been
        // absent for the kind's clear-after time, unless the kind's incidents stay open
        // until a measurement clears them.
        let continuing: Vec<RunKey> = report
            .findings
            .iter()
            .filter(|f| f.reaches_end && f.level != Level::Clear)
            .map(key_of)
            .collect();
        let waiting: Vec<RunKey> = state
            .open
            .keys()
            .filter(|key| !continuing.contains(key))
            .copied()
            .collect();
        for key in waiting {
            let rule = self.rule(key.0);
            let Some(run) = state.open.get_mut(&key) else {
                continue;
            };
            if rule.continuity && !run.cleared {
                run.end = run.end.max(report.end);
                run.raised_until = run.end;
                run.last_segment = report.index;
                self.announce(state, key, events);
            } else if run.end + rule.bridge(run.announced) <= report.end {
                if let Some(run) = state.open.remove(&key) {
                    self.close(state, key, run, events);
                }
            }
        }
    }

    /// Emits `Opened` once a run has lasted its kind's raise-after time.
    fn announce(&self, state: &mut AggregatorState, key: RunKey, events: &mut Vec<IncidentEvent>) {
        if let Some(run) = state.open.get_mut(&key) {
            if !run.announced && run.raised_until - run.start >= self.rule(key.0).min_duration {
                run.announced = true;
                // An event is announced once, when it closes, with all it says.
                if key.0.is_event() {
                    return;
                }
                events.push(IncidentEvent::Opened {
                    kind: key.0,
                    channel: key.1,
                    start: run.start,
                });
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
        if run.raised_until - run.start < rule.min_duration {
            return;
        }
        let duration = run.end - run.start;
        let severity = if kind.is_event() {
            Severity::Info
        } else if duration >= rule.critical_after {
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

    /// With `loudness.programme_window` 0, the whole input's integrated loudness outside
    /// the target ± tolerance: one `loudness` incident over all of it, opened (and then
    /// closed) when the input ends.
    fn judge_whole_programme(&self, state: &mut AggregatorState, events: &mut Vec<IncidentEvent>) {
        let Some(rule) = self.programme.filter(|r| r.window == 0) else {
            return;
        };
        let Some(lufs) = state.integrated_so_far() else {
            return;
        };
        if (lufs - rule.target).abs() <= rule.tolerance {
            return;
        }
        let mut evidence = Evidence::new();
        evidence.insert(
            "programme_lufs".into(),
            Summary::of(crate::loudness::round2(lufs)),
        );
        let key = (IncidentKind::Loudness, None);
        let segments = [0, state.next_index.saturating_sub(1)];
        state.open.insert(
            key,
            Run::raised(0, state.coverage.analysed, segments, evidence),
        );
        self.announce(state, key, events);
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
        self.judge_whole_programme(&mut state, &mut events);
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
            ts_health: summary.ts_health,
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
                    starts_anew: false,
                    level: Level::Raise,
                    evidence: Evidence::new(),
                })
                .collect(),
        }
    }

    fn run_with(
        config: &PipelineConfig,
        reports: Vec<SegmentReport>,
    ) -> (Vec<Incident>, Vec<IncidentEvent>) {
        let agg = IncidentAggregator::new(config);
        let mut state = AggregatorState::default();
        let mut events = Vec::new();
        for r in reports {
            events.extend(agg.apply(&mut state, r));
        }
        let (report, tail) = agg.finish(state, StreamId::new("t"), StreamSummary::default());
        events.extend(tail);
        (report.incidents, events)
    }

    fn run_all(reports: Vec<SegmentReport>) -> (Vec<Incident>, Vec<IncidentEvent>) {
        run_with(&PipelineConfig::default(), reports)
    }

    /// SCTE-35 cues are events: each its own incident of severity info, announced once
    /// when it closes (no `Opened`), however close two cues are.
    #[test]
    fn cues_are_events_each_announced_once() {
        let cue = |start: Micros| Finding {
            kind: IncidentKind::Scte35,
            channel: None,
            start,
            end: start + 1_000,
            reaches_end: false,
            starts_anew: true,
            level: Level::Raise,
            evidence: Evidence::new(),
        };
        let mut first = report(0, vec![]);
        first.findings = vec![cue(200_000), cue(201_500), cue(999_500)];
        let mut second = report(1, vec![]);
        second.findings = vec![cue(1_500_000)];
        let (incidents, events) = run_all(vec![first, second, report(2, vec![])]);
        let starts: Vec<_> = incidents.iter().map(|i| (i.start, i.severity)).collect();
        let info = Severity::Info;
        assert_eq!(
            starts,
            vec![
                (200_000, info),
                (201_500, info),
                (999_500, info),
                (1_500_000, info)
            ]
        );
        assert!(events.iter().all(|e| matches!(e, IncidentEvent::Closed(_))));
        assert_eq!(events.len(), 4);
        let n = crate::notify::Notification::from_event(&StreamId::new("t"), &events[0], None);
        assert_eq!(n.event, crate::notify::Phase::Event);
    }

    use IncidentKind::*;

    /// A segment whose pictures the borders detector measured as `runs` (start, end,
    /// geometry).
    fn measured(index: u64, runs: &[(Micros, Micros, [u32; 4])]) -> SegmentReport {
        let mut r = report(index, vec![]);
        r.findings = runs
            .iter()
            .map(|&(start, end, g)| {
                let mut evidence = Evidence::new();
                for (name, v) in ["top_px", "bottom_px", "left_px", "right_px"]
                    .into_iter()
                    .zip(g)
                {
                    evidence.insert(name.into(), Summary::of(f64::from(v)));
                }
                Finding {
                    kind: Borders,
                    channel: None,
                    start,
                    end,
                    reaches_end: false,
                    starts_anew: false,
                    level: Level::Hold,
                    evidence,
                }
            })
            .collect();
        r
    }

    #[test]
    fn a_border_change_is_reported_once_it_held_across_segments() {
        let plain = [0, 0, 0, 0];
        let boxed = [60, 60, 0, 0];
        let reports = vec![
            // The first geometry to hold is established, no change.
            measured(0, &[(0, S, plain)]),
            measured(1, &[(S, 2 * S, plain)]),
            // A letterbox for 0.4 s (too short), back, then for good from 2.6 s, with
            // black pictures (not measured) from 3.0 to 3.2 s and 2 px of jitter.
            measured(
                2,
                &[
                    (2 * S, 2_200_000, plain),
                    (2_200_000, 2_600_000, boxed),
                    (2_600_000, 2_600_000, plain),
                    (2_600_000, 3 * S, [61, 59, 0, 0]),
                ],
            ),
            measured(3, &[(3_200_000, 4 * S, [62, 60, 1, 0])]),
            measured(4, &[(4 * S, 5 * S, boxed)]),
            // Plain again from 5.5 s on: a second change.
            measured(5, &[(5 * S, 5_500_000, boxed), (5_500_000, 6 * S, plain)]),
            measured(6, &[(6 * S, 7 * S, plain)]),
        ];
        let (incidents, events) = run_all(reports);
        let spans: Vec<_> = incidents.iter().map(|i| (i.kind, i.start, i.end)).collect();
        assert_eq!(
            spans,
            vec![(Borders, 2_600_000, 4 * S), (Borders, 5_500_000, 7 * S)],
            "{incidents:?}"
        );
        let e = &incidents[0].evidence;
        assert_eq!((e["before_top_px"].mean, e["top_px"].mean), (0.0, 61.0));
        assert_eq!(
            IncidentKind::Borders.headline(e).as_deref(),
            Some("borders (top/bottom/left/right) 0/0/0/0 → 61/59/0/0 px")
        );
        assert_eq!(incidents[1].evidence["before_top_px"].mean, 61.0);
        // No hold-level measurement reaches an incident, and each change opened one.
        let opened = events
            .iter()
            .filter(|e| matches!(e, IncidentEvent::Opened { kind: Borders, .. }))
            .count();
        assert_eq!(opened, 2);
    }

    /// Broadcast raises silence after 10 s and clears it after 10 s without: fragments of
    /// quiet that never last are no incident however close together, while a gap shorter
    /// than the clear-after time inside a raised silence does not end it.
    #[test]
    fn only_a_raised_incident_bridges_gaps_with_its_clear_after_time() {
        let config = PipelineConfig::for_profile(crate::config::Profile::Broadcast);
        // 50 ms of quiet at the end of every segment, for 100 s.
        let fragments: Vec<SegmentReport> = (0..100)
            .map(|i| {
                report(
                    i,
                    vec![(Silence, (i as i64 + 1) * S - 50_000, (i as i64 + 1) * S)],
                )
            })
            .collect();
        let (incidents, events) = run_with(&config, fragments);
        assert!(incidents.is_empty(), "{incidents:?}");
        assert!(events.is_empty(), "{events:?}");

        // One report a second, silent all through the seconds `silent` holds.
        let seconds = |n: u64, silent: &dyn Fn(u64) -> bool| -> Vec<SegmentReport> {
            (0..n)
                .map(|i| {
                    let (from, to) = (i as i64 * S, (i as i64 + 1) * S);
                    report(
                        i,
                        if silent(i) {
                            vec![(Silence, from, to)]
                        } else {
                            vec![]
                        },
                    )
                })
                .collect()
        };
        // 12 s of silence, 4 s of sound, 6 s of silence: one incident, 0-22 s.
        let reports = seconds(40, &|i| i < 12 || (16..22).contains(&i));
        let (incidents, events) = run_with(&config, reports);
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        assert_eq!((incidents[0].start, incidents[0].end), (0, 22 * S));
        let opened = events
            .iter()
            .filter(|e| matches!(e, IncidentEvent::Opened { .. }))
            .count();
        assert_eq!(opened, 1, "{events:?}");

        // 8 s of silence, 2 s of sound, 8 s of silence: neither part lasted 10 s.
        let reports = seconds(30, &|i| i < 8 || (10..18).contains(&i));
        let (incidents, _) = run_with(&config, reports);
        assert!(incidents.is_empty(), "{incidents:?}");
    }

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

    /// `n` segments of `len` µs, each frozen from its lead-in frame (the segment before's
    /// last, 40 ms) on, its frames differing from that reference by up to `drift` (the
    /// detector's `mafd`).
    fn creeping(n: u64, len: Micros, drift: f64) -> Vec<SegmentReport> {
        (0..n)
            .map(|i| {
                let (start, end) = (i as i64 * len, (i as i64 + 1) * len);
                let mut r = report(i, vec![(Freeze, (start - 40_000).max(0), end)]);
                (r.start, r.end) = (start, end);
                r.findings[0].reaches_end = true;
                r.findings[0]
                    .evidence
                    .insert("mafd".into(), Summary::of(drift));
                r
            })
            .collect()
    }

    #[test]
    fn a_picture_creeping_by_less_than_the_noise_level_per_segment_is_not_frozen() {
        // -60 dB is 0.255 code values. 0.15 per half-second segment passes it in the
        // second: no run lasts file QC's 1 s from its first frame.
        let (incidents, events) = run_all(creeping(40, S / 2, 0.15));
        assert!(incidents.is_empty(), "{incidents:?}");
        assert!(events.is_empty(), "{events:?}");
        // 0.05 per 1 s segment: 0.25 after five segments, so each run lasts 5 s from its
        // first frame (as with FFmpeg's freezedetect, which compares with the first frame).
        // File QC raises the first after 1 s; the runs after it start where it ends, with
        // no moment between them that the picture was not still: one incident.
        let (incidents, _) = run_all(creeping(20, S, 0.05));
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        assert_eq!((incidents[0].start, incidents[0].end), (0, 20 * S));
        // Broadcast raises after 10 s: none of the 5 s stills lasted that long.
        let broadcast = PipelineConfig::for_profile(crate::config::Profile::Broadcast);
        let (incidents, _) = run_with(&broadcast, creeping(30, S, 0.05));
        assert!(incidents.is_empty(), "{incidents:?}");
        // A still picture (each segment's frames equal to its lead-in) is one freeze.
        let (incidents, _) = run_with(&broadcast, creeping(30, S, 0.0));
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        assert_eq!((incidents[0].start, incidents[0].end), (0, 30 * S));
    }

    #[test]
    fn a_keyframe_does_not_restart_the_drift() {
        // Each segment re-encodes the picture in a keyframe (the detector carries the
        // drift over it): 0.05 a segment still adds up to five-second stills, which
        // broadcast does not raise, while a still picture is one freeze.
        let broadcast = PipelineConfig::for_profile(crate::config::Profile::Broadcast);
        let with_keyframes = |drift| {
            let mut reports = creeping(30, S, drift);
            for r in &mut reports {
                r.findings[0]
                    .evidence
                    .insert("keyframe_mafd".into(), Summary::of(0.5));
            }
            reports
        };
        let (incidents, _) = run_with(&broadcast, with_keyframes(0.05));
        assert!(incidents.is_empty(), "{incidents:?}");
        let (incidents, _) = run_with(&broadcast, with_keyframes(0.0));
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        assert_eq!((incidents[0].start, incidents[0].end), (0, 30 * S));
    }

    #[test]
    fn a_freeze_starting_anew_where_another_ends_is_a_new_run() {
        // Within a segment, two runs of frozen pairs split by a changed picture touch.
        let mut split = report(0, vec![(Freeze, 0, 600_000), (Freeze, 600_000, S)]);
        split.findings[1].starts_anew = true;
        let mut next = report(1, vec![(Freeze, 960_000, 1_500_000)]);
        next.findings[0].reaches_end = false;
        let (incidents, _) = run_all(vec![split.clone(), next.clone()]);
        assert!(incidents.is_empty(), "{incidents:?}");
        // Not starting anew (a keyframe left undecided between them), they are one run.
        split.findings[1].starts_anew = false;
        let (incidents, _) = run_all(vec![split, next]);
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        assert_eq!((incidents[0].start, incidents[0].end), (0, 1_500_000));
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

    fn at_level(mut r: SegmentReport, level: Level) -> SegmentReport {
        for f in &mut r.findings {
            f.level = level;
        }
        r
    }

    fn closed_at(events: &[IncidentEvent]) -> Vec<usize> {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, IncidentEvent::Closed(_)))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn a_condition_back_within_clear_after_continues_the_incident() {
        let mut config = PipelineConfig::default();
        config.black.clear_after = 2.0;
        let reports = || {
            vec![
                report(0, vec![(Black, 200_000, S)]),
                report(1, vec![]),
                // Back 1.5 s after it went: the same incident.
                report(2, vec![(Black, 2_400_000, 2_900_000)]),
                report(3, vec![]),
                report(4, vec![]),
                // Back 2.1 s after: a new one.
                report(5, vec![(Black, 5_000_000, 5_800_000)]),
            ]
        };
        let (incidents, events) = run_with(&config, reports());
        let spans: Vec<_> = incidents.iter().map(|i| (i.start, i.end)).collect();
        assert_eq!(spans, vec![(200_000, 2_900_000), (5_000_000, 5_800_000)]);
        // One opened and one closed notification per incident.
        assert_eq!(events.len(), 4, "{events:?}");
        // Without clear_after, the return is an incident of its own (and a second alarm).
        let (incidents, _) = run_all(reports());
        assert_eq!(incidents.len(), 3, "{incidents:?}");
    }

    #[test]
    fn an_incident_closes_only_once_clear_after_has_passed() {
        let mut config = PipelineConfig::default();
        config.black.clear_after = 2.0;
        let agg = IncidentAggregator::new(&config);
        let mut state = AggregatorState::default();
        let mut closed_in = None;
        let mut reports = vec![report(0, vec![(Black, 0, S)])];
        reports.extend((1..6).map(|i| report(i, vec![])));
        for r in reports {
            let index = r.index;
            let events = agg.apply(&mut state, r);
            if !closed_at(&events).is_empty() {
                closed_in.get_or_insert(index);
            }
        }
        // Black until 1.0 s: known to be over once segment 2 (ending at 3.0 s) is applied.
        assert_eq!(closed_in, Some(2));
    }

    #[test]
    fn a_hold_continues_an_incident_but_never_opens_one() {
        let mut config = PipelineConfig::default();
        config.loudness.min_duration = 1.0;
        let hold = |i, a, b| at_level(report(i, vec![(Loudness, a, b)]), Level::Hold);
        // Hovering between the thresholds alone is no incident.
        let (incidents, events) = run_with(&config, vec![hold(0, 0, S), hold(1, S, 2 * S)]);
        assert!(incidents.is_empty() && events.is_empty(), "{incidents:?}");
        // Beyond the raise threshold, then hovering: one incident to the end of the hover.
        let (incidents, _) = run_with(
            &config,
            vec![
                report(0, vec![(Loudness, 0, S)]),
                hold(1, S, 2 * S),
                hold(2, 2 * S, 2_500_000),
                hold(3, 3_200_000, 3_500_000),
            ],
        );
        let spans: Vec<_> = incidents.iter().map(|i| (i.start, i.end)).collect();
        assert_eq!(spans, vec![(0, 2_500_000)]);
        // The raise-after time counts the time beyond the raise threshold: 0.5 s of it,
        // then hovering, is not enough for a 1 s minimum.
        let (incidents, _) = run_with(
            &config,
            vec![report(0, vec![(Loudness, 500_000, S)]), hold(1, S, 2 * S)],
        );
        assert!(incidents.is_empty(), "{incidents:?}");
    }

    #[test]
    fn a_kind_with_continuity_stays_open_until_a_measurement_clears_it() {
        let clear = |i: u64, at: Micros| {
            let mut r = at_level(report(i, vec![(AvSync, at, at)]), Level::Clear);
            r.findings[0].reaches_end = false;
            r
        };
        let (incidents, events) = run_all(vec![
            report(0, vec![(AvSync, 400_000, S)]),
            // Segments without a flash measure nothing: still out of sync.
            report(1, vec![]),
            report(2, vec![]),
            report(3, vec![(AvSync, 3 * S, 4 * S)]),
            report(4, vec![]),
            clear(5, 5_400_000),
            report(6, vec![]),
        ]);
        let spans: Vec<_> = incidents.iter().map(|i| (i.start, i.end)).collect();
        assert_eq!(spans, vec![(400_000, 5_400_000)]);
        assert_eq!(events.len(), 2, "{events:?}");
        // Never cleared: open to the end of what was analysed.
        let (incidents, _) = run_all(vec![
            report(0, vec![(AvSync, 400_000, S)]),
            report(1, vec![]),
        ]);
        assert_eq!((incidents[0].start, incidents[0].end), (400_000, 2 * S));
        // A clear says nothing to a kind without continuity.
        let (incidents, _) = run_all(vec![
            report(0, vec![(Black, 0, S)]),
            at_level(report(1, vec![(Black, 1_200_000, 1_200_000)]), Level::Clear),
            report(1, vec![(Black, S, 2 * S)]),
        ]);
        assert_eq!(incidents.len(), 1);
    }

    /// A segment of ten momentary blocks at `lufs` (what the loudness detector measures),
    /// with `findings`.
    fn loud(index: u64, lufs: f64, findings: Vec<(IncidentKind, Micros, Micros)>) -> SegmentReport {
        let mut r = report(index, findings);
        for _ in 0..10 {
            r.measurements
                .add_to_histogram(crate::loudness::MOMENTARY, lufs);
        }
        r
    }

    fn programme(config: &PipelineConfig, levels: &[f64]) -> (Vec<Incident>, Vec<IncidentEvent>) {
        let reports = levels
            .iter()
            .enumerate()
            .map(|(i, &l)| loud(i as u64, l, vec![]))
            .collect();
        run_with(config, reports)
    }

    #[test]
    fn a_long_quiet_programme_is_one_loudness_incident_in_both_profiles() {
        // 20 minutes at -34 LUFS, 11 LU below the target.
        let levels = vec![-34.0; 1200];
        for profile in crate::config::Profile::ALL {
            let config = PipelineConfig::for_profile(profile);
            let (incidents, events) = programme(&config, &levels);
            assert_eq!(incidents.len(), 1, "{profile}: {incidents:?}");
            let i = &incidents[0];
            assert_eq!(
                (i.kind, i.start, i.end),
                (Loudness, 0, 1200 * S),
                "{profile}"
            );
            assert_eq!(i.severity, Severity::Critical);
            let p = i.evidence["programme_lufs"];
            assert!(
                (p.min + 34.0).abs() < 0.01 && (p.max + 34.0).abs() < 0.01,
                "{p:?}"
            );
            assert_eq!(
                IncidentKind::Loudness.headline(&i.evidence).as_deref(),
                Some("programme -34.0 to -34.0 LUFS")
            );
            // Raised once the window is full, not before.
            let opened: Vec<_> = events
                .iter()
                .filter(|e| matches!(e, IncidentEvent::Opened { .. }))
                .collect();
            assert_eq!(opened.len(), 1);
        }
    }

    /// File QC's defaults with programme loudness over a sliding minute.
    fn sliding_minute() -> PipelineConfig {
        let mut config = PipelineConfig::default();
        config.loudness.programme_window = 60.0;
        config
    }

    #[test]
    fn a_file_is_judged_on_its_whole_programme() {
        // 75 s of music normalised as a whole: a first minute at -24.5 LUFS and a loud
        // finale at -18 integrate to -22.2, inside R128's -23 ± 1.
        let mut levels = vec![-24.5; 60];
        levels.extend([-18.0; 15]);
        let (incidents, _) = programme(&PipelineConfig::default(), &levels);
        assert!(
            incidents.iter().all(|i| i.kind != Loudness),
            "{incidents:?}"
        );
        // Judged over a sliding minute, its first minute is out of tolerance.
        let (incidents, _) = programme(&sliding_minute(), &levels);
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        // A file at -25.5 all along: one incident over all of it, opened and closed when
        // the input ends.
        let (incidents, events) = programme(&PipelineConfig::default(), &[-25.5; 40]);
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        assert_eq!((incidents[0].start, incidents[0].end), (0, 40 * S));
        assert_eq!(incidents[0].segments, [0, 39]);
        assert_eq!(incidents[0].evidence["programme_lufs"].mean, -25.5);
        assert!(matches!(
            events.as_slice(),
            [
                IncidentEvent::Opened {
                    kind: Loudness,
                    start: 0,
                    ..
                },
                IncidentEvent::Closed(_)
            ]
        ));
    }

    #[test]
    fn a_programme_back_within_tolerance_closes_its_incident() {
        // 3 min at -34, then 5 min at -23.5 (inside R128's ±1 LU).
        let mut levels = vec![-34.0; 180];
        levels.extend([-23.5; 300]);
        let (incidents, _) = programme(&sliding_minute(), &levels);
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        let i = &incidents[0];
        // The window leaves -34 once enough of -23.5 is in it: the incident ends within
        // the minute after the programme came back, long before the stream ends.
        assert_eq!(i.start, 0);
        assert!(i.end > 180 * S && i.end < 240 * S, "{i:?}");
        // On target all along: nothing.
        let (incidents, _) = programme(&sliding_minute(), &[-23.4; 300]);
        assert!(incidents.is_empty(), "{incidents:?}");
        // Shorter than the window: not judged.
        let (incidents, _) = programme(&sliding_minute(), &[-34.0; 59]);
        assert!(incidents.is_empty(), "{incidents:?}");
    }

    #[test]
    fn the_standard_decides_what_is_out_of_tolerance() {
        // -25.5 LUFS: 2.5 LU under R128's -23 (±1), 1.5 dB under A/85's -24 (±2).
        let levels = [-25.5; 120];
        let (r128, _) = programme(&PipelineConfig::default(), &levels);
        assert_eq!(r128.len(), 1);
        let mut config = PipelineConfig::default();
        config.loudness =
            crate::config::LoudnessConfig::for_standard(crate::config::LoudnessStandard::AtscA85);
        let (a85, _) = programme(&config, &levels);
        assert!(a85.is_empty(), "{a85:?}");
    }

    #[test]
    fn the_programme_window_in_the_state_stays_bounded() {
        // Broadcast's ten minutes of 1 s segments, in 10 s buckets.
        let config = PipelineConfig::for_profile(crate::config::Profile::Broadcast);
        let agg = IncidentAggregator::new(&config);
        let mut state = AggregatorState::default();
        let mut sizes = Vec::new();
        for i in 0..1800 {
            agg.apply(&mut state, loud(i, -34.0 + (i % 7) as f64 * 0.3, vec![]));
            assert!(state.programme.len() <= 61, "{}", state.programme.len());
            sizes.push(crate::wire::encode_state(&state).len());
        }
        // The state stored per segment does not grow with the stream.
        assert_eq!(sizes[1799], sizes[1199]);
    }

    #[test]
    fn a_short_term_dip_is_a_jump_only_below_the_programme_level_too() {
        let dip = |index: u64, st: f64| {
            let mut r = loud(
                index,
                st,
                vec![(LoudnessJump, index as i64 * S, (index as i64 + 1) * S)],
            );
            r.findings[0]
                .evidence
                .insert("short_term_lufs".into(), Summary::of(st));
            r
        };
        let mut config = PipelineConfig::default();
        config.loudness_jump.min_duration = 1.0;
        config.loudness.max_below_lu = 10.0;
        // A programme at -23 dipping to -40 for 3 s: a jump.
        let mut reports: Vec<_> = (0..20).map(|i| loud(i, -23.0, vec![])).collect();
        reports.extend((20..23).map(|i| dip(i, -40.0)));
        let (incidents, _) = run_with(&config, reports);
        let jumps: Vec<_> = incidents
            .iter()
            .filter(|i| i.kind == LoudnessJump)
            .collect();
        assert_eq!(jumps.len(), 1, "{incidents:?}");
        // A programme at -34 whose short-term loudness is -35, below the target's window
        // but not 10 LU below the programme: no jump.
        let mut reports: Vec<_> = (0..20).map(|i| loud(i, -34.0, vec![])).collect();
        reports.extend((20..23).map(|i| dip(i, -35.0)));
        let (incidents, _) = run_with(&config, reports);
        assert!(
            incidents.iter().all(|i| i.kind != LoudnessJump),
            "{incidents:?}"
        );
    }

    /// A second of picture whose frames measure `width` px, blurred (a blur finding over
    /// all of it, at that width) when above blur's default threshold.
    fn picture(index: u64, width: f64) -> SegmentReport {
        let blurred = width > crate::config::BlurConfig::default().max_edge_width;
        let span = (index as i64 * S, (index as i64 + 1) * S);
        let mut r = report(
            index,
            if blurred {
                vec![(Blur, span.0, span.1)]
            } else {
                vec![]
            },
        );
        for f in &mut r.findings {
            f.evidence.insert("edge_width".into(), Summary::of(width));
        }
        r.measurements.add(BLUR_EDGE_WIDTH, width);
        r
    }

    fn blur_incidents(widths: &[f64]) -> Vec<(Micros, Micros)> {
        let reports = (0..).zip(widths).map(|(i, &w)| picture(i, w)).collect();
        let (incidents, _) = run_all(reports);
        incidents
            .iter()
            .filter(|i| i.kind == Blur)
            .map(|i| (i.start, i.end))
            .collect()
    }

    /// `n` one-second segments: those `captioned` holds carry `services` throughout (their
    /// measurement says so), the others carry none (a `captions` finding over all of it,
    /// as the detector reports it), and a segment where captions end after 0.4 s says so.
    fn caption_segments(
        n: u64,
        services: crate::captions::Captions,
        captioned: &dyn Fn(u64) -> f64,
    ) -> Vec<SegmentReport> {
        (0..n)
            .map(|i| {
                let (start, end) = (i as i64 * S, (i as i64 + 1) * S);
                let share = captioned(i);
                let mut r = report(i, vec![]);
                for (name, on) in [
                    (CEA608_SHARE, services.cea608),
                    (CEA708_SHARE, services.cea708),
                ] {
                    r.measurements.add(name, if on { share } else { 0.0 });
                }
                if share < 1.0 {
                    let from = end - ((1.0 - share) * S as f64) as i64;
                    let mut evidence = Evidence::new();
                    if share > 0.0 {
                        for name in services.names() {
                            evidence.insert(name.into(), Summary::of(1.0));
                        }
                    }
                    r.findings.push(Finding {
                        kind: IncidentKind::Captions,
                        channel: None,
                        start: from.max(start),
                        end,
                        reaches_end: true,
                        starts_anew: share > 0.0,
                        level: Level::Raise,
                        evidence,
                    });
                }
                r
            })
            .collect()
    }

    #[test]
    fn captions_lost_raise_after_30_s_and_never_present_raise_nothing_unless_required() {
        let s708 = crate::captions::Captions {
            cea608: false,
            cea708: true,
        };
        // Never captioned: nothing, however long.
        let (incidents, events) = run_all(caption_segments(50, s708, &|_| 0.0));
        assert!(incidents.is_empty() && events.is_empty(), "{incidents:?}");

        // 708 for 10.4 s, then none for 39.6 s: one incident from 10.4 s, naming 708.
        let lost = |i: u64| match i {
            0..10 => 1.0,
            10 => 0.4,
            _ => 0.0,
        };
        let (incidents, _) = run_all(caption_segments(50, s708, &lost));
        assert_eq!(incidents.len(), 1, "{incidents:?}");
        let i = &incidents[0];
        assert_eq!((i.start, i.end), (10_400_000, 50 * S));
        assert_eq!(
            IncidentKind::Captions.headline(&i.evidence).as_deref(),
            Some("CEA-708 captions lost")
        );

        // Gone for 29 s and back: nothing.
        let back = |i: u64| if (10..39).contains(&i) { 0.0 } else { 1.0 };
        let (incidents, _) = run_all(caption_segments(50, s708, &back));
        assert!(incidents.is_empty(), "{incidents:?}");

        // Required: absence from the start counts, and a later loss names the service.
        let mut config = PipelineConfig::default();
        config.captions.required = true;
        let late = |i: u64| if (35..40).contains(&i) { 1.0 } else { 0.0 };
        let (incidents, _) = run_with(&config, caption_segments(80, s708, &late));
        assert_eq!(incidents.len(), 2, "{incidents:?}");
        assert_eq!((incidents[0].start, incidents[0].end), (0, 35 * S));
        assert_eq!(
            IncidentKind::Captions
                .headline(&incidents[0].evidence)
                .as_deref(),
            Some("no captions (required)")
        );
        assert_eq!((incidents[1].start, incidents[1].end), (40 * S, 80 * S));
        assert!(incidents[1].evidence.contains_key(CEA708));
        assert!(!incidents[1].evidence.contains_key(REQUIRED));

        // The detector off: the aggregator leaves its kind alone.
        let off = PipelineConfig {
            detectors: vec![crate::DetectorName::Freeze],
            ..PipelineConfig::default()
        };
        let (incidents, _) = run_with(&off, caption_segments(50, s708, &|_| 0.0));
        assert_eq!(incidents.len(), 1, "not judged: {incidents:?}");
    }

    #[test]
    fn a_blur_opens_only_where_the_picture_lost_its_detail_at_once() {
        // Sharp, then defocused for 3 s: edges 3.5x as wide.
        assert_eq!(
            blur_incidents(&[1.0, 1.0, 1.0, 3.5, 3.5, 3.5, 1.0]),
            vec![(3 * S, 6 * S)]
        );
        // Soft from the first frame: nothing to compare with.
        assert!(blur_incidents(&[3.5, 3.5, 3.5, 3.5]).is_empty());
        // A zoom drifting into an out-of-focus background: never twice as wide within the
        // onset window, and what follows is judged against the soft picture, not the
        // sharp one long before.
        assert!(blur_incidents(&[1.2, 1.6, 2.0, 2.4, 2.9, 3.3, 3.8, 4.5, 4.5]).is_empty());
        // Without an onset window every blurred frame counts, as before.
        let mut config = PipelineConfig::default();
        config.blur.onset_window = 0.0;
        let reports = (0..)
            .zip([3.5, 3.5, 3.5])
            .map(|(i, w)| picture(i, w))
            .collect();
        let (incidents, _) = run_with(&config, reports);
        assert_eq!(incidents.len(), 1);
    }

    #[test]
    fn a_blur_broken_before_it_is_raised_is_judged_against_the_sharp_picture_again() {
        // Broadcast raises blur after 10 s. A defocused feed hovering at the threshold
        // drops below it for a second after 4 s: the run starts again, and its onset is
        // still measured against the sharp picture before, not the blurred seconds.
        let config = PipelineConfig::for_profile(crate::config::Profile::Broadcast);
        let mut widths = vec![1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 2.6];
        widths.extend([3.0; 12]);
        let reports = (0..).zip(&widths).map(|(i, &w)| picture(i, w)).collect();
        let (incidents, _) = run_with(&config, reports);
        let blur: Vec<_> = incidents.iter().filter(|i| i.kind == Blur).collect();
        assert_eq!(blur.len(), 1, "{incidents:?}");
        assert_eq!((blur[0].start, blur[0].end), (7 * S, 19 * S));
    }

    #[test]
    fn the_sharpness_in_the_state_stays_bounded() {
        let agg = IncidentAggregator::new(&PipelineConfig::default());
        let mut state = AggregatorState::default();
        for i in 0..100 {
            agg.apply(&mut state, picture(i, 1.0 + (i % 7) as f64 * 0.1));
        }
        // 2 s of 1 s segments.
        assert_eq!(state.sharpness.0.len(), 2);
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
