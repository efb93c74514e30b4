//! PSI sections: reassembly from packet payloads, the CRC_32 they carry, and the two tables
//! the checks need to read (PAT and PMT, ISO/IEC 13818-1 §2.4.4).

/// Largest section: 3 header bytes + a 12-bit section_length (private sections may use all
/// of it; PSI tables stop at 1021).
const MAX_SECTION: usize = 3 + 0xFFF;

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial all ones, not reflected, no final xor):
/// over a whole section including its CRC_32 field the result is 0 when it is intact.
pub fn crc32_mpeg2(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in bytes {
        crc = (crc << 8) ^ CRC_TABLE[usize::from(((crc >> 24) as u8) ^ byte)];
    }
    crc
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Whether a section carries a CRC_32: every long-form section (section_syntax_indicator
/// set), and two short forms that end in one all the same: DVB's TOT (0x73) and SCTE-35's
/// splice_info_section (0xFC).
pub fn has_crc(section: &[u8]) -> bool {
    match section {
        [table_id, flags, ..] => flags & 0x80 != 0 || matches!(table_id, 0x73 | 0xFC),
        _ => false,
    }
}

/// Joins the sections carried on one PID across packets. It keeps no section across a
/// continuity error (the caller calls [`SectionAssembler::reset`]): a section missing a
/// packet would fail its CRC, and that is a continuity error, not a CRC error.
#[derive(Debug, Default)]
pub struct SectionAssembler {
    buffer: Vec<u8>,
    /// A section has started and its bytes are in `buffer`.
    collecting: bool,
}

impl SectionAssembler {
    pub fn reset(&mut self) {
        self.buffer.clear();
        self.collecting = false;
    }

    /// Takes one packet's payload; calls `section` with each section it completes.
    pub fn push(&mut self, payload: &[u8], unit_start: bool, mut section: impl FnMut(&[u8])) {
        if unit_start {
            let Some((&pointer, rest)) = payload.split_first() else {
                self.reset();
                return;
            };
            let pointer = usize::from(pointer);
            let Some((tail, starts)) = rest.split_at_checked(pointer) else {
                self.reset();
                return;
            };
            if self.collecting {
                self.buffer.extend_from_slice(tail);
                self.drain(&mut section);
            }
            // Whatever the previous section still lacked is lost now: a new one starts.
            self.buffer.clear();
            self.buffer.extend_from_slice(starts);
            self.collecting = true;
            self.drain(&mut section);
        } else if self.collecting {
            self.buffer.extend_from_slice(payload);
            self.drain(&mut section);
        }
    }

    /// Hands out every complete section at the front of the buffer.
    fn drain(&mut self, section: &mut impl FnMut(&[u8])) {
        let mut start = 0;
        loop {
            let rest = &self.buffer[start..];
            match rest {
                [] => break,
                // 0xFF where a table_id would be: the rest of the packet is stuffing.
                [0xFF, ..] => {
                    self.collecting = false;
                    start = self.buffer.len();
                    break;
                }
                [_, hi, lo, ..] => {
                    let length = 3 + (usize::from(hi & 0x0F) << 8 | usize::from(*lo));
                    if length > MAX_SECTION {
                        self.collecting = false;
                        start = self.buffer.len();
                        break;
                    }
                    if rest.len() < length {
                        break;
                    }
                    section(&rest[..length]);
                    start += length;
                }
                _ => break,
            }
        }
        self.buffer.drain(..start);
    }
}

/// The long-form section header's fields the tables need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxHeader {
    pub table_id: u8,
    /// table_id_extension: transport_stream_id in a PAT, program_number in a PMT.
    pub extension: u16,
    pub version: u8,
    pub current: bool,
    pub section_number: u8,
}

impl SyntaxHeader {
    /// The header of a long-form section of at least 12 bytes (header, CRC), else `None`.
    pub fn parse(section: &[u8]) -> Option<SyntaxHeader> {
        if section.len() < 12 || section[1] & 0x80 == 0 {
            return None;
        }
        Some(SyntaxHeader {
            table_id: section[0],
            extension: u16::from_be_bytes([section[3], section[4]]),
            version: (section[5] >> 1) & 0x1F,
            current: section[5] & 1 != 0,
            section_number: section[6],
        })
    }
}

/// The table's body: after the 8-byte long header, before the CRC_32.
fn body(section: &[u8]) -> &[u8] {
    section
        .get(8..section.len().saturating_sub(4))
        .unwrap_or(&[])
}

/// A PAT section's (program_number, PID) pairs; program_number 0 names the NIT's PID.
pub fn pat_entries(section: &[u8]) -> impl Iterator<Item = (u16, u16)> + '_ {
    body(section).chunks_exact(4).map(|entry| {
        (
            u16::from_be_bytes([entry[0], entry[1]]),
            u16::from_be_bytes([entry[2] & 0x1F, entry[3]]),
        )
    })
}

/// What a PMT section says about its programme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtBody {
    /// 0x1FFF means the programme has no PCR.
    pub pcr_pid: u16,
    /// (stream_type, elementary_PID) per elementary stream, in the table's order.
    pub streams: Vec<(u8, u16)>,
}

/// Reads a PMT section's body; `None` when its lengths run past the section.
pub fn pmt_body(section: &[u8]) -> Option<PmtBody> {
    let body = body(section);
    let pcr_pid = u16::from_be_bytes([*body.first()? & 0x1F, *body.get(1)?]);
    let info_length = usize::from(body.get(2)? & 0x0F) << 8 | usize::from(*body.get(3)?);
    let mut rest = body.get(4 + info_length..)?;
    let mut streams = Vec::new();
    while !rest.is_empty() {
        let [stream_type, pid_hi, pid_lo, len_hi, len_lo, ..] = *rest else {
            return None;
        };
        let es_info_length = usize::from(len_hi & 0x0F) << 8 | usize::from(len_lo);
        streams.push((stream_type, u16::from_be_bytes([pid_hi & 0x1F, pid_lo])));
        rest = rest.get(5 + es_info_length..)?;
    }
    Some(PmtBody { pcr_pid, streams })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_a_known_pat_section_checks() {
        // FFmpeg's PAT: transport_stream_id 1, programme 1 on PID 0x1000.
        let pat = [
            0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1,
            0x04, 0xB2,
        ];
        assert_eq!(crc32_mpeg2(&pat), 0);
        assert_eq!(pat_entries(&pat).collect::<Vec<_>>(), vec![(1, 0x1000)]);
        let mut bad = pat;
        bad[9] ^= 1;
        assert_ne!(crc32_mpeg2(&bad), 0);
    }

    #[test]
    fn sections_are_joined_across_packets_and_split_within_one() {
        let section = |id: u8, n: usize| {
            let mut s = vec![id, 0xB0 | ((n >> 8) as u8), n as u8];
            s.extend(std::iter::repeat_n(id, n));
            s
        };
        let a = section(0x02, 200);
        let b = section(0x03, 5);
        let mut stream = a.clone();
        stream.extend(&b);
        let mut out = Vec::new();
        let mut assembler = SectionAssembler::default();
        let mut first = vec![0u8];
        first.extend(&stream[..150]);
        assembler.push(&first, true, |s| out.push(s.to_vec()));
        assert!(out.is_empty());
        let mut second = stream[150..].to_vec();
        second.extend([0xFF; 10]);
        assembler.push(&second, false, |s| out.push(s.to_vec()));
        assert_eq!(out, vec![a, b]);
    }

    #[test]
    fn a_pointer_past_the_payload_is_dropped() {
        let mut assembler = SectionAssembler::default();
        assembler.push(&[200, 0, 0], true, |_| panic!("no section"));
        assembler.push(&[0x00, 0xB0, 0x01, 0], false, |_| panic!("no section"));
    }

    #[test]
    fn pmt_streams_are_read_and_overruns_refused() {
        let mut s = vec![0x02, 0xB0, 0, 0, 1, 0xC1, 0, 0];
        s.extend([0xE1, 0x00, 0xF0, 0x00]);
        s.extend([0x02, 0xE1, 0x00, 0xF0, 0x00]);
        s.extend([0x86, 0xE1, 0xF4, 0xF0, 0x00]);
        s.extend([0, 0, 0, 0]);
        let body = pmt_body(&s).expect("pmt");
        assert_eq!(body.pcr_pid, 0x100);
        assert_eq!(body.streams, vec![(0x02, 0x100), (0x86, 0x1F4)]);
        let mut overrun = s.clone();
        overrun[10] = 0xF0;
        overrun[11] = 0x40;
        assert_eq!(pmt_body(&overrun), None);
    }
}
