//! The stream list `vqa monitor` reads: which streams, with which detectors and settings,
//! and how the monitor behaves under load. TOML, edited by operators while it runs.
//!
//! ```toml
//! [monitor]                 # optional; every key has a default
//! workers = 0               # CPU pool threads (0: one per core)
//! queue_seconds = 4.0       # media per stream waiting to be decoded, at most
//! shed_after = 2.0          # lag (s) from which the `shed` detectors see fewer pictures
//! shed = ["blockiness", "blur"]
//! reconnect_min = 0.5       # backoff between reconnection attempts, doubling up to max
//! reconnect_max = 30.0
//! allow_local_files = false # plain paths (replays, tests); off: only URLs
//! report_every = 60.0       # with --reports: rewrite running streams' reports (0: at stop)
//!
//! [defaults]                # pipeline configuration for every stream (`vqa config` keys)
//! segment_seconds = 1.0
//!
//! [[stream]]
//! id = "news"
//! url = "udp://239.0.0.1:5000"
//! detectors = ["freeze", "black", "silence"]   # optional override
//! # realtime = true, speed = 1.0, loop = false: a local file (allow_local_files) replayed
//! # at its pace (speed: media seconds per second), from the start again when it ends
//! [stream.config]           # optional, merged over [defaults]
//! black = { min_duration = 0.5 }
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use vqa_core::config::merge_toml;
use vqa_core::{DetectorName, PipelineConfig, StreamId};

/// How the monitor runs, whatever the streams.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorSettings {
    /// Threads decoding and detecting for all streams (0: one per core).
    pub workers: usize,
    /// Media (seconds of stream time) one stream may have read but not decoded; past it the
    /// reader waits, so memory stays bounded whatever the load (a live source then loses
    /// data upstream, which shows as corruption).
    pub queue_seconds: f64,
    /// Lag (seconds behind the live edge) from which the `shed` detectors see only one
    /// picture in 2, then one in 3, ... (one more per further `shed_after` of lag, at most 1
    /// in 8). Lag is reported from the first second either way.
    pub shed_after: f64,
    /// Detectors that shed pictures under load (default: every detector that reads pixels).
    pub shed: Option<Vec<DetectorName>>,
    /// First wait before reconnecting a lost input, seconds; doubles per failed attempt.
    pub reconnect_min: f64,
    /// Longest wait between reconnection attempts, seconds.
    pub reconnect_max: f64,
    /// Accept plain paths (local files) as streams: for replays and tests. Off by default,
    /// so a list can only make the monitor open network sources.
    pub allow_local_files: bool,
    /// With `--reports`: rewrite each running stream's report this often (seconds of
    /// stream time), so the report a notification links to exists while the stream goes
    /// on; 0: only when the stream stops.
    pub report_every: f64,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            workers: 0,
            queue_seconds: 4.0,
            shed_after: 2.0,
            shed: None,
            reconnect_min: 0.5,
            reconnect_max: 30.0,
            allow_local_files: false,
            report_every: 60.0,
        }
    }
}

/// One monitored stream, its configuration resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSpec {
    pub id: StreamId,
    /// A URL (or, where allowed, a local path).
    pub url: String,
    pub config: PipelineConfig,
    /// Read a local file at the pace of its timestamps, as a live source would send it.
    pub realtime: bool,
    /// With `realtime`: media seconds sent per second (2.0: twice real time), to load a
    /// monitor as if it watched more streams.
    pub speed: f64,
    /// A local file starts again when it ends (a replay that never stops, for soak tests
    /// and benchmarks).
    pub looped: bool,
}

impl StreamSpec {
    pub fn is_url(&self) -> bool {
        vqa_core::url_scheme(&self.url).is_some()
    }

    /// Whether media arrives in real time (a URL, or a file replayed at its pace): only then
    /// is there a live edge to fall behind, and load to shed.
    pub fn is_live(&self) -> bool {
        self.is_url() || self.realtime
    }
}

/// A parsed stream list.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamList {
    pub monitor: MonitorSettings,
    pub streams: Vec<StreamSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    #[serde(default)]
    monitor: MonitorSettings,
    #[serde(default)]
    defaults: toml::Table,
    #[serde(default)]
    stream: Vec<RawStream>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    id: String,
    url: String,
    detectors: Option<Vec<String>>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    realtime: bool,
    speed: Option<f64>,
    #[serde(default, rename = "loop")]
    looped: bool,
}

/// A stream list that cannot be used, saying what is wrong and where (retrying cannot help:
/// the list must be fixed).
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{path}: cannot read the stream list: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {problem}; fix the stream list")]
    InFile { path: String, problem: String },
    /// What is wrong in the list's text: `line 3: ...`, `stream `news` is listed twice`.
    #[error("{0}")]
    Invalid(String),
}

impl StreamList {
    /// Reads a list from a file; `base` is the configuration every stream starts from (from
    /// `--config`), under the list's `[defaults]`. Errors name the file and, where it is the
    /// cause, the stream.
    pub fn load(path: &Path, base: &PipelineConfig) -> Result<Self, ListError> {
        let text = std::fs::read_to_string(path).map_err(|source| ListError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, base).map_err(|e| ListError::InFile {
            path: path.display().to_string(),
            problem: e.to_string(),
        })
    }

    pub fn parse(text: &str, base: &PipelineConfig) -> Result<Self, ListError> {
        Self::parse_inner(text, base, None)
    }

    /// Parses a list sent to a running monitor (`PUT /streams`): the monitor's own settings
    /// apply, whatever the list's `[monitor]` says (a remote list cannot allow local files).
    pub fn parse_under(
        text: &str,
        base: &PipelineConfig,
        settings: &MonitorSettings,
    ) -> Result<Self, ListError> {
        Self::parse_inner(text, base, Some(settings))
    }

    fn parse_inner(
        text: &str,
        base: &PipelineConfig,
        forced: Option<&MonitorSettings>,
    ) -> Result<Self, ListError> {
        let mut raw: RawList = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |span| span.start);
            let line = 1 + text.as_bytes()[..at.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            ListError::Invalid(format!("line {line}: {}", e.message().trim()))
        })?;
        if let Some(settings) = forced {
            raw.monitor = settings.clone();
        }
        let m = &raw.monitor;
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ListError::Invalid(format!(
                    "monitor.{name} = {v}: expected seconds, more than 0"
                )))
            }
        };
        positive("queue_seconds", m.queue_seconds)?;
        positive("shed_after", m.shed_after)?;
        positive("reconnect_min", m.reconnect_min)?;
        positive("reconnect_max", m.reconnect_max)?;
        if !(m.report_every.is_finite() && m.report_every >= 0.0) {
            return Err(ListError::Invalid(format!(
                "monitor.report_every = {}: expected seconds, 0 or more",
                m.report_every
            )));
        }
        let invalid = |e: toml::ser::Error| ListError::Invalid(e.to_string());
        let mut base_table = toml::Table::try_from(base).map_err(invalid)?;
        merge_toml(&mut base_table, &raw.defaults);
        let mut ids = BTreeSet::new();
        let mut streams = Vec::new();
        for s in raw.stream {
            let id = s.id.trim().to_string();
            if let Some(problem) = stream_id_problem(&id) {
                return Err(ListError::Invalid(format!(
                    "stream id `{}`: {problem} (it names the report file)",
                    id.escape_debug()
                )));
            }
            if !ids.insert(id.clone()) {
                return Err(ListError::Invalid(format!(
                    "stream `{id}` is listed twice; ids must be unique"
                )));
            }
            let shown = vqa_core::redact_url(&s.url);
            // A stream (or the list's defaults) choosing another profile than the
            // monitor's starts from that profile's defaults instead of the monitor's values.
            let own_profile = s
                .config
                .get("profile")
                .or_else(|| raw.defaults.get("profile"))
                .and_then(toml::Value::as_str)
                .is_some_and(|p| p.replace('-', "_") != base.profile.as_str());
            let mut table = if own_profile {
                raw.defaults.clone()
            } else {
                base_table.clone()
            };
            merge_toml(&mut table, &s.config);
            if let Some(names) = &s.detectors {
                table.insert(
                    "detectors".into(),
                    toml::Value::Array(names.iter().map(|n| n.clone().into()).collect()),
                );
            }
            let config = PipelineConfig::from_toml(&toml::to_string(&table).map_err(invalid)?)
                .map_err(|e| ListError::Invalid(format!("stream `{id}`: {e}")))?;
            // FFmpeg reads `proto:rest` as a protocol too (`concat:a|b`, `subfile:`), with or
            // without `//`: such a prefix is checked like a URL's scheme.
            let prefix = s
                .url
                .split_once(':')
                .map(|(p, _)| p)
                .filter(|p| {
                    p.len() > 1
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                })
                .map(str::to_ascii_lowercase);
            match vqa_core::url_scheme(&s.url).or(prefix) {
                Some(scheme) => {
                    let allowed = &config.converter.allowed_protocols;
                    if !allowed.iter().any(|p| p.eq_ignore_ascii_case(&scheme)) {
                        return Err(ListError::Invalid(format!(
                            "stream `{id}` ({shown}): protocol {scheme}: is not allowed (allowed: {}); \
                             add it to converter.allowed_protocols if it should be",
                            allowed.join(",")
                        )));
                    }
                }
                None if !m.allow_local_files => {
                    return Err(ListError::Invalid(format!(
                        "stream `{id}`: `{shown}` is a local path; a stream list opens URLs only \
                     unless [monitor] allow_local_files = true"
                    )))
                }
                None => {}
            }
            let speed = s.speed.unwrap_or(1.0);
            if !(speed.is_finite() && speed > 0.0) {
                return Err(ListError::Invalid(format!(
                    "stream `{id}`: speed = {speed}: expected more than 0 (1.0: real time)"
                )));
            }
            streams.push(StreamSpec {
                id: StreamId::new(id),
                url: s.url,
                config,
                realtime: s.realtime,
                speed,
                looped: s.looped,
            });
        }
        Ok(StreamList {
            monitor: raw.monitor,
            streams,
        })
    }
}

/// Longest stream id, bytes: `<id>.json` stays well within a file name's 255.
pub const MAX_STREAM_ID_BYTES: usize = 200;

/// Why `id` cannot name a stream, if it cannot. An id names the stream's report file (and
/// `GET /reports/ID`), so it must be a file name of its own: not empty, no slash, backslash
/// or control character, not starting with a dot, at most [`MAX_STREAM_ID_BYTES`].
pub fn stream_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("expected a name, not nothing")
    } else if id.len() > MAX_STREAM_ID_BYTES {
        Some("expected at most 200 bytes")
    } else if id.contains(['/', '\\']) || id.chars().any(char::is_control) {
        Some("expected a name without slashes or control characters")
    } else if id.starts_with('.') {
        Some("expected a name not starting with a dot")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_choosing_another_profile_starts_from_its_defaults() {
        use vqa_core::config::Profile;
        let mut base = PipelineConfig::for_profile(Profile::Broadcast);
        base.segment_seconds = 2.0; // the monitor's own value
        let list = StreamList::parse(
            "[[stream]]\nid = \"a\"\nurl = \"udp://127.0.0.1:5000\"\n\
             [[stream]]\nid = \"b\"\nurl = \"udp://127.0.0.1:5001\"\n\
             [stream.config]\nprofile = \"file_qc\"\nblack = { clear_after = 1.0 }\n",
            &base,
        )
        .expect("list");
        let (a, b) = (&list.streams[0].config, &list.streams[1].config);
        assert_eq!(
            (a.profile, a.black.min_duration, a.segment_seconds),
            (Profile::Broadcast, 10.0, 2.0)
        );
        assert_eq!(
            (
                b.profile,
                b.black.min_duration,
                b.black.clear_after,
                b.segment_seconds
            ),
            (Profile::FileQc, 0.5, 1.0, 1.0)
        );
        // A list naming the monitor's own profile changes nothing.
        let same = StreamList::parse(
            "[defaults]\nprofile = \"broadcast\"\n[[stream]]\nid = \"a\"\nurl = \"udp://127.0.0.1:5000\"\n",
            &base,
        )
        .expect("list");
        assert_eq!(same.streams[0].config, *a);
    }

    #[test]
    fn defaults_and_per_stream_overrides_merge_over_the_base() {
        let list = StreamList::parse(
            r#"
            [monitor]
            workers = 3
            [defaults]
            segment_seconds = 2.0
            black = { min_duration = 0.25 }
            [[stream]]
            id = "a"
            url = "udp://127.0.0.1:5000"
            [[stream]]
            id = "b"
            url = "srt://host:9000?passphrase=secret"
            detectors = ["freeze", "silence"]
            [stream.config]
            black = { critical_after = 3.0 }
            "#,
            &PipelineConfig::default(),
        )
        .unwrap();
        assert_eq!(list.monitor.workers, 3);
        assert_eq!(list.monitor.queue_seconds, 4.0);
        let (a, b) = (&list.streams[0].config, &list.streams[1].config);
        assert_eq!(a.segment_seconds, 2.0);
        assert_eq!(a.detectors, DetectorName::defaults());
        assert_eq!(
            b.detectors,
            vec![DetectorName::Freeze, DetectorName::Silence]
        );
        assert_eq!(b.black.min_duration, 0.25);
        assert_eq!(b.black.critical_after, 3.0);
        assert_eq!(
            a.black.critical_after,
            PipelineConfig::default().black.critical_after
        );
    }

    #[test]
    fn local_reading_protocols_and_paths_are_refused_naming_the_stream() {
        let base = PipelineConfig::default();
        for (url, expect) in [
            ("file:///etc/passwd", "protocol file: is not allowed"),
            ("concat:a.ts|b.ts", "protocol concat: is not allowed"),
            ("/etc/passwd", "is a local path"),
        ] {
            let text = format!("[[stream]]\nid = \"x\"\nurl = \"{url}\"\n");
            let e = StreamList::parse(&text, &base).unwrap_err().to_string();
            assert!(e.contains("stream `x`") && e.contains(expect), "{url}: {e}");
        }
        let text =
            "[monitor]\nallow_local_files = true\n[[stream]]\nid = \"x\"\nurl = \"clip.mp4\"\n";
        assert!(StreamList::parse(text, &base).is_ok());
    }

    #[test]
    fn bad_lists_say_where() {
        let base = PipelineConfig::default();
        let twice = "[[stream]]\nid = \"a\"\nurl = \"udp://h:1\"\n[[stream]]\nid = \"a\"\nurl = \"udp://h:2\"\n";
        assert!(StreamList::parse(twice, &base)
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
        let unknown = "[[stream]]\nid = \"a\"\nurl = \"udp://h:1\"\ndetectors = [\"fraze\"]\n";
        let e = StreamList::parse(unknown, &base).unwrap_err().to_string();
        assert!(e.contains("stream `a`") && e.contains("fraze"), "{e}");
        let typo = "[monitor]\nworkerz = 2\n";
        let e = StreamList::parse(typo, &base).unwrap_err().to_string();
        assert!(e.starts_with("line 2:"), "{e}");
        let secret = "[[stream]]\nid = \"a\"\nurl = \"ftp://u:hunter2@h/x\"\n";
        let e = StreamList::parse(secret, &base).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn stream_ids_are_file_names_of_their_own() {
        let base = PipelineConfig::default();
        let long = "x".repeat(MAX_STREAM_ID_BYTES + 1);
        for (id, expect) in [
            ("a/b", "without slashes"),
            ("a\\\\b", "without slashes"),
            ("a\\u0000b", "control characters"),
            ("a\\nb", "control characters"),
            ("..", "not starting with a dot"),
            (".hidden", "not starting with a dot"),
            (" ", "not nothing"),
            (
                long.as_str(),
                &format!("at most {MAX_STREAM_ID_BYTES} bytes"),
            ),
        ] {
            let text = format!("[[stream]]\nid = \"{id}\"\nurl = \"udp://h:1\"\n");
            let e = StreamList::parse(&text, &base).unwrap_err().to_string();
            assert!(e.contains(expect) && !e.contains('\n'), "{id}: {e}");
        }
        let fine = "x".repeat(MAX_STREAM_ID_BYTES);
        for id in ["news", "news 1", "chaîne-2", "a.b", fine.as_str()] {
            assert_eq!(stream_id_problem(id), None, "{id}");
        }
    }
}
