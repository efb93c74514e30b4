//! The distributed topology on inputs cut into chunks, one execution each: a long file gives
//! the single process's report; chunks whose executions finish out of order, a crashed
//! chunk run again, change nothing; a chunk that cannot be analysed is reported and the
//! stream goes on. Incidents are notified as the executions end, as the single process
//! notifies them.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{distributed, four_detectors, single_process};
use vqa_core::{IncidentEvent, PipelineConfig, StreamId, StreamReport};
use vqa_deploy_lambda::state_machine::MachineType;
use vqa_sfn_client::RunOptions;
use vqa_testkit::emulator::Emulator;
use vqa_testkit::{make_clip, ClipSpec, Defect};

/// An 8 s clip whose defects span the boundaries of 2-segment chunks.
fn clip(dir: &Path) -> PathBuf {
    let spec = ClipSpec {
        duration: 8.0,
        defects: vec![
            Defect::freeze(0.8, 2.6),
            Defect::black(3.4, 6.3),
            Defect::silence(5.5, 7.2),
        ],
        ..ClipSpec::default()
    };
    make_clip(dir, "chunked", &spec).expect("make clip").path
}

/// The single process's report and the incident events it notified, in order.
async fn single_process_events(
    path: &Path,
    config: &PipelineConfig,
) -> (StreamReport, Vec<IncidentEvent>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let stream = vqa_deploy_ecs::stream_id_for(path);
    let converter = vqa_deploy_ecs::open_input(path, stream.clone(), config).expect("open");
    let analysis = vqa_deploy_ecs::run(
        converter,
        config,
        stream,
        vqa_deploy_ecs::DEFAULT_IN_FLIGHT,
        None,
        Some(Box::new(move |_, e| sink.lock().unwrap().push(e.clone()))),
    )
    .await
    .expect("single-process analysis");
    let events = seen.lock().unwrap().clone();
    (analysis.report, events)
}

/// Options that collect the run's incident events.
fn collecting(options: RunOptions) -> (RunOptions, Arc<Mutex<Vec<IncidentEvent>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options = RunOptions {
        events: Some(Arc::new(move |_: &StreamId, e: &IncidentEvent| {
            sink.lock().unwrap().push(e.clone())
        })),
        ..options
    };
    (options, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_finishing_out_of_order_and_a_crashed_chunk_run_again_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = four_detectors();
    // An emulator of its own: the crash asked for must not meet another test's chunk 0.
    let emulator = Emulator::start_on(0);
    let deployment = emulator
        .deploy("out-of-order", &config, "all", MachineType::Standard)
        .await;
    // Chunk 0's converter crashes once (AWS's Runtime.ExitError, which the state machine
    // does not retry): its execution fails and the client runs it again, while the later
    // chunks, all started at once, are converted and detected first and wait for it.
    emulator.inject_crash("converter", Some(0), 1);
    let (options, events) = collecting(RunOptions {
        chunk_segments: 2,
        concurrency: 8,
        ..RunOptions::default()
    });
    let run = distributed(&emulator, &deployment, &path, &config, options).await;
    let (single, single_events) = single_process_events(&path, &config).await;
    assert_eq!(run.report, single);
    // The incidents were notified as the single process notifies them: the same events in
    // the same order, chunk by chunk as the executions ended.
    assert_eq!(*events.lock().unwrap(), single_events);
    assert!(single_events.len() >= 6, "{single_events:?}");
    assert!(
        run.report.incidents.len() >= 3,
        "{:?}",
        run.report.incidents
    );
    assert!(run.chunks >= 4, "{} chunks", run.chunks);
    assert_eq!(run.executions, run.chunks + 1, "chunk 0 ran twice");
    assert!(run.skipped.is_empty(), "{:?}", run.skipped);
    assert_eq!(
        emulator.invocations_of("converter", Some("Runtime.ExitError")),
        1
    );
    // Later chunks' aggregators ran before chunk 0 was applied, and waited for it.
    assert!(
        emulator.invocations_of("aggregator", Some("vqa.Waiting")) > 0,
        "no chunk finished out of order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_cannot_be_analysed_is_reported_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path());
    let config = four_detectors();
    let emulator = Emulator::start_on(0);
    let deployment = emulator
        .deploy("damaged", &config, "all", MachineType::Standard)
        .await;
    // Chunk 1's converter fails as on damaged input (vqa.Failed: retrying cannot help).
    emulator.inject_fault("converter", Some(1), 1, "vqa.Failed");
    let options = RunOptions {
        chunk_segments: 2,
        concurrency: 2,
        ..RunOptions::default()
    };
    let run = distributed(&emulator, &deployment, &path, &config, options).await;
    let single = single_process(&path, &config).await;

    // The state machine recorded it itself: no rerun.
    assert_eq!(run.executions, run.chunks);
    assert_eq!(run.skipped.len(), 1, "{:?}", run.skipped);
    assert!(run.skipped[0].contains("chunk 1"), "{:?}", run.skipped);
    let report = &run.report;
    assert!(!report.complete);
    assert_eq!(
        report.warnings,
        vec![
            "2.00 s to 4.00 s (chunk 1) could not be analysed: a failure the test injected \
             (vqa.Failed)"
                .to_string()
        ]
    );
    assert_eq!(report.coverage.segments, single.coverage.segments - 2);
    // The other chunks' incidents are all there, as the single process found them outside
    // 2–4 s (the silence among them), numbered by the segments analysed.
    let outside: Vec<_> = single
        .incidents
        .iter()
        .filter(|i| i.end <= 2_000_000 || i.start >= 4_000_000)
        .collect();
    assert!(!outside.is_empty());
    for incident in outside {
        assert!(
            report.incidents.iter().any(|i| {
                (i.kind, i.channel, i.start, i.end, &i.evidence)
                    == (
                        incident.kind,
                        incident.channel,
                        incident.start,
                        incident.end,
                        &incident.evidence,
                    )
            }),
            "{incident:?} missing from {:?}",
            report.incidents
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_minute_file_in_chunks_gives_the_single_process_report() {
    let dir = tempfile::tempdir().unwrap();
    // Small pictures keep it quick; defects straddle the 60-segment chunks' boundaries.
    let spec = ClipSpec {
        duration: 1200.0,
        width: 256,
        height: 144,
        gop: Some(50),
        defects: vec![
            Defect::freeze(58.5, 62.0),
            Defect::black(599.0, 601.5),
            Defect::silence(1079.0, 1082.0),
        ],
        ..ClipSpec::default()
    };
    let path = make_clip(dir.path(), "long", &spec)
        .expect("make clip")
        .path;
    let config = PipelineConfig::default();
    let emulator = Emulator::shared();
    let deployment = emulator
        .deploy("long", &config, "all", MachineType::Standard)
        .await;

    let t = Instant::now();
    let single = single_process(&path, &config).await;
    let single_seconds = t.elapsed().as_secs_f64();
    let run = distributed(emulator, &deployment, &path, &config, RunOptions::default()).await;
    eprintln!(
        "20-minute file: single process {single_seconds:.1} s; distributed {:.1} s in {} \
         chunks, {} executions, {:?} state transitions ({} retries), {:?} Lambda invocations, {} S3 \
         requests, {:.1} MB moved; input {:.1} MB read in {} ranged GETs ({:.1} MB)",
        run.wall_seconds,
        run.chunks,
        run.executions,
        run.transitions,
        run.retries,
        run.invocations,
        run.handoff.requests(),
        run.handoff.copied_bytes as f64 / 1e6,
        std::fs::metadata(&path).map_or(0, |m| m.len()) as f64 / 1e6,
        run.input_reads,
        run.input_bytes as f64 / 1e6
    );
    assert_eq!(run.chunks, 20);
    assert_eq!(run.report, single);
    // Each chunk's converter reads its own part of the input (and the container's index),
    // not the whole file: the input is read about once over all chunks.
    let size = std::fs::metadata(&path).expect("the clip").len();
    assert!(
        run.input_bytes < 2 * size,
        "{} bytes read for a {size}-byte input",
        run.input_bytes
    );
    assert_eq!(run.report.coverage.segments, 1200);
    for kind in ["freeze", "black", "silence"] {
        assert!(
            single.incidents.iter().any(|i| i.kind.to_string() == kind),
            "{kind}: {:?}",
            single.incidents
        );
    }
}
