//! Audio faults on real decoded audio: clips made with the ffmpeg CLI with a channel
//! inverted, a channel copied, or the level out of range at known times, decoded by the real
//! converter and analysed by the single-process runner. Each fault must be found within
//! 0.2 s of its start and end, on its pair, and nothing else on the clean clips.

use std::path::{Path, PathBuf};

use vqa_core::{time, DetectorName, IncidentKind, PipelineConfig, StreamReport};

const TOLERANCE: f64 = 0.2;

/// A programme-like stereo pair: a shared tone and a tone of each channel's own (their
/// correlation is +0.8), as `aevalsrc` expressions over `t`.
const LEFT: &str = "0.2*sin(2*PI*220*t)+0.1*sin(2*PI*523*t)";
const RIGHT: &str = "0.2*sin(2*PI*220*t)+0.1*sin(2*PI*659*t)";

/// The audio detectors under test and silence (the level check leaves silence to it).
fn audio_detectors() -> PipelineConfig {
    use DetectorName::*;
    PipelineConfig {
        detectors: vec![AudioPhase, AudioMono, AudioLevel, Silence],
        ..PipelineConfig::default()
    }
}

/// Makes `name` in `dir` from a lavfi source graph (and an optional audio filter).
fn make(dir: &Path, name: &str, graph: &str, filter: Option<&str>, codec: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = path.to_str().expect("utf-8 path");
    let mut args = vec!["-f", "lavfi", "-i", graph];
    if let Some(f) = filter {
        args.extend(["-af", f]);
    }
    args.extend(codec);
    args.push(out);
    vqa_testkit::run_ffmpeg(args).expect("make clip");
    path
}

fn analyze(path: &Path, config: &PipelineConfig) -> StreamReport {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(vqa_deploy_ecs::analyze_file(path, config))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .report
}

type Found = (IncidentKind, Option<u16>, f64, f64);

fn incidents(report: &StreamReport) -> Vec<Found> {
    report
        .incidents
        .iter()
        .map(|i| {
            (
                i.kind,
                i.channel,
                time::to_secs(i.start),
                time::to_secs(i.end),
            )
        })
        .collect()
}

/// Exactly the `want`ed incidents, each within the tolerance.
fn assert_found(report: &StreamReport, want: &[Found]) {
    let found = incidents(report);
    let close = |f: &Found, w: &Found| {
        f.0 == w.0 && f.1 == w.1 && (f.2 - w.2).abs() <= TOLERANCE && (f.3 - w.3).abs() <= TOLERANCE
    };
    assert_eq!(found.len(), want.len(), "found {found:?}, want {want:?}");
    for w in want {
        assert!(
            found.iter().any(|f| close(f, w)),
            "want {w:?}; found {found:?}"
        );
    }
    assert!(report.complete, "{:?}", report.warnings);
}

const AAC: &[&str] = &["-c:a", "aac", "-b:a", "192k"];

#[test]
fn an_inverted_channel_is_found_where_it_is_and_a_clean_pair_has_nothing() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = audio_detectors();

    let clean = format!("aevalsrc='{LEFT}|{RIGHT}':c=stereo:s=48000:d=12");
    let path = make(dir.path(), "clean.m4a", &clean, None, AAC);
    assert_found(&analyze(&path, &config), &[]);

    // The right channel inverted from 3 to 7.5 s.
    let inverted =
        format!("aevalsrc='{LEFT}|({RIGHT})*if(between(t,3,7.5),-1,1)':c=stereo:s=48000:d=12");
    let path = make(dir.path(), "inverted.m4a", &inverted, None, AAC);
    let report = analyze(&path, &config);
    assert_found(&report, &[(IncidentKind::AudioPhase, Some(0), 3.0, 7.5)]);
    let correlation = report.incidents[0].evidence["correlation"];
    assert!(correlation.mean < -0.7, "{correlation:?}");

    // The whole clip through `pan` with the right channel's polarity inverted.
    let path = make(
        dir.path(),
        "panned.m4a",
        &clean,
        Some("pan=stereo|c0=c0|c1=-1*c1"),
        AAC,
    );
    assert_found(
        &analyze(&path, &config),
        &[(IncidentKind::AudioPhase, Some(0), 0.0, 12.0)],
    );
}

#[test]
fn the_back_pair_of_a_surround_mix_out_of_phase_is_reported_on_its_first_channel() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // 5.1 (FL FR FC LFE BL BR): both pairs programme-like; BR inverted from 2 to 6 s.
    let channels = [
        LEFT.to_string(),
        RIGHT.to_string(),
        "0.2*sin(2*PI*330*t)".to_string(),
        "0.2*sin(2*PI*60*t)".to_string(),
        LEFT.to_string(),
        format!("({RIGHT})*if(between(t,2,6),-1,1)"),
    ];
    let graph = format!("aevalsrc='{}':c=5.1:s=48000:d=9", channels.join("|"));
    let path = make(
        dir.path(),
        "surround.mka",
        &graph,
        None,
        &["-c:a", "ac3", "-b:a", "448k"],
    );
    assert_found(
        &analyze(&path, &audio_detectors()),
        &[(IncidentKind::AudioPhase, Some(4), 2.0, 6.0)],
    );
}

#[test]
fn a_copied_channel_is_mono_and_a_stereo_pair_is_not() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // The right channel a copy of the left from 4 to 17 s (longer than the 10 s minimum).
    let graph =
        format!("aevalsrc='{LEFT}|if(between(t,4,17),{LEFT},{RIGHT})':c=stereo:s=48000:d=20");
    let path = make(dir.path(), "mono.m4a", &graph, None, AAC);
    assert_found(
        &analyze(&path, &audio_detectors()),
        &[(IncidentKind::AudioMono, Some(0), 4.0, 17.0)],
    );
    // `pan` copying one channel to both: mono throughout.
    let clean = format!("aevalsrc='{LEFT}|{RIGHT}':c=stereo:s=48000:d=12");
    let path = make(
        dir.path(),
        "copied.m4a",
        &clean,
        Some("pan=stereo|c0=c0|c1=c0"),
        AAC,
    );
    assert_found(
        &analyze(&path, &audio_detectors()),
        &[(IncidentKind::AudioMono, Some(0), 0.0, 12.0)],
    );
    // Off by default.
    assert!(!PipelineConfig::default().is_enabled(DetectorName::AudioMono));
}

#[test]
fn a_level_too_low_then_too_high_for_longer_than_30_s_is_two_incidents() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Peaks: -14 dBFS, then -50 dBFS from 5 to 40 s, -14 again, -0.5 dBFS from 45 to 80 s,
    // then -14 to the end; FLAC keeps the levels exact.
    let gain = "if(between(t,5,40),0.00316,if(between(t,45,80),0.944,0.2))";
    let tone = |hz: u32| format!("{gain}*sin(2*PI*{hz}*t)");
    let graph = format!(
        "aevalsrc='{}|{}':c=stereo:s=48000:d=84",
        tone(440),
        tone(550)
    );
    let path = make(dir.path(), "level.flac", &graph, None, &["-c:a", "flac"]);
    let report = analyze(&path, &audio_detectors());
    assert_found(
        &report,
        &[
            (IncidentKind::AudioLevel, None, 5.0, 40.0),
            (IncidentKind::AudioLevel, None, 45.0, 80.0),
        ],
    );
    let (low, high) = (&report.incidents[0].evidence, &report.incidents[1].evidence);
    assert!(low.contains_key("low_peak_dbfs") && !low.contains_key("high_peak_dbfs"));
    assert!(high.contains_key("high_peak_dbfs") && !high.contains_key("low_peak_dbfs"));
    // Shorter than 30 s: nothing.
    let mut later = audio_detectors();
    later.audio_level.min_duration = 40.0;
    assert_found(&analyze(&path, &later), &[]);
}

#[test]
fn clicks_in_decoded_audio_are_found_on_their_channel_and_a_clean_pair_has_none() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = PipelineConfig {
        detectors: vec![DetectorName::AudioClicks],
        ..PipelineConfig::default()
    };
    // Off by default: source recordings carry single bad samples by the hundred.
    assert!(!PipelineConfig::default().is_enabled(DetectorName::AudioClicks));
    // FLAC keeps the samples as made. Left: one sample 0.3 up at 2.5 s, and three at 6.0,
    // 6.3 and 6.6 s (one crackling incident); right: 16 samples zeroed at 9.002 s, where the
    // pair is at 0.13 (a micro-dropout: no hole in the timeline).
    let left = format!("{LEFT}+0.3*(eq(n,120000)+eq(n,288000)+eq(n,302400)+eq(n,316800))");
    let right = format!("({RIGHT})*(1-between(n,432100,432115))");
    let graph = format!("aevalsrc='{left}|{right}':c=stereo:s=48000:d=12");
    let path = make(dir.path(), "clicks.flac", &graph, None, &["-c:a", "flac"]);
    let report = analyze(&path, &config);
    assert_found(
        &report,
        &[
            (IncidentKind::AudioClicks, Some(0), 2.5, 2.5),
            (IncidentKind::AudioClicks, Some(0), 6.0, 6.6),
            (IncidentKind::AudioClicks, Some(1), 9.002, 9.002),
        ],
    );
    let crackle = report
        .incidents
        .iter()
        .find(|i| time::to_secs(i.start) > 5.0 && i.channel == Some(0))
        .expect("the crackle");
    assert_eq!(crackle.evidence["jump_dbfs"].count, 3);
    // Each click to the millisecond.
    for i in &report.incidents {
        let start = time::to_secs(i.start);
        let nearest = [2.5, 6.0, 9.0021].map(|t: f64| (start - t).abs());
        assert!(nearest.iter().any(|&d| d <= 0.001), "{start} is no click");
    }

    let clean = format!("aevalsrc='{LEFT}|{RIGHT}':c=stereo:s=48000:d=12");
    let path = make(dir.path(), "clean.flac", &clean, None, &["-c:a", "flac"]);
    assert_found(&analyze(&path, &config), &[]);
    let path = make(dir.path(), "clean.m4a", &clean, None, AAC);
    assert_found(&analyze(&path, &config), &[]);
}
