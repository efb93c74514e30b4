//! A live stream that an existing packager writes into a bucket, analysed without vqa's
//! reader: the packager trigger's template (`infra/packager-trigger.yaml`) deployed through
//! the emulator's CloudFormation, the bucket's "Object Created" events going through its
//! EventBridge rule to StartExecution, one execution per segment. The stream's report equals
//! the single process's on the same stream, and its incidents reach SNS as they open and
//! close.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{EventBridgeConfiguration, NotificationConfiguration};
use common::{assert_close, four_detectors};
use vqa_core::{IncidentKind, StreamReport};
use vqa_deploy_lambda::state_machine::MachineType;
use vqa_testkit::emulator::Emulator;
use vqa_testkit::{make_clip, ClipSpec, Container, Defect};

const BUCKET: &str = "vqa-packager";
const FOLDER: &str = "live/channel-1/";

/// `source` cut at keyframes into MPEG-TS segments of about `seconds`, timestamps kept, as an
/// HLS packager writes them; their paths in order.
fn segment(source: &Path, dir: &Path, seconds: f64) -> Vec<std::path::PathBuf> {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(source)
        .args([
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "segment",
            "-segment_format",
            "mpegts",
        ])
        .args(["-segment_time", &seconds.to_string()])
        .arg(dir.join("seg_%05d.ts"))
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg segment failed");
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .expect("segments")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ts"))
        .collect();
    segments.sort();
    segments
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn segments_a_packager_writes_are_analysed_through_the_trigger_as_one_process_would() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Keyframes every 13 frames (0.52 s) and segments of about 2.5 s: segment boundaries fall
    // inside the 1 s windows, and defects span segments.
    let spec = ClipSpec {
        duration: 24.0,
        container: Container::Ts,
        gop: Some(13),
        defects: vec![
            Defect::freeze(3.5, 7.0),
            Defect::black(11.0, 13.5),
            Defect::silence(16.0, 19.5),
        ],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "packaged", &spec).expect("make clip");
    let source = common::broadcast_ts(&clip.path, dir.path());
    let segments_dir = dir.path().join("segments");
    std::fs::create_dir_all(&segments_dir).unwrap();
    let segments = segment(&source, &segments_dir, 2.5);
    assert!(segments.len() >= 8, "{} segments", segments.len());
    // The single process reads the stream the segments make, byte for byte.
    let whole = dir.path().join("whole.ts");
    let mut bytes = Vec::new();
    for s in &segments {
        bytes.extend(std::fs::read(s).unwrap());
    }
    std::fs::write(&whole, &bytes).unwrap();
    let config = four_detectors();
    let expected = common::single_process(&whole, &config).await;

    let emulator = Emulator::start_on(0);
    let deployment = emulator
        .deploy("packager", &config, "each", MachineType::Standard)
        .await;
    let outputs = emulator.deploy_stack(
        "infra/packager-trigger.yaml",
        "vqa-packager",
        &[
            ("StateMachineArn", &deployment.state_machine_arn),
            ("PackagerBucketName", BUCKET),
            ("Prefix", "live/"),
            (
                "ConfigurationJson",
                &serde_json::to_string(&config).unwrap(),
            ),
        ],
    );
    assert!(
        outputs
            .iter()
            .any(|(k, v)| k == "RuleArn" && v.contains(":rule/")),
        "{outputs:?}"
    );
    let transport = emulator.transport(BUCKET, "").await;
    let s3 = transport.client();
    s3.put_bucket_notification_configuration()
        .bucket(BUCKET)
        .notification_configuration(
            NotificationConfiguration::builder()
                .event_bridge_configuration(EventBridgeConfiguration::builder().build())
                .build(),
        )
        .send()
        .await
        .expect("EventBridge notifications on");
    let notifications = emulator.incidents_subscription().await;

    // The packager writes the segments one after the other, as fast as it can (their
    // executions overlap and finish in any order), and a playlist the rule ignores.
    for s in &segments {
        let name = s.file_name().unwrap().to_string_lossy();
        let body = std::fs::read(s).unwrap();
        s3.put_object()
            .bucket(BUCKET)
            .key(format!("{FOLDER}{name}"))
            .body(body.into())
            .send()
            .await
            .expect("put segment");
    }
    s3.put_object()
        .bucket(BUCKET)
        .key(format!("{FOLDER}index.m3u8"))
        .body(b"#EXTM3U\n".to_vec().into())
        .send()
        .await
        .expect("put playlist");
    s3.put_object()
        .bucket(BUCKET)
        .key(format!("{FOLDER}END"))
        .body(Vec::new().into())
        .send()
        .await
        .expect("put END");

    // The report of the run that began with segment 0.
    let report_key = "reports/channel-1-0/report.json";
    let deadline = Instant::now() + Duration::from_secs(240);
    let report = loop {
        if let Some(bytes) = transport
            .read_object(&deployment.results_bucket, report_key)
            .await
            .expect("read the report")
        {
            break serde_json::from_slice::<StreamReport>(&bytes).expect("a report");
        }
        if Instant::now() > deadline {
            let logs = std::fs::read_dir(emulator.dir.join("run/logs"))
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
                .map(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(30).collect();
                    format!("{}:\n{}", e.path().display(), tail.join("\n"))
                })
                .collect::<Vec<_>>()
                .join("\n\n");
            let host =
                std::fs::read_to_string(emulator.dir.join("moto_host.log")).unwrap_or_default();
            panic!("no report after 4 minutes\n{logs}\nmoto_host.log: {host}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let executions = emulator.invocations_of("converter", None);
    assert!(
        executions >= 2 * (segments.len() + 1),
        "a Prepare and a Convert per segment and for END: {executions} converter invocations"
    );

    // The same report as one pass over the stream; only the names and the duration the
    // whole file declares (a live stream declares none) differ.
    assert_eq!(report.input, format!("s3://{BUCKET}/{FOLDER}"));
    assert!(report.complete, "{:?}", report.warnings);
    let (mut got, mut want) = (report.clone(), expected.clone());
    for r in [&mut got, &mut want] {
        r.input.clear();
        r.stream = vqa_core::StreamId::new("");
        r.media.duration = None;
    }
    assert_close(
        "report",
        &serde_json::to_value(&got).unwrap(),
        &serde_json::to_value(&want).unwrap(),
    );
    for kind in [
        IncidentKind::Freeze,
        IncidentKind::Black,
        IncidentKind::Silence,
    ] {
        assert!(
            got.incidents.iter().any(|i| i.kind == kind),
            "{kind:?} found: {:?}",
            got.incidents
        );
    }

    // Each incident was notified, opened and closed, as the aggregator applied it.
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 * report.incidents.len() && Instant::now() < until {
        if let Ok(n) = notifications.recv_timeout(Duration::from_millis(500)) {
            seen.push(n);
        }
    }
    for incident in &report.incidents {
        for event in ["opened", "closed"] {
            assert!(
                seen.iter().any(|n| n["event"] == event
                    && n["kind"] == incident.kind.as_str()
                    && n["stream"] == "channel-1-0"),
                "{event} {:?} not notified: {seen:?}",
                incident.kind
            );
        }
    }
}
