//! Per-channel silence on real decoded surround audio: a dead channel in a 5.1 mix is found
//! with its channel number; a silent LFE channel (common by design) is not, unless asked.

use vqa_core::{time, DetectorName, IncidentKind, PipelineConfig};

/// 8 s of 5.1 (FL FR FC LFE BL BR): a tone per channel, FR dead from 2 to 5 s, LFE silent
/// throughout, everything silent from 6.5 to 7.6 s.
fn graph() -> String {
    let gate_all = "not(between(t,6.5,7.6))";
    let tone = |c: usize| format!("0.3*sin(2*PI*{}*t)*{gate_all}", 300 + 70 * c);
    let channels = [
        tone(0),
        format!("{}*not(between(t,2,5))", tone(1)),
        tone(2),
        "0".to_string(),
        tone(4),
        tone(5),
    ];
    format!("aevalsrc='{}':c=5.1:s=48000:d=8", channels.join("|"))
}

#[test]
fn a_dead_surround_channel_is_reported_with_its_number() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("surround.mka");
    let graph = graph();
    let out = path.to_str().expect("utf-8 path");
    vqa_testkit::run_ffmpeg([
        "-f",
        "lavfi",
        "-i",
        graph.as_str(),
        "-c:a",
        "ac3",
        "-b:a",
        "448k",
        out,
    ])
    .expect("make clip");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let analyze = |config: &PipelineConfig| {
        let report = rt
            .block_on(vqa_deploy_ecs::analyze_file(&path, config))
            .expect("analyze")
            .report;
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
            .collect::<Vec<_>>()
    };
    let close = |found: &(IncidentKind, Option<u16>, f64, f64), want: (Option<u16>, f64, f64)| {
        found.0 == IncidentKind::Silence
            && found.1 == want.0
            && (found.2 - want.1).abs() <= 0.2
            && (found.3 - want.2).abs() <= 0.2
    };

    // Silence only: the tones are far louder than a programme, which is loudness's business.
    let silence_only = PipelineConfig {
        detectors: vec![DetectorName::Silence],
        ..PipelineConfig::default()
    };
    let found = analyze(&silence_only);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(close(&found[0], (Some(1), 2.0, 5.0)), "{found:?}");
    assert!(close(&found[1], (None, 6.5, 7.6)), "{found:?}");

    let mut with_lfe = silence_only.clone();
    with_lfe.silence.include_lfe = true;
    let found = analyze(&with_lfe);
    // The LFE channel is silent wherever the whole mix is not: 0-6.5 s (and 7.6-8 s, too
    // short to report).
    let lfe: Vec<_> = found.iter().filter(|f| f.1 == Some(3)).collect();
    assert_eq!(lfe.len(), 1, "{found:?}");
    assert!(close(lfe[0], (Some(3), 0.0, 6.5)), "{found:?}");
}
