//! The Step Functions state machine, generated from the same pipeline configuration the
//! single-process runner reads: converter, then every segment's detector groups in parallel
//! (a Map over segments, a Parallel branch per group), then the aggregator. Every task has a
//! Retry (Lambda service faults, and vqa's own "store unreachable" error) and a Catch that
//! ends the execution in a Fail state carrying the task's error.
//!
//! Function ARNs are the placeholders `${ConverterFunctionArn}`, `${DetectorFunctionArn}`
//! and `${AggregatorFunctionArn}`: CloudFormation's `DefinitionSubstitutions` fill them
//! (`infra/distributed.yaml`), and so does [`substitute`] when vqa deploys it itself.

use serde_json::{json, Value};
use vqa_core::{DetectorName, PipelineConfig};

use crate::handlers::{PERMANENT_ERROR, TRANSIENT_ERROR, WAITING_ERROR};

pub const CONVERTER_ARN: &str = "${ConverterFunctionArn}";
pub const DETECTOR_ARN: &str = "${DetectorFunctionArn}";
pub const AGGREGATOR_ARN: &str = "${AggregatorFunctionArn}";

/// Step Functions' limit on the events in a Standard execution's history.
pub const STANDARD_HISTORY_LIMIT: u64 = 25_000;

pub use vqa_core::topology::MachineType;

/// How detectors are split into parallel branches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectorGroups(pub Vec<Vec<DetectorName>>);

/// A detector-groups spec that cannot be used (retrying cannot help: fix the spec).
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error(transparent)]
    UnknownDetector(#[from] vqa_core::ConfigError),
    #[error("detector groups {spec:?} name {named}; the configuration enables {enabled}: every enabled detector must be in exactly one group")]
    NotAPartition {
        spec: String,
        named: String,
        enabled: String,
    },
    #[error("detector groups {0:?}: a group is empty")]
    EmptyGroup(String),
}

impl DetectorGroups {
    /// From a spec: `each` (one branch per detector: the original design), `all` (one
    /// branch), or explicit groups such as `freeze,black;silence,loudness`. Every enabled
    /// detector must be in exactly one group.
    pub fn parse(spec: &str, config: &PipelineConfig) -> Result<Self, GroupsError> {
        let enabled = &config.detectors;
        let groups: Vec<Vec<DetectorName>> = match spec.trim() {
            "each" => enabled.iter().map(|d| vec![*d]).collect(),
            "all" => vec![enabled.clone()],
            explicit => explicit
                .split(';')
                .filter(|g| !g.trim().is_empty())
                .map(|g| {
                    g.split(',')
                        .map(|d| d.parse::<DetectorName>())
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<_, _>>()?,
        };
        let mut seen: Vec<DetectorName> = groups.iter().flatten().copied().collect();
        seen.sort();
        let mut want = enabled.clone();
        want.sort();
        if seen != want {
            let names =
                |v: &[DetectorName]| v.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(",");
            return Err(GroupsError::NotAPartition {
                spec: spec.to_string(),
                named: names(&seen),
                enabled: names(&want),
            });
        }
        if groups.iter().any(Vec::is_empty) || groups.is_empty() {
            return Err(GroupsError::EmptyGroup(spec.to_string()));
        }
        Ok(DetectorGroups(groups))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn branch_name(group: &[DetectorName]) -> String {
        let names: Vec<&str> = group.iter().map(|d| d.as_str()).collect();
        format!("Detect {}", names.join(" "))
    }
}

/// The default grouping: one branch per detector, as the original design.
pub const DEFAULT_GROUPS: &str = "each";
/// The default Map concurrency: segments whose detectors run at once.
pub const DEFAULT_MAP_CONCURRENCY: u32 = 10;

/// Everything the definition depends on.
#[derive(Clone, Debug)]
pub struct MachineOptions {
    pub groups: DetectorGroups,
    /// Segments whose detectors run at once (Map's MaxConcurrency).
    pub map_concurrency: u32,
}

fn retry() -> Value {
    json!([
        {
            "ErrorEquals": [
                "Lambda.ServiceException",
                "Lambda.AWSLambdaException",
                "Lambda.SdkClientException",
                "Lambda.TooManyRequestsException"
            ],
            "IntervalSeconds": 1,
            "MaxAttempts": 4,
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL"
        },
        {
            "ErrorEquals": [TRANSIENT_ERROR],
            "IntervalSeconds": 5,
            "MaxAttempts": 3,
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL"
        }
    ])
}

/// The Retry of a task that may wait (`vqa.Waiting`) — the aggregator while earlier chunks
/// of its stream are not applied yet, a packager's segment while its run's first is not
/// prepared yet: as every task's, and while it waits, after 2, 4, then every 8 seconds, for up to an hour (each
/// wait is an invocation and, in a Standard execution, a state transition).
fn aggregator_retry() -> Value {
    let mut retry = retry();
    if let Some(list) = retry.as_array_mut() {
        list.push(json!({
            "ErrorEquals": [WAITING_ERROR],
            "IntervalSeconds": 2,
            "MaxAttempts": WAITING_ATTEMPTS,
            "BackoffRate": 2.0,
            "MaxDelaySeconds": 8,
            "JitterStrategy": "FULL"
        }));
    }
    retry
}

/// Attempts of an aggregator waiting for earlier chunks: about an hour at 8 s apart.
pub const WAITING_ATTEMPTS: u32 = 450;

fn catch(next: &str) -> Value {
    json!([{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": next }])
}

/// A chunk that cannot be analysed (a permanent failure of its converter or a detector) is
/// recorded as such by the aggregator's skip, so the stream's later chunks go on.
fn catch_damaged() -> Value {
    json!([
        { "ErrorEquals": [PERMANENT_ERROR], "ResultPath": "$.skip", "Next": "Skip" },
        { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed" }
    ])
}

fn fail() -> Value {
    json!({ "Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause" })
}

fn invoke(function: &str, payload: Value, result_selector: Value) -> Value {
    json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": { "FunctionName": function, "Payload": payload },
        "ResultSelector": result_selector,
        "Retry": retry(),
    })
}

/// The state machine definition (Amazon States Language) with ARN placeholders.
pub fn definition(options: &MachineOptions) -> Value {
    let mut convert = invoke(
        CONVERTER_ARN,
        json!({
            "stream.$": "$.stream",
            "input.$": "$.input",
            "input_name.$": "$.input_name",
            "config.$": "$.config",
            "transport.$": "$.transport",
            "results.$": "$.results",
            "chunk.$": "$.chunk",
            "live.$": "$.live",
            "preroll.$": "$.preroll"
        }),
        json!({
            "segments.$": "$.Payload.segments",
            "summary.$": "$.Payload.summary",
            "decode_errors.$": "$.Payload.decode_errors"
        }),
    );
    convert["ResultPath"] = json!("$.converted");
    convert["Catch"] = catch_damaged();
    convert["Next"] = json!("Detect");

    // An object a packager created (`crate::packager`): the converter makes it a chunk of
    // its stream, whose job replaces the execution's input.
    let job_fields = [
        "stream",
        "input",
        "input_name",
        "config",
        "transport",
        "results",
        "chunk",
        "live",
        "preroll",
    ];
    let mut prepare = invoke(
        CONVERTER_ARN,
        json!({ "packager.$": "$.packager" }),
        Value::Object(
            job_fields
                .iter()
                .map(|f| (format!("{f}.$"), json!(format!("$.Payload.{f}"))))
                .collect(),
        ),
    );
    prepare["ResultPath"] = json!("$");
    prepare["Retry"] = aggregator_retry();
    prepare["Catch"] = catch("Failed");
    prepare["Next"] = json!("Convert");

    let branches: Vec<Value> = options
        .groups
        .0
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let name = DetectorGroups::branch_name(group);
            let mut task = invoke(
                DETECTOR_ARN,
                json!({
                    "segment.$": "$.segment",
                    "group": g,
                    "detectors": group.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                    "config.$": "$.config",
                    "transport.$": "$.transport"
                }),
                json!({ "findings.$": "$.Payload.findings" }),
            );
            task["Catch"] = catch("Detector failed");
            task["End"] = json!(true);
            json!({
                "StartAt": name,
                "States": { name: task, "Detector failed": fail() }
            })
        })
        .collect();

    let detect = json!({
        "Type": "Map",
        "ItemsPath": "$.converted.segments",
        "MaxConcurrency": options.map_concurrency,
        "ItemSelector": {
            "segment.$": "$$.Map.Item.Value",
            "config.$": "$.config",
            "transport.$": "$.transport"
        },
        "ItemProcessor": {
            "ProcessorConfig": { "Mode": "INLINE" },
            "StartAt": "Detectors",
            "States": {
                "Detectors": { "Type": "Parallel", "Branches": branches, "ResultPath": null, "End": true }
            }
        },
        "ResultPath": null,
        "Catch": catch_damaged(),
        "Next": "Aggregate"
    });

    let mut aggregate = invoke(
        AGGREGATOR_ARN,
        json!({
            "stream.$": "$.stream",
            "segments.$": "$.converted.segments",
            "groups": options.groups.len(),
            "summary.$": "$.converted.summary",
            "decode_errors.$": "$.converted.decode_errors",
            "config.$": "$.config",
            "transport.$": "$.transport",
            "results.$": "$.results",
            "chunk.$": "$.chunk",
            "live.$": "$.live"
        }),
        aggregated(),
    );
    aggregate["Retry"] = aggregator_retry();
    aggregate["Catch"] = catch("Failed");
    aggregate["End"] = json!(true);

    let mut skip = invoke(
        AGGREGATOR_ARN,
        json!({
            "stream.$": "$.stream",
            "groups": options.groups.len(),
            "config.$": "$.config",
            "transport.$": "$.transport",
            "results.$": "$.results",
            "chunk.$": "$.chunk",
            "live.$": "$.live",
            "skip.$": "$.skip"
        }),
        aggregated(),
    );
    skip["Retry"] = aggregator_retry();
    skip["ResultPath"] = json!("$.skipped");
    skip["Catch"] = catch("Failed");
    skip["Next"] = json!("Skipped");

    json!({
        "Comment": "vqa: one chunk of a stream: converter, then each segment's detector groups in parallel, then the aggregator, which applies chunks in the stream's order (generated by `vqa state-machine`)",
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [
                    { "Variable": "$.skip", "IsPresent": true, "Next": "Skip" },
                    { "Variable": "$.packager", "IsPresent": true, "Next": "Prepare" }
                ],
                "Default": "Convert"
            },
            "Prepare": prepare,
            "Convert": convert,
            "Detect": detect,
            "Aggregate": aggregate,
            "Skip": skip,
            "Skipped": {
                "Type": "Fail",
                "Error": SKIPPED_ERROR,
                "CausePath": "$.skip.Cause"
            },
            "Failed": fail()
        }
    })
}

/// What the aggregator's output keeps in the execution's output.
fn aggregated() -> Value {
    json!({
        "report.$": "$.Payload.report",
        "finished.$": "$.Payload.finished",
        "incidents.$": "$.Payload.incidents",
        "segments.$": "$.Payload.segments",
        "events.$": "$.Payload.events"
    })
}

/// The error an execution ends with when its chunk could not be analysed and was recorded
/// as such in the stream's report.
pub const SKIPPED_ERROR: &str = "vqa.ChunkSkipped";

/// The definition with the functions' ARNs in place of the placeholders.
pub fn substitute(definition: &str, converter: &str, detector: &str, aggregator: &str) -> String {
    definition
        .replace(CONVERTER_ARN, converter)
        .replace(DETECTOR_ARN, detector)
        .replace(AGGREGATOR_ARN, aggregator)
}

/// The detector groups a deployed definition runs (read back from its branches), so a
/// client can tell whether its configuration matches the deployment.
pub fn deployed_groups(definition: &Value) -> Option<Vec<Vec<String>>> {
    let branches = definition
        .pointer("/States/Detect/ItemProcessor/States/Detectors/Branches")?
        .as_array()?;
    branches
        .iter()
        .map(|b| {
            let start = b.get("StartAt")?.as_str()?;
            let names = b
                .pointer(&format!("/States/{start}/Parameters/Payload/detectors"))?
                .as_array()?;
            names
                .iter()
                .map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .collect()
}

/// Events a Standard execution of a chunk of `segments` segments writes to its history
/// when nothing is retried: the execution's start and end, the Choice's 2, 2 tasks of 5
/// events and the Map's 4, and per segment the iteration's 2, the Parallel's 4 and 5 per
/// detector group.
pub fn history_events(segments: u64, groups: u64) -> u64 {
    2 + 2 + 5 + 4 + 5 + segments * (2 + 4 + 5 * groups)
}

/// State transitions (states entered) a chunk's execution makes when nothing is retried:
/// Route, Convert, Map, Aggregate, and per segment the Parallel and each group's task.
pub fn state_transitions(segments: u64, groups: u64) -> u64 {
    4 + segments * (1 + groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_infra_definition_is_the_generated_default() {
        let options = MachineOptions {
            groups: DetectorGroups::parse(DEFAULT_GROUPS, &PipelineConfig::default()).unwrap(),
            map_concurrency: DEFAULT_MAP_CONCURRENCY,
        };
        let generated = definition(&options);
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../infra/state-machine.asl.json"
        );
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read it")).expect("JSON");
        assert!(
            committed == generated,
            "infra/state-machine.asl.json is stale: regenerate it with \
             `vqa state-machine > infra/state-machine.asl.json`"
        );
    }

    fn config(detectors: &[DetectorName]) -> PipelineConfig {
        PipelineConfig {
            detectors: detectors.to_vec(),
            ..PipelineConfig::default()
        }
    }

    #[test]
    fn groups_cover_every_enabled_detector_once() {
        use DetectorName::*;
        let c = config(&[Freeze, Black, Silence]);
        assert_eq!(
            DetectorGroups::parse("each", &c).unwrap().0,
            vec![vec![Freeze], vec![Black], vec![Silence]]
        );
        assert_eq!(
            DetectorGroups::parse("all", &c).unwrap().0,
            vec![vec![Freeze, Black, Silence]]
        );
        assert_eq!(
            DetectorGroups::parse("freeze,black;silence", &c).unwrap().0,
            vec![vec![Freeze, Black], vec![Silence]]
        );
        let missing = DetectorGroups::parse("freeze;silence", &c)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("exactly one group"), "{missing}");
        assert!(DetectorGroups::parse("freeze,black;silence,freeze", &c).is_err());
        assert!(DetectorGroups::parse("freeze,nope;black,silence", &c).is_err());
    }

    #[test]
    fn every_task_retries_and_catches_and_the_groups_read_back() {
        use DetectorName::*;
        let c = config(&[Freeze, Black, Silence]);
        let options = MachineOptions {
            groups: DetectorGroups::parse("freeze,black;silence", &c).unwrap(),
            map_concurrency: 4,
        };
        let def = definition(&options);
        let text = def.to_string();
        let mut tasks = 0;
        let mut stack = vec![&def];
        while let Some(v) = stack.pop() {
            if v.get("Type").and_then(Value::as_str) == Some("Task") {
                tasks += 1;
                assert!(v["Retry"].as_array().is_some_and(|r| !r.is_empty()), "{v}");
                // Every failure is caught: a damaged chunk's by the skip, the rest by Failed.
                let catches = v["Catch"].as_array().expect("a Catch");
                let last = catches.last().expect("a catcher");
                assert_eq!(last["ErrorEquals"][0], "States.ALL", "{v}");
                assert!(
                    last["Next"].as_str().is_some_and(|n| n.ends_with("ailed")),
                    "{v}"
                );
                if catches.len() > 1 {
                    assert_eq!(catches[0]["ErrorEquals"][0], PERMANENT_ERROR);
                    assert_eq!(catches[0]["Next"], "Skip");
                }
                // The aggregator waits for earlier chunks, a packager's segment for its
                // run's first; the others never wait.
                let waits = v["Retry"].to_string().contains(WAITING_ERROR);
                let aggregator = v["Parameters"]["FunctionName"] == AGGREGATOR_ARN;
                let prepare = v["Parameters"]["Payload"].get("packager.$").is_some();
                assert_eq!(waits, aggregator || prepare, "{v}");
            }
            match v {
                Value::Object(m) => stack.extend(m.values()),
                Value::Array(a) => stack.extend(a.iter()),
                _ => {}
            }
        }
        assert_eq!(
            tasks, 6,
            "prepare, convert, two detector branches, aggregate, skip"
        );
        // A packager's object becomes the whole job the converter takes.
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v
                .as_object()
                .map(|m| {
                    m.keys()
                        .map(|k| k.trim_end_matches(".$").to_string())
                        .collect()
                })
                .unwrap_or_default();
            k.sort();
            k
        };
        let states = &def["States"];
        assert_eq!(
            keys(&states["Prepare"]["ResultSelector"]),
            keys(&states["Convert"]["Parameters"]["Payload"])
        );
        assert_eq!(states["Prepare"]["ResultPath"], "$");
        assert_eq!(states["Route"]["Choices"][1]["Next"], "Prepare");
        assert_eq!(
            deployed_groups(&def).unwrap(),
            vec![vec!["freeze", "black"], vec!["silence"]]
        );
        assert_eq!(
            def["States"]["Aggregate"]["Parameters"]["Payload"]["groups"],
            2
        );
        let deployed = substitute(&text, "arn:c", "arn:d", "arn:a");
        assert!(!deployed.contains("${"), "every placeholder is filled");
        assert!(deployed.contains("\"arn:d\""));
    }

    #[test]
    fn counts_match_a_hand_count() {
        // 2 segments, 2 groups: Route, Convert, Map, Aggregate + 2 × (Parallel + 2 tasks).
        assert_eq!(state_transitions(2, 2), 4 + 2 * 3);
        // Start/end 2, Route 2, Convert 5, Map 4, Aggregate 5, per segment 2 + 4 + 10.
        assert_eq!(history_events(2, 2), 2 + 2 + 5 + 4 + 5 + 2 * 16);
    }
}
