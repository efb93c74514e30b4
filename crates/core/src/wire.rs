//! The wire form of artifacts and state: what crosses a process boundary (S3 objects, files).
//!
//! A one-byte format version, a one-byte artifact tag, then the postcard encoding of the value.
//! Postcard is compact and exact (integers and raw float bits), so a report computed from a
//! decoded artifact is identical to one computed in memory. It is not self-describing: wire
//! types must not skip fields when serialising (`skip_serializing_if`), or decoding fails.

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::Segment;
use crate::report::SegmentReport;
use crate::transport::{Artifact, ArtifactName, TransportError};
use std::sync::Arc;

/// 4: the kinds `loudness_jump` and `true_peak` (postcard numbers enum variants, so
/// `input_loss` moved) and the aggregator's programme loudness window. 5: segments carry
/// their TS health events (`Segment::ts_events`), kinds `ts_priority1`/`ts_priority2`.
/// 6: `Finding::starts_anew`, and the aggregator's freeze drift. 7: segments carry SCTE-35
/// cues (`Segment::splice_cues`), captions and each picture's declared format; the kinds
/// `scte35`, `scte35_absent`, captions' and the picture format's, `Severity::Info`.
/// 8: the kind `audio_clicks` (after `audio_dropout`: the kinds after it moved).
pub const WIRE_VERSION: u8 = 8;

const TAG_SEGMENT: u8 = 1;
const TAG_FINDINGS: u8 = 2;
const TAG_STATE: u8 = 3;
const TAG_MANIFEST: u8 = 4;

fn encode_tagged<T: Serialize>(tag: u8, value: &T, size_hint: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(size_hint + 16).writer();
    out.get_mut().put_u8(WIRE_VERSION);
    out.get_mut().put_u8(tag);
    // Invariant: our types serialise infallibly (no maps with non-string keys, no unsized data
    // that postcard rejects); writing to memory cannot fail.
    postcard::to_io(value, &mut out).expect("vqa wire types always serialise");
    out.into_inner().freeze()
}

fn decode_tagged<T: DeserializeOwned>(
    key: &str,
    tag: u8,
    bytes: &[u8],
) -> Result<T, TransportError> {
    let fail = |reason: String| TransportError::Decode {
        key: key.to_string(),
        reason,
    };
    match bytes {
        [WIRE_VERSION, t, body @ ..] if *t == tag => {
            postcard::from_bytes(body).map_err(|e| fail(e.to_string()))
        }
        [WIRE_VERSION, t, ..] => Err(fail(format!("artifact tag {t}, expected {tag}"))),
        [v, ..] => Err(fail(format!(
            "wire version {v}, this build reads {WIRE_VERSION}"
        ))),
        [] => Err(fail("empty object".into())),
    }
}

/// Encodes an artifact for a transport that stores bytes.
pub fn encode_artifact(artifact: &Artifact) -> Bytes {
    match artifact {
        Artifact::Segment(s) => encode_tagged(TAG_SEGMENT, s.as_ref(), s.payload_bytes() as usize),
        Artifact::Findings(r) => encode_tagged(TAG_FINDINGS, r.as_ref(), 256),
    }
}

/// Decodes what [`encode_artifact`] wrote; `key` names the object in errors.
pub fn decode_artifact(
    key: &str,
    expected: ArtifactName,
    bytes: &[u8],
) -> Result<Artifact, TransportError> {
    Ok(match expected {
        ArtifactName::Segment => {
            let s: Segment = decode_tagged(key, TAG_SEGMENT, bytes)?;
            let well_formed = s.lead_in.iter().chain(&s.video).all(|f| f.is_well_formed());
            if !well_formed {
                return Err(TransportError::Decode {
                    key: key.into(),
                    reason: "malformed frame".into(),
                });
            }
            Artifact::Segment(Arc::new(s))
        }
        ArtifactName::Findings | ArtifactName::FindingsPart(_) => Artifact::Findings(Arc::new(
            decode_tagged::<SegmentReport>(key, TAG_FINDINGS, bytes)?,
        )),
    })
}

/// Splits a segment for per-frame handoff (one object per picture, as the original
/// distributed design uploaded frames): the segment without its pixels (the manifest), and
/// each picture's luma plane, the lead-in frame first when there is one.
pub fn split_segment(segment: &Segment) -> (Bytes, Vec<Bytes>) {
    let strip = |f: &crate::model::VideoFrame| crate::model::VideoFrame {
        luma: Bytes::new(),
        ..f.clone()
    };
    let planes = segment
        .lead_in
        .iter()
        .chain(&segment.video)
        .map(|f| f.luma.clone())
        .collect();
    let manifest = Segment {
        lead_in: segment.lead_in.as_ref().map(strip),
        video: segment.video.iter().map(strip).collect(),
        ..segment.clone()
    };
    (encode_tagged(TAG_MANIFEST, &manifest, 4096), planes)
}

/// Whether `bytes` hold a manifest written by [`split_segment`] rather than a whole artifact.
pub fn is_manifest(bytes: &[u8]) -> bool {
    matches!(bytes, [WIRE_VERSION, TAG_MANIFEST, ..])
}

/// How many planes a manifest written by [`split_segment`] needs.
pub fn manifest_planes(key: &str, manifest: &[u8]) -> Result<(Segment, usize), TransportError> {
    let segment: Segment = decode_tagged(key, TAG_MANIFEST, manifest)?;
    let n = segment.lead_in.iter().count() + segment.video.len();
    Ok((segment, n))
}

/// Puts the planes back into a manifest's frames (in [`split_segment`]'s order).
pub fn join_segment(
    key: &str,
    mut segment: Segment,
    planes: Vec<Bytes>,
) -> Result<Segment, TransportError> {
    let frames = segment.lead_in.iter_mut().chain(segment.video.iter_mut());
    let mut planes = planes.into_iter();
    for frame in frames {
        frame.luma = planes.next().unwrap_or_default();
        if !frame.is_well_formed() {
            return Err(TransportError::Decode {
                key: key.into(),
                reason: format!("frame at {} us: missing or short picture", frame.pts),
            });
        }
    }
    Ok(segment)
}

/// Encodes a stage's state for the state store.
pub fn encode_state<T: Serialize>(state: &T) -> Bytes {
    encode_tagged(TAG_STATE, state, 1024)
}

pub fn decode_state<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, TransportError> {
    decode_tagged(key, TAG_STATE, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AudioBlock, LumaRange, StreamId, VideoFrame};

    fn segment() -> Segment {
        let frame = |pts| VideoFrame {
            pts,
            duration: 40_000,
            width: 4,
            height: 2,
            stride: 8,
            range: LumaRange::Limited,
            keyframe: false,
            corrupt: pts == 3_040_000,
            format: Default::default(),
            captions: Default::default(),
            luma: Bytes::from((0..16u8).collect::<Vec<_>>()),
        };
        Segment {
            stream: StreamId::new("s"),
            index: 3,
            start: 3_000_000,
            end: 4_000_000,
            has_video: true,
            has_audio: true,
            lead_in: Some(frame(2_960_000)),
            video: vec![frame(3_000_000), frame(3_040_000)],
            audio: vec![AudioBlock {
                pts: 3_000_000,
                skipped: 0,
                rate: 48_000,
                channels: 2,
                lfe: None,
                samples: vec![0.5, -0.25, 1e-9, 0.0].into(),
            }],
            audio_lead_in: vec![AudioBlock {
                pts: 2_999_000,
                skipped: 2,
                rate: 48_000,
                channels: 2,
                lfe: Some(1),
                samples: vec![0.125; 4].into(),
            }],
            decode_errors: 1,
            ts_events: vec![crate::model::TsEvent {
                indicator: "PAT_error".into(),
                priority: 1,
                pid: Some(0),
                start: 3_200_000,
                end: 4_000_000,
                ongoing: true,
                detail: "no PAT for more than 500 ms (last at 2.700 s)".into(),
            }],
            splice_cues: vec![crate::model::SpliceCue {
                at: 3_500_000,
                pid: 500,
                command: crate::model::SpliceCue::SPLICE_INSERT,
                event_id: Some(0x4800_008F),
                out_of_network: Some(true),
                pre_roll: Some(4_000_000),
                duration: Some(60_293_567),
                auto_return: true,
                segmentation_types: vec![0x34],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn segments_round_trip_exactly() {
        let s = Arc::new(segment());
        let bytes = encode_artifact(&Artifact::Segment(s.clone()));
        match decode_artifact("k", ArtifactName::Segment, &bytes).unwrap() {
            Artifact::Segment(back) => assert_eq!(*back, *s),
            other => panic!("decoded {:?}", other.kind()),
        }
    }

    #[test]
    fn findings_round_trip_with_and_without_a_channel() {
        use crate::report::{Finding, IncidentKind, Level, Summary};
        let finding = |channel| Finding {
            kind: IncidentKind::Silence,
            channel,
            start: 10,
            end: 20,
            reaches_end: true,
            starts_anew: false,
            level: Level::Raise,
            evidence: [("peak_dbfs".to_string(), Summary::of(-120.0))].into(),
        };
        let report = Arc::new(SegmentReport {
            stream: StreamId::new("s"),
            index: 0,
            start: 0,
            end: 1_000_000,
            video_frames: 0,
            audio_frames: 48_000,
            decode_errors: 0,
            findings: vec![finding(None), finding(Some(4))],
            measurements: {
                let mut m = crate::report::Measurements::default();
                m.add("av_sync.offset_ms", 12.5);
                m.add_to_histogram("loudness.momentary_lufs", -23.04);
                m
            },
        });
        let bytes = encode_artifact(&Artifact::Findings(report.clone()));
        match decode_artifact("k", ArtifactName::Findings, &bytes).unwrap() {
            Artifact::Findings(back) => assert_eq!(*back, *report),
            other => panic!("decoded {:?}", other.kind()),
        }
    }

    #[test]
    fn wrong_tag_version_or_garbage_is_an_error_not_a_panic() {
        let bytes = encode_artifact(&Artifact::Segment(Arc::new(segment())));
        assert!(decode_artifact("k", ArtifactName::Findings, &bytes).is_err());
        let mut v = bytes.to_vec();
        v[0] = 99;
        assert!(decode_artifact("k", ArtifactName::Segment, &v)
            .unwrap_err()
            .to_string()
            .contains("version 99"));
        assert!(decode_artifact("k", ArtifactName::Segment, &[]).is_err());
        let truncated = &bytes[..bytes.len() / 2];
        assert!(decode_artifact("k", ArtifactName::Segment, truncated).is_err());
    }

    #[test]
    fn frames_whose_size_contradicts_their_plane_are_rejected() {
        let mut s = segment();
        s.video[0].height = 100;
        let bytes = encode_artifact(&Artifact::Segment(Arc::new(s)));
        assert!(decode_artifact("k", ArtifactName::Segment, &bytes).is_err());
    }
}
