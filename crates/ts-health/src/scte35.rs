//! SCTE-35 splice information (ANSI/SCTE 35 2022): the `splice_info_section` decoded into a
//! [`SpliceCue`] — the command (splice_insert, time_signal, ...), the event, out of or back
//! into the network, the splice time, the break's duration and the segmentation
//! descriptors' types.
//!
//! Pure and total: any byte string decodes to a cue or to `None`, never a panic (the
//! section's CRC has been checked by the caller; a section too short for what it declares
//! is `None`).

use vqa_core::model::SpliceCue;
use vqa_core::Micros;

/// The table_id of a splice_info_section.
pub const SPLICE_INFO_TABLE_ID: u8 = 0xFC;

/// 33-bit PTS arithmetic.
const PTS_MODULUS: u64 = 1 << 33;

/// The `CUEI` identifier of the descriptors SCTE 35 defines.
const CUEI: u32 = 0x4355_4549;
const SEGMENTATION_DESCRIPTOR: u8 = 0x02;

/// A splice_info_section, decoded; times still in 90 kHz ticks of the programme's clock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpliceInfo {
    pub command: u8,
    pub encrypted: bool,
    pub event_id: Option<u32>,
    pub cancel: bool,
    pub out_of_network: Option<bool>,
    pub immediate: bool,
    /// The splice time with `pts_adjustment` added (mod 2^33), 90 kHz.
    pub splice_pts: Option<u64>,
    /// 90 kHz.
    pub duration: Option<u64>,
    pub auto_return: bool,
    pub segmentation_types: Vec<u8>,
}

impl SpliceInfo {
    /// The cue as vqa reports it: arrived at `at` on PID `pid`, with `clock_pts` the
    /// programme's clock (90 kHz, from its PCR) at that moment, when known, for the pre-roll
    /// (which a caller that knows the timeline's origin in PTS may restate on it:
    /// [`pre_roll_on_timeline`]).
    pub fn cue(&self, at: Micros, pid: u16, clock_pts: Option<u64>) -> SpliceCue {
        let pre_roll = match (self.splice_pts, clock_pts) {
            (Some(splice), Some(clock)) => Some(ticks_to_micros(signed_pts_delta(clock, splice))),
            _ => None,
        };
        SpliceCue {
            at,
            pid,
            command: self.command,
            event_id: self.event_id,
            cancel: self.cancel,
            out_of_network: self.out_of_network,
            splice_pts: self.splice_pts,
            pre_roll,
            immediate: self.immediate,
            duration: self.duration.map(|d| ticks_to_micros(d as i64)),
            auto_return: self.auto_return,
            segmentation_types: self.segmentation_types.clone(),
            encrypted: self.encrypted,
        }
    }
}

/// `to − from` in 33-bit PTS arithmetic, as the shorter way round (a splice time more than
/// 2^32 ticks — 13 hours — ahead is one in the past).
pub fn signed_pts_delta(from: u64, to: u64) -> i64 {
    let d = (to.wrapping_sub(from)) % PTS_MODULUS;
    if d >= PTS_MODULUS / 2 {
        d as i64 - PTS_MODULUS as i64
    } else {
        d as i64
    }
}

/// The pre-roll of a cue that arrived at `at` on a timeline whose 0 is PTS `origin` (µs):
/// from the splice PTS, taken the shorter way round from the arrival's PTS, so a 33-bit wrap
/// in between does not matter.
pub fn pre_roll_on_timeline(at: Micros, origin: Micros, splice_pts: u64) -> Micros {
    let arrival = (i128::from(at) + i128::from(origin)) * 9 / 100;
    let arrival_ticks = arrival.rem_euclid(i128::from(PTS_MODULUS)) as u64;
    ticks_to_micros(signed_pts_delta(arrival_ticks, splice_pts))
}

/// 90 kHz ticks to microseconds.
pub fn ticks_to_micros(ticks: i64) -> Micros {
    ticks.saturating_mul(100) / 9
}

/// A cursor over bytes that yields `None` past the end.
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        let s = self.take(4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// Five bytes whose low 33 bits are a time (the 7 bits above are flags or reserved):
    /// the flags byte and the time.
    fn flags_and_33(&mut self) -> Option<(u8, u64)> {
        let s = self.take(5)?;
        let time =
            (u64::from(s[0] & 1) << 32) | u64::from(u32::from_be_bytes([s[1], s[2], s[3], s[4]]));
        Some((s[0], time))
    }

    /// splice_time(): the PTS when `time_specified_flag` is set.
    fn splice_time(&mut self) -> Option<Option<u64>> {
        let first = *self.data.get(self.pos)?;
        if first & 0x80 != 0 {
            Some(Some(self.flags_and_33()?.1))
        } else {
            self.pos += 1;
            Some(None)
        }
    }
}

/// Decodes a splice_info_section (its CRC checked already). `None` if it is not one or is
/// shorter than it says.
pub fn decode(section: &[u8]) -> Option<SpliceInfo> {
    if section.len() < 17 || section[0] != SPLICE_INFO_TABLE_ID {
        return None;
    }
    let section_length = usize::from(u16::from_be_bytes([section[1], section[2]]) & 0x0FFF);
    let section = section
        .get(..3 + section_length)
        .filter(|s| s.len() >= 17)?;
    let encrypted = section[4] & 0x80 != 0;
    let pts_adjustment = (u64::from(section[4] & 1) << 32)
        | u64::from(u32::from_be_bytes([
            section[5], section[6], section[7], section[8],
        ]));
    let mut info = SpliceInfo {
        encrypted,
        command: SpliceCue::PRIVATE_COMMAND,
        ..SpliceInfo::default()
    };
    if encrypted {
        return Some(info);
    }
    let command_length = usize::from(u16::from_be_bytes([section[11], section[12]]) & 0x0FFF);
    info.command = section[13];
    // The command runs to its declared length; 0xFFF is the legacy "not given", where the
    // command's own syntax says where it ends.
    let body = if command_length == 0x0FFF {
        section.get(14..)?
    } else {
        section.get(14..14 + command_length)?
    };
    let mut bytes = Bytes { data: body, pos: 0 };
    match info.command {
        SpliceCue::SPLICE_INSERT => splice_insert(&mut bytes, &mut info)?,
        SpliceCue::TIME_SIGNAL => info.splice_pts = bytes.splice_time()?,
        SpliceCue::SPLICE_SCHEDULE => splice_schedule(&mut bytes, &mut info)?,
        _ => {}
    }
    info.splice_pts = info.splice_pts.map(|p| (p + pts_adjustment) % PTS_MODULUS);
    let descriptors_at = if command_length == 0x0FFF {
        14 + bytes.pos
    } else {
        14 + command_length
    };
    let mut rest = Bytes {
        data: section,
        pos: descriptors_at,
    };
    let loop_length = usize::from(rest.u16()?);
    let descriptors = rest.take(loop_length)?;
    segmentation_descriptors(descriptors, &mut info);
    Some(info)
}

/// splice_schedule(): the first event's id and whether it is cancelled (its UTC times are
/// not read).
fn splice_schedule(bytes: &mut Bytes, info: &mut SpliceInfo) -> Option<()> {
    if bytes.u8()? > 0 {
        info.event_id = Some(bytes.u32()?);
        info.cancel = bytes.u8()? & 0x80 != 0;
    }
    Some(())
}

fn splice_insert(bytes: &mut Bytes, info: &mut SpliceInfo) -> Option<()> {
    info.event_id = Some(bytes.u32()?);
    info.cancel = bytes.u8()? & 0x80 != 0;
    if info.cancel {
        return Some(());
    }
    let flags = bytes.u8()?;
    let program_splice = flags & 0x40 != 0;
    let duration_flag = flags & 0x20 != 0;
    info.out_of_network = Some(flags & 0x80 != 0);
    info.immediate = flags & 0x10 != 0;
    if program_splice && !info.immediate {
        info.splice_pts = bytes.splice_time()?;
    }
    if !program_splice {
        let components = bytes.u8()?;
        for _ in 0..components {
            bytes.u8()?; // component_tag
            if !info.immediate {
                let time = bytes.splice_time()?;
                // The components' earliest time stands for the splice.
                info.splice_pts = info.splice_pts.or(time);
            }
        }
    }
    if duration_flag {
        let (flags, duration) = bytes.flags_and_33()?;
        info.auto_return = flags & 0x80 != 0;
        info.duration = Some(duration);
    }
    Some(())
}

/// The segmentation descriptors' types (and, for time_signal, the event, its duration and
/// whether it goes out or comes back in, from the first).
fn segmentation_descriptors(data: &[u8], info: &mut SpliceInfo) {
    let mut bytes = Bytes { data, pos: 0 };
    while let (Some(tag), Some(length)) = (bytes.u8(), bytes.u8()) {
        let Some(body) = bytes.take(usize::from(length)) else {
            return;
        };
        if tag != SEGMENTATION_DESCRIPTOR {
            continue;
        }
        let _ = segmentation_descriptor(body, info);
    }
}

fn segmentation_descriptor(body: &[u8], info: &mut SpliceInfo) -> Option<()> {
    let mut bytes = Bytes { data: body, pos: 0 };
    if bytes.u32()? != CUEI {
        return None;
    }
    let event_id = bytes.u32()?;
    let cancel = bytes.u8()? & 0x80 != 0;
    let first = info.segmentation_types.is_empty() && info.command != SpliceCue::SPLICE_INSERT;
    if first {
        info.event_id = Some(event_id);
        info.cancel = cancel;
    }
    if cancel {
        return Some(());
    }
    let flags = bytes.u8()?;
    let program_segmentation = flags & 0x80 != 0;
    let duration_flag = flags & 0x40 != 0;
    if !program_segmentation {
        let components = bytes.u8()?;
        bytes.take(usize::from(components) * 6)?;
    }
    let duration = if duration_flag {
        let s = bytes.take(5)?;
        Some(s.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    } else {
        None
    };
    let _upid_type = bytes.u8()?;
    let upid_length = bytes.u8()?;
    bytes.take(usize::from(upid_length))?;
    let type_id = bytes.u8()?;
    info.segmentation_types.push(type_id);
    if first {
        info.duration = info.duration.or(duration);
        info.out_of_network = info.out_of_network.or(out_of_network(type_id));
    }
    Some(())
}

/// What a segmentation_type_id says about the network (SCTE 35 2022 Table 23): the starts
/// of breaks, advertisements, placement opportunities, promotions, overlays, unscheduled
/// events, alternate content and ad blocks (even ids) go out; their ends (odd) come back.
pub fn out_of_network(type_id: u8) -> Option<bool> {
    matches!(type_id, 0x22 | 0x23 | 0x30..=0x47).then_some(type_id.is_multiple_of(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psi::crc32_mpeg2;

    fn base64(s: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes().filter(|&c| c != b'=') {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    /// SCTE 35 2022 §14.2: a splice_insert, out of network, with a break duration.
    const SPLICE_INSERT: &str =
        "/DAvAAAAAAAA///wFAVIAACPf+/+c2nALv4AUsz1AAAAAAAKAAhDVUVJAAABNWLbowo=";
    /// SCTE 35 2022 §14.1: a time_signal with a Provider Placement Opportunity Start.
    const TIME_SIGNAL: &str =
        "/DA0AAAAAAAA///wBQb+cr0AUAAeAhxDVUVJSAAAjn/PAAGlmbAICAAAAAAsoKGKNAIAmsnRfg==";

    #[test]
    fn the_standards_splice_insert_decodes() {
        let section = base64(SPLICE_INSERT);
        assert_eq!(crc32_mpeg2(&section), 0, "the sample is intact");
        let info = decode(&section).expect("decodes");
        assert_eq!(info.command, SpliceCue::SPLICE_INSERT);
        assert_eq!(info.event_id, Some(0x4800_008F));
        assert!(!info.cancel && !info.immediate);
        assert_eq!(info.out_of_network, Some(true));
        assert_eq!(info.splice_pts, Some(0x0_7369_C02E));
        assert_eq!(info.duration, Some(0x0_0052_CCF5));
        assert!(info.auto_return);
        assert!(
            info.segmentation_types.is_empty(),
            "its descriptor is an avail_descriptor"
        );
    }

    #[test]
    fn the_standards_time_signal_decodes_with_its_segmentation() {
        let section = base64(TIME_SIGNAL);
        assert_eq!(crc32_mpeg2(&section), 0, "the sample is intact");
        let info = decode(&section).expect("decodes");
        assert_eq!(info.command, SpliceCue::TIME_SIGNAL);
        assert_eq!(info.splice_pts, Some(0x0_72BD_0050));
        assert_eq!(info.segmentation_types, vec![0x34]);
        assert_eq!(info.event_id, Some(0x4800_008E));
        assert_eq!(
            info.out_of_network,
            Some(true),
            "a placement opportunity starts"
        );
        assert_eq!(info.duration, Some(0x00_01A5_99B0));
    }

    #[test]
    fn pre_roll_is_against_the_programme_clock_and_wraps() {
        let info = SpliceInfo {
            command: SpliceCue::SPLICE_INSERT,
            splice_pts: Some(90_000 * 4),
            ..SpliceInfo::default()
        };
        assert_eq!(info.cue(0, 500, Some(0)).pre_roll, Some(4_000_000));
        // The clock is just before the 33-bit wrap, the splice just after.
        let clock = PTS_MODULUS - 90_000;
        assert_eq!(info.cue(0, 500, Some(clock)).pre_roll, Some(5_000_000));
        // A splice time already passed.
        assert_eq!(
            info.cue(0, 500, Some(90_000 * 5)).pre_roll,
            Some(-1_000_000)
        );
        assert_eq!(info.cue(0, 500, None).pre_roll, None);
    }

    #[test]
    fn pre_roll_on_the_timeline_is_from_the_arrival_across_a_wrap() {
        // The timeline's 0 is PTS 10 s; the cue arrives at 5 s (PTS 15 s), splice at PTS 19 s.
        assert_eq!(
            pre_roll_on_timeline(5_000_000, 10_000_000, 19 * 90_000),
            4_000_000
        );
        // 26.5 hours in, the PTS wrapped: the splice is 2 s after the arrival all the same.
        let at = ticks_to_micros(PTS_MODULUS as i64 - 90_000);
        let pre_roll = pre_roll_on_timeline(at, 0, 90_000);
        assert!(
            (pre_roll - 2_000_000).abs() <= 12,
            "within a tick: {pre_roll}"
        );
    }

    #[test]
    fn segmentation_types_say_out_or_in() {
        assert_eq!(out_of_network(0x34), Some(true));
        assert_eq!(out_of_network(0x35), Some(false));
        assert_eq!(out_of_network(0x22), Some(true));
        assert_eq!(out_of_network(0x23), Some(false));
        assert_eq!(out_of_network(0x10), None, "a programme start is no break");
    }

    #[test]
    fn truncated_and_foreign_sections_decode_to_nothing_or_less() {
        let section = base64(SPLICE_INSERT);
        for n in 0..section.len() {
            let _ = decode(&section[..n]);
        }
        assert_eq!(decode(&section[..10]), None);
        let mut other = section.clone();
        other[0] = 0x02;
        assert_eq!(decode(&other), None);
        // Every single-byte change decodes or not, without a panic.
        for i in 0..section.len() {
            for v in [0x00, 0xFF, 0x80, 0x7F] {
                let mut s = section.clone();
                s[i] = v;
                let _ = decode(&s);
            }
        }
    }
}
