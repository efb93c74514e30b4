//! `vqa router`: detector shards, the final form of the design in the story. Several
//! `vqa monitor --control` processes (shards) each run a subset of the detectors on the
//! streams they are given, each decoding the stream itself (frames never travel between
//! processes: decoding is repeated, handoff is avoided); one router assigns every stream's
//! detectors to shards, forwards the shards' notifications, and merges their reports into
//! one report per stream, equal to what one process running every detector writes.
//!
//! The shards file:
//!
//! ```toml
//! [[shard]]
//! name = "video"
//! url = "http://video.vqa.local:9090"     # the shard's --listen address
//! detectors = ["freeze", "black", "blockiness", "blur", "colorbars", "corruption", "frame_drop"]
//! [[shard]]
//! name = "audio"
//! url = "http://audio.vqa.local:9090"
//! detectors = ["silence", "loudness", "clipping", "av_sync"]
//! ```
//!
//! Shards run `vqa monitor --control --listen ADDR --webhook http://ROUTER/notify`. One token
//! guards both ways: the router sends `VQA_CONTROL_TOKEN` to the shards' control endpoints
//! and requires it on `/notify`, which the shards send as their `VQA_WEBHOOK_TOKEN`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vqa_core::notify::Notification;
use vqa_core::{DetectorName, StreamReport};

pub mod service;

use crate::monitor::StreamList;
use crate::ServiceError;
use vqa_notify::Notifiers;

/// One shard: a monitor process and the detectors it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Shard {
    pub name: String,
    pub url: String,
    pub detectors: Vec<DetectorName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardsFile {
    #[serde(default)]
    shard: Vec<RawShard>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShard {
    name: String,
    url: String,
    detectors: Vec<String>,
}

/// A shards file, or a stream list the shards cannot run, that cannot be used: what is
/// wrong, and where (retrying cannot help).
#[derive(Debug, thiserror::Error)]
pub enum ShardsError {
    #[error("{path}: cannot read the shards file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {problem}; fix the shards file")]
    InFile { path: String, problem: String },
    /// What is wrong: `shard `video` is listed twice`, `stream `news`: detector ... is on no
    /// shard`.
    #[error("{0}")]
    Invalid(String),
}

/// Reads a shards file; errors name the file and the shard.
pub fn load_shards(path: &Path) -> Result<Vec<Shard>, ShardsError> {
    let text = std::fs::read_to_string(path).map_err(|source| ShardsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_shards(&text).map_err(|e| ShardsError::InFile {
        path: path.display().to_string(),
        problem: e.to_string(),
    })
}

pub fn parse_shards(text: &str) -> Result<Vec<Shard>, ShardsError> {
    let raw: ShardsFile =
        toml::from_str(text).map_err(|e| ShardsError::Invalid(e.message().to_string()))?;
    if raw.shard.is_empty() {
        return Err(ShardsError::Invalid("no [[shard]]".into()));
    }
    let mut names = BTreeSet::new();
    raw.shard
        .into_iter()
        .map(|s| {
            if !names.insert(s.name.clone()) {
                return Err(ShardsError::Invalid(format!(
                    "shard `{}` is listed twice",
                    s.name
                )));
            }
            if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
                return Err(ShardsError::Invalid(format!(
                    "shard `{}`: url `{}` is not http(s)",
                    s.name, s.url
                )));
            }
            let detectors = s
                .detectors
                .iter()
                .map(|d| d.parse::<DetectorName>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ShardsError::Invalid(format!("shard `{}`: {e}", s.name)))?;
            Ok(Shard {
                name: s.name,
                url: s.url.trim_end_matches('/').to_string(),
                detectors,
            })
        })
        .collect()
}

/// A stream entry as a shard receives it: the stream's whole configuration, with only the
/// shard's share of its detectors.
#[derive(Serialize)]
struct ShardStream {
    id: String,
    url: String,
    detectors: Vec<DetectorName>,
    realtime: bool,
    speed: f64,
    #[serde(rename = "loop")]
    looped: bool,
    config: toml::Table,
}

#[derive(Serialize)]
struct ShardList {
    stream: Vec<ShardStream>,
}

/// What each shard is sent: its list (TOML) and the streams in it. Each detector of a
/// stream goes to the first shard that runs it; a detector no shard runs is an error.
pub fn assign(
    list: &StreamList,
    shards: &[Shard],
) -> Result<Vec<(String, BTreeSet<String>)>, ShardsError> {
    let invalid = |e: toml::ser::Error| ShardsError::Invalid(e.to_string());
    let mut per_shard: Vec<Vec<ShardStream>> = shards.iter().map(|_| Vec::new()).collect();
    for s in &list.streams {
        let mut shares: Vec<Vec<DetectorName>> = shards.iter().map(|_| Vec::new()).collect();
        for d in &s.config.detectors {
            let Some(i) = shards.iter().position(|sh| sh.detectors.contains(d)) else {
                return Err(ShardsError::Invalid(format!(
                    "stream `{}`: detector `{d}` is on no shard; add it to a shard's detectors",
                    s.id
                )));
            };
            shares[i].push(*d);
        }
        for (i, detectors) in shares.into_iter().enumerate() {
            if detectors.is_empty() {
                continue;
            }
            let mut config = toml::Table::try_from(&s.config).map_err(invalid)?;
            config.remove("detectors");
            per_shard[i].push(ShardStream {
                id: s.id.as_str().to_string(),
                url: s.url.clone(),
                detectors,
                realtime: s.realtime,
                speed: s.speed,
                looped: s.looped,
                config,
            });
        }
    }
    per_shard
        .into_iter()
        .map(|stream| {
            let ids = stream.iter().map(|s| s.id.clone()).collect();
            Ok((
                toml::to_string(&ShardList { stream }).map_err(invalid)?,
                ids,
            ))
        })
        .collect()
}

/// The running router.
pub struct Router {
    shards: Vec<Shard>,
    agent: ureq::Agent,
    /// Per shard: the list it should run and its streams.
    assigned: Vec<(String, BTreeSet<String>)>,
    /// Streams not yet merged, and the shards that run (or ran) them.
    pending: BTreeMap<String, BTreeSet<usize>>,
    reports_dir: Option<PathBuf>,
    /// Reports merged so far.
    pub merged: Vec<StreamReport>,
    /// Shards last seen unreachable (warned about once until they answer again).
    down: BTreeSet<usize>,
    /// `Authorization` header for the shards' control endpoints (`VQA_CONTROL_TOKEN`).
    auth: Option<String>,
}

/// Forwards shards' notifications to the router's destinations, each once.
pub struct Relay {
    /// Taken when the router stops, so queued deliveries finish.
    notifiers: std::sync::RwLock<Option<Notifiers>>,
    seen: Mutex<HashSet<String>>,
    reports_dir: Option<PathBuf>,
    last: Mutex<std::time::Instant>,
}

impl Relay {
    pub fn new(notifiers: Notifiers, reports_dir: Option<PathBuf>) -> Self {
        Relay {
            notifiers: std::sync::RwLock::new(Some(notifiers)),
            seen: Mutex::default(),
            reports_dir,
            last: Mutex::new(std::time::Instant::now()),
        }
    }

    /// Handles one notification POSTed by a shard.
    pub fn forward(&self, mut n: Notification) {
        *crate::lock(&self.last) = std::time::Instant::now();
        let key = format!(
            "{}|{}|{:?}|{:?}|{}",
            n.stream, n.kind, n.channel, n.event, n.start
        );
        if !crate::lock(&self.seen).insert(key) {
            return;
        }
        // The merged report, not the shard's part of it.
        n.report = self
            .reports_dir
            .as_ref()
            .map(|d| d.join(format!("{}.json", n.stream)).display().to_string());
        if let Some(notifiers) = self
            .notifiers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            notifiers.forward(&n);
        }
    }

    /// Waits until shards have sent nothing for `quiet` (their last notifications are
    /// delivered from queues, after their reports), at most `limit`.
    pub fn drain(&self, quiet: Duration, limit: Duration) {
        let until = std::time::Instant::now() + limit;
        while crate::lock(&self.last).elapsed() < quiet && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for queued deliveries (at most [`SHUTDOWN_DRAIN`](crate::SHUTDOWN_DRAIN)); returns
    /// each queued destination's figures.
    pub fn finish(&self) -> Vec<(String, vqa_notify::WebhookStats)> {
        let notifiers = self
            .notifiers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        notifiers
            .map(|n| n.finish_within(crate::SHUTDOWN_DRAIN))
            .unwrap_or_default()
    }
}

/// What the router's endpoint accepts: a notification is a few kilobytes; 1 MiB is ample.
pub fn limits() -> crate::http::Limits {
    crate::http::Limits {
        body_bytes: 1 << 20,
        ..crate::http::Limits::default()
    }
}

/// Serves `POST /notify` (from shards) and `GET /healthz` on `addr`, every request within
/// `limits`. With a token, `/notify` takes only requests carrying `Authorization: Bearer
/// <token>`; without one it refuses to listen on an address other than loopback.
pub fn serve(
    addr: &str,
    relay: Arc<Relay>,
    token: Option<String>,
    limits: crate::http::Limits,
) -> Result<std::net::SocketAddr, ServiceError> {
    use crate::http::Response;
    let bound = crate::http::bind(addr)?;
    if token.is_none() && !bound.is_loopback() {
        return Err(ServiceError::NotifyWithoutToken {
            addr: bound.addr().to_string(),
        });
    }
    let handler: crate::http::Handler =
        Arc::new(
            move |request| match (request.method.as_str(), request.path()) {
                ("POST", "/notify")
                    if !crate::monitor::metrics::authorized(&request, token.as_deref()) =>
                {
                    Response::text(
                        401,
                        "POST /notify needs Authorization: Bearer <VQA_CONTROL_TOKEN>\n",
                    )
                }
                ("POST", "/notify") => {
                    match serde_json::from_slice::<Notification>(&request.body) {
                        Ok(n) => {
                            relay.forward(n);
                            Response::text(200, "")
                        }
                        Err(e) => Response::text(400, format!("not a vqa notification: {e}\n")),
                    }
                }
                ("GET" | "HEAD", "/healthz") => {
                    Response::new(200, "application/json", "{\"status\":\"ok\"}\n")
                }
                _ => Response::text(404, "not found: POST /notify, GET /healthz\n"),
            },
        );
    crate::http::serve(bound, "vqa-router", limits, handler)
}

impl Router {
    pub fn new(shards: Vec<Shard>, reports_dir: Option<PathBuf>) -> Result<Self, ServiceError> {
        if let Some(dir) = &reports_dir {
            crate::create_reports_dir(dir)?;
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Router {
            assigned: shards
                .iter()
                .map(|_| (String::new(), BTreeSet::new()))
                .collect(),
            shards,
            agent,
            pending: BTreeMap::new(),
            reports_dir,
            merged: Vec::new(),
            down: BTreeSet::new(),
            auth: crate::control_token().map(|t| format!("Bearer {t}")),
        })
    }

    /// Assigns a (new) list: each shard gets its share at the next [`reconcile`](Self::reconcile).
    pub fn set_list(&mut self, list: &StreamList) -> Result<(), ShardsError> {
        self.assigned = assign(list, &self.shards)?;
        for (i, (_, ids)) in self.assigned.iter().enumerate() {
            for id in ids {
                self.pending.entry(id.clone()).or_default().insert(i);
            }
        }
        Ok(())
    }

    /// Stops every stream on every shard (their reports are then written).
    pub fn clear(&mut self) {
        for a in &mut self.assigned {
            *a = (String::new(), BTreeSet::new());
        }
    }

    /// Sends each shard its list if it runs another one (a shard that restarted gets it
    /// again), then merges the reports of streams every shard has finished.
    pub fn reconcile(&mut self) {
        for (i, shard) in self.shards.iter().enumerate() {
            let want = &self.assigned[i].0;
            let url = format!("{}/streams", shard.url);
            let current = self
                .authorized(self.agent.get(&url))
                .call()
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|mut r| r.body_mut().read_to_string().ok());
            let result = match current {
                Some(text) if &text == want => Ok(()),
                Some(_) => match self.authorized(self.agent.put(&url)).send(want.as_str()) {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(mut r) => Err(format!(
                        "refused the list: {}",
                        r.body_mut().read_to_string().unwrap_or_default().trim()
                    )),
                    Err(e) => Err(e.to_string()),
                },
                None => Err("does not answer (is it running with --control?)".into()),
            };
            match result {
                Ok(()) => {
                    if self.down.remove(&i) {
                        tracing::info!("shard {} is back", shard.name);
                    }
                }
                Err(why) => {
                    if self.down.insert(i) {
                        tracing::warn!("shard {} ({}): {why}; retrying", shard.name, shard.url);
                    }
                }
            }
        }
        self.collect();
    }

    /// Merges the reports of streams that every shard running them has finished (a shard
    /// serves a stream's report only once that stream stopped).
    fn collect(&mut self) {
        let mut done = Vec::new();
        for (id, shards) in &self.pending {
            let mut parts = Vec::new();
            for &i in shards {
                let url = format!(
                    "{}/reports/{}",
                    self.shards[i].url,
                    crate::http::percent_encode(id)
                );
                let report = self
                    .authorized(self.agent.get(&url))
                    .call()
                    .ok()
                    .filter(|r| r.status().is_success())
                    .and_then(|mut r| r.body_mut().read_to_string().ok())
                    .and_then(|text| serde_json::from_str::<StreamReport>(&text).ok());
                match report {
                    Some(r) => parts.push(r),
                    None => break,
                }
            }
            if parts.len() == shards.len() {
                done.push((id.clone(), parts));
            }
        }
        for (id, parts) in done {
            self.pending.remove(&id);
            if let Some(report) = StreamReport::merge_shards(parts) {
                if let Some(dir) = &self.reports_dir {
                    let path = dir.join(format!("{id}.json"));
                    crate::write_report_or_log(&id, &path, &report);
                }
                self.merged.push(report);
            }
        }
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// Streams assigned and not yet merged.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Streams assigned now.
    pub fn assigned(&self) -> usize {
        self.assigned
            .iter()
            .flat_map(|(_, ids)| ids)
            .collect::<BTreeSet<_>>()
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vqa_core::PipelineConfig;

    fn post_notify(port: u16, auth: Option<&str>, body: &str) -> u16 {
        let mut request = ureq::post(&format!("http://127.0.0.1:{port}/notify"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        match request.send(body) {
            Ok(r) => r.status().as_u16(),
            Err(ureq::Error::StatusCode(code)) => code,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn notify_takes_only_the_shards_token_and_needs_one_off_loopback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines = dir.path().join("relayed.jsonl");
        let mut notifiers = Notifiers::new(None);
        notifiers.add_lines(&lines).expect("lines");
        let relay = Arc::new(Relay::new(notifiers, None));
        let local = serve(
            "127.0.0.1:0",
            relay.clone(),
            Some("s3cret".into()),
            limits(),
        )
        .expect("serve");
        let note = |start: f64| {
            let opened = vqa_core::IncidentEvent::Opened {
                kind: vqa_core::IncidentKind::Freeze,
                channel: None,
                start: vqa_core::time::from_secs(start),
            };
            Notification::from_event(&vqa_core::StreamId::new("ch"), &opened, None).to_json_line()
        };
        let port = local.port();
        assert_eq!(post_notify(port, None, &note(1.0)), 401);
        assert_eq!(post_notify(port, Some("Bearer wrong!"), &note(2.0)), 401);
        assert_eq!(post_notify(port, Some("Bearer s3cret"), &note(3.0)), 200);
        let relayed: Vec<Notification> = std::fs::read_to_string(&lines)
            .expect("relayed")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a notification"))
            .collect();
        assert_eq!(relayed.len(), 1);
        assert_eq!(relayed[0].start, 3.0);

        let refused = serve("0.0.0.0:0", relay, None, limits());
        assert!(
            matches!(refused, Err(ServiceError::NotifyWithoutToken { .. })),
            "{:?}",
            refused.map(|a| a.to_string()).map_err(|e| e.to_string())
        );
    }

    #[test]
    fn each_detector_goes_to_the_first_shard_running_it() {
        let shards = parse_shards(
            r#"
            [[shard]]
            name = "video"
            url = "http://v:9090/"
            detectors = ["freeze", "black"]
            [[shard]]
            name = "audio"
            url = "http://a:9090"
            detectors = ["silence", "black"]
            "#,
        )
        .unwrap();
        assert_eq!(shards[0].url, "http://v:9090");
        let list = StreamList::parse(
            "[[stream]]\nid = \"s\"\nurl = \"udp://h:1\"\ndetectors = [\"black\", \"silence\"]\n\
             [[stream]]\nid = \"t\"\nurl = \"udp://h:2\"\ndetectors = [\"freeze\"]\n",
            &PipelineConfig::default(),
        )
        .unwrap();
        let a = assign(&list, &shards).unwrap();
        assert_eq!(a[0].1, BTreeSet::from(["s".to_string(), "t".to_string()]));
        assert_eq!(a[1].1, BTreeSet::from(["s".to_string()]));
        let video = StreamList::parse(&a[0].0, &PipelineConfig::default()).unwrap();
        assert_eq!(video.streams[0].config.detectors, vec![DetectorName::Black]);
        let audio = StreamList::parse(&a[1].0, &PipelineConfig::default()).unwrap();
        assert_eq!(
            audio.streams[0].config.detectors,
            vec![DetectorName::Silence]
        );
        // The rest of the configuration travels whole.
        assert_eq!(audio.streams[0].config.black, list.streams[0].config.black);

        let missing = StreamList::parse(
            "[[stream]]\nid = \"s\"\nurl = \"udp://h:1\"\ndetectors = [\"blur\"]\n",
            &PipelineConfig::default(),
        )
        .unwrap();
        let e = assign(&missing, &shards).unwrap_err().to_string();
        assert!(
            e.contains("stream `s`") && e.contains("`blur` is on no shard"),
            "{e}"
        );
    }

    #[test]
    fn bad_shard_files_say_what_is_wrong() {
        for (text, expect) in [
            ("", "no [[shard]]"),
            (
                "[[shard]]\nname = \"a\"\nurl = \"ftp://x\"\ndetectors = []\n",
                "not http",
            ),
            (
                "[[shard]]\nname = \"a\"\nurl = \"http://x\"\ndetectors = [\"fraze\"]\n",
                "fraze",
            ),
        ] {
            let e = parse_shards(text).unwrap_err().to_string();
            assert!(e.contains(expect), "{text}: {e}");
        }
    }
}
