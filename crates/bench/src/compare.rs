//! `vqa bench`: the same input and detectors through each topology in one run, measured
//! side by side and priced (`cost`). Every figure comes from counters of the run: the
//! transports' handoff counters, the executions' histories, the Lambda invocations the
//! emulator logged (or the history's task times on AWS), and this process's own CPU and
//! memory for the single process.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use vqa_core::{HandoffMetrics, PipelineConfig, StreamReport};
use vqa_sfn_client::{analyze, Deployment, DistributedRun, LiveSink, RunOptions};
use vqa_transport_s3::{Encoding, Granularity};

use crate::cost::{ceiling, cost, Cost, Orchestration, PriceTable, Usage};
use crate::BenchError;
use vqa_deploy_ecs::resources::{peak_rss_mb, process_cpu_seconds, reset_peak_rss};
use vqa_deploy_ecs::{open_input, run, stream_id_for, DEFAULT_IN_FLIGHT};

/// One topology or variant to measure.
#[derive(Clone, Debug)]
pub struct Variant {
    pub name: String,
    pub kind: VariantKind,
}

#[derive(Clone, Debug)]
pub enum VariantKind {
    /// One process, in-memory handoff.
    Single,
    /// Detector shards: processes that each decode the stream and run a share of its
    /// detectors (Prime Video's clones of the one process); live runs only.
    Shards(usize),
    /// The deployed state machine, with this handoff layout.
    Distributed {
        state_machine_arn: String,
        granularity: Granularity,
        encoding: Encoding,
    },
}

/// Shards of the `shards` variant.
pub const SHARDS: usize = 2;

/// The variants `vqa bench` knows by name.
pub const VARIANTS: [&str; 6] = [
    "single",
    "shards",
    "standard-segment",
    "standard-frame",
    "express-segment",
    "standard-frame-zstd",
];

impl Variant {
    /// A variant by name; distributed ones need the state machine of their type.
    pub fn named(
        name: &str,
        standard: Option<&str>,
        express: Option<&str>,
    ) -> Result<Variant, String> {
        let distributed = |arn: Option<&str>, flag: &str, g, e| {
            arn.map(|a| VariantKind::Distributed {
                state_machine_arn: a.to_string(),
                granularity: g,
                encoding: e,
            })
            .ok_or_else(|| {
                format!(
                    "variant {name} needs a deployed state machine: pass {flag} (see `vqa deploy`)"
                )
            })
        };
        let (std_flag, exp_flag) = (
            "--state-machine or VQA_STATE_MACHINE_ARN",
            "--express-state-machine or VQA_EXPRESS_STATE_MACHINE_ARN",
        );
        let kind = match name {
            "single" => VariantKind::Single,
            "shards" => VariantKind::Shards(SHARDS),
            "standard-segment" => {
                distributed(standard, std_flag, Granularity::Segment, Encoding::Raw)?
            }
            "standard-frame" => distributed(standard, std_flag, Granularity::Frame, Encoding::Raw)?,
            "standard-frame-zstd" => {
                distributed(standard, std_flag, Granularity::Frame, Encoding::Zstd)?
            }
            "express-segment" => {
                distributed(express, exp_flag, Granularity::Segment, Encoding::Raw)?
            }
            other => {
                return Err(format!(
                    "unknown variant {other:?}: use {}",
                    VARIANTS.join(", ")
                ))
            }
        };
        Ok(Variant {
            name: name.to_string(),
            kind,
        })
    }

    /// The default set: the single process (and, `live`, detector shards), and each
    /// distributed variant whose state machine is configured.
    pub fn defaults(standard: Option<&str>, express: Option<&str>, live: bool) -> Vec<Variant> {
        [
            "single",
            "shards",
            "standard-segment",
            "standard-frame",
            "express-segment",
        ]
        .into_iter()
        .filter(|n| live || *n != "shards")
        .filter_map(|n| Variant::named(n, standard, express).ok())
        .collect()
    }

    fn describe(&self) -> String {
        match &self.kind {
            VariantKind::Single => "one process, in-memory handoff (ECS on Fargate)".into(),
            VariantKind::Shards(n) => format!(
                "{n} detector shards, each decoding the stream and running a share of the detectors (ECS on Fargate)"
            ),
            VariantKind::Distributed {
                granularity,
                encoding,
                ..
            } => format!(
                "Lambda + Step Functions {}, one S3 object per {granularity}, {encoding}",
                if self.name.starts_with("express") {
                    "Express"
                } else {
                    "Standard"
                }
            ),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(values: &[f64]) -> Option<Latency> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Some(Latency {
            mean_ms: v.iter().sum::<f64>() / v.len() as f64,
            p50_ms: v[v.len() / 2],
            max_ms: v[v.len() - 1],
        })
    }
}

/// Lambda usage and where the figures come from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LambdaUsage {
    pub invocations: u64,
    pub billed_seconds: f64,
    pub gb_seconds: f64,
    /// "emulator invocation log" (billed ms and configured memory of each invocation) or
    /// "execution history" (task durations; memory from the templates' defaults).
    pub source: String,
}

/// One topology's measurements and price.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyResult {
    pub name: String,
    pub description: String,
    pub segments: u64,
    pub wall_seconds: f64,
    /// Time per stage: CPU time for the single process (its stages overlap), the state's
    /// wall time for an execution.
    pub stage_seconds: Vec<(String, f64)>,
    /// From a segment's hand-over by the converter to the report including it.
    pub latency: Option<Latency>,
    pub handoff: HandoffMetrics,
    pub state_transitions: Option<u64>,
    /// "execution history" or "state machine definition" (where no history is kept).
    pub transitions_source: Option<String>,
    pub lambda: Option<LambdaUsage>,
    /// CPU time of the single process (every thread, FFmpeg's included).
    pub cpu_seconds: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    pub usage: Usage,
    pub cost: Cost,
    pub cost_per_stream_hour_usd: f64,
    pub cost_per_month_usd: f64,
    pub max_concurrent_streams: Option<u64>,
    pub limited_by: String,
    /// Whether its report equals the single process's (same incidents, same times).
    pub same_report_as_single: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub input: String,
    /// Set when each topology monitored the input as a live stream for this long.
    pub live_seconds: Option<f64>,
    pub media_seconds: f64,
    pub detectors: Vec<String>,
    pub streams: u64,
    pub prices: PricesUsed,
    pub topologies: Vec<TopologyResult>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PricesUsed {
    pub region: String,
    pub collected: String,
    pub source: String,
}

/// What the bench needs besides the input.
pub struct BenchSetup<'a> {
    pub config: &'a PipelineConfig,
    pub variants: Vec<Variant>,
    pub prices: PriceTable,
    pub streams: u64,
    /// Where distributed variants run (buckets; each variant brings its state machine).
    pub deployment: Option<Deployment>,
    pub sdk: Option<aws_config::SdkConfig>,
    /// The emulator's run directory (`VQA_EMULATOR_DIR`), for its Lambda invocation log.
    pub emulator_dir: Option<std::path::PathBuf>,
    /// Live instead of a file: the input replayed as one live stream, paced at real time
    /// and looped, for this many seconds through each topology (`vqa monitor`; the
    /// distributed ones with `--topology distributed` and chunks of `chunk_segments`).
    pub live: Option<LiveSetup>,
}

/// How long, and in what chunks, each topology monitors the live stream.
#[derive(Clone, Copy, Debug)]
pub struct LiveSetup {
    pub seconds: f64,
    pub chunk_segments: u64,
}

/// Called with (variant index, variant count, name) as each starts.
pub type BenchProgress<'a> = &'a (dyn Fn(usize, usize, &str) + Sync);

pub async fn compare(
    path: &Path,
    setup: BenchSetup<'_>,
    progress: Option<BenchProgress<'_>>,
) -> Result<Comparison, BenchError> {
    let mut topologies = Vec::new();
    let mut single_report: Option<StreamReport> = None;
    let mut media_seconds = 0.0;
    let total = setup.variants.len();
    for (i, variant) in setup.variants.iter().enumerate() {
        if let Some(p) = progress {
            p(i, total, &variant.name);
        }
        let (mut result, report) = match (&variant.kind, setup.live) {
            (VariantKind::Single | VariantKind::Shards(_), Some(live)) => {
                let shards = match variant.kind {
                    VariantKind::Shards(n) => crate::live::shard_configs(setup.config, n),
                    _ => vec![setup.config.clone()],
                };
                let (usage, report, samples) =
                    crate::live::monitor_live(path, &shards, live.seconds, None).await?;
                let mut r = blank(variant, usage.usage);
                r.wall_seconds = usage.wall_seconds;
                r.segments = report.coverage.segments;
                r.latency = Latency::of(&samples);
                r.cpu_seconds = Some(r.usage.cpu_seconds);
                r.peak_rss_mb = Some(r.usage.peak_memory_gb * 1024.0);
                (priced(r, &setup), report)
            }
            (
                VariantKind::Distributed {
                    state_machine_arn,
                    granularity,
                    encoding,
                },
                Some(live),
            ) => {
                let (deployment, sdk, mut options) =
                    target(&setup, variant, state_machine_arn, *granularity, *encoding)?;
                options.chunk_segments = live.chunk_segments;
                let failed = |source| BenchError::Variant {
                    variant: variant.name.clone(),
                    source,
                };
                let sink = LiveSink::connect(sdk, &deployment, options)
                    .await
                    .map_err(failed)?;
                let (reader, report, samples) = crate::live::monitor_live(
                    path,
                    std::slice::from_ref(setup.config),
                    live.seconds,
                    Some(sink.clone()),
                )
                .await?;
                let run = sink.account(report, reader.wall_seconds).await;
                let (mut r, report) = measure_distributed(run, &setup, variant);
                // The reader is a Fargate task, and each chunk a PUT of its bytes.
                let counters = sink.counters();
                let u = &mut r.usage;
                u.cpu_seconds = reader.usage.cpu_seconds;
                u.peak_memory_gb = reader.usage.peak_memory_gb;
                u.s3_puts += counters.uploads.load(std::sync::atomic::Ordering::Relaxed);
                r.latency = Latency::of(&samples);
                r.cpu_seconds = Some(u.cpu_seconds);
                r.peak_rss_mb = Some(u.peak_memory_gb * 1024.0);
                (priced(r, &setup), report)
            }
            (VariantKind::Single, None) => measure_single(path, &setup, variant).await?,
            (VariantKind::Shards(_), None) => {
                return Err(BenchError::LiveOnly(variant.name.clone()))
            }
            (
                VariantKind::Distributed {
                    state_machine_arn,
                    granularity,
                    encoding,
                },
                None,
            ) => {
                let (deployment, sdk, options) =
                    target(&setup, variant, state_machine_arn, *granularity, *encoding)?;
                let run = analyze(
                    sdk,
                    path,
                    stream_id_for(path),
                    setup.config,
                    &deployment,
                    options,
                )
                .await
                .map_err(|source| BenchError::Variant {
                    variant: variant.name.clone(),
                    source,
                })?;
                measure_distributed(run, &setup, variant)
            }
        };
        media_seconds = result.usage.stream_seconds;
        match (&single_report, &variant.kind) {
            (None, VariantKind::Single) => single_report = Some(report),
            // Live runs cover what real time let them: not the same stretch of the stream.
            (Some(single), _) if setup.live.is_none() => {
                result.same_report_as_single = Some(*single == report)
            }
            _ => {}
        }
        topologies.push(result);
    }
    Ok(Comparison {
        input: path.display().to_string(),
        live_seconds: setup.live.map(|l| l.seconds),
        media_seconds,
        detectors: setup
            .config
            .detectors
            .iter()
            .map(|d| d.to_string())
            .collect(),
        streams: setup.streams,
        prices: PricesUsed {
            region: setup.prices.region.clone(),
            collected: setup.prices.collected.clone(),
            source: setup.prices.source.clone(),
        },
        topologies,
    })
}

/// Where a distributed variant runs, and with what handoff layout.
fn target<'a>(
    setup: &'a BenchSetup<'_>,
    variant: &Variant,
    state_machine_arn: &str,
    granularity: Granularity,
    encoding: Encoding,
) -> Result<(Deployment, &'a aws_config::SdkConfig, RunOptions), BenchError> {
    let (Some(deployment), Some(sdk)) = (&setup.deployment, &setup.sdk) else {
        return Err(BenchError::NoDeployment(variant.name.clone()));
    };
    let deployment = Deployment {
        state_machine_arn: state_machine_arn.to_string(),
        ..deployment.clone()
    };
    let options = RunOptions {
        granularity,
        encoding,
        ..RunOptions::default()
    };
    Ok((deployment, sdk, options))
}

fn priced(mut result: TopologyResult, setup: &BenchSetup<'_>) -> TopologyResult {
    result.cost = cost(&result.usage, &setup.prices);
    result.cost_per_stream_hour_usd = result.cost.usd_per_stream_hour;
    result.cost_per_month_usd = result.cost.usd_per_month(setup.streams);
    let c = ceiling(&result.usage, &setup.prices);
    result.max_concurrent_streams = c.max_concurrent_streams;
    result.limited_by = c.limited_by;
    result
}

fn blank(variant: &Variant, usage: Usage) -> TopologyResult {
    TopologyResult {
        name: variant.name.clone(),
        description: variant.describe(),
        segments: 0,
        wall_seconds: 0.0,
        stage_seconds: Vec::new(),
        latency: None,
        handoff: HandoffMetrics::default(),
        state_transitions: None,
        transitions_source: None,
        lambda: None,
        cpu_seconds: None,
        peak_rss_mb: None,
        usage,
        cost: Cost {
            items: Vec::new(),
            usd_per_stream_hour: 0.0,
        },
        cost_per_stream_hour_usd: 0.0,
        cost_per_month_usd: 0.0,
        max_concurrent_streams: None,
        limited_by: String::new(),
        same_report_as_single: None,
    }
}

async fn measure_single(
    path: &Path,
    setup: &BenchSetup<'_>,
    variant: &Variant,
) -> Result<(TopologyResult, StreamReport), BenchError> {
    let failed = |e: &dyn std::fmt::Display| BenchError::Input {
        input: path.display().to_string(),
        reason: e.to_string(),
    };
    let stream = stream_id_for(path);
    let converter = open_input(path, stream.clone(), setup.config).map_err(|e| failed(&e))?;
    reset_peak_rss();
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let analysis = run(
        converter,
        setup.config,
        stream,
        DEFAULT_IN_FLIGHT,
        None,
        None,
    )
    .await
    .map_err(|e| failed(&e))?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    let rss = peak_rss_mb();
    let s = &analysis.stats;
    let usage = Usage {
        orchestration: Orchestration::SingleProcess,
        stream_seconds: analysis.report.coverage.analysed as f64 / 1e6,
        cpu_seconds: cpu,
        peak_memory_gb: rss / 1024.0,
        ..Usage::default()
    };
    let mut r = blank(variant, usage);
    r.segments = s.segments;
    r.wall_seconds = wall;
    r.stage_seconds = vec![
        ("convert".into(), s.convert_seconds),
        ("detect".into(), s.detect_seconds),
        ("aggregate".into(), s.aggregate_seconds),
    ];
    r.latency = Latency::of(&s.latencies_ms);
    r.handoff = s.handoff;
    r.cpu_seconds = Some(cpu);
    r.peak_rss_mb = Some(rss);
    Ok((priced(r, setup), analysis.report))
}

/// Lambda invocations in the emulator's log that ran within the execution's window.
fn emulator_lambda(dir: &Path, window: (f64, f64)) -> Option<LambdaUsage> {
    let text = std::fs::read_to_string(dir.join("invocations.jsonl")).ok()?;
    let mut usage = LambdaUsage {
        source: "emulator invocation log".into(),
        ..LambdaUsage::default()
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let start = v.get("start").and_then(|s| s.as_f64()).unwrap_or(0.0);
        // History timestamps are whole milliseconds: allow that much either side.
        if start + 0.001 < window.0 || start > window.1 + 0.001 {
            continue;
        }
        let billed = v.get("billed_ms").and_then(|b| b.as_f64()).unwrap_or(0.0) / 1000.0;
        let memory = v.get("memory_mb").and_then(|m| m.as_f64()).unwrap_or(0.0);
        usage.invocations += 1;
        usage.billed_seconds += billed;
        usage.gb_seconds += billed * memory / 1024.0;
    }
    (usage.invocations > 0).then_some(usage)
}

fn measure_distributed(
    run: DistributedRun,
    setup: &BenchSetup<'_>,
    variant: &Variant,
) -> (TopologyResult, StreamReport) {
    // From the histories, unless the emulator logged what Lambda billed.
    let mut usage = run.usage();
    let lambda = setup
        .emulator_dir
        .as_deref()
        .zip(run.window)
        .and_then(|(dir, window)| emulator_lambda(dir, window))
        .unwrap_or_else(|| LambdaUsage {
            invocations: run.invocations.unwrap_or(run.tasks.len() as u64),
            billed_seconds: usage.lambda_seconds,
            gb_seconds: usage.lambda_gb_seconds,
            source: "execution history".into(),
        });
    let (transitions, source) = match run.transitions {
        Some(n) => (n, "execution history"),
        None => (run.transitions_from_definition, "state machine definition"),
    };
    let h = run.handoff;
    let latency_seconds = run.latencies_ms.iter().fold(0.0, |a, b| a + b) / 1000.0;
    let segments = run.segments.max(1) as f64;
    usage.executions = run.executions.max(1);
    if usage.execution_seconds.is_empty() {
        usage.execution_seconds = vec![run.wall_seconds];
    }
    usage.lambda_invocations = lambda.invocations;
    usage.lambda_gb_seconds = lambda.gb_seconds;
    usage.lambda_seconds = lambda.billed_seconds;
    // Each segment's objects stay until the report is written: bytes stored per segment
    // (logical size; compressed objects are smaller) × each segment's measured latency.
    usage.s3_byte_seconds = h.payload_bytes_put as f64 / segments * latency_seconds;
    let mut r = blank(variant, usage);
    r.segments = run.segments;
    r.wall_seconds = run.wall_seconds;
    r.stage_seconds = run.stage_seconds.clone();
    r.latency = Latency::of(&run.latencies_ms);
    r.handoff = h;
    r.state_transitions = Some(transitions);
    r.transitions_source = Some(source.to_string());
    r.lambda = Some(lambda);
    (priced(r, setup), run.report)
}
