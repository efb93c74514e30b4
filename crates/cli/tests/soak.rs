//! The 5-minute soak of `vqa monitor` (issue 17): `scripts/soak.sh --minutes 5` with this
//! build's `vqa` — 8 live UDP streams on loopback, sources killed and restarted, the stream
//! list edited, a webhook failing — must pass its checks (every incident closed, every report
//! written, every edit applied, no notification lost silently, RSS, fds and threads flat after
//! the warm-up). The script holds the logic and the checks (docs/soak.md); this test asserts
//! that they passed and that what they check happened, so it cannot pass on an idle run.
//! The hour-long soak is the same script without `--minutes`, run by hand.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn count(summary: &Value, key: &str) -> u64 {
    summary["counts"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary counts {key}: {}", summary["counts"]))
}

/// Incidents of `kind` opened and closed.
fn incidents(summary: &Value, kind: &str) -> (u64, u64) {
    let k = &summary["counts"]["by_kind"][kind];
    (k[0].as_u64().unwrap_or(0), k[1].as_u64().unwrap_or(0))
}

#[test]
fn five_minute_soak_of_eight_live_streams_passes_its_checks() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("soak");
    let mut child = Command::new("bash")
        .arg(root.join("scripts/soak.sh"))
        .args([
            "--minutes",
            "5",
            "--streams",
            "8",
            "--vqa",
            env!("CARGO_BIN_EXE_vqa"),
        ])
        .arg("--out")
        .arg(&out)
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group, so a hung run can be stopped whole (sources included).
        .process_group(0)
        .spawn()
        .expect("start scripts/soak.sh");
    // A guard against a hung run, not a speed claim: the run itself takes 5 minutes.
    let until = Instant::now() + Duration::from_secs(15 * 60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > until {
            // SAFETY: signalling the process group we created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let kept = dir.keep();
            panic!(
                "scripts/soak.sh did not finish in 15 minutes; see {}",
                kept.join("soak").display()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut printed)
        .expect("read");
    eprintln!("{printed}");
    let summary: Option<Value> = std::fs::read(out.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(summary) = summary.filter(|s| status.success() && s["ok"] == true) else {
        // Kept for a look: the samples, events, notifications, log and reports.
        let kept = dir.keep();
        panic!(
            "the soak failed ({status}); its output is in {}:\n{printed}",
            kept.join("soak").display()
        );
    };
    let checks: Vec<&str> = summary["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .inspect(|c| assert_eq!(c["ok"], true, "{c}"))
        .map(|c| c["check"].as_str().expect("name"))
        .collect();
    assert_eq!(
        checks,
        [
            "stopped",
            "incidents",
            "reports",
            "edits",
            "webhooks",
            "flat"
        ]
    );

    // What the checks were about happened.
    assert!(count(&summary, "source_kills") >= 4, "{printed}");
    let (lost, back) = incidents(&summary, "input_loss");
    assert!(
        lost >= 4 && back == lost,
        "input_loss {lost}/{back}: {printed}"
    );
    for kind in ["freeze", "silence", "black"] {
        let (opened, closed) = incidents(&summary, kind);
        assert!(
            opened >= 8 && closed == opened,
            "{kind} {opened}/{closed}: {printed}"
        );
    }
    assert!(count(&summary, "opened") == count(&summary, "closed"));
    for edit in ["removals", "additions", "setting_changes"] {
        assert!(count(&summary, edit) >= 2, "{edit}: {printed}");
    }
    assert!(count(&summary, "webhook_downs") >= 2, "{printed}");
    assert!(count(&summary, "webhook_500") >= 5, "{printed}");
    assert!(count(&summary, "webhook_hang") >= 1, "{printed}");
    assert!(
        count(&summary, "webhook_undelivered") >= 1,
        "connections refused while the receiver was down: {printed}"
    );
    // Samples every 10 s over 5 minutes, both windows populated.
    assert!(count(&summary, "samples") >= 28, "{printed}");
    for window in ["first window", "last window"] {
        let n = summary["curves"]["rss_kb"][window]["n"]
            .as_u64()
            .unwrap_or(0);
        assert!(n >= 4, "{window}: {n} samples");
    }
    // Every stream listed at the end wrote its report, and each removed one its own.
    let reports = out.join("reports");
    for s in summary["run"]["final_list"].as_array().expect("list") {
        assert!(reports
            .join(format!("{}.json", s.as_str().expect("id")))
            .exists());
    }
    let removed = std::fs::read_dir(reports.join("removed"))
        .expect("removed reports")
        .count() as u64;
    assert_eq!(removed, count(&summary, "removals"));
}
