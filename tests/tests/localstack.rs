//! The distributed topology deployed as a user deploys it, into LocalStack: the real
//! `infra/distributed.yaml` through LocalStack's CloudFormation (SAM transform included), the
//! self-contained bundles of `scripts/build-lambdas.sh` as its zip functions on
//! `provided.al2023`, run by LocalStack's Lambda through the `vqa-host` executor, and its
//! Step Functions running the state machine. (The other distributed tests run on moto:
//! faster to start, and a second implementation of the same APIs.)
//!
//! LocalStack comes from `VQA_LOCALSTACK_ENDPOINT`: `scripts/test.sh` starts it on this host
//! (`VQA_EMULATOR=localstack scripts/emulators.sh start`) and sets it. A user with Docker
//! points it at the official container instead; the tests that inject a fault through the
//! host executor or restart LocalStack need the host one and say so.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{distributed, single_process};
use vqa_core::PipelineConfig;
use vqa_sfn_client::{analyze, RunOptions};
use vqa_testkit::emulator::Emulator;

/// One test at a time: they share the instance and its stack, and one restarts it.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const STACK: &str = "vqa-tests";

/// LocalStack, or None (and why the test is skipped) when `VQA_LOCALSTACK_ENDPOINT` is unset;
/// with `host`, None unless it is this host's own.
fn localstack(test: &str, host: bool) -> Option<Emulator> {
    let Some(emulator) = Emulator::localstack() else {
        eprintln!(
            "{test}: skipped: VQA_LOCALSTACK_ENDPOINT is not set (scripts/test.sh starts \
             LocalStack and sets it; or: eval \"$(VQA_EMULATOR=localstack \
             scripts/emulators.sh start)\"; export VQA_LOCALSTACK_ENDPOINT=$AWS_ENDPOINT_URL)"
        );
        return None;
    };
    if host && !emulator.is_host_localstack() {
        eprintln!(
            "{test}: skipped: {} is not the LocalStack scripts/emulators.sh runs on this host \
             (the test injects a fault through its executor or restarts it)",
            emulator.endpoint
        );
        return None;
    }
    Some(emulator)
}

/// The clip the tests run (see `three_defects`).
fn clip(dir: &Path) -> PathBuf {
    vqa_testkit::three_defects(dir, "localstack")
}

/// Chunks of 2 segments, one at a time: the defects span chunk boundaries.
fn options() -> RunOptions {
    RunOptions {
        chunk_segments: 2,
        concurrency: 1,
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_deployed_through_cloudformation_gives_the_single_process_report() {
    let Some(emulator) = localstack("parity", false) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    // The committed state machine (infra/state-machine.asl.json) runs the default
    // configuration's detectors.
    let config = PipelineConfig::default();
    let started = Instant::now();
    let deployment = emulator.deploy_template(STACK, &["StateMachineType=STANDARD"]);
    eprintln!(
        "parity: stack ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let before = emulator.invocations_of("ConverterFunction", None);

    let run = distributed(&emulator, &deployment, &path, &config, options()).await;
    eprintln!(
        "parity: {} chunks, {} executions in {:.1} s",
        run.chunks, run.executions, run.wall_seconds
    );
    let single = single_process(&path, &config).await;
    assert_eq!(run.report, single);
    assert!(
        run.report.incidents.len() >= 3,
        "the clip's defects were found: {:?}",
        run.report.incidents
    );
    assert!(run.chunks >= 3, "{} chunks", run.chunks);
    assert_eq!(run.executions, run.chunks, "one execution per chunk");
    assert!(run.skipped.is_empty(), "{:?}", run.skipped);
    assert_eq!(
        run.invocations,
        Some(2 * run.chunks + run.segments * run.groups)
    );
    if emulator.is_host_localstack() {
        // The functions CloudFormation made from the template ran the bundles: one converter
        // invocation per chunk.
        assert_eq!(
            emulator.invocations_of("ConverterFunction", None) - before,
            run.chunks as usize
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_function_error_is_caught_by_the_state_machine_and_the_stream_goes_on() {
    let Some(emulator) = localstack("detector error", true) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = PipelineConfig::default();
    let deployment = emulator.deploy_template(STACK, &["StateMachineType=STANDARD"]);
    // The first detector invocation (chunk 0's, chunks running one at a time) fails as on a
    // segment it cannot read (vqa.Failed: retrying cannot help).
    emulator.inject_fault("DetectorFunction", None, 1, "vqa.Failed");
    let before = emulator.invocations_of("DetectorFunction", Some("vqa.Failed"));
    let run = distributed(&emulator, &deployment, &path, &config, options()).await;
    let single = single_process(&path, &config).await;

    assert_eq!(
        emulator.invocations_of("DetectorFunction", Some("vqa.Failed")) - before,
        1
    );
    // The state machine caught it and recorded the chunk as skipped itself: no rerun.
    assert_eq!(run.executions, run.chunks);
    assert_eq!(run.skipped.len(), 1, "{:?}", run.skipped);
    assert!(run.skipped[0].contains("chunk 0"), "{:?}", run.skipped);
    assert!(!run.report.complete);
    assert_eq!(
        run.report.warnings,
        vec![
            "0.00 s to 2.00 s (chunk 0) could not be analysed: a failure the test injected \
             (vqa.Failed)"
                .to_string()
        ]
    );
    assert_eq!(run.report.coverage.segments, single.coverage.segments - 2);
    // The later chunks' incidents are the single process's after 2 s.
    let after: Vec<_> = single
        .incidents
        .iter()
        .filter(|i| i.start >= 2_000_000)
        .collect();
    assert!(!after.is_empty());
    for incident in after {
        assert!(
            run.report
                .incidents
                .iter()
                .any(|i| (i.kind, i.start, i.end) == (incident.kind, incident.start, incident.end)),
            "{incident:?} is missing from {:?}",
            run.report.incidents
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localstack_stopped_mid_run_fails_naming_it_and_after_a_restart_a_rerun_completes() {
    let Some(emulator) = localstack("restart", true) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = PipelineConfig::default();
    let single = single_process(&path, &config).await;
    let deployment = emulator.deploy_template(STACK, &["StateMachineType=STANDARD"]);
    let sdk = emulator.sdk().await;
    let before = emulator.invocations().len();
    let running = {
        let (path, deployment) = (path.clone(), deployment.clone());
        tokio::spawn(async move {
            let stream = vqa_deploy_ecs::stream_id_for(&path);
            analyze(&sdk, &path, stream, &config, &deployment, options()).await
        })
    };
    // Stop it (SIGKILL, as a crash) once the first execution is under way.
    let deadline = Instant::now() + Duration::from_secs(120);
    while emulator.invocations().len() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(emulator.invocations().len() > before, "no function ran");
    emulator.kill();
    let err = running.await.unwrap().unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&emulator.endpoint), "{text}");
    assert!(!text.contains('\n'), "{text}");

    // Started again on the same port, it has kept nothing: the stack is deployed again and
    // a rerun gives the whole report.
    emulator.restart_localstack();
    let deployment = emulator.deploy_template(STACK, &["StateMachineType=STANDARD"]);
    let config = PipelineConfig::default();
    let run = distributed(&emulator, &deployment, &path, &config, options()).await;
    assert_eq!(run.report, single);
}
