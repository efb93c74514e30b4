//! The in-memory [`Transport`]: the single-process (ECS) topology's handoff.
//!
//! Artifacts are kept as shared references, so handing a segment from the converter to the
//! detectors copies no frame data; the counters show it (`frame_bytes_copied` stays 0). At
//! most `capacity` segments are in flight: a converter running ahead of the detectors waits
//! in [`Transport::put`] (back-pressure) instead of filling memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vqa_core::transport::{nanos_since, ArtifactName, HandoffCounters};
use vqa_core::{
    Artifact, ArtifactKey, Handle, HandoffMetrics, StateKey, Transport, TransportError,
};

struct Stored {
    artifact: Artifact,
    /// Its logical size, computed once when stored.
    payload: u64,
    /// Held while a segment is stored; dropping it admits the next one.
    _slot: Option<OwnedSemaphorePermit>,
}

/// Handoff through shared memory in one process.
pub struct MemTransport {
    artifacts: Mutex<HashMap<ArtifactKey, Stored>>,
    state: Mutex<HashMap<StateKey, Bytes>>,
    segment_slots: Arc<Semaphore>,
    counters: HandoffCounters,
}

impl MemTransport {
    /// A transport holding at most `capacity` segments at once (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemTransport {
            artifacts: Mutex::new(HashMap::new()),
            state: Mutex::new(HashMap::new()),
            segment_slots: Arc::new(Semaphore::new(capacity.max(1))),
            counters: HandoffCounters::default(),
        }
    }

    /// Artifacts currently stored.
    pub fn len(&self) -> usize {
        lock(&self.artifacts).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Locks a map; a panic in another task while holding it cannot leave the map half-updated
/// (every critical section is a single insert/get/remove), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The logical size of an artifact, the same figure every transport reports for it.
fn payload_bytes(artifact: &Artifact) -> u64 {
    match artifact {
        Artifact::Segment(s) => s.payload_bytes(),
        // Small: its encoded size is what another transport would move.
        Artifact::Findings(_) => vqa_core::wire::encode_artifact(artifact).len() as u64,
    }
}

#[async_trait]
impl Transport for MemTransport {
    async fn put(&self, key: ArtifactKey, artifact: Artifact) -> Result<Handle, TransportError> {
        let slot = if artifact.kind() == ArtifactName::Segment {
            let waiting = Instant::now();
            let permit = self
                .segment_slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| TransportError::Closed)?;
            self.counters.add(HandoffMetrics {
                blocked_nanos: nanos_since(waiting),
                ..Default::default()
            });
            Some(permit)
        } else {
            None
        };
        let payload = payload_bytes(&artifact);
        let started = Instant::now();
        lock(&self.artifacts).insert(
            key.clone(),
            Stored {
                artifact,
                payload,
                _slot: slot,
            },
        );
        self.counters.add(HandoffMetrics {
            puts: 1,
            payload_bytes_put: payload,
            transfer_nanos: nanos_since(started),
            ..Default::default()
        });
        Ok(Handle {
            key,
            location: String::new(),
        })
    }

    async fn get(&self, handle: &Handle) -> Result<Artifact, TransportError> {
        let started = Instant::now();
        let (artifact, payload) = lock(&self.artifacts)
            .get(&handle.key)
            .map(|s| (s.artifact.clone(), s.payload))
            .ok_or_else(|| TransportError::NotFound(handle.key.to_string()))?;
        self.counters.add(HandoffMetrics {
            gets: 1,
            payload_bytes_got: payload,
            transfer_nanos: nanos_since(started),
            ..Default::default()
        });
        Ok(artifact)
    }

    async fn delete(&self, handle: &Handle) -> Result<(), TransportError> {
        let started = Instant::now();
        let removed = lock(&self.artifacts).remove(&handle.key);
        drop(removed);
        self.counters.add(HandoffMetrics {
            deletes: 1,
            transfer_nanos: nanos_since(started),
            ..Default::default()
        });
        Ok(())
    }

    async fn load_state(&self, key: &StateKey) -> Result<Option<Bytes>, TransportError> {
        let state = lock(&self.state).get(key).cloned();
        self.counters.add(HandoffMetrics {
            state_loads: 1,
            payload_bytes_got: state.as_ref().map_or(0, |b| b.len() as u64),
            ..Default::default()
        });
        Ok(state)
    }

    async fn store_state(&self, key: &StateKey, state: Bytes) -> Result<(), TransportError> {
        // State arrives encoded: the stage serialised it, which is a real copy.
        self.counters.add(HandoffMetrics {
            state_stores: 1,
            payload_bytes_put: state.len() as u64,
            copied_bytes: state.len() as u64,
            ..Default::default()
        });
        lock(&self.state).insert(key.clone(), state);
        Ok(())
    }

    async fn clear_state(&self, key: &StateKey) -> Result<(), TransportError> {
        lock(&self.state).remove(key);
        self.counters.add(HandoffMetrics {
            deletes: 1,
            ..Default::default()
        });
        Ok(())
    }

    fn metrics(&self) -> HandoffMetrics {
        self.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vqa_core::model::{LumaRange, Segment, StreamId, VideoFrame};

    fn segment(index: u64, luma: Bytes) -> Segment {
        let frame = VideoFrame {
            pts: 0,
            duration: 40_000,
            width: 64,
            height: 64,
            stride: 64,
            range: LumaRange::Full,
            keyframe: false,
            corrupt: false,
            format: Default::default(),
            captions: Default::default(),
            luma,
        };
        Segment {
            stream: StreamId::new("s"),
            index,
            start: 0,
            end: 1_000_000,
            has_video: true,
            has_audio: false,
            lead_in: None,
            video: vec![frame],
            audio: vec![],
            audio_lead_in: vec![],
            decode_errors: 0,
            ts_events: vec![],
            splice_cues: vec![],
        }
    }

    #[tokio::test]
    async fn a_segment_handed_over_shares_its_frame_memory() {
        let t = MemTransport::new(2);
        let luma = Bytes::from(vec![7u8; 64 * 64]);
        let h = vqa_core::step::hand_off_segment(&t, segment(0, luma.clone()))
            .await
            .unwrap();
        let got = vqa_core::transport::get_segment(&t, &h).await.unwrap();
        // Same allocation: the consumer sees the producer's bytes, not a copy.
        assert_eq!(got.video[0].luma.as_ptr(), luma.as_ptr());
        let m = t.metrics();
        assert_eq!(
            (m.puts, m.gets, m.frame_bytes_copied, m.copied_bytes),
            (1, 1, 0, 0)
        );
        assert_eq!(m.payload_bytes_put, 4096);
        assert_eq!(m.payload_bytes_got, 4096);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_transport_makes_the_producer_wait_until_a_segment_is_deleted() {
        let t = Arc::new(MemTransport::new(1));
        let first =
            vqa_core::step::hand_off_segment(t.as_ref(), segment(0, Bytes::from(vec![0u8; 4096])))
                .await
                .unwrap();
        let producer = {
            let t = t.clone();
            tokio::spawn(async move {
                vqa_core::step::hand_off_segment(
                    t.as_ref(),
                    segment(1, Bytes::from(vec![0u8; 4096])),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!producer.is_finished(), "second put must wait for room");
        assert_eq!(t.len(), 1);
        t.delete(&first).await.unwrap();
        let second = producer.await.unwrap().unwrap();
        assert_eq!(second.key.segment, 1);
        assert_eq!(t.len(), 1);
    }

    #[tokio::test]
    async fn missing_handles_are_not_found_and_state_round_trips() {
        let t = MemTransport::new(1);
        let h = Handle {
            key: ArtifactKey::segment(&StreamId::new("s"), 9),
            location: String::new(),
        };
        assert!(matches!(t.get(&h).await, Err(TransportError::NotFound(_))));
        let k = StateKey::new(&StreamId::new("s"), "aggregator");
        assert_eq!(t.load_state(&k).await.unwrap(), None);
        t.store_state(&k, Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(
            t.load_state(&k).await.unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        t.clear_state(&k).await.unwrap();
        assert_eq!(t.load_state(&k).await.unwrap(), None);
        assert_eq!(t.metrics().copied_bytes, 3);
    }
}
