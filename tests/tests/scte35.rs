//! SCTE-35 end to end: an MPEG-TS made by FFmpeg with splice cues added where the ground
//! truth says (a splice_insert out with a break duration, a time_signal opening a placement
//! opportunity, a splice_insert back in, a heartbeat), analysed by `vqa analyze`'s pipeline:
//! each cue an event at its arrival with what it says, the heartbeat none, no TS error from
//! the edit, and the no-cue alarm where cues were further apart than its limit.

use std::path::Path;

use vqa_core::report::{Incident, Severity};
use vqa_core::{time, IncidentKind, PipelineConfig};
use vqa_testkit::ts_edit::{
    make_ts, picture_at, splice_insert, splice_null, time_signal, video_packets, with_scte35,
};

const SECONDS: f64 = 12.0;
const SCTE35_PID: u16 = 0x1F4;
const TICKS: f64 = 90_000.0;

fn analyse(path: &Path, config: &PipelineConfig) -> Vec<Incident> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let analysis = rt
        .block_on(vqa_deploy_ecs::analyze_file(path, config))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ts = analysis.report.ts_health.expect("a TS health summary");
    assert_eq!(ts.scte35_pids, vec![SCTE35_PID]);
    analysis.report.incidents
}

#[test]
fn splice_cues_are_events_at_their_arrival_with_what_they_say() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = dir.path().join("clean.ts");
    make_ts(&clean, SECONDS).expect("ffmpeg makes the TS");
    let packets = video_packets(&clean).expect("ffprobe lists the pictures");
    let at = |t: f64| picture_at(&packets, t).expect("a picture that late");
    let after = |pts: u64, seconds: f64| pts + (seconds * TICKS) as u64;

    // (arrival, command, event id, out, pre-roll, duration) as sent.
    let (heartbeat, out, opportunity, back) = (at(2.0), at(3.0), at(7.0), at(10.0));
    let cues = vec![
        (heartbeat.0, splice_null()),
        (
            out.0,
            splice_insert(1001, true, after(out.2, 4.0), Some(20 * 90_000)),
        ),
        (
            opportunity.0,
            time_signal(after(opportunity.2, 2.0), 0x34, 2002, Some(30 * 90_000)),
        ),
        (back.0, splice_insert(1001, false, after(back.2, 1.0), None)),
    ];
    let bytes = std::fs::read(&clean).expect("read");
    let edited = with_scte35(&bytes, SCTE35_PID, &cues).expect("cues added");
    let path = dir.path().join("cues.ts");
    std::fs::write(&path, edited).expect("write");

    let mut config = PipelineConfig::default();
    config.scte35_absent.enabled = true;
    config.scte35_absent.min_duration = 3.5;
    let incidents = analyse(&path, &config);
    let ts_errors: Vec<_> = incidents
        .iter()
        .filter(|i| {
            matches!(
                i.kind,
                IncidentKind::TsPriority1 | IncidentKind::TsPriority2
            )
        })
        .collect();
    assert!(ts_errors.is_empty(), "the edit is clean: {ts_errors:?}");

    let events: Vec<&Incident> = incidents
        .iter()
        .filter(|i| i.kind == IncidentKind::Scte35)
        .collect();
    let expected = [
        (out.1, 5.0, 1001.0, 1.0, 4.0, Some(20.0)),
        (opportunity.1, 6.0, 2002.0, 1.0, 2.0, Some(30.0)),
        (back.1, 5.0, 1001.0, 0.0, 1.0, None),
    ];
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (event, (t, command, id, out, pre_roll, duration)) in events.iter().zip(expected) {
        let e = &event.evidence;
        let start = time::to_secs(event.start);
        assert!(
            (start - t).abs() <= 0.1,
            "cue at {start} s, sent with the picture at {t} s"
        );
        assert_eq!(event.severity, Severity::Info);
        assert_eq!(e["command"].max, command);
        assert_eq!(e["event_id"].max, id);
        assert_eq!(e["out_of_network"].max, out);
        assert!(
            (e["pre_roll_s"].max - pre_roll).abs() <= 0.1,
            "pre-roll {} s against {pre_roll} s",
            e["pre_roll_s"].max
        );
        assert_eq!(e.get("duration_s").map(|s| s.max), duration);
    }
    assert_eq!(events[1].evidence["segmentation_type_id"].max, 52.0);
    assert_eq!(
        IncidentKind::Scte35
            .headline(&events[0].evidence)
            .as_deref(),
        Some("splice_insert out, event 1001, pre-roll 4.0 s, duration 20.0 s")
    );

    // Cues at 3, 7 and 10 s (the heartbeat does not count): only 3–7 s is longer than 3.5 s.
    let absent: Vec<(f64, f64)> = incidents
        .iter()
        .filter(|i| i.kind == IncidentKind::Scte35Absent)
        .map(|i| (time::to_secs(i.start), time::to_secs(i.end)))
        .collect();
    assert_eq!(absent.len(), 1, "{absent:?}");
    assert!(
        (absent[0].0 - out.1).abs() <= 0.1 && (absent[0].1 - opportunity.1).abs() <= 0.1,
        "{absent:?}"
    );
}
