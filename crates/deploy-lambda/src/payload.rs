//! What travels in Step Functions payloads: the execution's job, and each task's input and
//! output. Small by design (handles, not data), and checked against the service's limit.

use serde::{Deserialize, Serialize};
use vqa_core::chunk::Chunk;
use vqa_core::live::LiveChunk;
use vqa_core::{
    DetectorName, Handle, HandoffMetrics, IncidentEvent, PipelineConfig, StreamId, StreamSummary,
};
use vqa_transport_s3::S3Layout;

/// Step Functions' limit on a state's input or output, and on an execution's input.
pub const PAYLOAD_LIMIT: usize = 256 * 1024;

/// Where the aggregator writes the stream report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsLocation {
    pub bucket: String,
    pub key: String,
}

impl ResultsLocation {
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// An execution's input: one stream to analyse. Every task gets what it needs from it, so
/// one deployment serves any configuration and handoff layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub stream: StreamId,
    /// `s3://bucket/key` of the uploaded input.
    pub input: String,
    /// The input's name in the report (the path the user gave), so that both topologies
    /// name it alike.
    pub input_name: String,
    pub config: PipelineConfig,
    pub transport: S3Layout,
    pub results: ResultsLocation,
    /// The part of the input this execution analyses (the whole input by default).
    #[serde(default = "whole")]
    pub chunk: Chunk,
    /// Set on an execution that only records its chunk as not analysed (the client gave up
    /// on it): the state machine goes straight to the aggregator's skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<TaskError>,
    /// Set on a live stream's chunk (a chunk file the reader stored, or a chunk of lost
    /// input); always present, `null` for a file, since the state machine passes it on.
    #[serde(default)]
    pub live: Option<LiveChunk>,
    /// Objects (keys in the input's bucket) read before the input, as one stream of bytes
    /// with it: a packager's segments before the one to analyse, for its lead-ins. Always
    /// present, since the state machine passes it on.
    #[serde(default)]
    pub preroll: Vec<String>,
}

fn whole() -> Chunk {
    Chunk::WHOLE
}

/// A failed task as Step Functions hands it to a Catch: the error type and its cause (the
/// handler's JSON error, or the service's message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl TaskError {
    /// The cause as one line: the handler's own message when the cause carries one.
    pub fn message(&self) -> String {
        let message = serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|v| {
                v.get("errorMessage")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| self.cause.clone());
        match (self.error.is_empty(), message.is_empty()) {
            (_, true) => self.error.clone(),
            (true, false) => message,
            (false, false) => format!("{message} ({})", self.error),
        }
    }
}

/// The converter's output: handles of the segments it stored, and what it learnt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Converted {
    pub segments: Vec<Handle>,
    /// What was learnt about the input, without the warning about undecodable packets:
    /// `decode_errors` counts them, and the report words it once for all chunks.
    pub summary: StreamSummary,
    #[serde(default)]
    pub decode_errors: u64,
    pub handoff: HandoffMetrics,
    /// When each segment was stored (Unix ms): where its latency to the report starts.
    pub stored_at_ms: Vec<u64>,
    /// Ranged GET requests and bytes that read the chunk's part of the input (outside the
    /// handoff: the single process reads its input too).
    #[serde(default)]
    pub input_reads: u64,
    #[serde(default)]
    pub input_bytes: u64,
}

/// One detector task: a segment and the detectors of one parallel branch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectTask {
    pub segment: Handle,
    pub group: u16,
    pub detectors: Vec<DetectorName>,
    pub config: PipelineConfig,
    pub transport: S3Layout,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detected {
    pub findings: Handle,
    pub handoff: HandoffMetrics,
}

/// The aggregator task: the chunk's segments in order and how many detector groups wrote
/// findings for each — or, with `skip`, a chunk that could not be analysed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateTask {
    pub stream: StreamId,
    #[serde(default)]
    pub segments: Vec<Handle>,
    pub groups: u16,
    #[serde(default)]
    pub summary: Option<StreamSummary>,
    #[serde(default)]
    pub decode_errors: u64,
    pub config: PipelineConfig,
    pub transport: S3Layout,
    pub results: ResultsLocation,
    #[serde(default = "whole")]
    pub chunk: Chunk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<TaskError>,
    #[serde(default)]
    pub live: Option<LiveChunk>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregated {
    /// `s3://` URI of the stream report (written once the last chunk is applied).
    pub report: String,
    /// Whether this invocation wrote the report (the last chunk's).
    #[serde(default)]
    pub finished: bool,
    /// Incidents in the report (once finished).
    pub incidents: usize,
    /// Segments this chunk applied.
    pub segments: usize,
    pub handoff: HandoffMetrics,
    /// When the chunk's findings were applied (Unix ms): where its segments' latency ends.
    pub written_at_ms: u64,
    /// The incidents this chunk opened and closed, in order (the last chunk's include those
    /// closed at the end of the stream): the execution's output carries them to its client,
    /// which notifies as the single process does.
    #[serde(default)]
    pub events: Vec<IncidentEvent>,
}

/// A payload that would not fit in a state (retrying cannot help: `advice` says what can).
#[derive(Debug, thiserror::Error)]
#[error("payload too large: {what} is {} KiB, over Step Functions' 256 KiB limit; {advice}", .size / 1024)]
pub struct PayloadTooLarge {
    pub what: String,
    pub size: usize,
    pub advice: String,
}

/// Fails naming the limit when a payload would not fit in a state; its size otherwise.
pub fn check_size<T: Serialize>(
    what: &str,
    value: &T,
    advice: &str,
) -> Result<usize, PayloadTooLarge> {
    let size = serde_json::to_vec(value).map_or(0, |v| v.len());
    if size > PAYLOAD_LIMIT {
        return Err(PayloadTooLarge {
            what: what.to_string(),
            size,
            advice: advice.to_string(),
        });
    }
    Ok(size)
}
