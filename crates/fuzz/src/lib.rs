//! Structured fuzzing of what vqa parses that another process wrote (issue 17).
//!
//! One [`Target`] per family of parsers, each a function of arbitrary bytes that must not
//! panic, hang or allocate without bound, and that checks what it can of what it parsed
//! (a value parsed and written again reads back the same). [`seeds`] gives each target
//! valid inputs made by vqa's own encoders, so a fuzzer starts deep.
//!
//! Two drivers: the coverage-guided campaign (`scripts/fuzz-structured.sh`: libFuzzer on the
//! stable toolchain, the harness in `libfuzzer/`) and, under `cargo test`, a short run of
//! every target over its seeds, the kept regressions (`regressions/`) and a few thousand
//! mutations of them ([`Mutator`]). docs/fuzzing.md says how to run both.

use std::sync::OnceLock;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use vqa_core::aggregate::AggregatorState;
use vqa_core::chunk::ChunkCursor;
use vqa_core::notify::Notification;
use vqa_core::transport::ArtifactName;
use vqa_core::{wire, Incident, PipelineConfig, StreamReport};
use vqa_deploy_ecs::monitor::{MonitorSettings, StreamList};
use vqa_deploy_lambda::packager::{stream_name, PackagerKey, PackagerObject, PackagerRun};
use vqa_deploy_lambda::payload::{
    AggregateTask, Aggregated, Converted, DetectTask, Detected, Job, TaskError,
};

mod mutate;
mod seeds;

pub use mutate::Mutator;
pub use seeds::seeds;

/// The most a fuzzed zstd object may decode to: small, so that a campaign's executions stay
/// fast; the production bound ([`vqa_transport_s3::MAX_OBJECT_BYTES`]) is the same code.
pub const FUZZ_OBJECT_LIMIT: u64 = 8 << 20;

/// A family of parsers, fuzzed as one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The wire form (`core::wire`) as stored: segments, findings, per-picture manifests
    /// and the state store's objects (aggregator state, its batches of closed incidents,
    /// the chunk cursor, a packager's run).
    Wire,
    /// S3 objects as read (`transport-s3`): zstd frames, decompressed within a bound, then
    /// the wire form.
    S3Object,
    /// Step Functions payloads: each Lambda function's input (the converter's job or a
    /// packager's object, a detector task, the aggregator's task), each task's output and a
    /// Catch's error, as the client reads them back.
    SfnPayload,
    /// The pipeline configuration (`--config`, TOML or JSON) and a price table
    /// (`vqa bench --prices`).
    Config,
    /// The monitor's stream list (its file, and the body of `PUT /streams` on the
    /// `--control` endpoint) and the router's shards file.
    StreamList,
    /// An incident notification as the router's `POST /notify` reads it.
    Notification,
    /// Stream reports as the router reads its shards' (`GET /reports/ID`) and merges them,
    /// and as the distributed client reads the report the last chunk wrote. Parts are
    /// separated by a 0xFF byte (never in JSON text).
    StreamReport,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Wire,
        Target::S3Object,
        Target::SfnPayload,
        Target::Config,
        Target::StreamList,
        Target::Notification,
        Target::StreamReport,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Wire => "wire",
            Target::S3Object => "s3_object",
            Target::SfnPayload => "sfn_payload",
            Target::Config => "config",
            Target::StreamList => "stream_list",
            Target::Notification => "notification",
            Target::StreamReport => "stream_report",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs the target on one input. A panic is a finding.
    pub fn run(self, data: &[u8]) {
        match self {
            Target::Wire => wire_object(data),
            Target::S3Object => s3_object(data),
            Target::SfnPayload => text(data, sfn_payload),
            Target::Config => text(data, config),
            Target::StreamList => text(data, stream_list),
            Target::Notification => text(data, notification),
            Target::StreamReport => stream_reports(data),
        }
    }
}

/// Text targets see valid UTF-8 only, as the callers (files read to a `String`, HTTP bodies
/// read with `read_to_string`) refuse anything else before parsing.
fn text(data: &[u8], parse: fn(&str)) {
    if let Ok(text) = std::str::from_utf8(data) {
        parse(text);
    }
}

const KEY: &str = "fuzz/object";

fn wire_object(data: &[u8]) {
    for name in [ArtifactName::Segment, ArtifactName::Findings] {
        if let Ok(artifact) = wire::decode_artifact(KEY, name, data) {
            let again = wire::encode_artifact(&artifact);
            let back = wire::decode_artifact(KEY, name, &again)
                .unwrap_or_else(|e| panic!("a decoded {name:?} encodes to what fails: {e}"));
            assert_eq!(
                wire::encode_artifact(&back),
                again,
                "a {name:?} encodes alike after a round trip"
            );
        }
    }
    if wire::is_manifest(data) {
        if let Ok((segment, planes)) = wire::manifest_planes(KEY, data) {
            // The pictures as a transport would fetch them: here pieces of the input, so
            // some fit their frames and some do not.
            let pieces = (0..planes)
                .map(|i| Bytes::copy_from_slice(&data[..data.len().min(i * 7)]))
                .collect();
            let _ = wire::join_segment(KEY, segment, pieces);
        }
    }
    if let Some(mut state) = state_round_trip::<AggregatorState>(data) {
        let batches = state.batches();
        let _ = state.take_batch();
        let _ = (batches, state.incidents().len(), state.analysed());
    }
    state_round_trip::<Vec<Incident>>(data);
    if let Some(mut cursor) = state_round_trip::<ChunkCursor>(data) {
        let _ = cursor.turn(&vqa_core::chunk::Chunk::WHOLE);
        cursor.advance(1, &Default::default(), 1);
    }
    if let Some(run) = state_round_trip::<PackagerRun>(data) {
        // The prepare step's use of a run: the windows complete at a segment's end.
        for end in [0, 6_000_000, i64::MAX, i64::MIN] {
            let _ = run.windows_until(end, 1_000_000);
            let _ = run.stream("news");
        }
    }
}

/// Decodes state of type `T`; if it decodes, checks that it encodes to what decodes alike.
fn state_round_trip<T: Serialize + DeserializeOwned>(data: &[u8]) -> Option<T> {
    let value: T = wire::decode_state(KEY, data).ok()?;
    let again = wire::encode_state(&value);
    let back: T = wire::decode_state(KEY, &again).unwrap_or_else(|e| {
        panic!(
            "a decoded {} encodes to what fails: {e}",
            std::any::type_name::<T>()
        )
    });
    assert_eq!(wire::encode_state(&back), again, "state encodes alike");
    Some(value)
}

fn s3_object(data: &[u8]) {
    let object = Bytes::copy_from_slice(data);
    if let Ok(decoded) = vqa_transport_s3::decode_object_within(KEY, object, FUZZ_OBJECT_LIMIT) {
        assert!(decoded.len() as u64 <= FUZZ_OBJECT_LIMIT, "the bound holds");
        if data.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            wire_object(&decoded);
        }
    }
}

/// Parses `text` as a `T`; if it parses, checks that it serialises to JSON that parses to
/// the same.
fn json_round_trip<T: Serialize + DeserializeOwned>(text: &str) -> Option<T> {
    let value: T = serde_json::from_str(text).ok()?;
    let json = |v: &T| {
        serde_json::to_string(v).unwrap_or_else(|e| {
            panic!(
                "a parsed {} does not serialise: {e}",
                std::any::type_name::<T>()
            )
        })
    };
    let again = json(&value);
    let back: T = serde_json::from_str(&again).unwrap_or_else(|e| {
        panic!(
            "a parsed {} serialises to what fails: {e}: {again}",
            std::any::type_name::<T>()
        )
    });
    assert_eq!(json(&back), again, "JSON round trip");
    Some(value)
}

/// The converter function's event: a packager's object or an execution's job (as its
/// binary, `vqa-converter`, reads it).
#[derive(serde::Deserialize, Serialize)]
#[serde(untagged)]
enum ConverterEvent {
    Packager { packager: Box<PackagerObject> },
    Job(Box<Job>),
}

fn sfn_payload(text: &str) {
    match json_round_trip::<ConverterEvent>(text) {
        Some(ConverterEvent::Packager { packager }) => packager_object(&packager),
        Some(ConverterEvent::Job(job)) => {
            let length = job.config.segment_length();
            let _ = (job.chunk.start(length), job.chunk.end(length));
        }
        None => {}
    }
    json_round_trip::<DetectTask>(text);
    if let Some(task) = json_round_trip::<AggregateTask>(text) {
        if let Some(skip) = &task.skip {
            let _ = skip.message();
        }
    }
    json_round_trip::<Converted>(text);
    json_round_trip::<Detected>(text);
    json_round_trip::<Aggregated>(text);
    if let Some(error) = json_round_trip::<TaskError>(text) {
        let _ = error.message();
    }
}

/// What the prepare step reads of a packager's object before any I/O.
fn packager_object(object: &PackagerObject) {
    match PackagerKey::parse(&object.key, &object.prefix) {
        Ok(PackagerKey::Segment { folder, seq, name }) => {
            let _ = name.key(&folder, seq.saturating_sub(1));
            let _ = stream_name(&folder, &object.prefix);
        }
        Ok(PackagerKey::End { folder }) => {
            let _ = stream_name(&folder, &object.prefix);
        }
        Err(_) => {}
    }
}

fn config(text: &str) {
    if let Ok(config) = PipelineConfig::from_toml(text) {
        config_round_trip(&config);
    }
    if let Ok(config) = PipelineConfig::from_toml_profiled(
        text,
        Some(vqa_core::config::Profile::Broadcast),
        vqa_core::config::Profile::FileQc,
    ) {
        config_round_trip(&config);
    }
    if let Ok(config) = PipelineConfig::from_json(text) {
        config_round_trip(&config);
    }
    let _ = vqa_core::cost::PriceTable::parse(text);
}

/// A configuration that parsed validates, prints as TOML (`vqa config`) and as JSON (what
/// a job carries), and reads back from either as the same.
fn config_round_trip(config: &PipelineConfig) {
    config
        .validate()
        .unwrap_or_else(|e| panic!("a parsed configuration fails validation: {e}"));
    let toml = config.to_toml();
    let back = PipelineConfig::from_toml(&toml)
        .unwrap_or_else(|e| panic!("a parsed configuration prints what fails: {e}\n{toml}"));
    assert_eq!(back.to_toml(), toml, "TOML round trip");
    let json = serde_json::to_string(config).expect("a configuration serialises");
    let back = PipelineConfig::from_json(&json)
        .unwrap_or_else(|e| panic!("a parsed configuration serialises to what fails: {e}\n{json}"));
    assert_eq!(back.to_toml(), toml, "JSON round trip");
}

fn base() -> &'static (PipelineConfig, MonitorSettings) {
    static BASE: OnceLock<(PipelineConfig, MonitorSettings)> = OnceLock::new();
    BASE.get_or_init(|| (PipelineConfig::default(), MonitorSettings::default()))
}

fn stream_list(text: &str) {
    let (config, settings) = base();
    let _ = StreamList::parse(text, config);
    let _ = StreamList::parse_under(text, config, settings);
    let _ = vqa_deploy_ecs::router::parse_shards(text);
}

fn notification(text: &str) {
    if let Some(n) = json_round_trip::<Notification>(text) {
        let line = n.to_json_line();
        let back: Notification = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a notification's line does not parse: {e}: {line}"));
        assert_eq!(back.to_json_line(), line, "notification line round trip");
    }
}

fn stream_reports(data: &[u8]) {
    let parts: Vec<StreamReport> = data
        .split(|&b| b == 0xFF)
        .take(8)
        .filter_map(|part| std::str::from_utf8(part).ok())
        .filter_map(json_round_trip::<StreamReport>)
        .collect();
    if let Some(merged) = StreamReport::merge_shards(parts) {
        let json = serde_json::to_string(&merged).expect("a merged report serialises");
        let back: StreamReport = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("a merged report serialises to what fails: {e}"));
        assert_eq!(
            serde_json::to_string(&back).expect("a report serialises"),
            json,
            "merged report round trip"
        );
    }
}
