//! Where incident notifications go as the aggregator emits them: JSON lines to a file or
//! stdout, HTTP webhooks (POST of the same JSON, retried with backoff) and Amazon SNS
//! topics. A slow or dead destination never holds the analysis up: deliveries queue
//! (bounded) on a thread per destination.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use vqa_core::notify::Notification;
use vqa_core::{IncidentEvent, StreamId};

pub mod sns;

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

enum Sink {
    Lines(Mutex<Box<dyn Write + Send>>),
    /// A destination served from a queue on its own thread (webhook, SNS topic).
    Queued {
        /// How it is named in messages (credentials hidden).
        name: String,
        queue: SyncSender<Notification>,
        worker: Option<JoinHandle<WebhookStats>>,
        dropped: Mutex<u64>,
    },
}

/// What a webhook delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    pub delivered: u64,
    pub failed: u64,
}

/// Every configured destination of one run's notifications.
#[derive(Default)]
pub struct Notifiers {
    sinks: Vec<Sink>,
    report: Option<String>,
}

impl Notifiers {
    /// Notifications name where the report is stored, when it is.
    pub fn new(report: Option<String>) -> Self {
        Notifiers {
            sinks: Vec::new(),
            report,
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

    /// POSTs each notification to `url`.
    pub fn add_webhook(&mut self, url: &str) -> Result<(), NotifyError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(NotifyError::NotHttp(vqa_core::redact_url(url)));
        }
        let target = url.to_string();
        self.add_queued(
            format!("webhook {}", vqa_core::redact_url(url)),
            move |rx| deliver(&target, rx),
        )
    }

    /// Publishes each notification to an SNS topic (credentials, region and endpoint from the
    /// AWS configuration).
    pub fn add_sns(&mut self, topic: &str, sdk: &aws_config::SdkConfig) -> Result<(), NotifyError> {
        let notifier = SnsNotifier::new(sdk, topic)?;
        self.add_queued(format!("SNS topic {topic}"), move |rx| {
            publish(&notifier, rx)
        })
    }

    fn add_queued(
        &mut self,
        name: String,
        work: impl FnOnce(Receiver<Notification>) -> WebhookStats + Send + 'static,
    ) -> Result<(), NotifyError> {
        let (queue, rx) = sync_channel(WEBHOOK_QUEUE);
        let worker = std::thread::Builder::new()
            .name("vqa-notify".into())
            .spawn(move || work(rx))
            .map_err(NotifyError::Thread)?;
        self.sinks.push(Sink::Queued {
            name,
            queue,
            worker: Some(worker),
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
                    queue,
                    dropped,
                    name,
                    ..
                } => {
                    if let Err(TrySendError::Full(_)) = queue.try_send(notification.clone()) {
                        *dropped.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                        tracing::warn!(
                            "{name}: {WEBHOOK_QUEUE} notifications waiting; dropping one"
                        );
                    }
                }
            }
        }
    }

    /// Waits for the webhooks to deliver what is queued; returns each one's figures
    /// (dropped notifications count as failed).
    pub fn finish(self) -> Vec<(String, WebhookStats)> {
        let mut out = Vec::new();
        for sink in self.sinks {
            if let Sink::Queued {
                name,
                queue,
                worker,
                dropped,
            } = sink
            {
                drop(queue);
                let mut stats = worker.and_then(|w| w.join().ok()).unwrap_or_default();
                stats.failed += dropped.into_inner().unwrap_or_else(|p| p.into_inner());
                out.push((name, stats));
            }
        }
        out
    }
}

/// The webhook thread: each notification POSTed, retried on connection errors, 429 and 5xx.
fn deliver(url: &str, rx: Receiver<Notification>) -> WebhookStats {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut stats = WebhookStats::default();
    for notification in rx {
        let body = notification.to_json_line();
        let mut wait = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            let result = agent
                .post(url)
                .header("content-type", "application/json")
                .send(body.as_str());
            let retry = match &result {
                Ok(r) if r.status().is_success() => {
                    stats.delivered += 1;
                    break;
                }
                Ok(r) => r.status().as_u16() == 429 || r.status().is_server_error(),
                Err(_) => true,
            };
            if !retry || attempt >= WEBHOOK_ATTEMPTS {
                stats.failed += 1;
                let why = match result {
                    Ok(r) => format!("HTTP {}", r.status()),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(
                    "webhook {}: notification not delivered after {attempt} attempts ({why})",
                    vqa_core::redact_url(url)
                );
                break;
            }
            std::thread::sleep(wait);
            wait *= 2;
            attempt += 1;
        }
    }
    stats
}

/// The SNS thread: each notification published (the SDK retries throttling and 5xx).
fn publish(notifier: &SnsNotifier, rx: Receiver<Notification>) -> WebhookStats {
    let mut stats = WebhookStats::default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("SNS topic {}: cannot start: {e}", notifier.topic());
            stats.failed = rx.iter().count() as u64;
            return stats;
        }
    };
    for n in rx {
        match runtime.block_on(notifier.publish(&n)) {
            Ok(()) => stats.delivered += 1,
            Err(why) => {
                stats.failed += 1;
                tracing::warn!("{why}");
            }
        }
    }
    stats
}
