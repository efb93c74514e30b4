//! What travels in Step Functions payloads: the execution's job, and each task's input and
//! output. Small by design (handles, not data), and checked against the service's limit.

use serde::{Deserialize, Serialize};
use vqa_core::{DetectorName, Handle, HandoffMetrics, PipelineConfig, StreamId, StreamSummary};
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
}

/// The converter's output: handles of the segments it stored, and what it learnt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Converted {
    pub segments: Vec<Handle>,
    pub summary: StreamSummary,
    pub handoff: HandoffMetrics,
    /// When each segment was stored (Unix ms): where its latency to the report starts.
    pub stored_at_ms: Vec<u64>,
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

/// The aggregator task: every segment in order, and how many detector groups wrote
/// findings for each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateTask {
    pub stream: StreamId,
    pub segments: Vec<Handle>,
    pub groups: u16,
    pub summary: StreamSummary,
    pub config: PipelineConfig,
    pub transport: S3Layout,
    pub results: ResultsLocation,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregated {
    /// `s3://` URI of the stream report.
    pub report: String,
    pub incidents: usize,
    pub segments: usize,
    pub handoff: HandoffMetrics,
    /// When the report was written (Unix ms).
    pub written_at_ms: u64,
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
