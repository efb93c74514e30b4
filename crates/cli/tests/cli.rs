//! The `vqa` command line as a user meets it: real binary, real clips, real bad inputs.

use std::path::Path;
use std::process::{Command, Output};

use vqa_testkit::{make_bad_inputs, make_clip, ClipSpec, Defect, DefectKind};

fn vqa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vqa"))
        .args(args)
        .output()
        .expect("run vqa")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A 6 s clip with a freeze and a silence, or `None` without the ffmpeg CLI.
fn defect_clip(dir: &Path) -> Option<std::path::PathBuf> {
    if !vqa_testkit::ffmpeg_or_skip() {
        return None;
    }
    let spec = ClipSpec {
        duration: 6.0,
        defects: vec![
            Defect {
                kind: DefectKind::Freeze,
                start: 1.0,
                end: 2.6,
            },
            Defect {
                kind: DefectKind::Silence,
                start: 3.0,
                end: 4.5,
            },
        ],
        ..ClipSpec::default()
    };
    Some(make_clip(dir, "cli", &spec).expect("make clip").path)
}

#[test]
fn bad_inputs_give_one_line_naming_the_input_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(good) = defect_clip(dir.path()) else {
        return;
    };
    let bad = make_bad_inputs(dir.path(), &good).expect("bad inputs");
    let cases = [
        (&bad.missing, "no such file"),
        (&bad.empty, "empty"),
        (&bad.random, "not a media file"),
        (&bad.text_as_mp4, "not a media file"),
    ];
    let dir_path = dir.path().to_path_buf();
    for (path, cause) in cases.iter().copied().chain([(&dir_path, "directory")]) {
        let o = vqa(&["analyze", path.to_str().expect("utf-8 path")]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", path.display());
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("vqa: error: "), "{err}");
        assert!(
            err.contains(&*path.to_string_lossy()),
            "names the input: {err}"
        );
        assert!(err.contains(cause), "says why ({cause}): {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            o.stdout.is_empty(),
            "no report for an input that could not be read"
        );
    }
}

#[test]
fn a_truncated_file_reports_what_could_be_analysed_and_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(good) = defect_clip(dir.path()) else {
        return;
    };
    let bad = make_bad_inputs(dir.path(), &good).expect("bad inputs");
    let o = vqa(&[
        "analyze",
        bad.truncated.to_str().expect("utf-8"),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("truncated") && err.contains(&*bad.truncated.to_string_lossy()),
        "{err}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&o)).expect("the partial report is JSON");
    assert_eq!(report["complete"], false);
    let analysed = report["coverage"]["analysed"].as_f64().expect("analysed");
    assert!(
        analysed > 0.5 && analysed < 5.0,
        "part of the 6 s was analysed: {analysed}"
    );
}

#[test]
fn json_report_on_stdout_and_in_out_file_carry_the_incidents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = defect_clip(dir.path()) else {
        return;
    };
    let out = dir.path().join("report.json");
    // The kinds the clip was made with (its test tone is loud by R128 standards).
    let o = vqa(&[
        "analyze",
        clip.to_str().expect("utf-8"),
        "--detectors",
        "freeze,black,silence",
        "--format",
        "json",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        o.stderr.is_empty(),
        "nothing on stderr when it is not a terminal: {}",
        stderr(&o)
    );
    let printed: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json on stdout");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("--out written"))
            .expect("json in file");
    assert_eq!(printed, written);
    let incidents = printed["incidents"].as_array().expect("incidents");
    let kinds: Vec<&str> = incidents
        .iter()
        .map(|i| i["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["freeze", "silence"]);
    let freeze = &incidents[0];
    assert!((freeze["start"].as_f64().expect("start") - 1.0).abs() <= 0.2);
    assert!((freeze["end"].as_f64().expect("end") - 2.6).abs() <= 0.2);
    assert!(
        freeze["evidence"]["mafd"]["max"]
            .as_f64()
            .expect("evidence")
            < 0.255
    );
}

#[test]
fn detectors_flag_selects_a_subset_and_text_output_lists_incidents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = defect_clip(dir.path()) else {
        return;
    };
    let o = vqa(&[
        "analyze",
        clip.to_str().expect("utf-8"),
        "--detectors",
        "silence,black",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("1 incident") && text.contains("silence"),
        "{text}"
    );
    assert!(!text.contains("freeze"), "freeze was not asked for: {text}");
    let o = vqa(&[
        "analyze",
        clip.to_str().expect("utf-8"),
        "--detectors",
        "freez",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown detector `freez`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_file_is_applied_and_its_mistakes_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = defect_clip(dir.path()) else {
        return;
    };
    // A 2 s minimum hides the 1.5 s silence and the 1.6 s freeze.
    let config = dir.path().join("vqa.toml");
    std::fs::write(
        &config,
        "detectors = [\"freeze\", \"black\", \"silence\"]\n\
         [freeze]\nmin_duration = 2.0\n[silence]\nmin_duration = 2.0\n",
    )
    .expect("write");
    let o = vqa(&[
        "analyze",
        clip.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("0 incidents"), "{}", stdout(&o));

    std::fs::write(&config, "[silence]\nnoise = -50\n").expect("write");
    let o = vqa(&[
        "analyze",
        clip.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("vqa.toml") && err.contains("noise"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn config_command_prints_the_defaults_as_loadable_toml() {
    let o = vqa(&["config"]);
    assert_eq!(o.status.code(), Some(0));
    let parsed = vqa_core::PipelineConfig::from_toml(&stdout(&o)).expect("loadable");
    assert_eq!(parsed, vqa_core::PipelineConfig::default());
    let o = vqa(&["config", "--detectors", "black", "--segment-seconds", "2"]);
    let parsed = vqa_core::PipelineConfig::from_toml(&stdout(&o)).expect("loadable");
    assert_eq!(parsed.detectors, vec![vqa_core::DetectorName::Black]);
    assert_eq!(parsed.segment_seconds, 2.0);
}

#[test]
fn help_explains_every_option() {
    let o = vqa(&["analyze", "--help"]);
    let help = stdout(&o);
    for option in [
        "--format",
        "--out",
        "--detectors",
        "--config",
        "--segment-seconds",
        "--decoder-threads",
        "--no-progress",
        "--topology",
        "--granularity",
        "--encoding",
        "--notify",
    ] {
        assert!(help.contains(option), "{option} missing from help:\n{help}");
    }
    let o = vqa(&["--help"]);
    assert!(stdout(&o).contains("Exit status"), "{}", stdout(&o));
    for (command, options) in [
        (
            "monitor",
            &[
                "--notify",
                "--webhook",
                "--sns",
                "--reports",
                "--listen",
                "--control",
                "--until-done",
            ][..],
        ),
        (
            "router",
            &[
                "--shards",
                "--listen",
                "--notify",
                "--reports",
                "--until-done",
            ][..],
        ),
        ("bench", &["--live", "--cpus", "--seconds", "--speed"][..]),
    ] {
        let help = stdout(&vqa(&[command, "--help"]));
        for option in options {
            assert!(
                help.contains(option),
                "{command} {option} missing from help:\n{help}"
            );
        }
    }
}

#[test]
fn default_detectors_measure_programme_loudness_of_the_test_tone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = defect_clip(dir.path()) else {
        return;
    };
    // File QC judges the whole clip's programme loudness; short-term jumps shorter than
    // the 5 s default are reported here.
    let config = dir.path().join("loudness.toml");
    std::fs::write(&config, "[loudness_jump]\nmin_duration = 2.0\n").expect("write");
    let o = vqa(&[
        "analyze",
        clip.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    // Two tones at 0.3 of full scale plus light noise: about -11 LUFS (BS.1770), far above
    // the -23 LUFS target, so a loudness jump once the 3 s short-term window is full;
    // the 1.5 s silence (3-4.5 s) is gated out of the integrated figure.
    let integrated = report["loudness"]["integrated_lufs"]
        .as_f64()
        .expect("integrated loudness");
    assert!((-12.5..=-9.5).contains(&integrated), "{integrated}");
    let peak = report["loudness"]["max_true_peak_dbtp"]
        .as_f64()
        .expect("true peak");
    assert!((-10.0..=-4.0).contains(&peak), "{peak}");
    let loud: Vec<&serde_json::Value> = report["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|i| i["kind"] == "loudness_jump")
        .collect();
    assert!(!loud.is_empty(), "{report}");
    assert!(loud[0]["start"].as_f64().expect("start") >= 2.9);
    // The whole clip, 12 LU above the target: one programme incident over all of it.
    let programme: Vec<&serde_json::Value> = report["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|i| i["kind"] == "loudness")
        .collect();
    assert_eq!(programme.len(), 1, "{report}");
    assert_eq!(programme[0]["start"].as_f64(), Some(0.0), "{report}");
    let lufs = programme[0]["evidence"]["programme_lufs"]["mean"]
        .as_f64()
        .expect("programme loudness");
    assert!((lufs - integrated).abs() < 0.05, "{lufs} vs {integrated}");
}

#[test]
fn distributed_topology_without_a_deployment_says_what_to_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = defect_clip(dir.path()) else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_vqa"))
        .args([
            "analyze",
            clip.to_str().unwrap(),
            "--topology",
            "distributed",
        ])
        .env_remove("VQA_STATE_MACHINE_ARN")
        .output()
        .expect("run vqa");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("VQA_STATE_MACHINE_ARN is not set") && err.contains("emulators.sh deploy"),
        "{err}"
    );
}

#[test]
fn state_machine_command_prints_the_definition_for_the_configuration() {
    let out = vqa(&[
        "state-machine",
        "--detectors",
        "freeze,black,silence",
        "--detector-groups",
        "freeze,black;silence",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let asl: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let branches = &asl["States"]["Detect"]["ItemProcessor"]["States"]["Detectors"]["Branches"];
    assert_eq!(branches.as_array().map(Vec::len), Some(2));
    assert_eq!(
        asl["States"]["Convert"]["Parameters"]["FunctionName"],
        "${ConverterFunctionArn}"
    );

    let bad = vqa(&[
        "state-machine",
        "--detectors",
        "freeze,black",
        "--detector-groups",
        "freeze",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--detector-groups"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn bench_without_a_deployment_prices_the_single_process_and_names_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = defect_clip(dir.path()) else {
        return;
    };
    let html = dir.path().join("bench.html");
    let out = Command::new(env!("CARGO_BIN_EXE_vqa"))
        .args([
            "bench",
            clip.to_str().unwrap(),
            "--format",
            "json",
            "--html",
        ])
        .arg(&html)
        .env_remove("VQA_STATE_MACHINE_ARN")
        .env_remove("VQA_EXPRESS_STATE_MACHINE_ARN")
        .output()
        .expect("run vqa");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("single process only"),
        "{}",
        stderr(&out)
    );
    let c: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let topologies = c["topologies"].as_array().expect("topologies");
    assert_eq!(topologies.len(), 1);
    let single = &topologies[0];
    assert_eq!(single["name"], "single");
    assert!(single["cost_per_stream_hour_usd"].as_f64().unwrap() > 0.0);
    assert!(single["max_concurrent_streams"].is_null());
    assert_eq!(single["handoff"]["frame_bytes_copied"], 0);
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));

    let out = Command::new(env!("CARGO_BIN_EXE_vqa"))
        .args([
            "bench",
            clip.to_str().unwrap(),
            "--variants",
            "single,standard-frame",
        ])
        .env_remove("VQA_STATE_MACHINE_ARN")
        .output()
        .expect("run vqa");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("needs a deployed state machine"),
        "{}",
        stderr(&out)
    );
}

/// Serves one file over HTTP on loopback (any path), as a stream source would.
fn serve(file: std::path::PathBuf) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let body = std::fs::read(&file).unwrap_or_default();
            let mut stream = reader.into_inner();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    port
}

#[test]
fn url_inputs_are_read_within_the_allowed_protocols_and_never_show_credentials() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ClipSpec {
        duration: 5.0,
        defects: vec![Defect::freeze(1.0, 3.0)],
        container: vqa_testkit::Container::Ts,
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "live", &spec).expect("clip").path;
    let port = serve(clip.clone());
    let url = format!("http://viewer:hunter2@127.0.0.1:{port}/live.ts?token=abc123&q=hd");
    let out = vqa(&[
        "analyze",
        &url,
        "--format",
        "json",
        "--detectors",
        "freeze,black",
    ]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{e}");
    assert!(
        !o.contains("hunter2") && !e.contains("hunter2"),
        "password shown"
    );
    assert!(
        !o.contains("abc123") && !e.contains("abc123"),
        "token shown"
    );
    let report: serde_json::Value = serde_json::from_str(&o).expect("JSON");
    assert_eq!(
        report["input"],
        format!("http://***@127.0.0.1:{port}/live.ts?token=***&q=hd")
    );
    assert_eq!(report["stream"], "live");
    assert!(
        report["incidents"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["kind"] == "freeze")),
        "{o}"
    );

    // Local-reading protocols are not allowed for URLs; a dead source is named, not waited on.
    let file_url = format!("file://{}", clip.display());
    let out = vqa(&["analyze", &file_url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("protocol file: is not allowed"),
        "{}",
        stderr(&out)
    );
    let out = vqa(&["analyze", "http://user:pw@127.0.0.1:9/x.ts"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("check the URL and that the source is up") && !e.contains("pw@"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
}

#[test]
fn notifications_are_one_json_line_per_incident_opened_and_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = defect_clip(dir.path()) else {
        return;
    };
    let events = dir.path().join("events.jsonl");
    let report = dir.path().join("report.json");
    let out = vqa(&[
        "analyze",
        clip.to_str().unwrap(),
        "--notify",
        events.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let incidents = report["incidents"].as_array().expect("incidents");
    assert!(!incidents.is_empty());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        lines.len(),
        2 * incidents.len(),
        "one opened and one closed each"
    );
    for incident in incidents {
        let matching = |phase: &str| {
            lines
                .iter()
                .position(|l| {
                    l["event"] == phase
                        && l["kind"] == incident["kind"]
                        && l["start"] == incident["start"]
                })
                .unwrap_or_else(|| panic!("no {phase} line for {incident}"))
        };
        let (opened, closed) = (matching("opened"), matching("closed"));
        assert!(opened < closed, "opened before closed");
        let closed = &lines[closed];
        assert_eq!(closed["end"], incident["end"]);
        assert_eq!(closed["severity"], incident["severity"]);
        assert_eq!(closed["stream"], "cli");
        assert!(closed["report"].as_str().unwrap().ends_with("report.json"));
        assert!(lines[opened]["end"].is_null());
    }
}

#[test]
fn webhooks_receive_every_notification_and_a_failed_post_is_retried() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = defect_clip(dir.path()) else {
        return;
    };
    // A receiver whose first answer is 503 (overloaded), then 200.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let attempts = Arc::new(Mutex::new(0u32));
    {
        let (received, attempts) = (received.clone(), attempts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let mut n = attempts.lock().unwrap();
                *n += 1;
                let status = if *n == 1 {
                    "503 Service Unavailable"
                } else {
                    received
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                    "200 OK"
                };
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
    }
    let url = format!("http://127.0.0.1:{port}/hooks/vqa");
    let out = vqa(&[
        "analyze",
        clip.to_str().unwrap(),
        "--format",
        "json",
        "--webhook",
        &url,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not delivered"), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let incidents = report["incidents"].as_array().expect("incidents").len();
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2 * incidents, "every notification, once");
    assert_eq!(
        *attempts.lock().unwrap() as usize,
        2 * incidents + 1,
        "one retry"
    );
    for body in received.iter() {
        let n: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        assert!(n["event"] == "opened" || n["event"] == "closed", "{n}");
        assert_eq!(n["stream"], "cli");
    }
}

#[test]
fn bench_live_replays_streams_and_reports_their_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(clip) = defect_clip(dir.path()) else {
        return;
    };
    let clip = clip.display().to_string();
    let o = vqa(&[
        "bench",
        &clip,
        "--live",
        "2",
        "--seconds",
        "5",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let runs: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let run = &runs[0];
    assert_eq!(run["streams"], 2);
    assert_eq!(run["cpus"], 1);
    // Two streams for about 5 s of real time: about 4 segments each.
    let segments = run["segments"].as_u64().expect("segments");
    assert!((6..=12).contains(&segments), "{run}");
    // The freeze (1.0 s in) qualifies at 2.0 s in each stream: one alert each, at least.
    assert!(run["alerts"].as_u64().is_some_and(|n| n >= 2), "{run}");
    assert!(
        run["alert_latency_p50_ms"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0),
        "{run}"
    );
    assert!(
        run["rss_per_stream_mb"].as_f64().is_some_and(|mb| mb > 0.0),
        "{run}"
    );

    let o = vqa(&["bench", &clip, "--live", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--live"), "{}", stderr(&o));
}

/// An HTTPS source on this machine with a self-signed certificate for 127.0.0.1 (made with
/// the openssl CLI, served by Python's http.server): its URL and the certificate's file, or
/// `None` without the ffmpeg CLI. The server ends with the returned child.
fn https_source(dir: &Path) -> Option<(String, std::path::PathBuf, ChildGuard)> {
    let clip = defect_clip(dir)?;
    let ts = dir.join("clip.ts");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&clip)
        .args(["-c", "copy"])
        .arg(&ts)
        .status()
        .expect("ffmpeg");
    assert!(ok.success());
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(ok.status.success(), "{}", stderr(&ok));
    let server = r#"
import functools, http.server, ssl, sys
d, cert, key = sys.argv[1:4]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", server])
        .arg(dir)
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the server's port");
    let port: u16 = line.trim().parse().expect("a port");
    Some((
        format!("https://127.0.0.1:{port}/clip.ts"),
        cert,
        ChildGuard(child),
    ))
}

/// Kills the child when dropped (a failed assertion included).
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_tls_source_must_present_a_trusted_certificate_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, cert, _server)) = https_source(dir.path()) else {
        return;
    };
    let run = |env: Option<&Path>, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vqa"));
        cmd.arg("analyze").arg(&url).args(args);
        match env {
            Some(file) => cmd.env("SSL_CERT_FILE", file),
            None => cmd.env_remove("SSL_CERT_FILE"),
        };
        cmd.output().expect("run vqa")
    };
    // A self-signed certificate: refused, in one line that says why it may be and what to do.
    let refused = run(None, &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("converter.tls_verify = false"), "{err}");
    // Trusted (SSL_CERT_FILE names it): analysed, the clip's freeze and silence found.
    let trusted = run(Some(&cert), &[]);
    assert!(trusted.status.success(), "{}", stderr(&trusted));
    let text = stdout(&trusted);
    assert!(
        text.contains("freeze") && text.contains("silence"),
        "{text}"
    );
    // Told to accept any certificate: analysed too.
    let config = dir.path().join("insecure.toml");
    std::fs::write(&config, "[converter]\ntls_verify = false\n").unwrap();
    let any = run(None, &["--config", config.to_str().unwrap()]);
    assert!(any.status.success(), "{}", stderr(&any));
    assert_eq!(stdout(&any), text);
}
