//! The pipeline configuration: one serialisable value that both topologies run from.
//!
//! Every field has a documented default, so an empty file is a valid configuration and a file
//! only names what it changes. Unknown fields are errors, so a misspelt threshold is not
//! silently ignored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::report::IncidentKind;
use crate::time::{self, Micros};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("line {line}: {message}")]
    Toml { line: usize, message: String },
    #[error("invalid JSON configuration: {0}")]
    Json(String),
    #[error("`{field}` = {value}: {expected}")]
    OutOfRange {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown detector `{0}` (known: freeze, black, silence)")]
    UnknownDetector(String),
}

/// A detector that can be switched on or off by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorName {
    Freeze,
    Black,
    Silence,
}

impl DetectorName {
    pub const ALL: [DetectorName; 3] = [
        DetectorName::Freeze,
        DetectorName::Black,
        DetectorName::Silence,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DetectorName::Freeze => "freeze",
            DetectorName::Black => "black",
            DetectorName::Silence => "silence",
        }
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
        DetectorName::ALL
            .into_iter()
            .find(|d| d.as_str() == s.trim())
            .ok_or_else(|| ConfigError::UnknownDetector(s.trim().to_string()))
    }
}

/// The whole pipeline's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Length of one segment in seconds (default 1.0). Every detector sees one segment at a time.
    pub segment_seconds: f64,
    /// Detectors to run (default: all of freeze, black, silence).
    pub detectors: Vec<DetectorName>,
    pub freeze: FreezeConfig,
    pub black: BlackConfig,
    pub silence: SilenceConfig,
    pub aggregator: AggregatorConfig,
    pub converter: ConverterConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            segment_seconds: 1.0,
            detectors: DetectorName::ALL.to_vec(),
            freeze: FreezeConfig::default(),
            black: BlackConfig::default(),
            silence: SilenceConfig::default(),
            aggregator: AggregatorConfig::default(),
            converter: ConverterConfig::default(),
        }
    }
}

/// `freeze`: consecutive frames whose mean absolute luma difference stays below `noise_db`.
/// Defaults follow FFmpeg's freezedetect (n = -60 dB), with a 1 s minimum duration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FreezeConfig {
    /// Largest mean absolute difference between consecutive frames, in dB of full scale, that
    /// still counts as "no change" (default -60 dB, i.e. 0.1% of full scale).
    pub noise_db: f64,
    /// Shortest freeze reported, in seconds (default 1.0).
    pub min_duration: f64,
    /// Freezes at least this long are critical (default 10.0 s).
    pub critical_after: f64,
    /// Largest difference, in dB of full scale, between a frame and the keyframe after it
    /// that still counts as no change (default -36 dB, about 4 code values): a keyframe
    /// re-encodes a still picture and differs from it by compression noise (1.6-1.8 code
    /// values measured with x264 at CRF 20), far less than any cut.
    pub keyframe_noise_db: f64,
    /// Also report an unchanging black picture as a freeze, as FFmpeg's freezedetect does
    /// (default false: it is reported as `black` only, by the black detector's criteria).
    pub include_black: bool,
}

impl Default for FreezeConfig {
    fn default() -> Self {
        FreezeConfig {
            noise_db: -60.0,
            min_duration: 1.0,
            critical_after: 10.0,
            keyframe_noise_db: -36.0,
            include_black: false,
        }
    }
}

/// `black`: frames where at least `picture_ratio` of pixels are darker than `pixel_threshold`.
/// Defaults follow FFmpeg's blackdetect (pix_th = 0.10, pic_th = 0.98), with a 0.5 s minimum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlackConfig {
    /// A pixel is black when its luma is at most this fraction of the way from black to white
    /// (default 0.10).
    pub pixel_threshold: f64,
    /// A frame is black when at least this fraction of its pixels are black (default 0.98).
    pub picture_ratio: f64,
    /// Shortest black run reported, in seconds (default 0.5).
    pub min_duration: f64,
    /// Black runs at least this long are critical (default 10.0 s).
    pub critical_after: f64,
}

impl Default for BlackConfig {
    fn default() -> Self {
        BlackConfig {
            pixel_threshold: 0.10,
            picture_ratio: 0.98,
            min_duration: 0.5,
            critical_after: 10.0,
        }
    }
}

/// `silence`: every channel below `noise_db` for at least `min_duration`; and, per channel,
/// one channel below it while others are not.
/// Defaults follow FFmpeg's silencedetect level (-60 dB), with a 1 s minimum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceConfig {
    /// Sample amplitude, in dB of full scale, below which audio counts as silent (default -60).
    pub noise_db: f64,
    /// Shortest silence reported, in seconds (default 1.0).
    pub min_duration: f64,
    /// Silences at least this long are critical (default 10.0 s).
    pub critical_after: f64,
    /// Also report one channel silent while others carry sound, e.g. a dead channel in 5.1
    /// (default true).
    pub per_channel: bool,
    /// Check the low-frequency effects channel on its own too (default false: programmes
    /// often leave it silent by design).
    pub include_lfe: bool,
}

impl Default for SilenceConfig {
    fn default() -> Self {
        SilenceConfig {
            noise_db: -60.0,
            min_duration: 1.0,
            critical_after: 10.0,
            per_channel: true,
            include_lfe: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Findings of one kind separated by at most this many seconds are one incident
    /// (default 0.01 s: only rounding; a single different frame ends a freeze).
    pub join_gap: f64,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig { join_gap: 0.01 }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConverterConfig {
    /// Video decoder threads; 0 lets FFmpeg choose from the number of cores (default 0).
    pub decoder_threads: usize,
}

/// When an incident of one kind is reported, and when it is critical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncidentRule {
    pub min_duration: Micros,
    pub critical_after: Micros,
}

impl PipelineConfig {
    /// Parses TOML, the format of configuration files.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: PipelineConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |span| span.start);
            let line = 1 + text.as_bytes()[..at.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            ConfigError::Toml {
                line,
                message: e.message().trim().to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses JSON, the form the configuration takes inside a Step Functions payload.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config: PipelineConfig =
            serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        // Invariant: every field is a plain number, string or list, all representable in TOML.
        toml::to_string_pretty(self).expect("PipelineConfig is representable in TOML")
    }

    pub fn segment_length(&self) -> Micros {
        time::from_secs(self.segment_seconds)
    }

    pub fn is_enabled(&self, detector: DetectorName) -> bool {
        self.detectors.contains(&detector)
    }

    pub fn rule(&self, kind: IncidentKind) -> IncidentRule {
        let (min, critical) = match kind {
            IncidentKind::Freeze => (self.freeze.min_duration, self.freeze.critical_after),
            IncidentKind::Black => (self.black.min_duration, self.black.critical_after),
            IncidentKind::Silence => (self.silence.min_duration, self.silence.critical_after),
        };
        IncidentRule {
            min_duration: time::from_secs(min),
            critical_after: time::from_secs(critical),
        }
    }

    /// Checks every value is in its meaningful range; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn check(
            field: &'static str,
            value: f64,
            ok: bool,
            expected: &'static str,
        ) -> Result<(), ConfigError> {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    field,
                    value: value.to_string(),
                    expected,
                })
            }
        }
        let s = self.segment_seconds;
        check(
            "segment_seconds",
            s,
            (0.1..=60.0).contains(&s),
            "expected seconds between 0.1 and 60",
        )?;
        let durations = [
            ("freeze.min_duration", self.freeze.min_duration),
            ("freeze.critical_after", self.freeze.critical_after),
            ("black.min_duration", self.black.min_duration),
            ("black.critical_after", self.black.critical_after),
            ("silence.min_duration", self.silence.min_duration),
            ("silence.critical_after", self.silence.critical_after),
        ];
        for (field, v) in durations {
            check(
                field,
                v,
                v > 0.0 && v <= 86_400.0,
                "expected a duration in seconds, > 0",
            )?;
        }
        for (field, v) in [
            ("freeze.noise_db", self.freeze.noise_db),
            ("freeze.keyframe_noise_db", self.freeze.keyframe_noise_db),
            ("silence.noise_db", self.silence.noise_db),
        ] {
            check(
                field,
                v,
                (-150.0..=0.0).contains(&v),
                "expected dB of full scale between -150 and 0",
            )?;
        }
        let b = &self.black;
        check(
            "black.pixel_threshold",
            b.pixel_threshold,
            (0.0..=1.0).contains(&b.pixel_threshold),
            "expected a fraction between 0 and 1",
        )?;
        check(
            "black.picture_ratio",
            b.picture_ratio,
            b.picture_ratio > 0.0 && b.picture_ratio <= 1.0,
            "expected a fraction in (0, 1]",
        )?;
        let g = self.aggregator.join_gap;
        check(
            "aggregator.join_gap",
            g,
            (0.0..=10.0).contains(&g),
            "expected seconds between 0 and 10",
        )?;
        if self.detectors.is_empty() {
            return Err(ConfigError::OutOfRange {
                field: "detectors",
                value: "[]".into(),
                expected: "expected at least one of freeze, black, silence",
            });
        }
        Ok(())
    }
}

/// dB of full scale to a linear amplitude ratio.
pub fn db_to_ratio(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults_and_defaults_round_trip() {
        let empty = PipelineConfig::from_toml("").unwrap();
        assert_eq!(empty, PipelineConfig::default());
        let again = PipelineConfig::from_toml(&empty.to_toml()).unwrap();
        assert_eq!(again, empty);
        let json = serde_json::to_string(&empty).unwrap();
        assert_eq!(PipelineConfig::from_json(&json).unwrap(), empty);
    }

    #[test]
    fn partial_file_changes_only_what_it_names() {
        let c =
            PipelineConfig::from_toml("detectors = [\"black\"]\n[freeze]\nmin_duration = 2.5\n")
                .unwrap();
        assert_eq!(c.detectors, vec![DetectorName::Black]);
        assert_eq!(c.freeze.min_duration, 2.5);
        assert_eq!(c.freeze.noise_db, -60.0);
        assert_eq!(c.rule(IncidentKind::Freeze).min_duration, 2_500_000);
    }

    #[test]
    fn misspelt_or_out_of_range_values_are_errors_naming_the_field() {
        let e = PipelineConfig::from_toml("[freeze]\nmin_duraton = 2\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 2: unknown field `min_duraton`"),
            "{e}"
        );
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
        let e = PipelineConfig::from_toml("segment_seconds = 0\n").unwrap_err();
        assert!(e.to_string().contains("segment_seconds"), "{e}");
        let e = PipelineConfig::from_toml("[black]\npicture_ratio = 1.5\n").unwrap_err();
        assert!(e.to_string().contains("black.picture_ratio"), "{e}");
        let e = PipelineConfig::from_toml("detectors = [\"blurr\"]\n").unwrap_err();
        assert!(e.to_string().contains("blurr"), "{e}");
    }

    #[test]
    fn detector_names_parse() {
        assert_eq!(
            "silence".parse::<DetectorName>().unwrap(),
            DetectorName::Silence
        );
        assert!(" nope".parse::<DetectorName>().is_err());
    }
}
