//! Live streams through the distributed topology: what the reader (the part that holds the
//! sources' sockets and must stay up) hands on for each chunk it cuts, and the interface
//! through which it hands chunks on and hears back.
//!
//! The reader cuts each stream into chunks ([`crate::chunk::Chunk`]): a chunk of media is a
//! file of the stream's packets (MPEG-TS, timestamps as read), placed on the stream's
//! timeline by the connection's origin; while the source is away, a chunk of lost input
//! says until when it was lost, and the aggregator applies an `input_loss` segment for it,
//! as the single-process monitor does. A [`ChunkSink`] runs them (one execution each, in
//! the distributed topology) and reports each chunk's incidents, in the stream's order, and
//! the stream's report after its last chunk.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::aggregate::IncidentEvent;
use crate::chunk::Chunk;
use crate::config::PipelineConfig;
use crate::cost::Usage;
use crate::model::StreamId;
use crate::report::StreamReport;
use crate::time::Micros;

/// What a live stream's chunk holds, beyond its place on the timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveChunk {
    /// Where the chunk file's packet times put the stream's 0 (µs of the source's clock,
    /// as the reader's connection placed it).
    pub origin: Micros,
    /// Set on a chunk of lost input, which has no media.
    #[serde(default)]
    pub loss: Option<Loss>,
    /// The reader's warnings for the stream's report (a source never reached, say).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The duration the source declares, seconds (a file replayed as a live source; a
    /// live source declares none): the report's, not the chunk file's.
    #[serde(default)]
    pub duration: Option<f64>,
}

/// Input lost from the end of what was analysed until `until` (stream time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    pub until: Micros,
    /// Reconnection attempts so far (the incident's evidence).
    pub attempts: u64,
    /// The first chunk of this loss (the report counts losses).
    pub begins: bool,
}

/// One chunk the reader cut: `file` holds its media (none for a chunk of lost input or an
/// empty end); the sink removes the file once it is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkJob {
    pub chunk: Chunk,
    pub file: Option<PathBuf>,
    pub live: LiveChunk,
}

/// A chunk applied to its stream's aggregator.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub chunk: Chunk,
    /// Where on the stream's timeline analysis now is.
    pub analysed: Micros,
    /// Segments the chunk applied.
    pub segments: u64,
    /// The incidents it opened and closed, in order.
    pub events: Vec<IncidentEvent>,
}

/// What a stream hears back from the chunks it handed on. Calls come in the chunks' order.
pub trait ChunkEvents: Send + Sync {
    /// A chunk was applied to the stream's aggregator.
    fn applied(&self, applied: &Applied);
    /// What a chunk's executions used (transitions or requests and duration, Lambda
    /// invocations and GB-seconds, S3 requests), counted once they ended; it comes after
    /// the chunk's `applied`, in no particular order among chunks, and every chunk's
    /// before `finished`.
    fn accounted(&self, chunk: &Chunk, usage: &Usage);
    /// The stream's last chunk was applied: its report, or why there is none.
    fn finished(&self, report: Result<StreamReport, String>);
}

/// Where a live reader hands its chunks: the distributed topology's client.
pub trait ChunkSink: Send + Sync {
    /// Segment windows per chunk.
    fn windows(&self) -> u64;
    /// Starts a stream (one run: its own objects and state); `input` names it in the report.
    fn open(
        &self,
        stream: &StreamId,
        config: &PipelineConfig,
        input: &str,
        events: Arc<dyn ChunkEvents>,
    ) -> Result<Box<dyn ChunkStream>, String>;
}

/// One stream's chunks, handed on in order.
pub trait ChunkStream: Send {
    fn submit(&mut self, job: ChunkJob);
}
