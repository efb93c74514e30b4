//! The `Transport`: the one way artifacts move between stages, in every topology.
//!
//! Implementations: `vqa-transport-mem` (one process, zero copy) and, with the distributed
//! topology, S3. Each counts its handoffs into the same [`HandoffMetrics`], so the benchmark
//! compares like with like.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{Segment, StreamId};
use crate::report::SegmentReport;

/// Where an artifact lives: stream / segment / artifact name. Keys are deterministic, so a
/// retried stage overwrites its own artifact instead of duplicating it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArtifactKey {
    pub stream: StreamId,
    pub segment: u64,
    pub name: ArtifactName,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactName {
    /// The converter's output: a [`Segment`].
    Segment,
    /// The detectors' output: a [`SegmentReport`].
    Findings,
    /// One group of detectors' output, when groups run apart (the distributed topology's
    /// parallel branches): a [`SegmentReport`] the aggregator merges with the others.
    FindingsPart(u16),
}

impl ArtifactKey {
    pub fn segment(stream: &StreamId, index: u64) -> Self {
        ArtifactKey {
            stream: stream.clone(),
            segment: index,
            name: ArtifactName::Segment,
        }
    }

    pub fn findings(stream: &StreamId, index: u64) -> Self {
        ArtifactKey {
            stream: stream.clone(),
            segment: index,
            name: ArtifactName::Findings,
        }
    }

    /// Detector group `group`'s findings for a segment.
    pub fn findings_part(stream: &StreamId, index: u64, group: u16) -> Self {
        ArtifactKey {
            stream: stream.clone(),
            segment: index,
            name: ArtifactName::FindingsPart(group),
        }
    }
}

impl fmt::Display for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:08}/", self.stream, self.segment)?;
        match self.name {
            ArtifactName::Segment => write!(f, "segment"),
            ArtifactName::Findings => write!(f, "findings"),
            ArtifactName::FindingsPart(g) => write!(f, "findings-{g}"),
        }
    }
}

/// Names one piece of state that must survive between segments (e.g. the aggregator's open
/// incidents for a stream).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateKey {
    pub stream: StreamId,
    pub owner: String,
}

impl StateKey {
    pub fn new(stream: &StreamId, owner: &str) -> Self {
        StateKey {
            stream: stream.clone(),
            owner: owner.to_string(),
        }
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/state/{}", self.stream, self.owner)
    }
}

/// A reference to a stored artifact, small enough to travel in any payload (a Step Functions
/// state, a channel message).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Handle {
    pub key: ArtifactKey,
    /// Transport-specific locator (e.g. `s3://bucket/key`); empty in memory.
    pub location: String,
}

/// An artifact handed between stages. Shared, so that in one process a handoff is a
/// reference count, not a copy.
#[derive(Clone, Debug)]
pub enum Artifact {
    Segment(Arc<Segment>),
    Findings(Arc<SegmentReport>),
}

impl Artifact {
    pub fn kind(&self) -> ArtifactName {
        match self {
            Artifact::Segment(_) => ArtifactName::Segment,
            Artifact::Findings(_) => ArtifactName::Findings,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("artifact {0} not found")]
    NotFound(String),
    #[error("artifact {key}: expected a {expected:?}, found a {found:?}")]
    WrongKind {
        key: String,
        expected: ArtifactName,
        found: ArtifactName,
    },
    #[error("artifact {key}: cannot decode: {reason}")]
    Decode { key: String, reason: String },
    #[error("transport closed")]
    Closed,
    /// The store cannot be reached just now (network, endpoint down): worth retrying later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Backend(String),
}

/// Counters of every handoff, kept the same way by every transport.
///
/// `payload_bytes` is the logical size of what was handed over (frame and sample data for
/// segments, encoded size for small artifacts and state): the same for the same run in every
/// transport. `copied_bytes` is what the transport actually serialised or copied to do it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffMetrics {
    pub puts: u64,
    pub gets: u64,
    pub deletes: u64,
    pub state_loads: u64,
    pub state_stores: u64,
    pub payload_bytes_put: u64,
    pub payload_bytes_got: u64,
    pub copied_bytes: u64,
    /// Frame (pixel) bytes among `copied_bytes`: zero when handoff is zero-copy.
    pub frame_bytes_copied: u64,
    /// Time spent encoding and decoding artifacts and state.
    pub encode_nanos: u64,
    /// Time spent moving them (storing, fetching, deleting).
    pub transfer_nanos: u64,
    /// Time producers waited for room because consumers were behind (back-pressure).
    pub blocked_nanos: u64,
}

impl HandoffMetrics {
    pub fn requests(&self) -> u64 {
        self.puts + self.gets + self.deletes + self.state_loads + self.state_stores
    }

    /// The counters of two runs (or two transports) together.
    pub fn plus(&self, other: &HandoffMetrics) -> HandoffMetrics {
        let mut sum = *self;
        for (a, b) in sum.fields_mut().into_iter().zip(other.fields()) {
            *a += b;
        }
        sum
    }

    fn fields(&self) -> [u64; 12] {
        [
            self.puts,
            self.gets,
            self.deletes,
            self.state_loads,
            self.state_stores,
            self.payload_bytes_put,
            self.payload_bytes_got,
            self.copied_bytes,
            self.frame_bytes_copied,
            self.encode_nanos,
            self.transfer_nanos,
            self.blocked_nanos,
        ]
    }

    fn fields_mut(&mut self) -> [&mut u64; 12] {
        [
            &mut self.puts,
            &mut self.gets,
            &mut self.deletes,
            &mut self.state_loads,
            &mut self.state_stores,
            &mut self.payload_bytes_put,
            &mut self.payload_bytes_got,
            &mut self.copied_bytes,
            &mut self.frame_bytes_copied,
            &mut self.encode_nanos,
            &mut self.transfer_nanos,
            &mut self.blocked_nanos,
        ]
    }
}

/// [`HandoffMetrics`] that many tasks add to at once: what every transport keeps.
#[derive(Debug, Default)]
pub struct HandoffCounters([AtomicU64; 12]);

impl HandoffCounters {
    /// Adds one handoff's counts (built as `HandoffMetrics { puts: 1, .. }`).
    pub fn add(&self, delta: HandoffMetrics) {
        for (counter, n) in self.0.iter().zip(delta.fields()) {
            if n != 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub fn snapshot(&self) -> HandoffMetrics {
        let mut m = HandoffMetrics::default();
        for (field, counter) in m.fields_mut().into_iter().zip(&self.0) {
            *field = counter.load(Ordering::Relaxed);
        }
        m
    }
}

/// Nanoseconds since `since`, for the time counters.
pub fn nanos_since(since: std::time::Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

/// Moves artifacts between stages and keeps state between segments.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Stores an artifact under its key and returns a handle to it. May wait for room
    /// (back-pressure); storing the same key twice replaces the artifact.
    async fn put(&self, key: ArtifactKey, artifact: Artifact) -> Result<Handle, TransportError>;

    /// Fetches an artifact; several consumers may fetch the same handle.
    async fn get(&self, handle: &Handle) -> Result<Artifact, TransportError>;

    /// Fetches a segment for consumers that read no pixels: a transport that stores pictures
    /// apart may leave them behind (the frames then have empty planes). By default, the
    /// whole artifact.
    async fn get_without_pictures(&self, handle: &Handle) -> Result<Artifact, TransportError> {
        self.get(handle).await
    }

    /// Releases an artifact nobody will fetch again.
    async fn delete(&self, handle: &Handle) -> Result<(), TransportError>;

    /// Loads a stage's state, `None` before the first store.
    async fn load_state(&self, key: &StateKey) -> Result<Option<Bytes>, TransportError>;

    /// Stores a stage's state, replacing the previous value.
    async fn store_state(&self, key: &StateKey, state: Bytes) -> Result<(), TransportError>;

    /// Removes a stage's state once the stream is finished.
    async fn clear_state(&self, key: &StateKey) -> Result<(), TransportError>;

    /// The handoff counters so far.
    fn metrics(&self) -> HandoffMetrics;
}

/// Fetches a handle that must name a segment.
pub async fn get_segment(
    transport: &dyn Transport,
    handle: &Handle,
) -> Result<Arc<Segment>, TransportError> {
    expect_segment(handle, transport.get(handle).await?)
}

/// Fetches a handle that must name a segment, without its pictures' pixels if the transport
/// can leave them behind (see [`Transport::get_without_pictures`]).
pub async fn get_segment_without_pictures(
    transport: &dyn Transport,
    handle: &Handle,
) -> Result<Arc<Segment>, TransportError> {
    expect_segment(handle, transport.get_without_pictures(handle).await?)
}

fn expect_segment(handle: &Handle, artifact: Artifact) -> Result<Arc<Segment>, TransportError> {
    match artifact {
        Artifact::Segment(s) => Ok(s),
        other => Err(wrong_kind(handle, ArtifactName::Segment, other.kind())),
    }
}

/// Fetches a handle that must name a segment's findings.
pub async fn get_findings(
    transport: &dyn Transport,
    handle: &Handle,
) -> Result<Arc<SegmentReport>, TransportError> {
    match transport.get(handle).await? {
        Artifact::Findings(r) => Ok(r),
        other => Err(wrong_kind(handle, ArtifactName::Findings, other.kind())),
    }
}

fn wrong_kind(handle: &Handle, expected: ArtifactName, found: ArtifactName) -> TransportError {
    TransportError::WrongKind {
        key: handle.key.to_string(),
        expected,
        found,
    }
}
