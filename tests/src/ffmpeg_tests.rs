//! Tests that render real clips with the ffmpeg CLI and check them with `ffprobe` and
//! with FFmpeg's own detectors. Each test skips (passes with a note) when ffmpeg is
//! not installed.

use std::fs;
use std::path::Path;
use std::time::Instant;

use super::*;

/// Truth must agree with FFmpeg's detectors this closely (seconds).
const TOLERANCE: f64 = 0.05;

/// End of the last packet of any stream, in seconds from the start of the file.
///
/// ffprobe's container duration is an estimate that is 0.2 s short for audio-only
/// MPEG-TS, so this reads the packets instead.
fn media_end(path: &Path) -> f64 {
    let output = std::process::Command::new("ffprobe")
        .args(["-hide_banner", "-loglevel", "error", "-show_entries"])
        .arg("format=start_time:packet=pts_time,duration_time")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        output.status.success(),
        "ffprobe failed on {}",
        path.display()
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("ffprobe JSON");
    let seconds = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(|x| x.as_str())
            .and_then(|x| x.parse::<f64>().ok())
    };
    let start = seconds(&json["format"], "start_time").unwrap_or(0.0);
    json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter_map(|p| Some(seconds(p, "pts_time")? + seconds(p, "duration_time").unwrap_or(0.0)))
        .fold(0.0, f64::max)
        - start
}

fn ffmpeg_missing() -> bool {
    if ffmpeg_available() {
        return false;
    }
    eprintln!("skipping: {FFMPEG_INSTALL_HINT}");
    true
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("cannot create a temporary directory")
}

/// Renders `spec`, checks streams and duration with ffprobe, and checks the truth
/// against freezedetect/blackdetect/silencedetect. Returns the clip for more checks.
fn render_and_verify(
    dir: &Path,
    name: &str,
    spec: &ClipSpec,
    settings: &ReferenceSettings,
) -> Clip {
    let started = Instant::now();
    let clip = make_clip(dir, name, spec).unwrap_or_else(|e| panic!("make_clip {name}: {e:#}"));
    let elapsed = started.elapsed().as_secs_f64();

    let info = probe(&clip.path).unwrap_or_else(|e| panic!("probe {name}: {e:#}"));
    assert_eq!(
        info.count("video"),
        usize::from(spec.video),
        "{name}: video streams"
    );
    assert_eq!(
        info.count("audio"),
        usize::from(spec.audio_channels > 0),
        "{name}: audio streams"
    );
    let duration = media_end(&clip.path);
    // MKV/TS add the AAC priming delay (21 ms at 48 kHz) and the padding of the last
    // AAC frame (< 1024 samples) to the length.
    assert!(
        duration >= spec.duration - 1e-6 && duration <= spec.duration + 0.05,
        "{name}: duration {duration} vs requested {}",
        spec.duration
    );
    if let Some(video) = info.first("video") {
        assert_eq!(
            (video.width, video.height),
            (Some(spec.width), Some(spec.height))
        );
        assert_eq!(video.codec_name, "h264");
    }
    if let Some(audio) = info.first("audio") {
        assert_eq!(
            audio.channels,
            Some(spec.audio_channels),
            "{name}: channels"
        );
        assert_eq!(
            audio.sample_rate,
            Some(spec.sample_rate),
            "{name}: sample rate"
        );
        assert_eq!(audio.codec_name, "aac");
    }

    let reported = ffmpeg_reference(&clip.path, settings)
        .unwrap_or_else(|e| panic!("reference detectors on {name}: {e:#}"));
    let comparison = clip.compare(&reported, TOLERANCE);
    eprintln!(
        "{name}: rendered in {elapsed:.2} s, duration {duration:.4} s, \
         video offset {:.6} s, audio offset {:.6} s\n  truth:    {}\n  implied:  {}\n  ffmpeg:   {}",
        clip.video_offset,
        clip.audio_offset,
        describe(&clip.truth),
        describe(&clip.implied),
        describe(&reported),
    );
    for (truth, found) in &comparison.matched {
        eprintln!(
            "  {:<7} truth {:.4}–{:.4}  ffmpeg {:.4}–{:.4}  Δstart {:+.4} Δend {:+.4}",
            truth.kind.as_str(),
            truth.start,
            truth.end,
            found.start,
            found.end,
            found.start - truth.start,
            found.end - truth.end
        );
    }
    assert!(
        comparison.is_exact(),
        "{name}: truth and ffmpeg disagree: {comparison:#?}"
    );
    clip
}

#[test]
fn test_pattern_mp4_stereo_matches_ffmpeg_detectors() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    let spec = ClipSpec {
        defects: vec![
            Defect::freeze(2.0, 4.0),
            Defect::black(6.0, 7.0),
            Defect::silence(1.0, 1.6),
            Defect::silence(8.5, 9.5),
        ],
        ..ClipSpec::default()
    };
    let clip = render_and_verify(dir.path(), "pattern", &spec, &ReferenceSettings::default());
    // MP4 signals the AAC priming, so nothing is shifted.
    assert_eq!(clip.video_offset, 0.0);
    assert_eq!(clip.audio_offset, 0.0);
    assert_eq!(clip.truth[0], Defect::silence(1.0, 1.6));
    assert_eq!(clip.implied, vec![Defect::freeze(6.0, 7.0)]);
    let info = probe(&clip.path).expect("probe");
    assert_eq!(info.first("video").and_then(|v| v.nb_frames), Some(250));
}

#[test]
fn natural_mkv_5_1_matches_ffmpeg_detectors() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    let spec = ClipSpec {
        content: Content::Natural,
        audio_channels: 6,
        container: Container::Mkv,
        defects: vec![
            // Across the scene cut at 2.4 s, and not on whole-frame times.
            Defect::freeze(1.3, 3.1),
            // A freeze straight followed by black: two separate runs of equal frames.
            Defect::freeze(4.2, 5.0),
            Defect::black(5.0, 5.8),
            Defect::silence(6.2, 7.7),
        ],
        ..ClipSpec::default()
    };
    let clip = render_and_verify(
        dir.path(),
        "natural51",
        &spec,
        &ReferenceSettings::default(),
    );
    let priming = f64::from(AAC_PRIMING_SAMPLES) / 48_000.0;
    // Matroska stores milliseconds, so the video start is the priming rounded to 1 ms.
    assert!(
        (clip.video_offset - priming).abs() < 0.001,
        "{}",
        clip.video_offset
    );
    assert!(
        (clip.audio_offset - priming).abs() < 1e-9,
        "{}",
        clip.audio_offset
    );
    // 1.3 s is frame 32.5 -> 33 (rounded half away from zero); 3.1 s is frame 77.5 -> 78.
    let freeze = clip
        .truth_of(DefectKind::Freeze)
        .next()
        .expect("freeze truth");
    assert!((freeze.start - (33.0 / 25.0 + clip.video_offset)).abs() < 1e-9);
    assert!((freeze.end - (78.0 / 25.0 + clip.video_offset)).abs() < 1e-9);
}

#[test]
fn fixed_gop_keyframes_split_freezes_for_freezedetect() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    let spec = ClipSpec {
        content: Content::Natural,
        gop: Some(25),
        defects: vec![Defect::freeze(1.3, 3.1)],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "gop", &spec).unwrap_or_else(|e| panic!("{e:#}"));
    let expected_keyframes: Vec<f64> = (0..10).map(f64::from).collect();
    assert_eq!(clip.keyframes, expected_keyframes, "fixed 1 s GOP");
    // Short minimum duration so that the piece after the last keyframe is reported.
    let settings = ReferenceSettings {
        freeze_min_seconds: 0.1,
        ..ReferenceSettings::default()
    };
    let reported = ffmpeg_reference(&clip.path, &settings).unwrap_or_else(|e| panic!("{e:#}"));
    let freezes: Vec<Defect> = reported
        .iter()
        .filter(|d| d.kind == DefectKind::Freeze)
        .copied()
        .collect();
    eprintln!(
        "gop 25: truth {}; freezedetect {}",
        describe(&clip.truth),
        describe(&freezes)
    );
    // The keyframes at 2 s and 3 s cut the 1.32–3.12 s freeze into three pieces that
    // join up exactly.
    let expected = [
        Defect::freeze(1.32, 2.0),
        Defect::freeze(2.0, 3.0),
        Defect::freeze(3.0, 3.12),
    ];
    assert_eq!(freezes.len(), expected.len(), "{freezes:?}");
    for (found, want) in freezes.iter().zip(&expected) {
        assert!(found.matches(want, 1e-3), "{found:?} vs {want:?}");
    }
}

#[test]
fn test_pattern_ts_stereo_matches_ffmpeg_detectors() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    let spec = ClipSpec {
        duration: 6.0,
        container: Container::Ts,
        defects: vec![
            Defect::black(1.0, 2.0),
            Defect::freeze(3.0, 4.0),
            Defect::silence(4.5, 5.5),
        ],
        ..ClipSpec::default()
    };
    let clip = render_and_verify(dir.path(), "pattern", &spec, &ReferenceSettings::default());
    assert!(
        clip.video_offset > 0.02 && clip.video_offset < 0.022,
        "{}",
        clip.video_offset
    );
}

#[test]
fn audio_only_mono_44k1_ts_matches_silencedetect() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    let spec = ClipSpec {
        video: false,
        audio_channels: 1,
        sample_rate: 44_100,
        container: Container::Ts,
        defects: vec![Defect::silence(2.0, 3.0), Defect::silence(5.5, 6.0)],
        ..ClipSpec::default()
    };
    let clip = render_and_verify(dir.path(), "mono", &spec, &ReferenceSettings::default());
    assert!(
        (clip.audio_offset - 1024.0 / 44_100.0).abs() < 1e-9,
        "{}",
        clip.audio_offset
    );
}

#[test]
fn audio_only_mp4_and_stereo_mkv_without_defects_are_clean() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    let audio_only = ClipSpec {
        video: false,
        duration: 5.0,
        ..ClipSpec::default()
    };
    render_and_verify(
        dir.path(),
        "audio",
        &audio_only,
        &ReferenceSettings::default(),
    );
    // A stricter silence threshold: the clean signal never dips for 50 ms.
    let strict = ReferenceSettings {
        silence_noise_db: -40.0,
        silence_min_seconds: 0.05,
        ..ReferenceSettings::default()
    };
    let mkv = ClipSpec {
        duration: 5.0,
        container: Container::Mkv,
        ..ClipSpec::default()
    };
    render_and_verify(dir.path(), "clean", &mkv, &strict);
}

#[test]
fn natural_content_never_freezes_by_accident() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    // The README demo size; a strict freeze threshold (mean difference below -50 dB,
    // i.e. under ~0.8 grey levels, for 0.2 s) must still find nothing.
    let spec = ClipSpec {
        duration: 12.0,
        width: 640,
        height: 360,
        content: Content::Natural,
        audio_channels: 0,
        ..ClipSpec::default()
    };
    let strict = ReferenceSettings {
        freeze_noise_db: -50.0,
        freeze_min_seconds: 0.2,
        black_min_seconds: 0.1,
        ..ReferenceSettings::default()
    };
    let clip = render_and_verify(dir.path(), "natural", &spec, &strict);
    assert!(clip.truth.is_empty());
}

#[test]
fn small_clips_render_quickly() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    for content in [Content::TestPattern, Content::Natural] {
        let spec = ClipSpec {
            content,
            defects: vec![
                Defect::freeze(2.0, 4.5),
                Defect::black(6.0, 7.0),
                Defect::silence(8.5, 10.0),
            ],
            ..ClipSpec::default()
        };
        let started = Instant::now();
        make_clip(dir.path(), "timed", &spec).unwrap_or_else(|e| panic!("{e:#}"));
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("{content:?} 10 s 320x240: {seconds:.2} s to render");
        // Generous: the machine may be busy compiling; typical is well under 2 s.
        assert!(seconds < 20.0, "{content:?} took {seconds:.2} s");
    }
}

#[test]
fn ffmpeg_failures_carry_ffmpeg_stderr() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    let spec = ClipSpec {
        x264_preset: "no-such-preset".to_owned(),
        ..ClipSpec::default()
    };
    let err = make_clip(dir.path(), "broken", &spec).expect_err("bad preset must fail");
    let message = format!("{err:#}");
    assert!(message.contains("no-such-preset"), "{message}");
    assert!(message.contains("ffmpeg failed"), "{message}");
    // No partial or final file is left behind.
    let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("read dir").collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Decodes the first video stream of `path` to per-frame checksums and counts frames.
fn decodable_frames(path: &Path, scratch: &Path) -> Result<usize> {
    let crc = scratch.join("frames.crc");
    run_ffmpeg([
        "-i".as_ref(),
        path.as_os_str(),
        "-map".as_ref(),
        "0:v:0".as_ref(),
        "-f".as_ref(),
        "framecrc".as_ref(),
        crc.as_os_str(),
    ])?;
    let text = fs::read_to_string(&crc)?;
    Ok(text.lines().filter(|l| !l.starts_with('#')).count())
}

#[test]
fn bad_inputs_are_bad_in_the_intended_ways() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    let good = make_clip(
        dir.path(),
        "good",
        &ClipSpec {
            duration: 4.0,
            ..ClipSpec::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let bad_dir = dir.path().join("bad");
    let bad = make_bad_inputs(&bad_dir, &good.path).unwrap_or_else(|e| panic!("{e:#}"));

    assert_eq!(fs::metadata(&bad.empty).expect("empty").len(), 0);
    assert_eq!(fs::metadata(&bad.random).expect("random").len(), 1 << 20);
    assert!(!bad.missing.exists());
    let good_len = fs::metadata(&good.path).expect("good").len();
    let truncated_len = fs::metadata(&bad.truncated).expect("truncated").len();
    assert_eq!(truncated_len, (good_len as f64 * 0.4) as u64);

    for unreadable in [&bad.empty, &bad.random, &bad.text_as_mp4, &bad.missing] {
        let err = decodable_frames(unreadable, dir.path()).expect_err("must not decode");
        eprintln!("{}: {err:#}", unreadable.display());
    }
    let whole = decodable_frames(&good.path, dir.path()).expect("good clip decodes");
    let part = decodable_frames(&bad.truncated, dir.path()).expect("truncated clip opens");
    eprintln!("frames decoded: good {whole}, truncated {part}");
    assert_eq!(whole, 100);
    assert!(
        part > 0 && part < whole,
        "truncated decoded {part} of {whole} frames"
    );
}

/// FFmpeg's `blockdetect` over `[start, end)` of `path`, one fresh instance (its sums
/// never reset, so a window needs its own).
fn block_mean(path: &Path, start: f64, end: f64) -> f64 {
    let log = crate::tools::run_ffmpeg_info([
        "-i",
        &path.to_string_lossy(),
        "-vf",
        &format!("trim=start={start}:end={end},blockdetect"),
        "-f",
        "null",
        "-",
    ])
    .expect("blockdetect runs");
    log.lines()
        .find_map(|l| l.split("block mean:").nth(1)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no block mean in {log}"))
}

#[test]
fn frame_drops_corruption_and_blockiness_are_where_the_truth_says() {
    if ffmpeg_missing() {
        return;
    }
    let dir = temp_dir();
    // MKV: the video starts 21.3 ms late (AAC priming), so the offsets are exercised too.
    let spec = ClipSpec {
        duration: 8.0,
        gop: Some(25),
        container: Container::Mkv,
        defects: vec![
            Defect::new(DefectKind::FrameDrop, 2.0, 2.2),
            Defect::new(DefectKind::Corruption, 4.1, 4.3),
        ],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "timing", &spec).unwrap_or_else(|e| panic!("{e:#}"));
    let offset = clip.video_offset;
    assert!(offset > 0.02, "MKV with AAC delays the video: {offset}");
    let near = |a: f64, b: f64| (a - b).abs() < 1e-3;
    let times: Vec<f64> = video_packets(&clip.path)
        .expect("packets")
        .iter()
        .map(|p| p.time)
        .collect();

    // The gap: frames 50-54 are missing, 49 and 55 are there.
    let drop = clip
        .truth_of(DefectKind::FrameDrop)
        .next()
        .expect("drop truth");
    assert!(
        near(drop.start, 2.0 + offset) && near(drop.end, 2.2 + offset),
        "{drop:?}"
    );
    assert!(times.iter().any(|&t| near(t, drop.start - 0.04)));
    assert!(times.iter().any(|&t| near(t, drop.end)));
    assert!(!times
        .iter()
        .any(|&t| t > drop.start - 0.02 && t < drop.end - 0.02));

    // Corruption from the first damaged frame (103, 4.12 s) to a keyframe.
    let damage = clip.truth_of(DefectKind::Corruption).collect::<Vec<_>>();
    assert_eq!(damage.len(), 1, "{:?}", clip.truth);
    assert!(near(damage[0].start, 4.12 + offset), "{:?}", damage[0]);
    assert!(
        clip.keyframes.iter().any(|&k| near(k, damage[0].end)),
        "ends on a keyframe: {:?} {:?}",
        damage[0],
        clip.keyframes
    );
    assert!(damage[0].end > 4.28 + offset);

    // Blockiness: the span measures far blockier than the same length before it.
    let spec = ClipSpec {
        duration: 4.0,
        content: Content::Natural,
        defects: vec![Defect::new(DefectKind::Blockiness, 1.6, 2.2)],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "blocky", &spec).unwrap_or_else(|e| panic!("{e:#}"));
    let (inside, before) = (
        block_mean(&clip.path, 1.6, 2.2),
        block_mean(&clip.path, 0.8, 1.4),
    );
    assert!(inside > 3.0 * before, "inside {inside}, before {before}");
    let after = block_mean(&clip.path, 2.2, 2.8);
    assert!(
        after < inside / 3.0,
        "clean again after: {after} vs {inside}"
    );
}
