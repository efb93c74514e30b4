//! Where incident notifications go as the aggregator emits them: JSON lines to a file or
//! stdout, HTTP webhooks (POST of the same JSON, retried with backoff) and Amazon SNS
//! topics. A slow or dead destination never holds the analysis up: deliveries queue
//! (bounded) per destination, served by its own workers, each stream's in order and no
//! stream's failures holding another's ([`dispatch`]).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vqa_core::notify::Notification;
use vqa_core::{IncidentEvent, StreamId};

mod dispatch;
pub mod sns;

use dispatch::Dispatch;
use sns::SnsNotifier;

/// Why a notification destination cannot be set up, or a notification was not delivered.
/// Each names the destination; `transient` says whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{path}: cannot write notifications there: {source}")]
    Lines {
        path: String,
        source: std::io::Error,
    },
    #[error("webhook {0}: not an http(s) URL")]
    NotHttp(String),
    #[error("SNS topic `{0}`: expected a topic ARN, arn:aws:sns:REGION:ACCOUNT:NAME")]
    NotTopicArn(String),
    #[error("cannot start a notification thread: {0}")]
    Thread(std::io::Error),
    #[error("SNS topic {topic}: cannot publish ({cause})")]
    Publish {
        topic: String,
        cause: String,
        /// The service was unreachable or throttled, not refusing the message.
        transient: bool,
    },
}

impl NotifyError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            NotifyError::Publish {
                transient: true,
                ..
            }
        )
    }
}

/// Notifications waiting for a webhook; past this, new ones are dropped (and counted).
const WEBHOOK_QUEUE: usize = 1024;
/// Attempts per notification: waits of 0.5, 1, 2 and 4 s between them.
const WEBHOOK_ATTEMPTS: u32 = 5;
/// Requests a webhook has under way at once (never two of one stream).
const WEBHOOK_WORKERS: usize = 4;
/// Publishes an SNS topic has under way at once.
const SNS_WORKERS: usize = 2;

enum Sink {
    Lines(Mutex<Box<dyn Write + Send>>),
    /// A destination served from its queues by its own workers (webhook, SNS topic).
    Queued {
        /// How it is named in messages (credentials hidden).
        name: String,
        dispatch: Dispatch,
        dropped: Mutex<u64>,
    },
}

/// What a webhook delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    pub delivered: u64,
    pub failed: u64,
}

/// When the queued destinations stop trying: set by [`Notifiers::finish_within`]. Past it
/// a notification still queued is counted as failed without being sent, and no retry waits.
#[derive(Clone, Default)]
struct GiveUp(Arc<Mutex<Option<Instant>>>);

impl GiveUp {
    fn set(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// How long is left before giving up (`None`: no limit).
    fn left(&self) -> Option<Duration> {
        let at = (*self.0.lock().unwrap_or_else(|p| p.into_inner()))?;
        Some(at.saturating_duration_since(Instant::now()))
    }

    fn passed(&self) -> bool {
        self.left().is_some_and(|left| left.is_zero())
    }
}

/// Every configured destination of one run's notifications.
#[derive(Default)]
pub struct Notifiers {
    sinks: Vec<Sink>,
    report: Option<String>,
    give_up: GiveUp,
}

impl Notifiers {
    /// Notifications name where the report is stored, when it is.
    pub fn new(report: Option<String>) -> Self {
        Notifiers {
            sinks: Vec::new(),
            report,
            give_up: GiveUp::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// JSON lines to a file, or stdout for `-`.
    pub fn add_lines(&mut self, path: &Path) -> Result<(), NotifyError> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::File::create(path).map_err(|source| NotifyError::Lines {
                    path: path.display().to_string(),
                    source,
                })?,
            )
        };
        self.sinks.push(Sink::Lines(Mutex::new(out)));
        Ok(())
    }

    /// POSTs each notification to `url`, with `Authorization: Bearer <token>` when there is a
    /// token (a router's `/notify` requires its shards' one).
    pub fn add_webhook(&mut self, url: &str, token: Option<&str>) -> Result<(), NotifyError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(NotifyError::NotHttp(vqa_core::redact_url(url)));
        }
        let target = url.to_string();
        let give_up = self.give_up.clone();
        let auth = token.map(|t| format!("Bearer {t}"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        self.add_queued(
            format!("webhook {}", vqa_core::redact_url(url)),
            WEBHOOK_WORKERS,
            move || {
                let (agent, target, give_up) = (agent.clone(), target.clone(), give_up.clone());
                let auth = auth.clone();
                move |n: &Notification| deliver(&agent, &target, auth.as_deref(), n, &give_up)
            },
        )
    }

    /// Publishes each notification to an SNS topic (credentials, region and endpoint from the
    /// AWS configuration).
    pub fn add_sns(&mut self, topic: &str, sdk: &aws_config::SdkConfig) -> Result<(), NotifyError> {
        let notifier = SnsNotifier::new(sdk, topic)?;
        self.add_queued(format!("SNS topic {topic}"), SNS_WORKERS, move || {
            let notifier = notifier.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            move |n: &Notification| publish(&notifier, runtime.as_ref(), n)
        })
    }

    fn add_queued<F, S>(&mut self, name: String, workers: usize, make: F) -> Result<(), NotifyError>
    where
        F: Fn() -> S + Send + Sync + 'static,
        S: FnMut(&Notification) -> bool,
    {
        let dispatch = Dispatch::start(workers, WEBHOOK_QUEUE, self.give_up.clone(), make)?;
        self.sinks.push(Sink::Queued {
            name,
            dispatch,
            dropped: Mutex::new(0),
        });
        Ok(())
    }

    pub fn send(&self, stream: &StreamId, event: &IncidentEvent) {
        self.send_with_report(stream, event, self.report.as_deref());
    }

    /// Sends a notification naming `report` as where the stream's report is stored (many
    /// streams, one report each).
    pub fn send_with_report(&self, stream: &StreamId, event: &IncidentEvent, report: Option<&str>) {
        self.forward(&Notification::from_event(stream, event, report));
    }

    /// Sends a notification made elsewhere (a shard's, relayed by the router).
    pub fn forward(&self, notification: &Notification) {
        let line = notification.to_json_line();
        for sink in &self.sinks {
            match sink {
                Sink::Lines(out) => {
                    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                    // A notification that cannot be written must not stop the analysis.
                    if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
                        tracing::warn!("cannot write a notification: {e}");
                    }
                }
                Sink::Queued {
                    dispatch,
                    dropped,
                    name,
                } => {
                    if !dispatch.push(notification.clone()) {
                        *dropped.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                        tracing::warn!(
                            "{name}: {WEBHOOK_QUEUE} notifications waiting; dropping one"
                        );
                    }
                }
            }
        }
    }

    /// [`finish`](Self::finish), but giving up after `limit`: what is still queued then is
    /// counted as failed without being sent, and no retry waits past it (a request under way
    /// ends within its own 10 s timeout). For a service that must stop before it is killed.
    pub fn finish_within(self, limit: Duration) -> Vec<(String, WebhookStats)> {
        self.give_up.set(Instant::now() + limit);
        self.finish()
    }

    /// Waits for the webhooks to deliver what is queued; returns each one's figures
    /// (dropped notifications count as failed).
    pub fn finish(self) -> Vec<(String, WebhookStats)> {
        let mut out = Vec::new();
        for sink in self.sinks {
            if let Sink::Queued {
                name,
                mut dispatch,
                dropped,
            } = sink
            {
                let mut stats = dispatch.finish();
                stats.failed += dropped.into_inner().unwrap_or_else(|p| p.into_inner());
                out.push((name, stats));
            }
        }
        out
    }
}

/// POSTs one notification, retried on connection errors, 429 and 5xx; true when delivered.
fn deliver(
    agent: &ureq::Agent,
    url: &str,
    auth: Option<&str>,
    notification: &Notification,
    give_up: &GiveUp,
) -> bool {
    let body = notification.to_json_line();
    let mut wait = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let mut request = agent.post(url).header("content-type", "application/json");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let result = request.send(body.as_str());
        let retry = match &result {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => r.status().as_u16() == 429 || r.status().is_server_error(),
            Err(_) => true,
        };
        if !retry || attempt >= WEBHOOK_ATTEMPTS || give_up.left().is_some_and(|l| l < wait) {
            let why = match result {
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => e.to_string(),
            };
            tracing::warn!(
                "webhook {}: notification not delivered after {attempt} attempts ({why})",
                vqa_core::redact_url(url)
            );
            return false;
        }
        std::thread::sleep(wait);
        wait *= 2;
        attempt += 1;
    }
}

/// Publishes one notification (the SDK retries throttling and 5xx); true when published.
fn publish(
    notifier: &SnsNotifier,
    runtime: Result<&tokio::runtime::Runtime, &std::io::Error>,
    n: &Notification,
) -> bool {
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("SNS topic {}: cannot start: {e}", notifier.topic());
            return false;
        }
    };
    match runtime.block_on(notifier.publish(n)) {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!("{why}");
            false
        }
    }
}

/// A freeze opened on `stream` at `start`, for tests.
#[cfg(test)]
pub(crate) fn opened(stream: &str, start: f64) -> Notification {
    Notification {
        event: vqa_core::notify::Phase::Opened,
        stream: StreamId::new(stream),
        kind: vqa_core::IncidentKind::Freeze,
        channel: None,
        start,
        end: None,
        severity: vqa_core::report::Severity::Major,
        evidence: Default::default(),
        report: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Reads one request's head and its Content-Length body.
    fn read_body(stream: &std::net::TcpStream) -> Vec<u8> {
        let mut reader = BufReader::new(stream);
        let mut length = 0usize;
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            line.clear();
        }
        let mut body = vec![0; length];
        let _ = std::io::Read::read_exact(&mut reader, &mut body);
        body
    }

    /// A webhook that answers every request 500 after reading it; returns its URL and the
    /// count of requests it took.
    fn failing_webhook() -> (String, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                read_body(&stream);
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = (&stream).write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        (url, requests)
    }

    fn notification(n: usize) -> Notification {
        opened(&format!("s{n}"), n as f64)
    }

    #[test]
    fn a_webhook_hanging_on_one_streams_notification_still_gets_the_others_at_once() {
        // The receiver holds any request of stream s0 until it has the 12 of the others (at
        // most 20 s); the others are answered at once. Bodies are logged as answered.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let got: Arc<Mutex<Vec<Notification>>> = Arc::default();
        let log = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let body = read_body(&stream);
                    let n: Notification = serde_json::from_slice(&body).expect("a notification");
                    let until = Instant::now() + Duration::from_secs(20);
                    while n.stream.as_str() == "s0"
                        && log.lock().unwrap().len() < 12
                        && Instant::now() < until
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    log.lock().unwrap().push(n);
                    let _ = (&stream).write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                });
            }
        });
        let mut notifiers = Notifiers::new(None);
        notifiers.add_webhook(&url, None).expect("webhook");
        // s0 first, twice; then 12 of three other streams.
        notifiers.forward(&notification(0));
        notifiers.forward(&Notification {
            start: 100.0,
            ..notification(0)
        });
        for n in 1..13 {
            notifiers.forward(&notification(1 + n % 3));
        }
        let stats = notifiers.finish();
        assert_eq!(
            stats[0].1,
            WebhookStats {
                delivered: 14,
                failed: 0
            }
        );
        let got = got.lock().unwrap();
        let streams: Vec<&str> = got.iter().map(|n| n.stream.as_str()).collect();
        assert!(
            streams[..12].iter().all(|s| *s != "s0"),
            "the others waited for s0: {streams:?}"
        );
        let s0: Vec<f64> = got
            .iter()
            .filter(|n| n.stream.as_str() == "s0")
            .map(|n| n.start)
            .collect();
        assert_eq!(s0, vec![0.0, 100.0], "s0's notifications in order");
    }

    #[test]
    fn finishing_within_a_limit_gives_up_on_what_is_queued() {
        let (url, requests) = failing_webhook();
        let mut notifiers = Notifiers::new(None);
        notifiers.add_webhook(&url, None).expect("webhook");
        for n in 0..20 {
            notifiers.forward(&notification(n));
        }
        let stats = notifiers.finish_within(Duration::from_millis(1200));
        assert_eq!(stats.len(), 1);
        // Every one counted, none delivered. Without the limit each would be tried 5 times
        // over 7.5 s of waits (100 requests, 150 s); with it, a retry is not waited for
        // past the limit, and once it has passed nothing more is sent.
        assert_eq!(
            stats[0].1,
            WebhookStats {
                delivered: 0,
                failed: 20
            }
        );
        let sent = requests.load(Ordering::SeqCst);
        assert!((1..40).contains(&sent), "{sent} requests");
    }
}
