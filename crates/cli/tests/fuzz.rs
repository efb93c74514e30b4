//! The media fuzzing campaign's short run (`scripts/fuzz-media.sh`, issue 17), and every
//! input a campaign found kept as a regression test (`tests/fixtures/fuzz-media/`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A few hundred mutated inputs over every seed: none crashes, hangs or exits outside the
/// documented statuses, and the mutations reach the demuxers and decoders (some inputs
/// cannot be analysed, or only in part).
#[test]
fn a_short_fuzzing_campaign_finds_nothing() {
    if !have("zzuf") || !have("ffmpeg") {
        eprintln!("skipped: zzuf or ffmpeg missing (bash scripts/install-deps.sh)");
        return;
    }
    let out = std::env::temp_dir().join(format!("vqa-fuzz-test-{}", std::process::id()));
    let run = Command::new("bash")
        .arg(repo().join("scripts/fuzz-media.sh"))
        .args(["--inputs", "270", "--jobs", "2", "--seed", "5000000"])
        .arg("--out")
        .arg(&out)
        .arg("--vqa")
        .arg(env!("CARGO_BIN_EXE_vqa"))
        .output()
        .expect("run scripts/fuzz-media.sh");
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    let log = std::fs::read_to_string(out.join("log.tsv")).unwrap_or_default();
    let found: Vec<String> = ["crash", "hang", "status"]
        .iter()
        .flat_map(|k| {
            std::fs::read_dir(out.join("found").join(k))
                .into_iter()
                .flatten()
        })
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        run.status.success(),
        "{}\n{summary}\nfound:\n{}",
        String::from_utf8_lossy(&run.stderr),
        found.join("\n---\n")
    );
    let rows: Vec<Vec<&str>> = log
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 270, "{summary}");
    let seeds: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(seeds.len(), 9, "every container/codec seed: {seeds:?}");
    let damaged = rows.iter().filter(|r| r[3] == "1" || r[3] == "3").count();
    assert!(
        damaged > 0,
        "no mutated input was refused or analysed in part: {summary}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Every input a campaign found (crash, hang or undocumented status) and that was fixed:
/// analysed (or refused) with a documented status, in time.
#[test]
fn inputs_fuzzing_found_are_handled() {
    let dir = repo().join("tests/fixtures/fuzz-media");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return; // none found yet
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "txt") {
            continue;
        }
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vqa"))
            .args(["analyze", "--no-progress", "--format", "json"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run vqa");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for vqa") {
                break status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("{}: still running after 60 s", path.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            matches!(status.code(), Some(0 | 1 | 3)),
            "{}: exit {status}",
            path.display()
        );
    }
}
