//! The single-process runner's contract beyond the report: one open and one close event per
//! incident, in order, and handoff counters that add up and show no frame data copied.

use std::sync::{Arc, Mutex};

use vqa_core::{DetectorName, IncidentEvent, PipelineConfig, StreamId};
use vqa_deploy_ecs::{open_input, run, EventSink, DEFAULT_IN_FLIGHT};
use vqa_testkit::{make_clip, ClipSpec, Content, Defect};

#[test]
fn each_incident_opens_once_then_closes_once_and_handoffs_are_counted() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ClipSpec {
        duration: 9.0,
        content: Content::Natural,
        defects: vec![
            Defect::freeze(1.0, 3.5),
            Defect::silence(2.0, 4.0),
            Defect::black(6.0, 8.2),
        ],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "events", &spec).expect("clip");
    // The detectors of the three injected kinds: the clip's loud test tone and pattern are
    // not what this test is about.
    let config = PipelineConfig {
        detectors: vec![
            DetectorName::Freeze,
            DetectorName::Black,
            DetectorName::Silence,
        ],
        ..PipelineConfig::default()
    };
    let stream = StreamId::new("events");
    let converter = open_input(&clip.path, stream.clone(), &config).expect("open");

    let seen: Arc<Mutex<Vec<IncidentEvent>>> = Arc::default();
    let sink: EventSink = {
        let seen = seen.clone();
        Box::new(move |s, e| {
            assert_eq!(s.as_str(), "events");
            seen.lock().expect("lock").push(e.clone());
        })
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let analysis = rt
        .block_on(run(
            converter,
            &config,
            stream,
            DEFAULT_IN_FLIGHT,
            None,
            Some(sink),
        ))
        .expect("run");
    let events = seen.lock().expect("lock").clone();
    let incidents = &analysis.report.incidents;
    assert_eq!(incidents.len(), 3, "{incidents:?}");
    assert_eq!(events.len(), 2 * incidents.len(), "{events:?}");
    for incident in incidents {
        let opened = events
            .iter()
            .position(|e| matches!(e, IncidentEvent::Opened { kind, start, .. } if *kind == incident.kind && *start == incident.start))
            .unwrap_or_else(|| panic!("no open event for {incident:?}: {events:?}"));
        let closed = events
            .iter()
            .position(|e| matches!(e, IncidentEvent::Closed(c) if c == incident))
            .unwrap_or_else(|| panic!("no close event for {incident:?}: {events:?}"));
        assert!(opened < closed);
    }

    let s = &analysis.stats;
    let h = &s.handoff;
    let segments = analysis.report.coverage.segments;
    assert_eq!(s.segments, segments);
    // One segment per started second of the input (AAC pads the audio a little past 9 s).
    let analysed = analysis.report.coverage.analysed;
    assert_eq!(
        segments as i64,
        (analysed + 999_999) / 1_000_000,
        "analysed {analysed} us"
    );
    // Each segment: put + get + delete of the segment, and of its findings; one state load and
    // store; plus the final load and clear.
    assert_eq!((h.puts, h.gets), (2 * segments, 2 * segments));
    assert_eq!(h.deletes, 2 * segments + 1);
    assert_eq!((h.state_loads, h.state_stores), (segments + 1, segments));
    assert_eq!(h.frame_bytes_copied, 0);
    // Pictures are 320x240 luma; every frame (and each lead-in) is handed over by reference.
    assert!(h.payload_bytes_put >= 225 * 320 * 240, "{h:?}");
    assert!(
        h.copied_bytes < h.payload_bytes_put / 100,
        "only aggregator state is copied: {h:?}"
    );
}
