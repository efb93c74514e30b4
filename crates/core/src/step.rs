//! One pipeline step — hand off → detect → release → aggregate → release — written once
//! for every runner, and the layers that watch it.
//!
//! The single-process runner calls the phases from three threads joined by channels, the
//! monitor's stream actor calls [`Step::run`] per segment, and each Lambda handler calls
//! the one phase it is. What differs between them — timing, latency histograms,
//! notifications, counters — is not written into the step: it is a [`StepLayer`] attached
//! to it (tower's `Layer`, in the form a pipeline of phases needs), so each runner states
//! which concerns it has instead of copying the wiring to add them.

use std::sync::Arc;

use crate::aggregate::{AggregatorState, IncidentAggregator, IncidentEvent};
use crate::model::{Segment, StreamId};
use crate::report::{SegmentReport, StreamReport, StreamSummary};
use crate::stage::{detect, thin_pictures, Detector};
use crate::time::Micros;
use crate::transport::{
    get_findings, get_segment, get_segment_without_pictures, Artifact, ArtifactKey, Handle,
    StateKey, Transport, TransportError,
};
use crate::wire;

/// The aggregator's state-store owner name.
const AGGREGATOR: &str = "aggregator";

/// What the detect phase runs on a segment.
#[derive(Clone, Copy)]
pub struct Detection<'a> {
    /// Detectors that see every picture.
    pub detectors: &'a [Box<dyn Detector>],
    /// Detectors that see one picture in `keep_every` (a monitor behind real time sheds
    /// load, [`thin_pictures`]); with `keep_every` 1 they see every picture too.
    pub shedding: &'a [Box<dyn Detector>],
    pub keep_every: u32,
    /// The parallel branch when detector groups run apart (the distributed topology): the
    /// findings go under the group's own key and the aggregate phase merges the groups.
    /// `None`: one report for the segment.
    pub group: Option<u16>,
}

impl<'a> Detection<'a> {
    /// Every detector, every picture, one report.
    pub fn all(detectors: &'a [Box<dyn Detector>]) -> Self {
        Detection {
            detectors,
            shedding: &[],
            keep_every: 1,
            group: None,
        }
    }

    /// One group of a segment's detectors, run apart from the others.
    pub fn group(detectors: &'a [Box<dyn Detector>], group: u16) -> Self {
        Detection {
            group: Some(group),
            ..Detection::all(detectors)
        }
    }

    /// `shedding` detectors see one picture in `keep_every`, the others every picture.
    pub fn shedding(
        detectors: &'a [Box<dyn Detector>],
        shedding: &'a [Box<dyn Detector>],
        keep_every: u32,
    ) -> Self {
        Detection {
            shedding,
            keep_every,
            ..Detection::all(detectors)
        }
    }
}

/// When a phase releases (deletes) the artifacts it consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// As soon as they are consumed: one process, where nothing retries a phase.
    Now,
    /// Never: the caller deletes them, e.g. once the report is written, so that a retried
    /// function finds them all again.
    Later,
}

/// A phase of the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    HandOff,
    Detect,
    Aggregate,
    /// Closing the stream: open incidents closed, the report made.
    Finish,
}

/// What a phase produced, as layers see it.
pub enum Outcome<'a> {
    HandedOff(&'a Handle),
    Detected {
        findings: &'a Handle,
        /// What the handle holds: the segment's findings and measurements (one group's,
        /// when detector groups run apart), for a layer that keeps them (the per-second
        /// graphs of `vqa analyze --html`).
        report: &'a SegmentReport,
        /// Pictures the shedding detectors did not see.
        shed: u64,
    },
    /// The incidents the segment opened or closed.
    Aggregated(&'a [IncidentEvent]),
    /// The report, and the incidents closing the stream closed.
    Finished(&'a StreamReport, &'a [IncidentEvent]),
}

impl Outcome<'_> {
    /// The incidents opened or closed: by an aggregate phase, or closed by finishing the
    /// stream; none for the other phases. What a layer that notifies acts on.
    pub fn events(&self) -> &[IncidentEvent] {
        match self {
            Outcome::Aggregated(events) | Outcome::Finished(_, events) => events,
            Outcome::HandedOff(_) | Outcome::Detected { .. } => &[],
        }
    }
}

/// A cross-cutting concern around the step's phases (timing, latency, notifications,
/// counters). Layers observe; they never change what a phase produces. `before` runs on the
/// thread that runs the phase, just before it; `after` once it succeeded.
#[async_trait::async_trait]
pub trait StepLayer: Send + Sync {
    fn before(&self, _phase: Phase, _stream: &StreamId, _segment: u64) {}

    async fn after(&self, _stream: &StreamId, _segment: u64, _outcome: &Outcome<'_>) {}
}

/// The pipeline step over one transport, with its layers.
#[derive(Clone)]
pub struct Step {
    transport: Arc<dyn Transport>,
    layers: Vec<Arc<dyn StepLayer>>,
}

impl Step {
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Step {
            transport,
            layers: Vec::new(),
        }
    }

    /// Adds a layer; layers see each phase in the order they were added.
    pub fn layer(mut self, layer: Arc<dyn StepLayer>) -> Self {
        self.layers.push(layer);
        self
    }

    pub fn transport(&self) -> &dyn Transport {
        self.transport.as_ref()
    }

    fn before(&self, phase: Phase, stream: &StreamId, segment: u64) {
        for l in &self.layers {
            l.before(phase, stream, segment);
        }
    }

    async fn after(&self, stream: &StreamId, segment: u64, outcome: Outcome<'_>) {
        for l in &self.layers {
            l.after(stream, segment, &outcome).await;
        }
    }

    /// Hand-off phase (the converter's side): stores one segment for the detectors.
    pub async fn hand_off(&self, segment: Segment) -> Result<Handle, TransportError> {
        let (stream, index) = (segment.stream.clone(), segment.index);
        self.before(Phase::HandOff, &stream, index);
        let handle = hand_off_segment(self.transport(), segment).await?;
        self.after(&stream, index, Outcome::HandedOff(&handle))
            .await;
        Ok(handle)
    }

    /// Detect phase: fetches the segment (without its pictures when no detector reads
    /// pixels), runs `detection`, stores the findings. Returns their handle and how many
    /// pictures the shedding detectors did not see.
    pub async fn detect(
        &self,
        detection: &Detection<'_>,
        segment: &Handle,
        release: Release,
    ) -> Result<(Handle, u64), TransportError> {
        let key = &segment.key;
        self.before(Phase::Detect, &key.stream, key.segment);
        let transport = self.transport();
        let needs_pictures = detection
            .detectors
            .iter()
            .chain(detection.shedding)
            .any(|d| d.needs_pictures());
        let media = if needs_pictures {
            get_segment(transport, segment).await?
        } else {
            get_segment_without_pictures(transport, segment).await?
        };
        let mut report = detect(detection.detectors, &media);
        let mut shed = 0;
        if !detection.shedding.is_empty() {
            if detection.keep_every <= 1 {
                report.merge_part(&detect(detection.shedding, &media));
            } else {
                let (thin, left_out) = thin_pictures(&media, detection.keep_every);
                report.merge_part(&detect(detection.shedding, &thin));
                shed = left_out;
            }
        }
        drop(media);
        let findings_key = match detection.group {
            Some(g) => ArtifactKey::findings_part(&report.stream, report.index, g),
            None => ArtifactKey::findings(&report.stream, report.index),
        };
        let report = Arc::new(report);
        let findings = transport
            .put(findings_key, Artifact::Findings(report.clone()))
            .await?;
        if release == Release::Now {
            transport.delete(segment).await?;
        }
        let outcome = Outcome::Detected {
            findings: &findings,
            report: &report,
            shed,
        };
        self.after(&key.stream, key.segment, outcome).await;
        Ok((findings, shed))
    }

    /// Aggregate phase: merges a segment's findings (one report, or one per detector group,
    /// as if one detect phase had run them all) and applies them to the stream's state in
    /// the state store. Returns the incidents it opened or closed.
    pub async fn aggregate(
        &self,
        aggregator: &IncidentAggregator,
        parts: &[Handle],
        release: Release,
    ) -> Result<Vec<IncidentEvent>, TransportError> {
        self.aggregate_as(aggregator, parts, release, None).await
    }

    /// [`aggregate`](Self::aggregate), applying the findings as the stream's segment
    /// `index` when one is given: a chunk's converter numbers its segments by window, and the
    /// stream's chunk cursor knows their place in the stream ([`crate::chunk`]).
    pub async fn aggregate_as(
        &self,
        aggregator: &IncidentAggregator,
        parts: &[Handle],
        release: Release,
        index: Option<u64>,
    ) -> Result<Vec<IncidentEvent>, TransportError> {
        let Some(first) = parts.first() else {
            return Ok(Vec::new());
        };
        let stream = first.key.stream.clone();
        let index = index.unwrap_or(first.key.segment);
        self.before(Phase::Aggregate, &stream, index);
        let transport = self.transport();
        let mut merged: Option<SegmentReport> = None;
        for handle in parts {
            let part = get_findings(transport, handle).await?;
            match &mut merged {
                None => merged = Some(part.as_ref().clone()),
                Some(report) => report.merge_part(&part),
            }
        }
        let mut events = Vec::new();
        if let Some(mut report) = merged {
            report.index = index;
            // The findings' keys name the stream their report is of.
            let key = StateKey::new(&stream, AGGREGATOR);
            let mut state = load_state(transport, &key).await?;
            events = aggregator.apply(&mut state, report);
            // A full batch of closed incidents moves out before the state is stored: a
            // retry from the same state writes the same batch under the same key.
            if let Some((n, batch)) = state.take_batch() {
                transport
                    .store_state(&batch_key(&stream, n), wire::encode_state(&batch))
                    .await?;
            }
            transport
                .store_state(&key, wire::encode_state(&state))
                .await?;
        }
        if release == Release::Now {
            for handle in parts {
                transport.delete(handle).await?;
            }
        }
        self.after(&stream, index, Outcome::Aggregated(&events))
            .await;
        Ok(events)
    }

    /// The three phases on one segment, releasing as they go: what one process does with
    /// each segment. Returns the incidents opened or closed and the pictures shed.
    pub async fn run(
        &self,
        detection: &Detection<'_>,
        aggregator: &IncidentAggregator,
        segment: Segment,
    ) -> Result<(Vec<IncidentEvent>, u64), TransportError> {
        let handle = self.hand_off(segment).await?;
        let (findings, shed) = self.detect(detection, &handle, Release::Now).await?;
        let events = self
            .aggregate(aggregator, &[findings], Release::Now)
            .await?;
        Ok((events, shed))
    }

    /// Finish phase: closes open incidents and produces the stream report; the stream's
    /// state is cleared.
    pub async fn finish(
        &self,
        aggregator: &IncidentAggregator,
        stream: &StreamId,
        summary: StreamSummary,
    ) -> Result<(StreamReport, Vec<IncidentEvent>), TransportError> {
        let (report, closing, batches) = self.concluded(aggregator, stream, summary).await?;
        self.clear_batches(stream, batches).await?;
        Ok((report, closing))
    }

    /// [`finish`](Self::finish) without removing the state: for a runner that must record
    /// the report before the state may go (a retried distributed aggregator finds the state
    /// again), and then calls [`clear`](Self::clear).
    pub async fn conclude(
        &self,
        aggregator: &IncidentAggregator,
        stream: &StreamId,
        summary: StreamSummary,
    ) -> Result<(StreamReport, Vec<IncidentEvent>), TransportError> {
        let (report, closing, _) = self.concluded(aggregator, stream, summary).await?;
        Ok((report, closing))
    }

    async fn concluded(
        &self,
        aggregator: &IncidentAggregator,
        stream: &StreamId,
        summary: StreamSummary,
    ) -> Result<(StreamReport, Vec<IncidentEvent>, u64), TransportError> {
        self.before(Phase::Finish, stream, u64::MAX);
        let (state, batches) = load_whole_state(self.transport(), stream).await?;
        let (report, closing) = aggregator.finish(state, stream.clone(), summary);
        self.after(stream, u64::MAX, Outcome::Finished(&report, &closing))
            .await;
        Ok((report, closing, batches))
    }

    /// Where analysis of the stream is: the end of the last segment its aggregator applied
    /// (µs of stream time).
    pub async fn analysed(&self, stream: &StreamId) -> Result<Micros, TransportError> {
        let key = StateKey::new(stream, AGGREGATOR);
        Ok(load_state(self.transport(), &key).await?.analysed())
    }

    /// Removes the stream's aggregator state (and its batches of closed incidents).
    pub async fn clear(&self, stream: &StreamId) -> Result<(), TransportError> {
        let key = StateKey::new(stream, AGGREGATOR);
        let batches = load_state(self.transport(), &key).await?.batches();
        self.clear_batches(stream, batches).await
    }

    async fn clear_batches(&self, stream: &StreamId, batches: u64) -> Result<(), TransportError> {
        let key = StateKey::new(stream, AGGREGATOR);
        for n in 0..batches {
            self.transport().clear_state(&batch_key(stream, n)).await?;
        }
        self.transport().clear_state(&key).await
    }

    /// The stream report as it stands, while the stream goes on: what [`Step::finish`]
    /// would produce now (incidents still open end where analysis is), leaving the state
    /// untouched. Not a phase: layers do not see it.
    pub async fn snapshot(
        &self,
        aggregator: &IncidentAggregator,
        stream: &StreamId,
        summary: StreamSummary,
    ) -> Result<StreamReport, TransportError> {
        let (state, _) = load_whole_state(self.transport(), stream).await?;
        Ok(aggregator.finish(state, stream.clone(), summary).0)
    }
}

/// Stores one segment for the detectors: the hand-off itself, without a step's layers.
pub async fn hand_off_segment(
    transport: &dyn Transport,
    segment: Segment,
) -> Result<Handle, TransportError> {
    let key = ArtifactKey::segment(&segment.stream, segment.index);
    transport
        .put(key, Artifact::Segment(Arc::new(segment)))
        .await
}

/// Where batch `n` of a stream's closed incidents is kept.
fn batch_key(stream: &StreamId, n: u64) -> StateKey {
    StateKey::new(stream, &format!("{AGGREGATOR}-incidents-{n:08}"))
}

/// The stream's state with the batches of closed incidents put back (what closing the
/// stream, or a report of it as it stands, needs), and how many batches there were.
async fn load_whole_state(
    transport: &dyn Transport,
    stream: &StreamId,
) -> Result<(AggregatorState, u64), TransportError> {
    let mut state = load_state(transport, &StateKey::new(stream, AGGREGATOR)).await?;
    let count = state.batches();
    let mut batches = Vec::new();
    for n in 0..count {
        let key = batch_key(stream, n);
        let bytes = transport.load_state(&key).await?.ok_or_else(|| {
            TransportError::NotFound(format!("{key} (a batch of closed incidents)"))
        })?;
        batches.push(wire::decode_state(&key.to_string(), &bytes)?);
    }
    state.restore(batches);
    Ok((state, count))
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
