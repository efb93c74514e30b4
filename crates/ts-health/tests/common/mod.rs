//! A tiny transport stream writer for the tests: one programme (MPEG-2 video on 0x100 with
//! the PCR, MPEG audio on 0x101, optionally SCTE-35 on 0x1F4), a CAT if asked, at a constant
//! 1.504 Mbit/s, so that packet `i` is exactly `i` ms into the stream. Faults are either
//! knobs of the [`Plan`] (what is left out or changed while writing) or edits of the written
//! packets.
#![allow(dead_code)]

use std::ops::Range;

use vqa_ts_health::{Analyser, Config, ErrorKind, Event, Report};

pub const PACKET: usize = 188;
/// One packet per millisecond.
pub const PACKET_US: i64 = 1_000;
pub const PMT_PID: u16 = 0x1000;
pub const VIDEO: u16 = 0x100;
pub const AUDIO: u16 = 0x101;
pub const SCTE35: u16 = 0x1F4;
pub const NULL: u16 = 0x1FFF;
const PCR_WRAP: u64 = (1 << 33) * 300;

/// What a slot of the schedule carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Pat,
    Pmt,
    /// The second packet of a PMT too long for one ([`Plan::long_pmt`]).
    PmtContinued,
    Cat,
    Scte35,
    /// `pcr`: carries a PCR; `pes`: starts a PES with a PTS.
    Video {
        pcr: bool,
        pes: bool,
    },
    Audio {
        pes: bool,
    },
    Null,
}

/// The schedule, per millisecond `i`: PAT at i % 100 == 0, PMT at 1, CAT at 50 (if any),
/// audio at i % 10 == 5 (a PES with PTS every 30 ms), SCTE-35 at i % 1000 == 7 (if any),
/// video on the other even slots (PCR every 20 ms at i % 20 == 2, a PES with PTS every 40 ms
/// at i % 40 == 2), null packets elsewhere.
pub fn slot(i: i64, plan: &Plan) -> Slot {
    match i {
        _ if i % 100 == 0 => Slot::Pat,
        _ if i % 100 == 1 => Slot::Pmt,
        _ if i % 100 == 3 && plan.long_pmt => Slot::PmtContinued,
        _ if i % 100 == 50 && plan.cat => Slot::Cat,
        _ if i % 10 == 5 => Slot::Audio { pes: i % 30 == 5 },
        _ if i % 1000 == 7 && plan.scte35 => Slot::Scte35,
        _ if i % 2 == 0 => Slot::Video {
            pcr: i % 20 == 2,
            pes: i % 40 == 2,
        },
        _ => Slot::Null,
    }
}

/// A clean stream, and the faults written into it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub millis: i64,
    pub cat: bool,
    pub scte35: bool,
    /// The PCR (and PTS) clock at the first packet, µs: near the wrap to test it.
    pub clock_start_us: u64,
    /// PAT slots in this range (ms) are null packets.
    pub no_pat: Range<i64>,
    pub no_pmt: Range<i64>,
    /// Video packets in this range carry no PCR.
    pub no_pcr: Range<i64>,
    /// Audio slots in this range are null packets.
    pub no_audio: Range<i64>,
    /// Audio PES in this range start without a PTS.
    pub no_audio_pts: Range<i64>,
    /// From this slot on the PCR is this many µs ahead; with the discontinuity_indicator
    /// on that first packet if `flagged`.
    pub pcr_jump: Option<(i64, i64, bool)>,
    /// From this slot on the PCR is on the audio packets (every 10 ms), no longer on the
    /// video's, though the PMT still names the video PID.
    pub pcr_to_audio: Option<i64>,
    /// The PMT carries 300 bytes of descriptors, so it takes two packets (slots 1 and 3).
    pub long_pmt: bool,
    /// From this slot on the PMT lists no audio, and there is none.
    pub drop_audio_from: Option<i64>,
}

impl Plan {
    pub fn audio_dropped(&self, i: i64) -> bool {
        self.drop_audio_from.is_some_and(|from| i >= from)
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            millis: 10_000,
            cat: false,
            scte35: false,
            clock_start_us: 600_000_000,
            no_pat: 0..0,
            no_pmt: 0..0,
            no_pcr: 0..0,
            no_audio: 0..0,
            no_audio_pts: 0..0,
            pcr_jump: None,
            pcr_to_audio: None,
            long_pmt: false,
            drop_audio_from: None,
        }
    }
}

/// Continuity counters per PID as the writer goes.
#[derive(Default)]
struct Counters(std::collections::HashMap<u16, u8>);

impl Counters {
    fn next(&mut self, pid: u16) -> u8 {
        let cc = self.0.entry(pid).or_insert(15);
        *cc = (*cc + 1) & 0x0F;
        *cc
    }
}

/// The stream's packets, one per slot.
pub fn write(plan: &Plan) -> Vec<[u8; PACKET]> {
    let mut counters = Counters::default();
    (0..plan.millis)
        .map(|i| {
            let slot = match slot(i, plan) {
                Slot::Pat if plan.no_pat.contains(&i) => Slot::Null,
                Slot::Pmt if plan.no_pmt.contains(&i) => Slot::Null,
                Slot::Audio { .. } if plan.no_audio.contains(&i) || plan.audio_dropped(i) => {
                    Slot::Null
                }
                other => other,
            };
            let clock_us = plan.clock_start_us + (i * PACKET_US) as u64;
            let on_audio = plan.pcr_to_audio.is_some_and(|from| i >= from);
            match slot {
                Slot::Pat => section_packet(0, &pat_section(0x00), counters.next(0)),
                Slot::Pmt if plan.long_pmt => {
                    let section = pmt_section(plan, i);
                    let mut p = section_packet(PMT_PID, &section[..183], counters.next(PMT_PID));
                    p[1] |= 0x40;
                    p
                }
                Slot::Pmt => section_packet(PMT_PID, &pmt_section(plan, i), counters.next(PMT_PID)),
                Slot::PmtContinued => {
                    let section = pmt_section(plan, i);
                    let mut p = [0xFFu8; PACKET];
                    let cc = counters.next(PMT_PID);
                    p[..4].copy_from_slice(&[0x47, (PMT_PID >> 8) as u8, PMT_PID as u8, 0x10 | cc]);
                    p[4..4 + section.len() - 183].copy_from_slice(&section[183..]);
                    p
                }
                Slot::Cat => section_packet(1, &cat_section(), counters.next(1)),
                Slot::Scte35 => section_packet(SCTE35, &splice_null(), counters.next(SCTE35)),
                Slot::Video { pcr, pes } => {
                    let pcr = (pcr && !on_audio && !plan.no_pcr.contains(&i)).then(|| {
                        let (jump, flagged) = match plan.pcr_jump {
                            Some((from, jump, flagged)) if i >= from => {
                                (jump, flagged && i == from)
                            }
                            _ => (0, false),
                        };
                        (
                            ((clock_us as i64 + jump) * 27).rem_euclid(PCR_WRAP as i64) as u64,
                            flagged,
                        )
                    });
                    let pts = pes.then_some(clock_us * 9 / 100 + 63_000);
                    media_packet(VIDEO, 0xE0, pcr, pts, pes, counters.next(VIDEO), i)
                }
                Slot::Audio { pes } => {
                    let pts = (pes && !plan.no_audio_pts.contains(&i))
                        .then_some(clock_us * 9 / 100 + 63_000);
                    let pcr = on_audio.then_some((clock_us * 27 % PCR_WRAP, false));
                    media_packet(AUDIO, 0xC0, pcr, pts, pes, counters.next(AUDIO), i)
                }
                Slot::Null => {
                    let mut p = [0xFFu8; PACKET];
                    p[..4].copy_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
                    p
                }
            }
        })
        .collect()
}

pub fn concat(packets: &[[u8; PACKET]]) -> Vec<u8> {
    packets.iter().flatten().copied().collect()
}

/// CRC-32/MPEG-2, written independently of the crate's (bitwise).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in bytes {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A long-form section: table_id, extension, version 0, current, section 0 of 0; the body;
/// the CRC.
pub fn long_section(table_id: u8, extension: u16, body: &[u8]) -> Vec<u8> {
    let length = 5 + body.len() + 4;
    let mut s = vec![table_id, 0xB0 | (length >> 8) as u8, length as u8];
    s.extend(extension.to_be_bytes());
    s.extend([0xC1, 0x00, 0x00]);
    s.extend(body);
    let crc = crc32(&s);
    s.extend(crc.to_be_bytes());
    s
}

pub fn pat_section(table_id: u8) -> Vec<u8> {
    long_section(
        table_id,
        1,
        &[0x00, 0x01, 0xE0 | (PMT_PID >> 8) as u8, PMT_PID as u8],
    )
}

pub fn pmt_section(plan: &Plan, i: i64) -> Vec<u8> {
    let mut body = vec![0xE0 | (VIDEO >> 8) as u8, VIDEO as u8, 0xF0, 0x00];
    if plan.long_pmt {
        // program_info: 2 private descriptors (tag 0x80) of 148 bytes each.
        body[2..4].copy_from_slice(&[0xF0 | (300 >> 8) as u8, 300u16 as u8]);
        for _ in 0..2 {
            body.extend([0x80, 148]);
            body.extend([0xAB; 148]);
        }
    }
    let mut stream = |stream_type: u8, pid: u16| {
        body.extend([stream_type, 0xE0 | (pid >> 8) as u8, pid as u8, 0xF0, 0x00]);
    };
    stream(0x02, VIDEO);
    if !plan.audio_dropped(i) {
        stream(0x03, AUDIO);
    }
    if plan.scte35 {
        stream(0x86, SCTE35);
    }
    long_section(0x02, 1, &body)
}

pub fn cat_section() -> Vec<u8> {
    long_section(0x01, 0xFFFF, &[])
}

/// SCTE-35 splice_info_section with a splice_null command (short form, CRC at the end).
pub fn splice_null() -> Vec<u8> {
    let body = [
        0x00, 0x00, 0, 0, 0, 0, 0x00, 0xFF, 0xF0, 0x00, 0x00, 0x00, 0x00,
    ];
    let length = body.len() + 4;
    let mut s = vec![0xFC, 0x30 | (length >> 8) as u8, length as u8];
    s.extend(body);
    let crc = crc32(&s);
    s.extend(crc.to_be_bytes());
    s
}

/// One packet carrying `section` from its start (pointer_field 0), stuffed with 0xFF.
pub fn section_packet(pid: u16, section: &[u8], cc: u8) -> [u8; PACKET] {
    let mut p = [0xFFu8; PACKET];
    p[..5].copy_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | cc, 0x00]);
    p[5..5 + section.len()].copy_from_slice(section);
    p
}

/// A video or audio packet: optionally a PCR (with the discontinuity_indicator if flagged)
/// and the start of a PES (with a PTS if given); the rest filled with the slot number, so
/// packets of one PID differ.
pub fn media_packet(
    pid: u16,
    stream_id: u8,
    pcr: Option<(u64, bool)>,
    pts: Option<u64>,
    pes_start: bool,
    cc: u8,
    slot: i64,
) -> [u8; PACKET] {
    let mut p = [slot as u8; PACKET];
    let pusi = if pes_start { 0x40 } else { 0 };
    p[0] = 0x47;
    p[1] = pusi | (pid >> 8) as u8;
    p[2] = pid as u8;
    let mut at = 4;
    if let Some((pcr, flagged)) = pcr {
        p[3] = 0x30 | cc;
        p[4] = 7;
        p[5] = 0x10 | if flagged { 0x80 } else { 0 };
        let base = pcr / 300;
        let ext = pcr % 300;
        let raw = (base << 15) | (0x3F << 9) | ext;
        p[6..12].copy_from_slice(&raw.to_be_bytes()[2..]);
        at = 12;
    } else {
        p[3] = 0x10 | cc;
    }
    if pes_start {
        p[at..at + 6].copy_from_slice(&[0x00, 0x00, 0x01, stream_id, 0x00, 0x00]);
        match pts {
            Some(pts) => {
                p[at + 6..at + 9].copy_from_slice(&[0x80, 0x80, 0x05]);
                p[at + 9..at + 14].copy_from_slice(&encode_pts(pts));
            }
            None => p[at + 6..at + 9].copy_from_slice(&[0x80, 0x00, 0x00]),
        }
    }
    p
}

fn encode_pts(pts: u64) -> [u8; 5] {
    let pts = pts & ((1 << 33) - 1);
    [
        0x21 | ((pts >> 29) as u8 & 0x0E),
        (pts >> 22) as u8,
        0x01 | ((pts >> 14) as u8 & 0xFE),
        (pts >> 7) as u8,
        0x01 | ((pts << 1) as u8 & 0xFE),
    ]
}

/// Recomputes the CRC of the section a packet from [`section_packet`] carries (after an
/// edit of its content).
pub fn fix_crc(packet: &mut [u8; PACKET]) {
    let length = 3 + ((usize::from(packet[6] & 0x0F) << 8) | usize::from(packet[7]));
    let end = 5 + length;
    let crc = crc32(&packet[5..end - 4]);
    packet[end - 4..end].copy_from_slice(&crc.to_be_bytes());
}

/// Runs the analyser over `bytes` in one piece.
pub fn analyse(bytes: &[u8]) -> (Vec<Event>, Report) {
    analyse_chunked(bytes, &[bytes.len().max(1)])
}

/// Runs the analyser over `bytes` cut into pieces of the given sizes, repeated.
pub fn analyse_chunked(bytes: &[u8], sizes: &[usize]) -> (Vec<Event>, Report) {
    let mut analyser = Analyser::new(Config::default()).expect("default config");
    let mut events = Vec::new();
    let mut rest = bytes;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at((*size).clamp(1, rest.len()));
        analyser.push(piece, None);
        events.extend(analyser.take_events());
        rest = tail;
    }
    let mut report = analyser.finish();
    events.append(&mut report.events);
    (events, report)
}

/// The errors only, as (kind, pid, at).
pub fn errors(events: &[Event]) -> Vec<(ErrorKind, Option<u16>, i64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error(e) => Some((e.kind, e.pid, e.at)),
            _ => None,
        })
        .collect()
}

pub fn cleared(events: &[Event]) -> Vec<(ErrorKind, Option<u16>, i64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Cleared(c) => Some((c.kind, c.pid, c.at)),
            _ => None,
        })
        .collect()
}

/// How far an event's time may be from the ground truth: one packet (a packet lost or
/// added between two PCRs moves the interpolated times of the packets after it by up to
/// one packet's duration).
pub const TOLERANCE_US: i64 = PACKET_US;

/// Asserts that `actual` holds exactly the `expected` (kind, pid, ms) in order, each
/// within [`TOLERANCE_US`].
pub fn assert_matches(
    what: &str,
    actual: &[(ErrorKind, Option<u16>, i64)],
    expected: &[(ErrorKind, Option<u16>, i64)],
) {
    let same = actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(a, e)| a.0 == e.0 && a.1 == e.1 && (a.2 - e.2 * 1_000).abs() <= TOLERANCE_US);
    assert!(
        same,
        "{what}:\n  expected (ms) {expected:?}\n  got (µs)      {actual:?}"
    );
}

/// xorshift64*: the tests' random numbers, seeded, so failures repeat.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
