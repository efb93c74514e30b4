//! The single process's concerns around the pipeline step ([`vqa_core::step`]): where the
//! time goes per phase, each segment's latency from hand-off to the aggregator, and incident
//! events to a sink.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vqa_core::step::{Outcome, Phase, StepLayer};
use vqa_core::{IncidentEvent, StreamId};

use crate::lock;
use crate::resources::thread_cpu_time;

/// Time spent in each phase: wall time, and CPU time of the thread running it (so a phase
/// preempted by another on a busy core is not charged for the other's work). The CPU time
/// is meaningful for a phase that one thread runs from `before` to `after` — the runner's
/// hand-off and detect phases, each on its own blocking thread — not for one on an async
/// task, which may move between threads.
#[derive(Default)]
pub struct PhaseTimes {
    started: Mutex<HashMap<Phase, (Duration, Instant)>>,
    spent: Mutex<HashMap<Phase, (Duration, Duration)>>,
}

impl PhaseTimes {
    /// CPU time spent in `phase` so far.
    pub fn cpu(&self, phase: Phase) -> Duration {
        lock(&self.spent)
            .get(&phase)
            .map_or(Duration::ZERO, |t| t.0)
    }

    /// Wall time spent in `phase` so far.
    pub fn wall(&self, phase: Phase) -> Duration {
        lock(&self.spent)
            .get(&phase)
            .map_or(Duration::ZERO, |t| t.1)
    }

    fn phase_of(outcome: &Outcome<'_>) -> Phase {
        match outcome {
            Outcome::HandedOff(_) => Phase::HandOff,
            Outcome::Detected { .. } => Phase::Detect,
            Outcome::Aggregated(_) => Phase::Aggregate,
            Outcome::Finished(..) => Phase::Finish,
        }
    }
}

#[async_trait::async_trait]
impl StepLayer for PhaseTimes {
    fn before(&self, phase: Phase, _stream: &StreamId, _segment: u64) {
        lock(&self.started).insert(phase, (thread_cpu_time(), Instant::now()));
    }

    async fn after(&self, _stream: &StreamId, _segment: u64, outcome: &Outcome<'_>) {
        let phase = Self::phase_of(outcome);
        if let Some((cpu, wall)) = lock(&self.started).remove(&phase) {
            let mut spent = lock(&self.spent);
            let t = spent.entry(phase).or_default();
            t.0 += thread_cpu_time().saturating_sub(cpu);
            t.1 += wall.elapsed();
        }
    }
}

/// Per segment, from its hand-off to the aggregator having applied its findings (the
/// report is then up to date with it), ms.
#[derive(Default)]
pub struct Latency {
    handed_at: Mutex<HashMap<u64, Instant>>,
    latencies_ms: Mutex<Vec<f64>>,
}

impl Latency {
    pub fn take(&self) -> Vec<f64> {
        std::mem::take(&mut *lock(&self.latencies_ms))
    }
}

#[async_trait::async_trait]
impl StepLayer for Latency {
    fn before(&self, phase: Phase, _stream: &StreamId, segment: u64) {
        if phase == Phase::HandOff {
            lock(&self.handed_at).insert(segment, Instant::now());
        }
    }

    async fn after(&self, _stream: &StreamId, segment: u64, outcome: &Outcome<'_>) {
        if let Outcome::Aggregated(_) = outcome {
            if let Some(handed) = lock(&self.handed_at).remove(&segment) {
                let ms = handed.elapsed().as_secs_f64() * 1000.0;
                lock(&self.latencies_ms).push(ms);
            }
        }
    }
}

/// Called with each incident opened or closed, as soon as the aggregator knows.
pub type EventSink = Box<dyn Fn(&StreamId, &IncidentEvent) + Send + Sync>;

/// Incident events, from the aggregate and finish phases, to a sink.
pub struct Events(pub EventSink);

#[async_trait::async_trait]
impl StepLayer for Events {
    async fn after(&self, stream: &StreamId, _segment: u64, outcome: &Outcome<'_>) {
        for e in outcome.events() {
            (self.0)(stream, e);
        }
    }
}
