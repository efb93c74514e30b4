//! A labelled corpus: several clips per defect kind plus clean ones, each with its ground
//! truth, listed in `corpus.json`. `vqa eval` scores the detectors on it.
//!
//! The corpus is deterministic: the same size gives the same specs, the same truth and
//! (with the same FFmpeg build) the same bytes. Every clip's audio sits at about −23
//! LUFS (EBU R128's target). A clip whose defect moves the whole clip's integrated
//! loudness (as FFmpeg's `ebur128` measures it) outside −23 ± 1 LUFS — a loudness jump,
//! a clipped passage — has a whole-clip `loudness` defect implied: file QC judges a file's
//! programme loudness over all of it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{make_clip, BarsPattern, ClipSpec, Container, Content, Defect, DefectKind};

/// The manifest's file name inside the corpus directory.
pub const MANIFEST_NAME: &str = "corpus.json";

/// Version of the manifest format.
pub const MANIFEST_VERSION: u32 = 1;

/// Tone level of every corpus clip: about −23 LUFS in stereo.
const CORPUS_AUDIO_LEVEL_DB: f64 = -22.4;

/// How big a corpus to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorpusSize {
    /// 2 clips per kind and 2 clean ones, 320x240 and 640x360, at most 12 s each: for
    /// tests (about a minute and a half to render on two cores).
    Quick,
    /// At least 5 clips per kind and 7 clean ones, varied content, times, lengths and
    /// sizes up to 1280x720.
    Full,
}

/// One clip of the corpus as `corpus.json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusEntry {
    /// Path relative to the corpus directory.
    pub path: PathBuf,
    pub spec: ClipSpec,
    /// What must be found: kind, start, end in seconds from the start of the file.
    pub truth: Vec<Defect>,
    /// What may be found without being a false positive (see [`crate::Clip::implied`]).
    pub implied: Vec<Defect>,
    /// Sync-pattern clips: how much later the audio is than the picture, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<f64>,
    /// A clean clip: `vqa eval` counts every incident on it as a false alarm, per hour of
    /// clean content.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clean: bool,
}

/// `corpus.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub size: CorpusSize,
    pub clips: Vec<CorpusEntry>,
}

/// The base spec of corpus clip `index` (of any kind): sizes, content and GOP vary with
/// the index; all clips carry audio at the corpus level.
fn base(size: CorpusSize, index: usize, duration: f64) -> ClipSpec {
    let (width, height) = match size {
        CorpusSize::Quick => [(320, 240), (640, 360)][index % 2],
        CorpusSize::Full => {
            [(320, 240), (640, 360), (480, 270), (1280, 720), (640, 360)][index % 5]
        }
    };
    ClipSpec {
        duration,
        width,
        height,
        content: [Content::TestPattern, Content::Natural][index % 2],
        gop: (index % 3 == 2).then_some(50),
        audio_level_db: Some(CORPUS_AUDIO_LEVEL_DB),
        ..ClipSpec::default()
    }
}

fn with(spec: ClipSpec, defects: Vec<Defect>) -> ClipSpec {
    ClipSpec { defects, ..spec }
}

/// Kinds only the full corpus carries: vqa raises them after 30 s (Volicon's level alarms),
/// longer than the quick corpus's clips.
pub const FULL_ONLY: [DefectKind; 1] = [DefectKind::AudioLevel];

/// The clips of one kind: `(name, spec)`.
fn kind_specs(kind: DefectKind, size: CorpusSize) -> Vec<(String, ClipSpec)> {
    if !crate::INJECTABLE.contains(&kind) {
        return Vec::new();
    }
    let count = match size {
        CorpusSize::Quick if FULL_ONLY.contains(&kind) => 0,
        CorpusSize::Quick => 2,
        CorpusSize::Full => 5,
    };
    let full = size == CorpusSize::Full;
    (0..count)
        .map(|i| {
            let x = i as f64;
            // Clips of 8, 10 and 12 s in the full corpus; 8 s in the quick one.
            let duration = if full {
                8.0 + 2.0 * (i % 3) as f64
            } else {
                8.0
            };
            let spec = base(size, i, duration);
            let span = |start: f64, length: f64| Defect::new(kind, start, start + length);
            let spec = match kind {
                DefectKind::Freeze => with(spec, vec![span(1.0 + 0.6 * x, 1.2 + 0.7 * x)]),
                DefectKind::Black => with(spec, vec![span(1.5 + 0.5 * x, 0.6 + 0.5 * x)]),
                DefectKind::Silence => with(spec, vec![span(2.0 + 0.4 * x, 1.1 + 0.6 * x)]),
                DefectKind::Blockiness => {
                    let mut defects = vec![span(2.0 + 0.5 * x, 0.6 + 0.5 * x)];
                    if i == 4 {
                        defects.push(span(7.0, 1.0));
                    }
                    ClipSpec {
                        content: Content::Natural,
                        ..with(spec, defects)
                    }
                }
                DefectKind::Corruption => ClipSpec {
                    gop: Some([25, 50][i % 2]),
                    ..with(spec, vec![span(2.2 + 0.4 * x, 0.2 + 0.3 * x)])
                },
                DefectKind::Blur => ClipSpec {
                    blur_sigma: 3.0 + x,
                    ..with(spec, vec![span(1.5 + 0.5 * x, 1.5 + 0.5 * x)])
                },
                DefectKind::Colorbars => ClipSpec {
                    bars: [BarsPattern::Smpte, BarsPattern::SmpteHd, BarsPattern::Pal75][i % 3],
                    ..with(spec, vec![span(2.0 + 0.3 * x, 1.5 + 0.5 * x)])
                },
                DefectKind::FrameDrop => {
                    // 1, 3, 10, 25 and 5 frames missing.
                    let frames = [1.0, 3.0, 10.0, 25.0, 5.0][i];
                    let mut defects = vec![span(2.0 + 0.7 * x, frames / 25.0)];
                    if i == 4 {
                        defects.push(span(6.0, 2.0 / 25.0));
                    }
                    with(spec, defects)
                }
                DefectKind::LoudnessJump => {
                    let (duration, length) = if full {
                        (14.0 + x, 8.0 + 0.5 * x)
                    } else {
                        (12.0, 8.0)
                    };
                    ClipSpec {
                        duration,
                        loudness_gain_db: [15.0, 10.0][i % 2],
                        ..with(spec, vec![span(2.0 + 0.3 * x, length)])
                    }
                }
                DefectKind::Clipping => ClipSpec {
                    // −22.4 dBFS + 24 dB: the tone's peaks 1.6 dB past full scale.
                    clipping_gain_db: 24.0,
                    ..with(spec, vec![span(2.0 + 0.5 * x, 0.5 + 0.5 * x)])
                },
                // 2 to 18 AAC packets (43 to 384 ms at 48 kHz), one hole each.
                DefectKind::AudioDropout => with(
                    spec,
                    vec![span(2.5 + 0.6 * x, [0.043, 0.12, 0.384, 0.064, 0.2][i])],
                ),
                // Inverted for 4 to 6 s: longer than file QC's 3 s raise time.
                DefectKind::AudioPhase => with(spec, vec![span(1.5 + 0.3 * x, 4.0 + 0.5 * x)]),
                // Clicks every 0.25 s on the first channel over 0.5 to 1.5 s (one incident),
                // the last clip's a single click.
                DefectKind::AudioClicks => {
                    let length = if i == 4 { 0.0 } else { 0.5 + 0.25 * x };
                    with(spec, vec![span(2.0 + 0.7 * x, length + 1.0 / 48_000.0)])
                }
                // Letterbox, pillarbox or both for 2.5 to 3.7 s (a change in and a change
                // out), the last clip's to the end (a change in only).
                DefectKind::Borders => {
                    let start = 2.0 + 0.4 * x;
                    let end = if i == 4 {
                        duration
                    } else {
                        start + 2.5 + 0.3 * x
                    };
                    ClipSpec {
                        letterbox_px: [30, 0, 34, 0, 20][i],
                        pillarbox_px: [0, 80, 0, 160, 20][i],
                        ..with(spec, vec![Defect::new(kind, start, end)])
                    }
                }
                // A sample aspect ratio declared for 2 to 4 s (changes in and out), the last
                // clip's to the end; MPEG-TS, where the SPS repeats at each keyframe.
                DefectKind::AspectRatio => {
                    let start = 2.0 + 0.5 * x;
                    let end = if i == 4 {
                        duration
                    } else {
                        start + 2.0 + 0.5 * x
                    };
                    ClipSpec {
                        container: Container::Ts,
                        span_sar: [[4, 3], [3, 2], [16, 11], [12, 11], [2, 1]][i],
                        ..with(spec, vec![Defect::new(kind, start, end)])
                    }
                }
                // Interlaced for 6 to 8 s of a 10 or 12 s clip (vqa raises one after 5 s).
                DefectKind::FieldOrder => ClipSpec {
                    duration: if full { 12.0 } else { 10.0 },
                    ..with(spec, vec![span(1.0 + 0.6 * x, 6.0 + 0.5 * x)])
                },
                // One video TS packet lost (a continuity count error) in each picture of
                // 1 to 10 pictures, the last clip's in two places; MPEG-TS, a keyframe every
                // 25 or 50 pictures.
                DefectKind::TsPriority1 => {
                    let frames = [1.0, 3.0, 10.0, 1.0, 5.0][i];
                    let mut defects = vec![span(2.0 + 0.6 * x, frames / 25.0)];
                    if i == 4 {
                        defects.push(span(6.5, 1.0 / 25.0));
                    }
                    ClipSpec {
                        container: Container::Ts,
                        gop: Some([25, 50][i % 2]),
                        ..with(spec, defects)
                    }
                }
                // The transport error indicator set on one video TS packet of each picture
                // of 1 to 25 pictures.
                DefectKind::TsPriority2 => {
                    let frames = [1.0, 5.0, 25.0, 2.0, 1.0][i];
                    ClipSpec {
                        container: Container::Ts,
                        gop: Some([50, 25][i % 2]),
                        ..with(spec, vec![span(2.4 + 0.7 * x, frames / 25.0)])
                    }
                }
                // The level 25 to 29 dB down (the tone's peaks at -47 to -51 dBFS), or
                // 21 dB up (peaks at -0.6 dBFS), for 32 to 36 s of a 40 s clip (vqa raises
                // one after 30 s).
                DefectKind::AudioLevel => ClipSpec {
                    duration: 40.0,
                    level_gain_db: [-25.0, 21.0, -29.0, -27.0, 21.0][i],
                    ..with(spec, vec![span(2.0 + 0.5 * x, 32.0 + x)])
                },
                // A break announced by a splice_insert out (with its duration) and ended by
                // one back in: two events; the last clip's break runs past its end.
                DefectKind::Scte35 => {
                    let start = 1.5 + 0.5 * x;
                    let end = if i == 4 {
                        duration
                    } else {
                        start + 3.0 + 0.5 * x
                    };
                    ClipSpec {
                        container: Container::Ts,
                        ..with(spec, vec![Defect::new(kind, start, end)])
                    }
                }
                DefectKind::AvSync => ClipSpec {
                    content: Content::SyncPattern,
                    gop: None,
                    av_offset_ms: [120.0, -60.0, 200.0, -40.0, 80.0][i],
                    ..spec
                },
                // Kinds a clip cannot carry were refused above.
                _ => spec,
            };
            (format!("{}_{i:02}", kind.as_str()), spec)
        })
        .collect()
}

/// The names of the clean clips start with this.
pub const CLEAN_PREFIX: &str = "clean_";

/// Clips without defects (sync-pattern ones within tolerance are clean too).
fn clean_specs(size: CorpusSize) -> Vec<(String, ClipSpec)> {
    let mut specs = vec![base(size, 0, 8.0), base(size, 1, 8.0)];
    if size == CorpusSize::Full {
        specs.push(ClipSpec {
            content: Content::Natural,
            ..base(size, 3, 10.0)
        });
        specs.push(base(size, 2, 12.0));
        specs.push(ClipSpec {
            gop: Some(25),
            ..base(size, 5, 10.0)
        });
        for offset in [0.0, 20.0] {
            specs.push(ClipSpec {
                content: Content::SyncPattern,
                av_offset_ms: offset,
                ..base(size, 1, 8.0)
            });
        }
    }
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| (format!("{CLEAN_PREFIX}{i:02}"), spec))
        .collect()
}

/// Every clip of a corpus of `size`, named, in manifest order.
pub fn corpus_specs(size: CorpusSize) -> Vec<(String, ClipSpec)> {
    let mut specs: Vec<(String, ClipSpec)> = crate::INJECTABLE
        .into_iter()
        .flat_map(|kind| kind_specs(kind, size))
        .collect();
    specs.extend(clean_specs(size));
    specs
}

/// Renders the corpus into `dir` and writes `dir/corpus.json` (last, so a manifest that
/// exists lists only complete clips). `progress` is called before each clip with its
/// position, the total and its name.
pub fn write_corpus(
    dir: &Path,
    size: CorpusSize,
    progress: impl FnMut(usize, usize, &str),
) -> Result<Manifest> {
    write_corpus_of(dir, size, &[], progress)
}

/// [`write_corpus`] with only the clips of `kinds` (all of them when empty): to look at
/// some detectors without rendering the rest.
pub fn write_corpus_of(
    dir: &Path,
    size: CorpusSize,
    kinds: &[DefectKind],
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Manifest> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut specs = corpus_specs(size);
    if !kinds.is_empty() {
        specs.retain(|(name, _)| {
            kinds
                .iter()
                .any(|k| name.starts_with(&format!("{}_", k.as_str())))
        });
    }
    let total = specs.len();
    let mut clips = Vec::with_capacity(total);
    for (position, (name, spec)) in specs.into_iter().enumerate() {
        progress(position, total, &name);
        let mut clip =
            make_clip(dir, &name, &spec).with_context(|| format!("corpus clip {name}"))?;
        if spec.audio_channels > 0 {
            let lufs = crate::tools::integrated_loudness(&clip.path)
                .with_context(|| format!("corpus clip {name}"))?;
            let r128 = vqa_core::config::LoudnessConfig::default();
            if (lufs - r128.target_lufs).abs() > r128.tolerance_lu {
                clip.implied
                    .push(Defect::new(DefectKind::Loudness, 0.0, spec.duration));
            }
        }
        let Some(file_name) = clip.path.file_name() else {
            bail!(
                "corpus clip {name}: {} has no file name",
                clip.path.display()
            );
        };
        clips.push(CorpusEntry {
            path: PathBuf::from(file_name),
            spec,
            truth: clip.truth,
            implied: clip.implied,
            offset_ms: clip.av_offset_ms,
            clean: name.starts_with(CLEAN_PREFIX),
        });
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        size,
        clips,
    };
    let path = dir.join(MANIFEST_NAME);
    let partial = dir.join(format!(".{MANIFEST_NAME}.partial"));
    let json = serde_json::to_string_pretty(&manifest)?;
    fs::write(&partial, json + "\n").with_context(|| format!("writing {}", partial.display()))?;
    fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpora_cover_every_kind_and_are_valid_specs() {
        for (size, per_kind, clean) in [(CorpusSize::Quick, 2, 2), (CorpusSize::Full, 5, 7)] {
            let specs = corpus_specs(size);
            for kind in crate::INJECTABLE {
                let n = specs
                    .iter()
                    .filter(|(name, _)| name.starts_with(&format!("{}_", kind.as_str())))
                    .count();
                let full_only = size == CorpusSize::Quick && FULL_ONLY.contains(&kind);
                assert_eq!(n, if full_only { 0 } else { per_kind }, "{size:?} {kind}");
            }
            let n = specs
                .iter()
                .filter(|(n, _)| n.starts_with("clean_"))
                .count();
            assert_eq!(n, clean, "{size:?} clean");
            for (name, spec) in &specs {
                crate::graph::layout(spec).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                if size == CorpusSize::Quick {
                    assert!(spec.duration <= 12.0, "{name}");
                    assert!(spec.width <= 640, "{name}");
                }
            }
            assert_eq!(specs, corpus_specs(size), "deterministic");
        }
    }
}
