//! Live streams through the distributed topology (`vqa monitor --topology distributed`): a
//! live MPEG-TS source over UDP (`ffmpeg -re`) with a freeze, a black stretch and a silence,
//! sent to two monitors at once — one running the stages itself, one only reading and
//! handing chunks to the state machine on the emulator. The distributed one notifies each
//! defect within a chunk's length + 10 s of the moment it qualified, the same notifications
//! in the same order, and writes the same report.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_close, four_detectors};
use serde_json::Value;
use vqa_core::live::ChunkSink;
use vqa_core::{IncidentKind, PipelineConfig};
use vqa_deploy_ecs::monitor::{Monitor, Stages, StreamList};
use vqa_deploy_lambda::state_machine::MachineType;
use vqa_notify::Notifiers;
use vqa_sfn_client::{LiveSink, RunOptions};
use vqa_testkit::emulator::Emulator;
use vqa_testkit::{make_clip, ClipSpec, Container, Defect};

/// Segments per chunk: short, so the test is quick and chunks are many.
const CHUNK: u64 = 5;

/// A free UDP port on loopback.
fn free_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

/// `ffmpeg -re` sending one file as MPEG-TS over UDP to several ports at once (the same
/// bytes to each, as a multicast group would).
fn udp_source(clip: &Path, ports: &[u16]) -> Child {
    let outputs: Vec<String> = ports
        .iter()
        .map(|p| format!("[f=mpegts]udp://127.0.0.1:{p}?pkt_size=1316"))
        .collect();
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(clip)
        .args(["-map", "0", "-c", "copy", "-f", "tee"])
        .arg(outputs.join("|"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start ffmpeg")
}

/// Notifications as they arrive in a JSON lines file, each with when it was first seen.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(Value, Instant)>>>);

impl Seen {
    /// Follows `path` until `stop` is set.
    fn follow(path: PathBuf, stop: Arc<std::sync::atomic::AtomicBool>) -> Seen {
        let seen = Seen::default();
        let lines = seen.0.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(f) = std::fs::File::open(&path) {
                    let all: Vec<Value> = BufReader::new(f)
                        .lines()
                        .map_while(Result::ok)
                        .filter_map(|l| serde_json::from_str(&l).ok())
                        .collect();
                    let mut lines = lines.lock().unwrap();
                    let known = lines.len();
                    let now = Instant::now();
                    lines.extend(all.into_iter().skip(known).map(|v| (v, now)));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        seen
    }

    fn notes(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(v, _)| v.clone())
            .collect()
    }
}

/// A monitor of one stream, `live`, read from `port`, notifying to `dir/notes.jsonl`.
fn monitor(
    dir: &Path,
    port: u16,
    config: &PipelineConfig,
    chunks: Option<Arc<dyn ChunkSink>>,
) -> Monitor {
    let list = format!(
        "[[stream]]\nid = \"live\"\nurl = \"udp://127.0.0.1:{port}\"\n\
         [stream.config]\nconverter = {{ read_timeout = 15.0 }}\n"
    );
    let stages = match chunks {
        Some(sink) => Stages::Distributed(sink),
        None => Stages::InProcess,
    };
    monitor_of(dir, &list, config, stages)
}

/// A monitor of the streams `list` names, notifying to `dir/notes.jsonl`.
fn monitor_of(dir: &Path, list: &str, config: &PipelineConfig, stages: Stages) -> Monitor {
    std::fs::create_dir_all(dir).unwrap();
    let list = StreamList::parse(list, config).expect("stream list");
    let mut notifiers = Notifiers::new(None);
    notifiers
        .add_lines(&dir.join("notes.jsonl"))
        .expect("notes file");
    let monitor = Monitor::with_stages(
        list.monitor.clone(),
        notifiers,
        Some(dir.join("reports")),
        stages,
    )
    .expect("monitor");
    let changes = monitor.apply(&list);
    assert_eq!(changes.added.len(), list.streams.len());
    monitor
}

/// The state machine deployed on `emulator` (Standard, detector groups `groups`), and a
/// live sink that runs chunks of [`CHUNK`] segments through it.
async fn live_sink(
    emulator: &Emulator,
    name: &str,
    config: &PipelineConfig,
    groups: &str,
) -> (vqa_sfn_client::Deployment, LiveSink) {
    let deployment = emulator
        .deploy(name, config, groups, MachineType::Standard)
        .await;
    let sink = LiveSink::connect(
        &emulator.sdk().await,
        &deployment,
        RunOptions {
            chunk_segments: CHUNK,
            ..RunOptions::default()
        },
    )
    .await
    .expect("connect the live sink");
    (deployment, sink)
}

/// One test at a time: each runs an emulator, a source and monitors in real time, which
/// two cores cannot do twice at once within the latencies asserted.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for `what` (polling `probe`), or fails with `context()`.
async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    probe: impl Fn() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}: {}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `got` is `expected` but for numbers within 0.01 of each other (audio decoded after a
/// seek differs in its last bits: see the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_udp_stream_through_the_distributed_topology_notifies_within_a_chunk_and_reports_as_one_process(
) {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Defects across the 5 s chunks' boundaries (freeze, silence) and inside one (black).
    let spec = ClipSpec {
        duration: 30.0,
        container: Container::Ts,
        gop: Some(25),
        defects: vec![
            Defect::freeze(3.5, 7.0),
            Defect::black(11.0, 13.5),
            Defect::silence(18.0, 21.5),
        ],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "live", &spec).expect("make clip");
    let source = common::broadcast_ts(&clip.path, dir.path());
    let config = four_detectors();
    let emulator = Emulator::start_on(0);
    let (deployment, sink) = live_sink(&emulator, "live", &config, "each").await;
    let counters = sink.counters();

    let (single_port, distributed_port) = (free_port(), free_port());
    let single = monitor(&dir.path().join("single"), single_port, &config, None);
    let distributed = monitor(
        &dir.path().join("distributed"),
        distributed_port,
        &config,
        Some(Arc::new(sink)),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let single_seen = Seen::follow(dir.path().join("single/notes.jsonl"), stop.clone());
    let seen = Seen::follow(dir.path().join("distributed/notes.jsonl"), stop.clone());
    // Both monitors listen before the source sends.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = Instant::now();
    let mut source = udp_source(&source, &[single_port, distributed_port]);
    let status = tokio::task::spawn_blocking(move || source.wait())
        .await
        .unwrap()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    // Stop both while the source is only just quiet (no input loss on either side).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (single, distributed) = tokio::join!(
        tokio::task::spawn_blocking(move || single.shutdown(Duration::from_secs(30))),
        tokio::task::spawn_blocking(move || distributed.shutdown(Duration::from_secs(300))),
    );
    let (single, distributed) = (single.unwrap(), distributed.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    // The same report. Only the input's name differs: each monitor read its own port.
    assert_eq!(single.reports.len(), 1);
    assert_eq!(
        distributed.reports.len(),
        1,
        "no report from the executions"
    );
    let (mut expected, mut got) = (single.reports[0].clone(), distributed.reports[0].clone());
    assert_eq!(expected.input, format!("udp://127.0.0.1:{single_port}"));
    assert_eq!(got.input, format!("udp://127.0.0.1:{distributed_port}"));
    expected.input.clear();
    got.input.clear();
    assert_close(
        "report",
        &serde_json::to_value(&got).unwrap(),
        &serde_json::to_value(&expected).unwrap(),
    );
    for kind in [IncidentKind::Freeze, IncidentKind::Black] {
        let of = |r: &vqa_core::StreamReport| -> Vec<vqa_core::Incident> {
            r.incidents
                .iter()
                .filter(|i| i.kind == kind)
                .cloned()
                .collect()
        };
        assert_eq!(of(&got), of(&expected), "pictures decode exactly alike");
    }
    let kinds: Vec<IncidentKind> = got.incidents.iter().map(|i| i.kind).collect();
    for kind in [
        IncidentKind::Freeze,
        IncidentKind::Black,
        IncidentKind::Silence,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} missing: {kinds:?}");
    }
    assert!(got.complete, "{:?}", got.warnings);
    let report_file = dir.path().join("distributed/reports/live.json");
    let written: Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(
        written["coverage"],
        serde_json::to_value(&got.coverage).unwrap()
    );

    // The same notifications in the same order (each names its own monitor's report).
    let strip = |notes: Vec<Value>| -> Vec<Value> {
        notes
            .into_iter()
            .map(|mut n| {
                n.as_object_mut().unwrap().remove("report");
                n
            })
            .collect()
    };
    let notes = strip(seen.notes());
    assert_close(
        "notifications",
        &Value::Array(notes.clone()),
        &Value::Array(strip(single_seen.notes())),
    );
    assert_eq!(
        notes.iter().filter(|n| n["event"] == "opened").count(),
        got.incidents.len()
    );
    assert_eq!(
        notes.iter().filter(|n| n["event"] == "closed").count(),
        got.incidents.len()
    );

    // Each opened within a chunk's length + 10 s of when it qualified (its start plus its
    // kind's minimum duration, sent by the source that long after it started).
    let chunk_seconds = CHUNK as f64 * config.segment_length() as f64 / 1e6;
    let mut latencies = Vec::new();
    for (note, at) in seen.0.lock().unwrap().iter() {
        if note["event"] != "opened" {
            continue;
        }
        let kind: IncidentKind = serde_json::from_value(note["kind"].clone()).unwrap();
        if kind == IncidentKind::Loudness && config.loudness.programme_window == 0.0 {
            // Programme loudness over the whole input is known when the input ends.
            continue;
        }
        let qualified =
            note["start"].as_f64().unwrap() + config.rule(kind).min_duration as f64 / 1e6;
        let latency = at.duration_since(sent).as_secs_f64() - qualified;
        eprintln!("{kind:?}: opened {latency:.2} s after it qualified");
        latencies.push(latency);
        assert!(
            latency <= chunk_seconds + 10.0,
            "{kind:?} notified {latency:.2} s after it qualified: more than a chunk ({chunk_seconds} s) + 10 s"
        );
    }
    assert!(latencies.len() >= 3);

    // One execution per chunk: 30 s of stream in chunks of 5 s, and its end.
    use std::sync::atomic::Ordering::Relaxed;
    let chunks = counters.chunks.load(Relaxed);
    assert!((6..=8).contains(&chunks), "{chunks} chunks");
    assert_eq!(counters.executions.load(Relaxed), chunks);
    assert_eq!(counters.skipped.load(Relaxed), 0);
    assert!(counters.uploads.load(Relaxed) >= 6);
    // Every chunk file was removed once analysed, here and in the bucket.
    let transport = emulator.transport(&deployment.bucket, "").await;
    let left: Vec<String> = vqa_testkit::emulator::list_keys(&transport, &deployment.bucket, "")
        .await
        .into_iter()
        .filter(|k| k.ends_with(".ts"))
        .collect();
    assert!(left.is_empty(), "chunk files left: {left:?}");
}

/// The note in `seen` matching `pred`, when it was seen.
fn find(seen: &Seen, pred: impl Fn(&Value) -> bool) -> Option<(Value, Instant)> {
    seen.0
        .lock()
        .unwrap()
        .iter()
        .find(|(n, _)| pred(n))
        .cloned()
}

fn is(n: &Value, event: &str, kind: &str) -> bool {
    n["event"] == event && n["kind"] == kind
}

fn secs(v: &Value) -> f64 {
    v.as_f64().expect("seconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_source_reconnection_and_list_edits_behave_as_in_one_process() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = ClipSpec {
        duration: 8.0,
        container: Container::Ts,
        gop: Some(25),
        defects: vec![Defect::freeze(2.0, 4.0), Defect::black(5.0, 6.0)],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "loop", &spec).expect("make clip");
    let config = four_detectors();
    let emulator = Emulator::start_on(0);
    let (_, sink) = live_sink(&emulator, "live-edits", &config, "all").await;
    let port = free_port();
    let settings =
        "[monitor]\nreconnect_min = 0.2\nreconnect_max = 1.0\nallow_local_files = true\n";
    let ch1 = format!(
        "[[stream]]\nid = \"ch1\"\nurl = \"udp://127.0.0.1:{port}\"\n\
         [stream.config]\nconverter = {{ read_timeout = 1.0 }}\n"
    );
    let monitor = monitor_of(
        dir.path(),
        &format!("{settings}{ch1}"),
        &config,
        Stages::Distributed(Arc::new(sink)),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Seen::follow(dir.path().join("notes.jsonl"), stop.clone());
    let context = || format!("notifications: {:?}", seen.notes());
    let looped = |port: u16| {
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
            ])
            .arg(&clip.path)
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start ffmpeg")
    };
    let mut source = looped(port);
    let minute = Duration::from_secs(60);
    wait_for(
        "a freeze",
        minute,
        || find(&seen, |n| is(n, "opened", "freeze")),
        context,
    )
    .await;

    // The source dies: input loss is notified while it is away.
    source.kill().unwrap();
    let _ = source.wait();
    let (opened, _) = wait_for(
        "input_loss opened",
        minute,
        || find(&seen, |n| is(n, "opened", "input_loss")),
        context,
    )
    .await;
    let streams = monitor.streams();
    assert!(!streams[0]
        .stats
        .up
        .load(std::sync::atomic::Ordering::SeqCst));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        find(&seen, |n| is(n, "closed", "input_loss")).is_none(),
        "closed while the source was still away: {:?}",
        seen.notes()
    );

    // It comes back: the loss closes, and monitoring goes on after it.
    let mut source = looped(port);
    let (closed, _) = wait_for(
        "input_loss closed",
        minute,
        || find(&seen, |n| is(n, "closed", "input_loss")),
        context,
    )
    .await;
    let (start, end) = (secs(&closed["start"]), secs(&closed["end"]));
    assert_eq!(secs(&opened["start"]), start);
    assert!(
        end - start >= 3.0,
        "the loss lasted the 3 s the source was down: {start}..{end}"
    );
    wait_for(
        "a freeze after the loss",
        minute,
        || {
            find(&seen, |n| {
                is(n, "opened", "freeze") && secs(&n["start"]) >= end
            })
        },
        context,
    )
    .await;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(streams[0].stats.losses.load(Relaxed), 1);
    assert_eq!(streams[0].stats.reconnects.load(Relaxed), 1);

    // The list is edited: ch1 removed (its report comes from its last chunk), ch2 added (a
    // file replayed in real time, which ends by itself).
    let ch2 = format!(
        "[[stream]]\nid = \"ch2\"\nurl = \"{}\"\nrealtime = true\nspeed = 2.0\n",
        clip.path.display()
    );
    let list = StreamList::parse(&format!("{settings}{ch2}"), &config).unwrap();
    let changes = monitor.apply(&list);
    assert_eq!(changes.removed, vec!["ch1".to_string()]);
    assert_eq!(changes.added, vec!["ch2".to_string()]);
    let env = monitor.env().clone();
    let ch1 = wait_for("ch1's report", minute, || env.report("ch1"), context).await;
    let _ = source.kill();
    let _ = source.wait();
    let losses: Vec<_> = ch1
        .incidents
        .iter()
        .filter(|i| i.kind == IncidentKind::InputLoss)
        .collect();
    assert_eq!(losses.len(), 1, "{:?}", ch1.incidents);
    assert_eq!(losses[0].start as f64 / 1e6, start);
    assert_eq!(losses[0].end as f64 / 1e6, end);
    assert!(!ch1.complete);
    assert!(
        ch1.warnings
            .iter()
            .any(|w| w.starts_with("the input was lost 1 time(s)")),
        "{:?}",
        ch1.warnings
    );
    assert!(dir.path().join("reports/ch1.json").exists());

    // ch2's report is the one process's report of the file.
    let ch2 = wait_for("ch2's report", minute, || env.report("ch2"), context).await;
    let mut expected = vqa_deploy_ecs::analyze_file(&clip.path, &config)
        .await
        .expect("single-process analysis")
        .report;
    expected.stream = ch2.stream.clone();
    assert_close(
        "ch2's report",
        &serde_json::to_value(&ch2).unwrap(),
        &serde_json::to_value(&expected).unwrap(),
    );
    let finished = tokio::task::spawn_blocking(move || monitor.shutdown(Duration::from_secs(300)))
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(finished.reports.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_bench_prices_each_topology_from_its_run() {
    use vqa_bench::compare::{compare, BenchSetup, LiveSetup, Variant};
    use vqa_bench::cost::{Orchestration, PriceTable};
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Longer than the run: no loop back to the start (whose reconnection would end a chunk
    // early).
    let spec = ClipSpec {
        duration: 24.0,
        defects: vec![Defect::freeze(2.0, 4.0)],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "bench", &spec).expect("make clip");
    let config = four_detectors();
    // Its own emulator: the Lambda figures come from its invocation log.
    let emulator = Emulator::start_on(0);
    let standard = emulator
        .deploy("live-bench", &config, "each", MachineType::Standard)
        .await;
    let variants = ["single", "shards", "standard-segment"]
        .into_iter()
        .map(|n| Variant::named(n, Some(&standard.state_machine_arn), None).unwrap())
        .collect();
    let seconds = 20.0;
    let setup = BenchSetup {
        config: &config,
        variants,
        prices: PriceTable::shipped(),
        streams: 1000,
        deployment: Some(standard.clone()),
        sdk: Some(emulator.sdk().await),
        emulator_dir: Some(emulator.dir.join("run")),
        live: Some(LiveSetup {
            seconds,
            chunk_segments: CHUNK,
        }),
    };
    let c = compare(&clip.path, setup, None).await.expect("bench");
    let (single, shards, standard) = (&c.topologies[0], &c.topologies[1], &c.topologies[2]);
    for r in [single, shards, standard] {
        // About the seconds monitored (the stream is paced at real time).
        assert!(
            (seconds - 2.0..seconds + 2.0).contains(&r.usage.stream_seconds),
            "{}: {} s of stream",
            r.name,
            r.usage.stream_seconds
        );
        assert!(r.segments >= 18, "{}: {} segments", r.name, r.segments);
        assert!(r.cpu_seconds.unwrap() > 0.0 && r.peak_rss_mb.unwrap() > 0.0);
        assert!(r.cost_per_stream_hour_usd > 0.0);
        assert_eq!(
            r.same_report_as_single, None,
            "live runs cover different stretches"
        );
    }
    assert_eq!(single.usage.orchestration, Orchestration::SingleProcess);
    // Each shard decodes the stream for itself: two decodes cost more CPU than one.
    assert_eq!(shards.usage.orchestration, Orchestration::SingleProcess);
    assert!(
        shards.usage.cpu_seconds > single.usage.cpu_seconds * 1.2,
        "shards {} s of CPU, single {} s",
        shards.usage.cpu_seconds,
        single.usage.cpu_seconds
    );
    assert!(shards.cost_per_stream_hour_usd > single.cost_per_stream_hour_usd);
    let u = &standard.usage;
    assert_eq!(u.orchestration, Orchestration::StepFunctionsStandard);
    // One execution per chunk of 5 segments (the last one open to the end of the stream),
    // each converter + detectors + aggregator.
    let chunks = (u.stream_seconds / 5.0).ceil() as u64;
    assert!(
        (chunks - 1..=chunks).contains(&u.executions),
        "{} executions for {} s",
        u.executions,
        u.stream_seconds
    );
    assert!(u.state_transitions >= u.executions * 5);
    assert!(u.lambda_invocations >= u.executions * (2 + 4 * 4));
    assert!(u.lambda_gb_seconds > 0.0);
    // The chunks stored, the segments handed off; the reader's CPU priced as Fargate.
    assert!(u.s3_puts >= u.executions + standard.segments);
    assert!(u.cpu_seconds > 0.0);
    let dimensions: Vec<&str> = standard.cost.items.iter().map(|i| i.dimension).collect();
    for d in [
        "Fargate vCPU",
        "Step Functions transitions",
        "Lambda duration",
        "S3 PUT requests",
    ] {
        assert!(dimensions.contains(&d), "{d} missing: {dimensions:?}");
    }
    // The story's finding holds on this run too: one process costs less.
    assert!(single.cost_per_stream_hour_usd < standard.cost_per_stream_hour_usd);
    assert!(standard.max_concurrent_streams.is_some());
}

/// The distributed side of stream `forced` with a freeze minimum too long for the clip's
/// freeze: a threshold that differs between the two sides.
struct Forcing(LiveSink);

impl ChunkSink for Forcing {
    fn windows(&self) -> u64 {
        self.0.windows()
    }

    fn open(
        &self,
        stream: &vqa_core::StreamId,
        config: &PipelineConfig,
        input: &str,
        events: Arc<dyn vqa_core::live::ChunkEvents>,
    ) -> Result<Box<dyn vqa_core::live::ChunkStream>, String> {
        let mut config = config.clone();
        if stream.as_str() == "forced" {
            config.freeze.min_duration = 10.0;
        }
        self.0.open(stream, &config, input, events)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_topologies_side_by_side_agree_and_a_differing_threshold_is_a_reported_divergence() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = ClipSpec {
        duration: 16.0,
        container: Container::Ts,
        gop: Some(25),
        defects: vec![Defect::freeze(2.0, 4.0), Defect::black(9.0, 11.5)],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "ab", &spec).expect("make clip");
    let config = four_detectors();
    let emulator = Emulator::start_on(0);
    let (_, sink) = live_sink(&emulator, "ab", &config, "all").await;
    let (same_port, forced_port) = (free_port(), free_port());
    let list = format!(
        "[[stream]]\nid = \"same\"\nurl = \"udp://127.0.0.1:{same_port}\"\n\
         [stream.config]\nconverter = {{ read_timeout = 15.0 }}\n\
         [[stream]]\nid = \"forced\"\nurl = \"udp://127.0.0.1:{forced_port}\"\n\
         [stream.config]\nconverter = {{ read_timeout = 15.0 }}\n"
    );
    let monitor = monitor_of(
        dir.path(),
        &list,
        &config,
        Stages::Both(Arc::new(Forcing(sink))),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Seen::follow(dir.path().join("notes.jsonl"), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut source = udp_source(&clip.path, &[same_port, forced_port]);
    let status = tokio::task::spawn_blocking(move || source.wait())
        .await
        .unwrap()
        .expect("ffmpeg");
    assert!(status.success());
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Each side's cost so far is in /metrics, per stream.
    monitor.tick();
    let metrics = vqa_deploy_ecs::monitor::metrics::text(
        &vqa_deploy_ecs::monitor::metrics::registry(monitor.env()),
    )
    .expect("metrics");
    for id in ["same", "forced"] {
        for topology in ["single", "distributed"] {
            for name in ["vqa_cost_usd_total", "vqa_cost_usd_per_stream_hour"] {
                let prefix = format!("{name}{{stream=\"{id}\",topology=\"{topology}\"}} ");
                let value: f64 = metrics
                    .lines()
                    .find_map(|l| l.strip_prefix(&prefix))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no {prefix}in\n{metrics}"));
                assert!(value > 0.0, "{prefix}{value}");
            }
        }
    }
    let streams = monitor.streams();
    let finished = tokio::task::spawn_blocking(move || monitor.shutdown(Duration::from_secs(300)))
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = |id: &str| {
        finished
            .reports
            .iter()
            .find(|r| r.stream.as_str() == id)
            .unwrap_or_else(|| panic!("no report for {id}"))
            .clone()
    };
    let divergences = |id: &str| {
        streams.iter().find(|s| s.spec.id.as_str() == id).map(|s| {
            s.stats
                .divergences
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    };

    // Same configuration on both sides: no divergence, and each incident notified once
    // (by this process's side).
    let same = report("same");
    assert!(same.divergences.is_empty(), "{:?}", same.divergences);
    assert_eq!(divergences("same"), Some(0));
    assert!(same
        .incidents
        .iter()
        .any(|i| i.kind == IncidentKind::Freeze));
    let notes = seen.notes();
    let of = |id: &str, event: &str| {
        notes
            .iter()
            .filter(|n| n["stream"] == id && n["event"] == event)
            .count()
    };
    assert_eq!(of("same", "opened"), same.incidents.len());
    assert_eq!(of("same", "closed"), same.incidents.len());

    // The distributed side of `forced` ignores freezes under 10 s: its freeze is the one
    // divergence, with this process's incident and its evidence.
    let forced = report("forced");
    assert_eq!(divergences("forced"), Some(1));
    assert_eq!(forced.divergences.len(), 1, "{:?}", forced.divergences);
    let d = &forced.divergences[0];
    assert_eq!(d.kind, IncidentKind::Freeze);
    assert_eq!(d.distributed, None);
    let freeze = d.single.as_ref().expect("this process's freeze");
    assert!(forced.incidents.contains(freeze), "{:?}", forced.incidents);
    assert!(
        freeze.evidence.contains_key("mafd"),
        "{:?}",
        freeze.evidence
    );
    let written: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/forced.json")).expect("forced's report"),
    )
    .unwrap();
    assert_eq!(written["divergences"][0]["kind"], "freeze");
    assert_eq!(written["divergences"][0]["distributed"], Value::Null);

    // Every chunk's executions were accounted before the report: far more than the
    // reader's CPU alone (a Standard execution's transitions are ~$0.0005).
    use vqa_deploy_ecs::monitor::ab::Side;
    for s in &streams {
        let distributed = s.stats.cost.usd(Side::Distributed);
        assert!(distributed > 1e-4, "{}: {distributed}", s.spec.id);
        assert!(s.stats.cost.usd(Side::Single) > 0.0, "{}", s.spec.id);
    }
    // And the report says what each side cost.
    let sides: Vec<&str> = forced.cost.iter().map(|c| c.topology.as_str()).collect();
    assert_eq!(sides, ["single", "distributed"], "{:?}", forced.cost);
    assert!(forced
        .cost
        .iter()
        .all(|c| c.usd > 0.0 && c.usd_per_stream_hour > 0.0));
    assert_eq!(written["cost"][1]["topology"], "distributed");
}
