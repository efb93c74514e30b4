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
//!   each sync clip's true offset.
//!
//! This module reads the manifest with its own types: the runner does not depend on the
//! test kit that writes it.

mod reference;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use vqa_core::report::AV_SYNC_OFFSET_MS;
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
    /// Clips vqa analysed only in part (damaged or truncated input).
    pub incomplete: Vec<PathBuf>,
    pub errors: Vec<ClipError>,
}

/// What to run besides vqa.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Run FFmpeg's filters too.
    pub ffmpeg: bool,
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
    let enabled: Vec<IncidentKind> = config.detectors.iter().map(|d| d.kind()).collect();
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
        let found: Vec<Span> = report
            .incidents
            .iter()
            .map(|i| Span {
                kind: i.kind,
                start: time::to_secs(i.start),
                end: time::to_secs(i.end),
            })
            .collect();
        for (kind, score) in kinds.iter().zip(&mut vqa_scores) {
            let found: &[Span] = if enabled.contains(kind) { &found } else { &[] };
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
                ran: enabled.contains(&kind),
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
    Ok(Evaluation {
        corpus: dir.to_path_buf(),
        clips: manifest.clips.len(),
        analysed,
        seconds: started.elapsed().as_secs_f64(),
        detectors,
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
        "{name:<11} {source:<7} {:>5} {:>5} {:>4} {:>4} {:>4} {:>9} {:>7} {:>10} {:>9}",
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
        "{:<11} {:<7} {:>5} {:>5} {:>4} {:>4} {:>4} {:>9} {:>7} {:>10} {:>9}",
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
                let _ = writeln!(out, "  {:<11} {}", d.detector.as_str(), f.filter);
            }
        }
    }
    out.push_str(
        "A truth defect is found when an incident of its kind overlaps it; an incident \
         overlapping no truth or implied defect of its kind is a false positive. Errors are \
         over found defects. Loudness edges lag by up to 3 s (the short-term window).\n",
    );
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
            incomplete: vec![],
            errors: vec![],
        };
        let text = render(&e);
        assert!(text.contains("blur        vqa"), "{text}");
        assert!(text.contains('–'), "{text}");
        let json = serde_json::to_value(&e).expect("json");
        assert_eq!(json["detectors"][0]["vqa"]["fn"], 0);
        assert!(json["detectors"][0]["vqa"]["precision"].is_null());
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
        let _ = std::fs::remove_dir_all(&dir);
    }
}
