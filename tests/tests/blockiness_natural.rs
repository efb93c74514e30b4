//! The blockiness detector on natural content: a pan over a real photograph (scikit-learn's
//! china.jpg, fetched from Debian by scripts/corpus/fetch-test-image.sh; neither a training
//! nor an evaluation source of the model), encoded cleanly, and its twins starved of bits
//! (MPEG-2 at q 31 throughout; H.264 at QP 51 for a stretch, deblocking on). The clean one
//! must raise no blockiness incident, the MPEG-2 one must over most of the clip, and the
//! H.264 one nowhere but over its starved stretch.

use std::path::{Path, PathBuf};
use std::process::Command;

use vqa_core::{DetectorName, Incident, IncidentKind, PipelineConfig};
use vqa_deploy_ecs::analyze_file;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn blockiness(path: &Path) -> Vec<Incident> {
    let config = PipelineConfig {
        detectors: vec![DetectorName::Blockiness],
        ..PipelineConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let analysis = rt
        .block_on(analyze_file(path, &config))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    analysis
        .report
        .incidents
        .into_iter()
        .filter(|i| i.kind == IncidentKind::Blockiness)
        .collect()
}

#[test]
fn a_starved_mpeg2_pan_over_a_photograph_is_blocky_and_its_clean_twin_is_not() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let photo = vqa_testkit::test_photo();
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    // 4 s at 25 fps, 640x360: a slow zoom and pan, as a camera would.
    let pan = "scale=900:600:force_original_aspect_ratio=increase,crop=900:600,\
               zoompan=z='1.05+0.2*on/100':x='(iw-iw/zoom)*(0.2+0.5*on/100)':\
               y='(ih-ih/zoom)*0.4':d=100:s=640x360:fps=25,format=yuv420p";
    let photo = photo.to_string_lossy();
    let mezzanine = at("mezzanine.mp4");
    ffmpeg(&[
        "-loop",
        "1",
        "-framerate",
        "25",
        "-i",
        &photo,
        "-vf",
        pan,
        "-frames:v",
        "100",
        "-c:v",
        "libx264",
        "-crf",
        "8",
        "-preset",
        "veryfast",
        &mezzanine,
    ]);
    let x264 = |name: &str, extra: &[&str]| {
        let out = at(name);
        let mut args = vec!["-i", mezzanine.as_str(), "-c:v", "libx264", "-crf", "23"];
        args.extend_from_slice(&["-preset", "veryfast", "-g", "50"]);
        args.extend_from_slice(extra);
        args.push(&out);
        ffmpeg(&args);
        PathBuf::from(out)
    };
    let clean = x264("clean.mp4", &[]);
    // Frames 40-79 (1.6-3.2 s) at QP 51.
    let starved = x264("starved.mp4", &["-x264-params", "zones=40,79,q=51"]);
    let mpeg2 = PathBuf::from(at("mpeg2.ts"));
    ffmpeg(&[
        "-i",
        &mezzanine,
        "-c:v",
        "mpeg2video",
        "-q:v",
        "31",
        "-f",
        "mpegts",
        &mpeg2.to_string_lossy(),
    ]);

    let found = blockiness(&clean);
    assert!(found.is_empty(), "clean: {found:?}");

    // Starved H.264 (deblocked) at 640x360 scores 0.05-0.17 here, under the clear level, so
    // it is not reported (docs/block-corruption.md: recall on starved H.264 is about a
    // third). Whatever is reported must be over the stretch.
    for i in blockiness(&starved) {
        let (s, e) = (i.start as f64 / 1e6, i.end as f64 / 1e6);
        assert!(
            s < 3.2 && e > 1.6,
            "{s}-{e} is not over the starved stretch"
        );
    }

    let found = blockiness(&mpeg2);
    let covered: i64 = found.iter().map(|i| i.end - i.start).sum();
    assert!(
        covered >= 2_000_000,
        "MPEG-2 at q 31 throughout: only {covered} us of 4 s found: {found:?}"
    );
}
