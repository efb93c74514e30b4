//! What detectors and the aggregator produce: findings per segment, incidents per stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{MediaInfo, StreamId, Track};
use crate::time::{self, Micros};

pub use crate::kinds::IncidentKind;

/// Min, max and mean of one measurement over the frames or samples of a finding or incident.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// How many values were summarised (frames or sample blocks).
    pub count: u64,
}

impl Summary {
    pub fn of(value: f64) -> Self {
        Summary {
            min: value,
            max: value,
            mean: value,
            count: 1,
        }
    }

    pub fn add(&mut self, value: f64) {
        self.merge(&Summary::of(value));
    }

    pub fn merge(&mut self, other: &Summary) {
        let n = self.count + other.count;
        if n == 0 {
            return;
        }
        self.mean = (self.mean * self.count as f64 + other.mean * other.count as f64) / n as f64;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count = n;
    }
}

/// Named measurements backing a finding, e.g. `{"black_ratio": {min, max, mean, count}}`.
pub type Evidence = BTreeMap<String, Summary>;

/// Counts of values in bins of 0.1 unit (bin `b` holds values in `[b/10 - 0.05, b/10 + 0.05)`),
/// e.g. the loudness of every 400 ms block: unlike a [`Summary`], enough to compute gated
/// means and percentiles over a whole stream.
pub type Histogram = BTreeMap<i32, u64>;

/// Named histograms, merged bin by bin across segments.
pub type Histograms = BTreeMap<String, Histogram>;

/// Adds `value` to a histogram.
pub fn histogram_add(h: &mut Histogram, value: f64) {
    if value.is_finite() {
        *h.entry((value * 10.0).round() as i32).or_insert(0) += 1;
    }
}

/// Merges `from` into `into`, bin by bin.
pub fn merge_histograms(into: &mut Histograms, from: &Histograms) {
    for (name, h) in from {
        let target = into.entry(name.clone()).or_default();
        for (bin, n) in h {
            *target.entry(*bin).or_insert(0) += n;
        }
    }
}

/// Measurement: a frame's edge width, pixels (the blur detector's; the aggregator judges
/// a blur's onset against the stream's recent values).
pub const BLUR_EDGE_WIDTH: &str = "blur.edge_width";

/// Measurement: audio onset minus flash on a sync test pattern, ms (positive: audio late).
pub const AV_SYNC_OFFSET_MS: &str = "av_sync.offset_ms";

/// What detectors measured besides findings: values summarised over a segment (and, merged,
/// over the stream), e.g. `av_sync.offset_ms`, and histograms, e.g. `loudness.momentary_lufs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    pub values: Evidence,
    pub histograms: Histograms,
}

impl Measurements {
    pub fn add(&mut self, name: &str, value: f64) {
        if !value.is_finite() {
            return;
        }
        match self.values.get_mut(name) {
            Some(s) => s.add(value),
            None => {
                self.values.insert(name.to_string(), Summary::of(value));
            }
        }
    }

    pub fn add_to_histogram(&mut self, name: &str, value: f64) {
        if !self.histograms.contains_key(name) {
            self.histograms.insert(name.to_string(), Histogram::new());
        }
        if let Some(h) = self.histograms.get_mut(name) {
            histogram_add(h, value);
        }
    }

    pub fn merge(&mut self, other: &Measurements) {
        merge_evidence(&mut self.values, &other.values);
        merge_histograms(&mut self.histograms, &other.histograms);
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.histograms.is_empty()
    }
}

/// Merges `from` into `into`, measurement by measurement.
pub fn merge_evidence(into: &mut Evidence, from: &Evidence) {
    for (name, summary) in from {
        into.entry(name.clone())
            .and_modify(|s| s.merge(summary))
            .or_insert(*summary);
    }
}

/// What one detector saw in one segment: an interval where its condition held.
///
/// A finding may be shorter than the defect's minimum duration when it touches the segment's
/// edge: the aggregator joins it with its continuation in the neighbouring segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: IncidentKind,
    /// The audio channel (0-based, in the input's order) when the defect is on one channel.
    pub channel: Option<u16>,
    pub start: Micros,
    pub end: Micros,
    /// The condition held up to the segment's last frame or sample (or the detector could
    /// not decide there), so it may go on in the next segment.
    pub reaches_end: bool,
    /// The condition starts again at `start`: the item just before it was judged not to
    /// have it, so the finding does not continue a run it only touches (a run of frozen
    /// pairs of frames that starts with a changed picture touches the run before it).
    #[serde(default)]
    pub starts_anew: bool,
    /// How the finding bears on an incident of its kind: most say the condition holds
    /// ([`Level::Raise`]).
    #[serde(default)]
    pub level: Level,
    pub evidence: Evidence,
}

/// How a finding bears on an incident of its kind.
///
/// Level measures (loudness, blockiness, blur) raise an incident at one threshold and clear it
/// at a milder one (hysteresis), so a measure hovering at the threshold is one incident, not
/// an alarm flapping on and off: the stretch between the two thresholds is a `Hold`. Kinds
/// measured only where the content allows (A/V offset, at a flash) say where they measured
/// the condition absent with a `Clear`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The condition holds: opens an incident or continues one.
    #[default]
    Raise,
    /// The condition holds at its clear level: continues an open incident, never opens one.
    Hold,
    /// The condition was measured absent here: closes an open incident of a kind whose
    /// incidents otherwise stay open between measurements (`continuity`).
    Clear,
}

/// How bad an incident is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// An event, not a defect: what a kind that reports events (SCTE-35 cues) reports.
    Info,
    /// Lasted at least the kind's minimum duration.
    Major,
    /// Lasted at least the kind's `critical_after` duration.
    Critical,
}

/// A defect over `[start, end)`, possibly spanning many segments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub kind: IncidentKind,
    /// The audio channel (0-based, in the input's order) when the defect is on one channel.
    pub channel: Option<u16>,
    #[serde(with = "time::as_secs")]
    pub start: Micros,
    #[serde(with = "time::as_secs")]
    pub end: Micros,
    #[serde(with = "time::as_secs")]
    pub duration: Micros,
    pub severity: Severity,
    /// Index of the first and last segment the incident covers.
    pub segments: [u64; 2],
    pub evidence: Evidence,
}

/// The detectors' output for one segment: what the aggregator consumes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentReport {
    pub stream: StreamId,
    pub index: u64,
    pub start: Micros,
    pub end: Micros,
    pub video_frames: u32,
    pub audio_frames: u64,
    pub decode_errors: u32,
    pub findings: Vec<Finding>,
    pub measurements: Measurements,
}

impl SegmentReport {
    /// Adds another detector group's findings and measurements for the same segment.
    pub fn merge_part(&mut self, other: &SegmentReport) {
        self.findings.extend(other.findings.iter().cloned());
        self.measurements.merge(&other.measurements);
    }

    /// A segment of lost input from `start` to `end`: nothing but an `input_loss` finding
    /// reaching its end (so the incident opens at once and grows while the source is
    /// away), with the reconnection attempts made so far as its evidence. Both monitors
    /// hand the aggregator these while a live source is away.
    pub fn input_loss(
        stream: StreamId,
        index: u64,
        start: Micros,
        end: Micros,
        attempts: u64,
    ) -> SegmentReport {
        let mut evidence = Evidence::new();
        evidence.insert("reconnect_attempts".into(), Summary::of(attempts as f64));
        SegmentReport {
            stream,
            index,
            start,
            end,
            video_frames: 0,
            audio_frames: 0,
            decode_errors: 0,
            findings: vec![Finding {
                kind: IncidentKind::InputLoss,
                channel: None,
                start,
                end,
                reaches_end: true,
                starts_anew: false,
                level: Level::Raise,
                evidence,
            }],
            measurements: Default::default(),
        }
    }
}

/// What the converter knows once the input is exhausted; completes the stream report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    pub input: String,
    pub media: MediaInfo,
    /// False when the input ended early or could not be read to the end.
    pub complete: bool,
    /// Why the analysis is incomplete or doubtful, one sentence each.
    pub warnings: Vec<String>,
    /// The transport stream's health over the input, when it is an MPEG-TS the converter
    /// analysed (docs/ts-health.md).
    pub ts_health: Option<TsHealthSummary>,
}

/// An MPEG-TS input's health over the whole input (ETSI TR 101 290): errors per indicator,
/// and what the stream carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsHealthSummary {
    /// Errors per TR 101 290 indicator, every indicator (zeros too), priority 1 first
    /// ([`crate::model::TS_INDICATORS`] order).
    pub errors: Vec<(String, u64)>,
    /// TS packets analysed (null packets included).
    pub packets: u64,
    /// Bytes skipped while out of sync.
    pub skipped_bytes: u64,
    pub programmes: Vec<TsProgramme>,
    /// PIDs carrying SCTE-35 splice information (stream_type 0x86).
    pub scte35_pids: Vec<u16>,
}

impl TsHealthSummary {
    /// Errors of one priority (1 or 2), all indicators together.
    pub fn errors_of_priority(&self, priority: u8) -> u64 {
        let first = &crate::model::TS_INDICATORS[..crate::model::TS_PRIORITY1_INDICATORS];
        self.errors
            .iter()
            .filter(|(name, _)| first.contains(&name.as_str()) == (priority == 1))
            .map(|(_, n)| n)
            .sum()
    }
}

/// A programme as the PAT and its PMT describe it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsProgramme {
    pub number: u16,
    pub pmt_pid: u16,
    pub pcr_pid: Option<u16>,
    /// Its elementary streams: PID and stream_type.
    pub streams: Vec<(u16, u8)>,
}

/// Counts over the analysed part of the stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub segments: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub decode_errors: u64,
    /// Seconds from the start of the input to the end of the last analysed segment.
    #[serde(with = "time::as_secs")]
    pub analysed: Micros,
}

/// The result for one stream: the one write the aggregator makes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    pub stream: StreamId,
    pub input: String,
    pub media: MediaInfo,
    pub missing_tracks: Vec<Track>,
    pub complete: bool,
    pub warnings: Vec<String>,
    pub coverage: Coverage,
    pub incidents: Vec<Incident>,
    /// Programme loudness over the whole stream (EBU R128), when the loudness detector ran on
    /// audio.
    pub loudness: Option<crate::loudness::LoudnessSummary>,
    /// What the detectors measured, summarised over the stream (e.g. `av_sync.offset_ms`).
    pub measurements: Evidence,
    /// An MPEG-TS input's health: TR 101 290 errors per indicator, programmes, SCTE-35 PIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_health: Option<TsHealthSummary>,
    /// With both topologies run side by side (`vqa monitor --topology ab`): the incidents
    /// one of them reported and the other did not, or with another start or end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub divergences: Vec<Divergence>,
    /// With both topologies side by side: what each cost on this stream, as accrued while
    /// it was monitored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cost: Vec<SideCost>,
}

/// What one topology cost on a monitored stream (`vqa monitor --topology ab`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SideCost {
    /// `single` or `distributed`.
    pub topology: String,
    pub usd: f64,
    /// `usd` over the hours the stream was monitored.
    pub usd_per_stream_hour: f64,
}

/// An incident the two topologies disagree on: reported by one only (the other side is
/// `None`), or by both with a start or end further apart than the comparison's tolerance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub kind: IncidentKind,
    pub channel: Option<u16>,
    pub single: Option<Incident>,
    pub distributed: Option<Incident>,
}

impl StreamReport {
    /// One report from the reports of detector shards: processes that each decoded the same
    /// stream and ran a disjoint subset of the detectors. Incidents and measurements are
    /// the union (ordered as the aggregator orders them), warnings are merged without
    /// repeats, the stream is complete only if every shard read all of it; what describes
    /// the input (media, coverage) is the first shard's. The result equals the report of one
    /// process running every detector. `None` for no reports.
    pub fn merge_shards(parts: Vec<StreamReport>) -> Option<StreamReport> {
        let mut parts = parts.into_iter();
        let mut merged = parts.next()?;
        for part in parts {
            merged.complete &= part.complete;
            for w in part.warnings {
                if !merged.warnings.contains(&w) {
                    merged.warnings.push(w);
                }
            }
            merged.incidents.extend(part.incidents);
            if merged.loudness.is_none() {
                merged.loudness = part.loudness;
            }
            if merged.ts_health.is_none() {
                // Only the shard running the TS health detector analyses the stream.
                merged.ts_health = part.ts_health;
            }
            merged.measurements.extend(part.measurements);
            if part.coverage.segments > merged.coverage.segments {
                // A shard that lost part of the stream does not hide what another saw.
                merged.coverage = part.coverage;
            }
        }
        merged
            .incidents
            .sort_by_key(|i| (i.start, i.kind, i.channel));
        Some(merged)
    }
}
