//! Cutting a byte stream that arrives in arbitrary pieces into 188-byte packets, with TR 101
//! 290's synchronisation rules (§5.2.1, 1.1 and 1.2): sync is acquired after 5 consecutive
//! sync bytes 188 bytes apart and lost after 2 consecutive corrupted ones.

use crate::packet::{PACKET_SIZE, SYNC_BYTE};

/// Sync bytes in a row, 188 bytes apart, that (re)acquire synchronisation.
pub const ACQUIRE: usize = 5;

/// What framing hands on, in stream order, each at its byte offset from the start of the
/// input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed<'a> {
    /// A packet. `sync_error`: its sync byte was wrong but the next packet's was right, so
    /// the framing held and only this byte is known to be damaged (Sync_byte_error).
    Packet {
        offset: u64,
        bytes: &'a [u8; PACKET_SIZE],
        sync_error: bool,
    },
    /// Two consecutive packets' sync bytes were wrong (TS_sync_loss), at the first.
    SyncLost { offset: u64 },
    /// Synchronisation acquired again after a loss, at the first packet of the new run.
    SyncRegained { offset: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for 5 sync bytes in a row; `after_loss` is false before the first sync.
    Hunting {
        after_loss: bool,
    },
    Locked,
}

/// The framing state between pushes: the bytes not yet cut into packets, and a packet with
/// a wrong sync byte held until the next one shows whether the framing held.
#[derive(Debug)]
pub struct Framer {
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    pending_offset: u64,
    state: State,
    held: Option<(u64, [u8; PACKET_SIZE])>,
    /// Bytes skipped while out of sync (before the first sync and after losses).
    pub skipped_bytes: u64,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            pending: Vec::new(),
            pending_offset: 0,
            state: State::Hunting { after_loss: false },
            held: None,
            skipped_bytes: 0,
        }
    }
}

impl Framer {
    /// Cuts what `bytes` completes; `out` gets each packet and sync event.
    pub fn push(&mut self, bytes: &[u8], out: &mut impl FnMut(Framed<'_>)) {
        if self.pending.is_empty() && self.state == State::Locked && self.held.is_none() {
            // The common case, packet-aligned and in sync: no copy of the input.
            let used = self.cut(bytes, false, out);
            self.pending_offset += used as u64;
            self.pending.extend_from_slice(&bytes[used..]);
            return;
        }
        self.pending.extend_from_slice(bytes);
        let pending = std::mem::take(&mut self.pending);
        let used = self.cut(&pending, false, out);
        self.pending = pending;
        self.pending.drain(..used);
        self.pending_offset += used as u64;
    }

    /// At the end of the input: sync may be acquired on fewer than 5 packets (a short
    /// input), a held packet is reported, and what is left is a partial packet (returned as
    /// its length).
    pub fn finish(&mut self, out: &mut impl FnMut(Framed<'_>)) -> usize {
        let pending = std::mem::take(&mut self.pending);
        let used = self.cut(&pending, true, out);
        self.pending_offset += used as u64;
        if let Some((offset, bytes)) = self.held.take() {
            out(Framed::Packet {
                offset,
                bytes: &bytes,
                sync_error: true,
            });
        }
        pending.len() - used
    }

    /// Cuts packets from `bytes` (which starts at `self.pending_offset`); returns how many
    /// bytes it used. Stops where it needs more bytes to decide.
    fn cut(&mut self, bytes: &[u8], at_end: bool, out: &mut impl FnMut(Framed<'_>)) -> usize {
        let mut at = 0usize;
        loop {
            match self.state {
                State::Hunting { after_loss } => match find_sync(&bytes[at..], at_end) {
                    SyncSearch::Found(found) => {
                        self.skipped_bytes += found as u64;
                        at += found;
                        self.state = State::Locked;
                        if after_loss {
                            out(Framed::SyncRegained {
                                offset: self.pending_offset + at as u64,
                            });
                        }
                    }
                    SyncSearch::Wait(from) => {
                        self.skipped_bytes += from as u64;
                        return at + from;
                    }
                    SyncSearch::None => {
                        self.skipped_bytes += (bytes.len() - at) as u64;
                        return bytes.len();
                    }
                },
                State::Locked => {
                    let Some(chunk) = bytes.get(at..at + PACKET_SIZE) else {
                        return at;
                    };
                    let Ok(packet) = <&[u8; PACKET_SIZE]>::try_from(chunk) else {
                        return at;
                    };
                    let offset = self.pending_offset + at as u64;
                    if packet[0] == SYNC_BYTE {
                        if let Some((held_offset, held)) = self.held.take() {
                            out(Framed::Packet {
                                offset: held_offset,
                                bytes: &held,
                                sync_error: true,
                            });
                        }
                        out(Framed::Packet {
                            offset,
                            bytes: packet,
                            sync_error: false,
                        });
                        at += PACKET_SIZE;
                    } else if let Some((held_offset, _)) = self.held.take() {
                        out(Framed::SyncLost {
                            offset: held_offset,
                        });
                        self.state = State::Hunting { after_loss: true };
                        // Hunt from just after the first bad sync byte: the real packet
                        // boundary may be anywhere in the two bad packets. When the first
                        // came in an earlier push its bytes are gone; hunt from the second.
                        at = match held_offset.checked_sub(self.pending_offset) {
                            Some(held_at) => held_at as usize + 1,
                            None => at + 1,
                        };
                    } else {
                        self.held = Some((offset, *packet));
                        at += PACKET_SIZE;
                    }
                }
            }
        }
    }
}

/// What a search for sync found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncSearch {
    /// A run of [`ACQUIRE`] sync bytes starts here.
    Found(usize),
    /// A run may start here but the bytes end before it is complete: wait for more.
    Wait(usize),
    /// No run can start in these bytes.
    None,
}

/// Where, in `bytes`, the first run of [`ACQUIRE`] sync bytes 188 apart starts. At the end
/// of the input a shorter run that reaches the end counts (an input of fewer than 5
/// packets), provided it holds at least one whole packet.
fn find_sync(bytes: &[u8], at_end: bool) -> SyncSearch {
    let mut start = 0;
    while let Some(found) = bytes[start..].iter().position(|&b| b == SYNC_BYTE) {
        let candidate = start + found;
        let mut run = 0;
        loop {
            match bytes.get(candidate + run * PACKET_SIZE) {
                Some(&SYNC_BYTE) => {
                    run += 1;
                    if run == ACQUIRE {
                        return SyncSearch::Found(candidate);
                    }
                }
                Some(_) => break,
                None if !at_end => return SyncSearch::Wait(candidate),
                None if candidate + PACKET_SIZE <= bytes.len() => {
                    return SyncSearch::Found(candidate)
                }
                None => return SyncSearch::None,
            }
        }
        start = candidate + 1;
    }
    SyncSearch::None
}
