//! The pipeline step's phases on the in-memory transport: what they hand on, what they
//! release and when, how detector groups merge, how shedding thins pictures, and what layers
//! see.

use std::sync::{Arc, Mutex};

use vqa_core::report::Level;
use vqa_core::step::{Detection, Outcome, Phase, Release, Step, StepLayer};
use vqa_core::testing::{audio_segment, frame, stereo_block, video_segment, FRAME};
use vqa_core::{
    Detector, DetectorName, Finding, IncidentAggregator, IncidentEvent, IncidentKind,
    PipelineConfig, Segment, StreamId, StreamSummary, Transport,
};
use vqa_transport_mem::MemTransport;

/// Black when every picture of the segment is dark: one finding over the whole segment.
struct Dark;

impl Detector for Dark {
    fn name(&self) -> DetectorName {
        DetectorName::Black
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let dark = !segment.video.is_empty() && segment.video.iter().all(|f| f.luma[0] < 20);
        whole(segment, IncidentKind::Black, dark)
    }
}

/// Silence when every sample is zero; it reads no pixels.
struct Quiet;

impl Detector for Quiet {
    fn name(&self) -> DetectorName {
        DetectorName::Silence
    }

    fn needs_pictures(&self) -> bool {
        false
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        let quiet = !segment.audio.is_empty()
            && segment
                .audio
                .iter()
                .all(|b| b.samples.iter().all(|s| *s == 0.0));
        whole(segment, IncidentKind::Silence, quiet)
    }
}

fn whole(segment: &Segment, kind: IncidentKind, holds: bool) -> Vec<Finding> {
    if !holds {
        return Vec::new();
    }
    vec![Finding {
        kind,
        channel: None,
        start: segment.start,
        end: segment.end,
        reaches_end: true,
        starts_anew: false,
        level: Level::Raise,
        evidence: Default::default(),
    }]
}

/// Segment `index` with 25 pictures of luma `luma` and a second of audio of `amplitude`.
fn segment(index: u64, luma: u8, amplitude: f32) -> Segment {
    let start = index as i64 * 1_000_000;
    let video = (0..25)
        .map(|i| frame(start + i * FRAME, |_, _| luma))
        .collect();
    Segment {
        has_audio: true,
        audio: vec![stereo_block(start, amplitude)],
        ..video_segment(index, None, video)
    }
}

fn boxed(detectors: Vec<Box<dyn Detector>>) -> Vec<Box<dyn Detector>> {
    detectors
}

/// What a layer saw: each phase's `before` and each outcome's `after`, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl StepLayer for Recorder {
    fn before(&self, phase: Phase, _stream: &StreamId, segment: u64) {
        let segment = if segment == u64::MAX {
            -1
        } else {
            segment as i64
        };
        self.0
            .lock()
            .unwrap()
            .push(format!("before {phase:?} {segment}"));
    }

    async fn after(&self, _stream: &StreamId, _segment: u64, outcome: &Outcome<'_>) {
        let what = match outcome {
            Outcome::HandedOff(_) => "handed off".to_string(),
            Outcome::Detected { shed, .. } => format!("detected, {shed} shed"),
            Outcome::Aggregated(events) => format!("aggregated, {} events", events.len()),
            Outcome::Finished(report, _) => {
                format!("finished, {} incidents", report.incidents.len())
            }
        };
        self.0.lock().unwrap().push(what);
    }
}

#[tokio::test]
async fn run_hands_on_releases_and_layers_see_every_phase_in_order() {
    let transport = Arc::new(MemTransport::new(4));
    let recorder = Arc::new(Recorder::default());
    let step = Step::new(transport.clone()).layer(recorder.clone());
    let aggregator = IncidentAggregator::new(&PipelineConfig::default());
    let detectors = boxed(vec![Box::new(Dark)]);
    let detection = Detection::all(&detectors);

    let mut events = Vec::new();
    for (index, luma) in [(0, 128), (1, 5), (2, 5), (3, 128)] {
        let (e, shed) = step
            .run(&detection, &aggregator, segment(index, luma, 0.5))
            .await
            .unwrap();
        assert_eq!(shed, 0);
        // Released as it went: nothing is left between segments.
        assert!(transport.is_empty(), "segment {index}: artifacts left");
        events.extend(e);
    }
    assert!(matches!(
        events[0],
        IncidentEvent::Opened {
            kind: IncidentKind::Black,
            start: 1_000_000,
            ..
        }
    ));
    let IncidentEvent::Closed(closed) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!((closed.start, closed.end), (1_000_000, 3_000_000));
    assert_eq!(events.len(), 2);

    let stream = StreamId::new("t");
    let (report, closing) = step
        .finish(&aggregator, &stream, StreamSummary::default())
        .await
        .unwrap();
    assert!(closing.is_empty());
    assert_eq!(report.incidents, vec![closed.clone()]);
    assert_eq!(report.coverage.segments, 4);

    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        &seen[..6],
        [
            "before HandOff 0",
            "handed off",
            "before Detect 0",
            "detected, 0 shed",
            "before Aggregate 0",
            "aggregated, 0 events"
        ]
    );
    // The incident opened with segment 1 and closed with segment 3.
    let aggregated: Vec<&str> = (0..4).map(|i| seen[i * 6 + 5].as_str()).collect();
    assert_eq!(
        aggregated,
        [
            "aggregated, 0 events",
            "aggregated, 1 events",
            "aggregated, 0 events",
            "aggregated, 1 events"
        ]
    );
    assert_eq!(
        &seen[4 * 6..],
        ["before Finish -1", "finished, 1 incidents"]
    );
}

#[tokio::test]
async fn detector_groups_run_apart_merge_into_what_one_group_reports() {
    let config = PipelineConfig::default();
    let aggregator = IncidentAggregator::new(&config);
    let segments = || {
        [(0, 128, 0.5), (1, 5, 0.0), (2, 5, 0.0), (3, 128, 0.0)]
            .map(|(i, luma, amplitude)| segment(i, luma, amplitude))
    };
    let stream = StreamId::new("t");

    // One process: every detector in one group.
    let together = Step::new(Arc::new(MemTransport::new(4)));
    let all = boxed(vec![Box::new(Dark), Box::new(Quiet)]);
    for s in segments() {
        together
            .run(&Detection::all(&all), &aggregator, s)
            .await
            .unwrap();
    }
    let (expected, _) = together
        .finish(&aggregator, &stream, StreamSummary::default())
        .await
        .unwrap();
    let kinds: Vec<IncidentKind> = expected.incidents.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, [IncidentKind::Black, IncidentKind::Silence]);

    // Parallel branches: each group's findings apart, nothing released until the caller
    // says so (a retried function must find them again).
    let transport = Arc::new(MemTransport::new(16));
    let apart = Step::new(transport.clone());
    let (video, audio) = (boxed(vec![Box::new(Dark)]), boxed(vec![Box::new(Quiet)]));
    let mut left = Vec::new();
    for s in segments() {
        let handle = apart.hand_off(s).await.unwrap();
        let (f0, _) = apart
            .detect(&Detection::group(&video, 0), &handle, Release::Later)
            .await
            .unwrap();
        let (f1, _) = apart
            .detect(&Detection::group(&audio, 1), &handle, Release::Later)
            .await
            .unwrap();
        assert_ne!(f0.key, f1.key, "each group has its own findings");
        apart
            .aggregate(&aggregator, &[f0.clone(), f1.clone()], Release::Later)
            .await
            .unwrap();
        left.extend([handle, f0, f1]);
    }
    assert_eq!(
        transport.len(),
        left.len(),
        "Release::Later keeps every artifact"
    );
    let (report, _) = apart
        .finish(&aggregator, &stream, StreamSummary::default())
        .await
        .unwrap();
    assert_eq!(report, expected);
    for handle in &left {
        transport.delete(handle).await.unwrap();
    }
    assert!(transport.is_empty());
}

#[tokio::test]
async fn shedding_thins_only_the_shedding_detectors_pictures() {
    let aggregator = IncidentAggregator::new(&PipelineConfig::default());
    let full = boxed(vec![Box::new(Quiet)]);
    let shedding = boxed(vec![Box::new(Dark)]);
    let step = Step::new(Arc::new(MemTransport::new(4)));
    for (keep_every, shed) in [(1, 0), (2, 12), (8, 21)] {
        let detection = Detection::shedding(&full, &shedding, keep_every);
        let (_, got) = step
            .run(&detection, &aggregator, segment(0, 5, 0.0))
            .await
            .unwrap();
        assert_eq!(got, shed, "1 picture in {keep_every}");
    }
    // Audio-only segments shed nothing.
    let detection = Detection::shedding(&full, &shedding, 4);
    let audio = audio_segment(1, vec![stereo_block(1_000_000, 0.0)]);
    let (_, got) = step.run(&detection, &aggregator, audio).await.unwrap();
    assert_eq!(got, 0);
}

#[tokio::test]
async fn closed_incidents_move_out_in_batches_so_the_state_stays_small() {
    use vqa_core::aggregate::{AggregatorState, INCIDENT_BATCH};
    use vqa_core::transport::StateKey;

    let aggregator = IncidentAggregator::new(&PipelineConfig::default());
    let detectors = boxed(vec![Box::new(Dark)]);
    let detection = Detection::all(&detectors);
    let transport = Arc::new(MemTransport::new(4));
    let step = Step::new(transport.clone());
    let stream = StreamId::new("t");
    let state_key = StateKey::new(&stream, "aggregator");

    // Every other segment dark: an incident closes every two segments.
    let segments = 5 * INCIDENT_BATCH as u64;
    let mut expected_state = AggregatorState::default();
    let mut state_sizes = Vec::new();
    for index in 0..segments {
        let luma = if index % 2 == 1 { 5 } else { 128 };
        let s = segment(index, luma, 0.5);
        expected_state = {
            // The same findings through a bare aggregator whose state keeps everything.
            let report = vqa_core::stage::detect(&detectors, &s);
            aggregator.apply(&mut expected_state, report);
            expected_state
        };
        step.run(&detection, &aggregator, s).await.unwrap();
        let stored = transport.load_state(&state_key).await.unwrap().unwrap();
        state_sizes.push(stored.len());
    }
    let closed = expected_state.incidents().len();
    assert!(closed > 2 * INCIDENT_BATCH, "{closed} incidents");

    // The state a segment loads and stores does not grow with the stream: after the first
    // batch it stays within what it was while that batch filled (up to the few bytes its
    // growing counters and times take as varints), far below a state keeping everything.
    let first_batch = 2 * INCIDENT_BATCH + 2;
    let early = state_sizes[..first_batch]
        .iter()
        .max()
        .copied()
        .unwrap_or(0);
    let late = state_sizes[first_batch..]
        .iter()
        .max()
        .copied()
        .unwrap_or(0);
    assert!(
        late <= early * 11 / 10,
        "state grew from {early} to {late} bytes"
    );
    let keeping_everything = vqa_core::wire::encode_state(&expected_state).len();
    assert!(
        late * 2 < keeping_everything,
        "{late} bytes against {keeping_everything} without batches"
    );

    let (report, _) = step
        .finish(&aggregator, &stream, StreamSummary::default())
        .await
        .unwrap();
    let (expected, _) = aggregator.finish(expected_state, stream.clone(), StreamSummary::default());
    assert_eq!(
        report, expected,
        "every archived incident is back in the report"
    );
    for n in 0..2 {
        let batch = StateKey::new(&stream, &format!("aggregator-incidents-{n:08}"));
        assert!(
            transport.load_state(&batch).await.unwrap().is_none(),
            "{batch} left behind"
        );
    }
}
