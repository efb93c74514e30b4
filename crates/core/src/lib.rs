//! vqa's core: the data model, the stage traits, the `Transport` trait, the wire form and the
//! pipeline configuration.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of FFmpeg or AWS. Every
//! handoff goes through [`Transport`], which the edges (transport crates) implement, so stage
//! code cannot tell which topology it runs in.

pub mod aggregate;
pub mod captions;
pub mod chunk;
pub mod config;
pub mod cost;
pub mod kinds;
pub mod live;
pub mod loudness;
pub mod model;
pub mod notify;
pub mod redact;
pub mod report;
pub mod stage;
pub mod step;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod topology;
pub mod transport;
pub mod wire;

pub use aggregate::{AggregatorState, IncidentAggregator, IncidentEvent};
pub use config::{ConfigError, DetectorName, PipelineConfig};
pub use model::{AudioBlock, LumaRange, MediaInfo, Segment, StreamId, Track, VideoFrame};
pub use redact::{redact_url, url_scheme};
pub use report::{
    Coverage, Divergence, Evidence, Finding, Incident, IncidentKind, Measurements, SegmentReport,
    Severity, StreamReport, StreamSummary, Summary,
};
pub use stage::{Converter, Detector};
pub use time::Micros;
pub use transport::{
    Artifact, ArtifactKey, Handle, HandoffMetrics, StateKey, Transport, TransportError,
};

/// An error and its causes, outermost first, on one line (without the SDK's debug dumps).
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}
