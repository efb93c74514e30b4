//! The whole distributed topology, for real: Step Functions executions on the emulator
//! invoking the real Lambda handler binaries, handing segments over through emulator S3,
//! ending in a report in the results bucket — and that report equals the single process's.

mod common;

use std::path::{Path, PathBuf};

use common::{list_keys, Emulator};
use vqa_core::{DetectorName, PipelineConfig, StreamReport};
use vqa_deploy_lambda::client::{analyze, Deployment, DistributedRun, RunOptions};
use vqa_deploy_lambda::state_machine::{history_events, state_transitions, MachineType};
use vqa_testkit::{make_clip, ClipSpec, Defect};
use vqa_transport_s3::{Encoding, Granularity};

fn config() -> PipelineConfig {
    use DetectorName::*;
    PipelineConfig {
        // Video and audio detectors, one with measurements merged across groups (loudness).
        detectors: vec![Freeze, Black, Silence, Loudness],
        ..PipelineConfig::default()
    }
}

/// A 6 s clip with a freeze, a black span and a silence.
fn clip(dir: &Path) -> PathBuf {
    let spec = ClipSpec {
        duration: 6.0,
        defects: vec![
            Defect::freeze(0.8, 2.4),
            Defect::black(3.0, 4.2),
            Defect::silence(2.0, 3.5),
        ],
        ..ClipSpec::default()
    };
    make_clip(dir, "parity", &spec).expect("make clip").path
}

async fn single_process(path: &Path, config: &PipelineConfig) -> StreamReport {
    vqa_deploy_ecs::analyze_file(path, config)
        .await
        .expect("single-process analysis")
        .report
}

async fn distributed(
    emulator: &Emulator,
    deployment: &Deployment,
    path: &Path,
    config: &PipelineConfig,
    options: RunOptions,
) -> DistributedRun {
    let sdk = emulator.sdk().await;
    analyze(
        &sdk,
        path,
        vqa_deploy_ecs::stream_id_for(path),
        config,
        deployment,
        options,
    )
    .await
    .unwrap_or_else(|e| panic!("distributed analysis failed: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_execution_per_segment_objects_gives_the_single_process_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = config();
    let emulator = Emulator::shared();
    let deployment = emulator
        .deploy("parity-standard", &config, "each", MachineType::Standard)
        .await;
    let run = distributed(emulator, &deployment, &path, &config, RunOptions::default()).await;
    let single = single_process(&path, &config).await;
    assert_eq!(run.report, single);
    assert!(
        run.report.incidents.len() >= 3,
        "the clip's defects were found: {:?}",
        run.report.incidents
    );

    // The execution's own history, counted: states entered and Lambda invocations.
    let (s, g) = (run.segments, run.groups);
    assert_eq!(g, 4, "one branch per detector");
    assert_eq!(run.transitions, Some(state_transitions(s, g)));
    assert_eq!(run.history_events, Some(history_events(s, g)));
    assert_eq!(run.invocations, Some(2 + s * g));

    // Every handoff, as the tasks counted it: the converter stores each segment once, each
    // group fetches it and stores its findings, the aggregator fetches those, keeps its state
    // in S3 per segment, and removes everything it applied.
    let h = run.handoff;
    assert_eq!(h.puts, s + s * g, "{h:?}");
    assert_eq!(h.gets, s * g + s * g, "{h:?}");
    assert_eq!((h.state_loads, h.state_stores), (s + 1, s), "{h:?}");
    assert_eq!(h.deletes, s * g + s + 1, "{h:?}");
    assert!(h.frame_bytes_copied > 0 && h.copied_bytes > h.frame_bytes_copied);

    // Nothing left behind but the uploaded input; one report in the results bucket.
    let t = emulator.transport(&deployment.bucket, "").await;
    let run_name = run.execution_arn.rsplit(':').next().unwrap();
    let left = list_keys(
        &t,
        &deployment.bucket,
        &format!("{}{run_name}/", deployment.prefix),
    )
    .await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with("/input/parity.mp4"), "{left:?}");
    let reports = list_keys(&t, &deployment.results_bucket, "reports/parity/").await;
    let ours: Vec<_> = reports.iter().filter(|k| k.contains(run_name)).collect();
    assert_eq!(ours, vec![&format!("reports/parity/{run_name}.json")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express_execution_per_frame_zstd_objects_gives_the_single_process_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = config();
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
    };
    let run = distributed(emulator, &deployment, &path, &config, options).await;
    assert_eq!(run.report, single_process(&path, &config).await);
    assert_eq!(run.machine_type, MachineType::Express);
    let (s, g) = (run.segments, run.groups);
    assert_eq!(g, 2);
    // Per picture: one PUT each (and the manifest), and each group GETs them all.
    let frames = run.report.coverage.video_frames;
    let leads = s - 1; // every segment but the first carries the previous one's last frame
    let pictures = frames + leads;
    assert_eq!(run.handoff.puts, pictures + s + s * g, "{:?}", run.handoff);
    assert_eq!(
        run.handoff.gets,
        g * (pictures + s) + s * g + s,
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
    let config = config();
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
    .unwrap_err()
    .to_string();
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
    .unwrap_err()
    .to_string();
    assert!(err.contains("redeploy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_stopped_mid_run_fails_naming_it_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = config();
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
    let err = running.await.unwrap().unwrap_err().to_string();
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
