//! Pixel formats and codecs beyond 8-bit 4:2:0 H.264: each path the converter takes to get
//! 8-bit luma (shared plane, 16-bit shift, swscale) and intra-only streams, where every frame
//! is a keyframe, must find the same freeze and black as FFmpeg's own detectors would.

use std::path::Path;

use vqa_core::{time, DetectorName, IncidentKind, PipelineConfig};

/// 6 s of testsrc2 at 25 fps: frames 25..=74 frozen (1.0-3.0 s), 100..=130 black (4.0-5.24 s).
const GRAPH: &str = "testsrc2=size=320x240:rate=25:duration=6,split[a][b];[a][b]freezeframes=first=25:last=74:replace=25,\
                     drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(n,100,130)'";

fn analyze(path: &Path) -> Vec<(IncidentKind, f64, f64)> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let analysis = rt
        .block_on(vqa_deploy_ecs::analyze_file(
            path,
            // The converter's luma paths are the subject: the two detectors that read luma
            // exactly.
            &PipelineConfig {
                detectors: vec![DetectorName::Freeze, DetectorName::Black],
                ..PipelineConfig::default()
            },
        ))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(analysis.report.complete, "{:?}", analysis.report.warnings);
    analysis
        .report
        .incidents
        .iter()
        .map(|i| (i.kind, time::to_secs(i.start), time::to_secs(i.end)))
        .collect()
}

#[test]
fn every_luma_path_and_intra_only_codecs_find_the_same_defects() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let encodings: [(&str, &[&str]); 5] = [
        (
            "h264_10bit",
            &["-c:v", "libx264", "-pix_fmt", "yuv420p10le"],
        ),
        ("h264_444", &["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
        ("png_rgb", &["-c:v", "png", "-pix_fmt", "rgb24"]),
        (
            "mjpeg_full_range",
            &["-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3"],
        ),
        ("ffv1_gray", &["-c:v", "ffv1", "-pix_fmt", "gray"]),
    ];
    for (name, codec) in encodings {
        let path = dir.path().join(format!("{name}.mkv"));
        let mut args = vec!["-f", "lavfi", "-i", GRAPH];
        args.extend_from_slice(codec);
        args.push(path.to_str().expect("utf-8 path"));
        vqa_testkit::run_ffmpeg(&args).unwrap_or_else(|e| panic!("making {name}: {e:#}"));
        let found = analyze(&path);
        let expected = [
            (IncidentKind::Freeze, 1.0, 3.0),
            (IncidentKind::Black, 4.0, 5.24),
        ];
        assert_eq!(found.len(), expected.len(), "{name}: {found:?}");
        for (f, e) in found.iter().zip(expected) {
            assert!(
                f.0 == e.0 && (f.1 - e.1).abs() < 0.001 && (f.2 - e.2).abs() < 0.001,
                "{name}: found {f:?}, expected {e:?}"
            );
        }
    }
}
