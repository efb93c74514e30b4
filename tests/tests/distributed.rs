//! The whole distributed topology, for real: Step Functions executions on the emulator
//! invoking the real Lambda handler binaries, handing segments over through emulator S3,
//! ending in a report in the results bucket — and that report equals the single process's.

mod common;

use std::path::{Path, PathBuf};

use common::{distributed, four_detectors, single_process};
use vqa_core::{DetectorName, PipelineConfig};
use vqa_deploy_lambda::state_machine::{history_events, state_transitions, MachineType};
use vqa_sfn_client::{analyze, ClientError, RunOptions};
use vqa_testkit::emulator::{list_keys, Emulator};
use vqa_testkit::{make_clip, ClipSpec, Defect};
use vqa_transport_s3::{Encoding, Granularity};

/// The clip the tests run (see `three_defects`).
fn clip(dir: &Path) -> PathBuf {
    vqa_testkit::three_defects(dir, "parity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_execution_per_segment_objects_gives_the_single_process_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = four_detectors();
    let emulator = Emulator::shared();
    let deployment = emulator
        .deploy("parity-standard", &config, "each", MachineType::Standard)
        .await;
    // Chunks of 2 segments, one after another: the clip's defects span chunk boundaries.
    let options = RunOptions {
        chunk_segments: 2,
        concurrency: 1,
        ..RunOptions::default()
    };
    let run = distributed(emulator, &deployment, &path, &config, options).await;
    let single = single_process(&path, &config).await;
    assert_eq!(run.report, single);
    assert!(
        run.report.incidents.len() >= 3,
        "the clip's defects were found: {:?}",
        run.report.incidents
    );
    let c = run.chunks;
    assert!(c >= 3, "{c} chunks");
    assert_eq!(run.executions, c, "one execution per chunk, none rerun");
    assert_eq!(run.retries, 0, "one chunk at a time: no aggregator waits");
    assert!(run.skipped.is_empty());

    // The executions' own histories, counted: states entered and Lambda invocations.
    let (s, g) = (run.segments, run.groups);
    assert_eq!(g, 4, "one branch per detector");
    assert_eq!(run.transitions, Some(4 * c + s * (1 + g)));
    assert_eq!(
        run.transitions,
        Some(c * state_transitions(0, g) + s * (1 + g))
    );
    assert_eq!(
        run.history_events,
        Some(c * history_events(0, g) + (history_events(1, g) - history_events(0, g)) * s)
    );
    assert_eq!(run.invocations, Some(2 * c + s * g));

    // Every handoff, as the tasks counted it: the converters store each segment once, each
    // group fetches it and stores its findings, the aggregators fetch those, keep their
    // state in S3 per segment, read and move the stream's chunk cursor once per chunk, and
    // remove everything they applied.
    let h = run.handoff;
    assert_eq!(h.puts, s + s * g, "{h:?}");
    assert_eq!(h.gets, s * g + s * g, "{h:?}");
    assert_eq!((h.state_loads, h.state_stores), (c + s + 2, s + c), "{h:?}");
    assert_eq!(h.deletes, s * g + s + 1, "{h:?}");
    assert!(h.frame_bytes_copied > 0 && h.copied_bytes > h.frame_bytes_copied);

    // Nothing left behind but the uploaded input and the stream's chunk cursor (which tells
    // a retried last aggregator that the report is written); one report in the results
    // bucket.
    let t = emulator.transport(&deployment.bucket, "").await;
    let run_name = &run.run_name;
    let mut left = list_keys(
        &t,
        &deployment.bucket,
        &format!("{}{run_name}/", deployment.prefix),
    )
    .await;
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[0].ends_with("/input/parity.mp4"), "{left:?}");
    assert!(left[1].ends_with("/state/chunks"), "{left:?}");
    let reports = list_keys(&t, &deployment.results_bucket, "reports/parity/").await;
    let ours: Vec<_> = reports.iter().filter(|k| k.contains(run_name)).collect();
    assert_eq!(ours, vec![&format!("reports/parity/{run_name}.json")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express_execution_per_frame_zstd_objects_gives_the_single_process_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = four_detectors();
    let emulator = Emulator::shared();
    let deployment = emulator
        .deploy(
            "parity-express",
            &config,
            "freeze,black;silence,loudness",
            MachineType::Express,
        )
        .await;
    let options = RunOptions {
        granularity: Granularity::Frame,
        encoding: Encoding::Zstd,
        ..RunOptions::default()
    };
    let run = distributed(emulator, &deployment, &path, &config, options).await;
    assert_eq!(run.report, single_process(&path, &config).await);
    assert_eq!(run.machine_type, MachineType::Express);
    let (s, g) = (run.segments, run.groups);
    assert_eq!(g, 2);
    // Per picture: one PUT each (and the manifest). The video group GETs them all; the
    // audio group (silence, loudness: no pixels needed) only each manifest; the aggregator
    // reads each group's findings, and each manifest again to delete its pictures.
    let frames = run.report.coverage.video_frames;
    let leads = s - 1; // every segment but the first carries the previous one's last frame
    let pictures = frames + leads;
    assert_eq!(run.handoff.puts, pictures + s + s * g, "{:?}", run.handoff);
    assert_eq!(
        run.handoff.gets,
        (pictures + s) + s + s * g + s,
        "{:?}",
        run.handoff
    );
    // Compressed: fewer bytes moved than the pictures themselves.
    assert!(run.handoff.copied_bytes < run.handoff.frame_bytes_copied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_in_one_line_before_any_execution() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a video\n").unwrap();
    let config = four_detectors();
    let emulator = Emulator::shared();
    let deployment = emulator
        .deploy("bad-input", &config, "all", MachineType::Standard)
        .await;
    let sdk = emulator.sdk().await;
    let err = analyze(
        &sdk,
        &text,
        vqa_deploy_ecs::stream_id_for(&text),
        &config,
        &deployment,
        RunOptions::default(),
    )
    .await
    .unwrap_err();
    // Retrying cannot help: the input is wrong.
    assert!(matches!(err, ClientError::Input(_)), "{err:?}");
    assert!(!err.is_transient());
    let err = err.to_string();
    assert!(
        err.contains("notes.mp4") && err.contains("not a media file"),
        "{err}"
    );
    assert!(!err.contains('\n'));

    // A configuration the deployed state machine does not run is refused, saying so.
    let mut other = config.clone();
    other.detectors = vec![DetectorName::Black];
    let path = clip(dir.path());
    let err = analyze(
        &sdk,
        &path,
        vqa_deploy_ecs::stream_id_for(&path),
        &other,
        &deployment,
        RunOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Deployment(_)), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("redeploy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_stopped_mid_run_fails_naming_it_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = four_detectors();
    let single = single_process(&path, &config).await;

    let emulator = Emulator::start_on(0);
    let deployment = emulator
        .deploy("fault", &config, "each", MachineType::Standard)
        .await;
    let sdk = emulator.sdk().await;
    let running = {
        let (path, config, deployment) = (path.clone(), config.clone(), deployment.clone());
        tokio::spawn(async move {
            let stream = vqa_deploy_ecs::stream_id_for(&path);
            analyze(
                &sdk,
                &path,
                stream,
                &config,
                &deployment,
                RunOptions::default(),
            )
            .await
        })
    };
    // Stop it once the execution is under way (its first function has been invoked).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while emulator.invocations().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    emulator.kill();
    let err = running.await.unwrap().unwrap_err();
    // The service went away: trying again later can help.
    assert!(err.is_transient(), "{err:?}");
    let err = err.to_string();
    assert!(err.contains(&emulator.endpoint), "{err}");
    assert!(!err.contains('\n'), "{err}");

    // Back on the same port (moto keeps nothing, so the deployment is made again): a rerun
    // gives the whole report, nothing lost or duplicated.
    let back = Emulator::start_on(emulator.port);
    let deployment = back
        .deploy("fault", &config, "each", MachineType::Standard)
        .await;
    let run = distributed(&back, &deployment, &path, &config, RunOptions::default()).await;
    assert_eq!(run.report, single);
    assert_eq!(run.report.coverage.segments, single.coverage.segments);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_measures_and_prices_each_topology_from_the_runs_counters() {
    use vqa_bench::compare::{compare, BenchSetup, Variant};
    use vqa_bench::cost::{Orchestration, PriceTable};
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = four_detectors();
    // Its own emulator: the Lambda figures come from its invocation log, which must hold
    // this run's invocations only.
    let emulator = Emulator::start_on(0);
    let standard = emulator
        .deploy("bench-standard", &config, "each", MachineType::Standard)
        .await;
    let express = emulator
        .deploy("bench-express", &config, "each", MachineType::Express)
        .await;
    let variants = [
        "single",
        "standard-segment",
        "standard-frame",
        "express-segment",
    ]
    .into_iter()
    .map(|n| {
        Variant::named(
            n,
            Some(&standard.state_machine_arn),
            Some(&express.state_machine_arn),
        )
        .unwrap()
    })
    .collect();
    let setup = BenchSetup {
        config: &config,
        variants,
        prices: PriceTable::shipped(),
        streams: 10,
        deployment: Some(standard.clone()),
        sdk: Some(emulator.sdk().await),
        emulator_dir: Some(emulator.dir.join("run")),
        live: None,
    };
    let c = compare(&path, setup, None).await.expect("bench");
    assert_eq!(c.topologies.len(), 4);
    let single = &c.topologies[0];
    assert_eq!(single.usage.orchestration, Orchestration::SingleProcess);
    assert_eq!(
        single.handoff.frame_bytes_copied, 0,
        "in-memory handoff copies no pictures"
    );
    assert!(single.cpu_seconds.unwrap() > 0.0 && single.peak_rss_mb.unwrap() > 0.0);
    assert_eq!(single.latency.as_ref().map(|_| ()), Some(()));
    for r in &c.topologies[1..] {
        let (s, g) = (r.segments, 4);
        assert_eq!(r.same_report_as_single, Some(true), "{}", r.name);
        assert_eq!(
            r.state_transitions,
            Some(state_transitions(s, g)),
            "{}",
            r.name
        );
        // Every invocation of this execution, as the emulator logged it.
        let lambda = r.lambda.as_ref().unwrap();
        assert_eq!(lambda.source, "emulator invocation log");
        assert_eq!(lambda.invocations, 2 + s * g, "{}", r.name);
        assert!(lambda.gb_seconds > 0.0);
        // The bill's S3 lines are the transports' own request counts.
        let h = r.handoff;
        assert_eq!(r.usage.s3_puts, h.puts + h.state_stores);
        assert_eq!(r.usage.s3_gets, h.gets + h.state_loads);
        assert_eq!(r.usage.s3_deletes, h.deletes);
        assert_eq!(r.latency.as_ref().map(|_| ()), Some(()), "{}", r.name);
        assert!(r.max_concurrent_streams.is_some(), "{}", r.name);
        let total: f64 = r.cost.items.iter().map(|i| i.usd_per_stream_hour).sum();
        assert!((r.cost_per_stream_hour_usd - total).abs() < 1e-12);
    }
    // Per frame: one object per picture, so more requests than per segment, same report.
    let by_name = |n: &str| c.topologies.iter().find(|r| r.name == n).unwrap();
    assert!(
        by_name("standard-frame").handoff.requests()
            > by_name("standard-segment").handoff.requests()
    );
    let html = vqa_bench::render::render_html(&c);
    assert_eq!(html.matches("<svg").count(), 2, "two charts");
    for r in &c.topologies {
        assert!(html.contains(&r.name));
    }
    let text = vqa_bench::render::render_text(&c);
    assert!(text.contains("costs") && text.contains("the single process per stream-hour"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregator_publishes_each_incident_opened_and_closed_to_sns() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ClipSpec {
        duration: 5.0,
        defects: vec![Defect::freeze(0.8, 2.4), Defect::black(3.0, 4.2)],
        ..ClipSpec::default()
    };
    let path = make_clip(dir.path(), "notified", &spec).expect("clip").path;
    let config = PipelineConfig {
        detectors: vec![DetectorName::Freeze, DetectorName::Black],
        ..PipelineConfig::default()
    };
    let emulator = Emulator::shared();
    let deployment = emulator
        .deploy("notify-standard", &config, "all", MachineType::Standard)
        .await;
    let received = emulator.incidents_subscription().await;
    let run = distributed(emulator, &deployment, &path, &config, RunOptions::default()).await;
    let incidents = &run.report.incidents;
    assert!(incidents.len() >= 2, "{incidents:?}");
    let mut ours = Vec::new();
    while ours.len() < 2 * incidents.len() {
        let Ok(n) = received.recv_timeout(std::time::Duration::from_secs(10)) else {
            break;
        };
        if n["stream"] == "notified" {
            ours.push(n);
        }
    }
    assert_eq!(ours.len(), 2 * incidents.len(), "{ours:?}");
    for i in incidents {
        let start = vqa_core::time::to_secs(i.start);
        let of = |event: &str| {
            ours.iter()
                .filter(|n| {
                    n["event"] == event && n["kind"] == i.kind.as_str() && n["start"] == start
                })
                .count()
        };
        assert_eq!((of("opened"), of("closed")), (1, 1), "{i:?}: {ours:?}");
    }
    let report = format!("s3://{}/reports/notified/", deployment.results_bucket);
    assert!(ours
        .iter()
        .all(|n| n["report"].as_str().is_some_and(|r| r.starts_with(&report))));
}
