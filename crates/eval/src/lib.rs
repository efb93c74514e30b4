//! `vqa eval`: scores the detectors on a labelled corpus, side by side with FFmpeg's own
//! detector filters where FFmpeg has one.
//!
//! A corpus is a directory of clips with known defects and a `corpus.json` listing them
//! (`vqa-make-clip --corpus DIR` writes one). Each clip is analysed in process, exactly as
//! `vqa analyze` would, and its incidents are matched with the truth, kind by kind:
//!
//! * a truth defect is **found** (a true positive) when an incident of its kind overlaps
//!   it, and **missed** (a false negative) otherwise; a detector that did not run finds
//!   nothing, so its truth counts as missed;
//! * an incident is a **false positive** when it overlaps no truth defect and no implied
//!   defect of its kind (implied: what may legitimately be reported, e.g. a freeze over a
//!   black span);
//! * precision is TP / (TP + FP), recall TP / truth defects;
//! * the start and end errors of a found defect are measured from the earliest start and
//!   the latest end of the incidents overlapping it;
//! * for A/V sync, the stream's mean measured offset (`av_sync.offset_ms`) is compared with
//!   each sync clip's true offset;
//! * clips marked `clean` (natural content with no defect) make a section of their own:
//!   every incident on them is a false alarm, counted per kind and per hour of clean
//!   content, under each alarm profile asked for (file QC and broadcast by default), beside
//!   FFmpeg's filters on the same clips.
//!
//! This module reads the manifest with its own types: the runner does not depend on the
//! test kit that writes it.

mod reference;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use vqa_core::report::{StreamReport, AV_SYNC_OFFSET_MS};
use vqa_core::{time, IncidentKind, PipelineConfig};

pub use reference::{ReferenceError, ReferenceSettings};

/// The manifest's file name inside a corpus directory.
pub const MANIFEST_NAME: &str = "corpus.json";
/// The manifest version this module reads.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{dir}: {reason}; make a corpus with `vqa-make-clip --corpus {dir}`")]
    Corpus { dir: String, reason: String },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

/// A defect of one kind over `[start, end)`, seconds from the start of the file: a truth
/// or implied entry of the manifest, or an incident.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub kind: IncidentKind,
    pub start: f64,
    pub end: f64,
}

impl Span {
    /// Shares some time with `other`; an instant (start = end) overlaps a span that
    /// contains it.
    fn overlaps(&self, other: &Span) -> bool {
        let inside = |t: f64, s: &Span| s.start <= t && t < s.end;
        (self.start < other.end && other.start < self.end)
            || (self.start == self.end && inside(self.start, other))
            || (other.start == other.end && inside(other.start, self))
    }
}

/// `corpus.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub clips: Vec<ManifestClip>,
}

/// One clip of the manifest.
#[derive(Clone, Debug, Deserialize)]
pub struct ManifestClip {
    /// Relative to the corpus directory.
    pub path: PathBuf,
    pub truth: Vec<Span>,
    #[serde(default)]
    pub implied: Vec<Span>,
    /// Sync-pattern clips: audio delay relative to the picture, ms (positive: late).
    #[serde(default)]
    pub offset_ms: Option<f64>,
    /// Clean content: no defect of any kind, so every incident on it is a false alarm.
    #[serde(default)]
    pub clean: bool,
}

/// Reads and checks `dir/corpus.json`.
pub fn load_manifest(dir: &Path) -> Result<Manifest, EvalError> {
    let fail = |reason: String| EvalError::Corpus {
        dir: dir.display().to_string(),
        reason,
    };
    if !dir.is_dir() {
        return Err(fail(if dir.exists() {
            "not a directory".into()
        } else {
            "no such directory".into()
        }));
    }
    let path = dir.join(MANIFEST_NAME);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        fail(match e.kind() {
            std::io::ErrorKind::NotFound => format!("no {MANIFEST_NAME} in it"),
            _ => format!("cannot read {MANIFEST_NAME}: {e}"),
        })
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| fail(format!("{MANIFEST_NAME} is not a corpus manifest ({e})")))?;
    if manifest.version != MANIFEST_VERSION {
        return Err(fail(format!(
            "{MANIFEST_NAME} has version {}, this vqa reads version {MANIFEST_VERSION}",
            manifest.version
        )));
    }
    if manifest.clips.is_empty() {
        return Err(fail(format!("{MANIFEST_NAME} lists no clips")));
    }
    for clip in &manifest.clips {
        if clip.clean && !clip.truth.is_empty() {
            return Err(fail(format!(
                "{MANIFEST_NAME} marks {} clean but lists defects in it; drop one or the other",
                clip.path.display()
            )));
        }
        if clip.path.is_absolute() || clip.path.components().any(|c| c.as_os_str() == "..") {
            return Err(fail(format!(
                "{MANIFEST_NAME} lists {}, which is outside the corpus",
                clip.path.display()
            )));
        }
    }
    Ok(manifest)
}

/// A span in one clip, for the lists of misses and false positives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClipSpan {
    pub clip: PathBuf,
    pub start: f64,
    pub end: f64,
}

/// How one detector (vqa's or FFmpeg's) did on the corpus.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Score {
    /// Clips with at least one truth defect of this kind.
    pub clips: usize,
    /// Truth defects of this kind.
    pub truth: usize,
    /// Truth defects found.
    pub tp: usize,
    /// Incidents that overlap no truth or implied defect of this kind.
    pub fp: usize,
    /// Truth defects missed.
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// TP / (TP + FP); `None` when nothing was found and nothing was there.
    pub precision: Option<f64>,
    /// TP / truth; `None` without truth defects.
    pub recall: Option<f64>,
    /// Mean |start error| and |end error| over the found defects, seconds.
    pub mean_start_error_s: Option<f64>,
    pub mean_end_error_s: Option<f64>,
    /// A/V sync only: clips with a true offset, how many of them had an offset measured,
    /// and the mean |measured − true| over those, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_clips: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_measured: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_offset_error_ms: Option<f64>,
    pub misses: Vec<ClipSpan>,
    pub false_positives: Vec<ClipSpan>,
    #[serde(skip)]
    start_errors: Vec<f64>,
    #[serde(skip)]
    end_errors: Vec<f64>,
    #[serde(skip)]
    offset_errors: Vec<f64>,
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

impl Score {
    /// Matches what was found in one clip with its truth, for one kind.
    fn add_clip(&mut self, clip: &ManifestClip, kind: IncidentKind, found: &[Span]) {
        let of_kind = |spans: &[Span]| -> Vec<Span> {
            spans.iter().filter(|s| s.kind == kind).copied().collect()
        };
        let truth = of_kind(&clip.truth);
        let allowed: Vec<Span> = truth
            .iter()
            .chain(&of_kind(&clip.implied))
            .copied()
            .collect();
        let found = of_kind(found);
        if !truth.is_empty() {
            self.clips += 1;
        }
        let at = |s: &Span| ClipSpan {
            clip: clip.path.clone(),
            start: s.start,
            end: s.end,
        };
        for t in &truth {
            self.truth += 1;
            let hits: Vec<&Span> = found.iter().filter(|f| f.overlaps(t)).collect();
            let start = hits.iter().map(|f| f.start).min_by(f64::total_cmp);
            let end = hits.iter().map(|f| f.end).max_by(f64::total_cmp);
            match (start, end) {
                (Some(start), Some(end)) => {
                    self.tp += 1;
                    self.start_errors.push((start - t.start).abs());
                    self.end_errors.push((end - t.end).abs());
                }
                _ => {
                    self.fn_ += 1;
                    self.misses.push(at(t));
                }
            }
        }
        for f in &found {
            if !allowed.iter().any(|a| a.overlaps(f)) {
                self.fp += 1;
                self.false_positives.push(at(f));
            }
        }
    }

    fn finish(&mut self) {
        let tp = self.tp as f64;
        self.precision = (self.tp + self.fp > 0).then(|| tp / (self.tp + self.fp) as f64);
        self.recall = (self.truth > 0).then(|| tp / self.truth as f64);
        self.mean_start_error_s = mean(&self.start_errors);
        self.mean_end_error_s = mean(&self.end_errors);
        if self.offset_clips.is_some() {
            self.offset_measured = Some(self.offset_errors.len());
            self.mean_offset_error_ms = mean(&self.offset_errors);
        }
    }
}

/// FFmpeg's filter for a kind and how it did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReferenceScore {
    /// The filter and the thresholds chosen for it.
    pub filter: String,
    #[serde(flatten)]
    pub score: Score,
}

/// One detector's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectorResult {
    pub detector: IncidentKind,
    /// Whether vqa ran this detector; one that did not finds nothing.
    pub ran: bool,
    pub vqa: Score,
    /// FFmpeg's filter for this kind, when it has one and `--no-ffmpeg` was not given.
    pub ffmpeg: Option<ReferenceScore>,
}

/// A clip that could not be analysed (by vqa, or by FFmpeg's filters).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClipError {
    pub clip: PathBuf,
    pub error: String,
}

/// The whole evaluation, as `vqa eval --format json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub corpus: PathBuf,
    /// Clips the manifest lists, and how many of them vqa analysed (the scores cover those).
    pub clips: usize,
    pub analysed: usize,
    pub seconds: f64,
    pub detectors: Vec<DetectorResult>,
    /// False alarms on the clips marked clean, when the corpus has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean: Option<CleanContent>,
    /// Clips vqa analysed only in part (damaged or truncated input).
    pub incomplete: Vec<PathBuf>,
    pub errors: Vec<ClipError>,
}

/// Incidents of one kind on clean content.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CleanKindAlarms {
    pub kind: IncidentKind,
    pub incidents: usize,
    /// Incidents per hour of clean content analysed.
    pub per_hour: f64,
}

/// A false alarm on clean content.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CleanAlarm {
    pub clip: PathBuf,
    pub kind: IncidentKind,
    pub start: f64,
    pub end: f64,
}

/// What one judge (vqa under one alarm profile, or FFmpeg's filters) raised on the clean
/// clips.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CleanAlarms {
    /// `file_qc`, `broadcast`, or `ffmpeg`.
    pub judge: String,
    /// Every kind the judge looked for, with or without incidents.
    pub kinds: Vec<CleanKindAlarms>,
    pub alarms: Vec<CleanAlarm>,
}

/// The clean-content section: false alarms per hour of content with no defect.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CleanContent {
    /// Clips marked clean, and the seconds of them analysed.
    pub clips: usize,
    pub seconds: f64,
    /// vqa under each profile, then FFmpeg's filters when they ran.
    pub judges: Vec<CleanAlarms>,
}

impl CleanAlarms {
    fn new(judge: String, kinds: &[IncidentKind]) -> Self {
        CleanAlarms {
            judge,
            kinds: kinds
                .iter()
                .map(|&kind| CleanKindAlarms {
                    kind,
                    incidents: 0,
                    per_hour: 0.0,
                })
                .collect(),
            alarms: Vec::new(),
        }
    }

    fn add(&mut self, clip: &Path, found: &[Span]) {
        for f in found {
            if let Some(k) = self.kinds.iter_mut().find(|k| k.kind == f.kind) {
                k.incidents += 1;
                self.alarms.push(CleanAlarm {
                    clip: clip.to_path_buf(),
                    kind: f.kind,
                    start: f.start,
                    end: f.end,
                });
            }
        }
    }

    fn finish(&mut self, seconds: f64) {
        for k in &mut self.kinds {
            k.per_hour = if seconds > 0.0 {
                k.incidents as f64 * 3600.0 / seconds
            } else {
                0.0
            };
        }
    }
}

/// What to run besides vqa.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Run FFmpeg's filters too.
    pub ffmpeg: bool,
    /// The configurations clean clips are judged under, one per alarm profile; empty: only
    /// the evaluation's own configuration.
    pub clean_profiles: Vec<PipelineConfig>,
}

/// The incidents of a report as spans, seconds from the start of the file.
fn spans_of(report: &StreamReport) -> Vec<Span> {
    report
        .incidents
        .iter()
        .map(|i| Span {
            kind: i.kind,
            start: time::to_secs(i.start),
            end: time::to_secs(i.end),
        })
        .collect()
}

/// `config`'s enabled detectors' kinds.
fn enabled_kinds(config: &PipelineConfig) -> Vec<IncidentKind> {
    // Every kind an enabled detector reports or measures (loudness: also loudness_jump and
    // true_peak). Events (an SCTE-35 cue) are not defects: they are scored only where a
    // clip labels them.
    IncidentKind::ALL
        .into_iter()
        .filter(|k| !k.is_event() && k.detector().is_some_and(|d| config.is_enabled(d)))
        .collect()
}

/// Called before each clip with its position, the number of clips and its path.
pub type EvalProgress<'a> = &'a (dyn Fn(usize, usize, &Path) + Sync);

/// Scores `config`'s detectors (and FFmpeg's filters) on the corpus in `dir`.
///
/// Fails only when the corpus cannot be read or FFmpeg's CLI is needed and missing; a clip
/// that cannot be analysed is listed in [`Evaluation::errors`] and left out of the scores.
pub async fn evaluate(
    dir: &Path,
    config: &PipelineConfig,
    options: &EvalOptions,
    progress: Option<EvalProgress<'_>>,
) -> Result<Evaluation, EvalError> {
    let started = Instant::now();
    let manifest = load_manifest(dir)?;
    if options.ffmpeg && !reference::available() {
        return Err(ReferenceError::NotInstalled.into());
    }
    let enabled = enabled_kinds(config);
    // Whether a kind's detector ran (events too, which are scored where clips label them).
    let detected = |kind: IncidentKind| kind.detector().is_some_and(|d| config.is_enabled(d));
    let labelled: BTreeSet<IncidentKind> = manifest
        .clips
        .iter()
        .flat_map(|c| c.truth.iter().map(|t| t.kind))
        .collect();
    let kinds: Vec<IncidentKind> = IncidentKind::ALL
        .into_iter()
        .filter(|k| enabled.contains(k) || labelled.contains(k))
        .collect();
    let settings = ReferenceSettings::from_config(config);
    let reference_kinds: Vec<IncidentKind> = if options.ffmpeg {
        enabled
            .iter()
            .copied()
            .filter(|&k| reference::has_filter(k))
            .collect()
    } else {
        Vec::new()
    };
    let sync_clips = manifest
        .clips
        .iter()
        .filter(|c| c.offset_ms.is_some())
        .count();

    let mut vqa_scores: Vec<Score> = kinds.iter().map(|_| Score::default()).collect();
    let mut ffmpeg_scores: Vec<Score> = kinds.iter().map(|_| Score::default()).collect();
    let mut errors = Vec::new();
    let mut incomplete = Vec::new();
    let mut analysed = 0;
    let clean_clips = manifest.clips.iter().filter(|c| c.clean).count();
    let clean_configs: Vec<&PipelineConfig> = if options.clean_profiles.is_empty() {
        vec![config]
    } else {
        options.clean_profiles.iter().collect()
    };
    let mut clean_judges: Vec<CleanAlarms> = clean_configs
        .iter()
        .map(|c| CleanAlarms::new(c.profile.to_string(), &enabled_kinds(c)))
        .collect();
    let mut ffmpeg_clean = CleanAlarms::new("ffmpeg".into(), &reference_kinds);
    let mut clean_seconds = 0.0;
    for (position, clip) in manifest.clips.iter().enumerate() {
        let path = dir.join(&clip.path);
        if let Some(p) = progress {
            p(position, manifest.clips.len(), &path);
        }
        let report = match vqa_deploy_ecs::analyze_file(&path, config).await {
            Ok(analysis) => analysis.report,
            Err(e) => {
                errors.push(ClipError {
                    clip: clip.path.clone(),
                    error: e.to_string(),
                });
                continue;
            }
        };
        analysed += 1;
        if !report.complete {
            incomplete.push(clip.path.clone());
        }
        let found = spans_of(&report);
        if clip.clean {
            clean_seconds += time::to_secs(report.coverage.analysed);
            for (judge, judged) in clean_configs.iter().zip(&mut clean_judges) {
                if *judge == config {
                    judged.add(&clip.path, &found);
                    continue;
                }
                match vqa_deploy_ecs::analyze_file(&path, judge).await {
                    Ok(analysis) => judged.add(&clip.path, &spans_of(&analysis.report)),
                    Err(e) => errors.push(ClipError {
                        clip: clip.path.clone(),
                        error: format!("under the {} profile: {e}", judge.profile),
                    }),
                }
            }
        }
        for (kind, score) in kinds.iter().zip(&mut vqa_scores) {
            let found: &[Span] = if detected(*kind) { &found } else { &[] };
            score.add_clip(clip, *kind, found);
            if *kind == IncidentKind::AvSync && enabled.contains(kind) {
                score.offset_clips = Some(sync_clips);
                let measured = report.measurements.get(AV_SYNC_OFFSET_MS).map(|s| s.mean);
                if let (Some(truth), Some(measured)) = (clip.offset_ms, measured) {
                    score.offset_errors.push((measured - truth).abs());
                }
            }
        }

        if reference_kinds.is_empty() {
            continue;
        }
        let (p, s, k) = (path.clone(), settings.clone(), reference_kinds.clone());
        let detected = tokio::task::spawn_blocking(move || reference::detect(&p, &s, &k))
            .await
            .unwrap_or_else(|_| {
                Err(ReferenceError::Failed {
                    program: "ffmpeg",
                    message: "the thread running it panicked".into(),
                })
            });
        match detected {
            Ok(found) => {
                for (kind, score) in kinds.iter().zip(&mut ffmpeg_scores) {
                    if reference_kinds.contains(kind) {
                        score.add_clip(clip, *kind, &found);
                    }
                }
                if clip.clean {
                    ffmpeg_clean.add(&clip.path, &found);
                }
            }
            Err(e) => errors.push(ClipError {
                clip: clip.path.clone(),
                error: format!("FFmpeg's filters: {e}"),
            }),
        }
    }

    let detectors = kinds
        .iter()
        .zip(vqa_scores.into_iter().zip(ffmpeg_scores))
        .map(|(&kind, (mut vqa, mut ffmpeg))| {
            vqa.finish();
            ffmpeg.finish();
            let filter = settings.describe(kind);
            DetectorResult {
                detector: kind,
                ran: detected(kind),
                vqa,
                ffmpeg: filter
                    .filter(|_| reference_kinds.contains(&kind))
                    .map(|filter| ReferenceScore {
                        filter,
                        score: ffmpeg,
                    }),
            }
        })
        .collect();
    let clean = (clean_clips > 0).then(|| {
        if !reference_kinds.is_empty() {
            clean_judges.push(ffmpeg_clean);
        }
        for judge in &mut clean_judges {
            judge.finish(clean_seconds);
        }
        CleanContent {
            clips: clean_clips,
            seconds: clean_seconds,
            judges: clean_judges,
        }
    });
    Ok(Evaluation {
        corpus: dir.to_path_buf(),
        clips: manifest.clips.len(),
        analysed,
        seconds: started.elapsed().as_secs_f64(),
        detectors,
        clean,
        incomplete,
        errors,
    })
}

/// `0.833`, or `–` when undefined.
fn ratio(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.3}"))
}

fn score_row(out: &mut String, name: &str, source: &str, s: &Score) {
    let _ = writeln!(
        out,
        "{name:<13} {source:<7} {:>5} {:>5} {:>4} {:>4} {:>4} {:>9} {:>7} {:>10} {:>9}",
        s.clips,
        s.truth,
        s.tp,
        s.fp,
        s.fn_,
        ratio(s.precision),
        ratio(s.recall),
        ratio(s.mean_start_error_s),
        ratio(s.mean_end_error_s),
    );
}

/// The evaluation as a table for people.
pub fn render(e: &Evaluation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} clips, {} analysed, in {:.0} s",
        e.corpus.display(),
        e.clips,
        e.analysed,
        e.seconds
    );
    let _ = writeln!(
        out,
        "{:<13} {:<7} {:>5} {:>5} {:>4} {:>4} {:>4} {:>9} {:>7} {:>10} {:>9}",
        "detector",
        "source",
        "clips",
        "truth",
        "TP",
        "FP",
        "FN",
        "precision",
        "recall",
        "|Δstart| s",
        "|Δend| s"
    );
    for d in &e.detectors {
        let name = d.detector.as_str();
        let source = if d.ran { "vqa" } else { "vqa off" };
        score_row(&mut out, name, source, &d.vqa);
        if let Some(f) = &d.ffmpeg {
            score_row(&mut out, "", "ffmpeg", &f.score);
        }
    }
    for d in &e.detectors {
        if let (Some(clips), Some(measured)) = (d.vqa.offset_clips, d.vqa.offset_measured) {
            let _ = writeln!(
                out,
                "{}: offset measured on {measured} of {clips} sync clips, mean |error| {} ms \
                 (FFmpeg has no A/V sync filter)",
                d.detector,
                d.vqa
                    .mean_offset_error_ms
                    .map_or("–".into(), |v| format!("{v:.1}"))
            );
        }
    }
    let filters: Vec<&DetectorResult> = e.detectors.iter().filter(|d| d.ffmpeg.is_some()).collect();
    if !filters.is_empty() {
        out.push_str("FFmpeg's filters, with the thresholds chosen for them:\n");
        for d in filters {
            if let Some(f) = &d.ffmpeg {
                let _ = writeln!(out, "  {:<13} {}", d.detector.as_str(), f.filter);
            }
        }
    }
    out.push_str(
        "A truth defect is found when an incident of its kind overlaps it; an incident \
         overlapping no truth or implied defect of its kind is a false positive. Errors are \
         over found defects. Loudness edges lag by up to 3 s (the short-term window); a \
         border change is labelled with the 1 s it must hold and reported to the end of the \
         segment in which it held.\n",
    );
    if let Some(clean) = &e.clean {
        render_clean(&mut out, clean);
    }
    if !e.incomplete.is_empty() {
        let list: Vec<String> = e
            .incomplete
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let _ = writeln!(out, "analysed only in part: {}", list.join(", "));
    }
    for err in &e.errors {
        let _ = writeln!(out, "error: {}: {}", err.clip.display(), err.error);
    }
    out
}

/// Alarms listed under the clean-content table before the rest are only counted.
const CLEAN_ALARMS_LISTED: usize = 20;

fn render_clean(out: &mut String, clean: &CleanContent) {
    let _ = writeln!(
        out,
        "Clean content: {} clips, {:.0} s ({:.2} h); every incident is a false alarm. \
         Incidents (per hour):",
        clean.clips,
        clean.seconds,
        clean.seconds / 3600.0
    );
    let _ = write!(out, "{:<15}", "kind");
    for judge in &clean.judges {
        let _ = write!(out, " {:>16}", judge.judge);
    }
    out.push('\n');
    let mut kinds: Vec<IncidentKind> = Vec::new();
    for k in clean.judges.iter().flat_map(|j| &j.kinds) {
        if !kinds.contains(&k.kind) {
            kinds.push(k.kind);
        }
    }
    kinds.sort();
    for kind in kinds {
        let _ = write!(out, "{:<15}", kind.as_str());
        for judge in &clean.judges {
            let cell = judge
                .kinds
                .iter()
                .find(|k| k.kind == kind)
                .map_or("–".into(), |k| {
                    format!("{} ({:.1})", k.incidents, k.per_hour)
                });
            let _ = write!(out, " {cell:>16}");
        }
        out.push('\n');
    }
    for judge in &clean.judges {
        for a in judge.alarms.iter().take(CLEAN_ALARMS_LISTED) {
            let _ = writeln!(
                out,
                "  {} {} {}: {:.2}–{:.2} s",
                judge.judge,
                a.kind.as_str(),
                a.clip.display(),
                a.start,
                a.end
            );
        }
        if judge.alarms.len() > CLEAN_ALARMS_LISTED {
            let _ = writeln!(
                out,
                "  {} {} more (--format json lists them all)",
                judge.judge,
                judge.alarms.len() - CLEAN_ALARMS_LISTED
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(kind: IncidentKind, start: f64, end: f64) -> Span {
        Span { kind, start, end }
    }

    fn clip(truth: Vec<Span>, implied: Vec<Span>) -> ManifestClip {
        ManifestClip {
            path: PathBuf::from("c.mp4"),
            truth,
            implied,
            offset_ms: None,
            clean: false,
        }
    }

    #[test]
    fn overlap_counts_instants_inside_a_span() {
        let a = span(IncidentKind::FrameDrop, 2.0, 2.04);
        assert!(a.overlaps(&span(IncidentKind::FrameDrop, 2.0, 2.0)));
        assert!(span(IncidentKind::FrameDrop, 2.02, 2.02).overlaps(&a));
        assert!(!a.overlaps(&span(IncidentKind::FrameDrop, 2.04, 2.5)));
        assert!(!a.overlaps(&span(IncidentKind::FrameDrop, 2.04, 2.04)));
    }

    #[test]
    fn matching_counts_hits_misses_and_false_positives() {
        use IncidentKind::{Black, Freeze};
        let c = clip(
            vec![
                span(Freeze, 1.0, 2.0),
                span(Freeze, 5.0, 6.0),
                span(Black, 3.0, 4.0),
            ],
            vec![span(Freeze, 3.0, 4.0)],
        );
        let found = [
            // One truth freeze split in two: one TP, errors from the outer ends.
            span(Freeze, 1.1, 1.5),
            span(Freeze, 1.5, 2.3),
            // Over the implied freeze: neither TP nor FP.
            span(Freeze, 3.0, 4.0),
            // Nothing there.
            span(Freeze, 7.0, 8.0),
            // Other kinds are not this score's business.
            span(Black, 3.0, 4.0),
        ];
        let mut s = Score::default();
        s.add_clip(&c, Freeze, &found);
        s.add_clip(&clip(vec![], vec![]), Freeze, &[]);
        s.finish();
        assert_eq!((s.clips, s.truth, s.tp, s.fp, s.fn_), (1, 2, 1, 1, 1));
        assert_eq!(s.precision, Some(0.5));
        assert_eq!(s.recall, Some(0.5));
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(close(s.mean_start_error_s, 0.1), "{s:?}");
        assert!(close(s.mean_end_error_s, 0.3), "{s:?}");
        assert_eq!(s.misses[0].start, 5.0);
        assert_eq!(s.false_positives[0].start, 7.0);
    }

    #[test]
    fn events_are_not_scored_as_defects() {
        let kinds = enabled_kinds(&PipelineConfig::default());
        assert!(kinds.contains(&IncidentKind::Freeze));
        assert!(!kinds.contains(&IncidentKind::Scte35), "{kinds:?}");
    }

    #[test]
    fn nothing_found_on_nothing_is_undefined_not_perfect() {
        let mut s = Score::default();
        s.add_clip(&clip(vec![], vec![]), IncidentKind::Blur, &[]);
        s.finish();
        assert_eq!((s.precision, s.recall), (None, None));
        let e = Evaluation {
            corpus: PathBuf::from("c"),
            clips: 1,
            analysed: 1,
            seconds: 0.0,
            detectors: vec![DetectorResult {
                detector: IncidentKind::Blur,
                ran: true,
                vqa: s,
                ffmpeg: None,
            }],
            clean: None,
            incomplete: vec![],
            errors: vec![],
        };
        let text = render(&e);
        assert!(text.contains("blur          vqa"), "{text}");
        assert!(text.contains('–'), "{text}");
        let json = serde_json::to_value(&e).expect("json");
        assert_eq!(json["detectors"][0]["vqa"]["fn"], 0);
        assert!(json["detectors"][0]["vqa"]["precision"].is_null());
    }

    #[test]
    fn clean_alarms_count_per_kind_and_per_hour_of_content() {
        use IncidentKind::{Black, Blur, Freeze};
        let mut judge = CleanAlarms::new("broadcast".into(), &[Black, Freeze]);
        judge.add(
            Path::new("a.mp4"),
            &[
                span(Black, 1.0, 2.0),
                span(Black, 5.0, 6.0),
                span(Blur, 0.0, 1.0),
            ],
        );
        judge.add(Path::new("b.mp4"), &[span(Freeze, 3.0, 4.0)]);
        judge.finish(1800.0);
        // Blur was not looked for: not this judge's alarm.
        assert_eq!(judge.alarms.len(), 3);
        let black = &judge.kinds[0];
        assert_eq!((black.kind, black.incidents), (Black, 2));
        assert!((black.per_hour - 4.0).abs() < 1e-9, "{black:?}");
        assert!((judge.kinds[1].per_hour - 2.0).abs() < 1e-9);
        let e = Evaluation {
            corpus: PathBuf::from("c"),
            clips: 2,
            analysed: 2,
            seconds: 0.0,
            detectors: vec![],
            clean: Some(CleanContent {
                clips: 2,
                seconds: 1800.0,
                judges: vec![judge, CleanAlarms::new("file_qc".into(), &[Black])],
            }),
            incomplete: vec![],
            errors: vec![],
        };
        let text = render(&e);
        assert!(
            text.contains("Clean content: 2 clips, 1800 s (0.50 h)"),
            "{text}"
        );
        let row = |kind: &str| -> Vec<String> {
            let line = text.lines().find(|l| l.starts_with(&format!("{kind} ")));
            line.map_or(Vec::new(), |l| {
                l.split_whitespace().skip(1).map(String::from).collect()
            })
        };
        // One column per judge, in their order: broadcast, then file_qc.
        assert_eq!(row("black"), ["2", "(4.0)", "0", "(0.0)"], "{text}");
        assert_eq!(row("freeze"), ["1", "(2.0)", "–"], "{text}");
        assert!(
            text.contains("broadcast black a.mp4: 5.00–6.00 s"),
            "{text}"
        );
    }

    #[test]
    fn manifest_errors_name_the_directory_and_say_how_to_make_one() {
        let dir = std::env::temp_dir().join(format!("vqa-eval-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let e = load_manifest(&dir).expect_err("missing dir");
        let text = e.to_string();
        assert!(text.starts_with(&dir.display().to_string()), "{text}");
        assert!(text.contains("no such directory"), "{text}");
        assert!(text.contains("vqa-make-clip --corpus"), "{text}");
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert!(load_manifest(&dir)
            .expect_err("no manifest")
            .to_string()
            .contains("no corpus.json"));
        std::fs::write(dir.join(MANIFEST_NAME), "{\"version\":1,\"clips\":[{}]}").expect("write");
        assert!(load_manifest(&dir)
            .expect_err("bad manifest")
            .to_string()
            .contains("not a corpus manifest"));
        std::fs::write(
            dir.join(MANIFEST_NAME),
            r#"{"version":1,"clips":[{"path":"../x.mp4","truth":[]}]}"#,
        )
        .expect("write");
        assert!(load_manifest(&dir)
            .expect_err("escape")
            .to_string()
            .contains("outside the corpus"));
        std::fs::write(
            dir.join(MANIFEST_NAME),
            r#"{"version":1,"size":"quick","clips":[{"path":"a.mp4","spec":{},
                "truth":[{"kind":"frame_drop","start":1.0,"end":1.04}],"offset_ms":80.0}]}"#,
        )
        .expect("write");
        let m = load_manifest(&dir).expect("valid manifest");
        assert_eq!(m.clips[0].truth[0].kind, IncidentKind::FrameDrop);
        assert_eq!(m.clips[0].offset_ms, Some(80.0));
        assert!(!m.clips[0].clean);
        std::fs::write(
            dir.join(MANIFEST_NAME),
            r#"{"version":1,"clips":[{"path":"a.mp4","clean":true,
                "truth":[{"kind":"black","start":1.0,"end":2.0}]}]}"#,
        )
        .expect("write");
        let text = load_manifest(&dir)
            .expect_err("clean with truth")
            .to_string();
        assert!(
            text.contains("marks a.mp4 clean but lists defects"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
