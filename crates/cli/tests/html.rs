//! `vqa analyze --html`: the visual report for a clip with known defects, as written and as
//! headless Chromium draws it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn vqa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vqa"))
        .args(args)
        .output()
        .expect("run vqa")
}

/// The test kit's clip with a freeze, a black stretch and a silence at known times, or
/// `None` without the ffmpeg CLI.
fn three_defects(dir: &Path) -> Option<PathBuf> {
    vqa_testkit::ffmpeg_or_skip().then(|| vqa_testkit::three_defects(dir, "html"))
}

/// Analyses `clip` writing the page to `page`; returns the JSON report.
fn analyze_to_html(clip: &Path, page: &Path) -> serde_json::Value {
    let o = vqa(&[
        "analyze",
        clip.to_str().expect("utf-8 path"),
        "--format",
        "json",
        "--html",
        page.to_str().expect("utf-8 path"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("JSON report")
}

/// The incidents of a JSON report: kind and start, seconds.
fn incidents(report: &serde_json::Value) -> Vec<(String, f64)> {
    report["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().expect("kind").to_string(),
                i["start"].as_f64().expect("start"),
            )
        })
        .collect()
}

#[test]
fn the_page_shows_the_clip_s_incidents_and_the_measurements_behind_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = three_defects(dir.path()) else {
        return;
    };
    let page_path = dir.path().join("report.html");
    let report = analyze_to_html(&clip, &page_path);
    let page = std::fs::read_to_string(&page_path).expect("the page was written");
    let found = incidents(&report);
    for kind in ["freeze", "black", "silence"] {
        assert!(found.iter().any(|(k, _)| k == kind), "{kind} in {found:?}");
    }
    // Every incident of the report is a bar on the timeline, at its start.
    for (kind, start) in &found {
        let bar = format!("class=\"incident\" data-kind=\"{kind}\" data-start=\"{start:.3}\"");
        assert!(page.contains(&bar), "{bar} missing");
    }
    assert_eq!(page.matches("class=\"incident\"").count(), found.len());
    // The default detectors measured the picture and the sound every second: their graphs
    // have a point per segment (6 s: 6 or 7 segments); sharpness none in the black second,
    // which has no edges.
    for (graph, least) in [
        ("freeze", 6),
        ("black", 6),
        ("blur", 5),
        ("loudness", 6),
        ("true_peak", 6),
    ] {
        let at = page
            .find(&format!("data-graph=\"{graph}\""))
            .unwrap_or_else(|| panic!("graph {graph} missing"));
        let points: usize = page[at..]
            .split("data-points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|n| n.parse().ok())
            .expect("data-points");
        assert!(points >= least, "{graph}: {points} points");
    }
    // No sync pattern in this clip: its graph says so rather than plotting nothing silently.
    assert!(page.contains("no sync test pattern"));
    assert!(page.contains(&format!("{} incidents", found.len())));
}

#[test]
fn an_unwritable_html_path_fails_before_analysis_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-dir").join("report.html");
    // The input need not even exist: the page's path is checked first.
    let o = vqa(&[
        "analyze",
        "/nonexistent/clip.mp4",
        "--html",
        missing.to_str().expect("utf-8 path"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");
    assert!(err.contains("choose another --html"), "{err}");
    assert!(!err.contains("clip.mp4"), "not analysed: {err}");
}

#[test]
fn help_mentions_the_html_report() {
    let o = vqa(&["analyze", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("--html <FILE>"), "{help}");
    assert!(help.contains("timeline"), "{help}");
}

/// Headless Chromium, or `None` (with the reason said) when it is not installed and the
/// test command did not ask for it (`VQA_CHROMIUM=1`, set by scripts/test.sh).
fn chromium() -> Option<&'static str> {
    let found = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("chromium");
    }
    if std::env::var("VQA_CHROMIUM").is_ok_and(|v| v == "1") {
        panic!("VQA_CHROMIUM=1 but chromium is not installed (bash scripts/install-deps.sh)");
    }
    eprintln!("skipping: chromium is not installed (bash scripts/install-deps.sh installs it)");
    None
}

/// A PNG as rows of RGB pixels, decoded by the ffmpeg CLI.
fn rgb_pixels(png: &Path, width: usize) -> Vec<Vec<[u8; 3]>> {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(png)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout.len() % (width * 3), 0, "rows of {width} pixels");
    o.stdout
        .chunks(width * 3)
        .map(|row| row.chunks(3).map(|p| [p[0], p[1], p[2]]).collect())
        .collect()
}

#[test]
fn headless_chromium_draws_the_timeline_where_the_incidents_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = three_defects(dir.path()) else {
        return;
    };
    let Some(chromium) = chromium() else {
        return;
    };
    let page = dir.path().join("report.html");
    let report = analyze_to_html(&clip, &page);
    let png = dir.path().join("page.png");
    let (width, height) = (1400usize, 1800usize);
    let o = Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        png.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pixels = rgb_pixels(&png, width);
    assert_eq!(pixels.len(), height);
    // A major incident's colour, #f28e2b; bars are long runs of it.
    let major = |p: &[u8; 3]| {
        p[0].abs_diff(0xf2) <= 4 && p[1].abs_diff(0x8e) <= 4 && p[2].abs_diff(0x2b) <= 4
    };
    let bar_rows: Vec<usize> = (0..height)
        .filter(|&y| pixels[y].iter().filter(|p| major(p)).count() >= 40)
        .collect();
    assert!(
        bar_rows.len() >= 3 * 10,
        "three lanes of bars about 18 px high: {} rows",
        bar_rows.len()
    );
    // The timeline is under the header, above the graphs.
    assert!(
        bar_rows.iter().all(|&y| (120..700).contains(&y)),
        "{bar_rows:?}"
    );
    // The earliest incident's bar starts where the time axis puts its start: the page's
    // 24 px margin, the 150 px lane labels, then 1154 px for the analysed seconds.
    let span = report["coverage"]["analysed"].as_f64().expect("analysed");
    let first = incidents(&report)
        .iter()
        .map(|(_, start)| *start)
        .fold(f64::INFINITY, f64::min);
    let expected = 24.0 + 150.0 + first / span * 1154.0;
    let leftmost = bar_rows
        .iter()
        .filter_map(|&y| pixels[y].iter().position(major))
        .min()
        .expect("a bar");
    assert!(
        (leftmost as f64 - expected).abs() <= 4.0,
        "first bar at x {leftmost}, expected {expected:.0}"
    );
    // The graphs below were drawn: their lines' colour, #4e79a7, under the timeline.
    let line = |p: &[u8; 3]| {
        p[0].abs_diff(0x4e) <= 6 && p[1].abs_diff(0x79) <= 6 && p[2].abs_diff(0xa7) <= 6
    };
    let below = bar_rows.last().copied().unwrap_or(0);
    let graph_pixels: usize = pixels[below..]
        .iter()
        .map(|row| row.iter().filter(|p| line(p)).count())
        .sum();
    assert!(graph_pixels > 2000, "{graph_pixels} line pixels");
}
