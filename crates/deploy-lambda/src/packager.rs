//! Streams that an existing packager writes into a bucket, analysed without vqa's reader:
//! each segment object the packager creates starts an execution (S3 "Object Created" →
//! EventBridge rule → StartExecution; `infra/packager-trigger.yaml`), whose first state
//! ([`crate::handlers::prepare`]) turns the object into one chunk of its stream.
//!
//! What this expects of the packager, as HLS packagers write MPEG-TS segments:
//! - a stream's segments in one folder under the rule's prefix, named with a sequence number
//!   as the last digits of the file name (`live/channel-1/seg_00042.ts`), one after the
//!   other, each starting with a keyframe, their timestamps continuing from one to the next;
//! - an object named `END` in the folder when the stream ends (the report is written then;
//!   a 24/7 channel never writes one and is followed through its notifications).
//!
//! A segment whose predecessor is not in the bucket starts a run of the stream: its start is
//! the run's 0, and the run is a stream of its own (`{folder}-{sequence}`), with its own
//! state and report. Segments rarely end on a window boundary, so a segment's chunk is the
//! windows that end within it: those after the windows its predecessor completed, up to the
//! last one its own media completes. Both ends are worked out from the objects' bytes alone
//! ([`vqa_converter::FfmpegConverter::span`]), so neighbouring executions agree on them
//! whichever runs first; the segments before it are read too, as far back as the lead-ins
//! need, so detectors see what one pass over the stream shows them.

use serde::{Deserialize, Serialize};
use vqa_core::time::Micros;
use vqa_core::PipelineConfig;

/// What the trigger's rule hands an execution: the object created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackagerObject {
    pub bucket: String,
    pub key: String,
    /// The rule's prefix: the stream's name is the object's folder below it.
    #[serde(default)]
    pub prefix: String,
    /// The configuration to analyse with (the deployment's detector groups must cover its
    /// detectors); the default one when absent.
    #[serde(default)]
    pub config: Option<PipelineConfig>,
}

/// The name of the object that ends a stream.
pub const END_MARKER: &str = "END";

/// A packager's object, by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackagerKey {
    /// A segment: its folder's key prefix, its sequence number, and how to name its
    /// siblings.
    Segment {
        folder: String,
        seq: u64,
        name: SegmentName,
    },
    /// The stream in `folder` has ended.
    End { folder: String },
}

/// A segment's file name around its sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentName {
    before: String,
    width: usize,
    after: String,
}

impl SegmentName {
    /// The key of the segment `seq` of the same stream (digits padded as this one's).
    pub fn key(&self, folder: &str, seq: u64) -> String {
        format!(
            "{folder}{}{seq:0width$}{}",
            self.before,
            self.after,
            width = self.width
        )
    }
}

impl PackagerKey {
    /// Reads `key` (under `prefix`): a segment numbered by the last digits of its file
    /// name, or the end marker; why not otherwise.
    pub fn parse(key: &str, prefix: &str) -> Result<Self, String> {
        if !key.starts_with(prefix) {
            return Err(format!(
                "{key} is not under the packager prefix {prefix:?}; the rule matches more than the packager's segments: narrow its pattern"
            ));
        }
        let (folder, file) = match key.rfind('/') {
            Some(i) => (&key[..=i], &key[i + 1..]),
            None => ("", key),
        };
        if file == END_MARKER {
            return Ok(PackagerKey::End {
                folder: folder.to_string(),
            });
        }
        let stem_end = file.rfind('.').unwrap_or(file.len());
        let stem = &file[..stem_end];
        let digits_start = stem
            .rfind(|c: char| !c.is_ascii_digit())
            .map_or(0, |i| i + 1);
        let digits = &stem[digits_start..];
        let seq = digits.parse::<u64>().map_err(|_| {
            format!("{key}: a packager's segment needs a sequence number as the last digits of its name (seg_00042.ts)")
        })?;
        Ok(PackagerKey::Segment {
            folder: folder.to_string(),
            seq,
            name: SegmentName {
                before: stem[..digits_start].to_string(),
                width: digits.len(),
                after: file[stem_end..].to_string(),
            },
        })
    }
}

/// The stream's name: its folder below the prefix, as a key-safe word.
pub fn stream_name(folder: &str, prefix: &str) -> String {
    let below = folder.strip_prefix(prefix).unwrap_or(folder);
    let name: String = below
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "stream".into()
    } else {
        name
    }
}

/// The current run of a packager's stream, kept in the state store under the stream's name:
/// where its timeline's 0 is on the source's clock, and its first segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagerRun {
    pub origin: Micros,
    pub first: u64,
}

impl PackagerRun {
    /// The run's stream id: the stream's name and its first segment.
    pub fn stream(&self, name: &str) -> String {
        format!("{name}-{}", self.first)
    }

    /// The windows of `length` complete once media reaches `end` (the source's clock).
    pub fn windows_until(&self, end: Micros, length: Micros) -> u64 {
        if length <= 0 {
            return 0;
        }
        // Saturating: `origin` comes from the state store, `end` from the media.
        (end.saturating_sub(self.origin).max(0) / length) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_keys_parse_and_name_their_siblings() {
        let key = "live/channel 1/seg_00042.ts";
        let PackagerKey::Segment { folder, seq, name } = PackagerKey::parse(key, "live/").unwrap()
        else {
            panic!("a segment")
        };
        assert_eq!((folder.as_str(), seq), ("live/channel 1/", 42));
        assert_eq!(name.key(&folder, 41), "live/channel 1/seg_00041.ts");
        assert_eq!(name.key(&folder, 100000), "live/channel 1/seg_100000.ts");
        assert_eq!(stream_name(&folder, "live/"), "channel-1");
        let PackagerKey::Segment { seq, name, .. } = PackagerKey::parse("a/b7.ts", "").unwrap()
        else {
            panic!("a segment")
        };
        assert_eq!((seq, name.key("a/", 6)), (7, "a/b6.ts".to_string()));
        assert_eq!(
            PackagerKey::parse("live/x/END", "live/"),
            Ok(PackagerKey::End {
                folder: "live/x/".into()
            })
        );
        assert!(PackagerKey::parse("live/x/index.ts", "live/")
            .unwrap_err()
            .contains("sequence number"));
        assert!(PackagerKey::parse("other/x/1.ts", "live/")
            .unwrap_err()
            .contains("not under"));
        assert_eq!(stream_name("live/", "live/"), "stream");
    }

    #[test]
    fn a_segment_owns_the_windows_that_end_within_it() {
        let run = PackagerRun {
            origin: 1_400_000,
            first: 5,
        };
        let s = 1_000_000;
        // A segment ending 2.08 s after the origin completes 2 windows; the next, ending at
        // 4.16 s, completes windows 2 and 3.
        assert_eq!(run.windows_until(1_400_000 + 2_080_000, s), 2);
        assert_eq!(run.windows_until(1_400_000 + 4_160_000, s), 4);
        assert_eq!(run.windows_until(0, s), 0, "before the origin: none");
        assert_eq!(run.stream("ch"), "ch-5");
        // A run's origin read back from the state store may be anything (fuzzing found the
        // subtraction overflowing).
        let far = PackagerRun {
            origin: i64::MIN,
            first: 0,
        };
        assert_eq!(far.windows_until(i64::MAX, s), (i64::MAX / s) as u64);
        let late = PackagerRun {
            origin: i64::MAX,
            first: 0,
        };
        assert_eq!(late.windows_until(i64::MIN, s), 0);
    }
}
