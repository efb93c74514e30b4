//! The one table of kinds: every kind of incident vqa reports, the detector that reports it
//! (when one does), its configuration section, and how its evidence reads in a summary.
//!
//! [`IncidentKind`] and [`DetectorName`] are generated from this table, as are the name
//! lookups, the detectors' list and [`IncidentKind::section`], through which the
//! configuration validates each section and takes each kind's incident rule. Adding a
//! detector is one entry under `detectors` (and its section in `config`); ARCHITECTURE.md
//! ("How to add a detector") has the whole recipe.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, KindSection, PipelineConfig};
use crate::report::{Evidence, Summary};

macro_rules! kinds {
    (
        detectors {
            $( $(#[doc = $ddoc:literal])* $dkind:ident = $dname:literal, section $dsec:ident,
               headline $dhead:expr; )*
        }
        also {
            $( $(#[doc = $adoc:literal])* $akind:ident = $aname:literal, section $asec:ident,
               by $adet:ident, headline $ahead:expr; )*
        }
        others {
            $( $(#[doc = $odoc:literal])* $okind:ident = $oname:literal, section $osec:ident,
               headline $ohead:expr; )*
        }
    ) => {
        /// The kind of defect.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum IncidentKind {
            $( $(#[doc = $ddoc])* $dkind, )*
            $( $(#[doc = $adoc])* $akind, )*
            $( $(#[doc = $odoc])* $okind, )*
        }

        impl IncidentKind {
            /// Every kind, in the table's order.
            pub const ALL: [IncidentKind; [$($dname,)* $($aname,)* $($oname,)*].len()] =
                [$(IncidentKind::$dkind,)* $(IncidentKind::$akind,)* $(IncidentKind::$okind,)*];

            /// The name in reports, configuration and notifications: `freeze`, `frame_drop`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(IncidentKind::$dkind => $dname,)*
                    $(IncidentKind::$akind => $aname,)*
                    $(IncidentKind::$okind => $oname,)*
                }
            }

            /// The detector that reports this kind (or measures what the aggregator judges
            /// it by); none for kinds the runner itself reports (`input_loss`).
            pub fn detector(self) -> Option<DetectorName> {
                match self {
                    $(IncidentKind::$dkind => Some(DetectorName::$dkind),)*
                    $(IncidentKind::$akind => Some(DetectorName::$adet),)*
                    $(IncidentKind::$okind => None,)*
                }
            }

            /// The kind's configuration section (`[freeze]`, ...).
            pub fn section(self, config: &PipelineConfig) -> &dyn KindSection {
                match self {
                    $(IncidentKind::$dkind => &config.$dsec,)*
                    $(IncidentKind::$akind => &config.$asec,)*
                    $(IncidentKind::$okind => &config.$osec,)*
                }
            }

            /// The incident's most telling measurement, in words (`frame difference ≤ 0.012`),
            /// when its evidence has it.
            pub fn headline(self, evidence: &Evidence) -> Option<String> {
                let get = |name: &str| evidence.get(name).copied();
                match self {
                    $(IncidentKind::$dkind => ($dhead)(&get),)*
                    $(IncidentKind::$akind => ($ahead)(&get),)*
                    $(IncidentKind::$okind => ($ohead)(&get),)*
                }
            }
        }

        /// A detector that can be switched on or off by name; each reports the
        /// [`IncidentKind`] of the same name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum DetectorName {
            $( $(#[doc = $ddoc])* $dkind, )*
        }

        impl DetectorName {
            /// Every detector, in the table's order.
            pub const ALL: [DetectorName; [$($dname,)*].len()] = [$(DetectorName::$dkind,)*];

            /// The kind of incident the detector reports.
            pub fn kind(self) -> IncidentKind {
                match self {
                    $(DetectorName::$dkind => IncidentKind::$dkind,)*
                }
            }
        }
    };
}

/// A measurement of the evidence, by name.
type Get<'a> = dyn Fn(&str) -> Option<Summary> + 'a;

kinds! {
    detectors {
        /// The picture stops changing.
        Freeze = "freeze", section freeze,
            headline |get: &Get| get("mafd").map(|s| format!("frame difference ≤ {:.3}", s.max));
        /// The picture is (nearly) entirely black.
        Black = "black", section black,
            headline |get: &Get| get("black_ratio")
                .map(|s| format!("≥ {:.1}% black pixels", s.min * 100.0));
        /// The audio is below the noise floor: on every channel, or (with a `channel`) on one
        /// channel while others carry sound.
        Silence = "silence", section silence,
            headline |get: &Get| get("peak_dbfs").map(|s| format!("peak {:.1} dBFS", s.max));
        /// Visible block structure (macroblocking) from a starved encoder or concealed damage.
        Blockiness = "blockiness", section blockiness,
            headline |get: &Get| get("block_ratio")
                .map(|s| format!("block-edge ratio {:.2} (mean)", s.mean));
        /// The decoder reported damaged or concealed pictures, or rejected packets.
        Corruption = "corruption", section corruption,
            headline |get: &Get| get("corrupt_frames")
                .map(|s| format!("{} damaged pictures", s.count))
                .or_else(|| get("decode_errors").map(|s| format!("{} decoder errors", s.max)));
        /// The picture lost its sharpness.
        Blur = "blur", section blur,
            headline |get: &Get| get("edge_width").map(|s| format!("edge width {:.1} px", s.mean));
        /// Colour bars in place of programme.
        Colorbars = "colorbars", section colorbars,
            headline |get: &Get| get("bars").map(|s| format!("{} bars", s.max));
        /// Letterbox or pillarbox appearing, disappearing or changing size: the black
        /// borders (top, bottom, left, right) changed by more than the tolerance and held;
        /// the evidence has the sizes before and after.
        Borders = "borders", section borders,
            headline |get: &Get| border_change(get);
        /// The declared display aspect ratio changed between two pictures.
        AspectRatio = "aspect_ratio", section aspect_ratio,
            headline |get: &Get| get("dar").zip(get("dar_before"))
                .map(|(now, was)| format!("display aspect {:.3} → {:.3}", was.mean, now.mean));
        /// Interlaced content against the declared field order (or declared progressive),
        /// as FFmpeg's idet judges the pictures.
        FieldOrder = "field_order", section field_order,
            headline |get: &Get| field_order(get);
        /// Video timestamps jump: frames missing, or time going backwards.
        FrameDrop = "frame_drop", section frame_drop,
            headline |get: &Get| get("missing_frames")
                .map(|s| format!("{:.0} frames missing", s.mean * s.count as f64))
                .or_else(|| get("backwards_ms").map(|s| format!("time back {:.0} ms", s.max)));
        /// Programme loudness (integrated over `loudness.programme_window`) outside the
        /// target ± tolerance: a programme too quiet or too loud. The aggregator judges it
        /// from the loudness detector's measurements.
        Loudness = "loudness", section loudness,
            headline |get: &Get| get("programme_lufs")
                .map(|s| format!("programme {:.1} to {:.1} LUFS", s.min, s.max))
                .or_else(|| get("short_term_lufs")
                    .map(|s| format!("short-term {:.1} to {:.1} LUFS", s.min, s.max)));
        /// Samples at full scale: the waveform was cut off.
        Clipping = "clipping", section clipping,
            headline |get: &Get| get("clipped_samples")
                .map(|s| format!("{:.0} clipped samples", s.mean * s.count as f64));
        /// Audio ahead of or behind the picture beyond tolerance.
        AvSync = "av_sync", section av_sync,
            headline |get: &Get| get("offset_ms").map(|s| {
                let side = if s.mean > 0.0 { "late" } else { "early" };
                format!("audio {:.0} ms {side}", s.mean.abs())
            });
        /// Audio missing from the timeline: packets lost or rejected by the decoder.
        AudioDropout = "audio_dropout", section audio_dropout,
            headline |get: &Get| get("gap_ms")
                .map(|s| format!("{} holes, longest {:.0} ms", s.count, s.max));
        /// Clicks and pops: sample discontinuities inside the decoded audio (a bad splice, a
        /// corrupt sample, a few samples lost inside a block), on one channel (`channel`);
        /// clicks closer than `audio_clicks.clear_after` are one incident.
        AudioClicks = "audio_clicks", section audio_clicks,
            headline |get: &Get| get("jump_dbfs").map(|s| {
                let clicks = if s.count == 1 { "click" } else { "clicks" };
                format!("{} {clicks}, loudest jump {:.1} dBFS", s.count, s.max)
            });
        /// A stereo pair out of phase (a channel's polarity inverted): the pair's correlation
        /// below the threshold; `channel` is the pair's first channel.
        AudioPhase = "audio_phase", section audio_phase,
            headline |get: &Get| get("correlation").map(|s| {
                format!("correlation {:.2} (worst {:.2})", s.mean, s.min)
            });
        /// Mono carried as stereo: a pair's channels the same sound at the same level;
        /// `channel` is the pair's first channel.
        AudioMono = "audio_mono", section audio_mono,
            headline |get: &Get| get("correlation")
                .map(|s| format!("correlation {:.3} (lowest {:.3})", s.mean, s.min));
        /// The audio's peak level too low (above silence) or too high for a long time.
        AudioLevel = "audio_level", section audio_level,
            headline |get: &Get| get("high_peak_dbfs")
                .map(|s| format!("too high: peak {:.1} dBFS or above", s.min))
                .or_else(|| get("low_peak_dbfs")
                    .map(|s| format!("too low: peak {:.1} dBFS at most", s.max)));
        /// Closed captions (CEA-608/708, A/53) lost: present, then absent for
        /// `captions.min_duration`; or, with `captions.required`, absent from the start. The
        /// evidence names the services there before (`cea608`, `cea708`) or `required`.
        Captions = "captions", section captions,
            headline |get: &Get| captions_lost(get);
        /// A user-supplied ONNX model scored frames above its threshold.
        Onnx = "onnx", section onnx,
            headline |get: &Get| get("score").map(|s| format!("model score {:.2} (mean)", s.mean));
        /// MPEG-TS inputs: ETSI TR 101 290 priority 1 errors (the stream cannot be decoded:
        /// sync lost, packets lost, PAT/PMT or a referenced PID missing); the indicators in
        /// the evidence.
        TsPriority1 = "ts_priority1", section ts_health,
            headline |get: &Get| ts_indicators(get, 1);
        /// MPEG-TS inputs: an SCTE-35 splice cue arrived — an event, not a defect (severity
        /// `info`); its command, event id, out or in, pre-roll and duration in the evidence.
        Scte35 = "scte35", section scte35,
            headline |get: &Get| scte35_headline(get);
    }
    also {
        /// Short-term loudness far from the programme: above the target's maximum (a
        /// commercial louder than the programme) or a dip far below the programme level.
        LoudnessJump = "loudness_jump", section loudness_jump, by Loudness,
            headline |get: &Get| get("short_term_lufs")
                .map(|s| format!("short-term {:.1} to {:.1} LUFS", s.min, s.max));
        /// True peak above the standard's maximum.
        TruePeak = "true_peak", section true_peak, by Loudness,
            headline |get: &Get| get("true_peak_dbtp")
                .map(|s| format!("true peak {:.1} dBTP", s.max));
        /// MPEG-TS inputs: ETSI TR 101 290 priority 2 errors (decodable, but something a
        /// receiver relies on is broken: TEI, CRC, PCR, PTS, CAT).
        TsPriority2 = "ts_priority2", section ts_health, by TsPriority1,
            headline |get: &Get| ts_indicators(get, 2);
        /// MPEG-TS inputs: no SCTE-35 cue (other than heartbeats) for
        /// `scte35_absent.min_duration`, when that alarm is enabled.
        Scte35Absent = "scte35_absent", section scte35_absent, by Scte35,
            headline |get: &Get| get("without_cue_s")
                .map(|s| format!("no cue for {:.0} s", s.max));
    }
    others {
        /// A live input stopped sending or could not be reached (`vqa monitor`).
        InputLoss = "input_loss", section input_loss,
            headline |get: &Get| get("reconnect_attempts")
                .map(|s| format!("{:.0} reconnection attempts", s.max));
    }
}

/// Which caption services a `captions` incident lost, from its evidence.
fn captions_lost(get: &Get) -> Option<String> {
    use crate::captions::{CEA608, CEA708};
    match (get(CEA608).is_some(), get(CEA708).is_some()) {
        (true, true) => Some("CEA-608 and CEA-708 captions lost".into()),
        (true, false) => Some("CEA-608 captions lost".into()),
        (false, true) => Some("CEA-708 captions lost".into()),
        (false, false) => get(crate::captions::REQUIRED).map(|_| "no captions (required)".into()),
    }
}

/// The TR 101 290 indicators of one priority in a TS health finding's evidence (each an
/// entry named like the indicator, one value per error: the PID), with their counts.
fn ts_indicators(get: &Get, priority: u8) -> Option<String> {
    let range = if priority == 1 { 0..6 } else { 6..12 };
    let found: Vec<String> = crate::model::TS_INDICATORS[range]
        .iter()
        .filter_map(|name| get(name).map(|s| format!("{name} ×{}", s.count)))
        .collect();
    (!found.is_empty()).then(|| found.join(", "))
}

/// A border change's sizes before and after, top/bottom/left/right in pixels.
fn border_change(get: &Get) -> Option<String> {
    let sizes = |prefix: &str| -> Option<String> {
        let edge = |e: &str| get(&format!("{prefix}{e}_px")).map(|s| s.mean.round());
        Some(format!(
            "{}/{}/{}/{}",
            edge("top")?,
            edge("bottom")?,
            edge("left")?,
            edge("right")?
        ))
    };
    Some(format!(
        "borders (top/bottom/left/right) {} → {} px",
        sizes("before_")?,
        sizes("")?
    ))
}

/// What the pictures' combing said against what the stream declared.
fn field_order(get: &Get) -> Option<String> {
    // One value per picture judged so (its combing ratio).
    let count = |name: &str| get(name).map_or(0, |s| s.count);
    let declared = get("declared").map(|s| match s.max.round() as i64 {
        0 => "progressive",
        1 => "tff",
        _ => "bff",
    })?;
    Some(format!(
        "declared {declared}, pictures tff ×{} bff ×{} progressive ×{}",
        count("tff"),
        count("bff"),
        count("progressive")
    ))
}

/// A cue's evidence in words: `splice_insert out, event 1207959695, pre-roll 4.0 s, break
/// 60.3 s`.
fn scte35_headline(get: &Get) -> Option<String> {
    let command = get("command")?.max;
    let mut words = vec![crate::model::SpliceCue::command_name(command as u8).to_string()];
    if get("cancel").is_some_and(|s| s.max > 0.0) {
        words[0] += " cancel";
    }
    match get("out_of_network").map(|s| s.max) {
        Some(v) if v > 0.0 => words[0] += " out",
        Some(_) => words[0] += " in",
        None => {}
    }
    if let Some(id) = get("event_id") {
        words.push(format!("event {:.0}", id.max));
    }
    if let Some(p) = get("pre_roll_s") {
        words.push(format!("pre-roll {:.1} s", p.max));
    }
    if let Some(d) = get("duration_s") {
        words.push(format!("duration {:.1} s", d.max));
    }
    Some(words.join(", "))
}

impl IncidentKind {
    /// Kinds that report events rather than defects: each is reported once, when it is
    /// known, with severity `info` (no `opened` before it).
    pub fn is_event(self) -> bool {
        matches!(self, IncidentKind::Scte35)
    }

    /// The kind named `name` (as in reports and configuration).
    pub fn from_name(name: &str) -> Option<IncidentKind> {
        IncidentKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DetectorName {
    /// Detectors that run when the configuration names none: all but `onnx`, which needs a
    /// model file, `audio_mono`, which only a deliverable spec requiring stereo asks for
    /// (programmes are legitimately near mono for long stretches), and `audio_clicks`, which
    /// finds the single bad samples many source recordings carry (docs/audio.md).
    pub fn defaults() -> Vec<DetectorName> {
        DetectorName::ALL
            .into_iter()
            .filter(|d| {
                !matches!(
                    d,
                    DetectorName::Onnx | DetectorName::AudioMono | DetectorName::AudioClicks
                )
            })
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }

    /// All names, comma-separated, for messages.
    pub fn list() -> String {
        DetectorName::ALL.map(|d| d.as_str()).join(", ")
    }
}

impl fmt::Display for DetectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DetectorName {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IncidentKind::from_name(s.trim())
            .and_then(IncidentKind::detector)
            .ok_or_else(|| ConfigError::UnknownDetector(s.trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for kind in IncidentKind::ALL {
            assert_eq!(IncidentKind::from_name(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
            if let Some(d) = kind.detector().filter(|d| d.as_str() == kind.as_str()) {
                assert_eq!(d.kind(), kind);
                assert_eq!(d.as_str().parse::<DetectorName>().unwrap(), d);
                assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{kind}\""));
            }
        }
        // input_loss has no detector; loudness_jump and true_peak are the loudness
        // detector's, ts_priority2 the TS health detector's, scte35_absent the scte35's.
        assert_eq!(DetectorName::ALL.len() + 5, IncidentKind::ALL.len());
        assert_eq!(
            IncidentKind::TruePeak.detector(),
            Some(DetectorName::Loudness)
        );
        assert_eq!(IncidentKind::InputLoss.detector(), None);
    }

    #[test]
    fn headlines_read_the_kinds_evidence() {
        let mut e = Evidence::new();
        e.insert("offset_ms".into(), Summary::of(-120.0));
        assert_eq!(
            IncidentKind::AvSync.headline(&e).as_deref(),
            Some("audio 120 ms early")
        );
        assert_eq!(IncidentKind::Freeze.headline(&e), None);
    }
}
