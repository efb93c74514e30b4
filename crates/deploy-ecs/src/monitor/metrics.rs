//! Prometheus `/metrics` and `/healthz` for `vqa monitor`.
//!
//! Per-stream figures are read from the streams' counters at each scrape (a removed stream
//! disappears from the next one); latencies are histograms.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::ab::Side;
use super::Env;
use crate::http;

/// Latency histograms the actors feed.
pub struct Metrics {
    /// From the arrival of the packet that completed a segment to the aggregator having
    /// applied it (its incidents notified), seconds.
    pub segment_latency: Histogram,
    /// From the arrival of the moment an incident qualified (its start plus its kind's
    /// minimum duration) to its `opened` notification, seconds.
    pub alert_latency: Histogram,
    /// The latest raw values of both, for percentiles (`vqa bench --live`).
    samples: std::sync::Mutex<Samples>,
}

/// Raw latency values, seconds, the latest `MAX_SAMPLES` of each.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub segment: Vec<f64>,
    pub alert: Vec<f64>,
}

const MAX_SAMPLES: usize = 200_000;

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            segment_latency: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            alert_latency: Histogram::new(exponential_buckets(0.125, 1.5, 14)),
            samples: Default::default(),
        }
    }
}

impl Metrics {
    pub fn observe_segment(&self, seconds: f64) {
        self.segment_latency.observe(seconds);
        keep(&mut super::lock(&self.samples).segment, seconds);
    }

    pub fn observe_alert(&self, seconds: f64) {
        self.alert_latency.observe(seconds);
        keep(&mut super::lock(&self.samples).alert, seconds);
    }

    /// Takes the raw values observed so far.
    pub fn take_samples(&self) -> Samples {
        std::mem::take(&mut *super::lock(&self.samples))
    }
}

fn keep(v: &mut Vec<f64>, x: f64) {
    if v.len() >= MAX_SAMPLES {
        v.drain(..MAX_SAMPLES / 2);
    }
    v.push(x);
}

/// Reads every stream's counters at scrape time.
struct Streams(Arc<Env>);

impl fmt::Debug for Streams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Streams")
    }
}

fn scalar(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> fmt::Result {
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for Streams {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let env = &self.0;
        let streams = env.running();
        scalar(
            &mut encoder,
            "vqa_streams",
            "Streams being monitored.",
            ConstGauge::new(streams.len() as i64),
        )?;
        scalar(
            &mut encoder,
            "vqa_streams_waiting",
            "Streams listed that wait for their previous run (restarted, or removed and listed \
             again) to finish before they start; more than a few seconds means a run is stuck.",
            ConstGauge::new(super::lock(&env.waiting).len() as i64),
        )?;
        scalar(
            &mut encoder,
            "vqa_workers",
            "Threads of the CPU pool decoding and detecting for every stream.",
            ConstGauge::new(env.pool.alive() as i64),
        )?;
        type Read = fn(&super::stream::Shared) -> f64;
        let per_stream: [(&str, &str, MetricType, Read); 13] = [
            (
                "vqa_stream_up",
                "1 while the stream's input is connected.",
                MetricType::Gauge,
                |s| f64::from(u8::from(s.stats.up.load(Ordering::Relaxed))),
            ),
            (
                "vqa_stream_lag_seconds",
                "How far analysis is behind the newest media read.",
                MetricType::Gauge,
                |s| s.lag_seconds(),
            ),
            (
                "vqa_stream_max_lag_seconds",
                "The largest lag seen.",
                MetricType::Gauge,
                |s| s.stats.max_lag.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            (
                "vqa_stream_queued_seconds",
                "Media read but not yet decoded.",
                MetricType::Gauge,
                |s| s.stats.queued.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            (
                "vqa_segments",
                "Segments analysed.",
                MetricType::Counter,
                |s| s.stats.segments.load(Ordering::Relaxed) as f64,
            ),
            (
                "vqa_video_frames",
                "Pictures decoded and analysed.",
                MetricType::Counter,
                |s| s.stats.video_frames.load(Ordering::Relaxed) as f64,
            ),
            (
                "vqa_shed_frames",
                "Pictures the shedding detectors skipped because analysis was behind real time.",
                MetricType::Counter,
                |s| s.stats.shed_frames.load(Ordering::Relaxed) as f64,
            ),
            (
                "vqa_input_losses",
                "Times the input was lost.",
                MetricType::Counter,
                |s| s.stats.losses.load(Ordering::Relaxed) as f64,
            ),
            (
                "vqa_reconnects",
                "Times a lost input came back.",
                MetricType::Counter,
                |s| s.stats.reconnects.load(Ordering::Relaxed) as f64,
            ),
            (
                "vqa_incidents_open",
                "Incidents open now.",
                MetricType::Gauge,
                |s| s.stats.incidents_open.load(Ordering::Relaxed) as f64,
            ),
            (
                "vqa_incidents_closed",
                "Incidents closed.",
                MetricType::Counter,
                |s| s.stats.incidents_closed.load(Ordering::Relaxed) as f64,
            ),
            (
                "vqa_notifications",
                "Incident notifications sent (opened and closed).",
                MetricType::Counter,
                |s| s.stats.notifications.load(Ordering::Relaxed) as f64,
            ),
            (
                "vqa_ab_divergences",
                "With --topology ab: incidents the two topologies disagree on (one only, or another start or end).",
                MetricType::Counter,
                |s| s.stats.divergences.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, kind, read) in per_stream {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for s in &streams {
                let labels = [("stream", s.spec.id.as_str())];
                let m = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(read(s) as u64).encode(m)?,
                    _ => ConstGauge::new(read(s)).encode(m)?,
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "vqa_ts_errors",
            "MPEG-TS health (ETSI TR 101 290) errors found, per indicator: a condition (sync lost, a table, PID, PCR or PTS absent) counts once however long it lasts. 0 where the input is not an MPEG-TS.",
            None,
            MetricType::Counter,
        )?;
        for s in &streams {
            for (i, (name, count)) in vqa_core::model::TS_INDICATORS
                .iter()
                .zip(&s.stats.ts_errors)
                .enumerate()
            {
                let priority = if i < vqa_core::model::TS_PRIORITY1_INDICATORS {
                    "1"
                } else {
                    "2"
                };
                let labels = [
                    ("stream", s.spec.id.as_str()),
                    ("indicator", name),
                    ("priority", priority),
                ];
                ConstCounter::new(count.load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "vqa_scte35_cues",
            "SCTE-35 splice cues decoded from an MPEG-TS input, per command (heartbeats included). 0 where the input is not an MPEG-TS or carries no SCTE-35.",
            None,
            MetricType::Counter,
        )?;
        for s in &streams {
            for (command, count) in super::stream::SCTE35_COMMANDS
                .iter()
                .zip(&s.stats.scte35_cues)
            {
                let labels = [("stream", s.spec.id.as_str()), ("command", command)];
                ConstCounter::new(count.load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let sides = env.sides().each();
        type Cost = fn(&super::cost::StreamCost, Side) -> f64;
        let cost: [(&str, &str, MetricType, Cost); 2] = [
            (
                "vqa_cost_usd_per_stream_hour",
                "What a topology side costs per hour of the stream, priced so far: its Fargate share of this process (CPU time, memory) and, distributed, its chunks' executions (transitions or requests and duration, Lambda requests and GB-seconds from task times in the history, S3 requests), over the time the stream has been monitored.",
                MetricType::Gauge,
                |c, side| c.usd_per_stream_hour(side),
            ),
            (
                "vqa_cost_usd",
                "What a topology side has cost on this stream so far, dollars (see vqa_cost_usd_per_stream_hour).",
                MetricType::Counter,
                |c, side| c.usd(side),
            ),
        ];
        for (name, help, kind, read) in cost {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for s in &streams {
                for side in sides {
                    let labels = [("stream", s.spec.id.as_str()), ("topology", side.label())];
                    let m = family.encode_family(&labels)?;
                    let value = read(&s.stats.cost, *side);
                    match kind {
                        MetricType::Counter => ConstCounter::new(value).encode(m)?,
                        _ => ConstGauge::new(value).encode(m)?,
                    }
                }
            }
        }
        let h = env.transport.metrics();
        for (name, help, value) in [
            (
                "vqa_handoff_requests",
                "Transport requests (put, get, delete, state load/store).",
                h.requests(),
            ),
            (
                "vqa_handoff_payload_bytes",
                "Bytes handed over (put and got) through the transport.",
                h.payload_bytes_put + h.payload_bytes_got,
            ),
            (
                "vqa_handoff_copied_bytes",
                "Bytes the transport copied (0 frame bytes in memory).",
                h.copied_bytes,
            ),
        ] {
            scalar(&mut encoder, name, help, ConstCounter::new(value))?;
        }
        scalar(
            &mut encoder,
            "vqa_handoff_seconds",
            "Time spent encoding and moving handoffs.",
            ConstCounter::new((h.encode_nanos + h.transfer_nanos) as f64 / 1e9),
        )?;
        Ok(())
    }
}

/// The registry `/metrics` serves.
pub fn registry(env: &Arc<Env>) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "vqa_segment_latency_seconds",
        "From the arrival of the packet completing a segment to its findings being applied and notified.",
        env.metrics.segment_latency.clone(),
    );
    registry.register(
        "vqa_alert_latency_seconds",
        "From the arrival of the moment an incident qualified (start + the kind's minimum duration) to its opened notification.",
        env.metrics.alert_latency.clone(),
    );
    registry.register_collector(Box::new(Streams(env.clone())));
    registry
}

/// The text `/metrics` serves (OpenMetrics), or `None` if it cannot be encoded.
pub fn text(registry: &Registry) -> Option<String> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).ok()?;
    Some(text)
}

/// Accepting stream lists over HTTP (`vqa monitor --control`): a detector shard is given
/// its streams by the router this way.
pub struct Control {
    /// The configuration lists are resolved against.
    pub base: vqa_core::PipelineConfig,
    /// The list last accepted, as sent.
    pub last: std::sync::Mutex<String>,
    /// When set, the control endpoints answer only requests carrying
    /// `Authorization: Bearer <token>` (`VQA_CONTROL_TOKEN`, shared with the router).
    /// Required unless the endpoint listens on loopback ([`serve`] refuses otherwise).
    pub token: Option<String>,
}

/// Whether a request carries the control token (always, when there is none).
pub fn authorized(request: &http::Request, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let expected = format!("Bearer {token}");
    request
        .header("Authorization")
        .any(|value| constant_time_eq(value, expected.as_bytes()))
}

/// Compares without stopping at the first difference (no timing hint about the token).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the monitor's endpoint accepts: [`http::Limits`]' defaults, whose body limit
/// (4 MiB) bounds a stream list.
pub fn limits() -> http::Limits {
    http::Limits::default()
}

fn put_streams(body: Vec<u8>, env: &Arc<Env>, control: &Control) -> http::Response {
    let Ok(text) = String::from_utf8(body) else {
        return http::Response::text(400, "the stream list is not UTF-8 text\n");
    };
    // Held while the list is applied: concurrent PUTs apply one after the other, and
    // `GET /streams` shows the list applied last.
    let mut last = super::lock(&control.last);
    match super::StreamList::parse_under(&text, &control.base, env.settings()) {
        Ok(list) => {
            let changes = env.apply(&list);
            *last = text;
            tracing::info!(
                "stream list over HTTP: added {:?}, removed {:?}, restarted {:?}",
                changes.added,
                changes.removed,
                changes.restarted
            );
            let body = serde_json::json!({
                "added": changes.added,
                "removed": changes.removed,
                "restarted": changes.restarted,
            });
            http::Response::text(200, format!("{body}\n"))
        }
        Err(e) => http::Response::text(400, format!("{e:#}; fix the stream list\n")),
    }
}

/// `GET /reports/ID`: a finished stream's report, from memory. `ID` is percent-decoded and
/// must be a stream id, so nothing but an id ever reaches the lookup.
fn report(encoded: &str, env: &Env) -> http::Response {
    let id = http::percent_decode(encoded).and_then(|b| String::from_utf8(b).ok());
    let Some(id) = id.filter(|id| super::list::stream_id_problem(id).is_none()) else {
        return http::Response::text(400, "GET /reports/ID: ID is not a stream id\n");
    };
    match env.report(&id).map(|r| serde_json::to_string_pretty(&r)) {
        Some(Ok(json)) => http::Response::new(200, "application/json", json),
        _ => http::Response::text(
            404,
            format!("no finished report for stream `{}`\n", id.escape_debug()),
        ),
    }
}

fn health(env: &Env) -> http::Response {
    let streams = env.running();
    let up = streams
        .iter()
        .filter(|s| s.stats.up.load(Ordering::Relaxed))
        .count();
    let healthy = env.pool.alive() == env.pool.size();
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "workers stopped" },
        "streams": streams.len(),
        "up": up,
        "workers": env.pool.alive(),
    });
    http::Response::new(
        if healthy { 200 } else { 503 },
        "application/json",
        format!("{body}\n"),
    )
}

fn answer(
    mut request: http::Request,
    env: &Arc<Env>,
    registry: &Registry,
    control: Option<&Control>,
) -> http::Response {
    let body = std::mem::take(&mut request.body);
    let path = request.path();
    let reports = path.strip_prefix("/reports/");
    if let Some(control) = control {
        if (path == "/streams" || reports.is_some())
            && !authorized(&request, control.token.as_deref())
        {
            return http::Response::text(
                401,
                "the control endpoints need Authorization: Bearer <VQA_CONTROL_TOKEN>\n",
            );
        }
    }
    match (request.method.as_str(), path, control) {
        ("PUT", "/streams", Some(control)) => put_streams(body, env, control),
        ("GET", "/streams", Some(control)) => {
            http::Response::new(200, "application/toml", super::lock(&control.last).clone())
        }
        ("GET", _, Some(_)) if reports.is_some() => report(reports.unwrap_or_default(), env),
        (_, "/streams", None) => {
            http::Response::text(405, "stream lists over HTTP need vqa monitor --control\n")
        }
        ("GET" | "HEAD", "/metrics", _) => match text(registry) {
            Some(text) => http::Response::new(
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            None => http::Response::text(500, "cannot encode the metrics\n"),
        },
        ("GET" | "HEAD", "/healthz", _) => health(env),
        _ => http::Response::text(404, "not found: try GET /metrics or /healthz\n"),
    }
}

/// Refuses `control` without a token on an address other machines reach.
pub fn refuse_unprotected(
    bound: &http::Bound,
    control: &Control,
) -> Result<(), crate::ServiceError> {
    if control.token.is_none() && !bound.is_loopback() {
        return Err(crate::ServiceError::ControlWithoutToken {
            addr: bound.addr().to_string(),
        });
    }
    Ok(())
}

/// Serves `/metrics` and `/healthz` on `bound` from a thread of its own; with `control`,
/// also `PUT /streams` (replace the stream list), `GET /streams` (the list last accepted)
/// and `GET /reports/ID` (a finished stream's report), every request within `limits`.
/// Refuses `control` without a token on an address other than loopback.
pub fn serve(
    bound: http::Bound,
    env: &Arc<Env>,
    control: Option<Control>,
    limits: http::Limits,
) -> Result<std::net::SocketAddr, crate::ServiceError> {
    if let Some(control) = &control {
        refuse_unprotected(&bound, control)?;
    }
    let registry = registry(env);
    let env = env.clone();
    let handler: http::Handler =
        Arc::new(move |request| answer(request, &env, &registry, control.as_ref()));
    http::serve(bound, "vqa-metrics", limits, handler)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vqa_core::chunk::Chunk;
    use vqa_core::cost::{dollars, PriceTable, Usage};
    use vqa_core::live::{ChunkEvents, ChunkJob, ChunkSink, ChunkStream};
    use vqa_core::topology::Orchestration;
    use vqa_core::{PipelineConfig, StreamId};

    use super::super::{Monitor, MonitorSettings, Stages, StreamList};
    use super::*;

    /// A sink that runs nothing and keeps the stream's events, so the test can report a
    /// chunk's usage as the distributed topology's client does; it counts the runs opened.
    #[derive(Default)]
    struct Held(
        std::sync::Mutex<Option<Arc<dyn ChunkEvents>>>,
        std::sync::atomic::AtomicUsize,
    );

    struct Discard;

    impl ChunkStream for Discard {
        fn submit(&mut self, job: ChunkJob) {
            if let Some(file) = job.file {
                let _ = std::fs::remove_file(file);
            }
        }
    }

    impl ChunkSink for Held {
        fn windows(&self) -> u64 {
            10
        }

        fn open(
            &self,
            _stream: &StreamId,
            _config: &PipelineConfig,
            _input: &str,
            events: Arc<dyn ChunkEvents>,
        ) -> Result<Box<dyn ChunkStream>, String> {
            *super::super::lock(&self.0) = Some(events);
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Box::new(Discard))
        }
    }

    /// The value of the sample `name{labels}` in `text`.
    fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
        let prefix = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    /// A UDP port nobody sends to: the stream stays up, waiting.
    const SILENT: &str = "udp://127.0.0.1:0";
    /// A missing file: the stream's own side ends at once.
    const MISSING: &str = "/nonexistent/clip.ts";

    /// A monitor with `stages` watching one stream, `s`, whose input never connects.
    fn monitoring_one_stream(stages: Stages, url: &str) -> Monitor {
        let settings = MonitorSettings {
            allow_local_files: true,
            ..MonitorSettings::default()
        };
        let monitor =
            Monitor::with_stages(settings, vqa_notify::Notifiers::new(None), None, stages)
                .expect("monitor");
        let list = StreamList::parse(
            &format!(
                "[monitor]\nallow_local_files = true\n[[stream]]\nid = \"s\"\nurl = \"{url}\"\n"
            ),
            &PipelineConfig::default(),
        )
        .expect("list");
        monitor.apply(&list);
        monitor
    }

    /// One stream `s` reading `url`, its black minimum `black` seconds.
    fn list_of_one(url: &str, black: f64) -> StreamList {
        StreamList::parse(
            &format!(
                "[monitor]\nallow_local_files = true\n[[stream]]\nid = \"s\"\nurl = \"{url}\"\n\
                 [stream.config]\nblack = {{ min_duration = {black} }}\n"
            ),
            &PipelineConfig::default(),
        )
        .expect("list")
    }

    #[test]
    fn a_restarted_stream_starts_only_once_its_previous_run_has_finished() {
        // Two runs of one id share its keys in the transport (segments, aggregator state):
        // overlapping, the new run took over the old one's state and notified its incidents
        // closed a second time (the soak found it). An `ab` stream is finished only once its
        // distributed side reports, so the test holds the old run open as long as it likes.
        let sink = Arc::new(Held::default());
        let opened = || sink.1.load(std::sync::atomic::Ordering::SeqCst);
        let monitor = monitoring_one_stream(Stages::Both(sink.clone()), MISSING);
        assert_eq!(opened(), 1);
        let first = super::super::lock(&sink.0).clone().expect("the first run");

        let changes = monitor.apply(&list_of_one(MISSING, 7.0));
        assert_eq!(changes.restarted, vec!["s".to_string()]);
        assert!(changes.added.is_empty());
        monitor.tick();
        assert_eq!(opened(), 1, "the new run must wait for the old one");
        assert!(monitor.streams().is_empty());
        let waiting = || {
            let text = text(&registry(monitor.env())).expect("metrics");
            text.lines()
                .find_map(|l| l.strip_prefix("vqa_streams_waiting "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        assert_eq!(waiting(), Some(1.0));
        // Listed again meanwhile (another edit): still one run waiting, not two.
        let changes = monitor.apply(&list_of_one(MISSING, 8.0));
        assert!(changes.added.is_empty() && changes.restarted.is_empty());
        assert_eq!(opened(), 1);

        // The old run finishes once both its sides have (its own side ends on the pool, on
        // its own time); the next tick after that starts the new one.
        first.finished(Err("the distributed side stopped".into()));
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while opened() < 2 && std::time::Instant::now() < until {
            monitor.tick();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(opened(), 2, "the old run finished: the new one starts");
        assert_eq!(waiting(), Some(0.0));
        let streams = monitor.streams();
        assert_eq!(streams.len(), 1);
        assert_eq!(
            streams[0]
                .spec
                .config
                .rule(vqa_core::IncidentKind::Black)
                .min_duration,
            8 * 1_000_000,
            "the latest entry runs"
        );
        assert_eq!(monitor.reports().len(), 1, "the old run's report");
        // Restarted again: still one report kept for the id, the latest run's.
        let streams = monitor.streams();
        let events = super::super::lock(&sink.0).clone().expect("the second run");
        monitor.apply(&list_of_one(MISSING, 9.0));
        events.finished(Err("the distributed side stopped".into()));
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !streams[0]
            .stats
            .finished
            .load(std::sync::atomic::Ordering::SeqCst)
            && std::time::Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(streams[0]
            .stats
            .finished
            .load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(monitor.reports().len(), 1, "one report per id");
    }

    #[test]
    fn a_stream_removed_and_listed_again_waits_for_its_previous_run_too() {
        let sink = Arc::new(Held::default());
        let opened = || sink.1.load(std::sync::atomic::Ordering::SeqCst);
        let monitor = monitoring_one_stream(Stages::Both(sink.clone()), MISSING);
        let first = super::super::lock(&sink.0).clone().expect("the first run");
        let empty = StreamList::parse("", &PipelineConfig::default()).expect("list");
        assert_eq!(monitor.apply(&empty).removed, vec!["s".to_string()]);
        let changes = monitor.apply(&list_of_one(MISSING, 7.0));
        assert_eq!(changes.added, vec!["s".to_string()]);
        monitor.tick();
        assert_eq!(opened(), 1);
        // Removed again before it could start: it never starts.
        monitor.apply(&empty);
        first.finished(Err("the distributed side stopped".into()));
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while monitor.reports().is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(monitor.reports().len(), 1, "the old run finished");
        monitor.tick();
        assert_eq!(opened(), 1);
        assert!(monitor.streams().is_empty());
    }

    #[test]
    fn ts_errors_are_counted_per_indicator_and_a_condition_once() {
        let monitor = monitoring_one_stream(Stages::InProcess, SILENT);
        let streams = monitor.env().running();
        let stream = streams.first().expect("the stream runs");
        let event = |indicator: &str, detail: &str| vqa_core::model::TsEvent {
            indicator: indicator.into(),
            priority: 1,
            pid: Some(256),
            start: 0,
            end: 0,
            ongoing: false,
            detail: detail.into(),
        };
        // Two segments: two CC errors, and a PID absent over both (its second part,
        // carried over, has no detail).
        stream.stats.count_ts_errors(&[
            event("Continuity_count_error", "expected 3, got 5"),
            event("PID_error", "PID 256 absent for 5.2 s"),
        ]);
        stream.stats.count_ts_errors(&[
            event("PID_error", ""),
            event("Continuity_count_error", "expected 9, got 11"),
            event("Transport_error", "TEI set"),
        ]);
        let text = text(&registry(monitor.env())).expect("metrics");
        let count = |indicator: &str, priority: u8| {
            let labels = format!("stream=\"s\",indicator=\"{indicator}\",priority=\"{priority}\"");
            sample(&text, "vqa_ts_errors_total", &labels)
                .unwrap_or_else(|| panic!("no {indicator} in\n{text}"))
        };
        assert_eq!(count("Continuity_count_error", 1), 2.0);
        assert_eq!(count("PID_error", 1), 1.0);
        assert_eq!(count("Transport_error", 2), 1.0);
        assert_eq!(count("TS_sync_loss", 1), 0.0);
        assert_eq!(count("CRC_error", 2), 0.0);
    }

    #[test]
    fn scte35_cues_are_counted_per_command() {
        use vqa_core::model::SpliceCue;
        let monitor = monitoring_one_stream(Stages::InProcess, SILENT);
        let streams = monitor.env().running();
        let stream = streams.first().expect("the stream runs");
        let cue = |command: u8| SpliceCue {
            command,
            ..SpliceCue::default()
        };
        stream.stats.count_splice_cues(&[
            cue(SpliceCue::SPLICE_INSERT),
            cue(SpliceCue::SPLICE_NULL),
            cue(SpliceCue::SPLICE_NULL),
            cue(SpliceCue::PRIVATE_COMMAND),
        ]);
        let text = text(&registry(monitor.env())).expect("metrics");
        let count = |command: &str| {
            sample(
                &text,
                "vqa_scte35_cues_total",
                &format!("stream=\"s\",command=\"{command}\""),
            )
            .unwrap_or_else(|| panic!("no {command} in\n{text}"))
        };
        assert_eq!(count("splice_insert"), 1.0);
        assert_eq!(count("splice_null"), 2.0);
        assert_eq!(count("time_signal"), 0.0);
        assert_eq!(count("other"), 1.0);
    }

    #[test]
    fn each_sides_cost_is_in_metrics_once_a_chunk_is_accounted() {
        let sink = Arc::new(Held::default());
        // A stream that never connects: it stays monitored while its distributed side
        // gives no report.
        let monitor = monitoring_one_stream(Stages::Both(sink.clone()), MISSING);
        let events = super::super::lock(&sink.0)
            .clone()
            .expect("the stream opened its run");
        // A chunk's executions: 100 transitions, 10 invocations of 0.5 s at 1,024 MB.
        let mut usage = Usage {
            orchestration: Orchestration::StepFunctionsStandard,
            state_transitions: 100,
            executions: 1,
            ..Usage::default()
        };
        for _ in 0..10 {
            usage.add_lambda(0.5, 1024.0);
        }
        let chunk = Chunk {
            index: 0,
            first_window: 0,
            windows: 10,
            last: false,
        };
        events.accounted(&chunk, &usage);
        std::thread::sleep(Duration::from_millis(20));
        monitor.tick();

        let text = text(&registry(monitor.env())).expect("metrics");
        let expected = dollars(&usage, &PriceTable::shipped());
        assert!((expected - (100.0 * 0.000025 + 10.0 * 2e-7 + 5.0 * 0.0000166667)).abs() < 1e-12);
        let distributed = sample(
            &text,
            "vqa_cost_usd_total",
            "stream=\"s\",topology=\"distributed\"",
        )
        .unwrap_or_else(|| panic!("no distributed total in\n{text}"));
        // The chunk, and a sliver of reader CPU.
        assert!(
            distributed >= expected && distributed < expected + 1e-6,
            "{distributed} vs {expected}"
        );
        let single = sample(
            &text,
            "vqa_cost_usd_total",
            "stream=\"s\",topology=\"single\"",
        )
        .unwrap_or_else(|| panic!("no single total in\n{text}"));
        assert!(single >= 0.0);
        for topology in ["single", "distributed"] {
            let labels = format!("stream=\"s\",topology=\"{topology}\"");
            let rate = sample(&text, "vqa_cost_usd_per_stream_hour", &labels)
                .unwrap_or_else(|| panic!("no {topology} rate in\n{text}"));
            assert!(rate >= 0.0);
        }
        let rate = sample(
            &text,
            "vqa_cost_usd_per_stream_hour",
            "stream=\"s\",topology=\"distributed\"",
        );
        // Dollars over well under an hour monitored: far more per hour.
        assert!(rate.is_some_and(|r| r > distributed * 100.0), "{rate:?}");

        // Once both sides finished (this one never connected), the report says what each
        // cost.
        events.finished(Err("no report in this test".into()));
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while monitor.reports().is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let reports = monitor.reports();
        let cost = &reports.first().expect("the stream's report").cost;
        let sides: Vec<&str> = cost.iter().map(|c| c.topology.as_str()).collect();
        assert_eq!(sides, ["single", "distributed"]);
        assert!(cost[1].usd >= expected, "{cost:?}");
        monitor.shutdown(Duration::from_millis(100));
    }

    /// The monitor's endpoint with `--control` and the token `s3cret`, under `limits`.
    fn control_endpoint(monitor: &Monitor, limits: http::Limits) -> std::net::SocketAddr {
        let control = Control {
            base: PipelineConfig::default(),
            last: std::sync::Mutex::new("the list before\n".into()),
            token: Some("s3cret".into()),
        };
        let bound = http::bind("127.0.0.1:0").expect("bind");
        serve(bound, monitor.env(), Some(control), limits).expect("serve")
    }

    /// Sends `request` on a new connection; the status and body answered.
    fn call(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        c.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    const AUTH: &str = "Authorization: Bearer s3cret\r\n";

    fn get(addr: std::net::SocketAddr, path: &str, headers: &str) -> (u16, String) {
        call(addr, &format!("GET {path} HTTP/1.1\r\n{headers}\r\n"))
    }

    #[test]
    fn a_stalled_stream_list_holds_neither_metrics_nor_health_and_is_dropped() {
        let monitor = monitoring_one_stream(Stages::InProcess, SILENT);
        let limits = http::Limits {
            body_timeout: Duration::from_secs(3),
            ..limits()
        };
        let addr = control_endpoint(&monitor, limits);
        let started = std::time::Instant::now();
        use std::io::{Read, Write};
        let mut slow = std::net::TcpStream::connect(addr).expect("connect");
        slow.write_all(
            format!("PUT /streams HTTP/1.1\r\n{AUTH}Content-Length: 1000\r\n\r\n[[stream]]\n")
                .as_bytes(),
        )
        .expect("send");
        let (status, metrics) = get(addr, "/metrics", "");
        assert_eq!(status, 200);
        assert!(metrics.contains("vqa_streams 1"), "{metrics}");
        assert_eq!(get(addr, "/healthz", "").0, 200);
        slow.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut late = String::new();
        let _ = slow.read_to_string(&mut late);
        assert!(late.starts_with("HTTP/1.1 408 "), "{late}");
        assert!(started.elapsed() >= limits.body_timeout);
        assert_eq!(
            get(addr, "/streams", AUTH),
            (200, "the list before\n".into())
        );
        assert_eq!(monitor.env().running().len(), 1);
        monitor.shutdown(Duration::from_millis(100));
    }

    #[test]
    fn an_oversized_stream_list_is_refused_413_and_changes_nothing() {
        let monitor = monitoring_one_stream(Stages::InProcess, SILENT);
        let addr = control_endpoint(&monitor, limits());
        let entry = "[[stream]]\nid = \"big\"\nurl = \"udp://127.0.0.1:9\"\n";
        let list = entry.repeat(limits().body_bytes / entry.len() + 1);
        let (status, body) = call(
            addr,
            &format!(
                "PUT /streams HTTP/1.1\r\n{AUTH}Content-Length: {}\r\n\r\n{list}",
                list.len()
            ),
        );
        assert_eq!(status, 413, "{body}");
        assert_eq!(
            body,
            format!(
                "request body of {} bytes is larger than the 4194304 bytes accepted\n",
                list.len()
            )
        );
        assert_eq!(
            get(addr, "/streams", AUTH),
            (200, "the list before\n".into())
        );
        let running: Vec<String> = monitor
            .env()
            .running()
            .iter()
            .map(|s| s.spec.id.to_string())
            .collect();
        assert_eq!(running, ["s"]);
        monitor.shutdown(Duration::from_millis(100));
    }

    #[test]
    fn reports_are_looked_up_by_stream_id_only_and_need_the_token() {
        // The stream's input is missing: it ends at once, and its report is kept.
        let monitor = monitoring_one_stream(Stages::InProcess, MISSING);
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while monitor.reports().is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let addr = control_endpoint(&monitor, limits());
        let (status, report) = get(addr, "/reports/s", AUTH);
        assert_eq!(status, 200, "{report}");
        assert!(report.contains("\"stream\": \"s\""), "{report}");
        let long = "x".repeat(super::super::list::MAX_STREAM_ID_BYTES + 1);
        for (path, expected) in [
            ("/reports/..", 400),
            ("/reports/../../etc/passwd", 400),
            ("/reports/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
            ("/reports/..%2Fs", 400),
            ("/reports/s%2F..", 400),
            ("/reports/s%5C..", 400),
            ("/reports/s%00", 400),
            ("/reports/%zz", 400),
            ("/reports/%ff", 400),
            ("/reports/", 400),
            (&format!("/reports/{long}"), 400),
            ("/reports/t", 404),
            ("/reports/s%20", 404),
        ] {
            let (status, body) = get(addr, path, AUTH);
            assert_eq!(status, expected, "{path}: {body}");
            assert!(
                !body.contains("root:") && !body.contains("\"stream\""),
                "{path}: {body}"
            );
        }
        // An id escaped as the router escapes it is found.
        let (status, _) = get(
            addr,
            &format!("/reports/{}", http::percent_encode("s")),
            AUTH,
        );
        assert_eq!(status, 200);
        for headers in [
            "",
            "Authorization: Bearer s3cre\r\n",
            "Authorization: Bearer s3creT\r\n",
            "Authorization: s3cret\r\n",
            "Authorization: Bearer s3cret2\r\n",
            "Authorization: bearer s3cret\r\n",
        ] {
            for path in ["/reports/s", "/streams", "/reports/..%2F"] {
                let (status, body) = get(addr, path, headers);
                assert_eq!(status, 401, "{path} with {headers:?}: {body}");
            }
        }
        let (status, _) = get(addr, "/reports/s", "authorization: Bearer s3cret\r\n");
        assert_eq!(status, 200);
        assert_eq!(get(addr, "/metrics", "").0, 200);
        monitor.shutdown(Duration::from_millis(100));
    }

    #[test]
    fn control_without_a_token_is_refused_off_loopback() {
        let monitor = monitoring_one_stream(Stages::InProcess, SILENT);
        let control = |token: Option<&str>| Control {
            base: PipelineConfig::default(),
            last: Default::default(),
            token: token.map(String::from),
        };
        let open = http::bind("0.0.0.0:0").expect("bind");
        let e = serve(open, monitor.env(), Some(control(None)), limits())
            .expect_err("refused")
            .to_string();
        assert!(
            e.starts_with("--listen 0.0.0.0:0: not a loopback address")
                && e.contains("set VQA_CONTROL_TOKEN")
                && e.contains("127.0.0.1")
                && !e.contains('\n'),
            "{e}"
        );
        let open = http::bind("0.0.0.0:0").expect("bind");
        assert!(serve(open, monitor.env(), Some(control(Some("t"))), limits()).is_ok());
        let open = http::bind("0.0.0.0:0").expect("bind");
        assert!(serve(open, monitor.env(), None, limits()).is_ok());
        let local = http::bind("127.0.0.1:0").expect("bind");
        assert!(serve(local, monitor.env(), Some(control(None)), limits()).is_ok());
        monitor.shutdown(Duration::from_millis(100));
    }
}
