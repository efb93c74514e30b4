//! `vqa monitor` on loopback: live sources made with the ffmpeg CLI (`-re`, MPEG-TS over
//! UDP; HLS served over HTTP by the test), the real `vqa` binary, its notifications, its
//! /metrics and its reports.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vqa_testkit::{make_clip, Clip, ClipSpec, Container, Defect, DefectKind};

/// A free TCP/UDP port on loopback (closed again; the caller binds it right away).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let u = std::net::UdpSocket::bind(("127.0.0.1", port));
    drop(u);
    port
}

/// A clip with a freeze and a black stretch, TS.
fn live_clip(dir: &Path, seconds: f64) -> Clip {
    live_clip_with_gop(dir, seconds, 25)
}

/// The same with keyframes every `gop` frames (HLS cuts its segments at keyframes).
fn live_clip_with_gop(dir: &Path, seconds: f64, gop: u32) -> Clip {
    let spec = ClipSpec {
        duration: seconds,
        container: Container::Ts,
        gop: Some(gop),
        defects: vec![
            Defect::new(DefectKind::Freeze, 2.0, 4.0),
            Defect::new(DefectKind::Black, 5.0, 6.0),
        ],
        ..ClipSpec::default()
    };
    make_clip(dir, "live", &spec).expect("make clip")
}

fn truth_start(clip: &Clip, kind: DefectKind) -> f64 {
    clip.truth_of(kind).next().expect("defect in truth").start
}

/// `ffmpeg -re` sending a file as MPEG-TS over UDP (looping it when asked).
fn udp_source(clip: &Path, port: u16, looped: bool) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"]);
    if looped {
        cmd.args(["-stream_loop", "-1"]);
    }
    cmd.arg("-i")
        .arg(clip)
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg")
}

struct Monitor {
    child: Child,
    notes: PathBuf,
    port: u16,
    stderr: PathBuf,
}

impl Monitor {
    fn start(dir: &Path, list: &str, extra: &[&str]) -> Monitor {
        let list_path = dir.join("streams.toml");
        std::fs::write(&list_path, list).expect("write list");
        let notes = dir.join("notes.jsonl");
        let stderr = dir.join("monitor.err");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_vqa"))
            .arg("monitor")
            .arg(&list_path)
            .arg("--notify")
            .arg(&notes)
            .arg("--reports")
            .arg(dir.join("reports"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "-v"])
            // The test clips' defects last a second or two: file QC's timings report them
            // (the monitor's default, broadcast, has its own test).
            .args(if extra.contains(&"--profile") {
                &[][..]
            } else {
                &["--profile", "file_qc"][..]
            })
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start vqa monitor");
        let m = Monitor {
            child,
            notes,
            port,
            stderr,
        };
        wait_for(
            "the monitor's /healthz",
            Duration::from_secs(20),
            || m.get("/healthz"),
            || m.log(),
        );
        m
    }

    fn get(&self, path: &str) -> Option<String> {
        ureq::get(&format!("http://127.0.0.1:{}{path}", self.port))
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn notes(&self) -> Vec<Value> {
        let Ok(f) = std::fs::File::open(&self.notes) else {
            return Vec::new();
        };
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    /// Waits for a notification matching `pred`; returns it and when it was first seen.
    fn wait_note(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, Instant) {
        let note = wait_for(
            what,
            timeout,
            || self.notes().into_iter().find(|n| pred(n)),
            || format!("notifications: {:?}\n{}", self.notes(), self.log()),
        );
        (note, Instant::now())
    }

    /// A metric's value for a stream.
    fn metric(&self, name: &str, stream: &str) -> Option<f64> {
        let text = self.get("/metrics")?;
        let prefix = format!("{name}{{stream=\"{stream}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    /// SIGTERM, then the exit status and the log.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, self.log());
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("monitor did not stop on SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kind_is(n: &Value, event: &str, kind: &str) -> bool {
    n["event"] == event && n["kind"] == kind
}

fn secs(v: &Value) -> f64 {
    v.as_f64().expect("seconds")
}

/// Short minimum durations: the alert latency measured is then the pipeline's, not the
/// kinds' rules (a freeze is announced once it has lasted its minimum).
const FAST_RULES: &str = "freeze = { min_duration = 0.2 }\nblack = { min_duration = 0.2 }\n";

#[test]
fn udp_live_source_defects_are_notified_within_a_segment_plus_two_seconds() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = live_clip(dir.path(), 8.0);
    let port = free_port();
    let list = format!(
        "[[stream]]\nid = \"udp\"\nurl = \"udp://127.0.0.1:{port}\"\n[stream.config]\n\
         converter = {{ read_timeout = 5.0 }}\n{FAST_RULES}"
    );
    let monitor = Monitor::start(dir.path(), &list, &[]);
    let sent = Instant::now();
    let mut source = udp_source(&clip.path, port, false);
    for (kind, name) in [(DefectKind::Freeze, "freeze"), (DefectKind::Black, "black")] {
        let truth = truth_start(&clip, kind);
        let (note, seen) = monitor.wait_note(name, Duration::from_secs(20), |n| {
            kind_is(n, "opened", name)
        });
        let latency = seen.duration_since(sent).as_secs_f64() - truth;
        eprintln!("udp {name}: opened {latency:.2} s after the defect started");
        assert!(
            (secs(&note["start"]) - truth).abs() < 0.1,
            "{name} starts at {} in the stream, truth {truth}",
            note["start"]
        );
        assert!(
            latency <= 1.0 + 2.0,
            "{name} notified {latency:.2} s after it started: more than one segment + 2 s"
        );
        assert_eq!(note["stream"], "udp");
        assert!(note["report"]
            .as_str()
            .is_some_and(|r| r.ends_with("udp.json")));
    }
    let _ = source.wait();
    let (status, log) = monitor.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("vqa: stream udp: "), "{log}");
}

#[test]
fn killing_the_source_is_input_loss_and_restarting_it_resumes_monitoring() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = live_clip(dir.path(), 8.0);
    let port = free_port();
    let list = format!(
        "[monitor]\nreconnect_min = 0.2\nreconnect_max = 1.0\nreport_every = 2.0\n[[stream]]\nid = \"ch1\"\n\
         url = \"udp://127.0.0.1:{port}\"\n[stream.config]\nconverter = {{ read_timeout = 1.0 }}\n{FAST_RULES}"
    );
    let monitor = Monitor::start(dir.path(), &list, &[]);
    let mut source = udp_source(&clip.path, port, true);
    monitor.wait_note("first freeze", Duration::from_secs(20), |n| {
        kind_is(n, "opened", "freeze")
    });
    // While it runs, the report the notifications link to is rewritten every 2 s.
    let running_report = dir.path().join("reports/ch1.json");
    wait_for(
        "a report while running",
        Duration::from_secs(10),
        || running_report.exists().then_some(()),
        || monitor.log(),
    );
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(&running_report).expect("read")).expect("json");
    assert_eq!(snapshot["complete"], false);
    assert!(
        snapshot["warnings"].to_string().contains("still monitored"),
        "{snapshot}"
    );
    assert!(snapshot["coverage"]["segments"]
        .as_u64()
        .is_some_and(|n| n >= 2));
    source.kill().expect("kill source");
    let _ = source.wait();
    let killed = Instant::now();
    let (opened, seen) = monitor.wait_note("input_loss", Duration::from_secs(10), |n| {
        kind_is(n, "opened", "input_loss")
    });
    eprintln!(
        "input_loss notified {:.2} s after the source died",
        seen.duration_since(killed).as_secs_f64()
    );
    assert_eq!(monitor.metric("vqa_stream_up", "ch1"), Some(0.0));
    std::thread::sleep(Duration::from_secs(3));
    let mut source = udp_source(&clip.path, port, true);
    let (closed, _) = monitor.wait_note("input_loss closed", Duration::from_secs(20), |n| {
        kind_is(n, "closed", "input_loss")
    });
    let (start, end) = (secs(&closed["start"]), secs(&closed["end"]));
    assert_eq!(secs(&opened["start"]), start);
    assert!(
        end - start >= 3.0,
        "the loss lasted at least the 3 s the source was down: {start}..{end}"
    );
    // Monitoring resumed: a freeze of the restarted source, after the loss.
    let (after, _) = monitor.wait_note("freeze after the loss", Duration::from_secs(20), |n| {
        kind_is(n, "opened", "freeze") && secs(&n["start"]) >= end
    });
    assert!(secs(&after["start"]) >= end);
    assert_eq!(monitor.metric("vqa_stream_up", "ch1"), Some(1.0));
    assert_eq!(monitor.metric("vqa_input_losses_total", "ch1"), Some(1.0));
    assert_eq!(monitor.metric("vqa_reconnects_total", "ch1"), Some(1.0));
    let _ = source.kill();
    let _ = source.wait();
    let (status, log) = monitor.stop();
    assert!(status.success(), "{log}");
    let report: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/ch1.json")).expect("report written"),
    )
    .expect("report json");
    let losses: Vec<&Value> = report["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|i| i["kind"] == "input_loss")
        .collect();
    assert!(!losses.is_empty(), "{report}");
    assert_eq!(secs(&losses[0]["start"]), start);
    assert_eq!(secs(&losses[0]["end"]), end);
    assert!(report["warnings"]
        .to_string()
        .contains("the input was lost"));
    assert_eq!(report["complete"], false);
}

/// Serves `dir`'s files over HTTP from a thread; returns the port.
fn serve_dir(dir: PathBuf) -> u16 {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("http server");
    let port = server.server_addr().to_ip().expect("ip").port();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let name = request.url().trim_start_matches('/').to_string();
            let response = match std::fs::read(dir.join(&name)) {
                Ok(body) => tiny_http::Response::from_data(body).with_status_code(200),
                Err(_) => tiny_http::Response::from_data(Vec::new()).with_status_code(404),
            };
            let _ = request.respond(response);
        }
    });
    port
}

#[test]
fn hls_over_http_is_monitored_live() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Half-second HLS segments: HLS publishes a segment once it is complete, so its
    // length adds to the latency whatever the monitor does.
    let clip = live_clip_with_gop(dir.path(), 8.0, 12);
    let hls = dir.path().join("hls");
    std::fs::create_dir_all(&hls).expect("hls dir");
    let port = serve_dir(hls.clone());
    let sent = Instant::now();
    let mut source = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&clip.path)
        .args([
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "0.5",
            "-hls_list_size",
            "10",
        ])
        .arg(hls.join("live.m3u8"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    wait_for(
        "the HLS playlist",
        Duration::from_secs(10),
        || hls.join("live.m3u8").exists().then_some(()),
        String::new,
    );
    let list = format!(
        "[[stream]]\nid = \"hls\"\nurl = \"http://127.0.0.1:{port}/live.m3u8\"\n[stream.config]\n{FAST_RULES}"
    );
    let monitor = Monitor::start(dir.path(), &list, &[]);
    let truth = truth_start(&clip, DefectKind::Freeze);
    let (note, seen) = monitor.wait_note("freeze", Duration::from_secs(20), |n| {
        kind_is(n, "opened", "freeze")
    });
    let latency = seen.duration_since(sent).as_secs_f64() - truth;
    eprintln!("hls freeze: opened {latency:.2} s after the defect started");
    assert!((secs(&note["start"]) - truth).abs() < 0.1, "{note}");
    assert!(
        latency <= 1.0 + 2.0,
        "freeze notified {latency:.2} s after it started: more than one segment + 2 s"
    );
    let _ = source.wait();
    let (status, log) = monitor.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_replayed_file_reports_exactly_what_analyze_reports() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = live_clip(dir.path(), 8.0);
    let path = clip.path.display().to_string();
    let list = format!(
        "[monitor]\nallow_local_files = true\n\
         [[stream]]\nid = \"paced\"\nurl = \"{path}\"\nrealtime = true\nspeed = 4.0\n\
         [[stream]]\nid = \"subset\"\nurl = \"{path}\"\ndetectors = [\"freeze\", \"black\"]\n"
    );
    let monitor = Monitor::start(dir.path(), &list, &["--until-done"]);
    let status = wait_for(
        "the end of every stream",
        Duration::from_secs(60),
        || monitor.child_status(),
        || monitor.log(),
    );
    assert!(status.success(), "{}", monitor.log());
    for (id, detectors) in [("paced", None), ("subset", Some("freeze,black"))] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vqa"));
        cmd.args(["analyze", "--format", "json", "--decoder-threads", "1"]);
        cmd.args(["--profile", "file_qc"]);
        if let Some(d) = detectors {
            cmd.args(["--detectors", d]);
        }
        let out = cmd.arg(&clip.path).output().expect("vqa analyze");
        let mut expected: Value = serde_json::from_slice(&out.stdout).expect("analyze json");
        expected["stream"] = id.into(); // named by the list, not by the file
        let got: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join(format!("reports/{id}.json"))).expect("report"),
        )
        .expect("report json");
        assert_eq!(got, expected, "stream {id}");
    }
    // One opened and one closed notification per incident, for both streams.
    let notes = monitor.notes();
    for id in ["paced", "subset"] {
        let opened = notes
            .iter()
            .filter(|n| n["stream"] == id && n["event"] == "opened")
            .count();
        let closed = notes
            .iter()
            .filter(|n| n["stream"] == id && n["event"] == "closed")
            .count();
        assert!(opened >= 2 && opened == closed, "{id}: {notes:?}");
    }
}

#[test]
fn the_monitor_defaults_to_the_broadcast_profile() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = live_clip(dir.path(), 8.0);
    let list = format!(
        "[monitor]\nallow_local_files = true\n[[stream]]\nid = \"s\"\nurl = \"{}\"\n",
        clip.path.display()
    );
    let list_path = dir.path().join("streams.toml");
    std::fs::write(&list_path, list).expect("write list");
    // No --profile: the monitor's own default.
    let out = Command::new(env!("CARGO_BIN_EXE_vqa"))
        .arg("monitor")
        .arg(&list_path)
        .args(["--until-done", "--reports"])
        .arg(dir.path().join("reports"))
        .output()
        .expect("vqa monitor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("reports/s.json")).expect("report"))
            .expect("report json");
    let analyze = |profile: &str| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_vqa"))
            .args(["analyze", "--format", "json", "--decoder-threads", "1"])
            .args(["--profile", profile])
            .arg(&clip.path)
            .output()
            .expect("vqa analyze");
        let mut v: Value = serde_json::from_slice(&out.stdout).expect("analyze json");
        v["stream"] = "s".into();
        v
    };
    assert_eq!(got, analyze("broadcast"));
    // The clip's defects last a second or two: file QC reports them, broadcast does not
    // page anyone for them.
    let count = |v: &Value| v["incidents"].as_array().map_or(0, Vec::len);
    let qc = analyze("file_qc");
    assert!(count(&qc) >= 2 && count(&got) < count(&qc), "{got}\n{qc}");
}

impl Monitor {
    fn child_status(&self) -> Option<std::process::ExitStatus> {
        // try_wait needs &mut; poll through the pid instead.
        let mut status = 0;
        // SAFETY: waitpid on our own child, non-blocking.
        let pid = unsafe { libc::waitpid(self.child.id() as i32, &mut status, libc::WNOHANG) };
        (pid > 0).then(|| {
            use std::os::unix::process::ExitStatusExt;
            std::process::ExitStatus::from_raw(status)
        })
    }
}

#[test]
fn streams_are_added_and_removed_by_editing_the_list() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = live_clip(dir.path(), 8.0);
    let path = clip.path.display().to_string();
    let entry =
        |id: &str| format!("[[stream]]\nid = \"{id}\"\nurl = \"{path}\"\nrealtime = true\n");
    let head = "[monitor]\nallow_local_files = true\n";
    let monitor = Monitor::start(dir.path(), &format!("{head}{}", entry("a")), &[]);
    let list_path = dir.path().join("streams.toml");
    wait_for(
        "a segment of a",
        Duration::from_secs(20),
        || {
            monitor
                .metric("vqa_segments_total", "a")
                .filter(|&n| n >= 1.0)
        },
        || monitor.log(),
    );
    // A broken edit is refused and the running list kept.
    std::fs::write(&list_path, format!("{head}[[stream]]\nid = \"b\"\n")).expect("write");
    wait_for(
        "the broken edit refused",
        Duration::from_secs(10),
        || {
            monitor
                .log()
                .contains("still monitoring the previous list")
                .then_some(())
        },
        || monitor.log(),
    );
    assert!(monitor.metric("vqa_stream_up", "a").is_some());
    // a out, b in.
    std::fs::write(&list_path, format!("{head}{}", entry("b"))).expect("write");
    wait_for(
        "a's report and a segment of b",
        Duration::from_secs(20),
        || {
            (dir.path().join("reports/a.json").exists()
                && monitor.metric("vqa_segments_total", "b").unwrap_or(0.0) >= 1.0)
                .then_some(())
        },
        || monitor.log(),
    );
    assert_eq!(
        monitor.metric("vqa_segments_total", "a"),
        None,
        "a is gone from /metrics"
    );
    let a: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("reports/a.json")).expect("a"))
            .expect("json");
    assert!(a["coverage"]["segments"].as_u64().is_some_and(|n| n >= 1));
    let (status, log) = monitor.stop();
    assert!(status.success(), "{log}");
    assert!(dir.path().join("reports/b.json").exists());
}

#[test]
fn analysis_behind_real_time_reports_lag_sheds_pictures_and_stays_bounded() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ClipSpec {
        duration: 10.0,
        width: 1280,
        height: 720,
        container: Container::Ts,
        gop: Some(25),
        x264_preset: "ultrafast".into(),
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "hd", &spec).expect("clip");
    let path = clip.path.display().to_string();
    // Four streams sent at 8x real time to one worker: 32 streams of 720p for one core,
    // about twice what decoding alone allows.
    let streams = 4;
    let mut list = String::from(
        "[monitor]\nallow_local_files = true\nworkers = 1\nqueue_seconds = 2.0\nshed_after = 1.0\n",
    );
    for i in 0..streams {
        list += &format!("[[stream]]\nid = \"s{i}\"\nurl = \"{path}\"\nrealtime = true\nspeed = 8.0\nloop = true\n");
    }
    let monitor = Monitor::start(dir.path(), &list, &[]);
    let pid = monitor.child.id();
    let (mut max_queued, mut max_lag) = (0.0f64, 0.0f64);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(8) {
        for i in 0..streams {
            let id = format!("s{i}");
            max_queued = max_queued.max(
                monitor
                    .metric("vqa_stream_queued_seconds", &id)
                    .unwrap_or(0.0),
            );
            max_lag = max_lag.max(monitor.metric("vqa_stream_lag_seconds", &id).unwrap_or(0.0));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let shed: f64 = (0..streams)
        .map(|i| {
            monitor
                .metric("vqa_shed_frames_total", &format!("s{i}"))
                .unwrap_or(0.0)
        })
        .sum();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_mb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0);
    eprintln!("behind: max lag {max_lag:.1} s, max queued {max_queued:.2} s, shed {shed}, peak RSS {peak_mb:.0} MB");
    assert!(max_lag > 1.0, "lag reported: {max_lag}");
    assert!(shed > 0.0, "pictures shed past shed_after");
    // The reader waits at 2 s of media queued; the span is measured between the newest
    // packet read and the last one decoded, which may be of the other track (a muxer
    // interleaves audio and video up to about a second apart).
    assert!(max_queued <= 2.0 + 1.0, "queue bounded: {max_queued} s");
    // Per stream: the queued packets, the segment being cut (25 decoded 720p pictures with
    // their chroma, ~35 MB) and the decoder's references; far below what reading the
    // whole clip ahead would take.
    assert!(
        peak_mb < 150.0 + streams as f64 * 80.0,
        "peak RSS {peak_mb} MB"
    );
    let (status, log) = monitor.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("pictures shed"), "{log}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("reports/s0.json")).expect("report"))
            .expect("json");
    assert!(
        report["warnings"]
            .to_string()
            .contains("fell behind real time"),
        "{report}"
    );
}

#[test]
fn a_bad_stream_list_is_refused_in_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("streams.toml");
    std::fs::write(
        &list,
        "[[stream]]\nid = \"x\"\nurl = \"file:///etc/passwd\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_vqa"))
        .arg("monitor")
        .arg(&list)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("streams.toml") && err.contains("stream `x`") && err.contains("file"),
        "{err}"
    );
}

/// Kills a child process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_http(url: &str) {
    wait_for(
        url,
        Duration::from_secs(20),
        || ureq::get(url).call().ok().map(drop),
        String::new,
    );
}

/// Polls `ready` every 20 ms until it gives a value; past `timeout` the test fails naming
/// `what` it waited for, with `context()` (the monitor's log, say).
fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let until = Instant::now() + timeout;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(
            Instant::now() < until,
            "no {what} within {timeout:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_detector_shards_merge_into_the_report_of_one_process() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let clip = live_clip(d, 8.0);
    let router_port = free_port();
    let settings = d.join("shard.toml");
    std::fs::write(&settings, "[monitor]\nallow_local_files = true\n").expect("write");
    let mut shards = Vec::new();
    let mut urls = Vec::new();
    for name in ["video", "audio"] {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_vqa"))
            .arg("monitor")
            .arg(&settings)
            .args(["--control", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--profile", "file_qc"])
            .args([
                "--webhook",
                &format!("http://127.0.0.1:{router_port}/notify"),
            ])
            .arg("--notify")
            .arg(d.join(format!("{name}.jsonl")))
            .env("VQA_CONTROL_TOKEN", "s3cret")
            // The router takes the shards' notifications only with the token.
            .env("VQA_WEBHOOK_TOKEN", "s3cret")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join(format!("{name}.err"))).expect("log"))
            .spawn()
            .expect("start shard");
        shards.push(Killed(child));
        urls.push(format!("http://127.0.0.1:{port}"));
        wait_http(&format!("http://127.0.0.1:{port}/healthz"));
        // Without the token, nobody else can give the shard streams.
        let refused = ureq::put(&format!("http://127.0.0.1:{port}/streams"))
            .send("[[stream]]\nid = \"x\"\nurl = \"udp://127.0.0.1:9\"\n");
        assert!(
            matches!(refused, Err(ureq::Error::StatusCode(401))),
            "{refused:?}"
        );
    }
    std::fs::write(
        d.join("shards.toml"),
        format!(
            "[[shard]]\nname = \"video\"\nurl = \"{}\"\ndetectors = [\"freeze\", \"black\", \"blockiness\", \
             \"blur\", \"colorbars\", \"corruption\", \"frame_drop\", \"ts_priority1\", \"scte35\", \"captions\", \"borders\", \"aspect_ratio\", \"field_order\"]\n\
             [[shard]]\nname = \"audio\"\nurl = \"{}\"\ndetectors = [\"silence\", \"loudness\", \"clipping\", \"av_sync\", \"audio_dropout\", \
             \"audio_phase\", \"audio_level\"]\n",
            urls[0], urls[1]
        ),
    )
    .expect("write shards");
    std::fs::write(
        d.join("streams.toml"),
        format!(
            "[monitor]\nallow_local_files = true\n[[stream]]\nid = \"ch\"\nurl = \"{}\"\n",
            clip.path.display()
        ),
    )
    .expect("write list");
    let out = Command::new(env!("CARGO_BIN_EXE_vqa"))
        .arg("router")
        .arg(d.join("streams.toml"))
        .args(["--profile", "file_qc"])
        .arg("--shards")
        .arg(d.join("shards.toml"))
        .args([
            "--listen",
            &format!("127.0.0.1:{router_port}"),
            "--until-done",
        ])
        .arg("--reports")
        .arg(d.join("merged"))
        .arg("--notify")
        .arg(d.join("router.jsonl"))
        .env("VQA_CONTROL_TOKEN", "s3cret")
        .output()
        .expect("run router");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let merged: Value =
        serde_json::from_slice(&std::fs::read(d.join("merged/ch.json")).expect("merged report"))
            .expect("json");
    // The clip's defects are short: router and shards run with file QC's timings.
    let one = Command::new(env!("CARGO_BIN_EXE_vqa"))
        .args(["analyze", "--format", "json", "--decoder-threads", "1"])
        .args(["--profile", "file_qc"])
        .arg(&clip.path)
        .output()
        .expect("vqa analyze");
    let mut expected: Value = serde_json::from_slice(&one.stdout).expect("json");
    expected["stream"] = "ch".into();
    assert_eq!(merged, expected);
    // Each shard ran only its share: no picture kind among the audio shard's notifications
    // and no sound kind among the video shard's. (The clip's 8 s tone is shorter than the
    // programme-loudness window and than a loudness jump's raise time plus the short-term
    // window, so the audio shard may have nothing to say; the merged report's loudness
    // figures, equal to one process's above, are its work.)
    let video = std::fs::read_to_string(d.join("video.jsonl")).unwrap_or_default();
    let audio = std::fs::read_to_string(d.join("audio.jsonl")).unwrap_or_default();
    let kinds = |lines: &str| -> Vec<String> {
        lines
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|n| n["kind"].as_str().map(String::from))
            .collect()
    };
    let sound = [
        "silence",
        "loudness",
        "loudness_jump",
        "true_peak",
        "clipping",
        "av_sync",
        "audio_dropout",
        "audio_phase",
        "audio_level",
    ];
    let (video_kinds, audio_kinds) = (kinds(&video), kinds(&audio));
    assert!(video_kinds.iter().any(|k| k == "freeze"), "{video}");
    assert!(
        video_kinds.iter().all(|k| !sound.contains(&k.as_str())),
        "{video}"
    );
    assert!(
        audio_kinds.iter().all(|k| sound.contains(&k.as_str())),
        "{audio}"
    );
    // The router relayed both shards' notifications, once each, naming the merged report.
    let relayed: Vec<Value> = std::fs::read_to_string(d.join("router.jsonl"))
        .expect("router notifications")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let incidents = expected["incidents"].as_array().expect("incidents");
    assert_eq!(relayed.len(), 2 * incidents.len(), "{relayed:?}");
    for i in incidents {
        let opened = relayed
            .iter()
            .filter(|n| {
                n["event"] == "opened" && n["kind"] == i["kind"] && n["start"] == i["start"]
            })
            .count();
        assert_eq!(opened, 1, "{i}: {relayed:?}");
    }
    assert!(relayed.iter().all(|n| n["report"]
        .as_str()
        .is_some_and(|r| r.ends_with("merged/ch.json"))));
}

#[test]
fn srt_and_rtmp_sources_are_monitored() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = live_clip(dir.path(), 8.0);
    let (srt_port, rtmp_port) = (free_port(), free_port());
    // The sources listen (and start sending once the monitor connects).
    let source = |format: &str, url: String, listen: &[&str]| {
        Killed(
            Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
                .arg(&clip.path)
                .args(["-c", "copy", "-f", format])
                .args(listen)
                .arg(url)
                .stdin(Stdio::null())
                // It complains of a broken pipe when the monitor hangs up at the end.
                .stderr(Stdio::null())
                .spawn()
                .expect("start ffmpeg"),
        )
    };
    let _srt = source(
        "mpegts",
        format!("srt://127.0.0.1:{srt_port}?mode=listener"),
        &[],
    );
    let _rtmp = source(
        "flv",
        format!("rtmp://127.0.0.1:{rtmp_port}/live/ch"),
        &["-listen", "1"],
    );
    std::thread::sleep(Duration::from_millis(700));
    let list = format!(
        "[[stream]]\nid = \"srt\"\nurl = \"srt://127.0.0.1:{srt_port}?mode=caller\"\n[stream.config]\n{FAST_RULES}\
         [[stream]]\nid = \"rtmp\"\nurl = \"rtmp://127.0.0.1:{rtmp_port}/live/ch\"\n[stream.config]\n{FAST_RULES}"
    );
    let monitor = Monitor::start(dir.path(), &list, &[]);
    let truth = truth_start(&clip, DefectKind::Freeze);
    for id in ["srt", "rtmp"] {
        let (note, _) = monitor.wait_note(id, Duration::from_secs(30), |n| {
            n["stream"] == id && kind_is(n, "opened", "freeze")
        });
        // FLV keeps milliseconds; both start where the clip's freeze starts.
        assert!((secs(&note["start"]) - truth).abs() < 0.1, "{id}: {note}");
    }
    let (status, log) = monitor.stop();
    assert!(status.success(), "{log}");
}
