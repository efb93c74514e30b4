//! The `onnx` detector with the model the repository ships (`models/blockiness.onnx`, made by
//! `scripts/train-model.sh`), through the real `vqa` binary on clips encoded here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vqa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vqa"))
        .args(args)
        .output()
        .expect("run vqa")
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/blockiness.onnx")
}

fn config(dir: &Path, model: &Path) -> PathBuf {
    let path = dir.join("onnx.toml");
    let text = format!(
        "detectors = [\"onnx\"]\n[onnx]\nmodel = \"{}\"\n",
        model.display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// 8 s of moving natural-looking content, 640x360; frames 75..=149 (3-6 s) encoded by an
/// encoder starved of bits without deblocking when `blocky`.
fn clip(dir: &Path, blocky: bool) -> PathBuf {
    let out = dir.join(if blocky { "blocky.mp4" } else { "clean.mp4" });
    let params = if blocky {
        "zones=75,149,q=51:no-deblock=1"
    } else {
        "no-deblock=0"
    };
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("mandelbrot=s=640x360:r=25,noise=alls=12:allf=t,format=yuv420p")
        .args([
            "-t", "8", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
        ])
        .args(["-x264-params", params])
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed making {}", out.display());
    out
}

fn incidents(out: &Output) -> Vec<(f64, f64)> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    report["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .map(|i| {
            assert_eq!(i["kind"], "onnx");
            (
                i["start"].as_f64().unwrap_or(-1.0),
                i["end"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect()
}

#[test]
fn the_shipped_model_flags_a_starved_encoder_and_not_clean_content() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &model());
    let cfg = cfg.to_str().expect("utf-8 path");
    let clean = clip(dir.path(), false);
    let found = incidents(&vqa(&[
        "analyze",
        clean.to_str().expect("utf-8"),
        "--config",
        cfg,
        "--format",
        "json",
    ]));
    assert!(found.is_empty(), "clean clip: {found:?}");
    let blocky = clip(dir.path(), true);
    let found = incidents(&vqa(&[
        "analyze",
        blocky.to_str().expect("utf-8"),
        "--config",
        cfg,
        "--format",
        "json",
    ]));
    assert!(
        found.iter().any(|&(s, e)| s < 6.0 && e > 3.0),
        "starved 3-6 s: {found:?}"
    );
    assert!(
        found.iter().all(|&(s, e)| s >= 2.5 && e <= 7.0),
        "nothing outside the starved span: {found:?}"
    );
}

#[test]
fn a_missing_or_broken_model_is_a_one_line_error_naming_it() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = clip(dir.path(), false);
    let input = input.to_str().expect("utf-8");
    let missing = dir.path().join("nope.onnx");
    let broken = dir.path().join("broken.onnx");
    std::fs::write(&broken, b"not a model").expect("write");
    for (model, says) in [
        (&missing, "no such file"),
        (&broken, "cannot read it as ONNX"),
    ] {
        let cfg = config(dir.path(), model);
        let out = vqa(&["analyze", input, "--config", cfg.to_str().expect("utf-8")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&model.display().to_string()), "{err}");
        assert!(err.contains(says), "{err}");
    }
}
