//! Closed captions carried in the pictures: which services an ATSC A/53 `cc_data` holds.
//!
//! Decoders hand on A/53 caption data (MPEG-2 picture user data, H.264/HEVC SEI
//! `user_data_registered_itu_t_t35` with `GA94`) as the picture's `cc_data` triplets
//! (FFmpeg's `AV_FRAME_DATA_A53_CC` side data): per triplet one byte of marker bits,
//! `cc_valid` and `cc_type`, then two data bytes (ATSC A/53 Part 4, §6.2.3.1; CTA-708-E
//! §4.3). `cc_type` 0 and 1 are CEA-608 (line 21) byte pairs of field 1 and field 2; 2 and 3
//! are CEA-708 caption channel (DTVCC) packet data and packet start. Encoders fill the
//! triplets they have no captions for with padding — `cc_valid` 0, CEA-608 null pairs
//! (0x80 0x80, zero with odd parity), DTVCC null service blocks — and keep sending it when
//! their caption source goes away, so padding is not captions: [`Captions::from_cc_data`]
//! counts a service only where it carries caption data.

use serde::{Deserialize, Serialize};

/// The caption services a picture carried (A/53 `cc_data`), padding not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Captions {
    /// CEA-608 (line 21) data: a byte pair of field 1 or 2 other than null padding.
    pub cea608: bool,
    /// CEA-708 (DTVCC) data: a caption channel packet with a service block that is not
    /// the null block.
    pub cea708: bool,
}

/// Where a walk through a picture's DTVCC bytes is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dtvcc {
    /// Bytes of a packet that started in an earlier picture: padding is zeros, so any other
    /// byte is data.
    Continued,
    /// The next byte is a packet header (sequence number, size).
    PacketHeader,
    /// The next byte is the packet's first service block header.
    BlockHeader,
    /// The rest of the packet is padding (a null service block came first).
    Padding,
}

impl Captions {
    /// No captions.
    pub const NONE: Captions = Captions {
        cea608: false,
        cea708: false,
    };

    /// Whether any caption service was there.
    pub fn any(self) -> bool {
        self.cea608 || self.cea708
    }

    /// Both pictures' services.
    pub fn union(self, other: Captions) -> Captions {
        Captions {
            cea608: self.cea608 || other.cea608,
            cea708: self.cea708 || other.cea708,
        }
    }

    /// The services one picture's `cc_data` triplets carry. Bytes past the last whole
    /// triplet are ignored: any input is accepted.
    pub fn from_cc_data(cc_data: &[u8]) -> Captions {
        let mut found = Captions::NONE;
        let mut dtvcc = Dtvcc::Continued;
        for triplet in cc_data.chunks_exact(3) {
            let (head, data) = (triplet[0], [triplet[1], triplet[2]]);
            if head & 0x04 == 0 {
                continue; // cc_valid 0: padding
            }
            match head & 0x03 {
                0 | 1 => found.cea608 |= data.iter().any(|b| b & 0x7F != 0),
                cc_type => {
                    if cc_type == 3 {
                        dtvcc = Dtvcc::PacketHeader;
                    }
                    for byte in data {
                        dtvcc = match dtvcc {
                            Dtvcc::PacketHeader => Dtvcc::BlockHeader,
                            Dtvcc::Continued if byte != 0 => {
                                found.cea708 = true;
                                Dtvcc::Continued
                            }
                            // Service number 0 is the null block: the rest is padding. A
                            // block of another service with a size carries caption data.
                            Dtvcc::BlockHeader if byte >> 5 != 0 && byte & 0x1F != 0 => {
                                found.cea708 = true;
                                Dtvcc::Padding
                            }
                            Dtvcc::BlockHeader => Dtvcc::Padding,
                            state => state,
                        };
                    }
                }
            }
        }
        found
    }

    /// Its name in evidence and docs: `cea608`, `cea708`.
    pub fn names(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.cea608 {
            names.push(CEA608);
        }
        if self.cea708 {
            names.push(CEA708);
        }
        names
    }
}

/// The CEA-608 service's name in evidence and measurements.
pub const CEA608: &str = "cea608";
/// The CEA-708 service's name in evidence and measurements.
pub const CEA708: &str = "cea708";
/// Measurement: the share of a segment's pictures that carried CEA-608 captions (0 to 1;
/// over the stream, its mean is the share of the stream's segments' pictures).
pub const CEA608_SHARE: &str = "captions.cea608";
/// Measurement: the share of a segment's pictures that carried CEA-708 captions.
pub const CEA708_SHARE: &str = "captions.cea708";
/// In a `captions` incident's evidence: captions were required and none had been seen.
pub const REQUIRED: &str = "required";

#[cfg(test)]
mod tests {
    use super::*;

    /// A triplet: marker bits, `cc_valid`, `cc_type`, two data bytes.
    fn t(valid: bool, cc_type: u8, a: u8, b: u8) -> [u8; 3] {
        [0xF8 | (u8::from(valid) << 2) | cc_type, a, b]
    }

    fn of(triplets: &[[u8; 3]]) -> Captions {
        Captions::from_cc_data(&triplets.concat())
    }

    #[test]
    fn cea608_pairs_count_and_padding_does_not() {
        // "RCL" (resume caption loading, CC1) with odd parity: 0x94 0x20.
        assert_eq!(
            of(&[t(true, 0, 0x94, 0x20)]),
            Captions {
                cea608: true,
                cea708: false
            }
        );
        // Field 2 counts too.
        assert!(of(&[t(true, 1, 0xC1, 0x80)]).cea608);
        // Null pairs, with and without parity, and invalid triplets are padding.
        assert_eq!(
            of(&[t(true, 0, 0x80, 0x80), t(true, 1, 0, 0)]),
            Captions::NONE
        );
        assert_eq!(of(&[t(false, 0, 0x94, 0x20)]), Captions::NONE);
    }

    #[test]
    fn cea708_needs_a_service_block_that_is_not_null() {
        // Packet start: header (sequence 0, size code 2 = 4 bytes), block header service 1,
        // 2 bytes; then the block's bytes.
        let service1 = [t(true, 3, 0x02, 0x22), t(true, 2, 0x41, 0x42)];
        assert_eq!(
            of(&service1),
            Captions {
                cea608: false,
                cea708: true
            }
        );
        // A packet of nothing but the null block, and invalid triplets of data.
        let null = [t(true, 3, 0x02, 0x00), t(true, 2, 0x00, 0x00)];
        assert_eq!(of(&null), Captions::NONE);
        assert_eq!(of(&[t(false, 3, 0x02, 0x22)]), Captions::NONE);
        // The extended service header (service 7) with a size is data too.
        assert!(of(&[t(true, 3, 0x02, 0xE2), t(true, 2, 0x07, 0x41)]).cea708);
        // The rest of a packet started in an earlier picture: zeros are padding.
        assert_eq!(of(&[t(true, 2, 0x00, 0x00)]), Captions::NONE);
        assert!(of(&[t(true, 2, 0x00, 0x41)]).cea708);
    }

    #[test]
    fn both_services_and_malformed_input() {
        let both = of(&[
            t(true, 0, 0x94, 0x2C),
            t(true, 3, 0x02, 0x21),
            t(true, 2, 0x8C, 0),
        ]);
        assert_eq!(
            both,
            Captions {
                cea608: true,
                cea708: true
            }
        );
        assert_eq!(both.names(), vec![CEA608, CEA708]);
        // A truncated triplet is ignored; empty data is no captions.
        assert_eq!(Captions::from_cc_data(&[0xFC, 0x94]), Captions::NONE);
        assert_eq!(Captions::from_cc_data(&[]), Captions::NONE);
    }
}
