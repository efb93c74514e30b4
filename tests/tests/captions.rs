//! Captions end to end: clips whose pictures carry CEA-608/708 caption data (A/53) over
//! known spans, encoded by FFmpeg's libx264 and MPEG-2 encoders, decoded and analysed by
//! `vqa analyze`'s pipeline. The ground truth is the generator's: which pictures it gave
//! caption data (`vqa_testkit::captions`).

use std::path::Path;

use vqa_core::captions::{CEA608, CEA608_SHARE, CEA708, REQUIRED};
use vqa_core::{DetectorName, Incident, IncidentKind, Micros, PipelineConfig, StreamReport};
use vqa_testkit::captions::{
    make_caption_clip, CaptionClip, CaptionClipSpec, CaptionCodec, CaptionContent,
};

/// One picture at 25 fps, µs: how far an incident's start may be from the truth.
const FRAME: Micros = 40_000;

fn make(dir: &Path, name: &str, spec: &CaptionClipSpec) -> (std::path::PathBuf, CaptionClip) {
    let ext = match spec.codec {
        CaptionCodec::H264Mp4 => "mp4",
        CaptionCodec::Mpeg2Ts => "ts",
    };
    let path = dir.join(format!("{name}.{ext}"));
    let clip = make_caption_clip(spec, &path)
        .unwrap_or_else(|e| panic!("making {}: {e:#}", path.display()));
    (path, clip)
}

fn analyse(path: &Path, config: &PipelineConfig) -> StreamReport {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(vqa_deploy_ecs::analyze_file(path, config))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .report
}

fn captions_incidents(report: &StreamReport) -> Vec<&Incident> {
    report
        .incidents
        .iter()
        .filter(|i| i.kind == IncidentKind::Captions)
        .collect()
}

/// Only the captions detector, raising after `min_duration` seconds.
fn captions_only(min_duration: f64, required: bool) -> PipelineConfig {
    let mut config = PipelineConfig {
        detectors: vec![DetectorName::Captions],
        ..PipelineConfig::default()
    };
    config.captions.min_duration = min_duration;
    config.captions.required = required;
    config
}

fn assert_near(what: &str, got: Micros, truth: Micros) {
    assert!(
        (got - truth).abs() <= FRAME,
        "{what}: {got} µs, truth {truth} µs"
    );
}

#[test]
fn captions_throughout_raise_nothing_with_the_default_detectors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = CaptionClipSpec {
        seconds: 12.0,
        spans: vec![(0.0, 12.0, CaptionContent::Cea608)],
        ..CaptionClipSpec::default()
    };
    let (path, clip) = make(dir.path(), "throughout", &spec);
    assert!(clip.absences().is_empty());
    let report = analyse(&path, &PipelineConfig::default());
    assert!(
        captions_incidents(&report).is_empty(),
        "{:?}",
        report.incidents
    );
    // Captions present: every picture carried CEA-608.
    let share = report.measurements[CEA608_SHARE];
    assert!(share.min > 0.99, "{share:?}");
}

#[test]
fn captions_lost_raise_after_kaleidos_30_s_from_the_first_picture_without() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = CaptionClipSpec {
        seconds: 44.0,
        spans: vec![(0.0, 7.5, CaptionContent::Cea608)],
        ..CaptionClipSpec::default()
    };
    let (path, clip) = make(dir.path(), "lost", &spec);
    let absences = clip.absences();
    assert_eq!(absences.len(), 1);
    let (lost_at, end, services) = absences[0];
    assert!(services.cea608 && !services.cea708);
    let report = analyse(&path, &captions_only(30.0, false));
    let incidents = captions_incidents(&report);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let i = incidents[0];
    assert_near("start", i.start, lost_at);
    assert_near("end", i.end, end);
    assert!(i.evidence.contains_key(CEA608) && !i.evidence.contains_key(CEA708));
    assert_eq!(
        IncidentKind::Captions.headline(&i.evidence).as_deref(),
        Some("CEA-608 captions lost")
    );

    // Absent for less than the configured time: nothing.
    let report = analyse(&path, &captions_only(40.0, false));
    assert!(captions_incidents(&report).is_empty());
}

#[test]
fn padding_is_no_captions_in_mpeg2_transport_streams() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 708 captions, then an encoder sending padding only, then captions back, then none.
    let spec = CaptionClipSpec {
        seconds: 16.0,
        codec: CaptionCodec::Mpeg2Ts,
        spans: vec![
            (0.0, 3.0, CaptionContent::Cea708),
            (3.0, 7.0, CaptionContent::Padding),
            (7.0, 10.0, CaptionContent::Cea708),
        ],
        ..CaptionClipSpec::default()
    };
    let (path, clip) = make(dir.path(), "padding", &spec);
    let report = analyse(&path, &captions_only(2.0, false));
    let incidents = captions_incidents(&report);
    let truth = clip.absences();
    assert_eq!(truth.len(), 2);
    assert_eq!(incidents.len(), truth.len(), "{incidents:?}");
    for (i, (start, end, services)) in incidents.iter().zip(truth) {
        assert_near("start", i.start, start);
        assert_near("end", i.end, end);
        assert!(services.cea708 && !services.cea608);
        assert_eq!(
            IncidentKind::Captions.headline(&i.evidence).as_deref(),
            Some("CEA-708 captions lost")
        );
    }
}

#[test]
fn required_captions_absent_from_the_start_and_both_services_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    // None for 4 s, then both services for 3 s, then none.
    let spec = CaptionClipSpec {
        seconds: 12.0,
        spans: vec![(4.0, 7.0, CaptionContent::Both)],
        ..CaptionClipSpec::default()
    };
    let (path, clip) = make(dir.path(), "required", &spec);
    let truth = clip.absences();
    assert_eq!(truth.len(), 2);

    // Not required: only the loss after 7 s.
    let report = analyse(&path, &captions_only(2.0, false));
    let incidents = captions_incidents(&report);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_near("start", incidents[0].start, truth[1].0);
    assert_eq!(
        IncidentKind::Captions
            .headline(&incidents[0].evidence)
            .as_deref(),
        Some("CEA-608 and CEA-708 captions lost")
    );

    // Required: the absence from the start too.
    let report = analyse(&path, &captions_only(2.0, true));
    let incidents = captions_incidents(&report);
    assert_eq!(incidents.len(), 2, "{incidents:?}");
    assert_eq!(incidents[0].start, 0);
    assert_near("end", incidents[0].end, truth[0].1);
    assert!(incidents[0].evidence.contains_key(REQUIRED));
    assert_near("start", incidents[1].start, truth[1].0);
    assert!(!incidents[1].evidence.contains_key(REQUIRED));
}

/// The services the converter finds in each decoded picture, in order.
fn decoded_captions(path: &Path) -> Vec<vqa_core::captions::Captions> {
    use vqa_core::Converter;
    let config = captions_only(30.0, false);
    let mut converter =
        vqa_converter::FfmpegConverter::open(path, vqa_core::StreamId::new("cc"), &config)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut pictures = Vec::new();
    while let Some(segment) = converter.next_segment() {
        pictures.extend(segment.video.iter().map(|f| f.captions));
    }
    pictures
}

#[test]
fn every_decoded_picture_carries_the_services_it_was_encoded_with() {
    let dir = tempfile::tempdir().expect("temp dir");
    for codec in [CaptionCodec::H264Mp4, CaptionCodec::Mpeg2Ts] {
        let spec = CaptionClipSpec {
            seconds: 4.0,
            codec,
            spans: vec![
                (0.0, 1.0, CaptionContent::Cea608),
                (1.0, 2.0, CaptionContent::Padding),
                (2.0, 2.5, CaptionContent::Both),
                (3.0, 4.0, CaptionContent::Cea708),
            ],
            ..CaptionClipSpec::default()
        };
        let (path, clip) = make(dir.path(), &format!("{codec:?}"), &spec);
        let decoded = decoded_captions(&path);
        assert_eq!(
            decoded.len(),
            clip.pictures.len(),
            "{codec:?}: pictures decoded"
        );
        let wrong: Vec<usize> = (0..decoded.len())
            .filter(|&n| decoded[n] != clip.pictures[n])
            .collect();
        assert!(wrong.is_empty(), "{codec:?}: pictures {wrong:?} differ");
    }
}
