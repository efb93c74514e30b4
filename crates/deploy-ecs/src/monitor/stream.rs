//! One monitored stream: a reader thread that only waits on the source (FFmpeg's demuxer,
//! reconnecting with backoff), and an actor on the CPU pool that decodes, runs the detectors
//! and the aggregator through the transport, and notifies.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use vqa_converter::{ChunkWriter, Decoding, FfmpegConverter, OpenError, Read};
use vqa_core::report::IncidentKind;
use vqa_core::step::{Detection, Outcome, Release, Step, StepLayer};
use vqa_core::transport::{Artifact, ArtifactKey};
use vqa_core::{
    Detector, IncidentAggregator, IncidentEvent, Micros, Segment, SegmentReport, StreamId,
    StreamReport, StreamSummary, TransportError,
};

use super::ab::{Comparison, Side};
use super::chunked::Chunked;
use super::list::{MonitorSettings, StreamSpec};
use super::{lock, Env};

/// Segments one scheduling slice processes before letting other streams run.
const SLICE_SEGMENTS: u32 = 2;
/// Packets one slice decodes at most (a stream with no complete segment yet still yields).
const SLICE_PACKETS: u32 = 400;
/// Packets one stream may have queued whatever their timestamps say.
const MAX_QUEUED_PACKETS: usize = 20_000;
/// Spacing of the (stream time → arrival) samples kept to time alerts.
const ARRIVAL_GRID: Micros = 100_000;
/// How much of that history is kept (stream time).
const ARRIVAL_HISTORY: Micros = 600_000_000;

/// What the reader hands the actor.
pub(super) enum Item {
    /// A (re)connection: its decoders, and where on the stream's timeline it starts; in
    /// the distributed topology, the chunk writer for its packets and their origin.
    Connected {
        decoding: Box<Decoding>,
        start: Micros,
        writer: Option<ChunkWriter>,
        origin: Micros,
    },
    Packet(Read, Instant),
    /// Reading failed (the source went silent or the connection broke).
    Lost(String),
    /// A connection attempt failed.
    Unreachable(String),
    /// Time passes while the input is lost (from the monitor's clock).
    Tick,
    /// A local file ended.
    End,
    /// The stream cannot be monitored at all.
    Fatal(String),
    /// The stream was removed, or the monitor is stopping.
    Stop,
}

/// Figures the metrics endpoint and the summary read.
#[derive(Default)]
pub struct StreamStats {
    pub up: AtomicBool,
    pub segments: AtomicU64,
    pub video_frames: AtomicU64,
    pub shed_frames: AtomicU64,
    pub losses: AtomicU64,
    pub reconnects: AtomicU64,
    pub incidents_open: AtomicU64,
    pub incidents_closed: AtomicU64,
    pub notifications: AtomicU64,
    /// With both topologies side by side: incidents they disagree on.
    pub divergences: AtomicU64,
    /// End of the last segment applied by the aggregator, µs of stream time.
    pub analysed: AtomicI64,
    /// Largest lag seen, µs.
    pub max_lag: AtomicI64,
    /// Media read but not yet decoded, µs.
    pub queued: AtomicI64,
    pub finished: AtomicBool,
    /// What each topology side has cost so far.
    pub cost: super::cost::StreamCost,
    /// TR 101 290 errors found, per indicator (in `vqa_core::model::TS_INDICATORS`' order);
    /// a condition lasting over several segments counts once.
    pub ts_errors: [AtomicU64; vqa_core::model::TS_INDICATORS.len()],
    /// SCTE-35 cues decoded, per command (in [`SCTE35_COMMANDS`]' order).
    pub scte35_cues: [AtomicU64; SCTE35_COMMANDS.len()],
}

/// The SCTE-35 commands counted apart in `/metrics`; `other` takes the rest.
pub const SCTE35_COMMANDS: [&str; 4] = ["splice_insert", "time_signal", "splice_null", "other"];

impl StreamStats {
    /// Counts the SCTE-35 cues a segment carries, heartbeats included.
    pub(super) fn count_splice_cues(&self, cues: &[vqa_core::model::SpliceCue]) {
        for cue in cues {
            let name = vqa_core::model::SpliceCue::command_name(cue.command);
            let i = SCTE35_COMMANDS
                .iter()
                .position(|c| *c == name)
                .unwrap_or(SCTE35_COMMANDS.len() - 1);
            self.scte35_cues[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts the TS health errors a segment carries.
    pub(super) fn count_ts_errors(&self, events: &[vqa_core::model::TsEvent]) {
        for e in events.iter().filter(|e| e.found_here()) {
            let known = vqa_core::model::TS_INDICATORS
                .iter()
                .position(|name| *name == e.indicator);
            if let Some(counter) = known.and_then(|i| self.ts_errors.get(i)) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The live edge: the newest packet read and when it arrived.
struct Clock {
    newest: Micros,
    arrived: Instant,
}

struct Queue {
    items: VecDeque<Item>,
    /// Stream time of the newest packet queued and of the last one taken.
    newest: Option<Micros>,
    taken: Option<Micros>,
}

impl Queue {
    fn span(&self) -> Micros {
        match (self.newest, self.taken) {
            (Some(n), Some(t)) => (n - t).max(0),
            _ => 0,
        }
    }
}

/// Shared by the reader, the actor and the monitor.
pub struct Shared {
    pub spec: StreamSpec,
    pub stats: StreamStats,
    queue: Mutex<Queue>,
    room: Condvar,
    scheduled: AtomicBool,
    stop: Arc<AtomicBool>,
    clock: Mutex<Clock>,
    arrivals: Mutex<VecDeque<(Micros, Instant)>>,
    actor: Mutex<Actor>,
    /// Incidents open now, by kind and channel.
    open: Mutex<BTreeSet<(IncidentKind, Option<u16>)>>,
    pub report_path: Option<PathBuf>,
    pub error: Mutex<Option<String>>,
    /// With both topologies side by side (`--topology ab`): their comparison, and each
    /// side's report once it has one.
    ab: Option<Mutex<AbState>>,
}

#[derive(Default)]
struct AbState {
    comparison: Comparison,
    single: Option<StreamReport>,
    distributed: Option<Result<StreamReport, String>>,
}

impl Shared {
    /// How far analysis is behind the live edge, seconds: from the end of what the
    /// aggregator applied to the end of the last whole segment read (the segment still
    /// arriving cannot be analysed yet, so it is not lag).
    pub fn lag_seconds(&self) -> f64 {
        let newest = lock(&self.clock).newest;
        let segment = self.spec.config.segment_length().max(1);
        let complete = newest.div_euclid(segment) * segment;
        let analysed = self.stats.analysed.load(Ordering::Relaxed);
        (complete - analysed).max(0) as f64 / 1e6
    }

    /// Media time now, as the source's clock runs: the newest packet plus the time since.
    pub(super) fn media_now(&self) -> Micros {
        let c = lock(&self.clock);
        c.newest + c.arrived.elapsed().as_micros() as Micros
    }

    /// When the media at `t` arrived, if still remembered.
    fn arrival_of(&self, t: Micros) -> Option<Instant> {
        let a = lock(&self.arrivals);
        let i = a.partition_point(|(time, _)| *time < t);
        a.get(i).map(|(_, at)| *at)
    }

    pub fn is_lost(&self) -> bool {
        !self.stats.up.load(Ordering::Relaxed) && !self.stats.finished.load(Ordering::Relaxed)
    }
}

/// A running stream, as the monitor holds it.
pub struct Stream {
    pub shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
}

impl Stream {
    pub fn start(spec: StreamSpec, env: &Arc<Env>) -> Result<Stream, crate::ServiceError> {
        let detectors =
            vqa_detectors::from_config(&spec.config).map_err(|e| crate::ServiceError::Stream {
                stream: spec.id.to_string(),
                reason: e.to_string(),
            })?;
        let shed: Vec<_> = env
            .settings
            .shed
            .clone()
            .unwrap_or_else(|| vqa_core::DetectorName::ALL.to_vec());
        let (thinned, full): (Vec<_>, Vec<_>) = detectors
            .into_iter()
            .partition(|d| d.needs_pictures() && shed.contains(&d.name()));
        let report_path = env
            .reports_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.json", spec.id)));
        let shared = Arc::new_cyclic(|weak| Shared {
            stats: StreamStats::default(),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                newest: None,
                taken: None,
            }),
            room: Condvar::new(),
            scheduled: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
            clock: Mutex::new(Clock {
                newest: 0,
                arrived: Instant::now(),
            }),
            arrivals: Mutex::default(),
            actor: Mutex::new(Actor {
                decoding: None,
                summary: None,
                step: Step::new(env.transport.clone()).layer(Arc::new(StreamEvents {
                    shared: weak.clone(),
                    env: Arc::downgrade(env),
                })),
                aggregator: IncidentAggregator::new(&spec.config),
                full,
                thinned,
                next_index: 0,
                timeline_end: 0,
                lost_since: None,
                attempts: 0,
                lost_total: 0,
                worst_thinning: 1,
                last_arrival: None,
                snapshot_at: 0,
                finished: false,
                last_error: None,
                chunked: None,
            }),
            open: Mutex::default(),
            report_path,
            error: Mutex::new(None),
            ab: env.ab().then(Mutex::default),
            spec,
        });
        if let Some(sink) = env.sink() {
            let dir = env.chunk_dir.join(format!(
                "{}-{}",
                shared.spec.id,
                env.runs.fetch_add(1, Ordering::Relaxed)
            ));
            let chunked = Chunked::open(sink.as_ref(), &shared, env, dir).map_err(|reason| {
                crate::ServiceError::Stream {
                    stream: shared.spec.id.to_string(),
                    reason,
                }
            })?;
            lock(&shared.actor).chunked = Some(chunked);
        }
        let reader = {
            let (shared, env) = (shared.clone(), env.clone());
            std::thread::Builder::new()
                .name(format!("vqa-read-{}", shared.spec.id))
                .stack_size(256 * 1024)
                .spawn(move || read_loop(&shared, &env))
                .map_err(|e| crate::ServiceError::system("start a stream's reader thread", e))?
        };
        Ok(Stream {
            shared,
            reader: Some(reader),
        })
    }

    /// Asks the stream to finish: the reader lets go of its source at once, the actor
    /// closes what is open and writes the report.
    pub fn stop(&self, env: &Arc<Env>) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.room.notify_all();
        push(&self.shared, env, Item::Stop, false);
    }

    /// Tells a lost stream time has passed (so its input_loss incident grows and is
    /// announced even while every reconnection attempt hangs).
    pub fn tick(&self, env: &Arc<Env>) {
        if self.shared.is_lost() {
            push(&self.shared, env, Item::Tick, false);
        }
    }

    pub fn join_reader(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Queues an item (waiting for room if asked and the stream is not stopping) and makes sure
/// the actor will run.
fn push(shared: &Arc<Shared>, env: &Arc<Env>, item: Item, wait_for_room: bool) {
    {
        let mut q = lock(&shared.queue);
        if wait_for_room {
            let limit = (env.settings.queue_seconds * 1e6) as Micros;
            while (q.span() > limit || q.items.len() >= MAX_QUEUED_PACKETS)
                && !shared.stop.load(Ordering::SeqCst)
            {
                q = shared
                    .room
                    .wait_timeout(q, Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        if let Item::Packet(Read::Packet(_, Some(t)), _) = &item {
            q.newest = Some(q.newest.map_or(*t, |n| n.max(*t)));
            if q.taken.is_none() {
                q.taken = Some(*t);
            }
        }
        q.items.push_back(item);
        shared
            .stats
            .queued
            .store(q.span(), std::sync::atomic::Ordering::Relaxed);
    }
    schedule(shared, env);
}

fn schedule(shared: &Arc<Shared>, env: &Arc<Env>) {
    if !shared.scheduled.swap(true, Ordering::SeqCst) {
        let (shared, env2) = (shared.clone(), env.clone());
        env.pool.submit(move || run(&shared, &env2));
    }
}

/// Sleeps up to `d`, waking early when the stream stops.
fn nap(shared: &Shared, d: Duration) {
    let until = Instant::now() + d;
    while !shared.stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// The reader thread: connects, reads packets, reconnects with backoff.
fn read_loop(shared: &Arc<Shared>, env: &Arc<Env>) {
    let spec = &shared.spec;
    let settings: &MonitorSettings = &env.settings;
    let segment = spec.config.segment_length().max(1);
    let mut backoff = settings.reconnect_min;
    let mut shifted = false;
    while !shared.stop.load(Ordering::SeqCst) {
        let opened = if spec.is_url() {
            FfmpegConverter::open_url_interruptible(
                &spec.url,
                spec.id.clone(),
                &spec.config,
                Some(shared.stop.clone()),
            )
        } else {
            FfmpegConverter::open(
                std::path::Path::new(&spec.url),
                spec.id.clone(),
                &spec.config,
            )
        };
        let converter = match opened {
            _ if shared.stop.load(Ordering::SeqCst) => return,
            Ok(c) => c,
            Err(e @ OpenError::ProtocolNotAllowed(..)) => {
                return push(shared, env, Item::Fatal(e.to_string()), false)
            }
            Err(e) if !spec.is_url() => {
                return push(shared, env, Item::Fatal(e.to_string()), false)
            }
            Err(e) => {
                shifted = true;
                push(shared, env, Item::Unreachable(e.to_string()), false);
                nap(shared, Duration::from_secs_f64(backoff));
                backoff = (backoff * 2.0).min(settings.reconnect_max);
                continue;
            }
        };
        backoff = settings.reconnect_min;
        // The first connection keeps the source's own timeline (reports match `vqa analyze`);
        // after a loss the stream goes on where the media clock is, at a segment boundary.
        let start = if shifted {
            let now = shared.media_now();
            now.div_euclid(segment) * segment + if now % segment == 0 { 0 } else { segment }
        } else {
            0
        };
        shifted = true;
        let (mut reader, decoding) = converter.split();
        reader.continue_at(start);
        let decoding = Box::new(decoding);
        let writer = env
            .sink()
            .map(|sink| ChunkWriter::new(&reader, &spec.config, sink.windows()));
        let origin = reader.origin();
        let connected = Item::Connected {
            decoding,
            start,
            writer,
            origin,
        };
        push(shared, env, connected, false);
        let paced_from = Instant::now();
        let mut first: Option<Micros> = None;
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            match reader.read() {
                Read::Packet(packet, time) => {
                    if let (true, Some(t)) = (spec.realtime, time) {
                        // Replay a file as a live source sends it: at its timestamps' pace.
                        let from = *first.get_or_insert(t);
                        let ahead = (t - from).max(0) as f64 / spec.speed;
                        let due = paced_from + Duration::from_micros(ahead as u64);
                        nap(shared, due.saturating_duration_since(Instant::now()));
                    }
                    let now = Instant::now();
                    if let Some(t) = time {
                        let mut c = lock(&shared.clock);
                        if t >= c.newest {
                            c.newest = t;
                            c.arrived = now;
                        }
                        drop(c);
                        let mut a = lock(&shared.arrivals);
                        if a.back().is_none_or(|(last, _)| t >= last + ARRIVAL_GRID) {
                            a.push_back((t, now));
                            // The reader's own CPU, for the distributed side's cost.
                            let cpu = crate::resources::thread_cpu_time().as_nanos() as u64;
                            shared
                                .stats
                                .cost
                                .reader_cpu_nanos
                                .store(cpu, Ordering::Relaxed);
                            while a.front().is_some_and(|(f, _)| *f < t - ARRIVAL_HISTORY) {
                                a.pop_front();
                            }
                        }
                    }
                    push(
                        shared,
                        env,
                        Item::Packet(Read::Packet(packet, time), now),
                        true,
                    );
                }
                Read::Damaged => push(
                    shared,
                    env,
                    Item::Packet(Read::Damaged, Instant::now()),
                    true,
                ),
                Read::End if !spec.is_url() && spec.looped => break, // from the start again
                Read::End if !spec.is_url() => return push(shared, env, Item::End, true),
                // A live source has no end: one that says it ended is lost until it is back.
                Read::End => {
                    push(
                        shared,
                        env,
                        Item::Lost("the source ended the stream".into()),
                        true,
                    );
                    break;
                }
                Read::Failed(e) => {
                    push(shared, env, Item::Lost(e), true);
                    break;
                }
            }
        }
    }
}

/// The actor's state: everything the stream's CPU work needs, used by one worker at a time.
struct Actor {
    decoding: Option<Box<Decoding>>,
    /// The last connection's summary (media, warnings), for the report.
    summary: Option<StreamSummary>,
    /// The pipeline step, with the layer that notifies this stream's incidents.
    step: Step,
    aggregator: IncidentAggregator,
    /// Detectors that always see every picture, and those that shed pictures under load.
    full: Vec<Box<dyn Detector>>,
    thinned: Vec<Box<dyn Detector>>,
    next_index: u64,
    /// End of the last segment handed to the aggregator.
    timeline_end: Micros,
    /// Whether an input_loss is open, and failed attempts since it began.
    lost_since: Option<Micros>,
    attempts: u64,
    lost_total: Micros,
    worst_thinning: u32,
    /// When the packet that completed the latest segment arrived.
    last_arrival: Option<Instant>,
    /// Where the report was last rewritten (stream time).
    snapshot_at: Micros,
    finished: bool,
    last_error: Option<String>,
    /// In the distributed topology: the stream's chunking, which replaces all of the above.
    chunked: Option<Chunked>,
}

/// One scheduling slice of a stream's actor on a pool worker.
fn run(shared: &Arc<Shared>, env: &Arc<Env>) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slice(shared, env)));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("handoff failed: {e}")),
        Err(_) => Some("internal error (a bug: please report it with the input)".to_string()),
    };
    if let Some(why) = failure {
        tracing::error!("stream {}: {why}; monitoring of it stopped", shared.spec.id);
        *lock(&shared.error) = Some(why);
        shared.stop.store(true, Ordering::SeqCst);
        shared.stats.up.store(false, Ordering::SeqCst);
        shared.stats.finished.store(true, Ordering::SeqCst);
        lock(&shared.queue).items.clear();
        shared.room.notify_all();
        return; // stays scheduled: nothing runs for it again
    }
    shared.scheduled.store(false, Ordering::SeqCst);
    if !lock(&shared.queue).items.is_empty() && !shared.stats.finished.load(Ordering::SeqCst) {
        schedule(shared, env);
    }
}

fn slice(shared: &Arc<Shared>, env: &Arc<Env>) -> Result<(), TransportError> {
    let mut actor = lock(&shared.actor);
    let (mut segments, mut packets) = (0, 0);
    while segments < SLICE_SEGMENTS && packets < SLICE_PACKETS && !actor.finished {
        let item = {
            let mut q = lock(&shared.queue);
            let item = q.items.pop_front();
            if let Some(Item::Packet(Read::Packet(_, Some(t)), _)) = &item {
                q.taken = Some(*t);
            }
            shared.stats.queued.store(q.span(), Ordering::Relaxed);
            item
        };
        shared.room.notify_all();
        let Some(item) = item else { break };
        if matches!(item, Item::Packet(..)) {
            packets += 1;
        }
        segments += actor.handle(item, shared, env)?;
    }
    if actor.finished {
        // Nothing more is handled (in the distributed topology the stream is finished only
        // when its last chunk's report is back): what is still queued would only make the
        // actor run again and again until then.
        lock(&shared.queue).items.clear();
        shared.room.notify_all();
    }
    Ok(())
}

impl Actor {
    /// Handles one item; returns the segments it analysed.
    fn handle(
        &mut self,
        mut item: Item,
        shared: &Arc<Shared>,
        env: &Arc<Env>,
    ) -> Result<u32, TransportError> {
        if let Some(chunked) = self.chunked.as_mut() {
            // Beside the stages (`--topology ab`), the chunking's CPU is the distributed
            // side's cost.
            let cpu = env.ab().then(crate::resources::thread_cpu_time);
            chunked.observe(&mut item, shared);
            let Some(cpu) = cpu else {
                self.finished = chunked.ended;
                return Ok(0);
            };
            let took = crate::resources::thread_cpu_time().saturating_sub(cpu);
            let chunking = &shared.stats.cost.chunking_cpu_nanos;
            chunking.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        }
        let id = &shared.spec.id;
        match item {
            Item::Packet(read, arrived) => {
                let Some(decoding) = self.decoding.as_mut() else {
                    return Ok(0);
                };
                decoding.push(read);
                self.last_arrival = Some(arrived);
                self.drain(shared, env)
            }
            Item::Connected {
                mut decoding,
                start,
                ..
            } => {
                // A looped file starting again: what the previous pass still holds first.
                let n = self.flush(Read::End, shared, env)?;
                if self.lost_since.is_some() {
                    self.report_loss(start, shared)?;
                    self.lost_since = None;
                    shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("stream {id}: input back at {:.1} s", start as f64 / 1e6);
                }
                decoding.continue_at(start, self.next_index);
                self.summary = Some(decoding.summary());
                self.decoding = Some(decoding);
                shared.stats.up.store(true, Ordering::SeqCst);
                Ok(n)
            }
            Item::Lost(why) => {
                let n = self.flush(Read::Failed(why.clone()), shared, env)?;
                tracing::warn!("stream {id}: input lost ({why}); reconnecting");
                self.begin_loss(why, shared);
                self.report_loss(shared.media_now(), shared)?;
                Ok(n)
            }
            Item::Unreachable(why) => {
                self.attempts += 1;
                if self.lost_since.is_none() {
                    tracing::warn!("stream {id}: cannot open the input ({why}); retrying");
                    self.begin_loss(why, shared);
                }
                self.report_loss(shared.media_now(), shared)?;
                Ok(0)
            }
            Item::Tick => {
                if self.lost_since.is_some() {
                    self.report_loss(shared.media_now(), shared)?;
                }
                Ok(0)
            }
            Item::End | Item::Stop => {
                let n = self.flush(Read::End, shared, env)?;
                self.finish(shared, env)?;
                Ok(n)
            }
            Item::Fatal(why) => {
                tracing::error!(
                    "stream {id} ({}): {why}",
                    vqa_core::redact_url(&shared.spec.url)
                );
                *lock(&shared.error) = Some(why.clone());
                self.last_error = Some(why);
                self.finish(shared, env)?;
                Ok(0)
            }
        }
    }

    fn begin_loss(&mut self, why: String, shared: &Shared) {
        self.lost_since = Some(self.timeline_end);
        self.last_error = Some(why);
        shared.stats.up.store(false, Ordering::SeqCst);
        shared.stats.losses.fetch_add(1, Ordering::Relaxed);
    }

    /// Ends the current connection's decoding and analyses what it still holds.
    fn flush(
        &mut self,
        read: Read,
        shared: &Arc<Shared>,
        env: &Arc<Env>,
    ) -> Result<u32, TransportError> {
        let Some(decoding) = self.decoding.as_mut() else {
            return Ok(0);
        };
        decoding.push(read);
        let n = self.drain(shared, env)?;
        if let Some(d) = self.decoding.take() {
            self.summary = Some(d.summary());
        }
        Ok(n)
    }

    /// Analyses every segment the decoders completed.
    fn drain(&mut self, shared: &Arc<Shared>, env: &Arc<Env>) -> Result<u32, TransportError> {
        let mut n = 0;
        while let Some(segment) = self.decoding.as_mut().and_then(|d| d.next_segment()) {
            self.analyse(segment, shared, env)?;
            n += 1;
        }
        Ok(n)
    }

    fn analyse(
        &mut self,
        segment: Segment,
        shared: &Arc<Shared>,
        env: &Arc<Env>,
    ) -> Result<(), TransportError> {
        let stats = &shared.stats;
        let newest = lock(&shared.clock).newest;
        let lag = (newest - segment.end).max(0);
        stats.max_lag.fetch_max(lag, Ordering::Relaxed);
        let shed_after = (env.settings.shed_after * 1e6) as Micros;
        // A file read as fast as it decodes has no live edge to fall behind: it waits on the
        // queue instead (back-pressure) and every detector sees every picture.
        let keep_every = if lag > shed_after && shared.spec.is_live() {
            (1 + lag / shed_after.max(1)).min(8) as u32
        } else {
            1
        };
        self.worst_thinning = self.worst_thinning.max(keep_every);
        let frames = segment.video.len() as u64;
        stats.count_ts_errors(&segment.ts_events);
        stats.count_splice_cues(&segment.splice_cues);
        let end = segment.end;
        let index = segment.index;
        let detection = Detection::shedding(&self.full, &self.thinned, keep_every);
        let (_, shed) = block_on(self.step.run(&detection, &self.aggregator, segment))?;
        self.next_index = index + 1;
        self.timeline_end = self.timeline_end.max(end);
        stats.analysed.store(self.timeline_end, Ordering::Relaxed);
        stats.segments.fetch_add(1, Ordering::Relaxed);
        stats.video_frames.fetch_add(frames, Ordering::Relaxed);
        stats.shed_frames.fetch_add(shed, Ordering::Relaxed);
        if let Some(at) = self.last_arrival {
            env.metrics.observe_segment(at.elapsed().as_secs_f64());
        }
        let every = (env.settings.report_every * 1e6) as Micros;
        if every > 0 && self.timeline_end - self.snapshot_at >= every {
            self.snapshot_at = self.timeline_end;
            self.snapshot(shared)?;
        }
        Ok(())
    }

    /// Hands the aggregator a segment of lost input from the end of the timeline to `until`.
    fn report_loss(&mut self, until: Micros, shared: &Arc<Shared>) -> Result<(), TransportError> {
        let start = self.timeline_end;
        if until <= start {
            return Ok(());
        }
        let report = SegmentReport::input_loss(
            shared.spec.id.clone(),
            self.next_index,
            start,
            until,
            self.attempts,
        );
        let key = ArtifactKey::findings(&report.stream, report.index);
        let findings = Artifact::Findings(Arc::new(report));
        let handle = block_on(self.step.transport().put(key, findings))?;
        block_on(
            self.step
                .aggregate(&self.aggregator, &[handle], Release::Now),
        )?;
        self.next_index += 1;
        self.lost_total += until - start;
        self.timeline_end = until;
        shared.stats.analysed.store(until, Ordering::Relaxed);
        Ok(())
    }

    /// Rewrites the stream's report as it stands (incidents still open end where analysis is).
    fn snapshot(&mut self, shared: &Arc<Shared>) -> Result<(), TransportError> {
        let Some(path) = &shared.report_path else {
            return Ok(());
        };
        let mut summary = self.current_summary(shared);
        summary.complete = false;
        summary.warnings.push(format!(
            "the stream is still monitored: this report covers it up to {:.1} s; incidents still open end there",
            self.timeline_end as f64 / 1e6
        ));
        let report = block_on(
            self.step
                .snapshot(&self.aggregator, &shared.spec.id, summary),
        )?;
        crate::write_report_or_log(&shared.spec.id, path, &report);
        Ok(())
    }

    /// What the converter knows of the stream now.
    fn current_summary(&self, shared: &Shared) -> StreamSummary {
        match (&self.decoding, &self.summary) {
            (Some(d), _) => d.summary(),
            (None, Some(s)) => s.clone(),
            (None, None) => StreamSummary {
                input: vqa_core::redact_url(&shared.spec.url),
                ..Default::default()
            },
        }
    }

    /// Closes what is open, writes the stream report, and stops.
    fn finish(&mut self, shared: &Arc<Shared>, env: &Arc<Env>) -> Result<(), TransportError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let spec = &shared.spec;
        let mut summary = self.current_summary(shared);
        if self.lost_total > 0 {
            let n = shared.stats.losses.load(Ordering::Relaxed);
            summary
                .warnings
                .push(vqa_core::chunk::loss_warning(n, self.lost_total));
            summary.complete = false;
        }
        if self.worst_thinning > 1 {
            let names: Vec<_> = self.thinned.iter().map(|d| d.name().as_str()).collect();
            summary.warnings.push(format!(
                "analysis fell behind real time: {} picture(s) were shed, {} saw as few as 1 picture in {}",
                shared.stats.shed_frames.load(Ordering::Relaxed),
                names.join(", "),
                self.worst_thinning
            ));
        }
        if let (Some(e), None) = (&self.last_error, &self.summary) {
            summary.warnings.push(format!("never analysed: {e}"));
            summary.complete = false;
        }
        let (report, _) = block_on(self.step.finish(&self.aggregator, &spec.id, summary))?;
        if env.ab() {
            side_finished(shared, env, Side::Single, Ok(report));
            return Ok(());
        }
        if let Some(path) = &shared.report_path {
            crate::write_report_or_log(&spec.id, path, &report);
        }
        shared.stats.up.store(false, Ordering::SeqCst);
        shared.stats.finished.store(true, Ordering::SeqCst);
        env.keep_report(report);
        Ok(())
    }
}

/// The monitor's layer around a stream's step: each incident opened or closed goes to the
/// notifiers (with the report's path), the open-incident gauge, the counters and the alert
/// latency histogram. It holds the stream and the monitor weakly: the stream holds it.
struct StreamEvents {
    shared: Weak<Shared>,
    env: Weak<Env>,
}

#[async_trait::async_trait]
impl StepLayer for StreamEvents {
    async fn after(&self, _stream: &StreamId, _segment: u64, outcome: &Outcome<'_>) {
        let events = outcome.events();
        if events.is_empty() {
            return;
        }
        if let (Some(shared), Some(env)) = (self.shared.upgrade(), self.env.upgrade()) {
            notify(events, &shared, &env);
            if env.ab() {
                let analysed = shared.stats.analysed.load(Ordering::Relaxed);
                compare(&shared, Side::Single, events, analysed);
            }
        }
    }
}

pub(super) fn notify(events: &[IncidentEvent], shared: &Shared, env: &Env) {
    let stats = &shared.stats;
    let mut open = lock(&shared.open);
    for e in events {
        match e {
            IncidentEvent::Opened {
                kind,
                channel,
                start,
            } => {
                open.insert((*kind, *channel));
                if *kind != IncidentKind::InputLoss {
                    // Timed from when it qualified: its start plus its kind's minimum
                    // duration, the earliest any monitor could announce it.
                    let due = start + shared.spec.config.rule(*kind).min_duration;
                    if let Some(at) = shared.arrival_of(due) {
                        env.metrics.observe_alert(at.elapsed().as_secs_f64());
                    }
                }
            }
            IncidentEvent::Closed(i) => {
                open.remove(&(i.kind, i.channel));
                stats.incidents_closed.fetch_add(1, Ordering::Relaxed);
            }
        }
        stats.notifications.fetch_add(1, Ordering::Relaxed);
        let report = shared.report_path.as_ref().map(|p| p.display().to_string());
        if let Some(n) = env
            .notifiers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            n.send_with_report(&shared.spec.id, e, report.as_deref());
        }
    }
    stats
        .incidents_open
        .store(open.len() as u64, Ordering::Relaxed);
}

/// One side's incidents (`--topology ab`): compared with the other side's; a divergence is
/// counted and logged as soon as both have analysed past it.
pub(super) fn compare(shared: &Shared, side: Side, events: &[IncidentEvent], analysed: Micros) {
    let Some(ab) = &shared.ab else { return };
    let mut ab = lock(ab);
    let n = ab.comparison.events(side, events, analysed);
    found(shared, &ab.comparison, n);
}

fn found(shared: &Shared, comparison: &Comparison, n: usize) {
    if n == 0 {
        return;
    }
    shared
        .stats
        .divergences
        .fetch_add(n as u64, Ordering::Relaxed);
    for d in &comparison.divergences[comparison.divergences.len() - n..] {
        let show = |i: &Option<vqa_core::Incident>| {
            i.as_ref().map_or("none".to_string(), |i| {
                format!("{:.2}-{:.2} s", i.start as f64 / 1e6, i.end as f64 / 1e6)
            })
        };
        tracing::warn!(
            "stream {}: the topologies disagree on {}: single process {}, distributed {}",
            shared.spec.id,
            d.kind,
            show(&d.single),
            show(&d.distributed)
        );
    }
}

/// One side's report (`--topology ab`); once both are in, the stream's report — the single
/// process's, with the divergences — is written and the stream is finished.
pub(super) fn side_finished(
    shared: &Shared,
    env: &Env,
    side: Side,
    report: Result<StreamReport, String>,
) {
    let Some(ab) = &shared.ab else { return };
    let mut ab = lock(ab);
    let n = ab.comparison.finished(side);
    found(shared, &ab.comparison, n);
    match (side, report) {
        (Side::Single, Ok(r)) => ab.single = Some(r),
        (Side::Single, Err(e)) => tracing::error!("stream {}: {e}", shared.spec.id),
        (Side::Distributed, r) => ab.distributed = Some(r),
    }
    let (Some(single), Some(distributed)) = (&ab.single, &ab.distributed) else {
        return;
    };
    let mut report = ab.comparison.report(single.clone());
    report.cost = env
        .sides()
        .each()
        .iter()
        .map(|side| vqa_core::report::SideCost {
            topology: side.label().into(),
            usd: shared.stats.cost.usd(*side),
            usd_per_stream_hour: shared.stats.cost.usd_per_stream_hour(*side),
        })
        .collect();
    if let Err(e) = distributed {
        report.warnings.push(format!(
            "the distributed topology gave no report to compare with: {e}"
        ));
    }
    if let Some(path) = &shared.report_path {
        crate::write_report_or_log(&shared.spec.id, path, &report);
    }
    env.keep_report(report);
    shared.stats.up.store(false, Ordering::SeqCst);
    shared.stats.finished.store(true, Ordering::SeqCst);
}
