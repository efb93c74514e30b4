//! `vqa monitor`: many live streams in one process.
//!
//! Each stream has a reader thread that only waits on its source (FFmpeg's demuxer: network
//! I/O, reconnection with backoff) and hands packets over through a queue bounded in media
//! time. Decoding, detection and aggregation — the CPU work — run on one pool of worker
//! threads sized to the machine, a stream at a time per worker (an actor: never on two
//! workers at once, a bounded slice per turn). The stages are the same code `vqa analyze`
//! runs (`core::stage` through a `MemTransport`), so a stream's report equals the file's.
//!
//! Behind real time: lag (newest media read − end of what the aggregator applied) is
//! reported from the first second; past `shed_after` the shedding detectors see one picture
//! in 2, 3, ... 8; past `queue_seconds` the reader waits, so memory stays bounded whatever
//! the load (a live source then loses data upstream, which shows as corruption).

pub mod ab;
mod chunked;
pub mod cost;
pub mod list;
pub mod metrics;
mod pool;
pub mod service;
mod stream;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vqa_core::cost::PriceTable;
use vqa_core::live::ChunkSink;
use vqa_core::{StreamReport, Transport};
use vqa_transport_mem::MemTransport;

pub use list::{MonitorSettings, StreamList, StreamSpec};
pub use stream::Shared as StreamState;

use pool::Pool;
use stream::Stream;
use vqa_notify::{Notifiers, WebhookStats};

pub(crate) use crate::lock;

/// What every stream's reader and actor share.
pub struct Env {
    pool: Pool,
    transport: Arc<dyn Transport>,
    /// Taken when the monitor shuts down, so webhooks deliver what is queued.
    notifiers: std::sync::RwLock<Option<Notifiers>>,
    reports_dir: Option<PathBuf>,
    settings: MonitorSettings,
    metrics: metrics::Metrics,
    /// Streams running, by id, and streams stopping (removed, not yet finished).
    streams: Mutex<BTreeMap<String, Stream>>,
    stopping: Mutex<Vec<Stream>>,
    /// Streams listed whose previous run (restarted, or removed and listed again) has not
    /// finished yet: started once it has. Two runs of one id never overlap, since their
    /// segments and aggregator state are keyed by the id in the one transport.
    waiting: Mutex<BTreeMap<String, StreamSpec>>,
    /// The latest report of each stream id that finished (bounded by the ids, however
    /// often streams restart).
    reports: Mutex<Vec<StreamReport>>,
    /// Where the stages run; with a sink, where the streams' chunk files wait to be stored,
    /// and streams started so far (each run's files in a folder of its own).
    stages: Stages,
    chunk_dir: PathBuf,
    runs: std::sync::atomic::AtomicU64,
    /// What the streams' costs are priced with (the shipped table unless set), and this
    /// process's CPU and memory between ticks.
    prices: std::sync::OnceLock<PriceTable>,
    process: cost::ProcessMeter,
}

/// Where a monitor's stages run.
#[derive(Clone)]
pub enum Stages {
    /// In this process (the single-process topology).
    InProcess,
    /// In the distributed topology: the monitor only reads, and hands chunks to the sink.
    Distributed(Arc<dyn ChunkSink>),
    /// Both at once, each source read once, their incidents compared (`--topology ab`).
    Both(Arc<dyn ChunkSink>),
}

impl Env {
    /// Starts the list's new streams, stops those no longer listed, restarts those whose
    /// entry changed. A stream that cannot start (its detectors' model is missing, say) is
    /// reported and skipped; the others run.
    pub fn apply(self: &Arc<Self>, list: &StreamList) -> Changes {
        let mut changes = Changes::default();
        let mut streams = lock(&self.streams);
        let wanted: BTreeMap<String, &StreamSpec> = list
            .streams
            .iter()
            .map(|s| (s.id.as_str().to_string(), s))
            .collect();
        let ids: Vec<String> = streams.keys().cloned().collect();
        for id in ids {
            let keep = wanted
                .get(&id)
                .is_some_and(|spec| streams.get(&id).is_some_and(|s| s.shared.spec == **spec));
            if !keep {
                if let Some(stream) = streams.remove(&id) {
                    stream.stop(self);
                    lock(&self.stopping).push(stream);
                    if wanted.contains_key(&id) {
                        changes.restarted.push(id);
                    } else {
                        changes.removed.push(id);
                    }
                }
            }
        }
        let mut waiting = lock(&self.waiting);
        waiting.retain(|id, _| wanted.contains_key(id));
        for (id, spec) in wanted {
            if streams.contains_key(&id) {
                continue;
            }
            if !changes.restarted.contains(&id) && !waiting.contains_key(&id) {
                changes.added.push(id.clone());
            }
            waiting.insert(id, spec.clone());
        }
        let failed = self.start_waiting(&mut streams, &mut waiting);
        changes.added.retain(|id| !failed.contains(id));
        changes.restarted.retain(|id| !failed.contains(id));
        changes
    }

    /// Starts the waiting streams whose previous run has finished; returns those that could
    /// not start (reported, and no longer waiting).
    fn start_waiting(
        self: &Arc<Self>,
        streams: &mut BTreeMap<String, Stream>,
        waiting: &mut BTreeMap<String, StreamSpec>,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        let busy: Vec<String> = lock(&self.stopping)
            .iter()
            .filter(|s| !s.shared.stats.finished.load(Ordering::SeqCst))
            .map(|s| s.shared.spec.id.as_str().to_string())
            .collect();
        let ready: Vec<String> = waiting
            .keys()
            .filter(|id| !busy.contains(id))
            .cloned()
            .collect();
        for id in ready {
            let Some(spec) = waiting.remove(&id) else {
                continue;
            };
            match Stream::start(spec, self) {
                Ok(stream) => {
                    streams.insert(id, stream);
                }
                Err(e) => {
                    tracing::error!("{e}; the stream is not monitored");
                    failed.push(id);
                }
            }
        }
        failed
    }

    /// The report of a stream that finished (the latest, if it ran more than once); none
    /// while a stream of that id runs.
    pub fn report(&self, id: &str) -> Option<StreamReport> {
        let running = lock(&self.streams)
            .get(id)
            .is_some_and(|s| !s.shared.stats.finished.load(Ordering::SeqCst));
        if running {
            return None;
        }
        lock(&self.reports)
            .iter()
            .rev()
            .find(|r| r.stream.as_str() == id)
            .cloned()
    }

    /// Keeps a finished run's report, in place of an earlier run's of the same id.
    fn keep_report(&self, report: StreamReport) {
        let mut reports = lock(&self.reports);
        reports.retain(|r| r.stream != report.stream);
        reports.push(report);
    }

    /// Raw latencies observed so far (taken: the next call starts afresh).
    pub fn take_latencies(&self) -> metrics::Samples {
        self.metrics.take_samples()
    }

    /// Where the streams' chunks go, when the stages run in the distributed topology.
    fn sink(&self) -> Option<&Arc<dyn ChunkSink>> {
        match &self.stages {
            Stages::InProcess => None,
            Stages::Distributed(sink) | Stages::Both(sink) => Some(sink),
        }
    }

    /// Both topologies side by side, compared (`--topology ab`).
    fn ab(&self) -> bool {
        matches!(self.stages, Stages::Both(_))
    }

    /// The topology sides whose cost the streams accrue.
    fn sides(&self) -> cost::Sides {
        match self.stages {
            Stages::InProcess => cost::Sides::Single,
            Stages::Distributed(_) => cost::Sides::Distributed,
            Stages::Both(_) => cost::Sides::Both,
        }
    }

    fn prices(&self) -> &PriceTable {
        self.prices.get_or_init(PriceTable::shipped)
    }

    /// Charges the running streams their shares of what this process used since the last
    /// call.
    fn accrue_process(&self) {
        let used = self.process.sample();
        let streams = self.running();
        let costs: Vec<&cost::StreamCost> = streams.iter().map(|s| &s.stats.cost).collect();
        cost::accrue_process(self.sides(), used, &costs, self.prices());
    }

    pub fn settings(&self) -> &MonitorSettings {
        &self.settings
    }

    /// Streams monitored now (not finished).
    pub fn running(&self) -> Vec<Arc<stream::Shared>> {
        lock(&self.streams)
            .values()
            .map(|s| s.shared.clone())
            .filter(|s| !s.stats.finished.load(Ordering::Relaxed))
            .collect()
    }
}

/// What applying a stream list changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
}

/// The monitor: streams started and stopped from stream lists, a shared CPU pool.
pub struct Monitor {
    env: Arc<Env>,
}

/// What a finished monitor leaves.
pub struct Finished {
    pub reports: Vec<StreamReport>,
    pub webhooks: Vec<(String, WebhookStats)>,
}

impl Monitor {
    pub fn new(
        settings: MonitorSettings,
        notifiers: Notifiers,
        reports_dir: Option<PathBuf>,
    ) -> Result<Monitor, crate::ServiceError> {
        Self::with_stages(settings, notifiers, reports_dir, Stages::InProcess)
    }

    /// A monitor whose stages run where `stages` says.
    pub fn with_stages(
        settings: MonitorSettings,
        notifiers: Notifiers,
        reports_dir: Option<PathBuf>,
        stages: Stages,
    ) -> Result<Monitor, crate::ServiceError> {
        if let Some(dir) = &reports_dir {
            crate::create_reports_dir(dir)?;
        }
        let pool = Pool::new(settings.workers)
            .map_err(|e| crate::ServiceError::system("start the worker pool", e))?;
        // One transport for every stream: keys carry the stream; each worker holds at most
        // one segment, so the bound never blocks beyond the pool.
        let transport: Arc<dyn Transport> = Arc::new(MemTransport::new(pool.size() + 1));
        Ok(Monitor {
            env: Arc::new(Env {
                pool,
                transport,
                notifiers: std::sync::RwLock::new(Some(notifiers)),
                reports_dir,
                settings,
                metrics: metrics::Metrics::default(),
                streams: Mutex::default(),
                stopping: Mutex::default(),
                waiting: Mutex::default(),
                reports: Mutex::default(),
                stages,
                chunk_dir: std::env::temp_dir().join(format!("vqa-chunks-{}", std::process::id())),
                runs: Default::default(),
                prices: Default::default(),
                process: Default::default(),
            }),
        })
    }

    pub fn env(&self) -> &Arc<Env> {
        &self.env
    }

    /// Prices the streams' costs with `prices` instead of the shipped table; to be called
    /// before any stream starts (false, and no change, after).
    pub fn price_with(&self, prices: PriceTable) -> bool {
        self.env.prices.set(prices).is_ok()
    }

    /// Raw latencies observed so far (taken: the next call starts afresh).
    pub fn take_latencies(&self) -> metrics::Samples {
        self.env.take_latencies()
    }

    pub fn workers(&self) -> usize {
        self.env.pool.size()
    }

    /// Starts the list's new streams, stops those no longer listed, restarts those whose
    /// entry changed. A stream that cannot start (its detectors' model is missing, say) is
    /// reported and skipped; the others run.
    pub fn apply(&self, list: &StreamList) -> Changes {
        self.env.apply(list)
    }

    /// Once a second or so: lets lost streams' input_loss grow, lets go of streams that
    /// finished, and starts the streams that waited for their previous run to finish.
    pub fn tick(&self) {
        self.env.accrue_process();
        let mut streams = lock(&self.env.streams);
        for s in streams.values() {
            s.tick(&self.env);
        }
        {
            let mut stopping = lock(&self.env.stopping);
            for s in stopping.iter_mut() {
                if s.shared.stats.finished.load(Ordering::SeqCst) {
                    s.join_reader();
                }
            }
            stopping.retain(|s| !s.shared.stats.finished.load(Ordering::SeqCst));
        }
        let mut waiting = lock(&self.env.waiting);
        if !waiting.is_empty() {
            let _ = self.env.start_waiting(&mut streams, &mut waiting);
        }
    }

    /// Streams still monitored (a file stream finishes at its end).
    pub fn running(&self) -> usize {
        self.env.running().len()
    }

    /// Every stream's shared state, finished ones included, by id.
    pub fn streams(&self) -> Vec<Arc<StreamState>> {
        lock(&self.env.streams)
            .values()
            .map(|s| s.shared.clone())
            .collect()
    }

    /// Reports of the streams finished so far: the latest run's of each id.
    pub fn reports(&self) -> Vec<StreamReport> {
        lock(&self.env.reports).clone()
    }

    /// Stops every stream (closing open incidents, writing reports), waits for them (at
    /// most `grace`), then stops the pool and the notifiers.
    pub fn shutdown(self, grace: Duration) -> Finished {
        let env = self.env;
        {
            let mut streams = lock(&env.streams);
            lock(&env.waiting).clear();
            let mut stopping = lock(&env.stopping);
            for (_, stream) in std::mem::take(&mut *streams) {
                stream.stop(&env);
                stopping.push(stream);
            }
        }
        let until = Instant::now() + grace;
        loop {
            let pending = lock(&env.stopping)
                .iter()
                .filter(|s| !s.shared.stats.finished.load(Ordering::SeqCst))
                .count();
            if pending == 0 || Instant::now() >= until {
                if pending > 0 {
                    tracing::error!("{pending} stream(s) did not finish within {grace:?}; their reports are missing");
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for s in lock(&env.stopping).iter_mut() {
            if s.shared.stats.finished.load(Ordering::SeqCst) {
                s.join_reader();
            }
        }
        lock(&env.stopping).clear();
        if env.sink().is_some() {
            let _ = std::fs::remove_dir_all(&env.chunk_dir);
        }
        env.pool.shutdown();
        let reports = lock(&env.reports).clone();
        let notifiers = env
            .notifiers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let webhooks = notifiers
            .map(|n| n.finish_within(crate::SHUTDOWN_DRAIN))
            .unwrap_or_default();
        Finished { reports, webhooks }
    }
}
