//! Programme loudness through the real pipeline (FFmpeg decoding, the loudness detector,
//! the aggregator): a programme 10 LU below the target is one `loudness` incident, judged
//! over the whole input (file QC) and over a sliding window shorter than it (broadcast's
//! window, shortened to a minute); the same programme at the target is none, and has no
//! momentary (`loudness_jump`, `true_peak`) findings either.

use std::path::Path;

use vqa_core::config::Profile;
use vqa_core::{DetectorName, IncidentKind, PipelineConfig, StreamReport};

/// Writes `seconds` of a stereo 997 Hz tone at `lufs` (BS.1770: a 997 Hz sine of amplitude
/// `a` on both channels is `20 log10 a` LUFS) as FLAC, with a little slow amplitude
/// movement (±1 dB every 7 s) so that it is not a constant.
fn tone(path: &Path, seconds: u32, lufs: f64) {
    let a = 10f64.powf(lufs / 20.0);
    let expr = format!("{a}*(1+0.12*sin(2*PI*t/7))*sin(2*PI*997*t)");
    vqa_testkit::run_ffmpeg([
        "-f".to_string(),
        "lavfi".into(),
        "-i".into(),
        format!("aevalsrc={expr}|{expr}:s=48000:d={seconds}"),
        "-c:a".into(),
        "flac".into(),
        path.display().to_string(),
    ])
    .expect("ffmpeg writes the tone");
}

fn analyse(path: &Path, profile: Profile) -> StreamReport {
    let mut config = PipelineConfig {
        detectors: vec![DetectorName::Loudness],
        ..PipelineConfig::for_profile(profile)
    };
    if profile == Profile::Broadcast {
        // Broadcast's ten minutes, shortened so that 100 s of tone fills it.
        config.loudness.programme_window = 60.0;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(vqa_deploy_ecs::analyze_file(path, &config))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .report
}

fn of_kind(report: &StreamReport, kind: IncidentKind) -> usize {
    report.incidents.iter().filter(|i| i.kind == kind).count()
}

#[test]
fn a_quiet_programme_longer_than_the_window_is_one_incident_and_one_at_target_is_none() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let quiet = dir.path().join("quiet.flac");
    let on_target = dir.path().join("target.flac");
    // 100 s: longer than the sliding window.
    tone(&quiet, 100, -33.0);
    tone(&on_target, 100, -23.0);
    for profile in Profile::ALL {
        let report = analyse(&quiet, profile);
        let integrated = report
            .loudness
            .as_ref()
            .and_then(|l| l.integrated_lufs)
            .expect("integrated loudness");
        assert!((integrated + 33.0).abs() < 0.5, "{integrated}");
        let loudness: Vec<_> = report
            .incidents
            .iter()
            .filter(|i| i.kind == IncidentKind::Loudness)
            .collect();
        assert_eq!(loudness.len(), 1, "{profile}: {:?}", report.incidents);
        let i = loudness[0];
        // The whole input; or, judged once the window is full, the window it was judged
        // on and on to the end of the stream.
        assert_eq!((i.start, i.end), (0, 100_000_000), "{profile}: {i:?}");
        let p = i.evidence["programme_lufs"];
        assert!((p.mean + 33.0).abs() < 0.5, "{p:?}");
        assert_eq!(of_kind(&report, IncidentKind::LoudnessJump), 0, "{profile}");
        assert_eq!(of_kind(&report, IncidentKind::TruePeak), 0, "{profile}");

        let report = analyse(&on_target, profile);
        assert!(
            report.incidents.is_empty(),
            "{profile}: {:?}",
            report.incidents
        );
    }
}
