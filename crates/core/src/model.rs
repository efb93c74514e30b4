//! What flows from the converter to the detectors: segments of decoded frames and samples.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::time::Micros;

/// Names one monitored stream; part of every artifact key and of the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(pub String);

impl StreamId {
    pub fn new(id: impl Into<String>) -> Self {
        StreamId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How luma code values map to black and white.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LumaRange {
    /// "TV" range: black at 16, white at 235 (8-bit).
    #[default]
    Limited,
    /// "PC"/JPEG range: black at 0, white at 255.
    Full,
}

impl LumaRange {
    /// The 8-bit code values of black and of white.
    pub fn black_white(self) -> (u8, u8) {
        match self {
            LumaRange::Limited => (16, 235),
            LumaRange::Full => (0, 255),
        }
    }
}

/// One decoded picture's luma plane (8 bits per sample).
///
/// `luma` is shared, not owned: cloning a frame or handing it to another stage in the same
/// process copies no pixel data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoFrame {
    pub pts: Micros,
    /// Display duration; the frame covers `[pts, pts + duration)`.
    pub duration: Micros,
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next; `>= width`.
    pub stride: u32,
    pub range: LumaRange,
    /// Decoded from a keyframe (an intra-coded picture). An encoder re-encoding a still
    /// picture as a keyframe changes it slightly; the freeze detector allows for that.
    pub keyframe: bool,
    /// The decoder flagged the picture as damaged (missing references, a corrupt bitstream,
    /// error concealment in use), or it was decoded after such a picture and before the next
    /// random access point that decoded clean: it predicts from the damage.
    pub corrupt: bool,
    /// What the stream declares about the picture's shape and scan (sample aspect ratio,
    /// field order), as the decoder hands it on.
    #[serde(default)]
    pub format: PictureFormat,
    /// The closed-caption services the picture carried (ATSC A/53 `cc_data`, padding not
    /// counted): what the `captions` detector looks for.
    #[serde(default)]
    pub captions: crate::captions::Captions,
    /// `stride * height` bytes (the last row may be only `width` long).
    pub luma: Bytes,
}

/// What a stream declares about one picture's shape and scan: the `aspect_ratio` and
/// `field_order` detectors compare it between pictures and with the content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PictureFormat {
    /// Sample (pixel) aspect ratio, numerator and denominator; a zero in either: not
    /// declared (FFmpeg's 0/1), which displays as square pixels.
    pub sar: (u32, u32),
    /// How the picture is scanned, as declared.
    pub scan: Scan,
}

impl PictureFormat {
    /// The sample aspect ratio as a number: 1 when not declared.
    pub fn sar_value(&self) -> f64 {
        match self.sar {
            (n, d) if n > 0 && d > 0 => f64::from(n) / f64::from(d),
            _ => 1.0,
        }
    }
}

/// A picture's declared scan: progressive, or interlaced with one field first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scan {
    /// The stream says nothing (synthetic frames, formats without the flag).
    #[default]
    Unknown,
    Progressive,
    /// Interlaced, top field first.
    TopFieldFirst,
    /// Interlaced, bottom field first.
    BottomFieldFirst,
}

impl Scan {
    /// The name in evidence and docs: `progressive`, `tff`, `bff`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scan::Unknown => "unknown",
            Scan::Progressive => "progressive",
            Scan::TopFieldFirst => "tff",
            Scan::BottomFieldFirst => "bff",
        }
    }
}

impl VideoFrame {
    pub fn end(&self) -> Micros {
        self.pts + self.duration
    }

    /// The visible pixels of each row, without stride padding.
    pub fn rows(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let (w, s) = (self.width as usize, self.stride as usize);
        (0..self.height as usize).map(move |y| &self.luma[y * s..y * s + w])
    }

    /// Checks the invariants a frame from the wire must hold before detectors index into it.
    pub fn is_well_formed(&self) -> bool {
        let (w, h, s) = (
            self.width as usize,
            self.height as usize,
            self.stride as usize,
        );
        w > 0 && h > 0 && s >= w && self.luma.len() >= s * (h - 1) + w && self.duration >= 0
    }
}

/// Decoded audio: interleaved f32 samples in [-1, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioBlock {
    /// Time of the first sample of the decoded block this one comes from.
    pub pts: Micros,
    /// Samples of that decoded block before this one's first: non-zero when a segment edge
    /// split it. Times are computed from `pts` and the sample's index in the decoded block,
    /// so splitting never shifts a sample's time, however the stream is segmented.
    pub skipped: u32,
    pub rate: u32,
    pub channels: u16,
    /// Which channel is the low-frequency effects channel, if any (often silent by design).
    pub lfe: Option<u16>,
    /// `frames * channels` samples, channel-interleaved.
    pub samples: Arc<[f32]>,
}

impl AudioBlock {
    /// Number of sample instants (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1) as usize
    }

    /// Time of sample instant `i`.
    pub fn time_of(&self, i: usize) -> Micros {
        let n = self.skipped as i64 + i as i64;
        self.pts + (n * 1_000_000 + self.rate as i64 / 2) / self.rate.max(1) as i64
    }

    pub fn end(&self) -> Micros {
        self.time_of(self.frames())
    }
}

/// A track of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    Video,
    Audio,
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Track::Video => "video",
            Track::Audio => "audio",
        })
    }
}

/// What the converter found in the input, before decoding it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The container format, as FFmpeg names it.
    pub format: String,
    /// Declared duration in seconds, when the container says.
    pub duration: Option<f64>,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
}

impl MediaInfo {
    /// Tracks the input lacks; those detectors have nothing to look at.
    pub fn missing_tracks(&self) -> Vec<Track> {
        let mut missing = Vec::new();
        if self.video.is_none() {
            missing.push(Track::Video);
        }
        if self.audio.is_none() {
            missing.push(Track::Audio);
        }
        missing
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Average frame rate, when known.
    pub frame_rate: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// FFmpeg's name of the channel layout ("stereo", "5.1", ...).
    pub layout: String,
}

/// A fixed window `[start, end)` of one stream with the frames and samples that fall in it.
///
/// Detectors see one segment at a time. `lead_in` is the last frame of the previous segment
/// (shared, not copied) so a detector comparing consecutive frames sees the boundary pair too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub stream: StreamId,
    pub index: u64,
    pub start: Micros,
    pub end: Micros,
    pub has_video: bool,
    pub has_audio: bool,
    pub lead_in: Option<VideoFrame>,
    pub video: Vec<VideoFrame>,
    pub audio: Vec<AudioBlock>,
    /// Audio just before `start` (as long as the configuration's detectors need: see
    /// `PipelineConfig::audio_lead_in`), for windows that reach back over the segment edge.
    pub audio_lead_in: Vec<AudioBlock>,
    /// Packets or frames the decoder rejected while producing this segment.
    pub decode_errors: u32,
    /// The transport stream's health (ETSI TR 101 290) over the segment's span, when the
    /// input is an MPEG-TS: what the converter's analyser of the input's bytes found.
    pub ts_events: Vec<TsEvent>,
    /// The SCTE-35 splice cues that arrived in the segment's span (MPEG-TS inputs), decoded.
    #[serde(default)]
    pub splice_cues: Vec<SpliceCue>,
}

/// An SCTE-35 `splice_info_section` (ANSI/SCTE 35 2022, §9) that arrived on a PID its
/// programme's PMT declares as SCTE-35 (stream_type 0x86), decoded: the cue an ad inserter or
/// a downstream splicer acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpliceCue {
    /// When the section arrived, on the stream's timeline.
    pub at: Micros,
    pub pid: u16,
    /// `splice_command_type`: 0x00 splice_null, 0x04 splice_schedule, 0x05 splice_insert,
    /// 0x06 time_signal, 0x07 bandwidth_reservation, 0xFF private_command.
    pub command: u8,
    /// splice_insert's `splice_event_id`, else the first segmentation descriptor's
    /// `segmentation_event_id`.
    pub event_id: Option<u32>,
    /// The event is cancelled (`splice_event_cancel_indicator` or
    /// `segmentation_event_cancel_indicator`).
    pub cancel: bool,
    /// Out of the network (a break starts) or back in (it ends): splice_insert's
    /// `out_of_network_indicator`, or what a segmentation descriptor's type says (the
    /// starts and ends of breaks and placement opportunities); `None` when neither says.
    pub out_of_network: Option<bool>,
    /// The splice time (`splice_time` + `pts_adjustment`, mod 2^33), 90 kHz, as in the
    /// stream; `None` when the splice is immediate or no time is given.
    pub splice_pts: Option<u64>,
    /// The splice point relative to the arrival, on the stream's timeline: the pre-roll.
    /// `None` when `splice_pts` is.
    pub pre_roll: Option<Micros>,
    /// `splice_immediate_flag`.
    pub immediate: bool,
    /// The break's `break_duration`, else the first segmentation descriptor's
    /// `segmentation_duration`.
    pub duration: Option<Micros>,
    /// `auto_return` of the break duration.
    pub auto_return: bool,
    /// The `segmentation_type_id` of each segmentation descriptor, in order.
    pub segmentation_types: Vec<u8>,
    /// `encrypted_packet`: everything from the command on is encrypted, so only `at` and
    /// `pid` are known (`command` reads 0xFF).
    pub encrypted: bool,
}

impl SpliceCue {
    pub const SPLICE_NULL: u8 = 0x00;
    pub const SPLICE_SCHEDULE: u8 = 0x04;
    pub const SPLICE_INSERT: u8 = 0x05;
    pub const TIME_SIGNAL: u8 = 0x06;
    pub const BANDWIDTH_RESERVATION: u8 = 0x07;
    pub const PRIVATE_COMMAND: u8 = 0xFF;

    /// The command's name as SCTE 35 spells it.
    pub fn command_name(command: u8) -> &'static str {
        match command {
            Self::SPLICE_NULL => "splice_null",
            Self::SPLICE_SCHEDULE => "splice_schedule",
            Self::SPLICE_INSERT => "splice_insert",
            Self::TIME_SIGNAL => "time_signal",
            Self::BANDWIDTH_RESERVATION => "bandwidth_reservation",
            Self::PRIVATE_COMMAND => "private_command",
            _ => "reserved",
        }
    }

    /// A cue that signals something: not a `splice_null` or `bandwidth_reservation` (the
    /// heartbeats and filler an encoder sends between events).
    pub fn signals(&self) -> bool {
        !matches!(
            self.command,
            Self::SPLICE_NULL | Self::BANDWIDTH_RESERVATION
        )
    }
}

/// The TR 101 290 indicators vqa's TS analyser (`vqa-ts-health`) reports, as the standard
/// names them: priority 1 first, then priority 2 (a converter test checks the analyser
/// names them alike).
pub const TS_INDICATORS: [&str; 12] = [
    "TS_sync_loss",
    "Sync_byte_error",
    "PAT_error",
    "Continuity_count_error",
    "PMT_error",
    "PID_error",
    "Transport_error",
    "CRC_error",
    "PCR_repetition_error",
    "PCR_discontinuity_indicator_error",
    "PTS_error",
    "CAT_error",
];

/// How many of [`TS_INDICATORS`] are priority 1: they come first.
pub const TS_PRIORITY1_INDICATORS: usize = 6;

/// One TR 101 290 error within a segment's span: a point (`start == end`) for an error
/// found in one packet, or the part of a condition (sync lost; a table, PID, PCR or PTS
/// absent) that lies in the segment: from the error, or the segment's start when it began
/// earlier, to the moment it cleared, or the segment's end (`ongoing`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsEvent {
    /// The indicator's name as TR 101 290 spells it (one of [`TS_INDICATORS`]).
    pub indicator: String,
    /// TR 101 290's priority: 1 (the stream cannot be decoded) or 2.
    pub priority: u8,
    /// The PID concerned; none for sync errors.
    pub pid: Option<u16>,
    pub start: Micros,
    pub end: Micros,
    /// The condition still held at the segment's end.
    pub ongoing: bool,
    /// What was wrong, with the values involved (empty for a condition carried over).
    pub detail: String,
}

impl TsEvent {
    /// Whether the error was found in this segment: a condition carried over from an
    /// earlier one (which has no detail) was counted there, so counters and evidence that
    /// add the segments up take only these.
    pub fn found_here(&self) -> bool {
        !self.detail.is_empty()
    }
}

impl Segment {
    /// Bytes of frame, sample and TS-event data the segment carries (lead-ins included): the
    /// same figure whichever transport hands it over.
    pub fn payload_bytes(&self) -> u64 {
        let frames: usize = self
            .lead_in
            .iter()
            .chain(&self.video)
            .map(|f| f.luma.len())
            .sum();
        let audio: usize = self
            .audio_lead_in
            .iter()
            .chain(&self.audio)
            .map(|a| a.samples.len() * 4)
            .sum();
        // A TS event's fixed fields and its words, as the wire form carries them.
        let ts: usize = self
            .ts_events
            .iter()
            .map(|e| 24 + e.indicator.len() + e.detail.len())
            .sum();
        (frames + audio + ts) as u64
    }

    pub fn audio_frames(&self) -> u64 {
        self.audio.iter().map(|a| a.frames() as u64).sum()
    }
}
