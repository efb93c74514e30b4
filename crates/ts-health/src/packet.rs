//! One 188-byte transport stream packet's header and adaptation field (ISO/IEC 13818-1
//! §2.4.3.2–2.4.3.5), read without trusting any length in it.

/// Bytes in a transport stream packet.
pub const PACKET_SIZE: usize = 188;
/// The first byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;
/// Stuffing packets: no continuity counter, no content.
pub const NULL_PID: u16 = 0x1FFF;
/// The PCR runs at 27 MHz and wraps at 2^33 × 300 ticks (about 26.5 hours).
pub const PCR_WRAP: u64 = (1 << 33) * 300;
/// PCR ticks per microsecond.
pub const PCR_TICKS_PER_MICRO: u64 = 27;

/// A packet's fields that the checks read. Built by [`Header::parse`] from exactly one
/// packet; the payload is located as an index range so the caller keeps the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub transport_error: bool,
    pub payload_unit_start: bool,
    pub pid: u16,
    /// `transport_scrambling_control`: 0 means not scrambled.
    pub scrambling: u8,
    pub has_adaptation: bool,
    pub has_payload: bool,
    pub continuity_counter: u8,
    /// From the adaptation field: the discontinuity_indicator.
    pub discontinuity: bool,
    /// From the adaptation field: the PCR in 27 MHz ticks.
    pub pcr: Option<u64>,
    /// Where the payload starts in the packet (`PACKET_SIZE` when there is none or the
    /// adaptation field claims more bytes than the packet has).
    pub payload_start: usize,
}

impl Header {
    /// Reads the header of `packet`, which the caller has framed as one packet; the sync
    /// byte is not looked at (framing judged it). An adaptation_field_length running past
    /// the packet leaves no payload and no PCR rather than failing: the checks then see a
    /// packet with a damaged adaptation field, which is what it is.
    pub fn parse(packet: &[u8; PACKET_SIZE]) -> Header {
        let b1 = packet[1];
        let b3 = packet[3];
        let afc = (b3 >> 4) & 0b11;
        let has_adaptation = afc & 0b10 != 0;
        let has_payload = afc & 0b01 != 0;
        let mut header = Header {
            transport_error: b1 & 0x80 != 0,
            payload_unit_start: b1 & 0x40 != 0,
            pid: u16::from_be_bytes([b1 & 0x1F, packet[2]]),
            scrambling: b3 >> 6,
            has_adaptation,
            has_payload,
            continuity_counter: b3 & 0x0F,
            discontinuity: false,
            pcr: None,
            payload_start: 4,
        };
        if has_adaptation {
            let length = usize::from(packet[4]);
            let end = 5 + length;
            if end > PACKET_SIZE {
                header.payload_start = PACKET_SIZE;
                return header;
            }
            header.payload_start = end;
            if length >= 1 {
                let flags = packet[5];
                header.discontinuity = flags & 0x80 != 0;
                if flags & 0x10 != 0 && length >= 7 {
                    header.pcr = Some(read_pcr(&packet[6..12]));
                }
            }
        }
        if !has_payload {
            header.payload_start = PACKET_SIZE;
        }
        header
    }

    /// The payload bytes (empty when there are none).
    pub fn payload<'p>(&self, packet: &'p [u8; PACKET_SIZE]) -> &'p [u8] {
        packet.get(self.payload_start..).unwrap_or(&[])
    }
}

/// 33-bit base × 300 + 9-bit extension, from the 6 bytes of program_clock_reference.
fn read_pcr(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    for (slot, byte) in raw[2..].iter_mut().zip(bytes) {
        *slot = *byte;
    }
    let raw = u64::from_be_bytes(raw);
    let base = raw >> 15;
    let extension = raw & 0x1FF;
    base * 300 + extension
}

/// `later − earlier` on the wrapping 27 MHz clock, as signed ticks: a step backwards
/// (or one of more than half the wrap, which no stream makes) is negative.
pub fn pcr_delta(earlier: u64, later: u64) -> i64 {
    let forward = (later % PCR_WRAP + PCR_WRAP - earlier % PCR_WRAP) % PCR_WRAP;
    if forward > PCR_WRAP / 2 {
        forward as i64 - PCR_WRAP as i64
    } else {
        forward as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(bytes: &[u8]) -> [u8; PACKET_SIZE] {
        let mut p = [0xFFu8; PACKET_SIZE];
        p[..bytes.len()].copy_from_slice(bytes);
        p
    }

    #[test]
    fn header_fields_and_pcr_are_read() {
        // PID 0x100, PUSI, AF + payload, CC 7; AF length 7 with PCR flag and discontinuity.
        let pcr_base: u64 = 0x1_2345_6789;
        let ext: u64 = 0x155;
        let raw = (pcr_base << 15) | (0x3F << 9) | ext;
        let b = raw.to_be_bytes();
        let p = packet(&[
            0x47, 0x41, 0x00, 0x37, 7, 0x90, b[2], b[3], b[4], b[5], b[6], b[7],
        ]);
        let h = Header::parse(&p);
        assert_eq!(h.pid, 0x100);
        assert!(h.payload_unit_start && !h.transport_error);
        assert!(h.has_adaptation && h.has_payload && h.discontinuity);
        assert_eq!(h.continuity_counter, 7);
        assert_eq!(h.pcr, Some(pcr_base * 300 + ext));
        assert_eq!(h.payload_start, 12);
    }

    #[test]
    fn an_adaptation_field_longer_than_the_packet_leaves_no_payload() {
        let p = packet(&[0x47, 0x01, 0x00, 0x30, 200, 0x10]);
        let h = Header::parse(&p);
        assert_eq!(h.pcr, None);
        assert!(h.payload(&p).is_empty());
    }

    #[test]
    fn pcr_delta_wraps_and_goes_backwards() {
        assert_eq!(pcr_delta(PCR_WRAP - 10, 5), 15);
        assert_eq!(pcr_delta(100, 40), -60);
        assert_eq!(pcr_delta(40, 100), 60);
    }
}
