//! The accuracy harness itself, on the quick corpus: `vqa eval`'s counts must account for
//! every labelled defect, a clean clip must never count as a find, and a detector that did
//! not run must find nothing. These tests say nothing about how good the detectors are.

use std::fs;
use std::path::Path;

use vqa_core::config::Profile;
use vqa_core::{DetectorName, IncidentKind, PipelineConfig};
use vqa_eval::{evaluate, DetectorResult, EvalOptions, Evaluation, Score};
use vqa_testkit::corpus::MANIFEST_NAME;
use vqa_testkit::{write_corpus, CorpusSize, DefectKind, Manifest};

fn run_eval(dir: &Path, config: &PipelineConfig, ffmpeg: bool) -> Evaluation {
    run_eval_judging_clean(dir, config, ffmpeg, Vec::new())
}

fn run_eval_judging_clean(
    dir: &Path,
    config: &PipelineConfig,
    ffmpeg: bool,
    clean_profiles: Vec<PipelineConfig>,
) -> Evaluation {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let options = EvalOptions {
        ffmpeg,
        clean_profiles,
    };
    rt.block_on(evaluate(dir, config, &options, None))
        .unwrap_or_else(|e| panic!("eval {}: {e}", dir.display()))
}

fn row(e: &Evaluation, kind: DefectKind) -> &DetectorResult {
    e.detectors
        .iter()
        .find(|d| d.detector.as_str() == kind.as_str())
        .unwrap_or_else(|| panic!("no row for {kind}: {e:#?}"))
}

/// A corpus of some of `manifest`'s clips (hard links, so nothing is re-rendered).
fn sub_corpus(from: &Path, manifest: &Manifest, to: &Path, names: &[&str]) {
    fs::create_dir_all(to).expect("mkdir");
    let mut sub = manifest.clone();
    sub.clips.retain(|c| {
        names
            .iter()
            .any(|n| c.path.file_stem().is_some_and(|s| s == *n))
    });
    assert_eq!(sub.clips.len(), names.len(), "{names:?}");
    for clip in &sub.clips {
        fs::hard_link(from.join(&clip.path), to.join(&clip.path)).expect("link");
    }
    let json = serde_json::to_string_pretty(&sub).expect("json");
    fs::write(to.join(MANIFEST_NAME), json).expect("write manifest");
}

/// The invariants every score must satisfy, whatever the detector's accuracy.
fn assert_consistent(kind: DefectKind, source: &str, s: &Score, truth: usize) {
    let what = format!("{kind} ({source}): {s:?}");
    assert_eq!(s.truth, truth, "every labelled defect is counted: {what}");
    assert_eq!(s.tp + s.fn_, s.truth, "{what}");
    assert_eq!(s.misses.len(), s.fn_, "{what}");
    assert_eq!(s.false_positives.len(), s.fp, "{what}");
    match s.tp + s.fp {
        0 => assert_eq!(s.precision, None, "{what}"),
        n => assert_eq!(s.precision, Some(s.tp as f64 / n as f64), "{what}"),
    }
    match truth {
        0 => assert_eq!(s.recall, None, "{what}"),
        n => assert_eq!(s.recall, Some(s.tp as f64 / n as f64), "{what}"),
    }
    assert_eq!(s.mean_start_error_s.is_some(), s.tp > 0, "{what}");
}

#[test]
fn eval_accounts_for_every_labelled_defect_and_credits_nothing_unearned() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("quick");
    let manifest = write_corpus(&dir, CorpusSize::Quick, |_, _, _| {}).expect("corpus");
    let on_disk: Manifest = serde_json::from_str(
        &fs::read_to_string(dir.join(MANIFEST_NAME)).expect("corpus.json written"),
    )
    .expect("corpus.json parses as the testkit's manifest");
    assert_eq!(on_disk, manifest);

    // The whole quick corpus, every detector (audio_clicks is off by default), FFmpeg
    // alongside.
    let mut every = PipelineConfig::default();
    every.detectors.push(DetectorName::AudioClicks);
    let all = run_eval(&dir, &every, true);
    assert!(all.errors.is_empty(), "{:#?}", all.errors);
    // 2 clips per injectable kind (but those only the full corpus carries) and 2 clean ones.
    let clips = 2 * (vqa_testkit::INJECTABLE.len() - vqa_testkit::corpus::FULL_ONLY.len()) + 2;
    assert_eq!(manifest.clips.len(), clips);
    assert_eq!((all.clips, all.analysed), (clips, clips));
    let quick_kinds = vqa_testkit::INJECTABLE
        .into_iter()
        .filter(|k| !vqa_testkit::corpus::FULL_ONLY.contains(k));
    for kind in quick_kinds {
        let truth = manifest
            .clips
            .iter()
            .flat_map(|c| &c.truth)
            .filter(|d| d.kind == kind)
            .count();
        assert!(truth >= 2, "the quick corpus labels {kind} at least twice");
        let r = row(&all, kind);
        assert!(r.ran, "{kind} runs");
        assert_consistent(kind, "vqa", &r.vqa, truth);
        let has_filter = matches!(
            kind,
            DefectKind::Freeze
                | DefectKind::Black
                | DefectKind::Silence
                | DefectKind::Blockiness
                | DefectKind::Blur
                | DefectKind::LoudnessJump
        );
        // FFmpeg's ebur128 judges short-term loudness: it is compared with loudness_jump;
        // audio_dropout has no filter.
        assert_eq!(r.ffmpeg.is_some(), has_filter, "{kind}");
        if let Some(f) = &r.ffmpeg {
            assert_consistent(kind, "ffmpeg", &f.score, truth);
            assert!(!f.filter.is_empty());
        }
    }
    let sync = &row(&all, DefectKind::AvSync).vqa;
    assert_eq!(
        sync.offset_clips,
        Some(2),
        "both sync clips have a true offset"
    );

    // Clean clips only: whatever the detectors report there, nothing counts as found.
    let clean = root.path().join("clean");
    sub_corpus(&dir, &manifest, &clean, &["clean_00", "clean_01"]);
    let e = run_eval(&clean, &PipelineConfig::default(), false);
    assert_eq!(e.analysed, 2);
    for r in &e.detectors {
        assert_eq!((r.vqa.truth, r.vqa.tp, r.vqa.recall), (0, 0, None), "{r:?}");
        assert!(r.ffmpeg.is_none(), "--no-ffmpeg");
    }
    // They are marked clean, so they make the clean-content section too: judged by the
    // evaluation's own configuration, each incident there is one of the table's false
    // positives.
    let section = e.clean.as_ref().expect("clean clips make a clean section");
    assert_eq!(section.clips, 2);
    let length: f64 = manifest
        .clips
        .iter()
        .filter(|c| {
            c.clean
                && ["clean_00", "clean_01"]
                    .iter()
                    .any(|n| c.path.file_stem().is_some_and(|s| s == *n))
        })
        .map(|c| c.spec.duration)
        .sum();
    assert!(
        (section.seconds - length).abs() < 0.5,
        "{} vs {length}",
        section.seconds
    );
    assert_eq!(section.judges.len(), 1);
    assert_eq!(section.judges[0].judge, "file_qc");
    for r in &e.detectors {
        let alarms = section.judges[0]
            .kinds
            .iter()
            .find(|k| k.kind == r.detector)
            .map_or(0, |k| k.incidents);
        assert_eq!(alarms, r.vqa.fp, "{:?}", r.detector);
    }

    // The wrong detector for the clip: a black clip checked for freezes only. The black
    // detector did not run, so its defect is missed, not silently dropped from the table.
    let black = root.path().join("black");
    sub_corpus(&dir, &manifest, &black, &["black_00"]);
    let config = PipelineConfig {
        detectors: vec![DetectorName::Freeze],
        ..PipelineConfig::default()
    };
    let e = run_eval(&black, &config, false);
    assert!(e.clean.is_none(), "no clip is marked clean");
    let r = row(&e, DefectKind::Black);
    assert!(!r.ran);
    assert_eq!((r.vqa.truth, r.vqa.tp, r.vqa.fn_), (1, 0, 1));
    assert_eq!(r.vqa.recall, Some(0.0));
    assert!(r.vqa.false_positives.is_empty());
    assert!(
        e.detectors
            .iter()
            .all(|d| matches!(d.detector, IncidentKind::Freeze | IncidentKind::Black)),
        "only the detector run and the kinds labelled are scored: {:?}",
        e.detectors.iter().map(|d| d.detector).collect::<Vec<_>>()
    );
}

/// The clean-content section under both alarm profiles: a clip marked clean whose picture
/// goes black for a few seconds (a fade in an edit, say) is a false alarm for file QC's 0.5 s
/// raise time and none for broadcast's 10 s, and the rates are per hour of what was analysed.
#[test]
fn clean_content_is_judged_per_profile_and_per_hour() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("clean");
    fs::create_dir_all(&dir).expect("mkdir");
    let spec = vqa_testkit::ClipSpec {
        duration: 8.0,
        width: 320,
        height: 240,
        defects: vec![vqa_testkit::Defect::black(3.0, 6.0)],
        ..vqa_testkit::ClipSpec::default()
    };
    let clip = vqa_testkit::make_clip(&dir, "fade", &spec).expect("clip");
    let file = clip.path.file_name().expect("file name");
    let manifest = serde_json::json!({
        "version": 1,
        "clips": [{"path": file.to_string_lossy(), "truth": [], "clean": true}],
    });
    fs::write(dir.join(MANIFEST_NAME), manifest.to_string()).expect("manifest");

    let profiles: Vec<PipelineConfig> = Profile::ALL
        .into_iter()
        .map(PipelineConfig::for_profile)
        .collect();
    let e = run_eval_judging_clean(&dir, &PipelineConfig::default(), false, profiles);
    assert!(e.errors.is_empty(), "{:#?}", e.errors);
    let section = e.clean.expect("a clean section");
    assert!((section.seconds - 8.0).abs() < 0.5, "{}", section.seconds);
    let black = |judge: &str| {
        let j = section
            .judges
            .iter()
            .find(|j| j.judge == judge)
            .unwrap_or_else(|| panic!("no {judge} judge: {section:#?}"));
        j.kinds
            .iter()
            .find(|k| k.kind == IncidentKind::Black)
            .cloned()
            .expect("black is looked for")
    };
    let file_qc = black("file_qc");
    assert_eq!(file_qc.incidents, 1, "{section:#?}");
    assert!((file_qc.per_hour - 3600.0 / section.seconds).abs() < 1e-6);
    assert_eq!(black("broadcast").incidents, 0, "{section:#?}");
}
