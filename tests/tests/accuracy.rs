//! End to end, on real video: clips made by the ffmpeg CLI with defects at known times,
//! decoded by the real converter, analysed by the single-process runner, compared with the
//! ground truth. Each injected defect must be found within 0.2 s of its start and end, and
//! nothing else may be reported.
//!
//! These cases inject freezes, black and silence, and run those three detectors; the other
//! kinds are scored on a labelled corpus by `vqa eval` (see `tests/eval.rs`).

use std::path::Path;

use vqa_core::{DetectorName, IncidentKind, PipelineConfig, StreamReport};
use vqa_testkit::{make_clip, Clip, ClipSpec, Container, Content, Defect, DefectKind};

const TOLERANCE: f64 = 0.2;

use DefectKind::{Black, Freeze, Silence};

fn kind_of(kind: IncidentKind) -> &'static str {
    kind.as_str()
}

fn analyze(clip: &Clip, config: &PipelineConfig) -> StreamReport {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(vqa_deploy_ecs::analyze_file(&clip.path, config))
        .unwrap_or_else(|e| panic!("{}: {e}", clip.path.display()))
        .report
}

/// Every truth defect matched by exactly one incident of its kind within the tolerance,
/// and every incident matched by a truth defect.
fn assert_matches_truth(clip: &Clip, report: &StreamReport) {
    let found: Vec<(&str, f64, f64)> = report
        .incidents
        .iter()
        .map(|i| {
            (
                kind_of(i.kind),
                vqa_core::time::to_secs(i.start),
                vqa_core::time::to_secs(i.end),
            )
        })
        .collect();
    let truth: Vec<(&str, f64, f64)> = clip
        .truth
        .iter()
        .map(|d| (d.kind.as_str(), d.start, d.end))
        .collect();
    let close = |a: &(&str, f64, f64), b: &(&str, f64, f64)| {
        a.0 == b.0 && (a.1 - b.1).abs() <= TOLERANCE && (a.2 - b.2).abs() <= TOLERANCE
    };
    for t in &truth {
        let hits = found.iter().filter(|f| close(f, t)).count();
        assert_eq!(
            hits,
            1,
            "{}: injected {t:?} found {hits} times; found {found:?}",
            clip.path.display()
        );
    }
    for f in &found {
        assert!(
            truth.iter().any(|t| close(f, t)),
            "{}: reported {f:?}, which was not injected; truth {truth:?}",
            clip.path.display()
        );
    }
    assert!(
        report.complete,
        "{}: {:?}",
        clip.path.display(),
        report.warnings
    );
}

struct Case {
    name: &'static str,
    spec: ClipSpec,
}

fn cases() -> Vec<Case> {
    let base = ClipSpec::default();
    vec![
        Case {
            name: "clean_pattern",
            spec: ClipSpec {
                duration: 8.0,
                ..base.clone()
            },
        },
        Case {
            name: "clean_natural",
            spec: ClipSpec {
                duration: 8.0,
                content: Content::Natural,
                ..base.clone()
            },
        },
        Case {
            name: "pattern_all_three",
            spec: ClipSpec {
                duration: 12.0,
                defects: vec![
                    Defect::freeze(1.6, 4.4),
                    Defect::black(5.5, 6.3),
                    Defect::silence(7.2, 9.0),
                ],
                ..base.clone()
            },
        },
        Case {
            // Defects on segment boundaries, overlapping each other, and at the very end.
            name: "natural_boundaries",
            spec: ClipSpec {
                duration: 12.0,
                content: Content::Natural,
                defects: vec![
                    Defect::freeze(2.0, 5.0),
                    Defect::silence(3.0, 4.4),
                    Defect::black(7.0, 8.0),
                    Defect::silence(10.5, 12.0),
                ],
                ..base.clone()
            },
        },
        Case {
            // Shorter than each kind's minimum duration: not incidents.
            name: "too_short_to_report",
            spec: ClipSpec {
                duration: 8.0,
                content: Content::Natural,
                defects: vec![
                    Defect::freeze(1.2, 1.8),
                    Defect::black(3.0, 3.28),
                    Defect::silence(5.1, 5.6),
                ],
                ..base.clone()
            },
        },
        Case {
            name: "mkv_video_only",
            spec: ClipSpec {
                duration: 8.0,
                audio_channels: 0,
                container: Container::Mkv,
                defects: vec![Defect::freeze(0.0, 2.0), Defect::black(4.4, 5.6)],
                ..base.clone()
            },
        },
        Case {
            name: "ts_surround_audio_only",
            spec: ClipSpec {
                duration: 8.0,
                video: false,
                audio_channels: 6,
                container: Container::Ts,
                defects: vec![Defect::silence(2.5, 5.0)],
                ..base.clone()
            },
        },
        Case {
            // A keyframe every second re-encodes the frozen picture: still one freeze.
            name: "freeze_across_keyframes",
            spec: ClipSpec {
                duration: 10.0,
                content: Content::Natural,
                gop: Some(25),
                defects: vec![Defect::freeze(1.3, 4.7), Defect::black(6.2, 7.4)],
                ..base.clone()
            },
        },
    ]
}

fn case(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .expect("known case")
}

/// The default configuration with the detectors of the kinds these cases inject.
fn three_detectors() -> PipelineConfig {
    PipelineConfig {
        detectors: vec![
            DetectorName::Freeze,
            DetectorName::Black,
            DetectorName::Silence,
        ],
        ..PipelineConfig::default()
    }
}

/// Drops the defects too short for the configuration: the truth of what must be found.
fn reportable(clip: &mut Clip) {
    let config = three_detectors();
    clip.truth.retain(|d| {
        let min = match d.kind {
            Freeze => config.freeze.min_duration,
            Black => config.black.min_duration,
            Silence => config.silence.min_duration,
            // Not injected by these cases.
            _ => 0.0,
        };
        d.end - d.start >= min
    });
}

fn make(dir: &Path, case: &Case) -> Option<Clip> {
    if !vqa_testkit::ffmpeg_or_skip() {
        return None;
    }
    let mut clip = make_clip(dir, case.name, &case.spec)
        .unwrap_or_else(|e| panic!("making {}: {e:#}", case.name));
    reportable(&mut clip);
    Some(clip)
}

#[test]
fn injected_defects_are_found_within_tolerance_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    for case in cases() {
        let Some(clip) = make(dir.path(), &case) else {
            return;
        };
        let report = analyze(&clip, &three_detectors());
        assert_matches_truth(&clip, &report);
    }
}

#[test]
fn the_segment_length_does_not_change_the_incidents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = make(dir.path(), &case("natural_boundaries")) else {
        return;
    };
    let reference = analyze(&clip, &three_detectors());
    for seconds in [0.4, 2.5] {
        let config = PipelineConfig {
            segment_seconds: seconds,
            ..three_detectors()
        };
        let report = analyze(&clip, &config);
        assert_matches_truth(&clip, &report);
        let spans = |r: &StreamReport| {
            r.incidents
                .iter()
                .map(|i| (i.kind, i.start, i.end))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            spans(&report),
            spans(&reference),
            "segment_seconds = {seconds}"
        );
        assert!(report.coverage.segments > 1);
    }
}

#[test]
fn reports_say_which_track_is_missing_and_describe_the_media() {
    let dir = tempfile::tempdir().expect("tempdir");
    for case in [case("mkv_video_only"), case("ts_surround_audio_only")] {
        let Some(clip) = make(dir.path(), &case) else {
            return;
        };
        let report = analyze(&clip, &three_detectors());
        let json = serde_json::to_value(&report).expect("json");
        let expected_missing = if case.spec.video { "audio" } else { "video" };
        assert_eq!(
            json["missing_tracks"],
            serde_json::json!([expected_missing]),
            "{}",
            case.name
        );
        if case.spec.audio_channels == 6 {
            assert_eq!(json["media"]["audio"]["channels"], 6);
            assert_eq!(json["media"]["audio"]["layout"], "5.1");
        }
    }
}

/// Corrupted packets damage every picture decoded from them until a keyframe decodes clean:
/// the incident spans what a viewer sees damaged (the truth is measured by the test kit from
/// the damaged packets to the next keyframe), not only the pictures the decoder flagged.
#[test]
fn damage_lasts_from_the_corrupted_packets_to_the_next_clean_keyframe() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ClipSpec {
        duration: 8.0,
        gop: Some(50),
        defects: vec![Defect::new(DefectKind::Corruption, 2.5, 2.6)],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "damage", &spec).unwrap_or_else(|e| panic!("{e:#}"));
    let truth: Vec<_> = clip.truth_of(DefectKind::Corruption).collect();
    assert_eq!(truth.len(), 1, "{:?}", clip.truth);
    // The damage runs on past the corrupted packets, to the keyframe at 4 s.
    assert!(truth[0].end - truth[0].start > 1.0, "{:?}", truth[0]);
    let config = PipelineConfig {
        detectors: vec![DetectorName::Corruption],
        ..PipelineConfig::default()
    };
    let report = analyze(&clip, &config);
    let found: Vec<(f64, f64)> = report
        .incidents
        .iter()
        .filter(|i| i.kind == IncidentKind::Corruption)
        .map(|i| {
            (
                vqa_core::time::to_secs(i.start),
                vqa_core::time::to_secs(i.end),
            )
        })
        .collect();
    assert_eq!(found.len(), 1, "one incident: {found:?}");
    let (start, end) = found[0];
    assert!(
        (start - truth[0].start).abs() <= TOLERANCE,
        "{found:?} vs {truth:?}"
    );
    assert!(
        (end - truth[0].end).abs() <= TOLERANCE,
        "{found:?} vs {truth:?}"
    );
}

/// Audio packets lost in transport: each hole in an MP4 and an MPEG-TS file is one
/// audio_dropout incident where the packets are missing (to a packet, 21 ms at 48 kHz),
/// and neither silence nor anything else is reported around it.
#[test]
fn lost_audio_packets_are_one_dropout_each_where_the_audio_is_missing() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for container in [Container::Mp4, Container::Ts] {
        let spec = ClipSpec {
            duration: 8.0,
            container,
            defects: vec![
                Defect::new(DefectKind::AudioDropout, 2.0, 2.1),
                Defect::new(DefectKind::AudioDropout, 5.3, 5.7),
            ],
            ..ClipSpec::default()
        };
        let name = format!("dropout_{container:?}");
        let clip = make_clip(dir.path(), &name, &spec).unwrap_or_else(|e| panic!("{e:#}"));
        let truth: Vec<_> = clip.truth_of(DefectKind::AudioDropout).collect();
        assert_eq!(truth.len(), 2, "{:?}", clip.truth);
        let config = PipelineConfig {
            detectors: vec![DetectorName::AudioDropout, DetectorName::Silence],
            ..PipelineConfig::default()
        };
        let report = analyze(&clip, &config);
        let found: Vec<(IncidentKind, f64, f64)> = report
            .incidents
            .iter()
            .map(|i| {
                (
                    i.kind,
                    vqa_core::time::to_secs(i.start),
                    vqa_core::time::to_secs(i.end),
                )
            })
            .collect();
        assert_eq!(found.len(), 2, "{container:?}: {found:?} vs {truth:?}");
        for (f, t) in found.iter().zip(&truth) {
            assert_eq!(f.0, IncidentKind::AudioDropout, "{found:?}");
            assert!(
                (f.1 - t.start).abs() <= 0.025 && (f.2 - t.end).abs() <= 0.025,
                "{container:?}: {found:?} vs {truth:?}"
            );
        }
    }
}
