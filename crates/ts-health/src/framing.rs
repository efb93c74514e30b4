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

/// The framing state between pushes: the bytes not yet cut into packets. A packet with a
/// wrong sync byte stays at the front of them, held, until the next packet's sync byte shows
/// whether the framing held; kept as bytes, so that when it did not, the hunt for sync
/// starts inside it whatever pieces the input came in.
#[derive(Debug)]
pub struct Framer {
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    pending_offset: u64,
    state: State,
    /// The packet at the front of `pending` has a wrong sync byte (only while locked).
    holding: bool,
    /// Bytes skipped while out of sync (before the first sync and after losses).
    pub skipped_bytes: u64,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            pending: Vec::new(),
            pending_offset: 0,
            state: State::Hunting { after_loss: false },
            holding: false,
            skipped_bytes: 0,
        }
    }
}

impl Framer {
    /// Cuts what `bytes` completes; `out` gets each packet and sync event.
    pub fn push(&mut self, bytes: &[u8], out: &mut impl FnMut(Framed<'_>)) {
        if self.pending.is_empty() && self.state == State::Locked {
            // The common case, in sync with nothing left over: no copy of the input.
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
    /// input), a held packet is handed on, and what is left is a partial packet (returned
    /// as its length).
    pub fn finish(&mut self, out: &mut impl FnMut(Framed<'_>)) -> usize {
        let pending = std::mem::take(&mut self.pending);
        let mut used = self.cut(&pending, true, out);
        if self.holding {
            self.holding = false;
            if let Some(packet) = pending
                .get(used..used + PACKET_SIZE)
                .and_then(|held| <&[u8; PACKET_SIZE]>::try_from(held).ok())
            {
                out(Framed::Packet {
                    offset: self.pending_offset + used as u64,
                    bytes: packet,
                    sync_error: true,
                });
                used += PACKET_SIZE;
            }
        }
        self.pending_offset += used as u64;
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
                    // The packet to judge: the one after the held one, if one is held.
                    let next = if self.holding { at + PACKET_SIZE } else { at };
                    let Some(packet) = bytes
                        .get(next..next + PACKET_SIZE)
                        .and_then(|p| <&[u8; PACKET_SIZE]>::try_from(p).ok())
                    else {
                        return at;
                    };
                    let offset = self.pending_offset + at as u64;
                    match (self.holding, packet[0] == SYNC_BYTE) {
                        (false, true) => {
                            out(Framed::Packet {
                                offset,
                                bytes: packet,
                                sync_error: false,
                            });
                            at += PACKET_SIZE;
                        }
                        (false, false) => self.holding = true,
                        (true, true) => {
                            self.holding = false;
                            if let Some(held) = bytes
                                .get(at..at + PACKET_SIZE)
                                .and_then(|p| <&[u8; PACKET_SIZE]>::try_from(p).ok())
                            {
                                out(Framed::Packet {
                                    offset,
                                    bytes: held,
                                    sync_error: true,
                                });
                            }
                            at += PACKET_SIZE;
                        }
                        (true, false) => {
                            self.holding = false;
                            out(Framed::SyncLost { offset });
                            self.state = State::Hunting { after_loss: true };
                            // The real packet boundary may be anywhere in the two bad
                            // packets: hunt from just after the first bad sync byte.
                            self.skipped_bytes += 1;
                            at += 1;
                        }
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
