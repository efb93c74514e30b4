//! What the analyser reports: TR 101 290 errors as events on the stream's timeline,
//! counters per kind, the programmes and PIDs it found; and its configuration.

use serde::{Deserialize, Serialize};
use vqa_core::model::SpliceCue;
use vqa_core::time::{self, Micros};

/// The TR 101 290 (V1.4.1, §5.2.1–5.2.2) indicators this crate checks. PCR_accuracy_error
/// (2.4) is not among them: see the crate documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 1.1: two consecutive packets with a corrupted sync byte; cleared when 5 in a row
    /// are found again.
    TsSyncLoss,
    /// 1.2: a packet's sync byte is not 0x47 (framing held: the next one's is).
    SyncByte,
    /// 1.3: no PAT section for more than the section interval, a section that is not a PAT
    /// on PID 0, or a scrambled packet on PID 0.
    Pat,
    /// 1.4: a packet lost, out of order, or sent more than twice.
    ContinuityCount,
    /// 1.5: a programme's PMT missing for more than the section interval, a section on its
    /// PID that is neither a PMT nor a private section, or a scrambled PMT packet.
    Pmt,
    /// 1.6: a PID a PMT refers to absent for more than the PID absence limit.
    Pid,
    /// 2.1: transport_error_indicator set.
    Transport,
    /// 2.2: a section (PAT, CAT, PMT, NIT, SDT, EIT, TOT, SCTE-35, private) fails its CRC_32.
    Crc,
    /// 2.3a: no PCR on a programme's PCR PID for more than 40 ms.
    PcrRepetition,
    /// 2.3b: consecutive PCRs more than 100 ms apart (or going backwards) without the
    /// discontinuity_indicator.
    PcrDiscontinuityIndicator,
    /// 2.5: no PTS on a PID that carries them for more than 700 ms.
    Pts,
    /// 2.6: scrambled packets with no CAT seen, or a section that is not a CAT on PID 1.
    Cat,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::TsSyncLoss,
        ErrorKind::SyncByte,
        ErrorKind::Pat,
        ErrorKind::ContinuityCount,
        ErrorKind::Pmt,
        ErrorKind::Pid,
        ErrorKind::Transport,
        ErrorKind::Crc,
        ErrorKind::PcrRepetition,
        ErrorKind::PcrDiscontinuityIndicator,
        ErrorKind::Pts,
        ErrorKind::Cat,
    ];

    pub fn priority(self) -> Priority {
        match self {
            ErrorKind::TsSyncLoss
            | ErrorKind::SyncByte
            | ErrorKind::Pat
            | ErrorKind::ContinuityCount
            | ErrorKind::Pmt
            | ErrorKind::Pid => Priority::First,
            ErrorKind::Transport
            | ErrorKind::Crc
            | ErrorKind::PcrRepetition
            | ErrorKind::PcrDiscontinuityIndicator
            | ErrorKind::Pts
            | ErrorKind::Cat => Priority::Second,
        }
    }

    /// The indicator's name as TR 101 290 spells it, which is what broadcast engineers
    /// search for.
    pub fn indicator(self) -> &'static str {
        match self {
            ErrorKind::TsSyncLoss => "TS_sync_loss",
            ErrorKind::SyncByte => "Sync_byte_error",
            ErrorKind::Pat => "PAT_error",
            ErrorKind::ContinuityCount => "Continuity_count_error",
            ErrorKind::Pmt => "PMT_error",
            ErrorKind::Pid => "PID_error",
            ErrorKind::Transport => "Transport_error",
            ErrorKind::Crc => "CRC_error",
            ErrorKind::PcrRepetition => "PCR_repetition_error",
            ErrorKind::PcrDiscontinuityIndicator => "PCR_discontinuity_indicator_error",
            ErrorKind::Pts => "PTS_error",
            ErrorKind::Cat => "CAT_error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// TR 101 290's priorities: 1 — the stream cannot be decoded; 2 — it can, but something
/// a receiver relies on is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    First,
    Second,
}

impl Priority {
    pub fn number(self) -> u8 {
        match self {
            Priority::First => 1,
            Priority::Second => 2,
        }
    }
}

/// One TR 101 290 error, at its time on the stream's timeline (see the crate
/// documentation for where that time comes from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tr101290Error {
    pub kind: ErrorKind,
    pub priority: Priority,
    /// The PID it concerns; `None` for sync errors, which belong to no PID.
    pub pid: Option<u16>,
    /// For an absence (PAT, PMT, PID, PCR, PTS), when the limit was passed: the last
    /// occurrence plus the limit. For everything else, the packet's time.
    #[serde(with = "time::as_secs")]
    pub at: Micros,
    /// What was wrong, in words, with the values involved.
    pub detail: String,
}

/// A condition that an earlier error started has ended: sync regained, or the absent
/// table, PID, PCR or PTS is back. Lets a consumer turn errors into incidents with an end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleared {
    pub kind: ErrorKind,
    pub pid: Option<u16>,
    #[serde(with = "time::as_secs")]
    pub at: Micros,
}

/// What the analyser reports, in stream order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Error(Tr101290Error),
    Cleared(Cleared),
    /// An SCTE-35 splice_info_section arrived (on a PID a PMT declares as SCTE-35, its CRC
    /// intact), decoded.
    Splice(SpliceCue),
}

impl Event {
    pub fn at(&self) -> Micros {
        match self {
            Event::Error(error) => error.at,
            Event::Cleared(cleared) => cleared.at,
            Event::Splice(cue) => cue.at,
        }
    }
}

/// Counts since the start of the input, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Errors per kind, in [`ErrorKind::ALL`] order.
    errors: [u64; ErrorKind::ALL.len()],
    /// Packets analysed (null packets included).
    pub packets: u64,
    /// Bytes pushed.
    pub bytes: u64,
    /// Bytes skipped while out of sync.
    pub skipped_bytes: u64,
    /// SCTE-35 splice_info_sections decoded.
    pub splice_cues: u64,
}

impl Counters {
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }

    pub(crate) fn count(&mut self, kind: ErrorKind) {
        self.errors[kind.index()] += 1;
    }
}

/// An elementary stream as its programme's PMT lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementaryStream {
    pub pid: u16,
    pub stream_type: u8,
}

impl ElementaryStream {
    /// stream_type 0x86: SCTE-35 splice information (ANSI/SCTE 35 §8.1), for the SCTE-35
    /// decoder to come.
    pub fn is_scte35(&self) -> bool {
        self.stream_type == SCTE35_STREAM_TYPE
    }
}

pub const SCTE35_STREAM_TYPE: u8 = 0x86;

/// A programme as the PAT and its PMT describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Programme {
    pub number: u16,
    pub pmt_pid: u16,
    /// `None` before its PMT arrives, or when the PMT says it has no PCR (0x1FFF).
    pub pcr_pid: Option<u16>,
    /// Empty before its PMT arrives.
    pub streams: Vec<ElementaryStream>,
}

/// Where the stream's timeline was anchored to the PCR: the first PCR of the reference PID
/// that a second one confirmed, and its time. The converter can align this timeline with
/// the demuxer's (whose timestamps are PTS, on the same 90 kHz clock as PCR / 300).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcrAnchor {
    pub pid: u16,
    /// The PCR in 27 MHz ticks.
    pub pcr: u64,
    #[serde(with = "time::as_secs")]
    pub at: Micros,
}

/// Everything known at the end of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The events not yet taken with [`crate::Analyser::take_events`].
    pub events: Vec<Event>,
    pub counters: Counters,
    pub programmes: Vec<Programme>,
    /// Every PID seen, with its packet count.
    pub pids: Vec<(u16, u64)>,
    /// PIDs whose stream_type is 0x86 (SCTE-35).
    pub scte35_pids: Vec<u16>,
    pub pcr_anchor: Option<PcrAnchor>,
    /// Bytes at the end that did not make a whole packet.
    pub trailing_bytes: usize,
}

/// The limits, TR 101 290's unless said otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// PAT and each PMT must recur within this (1.3, 1.5: 0.5 s).
    pub section_interval: Micros,
    /// A PID a PMT refers to must occur within this (1.6: "user specified"; 5 s, as
    /// tsduck's and most analysers' default).
    pub pid_absence: Micros,
    /// PCRs on a PCR PID must recur within this (2.3a: 40 ms).
    pub pcr_repetition: Micros,
    /// Consecutive PCRs may differ by at most this without the discontinuity_indicator
    /// (2.3b: 100 ms).
    pub pcr_discontinuity: Micros,
    /// PTSs on a PID must recur within this (2.5: 700 ms).
    pub pts_repetition: Micros,
    /// Bytes kept waiting for the next PCR before their times are extrapolated from the
    /// last PCR interval's rate instead of interpolated (bounds memory on a stream whose
    /// PCR stopped). Only there do the times depend on where the input's pieces end.
    pub max_buffered_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            section_interval: 500_000,
            pid_absence: 5_000_000,
            pcr_repetition: 40_000,
            pcr_discontinuity: 100_000,
            pts_repetition: 700_000,
            max_buffered_bytes: 4 << 20,
        }
    }
}

/// A configuration the analyser cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("ts_health.{field} must be more than 0 (got {value} µs); TR 101 290's value is {default} µs")]
    NotPositive {
        field: &'static str,
        value: Micros,
        default: Micros,
    },
    #[error("ts_health.max_buffered_bytes must be at least {min} (two packets); got {value}")]
    BufferTooSmall { value: usize, min: usize },
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let default = Config::default();
        for (field, value, default) in [
            (
                "section_interval",
                self.section_interval,
                default.section_interval,
            ),
            ("pid_absence", self.pid_absence, default.pid_absence),
            (
                "pcr_repetition",
                self.pcr_repetition,
                default.pcr_repetition,
            ),
            (
                "pcr_discontinuity",
                self.pcr_discontinuity,
                default.pcr_discontinuity,
            ),
            (
                "pts_repetition",
                self.pts_repetition,
                default.pts_repetition,
            ),
        ] {
            if value <= 0 {
                return Err(ConfigError::NotPositive {
                    field,
                    value,
                    default,
                });
            }
        }
        let min = 2 * crate::packet::PACKET_SIZE;
        if self.max_buffered_bytes < min {
            return Err(ConfigError::BufferTooSmall {
                value: self.max_buffered_bytes,
                min,
            });
        }
        Ok(())
    }
}
