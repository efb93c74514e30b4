//! The stages and their drivers, shared by every topology.
//!
//! A driver takes handles, fetches artifacts through a [`Transport`], runs the stage's pure
//! code and hands its output on. The single-process runner calls these from tasks joined by
//! channels; a Lambda handler calls the same functions with handles from its payload.

use std::sync::Arc;

use crate::aggregate::{AggregatorState, IncidentAggregator, IncidentEvent};
use crate::config::DetectorName;
use crate::model::{MediaInfo, Segment, StreamId};
use crate::report::{Finding, Measurements, SegmentReport, StreamReport, StreamSummary};
use crate::transport::{
    get_findings, get_segment, get_segment_without_pictures, Artifact, ArtifactKey, Handle,
    StateKey, Transport, TransportError,
};
use crate::wire;

/// Turns an input into segments. Opening the input (and failing on bad input) is the
/// implementation's constructor; after that, damage is recorded in the summary, not raised.
pub trait Converter: Send {
    fn media(&self) -> &MediaInfo;

    /// The next segment, or `None` when the input is exhausted.
    fn next_segment(&mut self) -> Option<Segment>;

    /// What the converter learnt about the input; complete once `next_segment` returned `None`.
    fn summary(&self) -> StreamSummary;
}

/// Looks at one segment and reports where its condition held.
///
/// Detectors are stateless: anything spanning segments is the aggregator's job. A detector
/// implements one of the two `analyze` methods: `analyze_measuring` when it also reports
/// measurements (values summarised over the stream, or histograms).
pub trait Detector: Send + Sync {
    fn name(&self) -> DetectorName;

    /// Whether it reads pictures' pixels. A group of detectors that all say no is handed the
    /// segment without them where the transport can leave them behind (per-picture objects):
    /// timestamps, flags and audio only.
    fn needs_pictures(&self) -> bool {
        true
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        self.analyze_measuring(segment, &mut Measurements::default())
    }

    fn analyze_measuring(
        &self,
        segment: &Segment,
        measurements: &mut Measurements,
    ) -> Vec<Finding> {
        let _ = measurements;
        self.analyze(segment)
    }
}

/// Runs every detector on a segment.
pub fn detect(detectors: &[Box<dyn Detector>], segment: &Segment) -> SegmentReport {
    let mut measurements = Measurements::default();
    let findings = detectors
        .iter()
        .flat_map(|d| d.analyze_measuring(segment, &mut measurements))
        .collect();
    SegmentReport {
        stream: segment.stream.clone(),
        index: segment.index,
        start: segment.start,
        end: segment.end,
        video_frames: segment.video.len() as u32,
        audio_frames: segment.audio_frames(),
        decode_errors: segment.decode_errors,
        findings,
        measurements,
    }
}

/// The aggregator's state-store owner name.
const AGGREGATOR: &str = "aggregator";

/// Converter stage: hands one segment on.
pub async fn hand_off_segment(
    transport: &dyn Transport,
    segment: Segment,
) -> Result<Handle, TransportError> {
    let key = ArtifactKey::segment(&segment.stream, segment.index);
    transport
        .put(key, Artifact::Segment(Arc::new(segment)))
        .await
}

/// Detector stage: fetches a segment, runs the detectors, hands the findings on.
pub async fn detect_stage(
    transport: &dyn Transport,
    detectors: &[Box<dyn Detector>],
    segment: &Handle,
) -> Result<Handle, TransportError> {
    detect_part_stage(transport, detectors, segment, None).await
}

/// Detector stage for one group of detectors when groups run apart (the distributed
/// topology's parallel branches): the findings go under the group's own key, and the
/// aggregator merges the groups (`aggregate_parts_stage`). `None` is the whole set.
pub async fn detect_part_stage(
    transport: &dyn Transport,
    detectors: &[Box<dyn Detector>],
    segment: &Handle,
    group: Option<u16>,
) -> Result<Handle, TransportError> {
    let segment = if detectors.iter().any(|d| d.needs_pictures()) {
        get_segment(transport, segment).await?
    } else {
        get_segment_without_pictures(transport, segment).await?
    };
    let report = detect(detectors, &segment);
    let key = match group {
        Some(g) => ArtifactKey::findings_part(&report.stream, report.index, g),
        None => ArtifactKey::findings(&report.stream, report.index),
    };
    transport
        .put(key, Artifact::Findings(Arc::new(report)))
        .await
}

/// One picture in `keep_every` of a segment (its lead-in kept, audio untouched): what
/// detectors see when a monitor running behind real time sheds load. Returns the thinned
/// segment and how many pictures it left out.
pub fn thin_pictures(segment: &Segment, keep_every: u32) -> (Segment, u64) {
    let keep_every = keep_every.max(1) as usize;
    let video: Vec<_> = segment.video.iter().step_by(keep_every).cloned().collect();
    let shed = (segment.video.len() - video.len()) as u64;
    let thinned = Segment {
        video,
        ..segment.clone()
    };
    (thinned, shed)
}

/// Detector stage under load: `full` detectors see the whole segment, `thinned` ones one
/// picture in `keep_every` (see [`thin_pictures`]); their findings go on as one report, as
/// [`detect_stage`]'s do. Returns the findings' handle and how many pictures the thinned detectors did not see.
pub async fn detect_shedding_stage(
    transport: &dyn Transport,
    full: &[Box<dyn Detector>],
    thinned: &[Box<dyn Detector>],
    keep_every: u32,
    segment: &Handle,
) -> Result<(Handle, u64), TransportError> {
    let segment = get_segment(transport, segment).await?;
    let mut report = detect(full, &segment);
    let mut shed = 0;
    if keep_every <= 1 {
        report.merge_part(&detect(thinned, &segment));
    } else if !thinned.is_empty() {
        let (thin, left_out) = thin_pictures(&segment, keep_every);
        report.merge_part(&detect(thinned, &thin));
        shed = left_out;
    }
    let key = ArtifactKey::findings(&report.stream, report.index);
    let handle = transport
        .put(key, Artifact::Findings(Arc::new(report)))
        .await?;
    Ok((handle, shed))
}

/// Aggregator stage: applies one segment's findings to the stream's state in the state store.
pub async fn aggregate_stage(
    transport: &dyn Transport,
    aggregator: &IncidentAggregator,
    findings: &Handle,
) -> Result<Vec<IncidentEvent>, TransportError> {
    aggregate_parts_stage(transport, aggregator, std::slice::from_ref(findings)).await
}

/// Aggregator stage for a segment whose detectors ran in groups: merges the groups'
/// findings into one report (as if one detector stage had run them all), then applies it.
pub async fn aggregate_parts_stage(
    transport: &dyn Transport,
    aggregator: &IncidentAggregator,
    parts: &[Handle],
) -> Result<Vec<IncidentEvent>, TransportError> {
    let mut merged: Option<SegmentReport> = None;
    for handle in parts {
        let part = get_findings(transport, handle).await?;
        match &mut merged {
            None => merged = Some(part.as_ref().clone()),
            Some(report) => report.merge_part(&part),
        }
    }
    let Some(report) = merged else {
        return Ok(Vec::new());
    };
    let key = StateKey::new(&report.stream, AGGREGATOR);
    let mut state = load_state(transport, &key).await?;
    let events = aggregator.apply(&mut state, report);
    transport
        .store_state(&key, wire::encode_state(&state))
        .await?;
    Ok(events)
}

/// Final aggregator step: closes open incidents and produces the stream report.
pub async fn finish_stage(
    transport: &dyn Transport,
    aggregator: &IncidentAggregator,
    stream: &StreamId,
    summary: StreamSummary,
) -> Result<(StreamReport, Vec<IncidentEvent>), TransportError> {
    let key = StateKey::new(stream, AGGREGATOR);
    let state = load_state(transport, &key).await?;
    let out = aggregator.finish(state, stream.clone(), summary);
    transport.clear_state(&key).await?;
    Ok(out)
}

/// The stream report as it stands, while the stream goes on: what `finish_stage` would
/// write now (incidents still open end where analysis is), leaving the state untouched.
pub async fn snapshot_stage(
    transport: &dyn Transport,
    aggregator: &IncidentAggregator,
    stream: &StreamId,
    summary: StreamSummary,
) -> Result<StreamReport, TransportError> {
    let key = StateKey::new(stream, AGGREGATOR);
    let state = load_state(transport, &key).await?;
    Ok(aggregator.finish(state, stream.clone(), summary).0)
}

async fn load_state(
    transport: &dyn Transport,
    key: &StateKey,
) -> Result<AggregatorState, TransportError> {
    match transport.load_state(key).await? {
        Some(bytes) => wire::decode_state(&key.to_string(), &bytes),
        None => Ok(AggregatorState::default()),
    }
}
