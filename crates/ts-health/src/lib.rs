//! Transport stream health: ETSI TR 101 290 (V1.4.1) priority 1 and 2 errors of an MPEG-TS,
//! as events on the stream's timeline, from the stream's bytes as they arrive.
//!
//! Pure computation: no I/O, no FFmpeg, no threads, no async. Whoever reads the bytes hands
//! them over ([`Analyser::push`]) in pieces of any size, not necessarily packet-aligned;
//! nothing in the input can make it panic (a property test feeds it random and mutated
//! streams), and memory is bounded (per-PID state, one section per PID, and at most
//! [`Config::max_buffered_bytes`] waiting for a PCR).
//!
//! # How the converter uses it
//!
//! The converter reads the input through a custom AVIO context, so that FFmpeg's demuxer
//! and this analyser see the same bytes and the source is read once (a live source cannot
//! be read twice). In the read callback, after the source filled `buf[..n]`:
//!
//! ```
//! use vqa_ts_health::{Analyser, Config, Event};
//! # let buf = [0u8; 0]; let n = 0; let arrival: Option<i64> = None;
//! let mut health = Analyser::new(Config::default())?; // once per input
//! health.push(&buf[..n], arrival); // None for files (PCR time), Some(t) for live sources
//! for event in health.take_events() {
//!     match event {
//!         Event::Error(error) => { /* error.kind, error.pid, error.at, error.detail */ }
//!         Event::Cleared(cleared) => { /* the absence or sync loss that began earlier ended */ }
//!         Event::Splice(cue) => { /* an SCTE-35 cue: cue.command, cue.event_id, cue.pre_roll */ }
//!     }
//! }
//! // At the end of the input: the last events, counters per kind (for /metrics), the
//! // programmes (PMT PIDs, PCR PIDs, stream types), every PID seen, the SCTE-35 PIDs.
//! let report = health.finish();
//! # Ok::<(), vqa_ts_health::ConfigError>(())
//! ```
//!
//! Events come out in stream order, a little behind the bytes: a packet is analysed once
//! its time is known, at the next PCR of the reference PID (every 40 ms or less in a
//! compliant stream), or at once when an arrival time is given. The analyser is cheap next
//! to decoding — about 3 GB/s on one core of the development machine, 50 MB of 8 Mbit/s
//! MPEG-2 in 16 ms (`cargo run --release -p vqa-ts-health --example throughput -- FILE.ts
//! --quiet`) — so the callback can run it inline.
//!
//! # Time
//!
//! Events are on the timeline the rest of vqa uses, microseconds from the start of the
//! input:
//! - **Files** have no wall clock, so the multiplex's own clock is the time: the PCR of the
//!   first PID that carries one, with the bytes between two of its PCRs spread evenly (the
//!   multiplex runs at a constant rate between PCRs, which is what PCR interpolation
//!   assumes); byte 0 is time 0 (the bytes before the first PCR are timed at the first
//!   interval's rate). A PCR step that is not a valid one (backwards, or more than 100 ms,
//!   or flagged by the discontinuity_indicator) is not followed: the bytes are timed at
//!   the last rate, so an erroneous PCR jump does not shift every later event. When the
//!   first PID's PCR stops for a second while another PID carries one (the PMT moved it),
//!   that PID's PCR times the stream from there. This is how
//!   tsduck and the DVB analysers measure a file: "0.5 s without a PAT" means 0.5 s of PCR
//!   time, i.e. of the multiplex as a decoder would play it out. [`Report::pcr_anchor`]
//!   gives the first PCR and its time, so the converter can align this timeline with the
//!   demuxer's PTS-based one if their origins differ.
//! - **Live sources**: the caller may give each piece's arrival time on the stream's
//!   timeline; the packets completed by that piece get it (kept monotonic), and the
//!   PCR is then only checked, not used for time.
//!
//! An absence (PAT or PMT over 0.5 s, a referenced PID over 5 s, PCR over 40 ms, PTS over
//! 700 ms) is reported once, at the moment the limit was passed (last occurrence + limit),
//! as soon as a later packet shows it has passed, and a [`Cleared`] event follows when the
//! table, PID, PCR or PTS comes back; TS_sync_loss is cleared when sync is regained. The
//! end of the input is not an absence: the packets after the last PCR, whose times can
//! only be extrapolated, are checked for everything else (FFmpeg's muxer, for one, flushes
//! the audio it held for interleaving there, tens of ms past the last PCR).
//!
//! # What is checked
//!
//! Priority 1: TS_sync_loss (2 consecutive bad sync bytes; 5 good ones regain sync),
//! Sync_byte_error, PAT_error (missing > 0.5 s, another table_id on PID 0, scrambled),
//! Continuity_count_error (lost or reordered packets, a packet sent more than twice;
//! one duplicate, the discontinuity_indicator and adaptation-field-only packets are
//! allowed), PMT_error (each programme's PMT missing > 0.5 s, a table_id on its PID that is
//! neither a PMT nor a private section, scrambled), PID_error (a PID a PMT refers to,
//! elementary or PCR, absent > 5 s by default). Priority 2: Transport_error (TEI),
//! CRC_error (every section with a CRC_32: PAT, CAT, PMT, NIT, SDT/BAT, EIT, TOT, SCTE-35,
//! private sections), PCR_repetition_error (> 40 ms on a programme's PCR PID),
//! PCR_discontinuity_indicator_error (> 100 ms or backwards without the flag), PTS_error
//! (> 700 ms between PTSs on a PID that carries them), CAT_error (scrambled packets and no
//! CAT, or another table_id on PID 1).
//!
//! SCTE-35: each splice_info_section on a PID a PMT declares as SCTE-35 (stream_type 0x86)
//! whose CRC is intact is decoded ([`scte35`]) into an [`Event::Splice`]: the command
//! (splice_insert, time_signal, splice_null, ...), the event id, out of or back into the
//! network (splice_insert's flag, or the segmentation descriptor's type), the break's
//! duration and the pre-roll (the splice time, plus `pts_adjustment`, against the
//! programme's PCR when the section arrived).
//!
//! Not checked: **PCR_accuracy_error** (2.4, ±500 ns). Measuring it needs the time each
//! PCR byte arrived: on a file that is only known by assuming a constant bitrate, which
//! is the PCR interpolation itself (the check would measure its own assumption), and the
//! arrival times a live source gives are those of the network reads, milliseconds coarse.
//! 188-byte packets only (no 192-byte M2TS or 204-byte packets with Reed-Solomon bytes:
//! those lose sync). Packets with TEI set are counted and their continuity counter
//! tracked, but their content is not read.
//!
//! # Why this crate parses the packets itself
//!
//! The Rust TS parsers on crates.io were evaluated (November 2026) against what TR 101 290
//! needs — every anomaly surfaced as data rather than dropped, byte-unaligned incremental
//! input with resynchronisation, continuity counters, PCR and adaptation fields, CRC
//! failures, and no panic on corrupt input:
//! - `mpeg2ts-reader` (MIT/Apache-2.0, maintained; zero-copy `Packet` with continuity
//!   counter, adaptation field and PCR): its `Demultiplex::push` takes whole 188-byte
//!   packets only (`chunks_exact`: a trailing partial packet is ignored) and stops at the
//!   first bad sync byte with no resync; packets with TEI or scrambling are dropped with a
//!   `log::warn!`, and sections failing their CRC or with an unexpected table_id are
//!   discarded with a warning: exactly the events we must report never reach the caller.
//!   Only its packet-header view would be usable, and that is the easy 50 lines.
//! - `mpeg2ts` (MIT): a blocking `io::Read` reader that returns an error (and stops) on a
//!   PID it does not know and on malformed packets, assumes PSI in one packet, and checks
//!   no continuity.
//! - `mpeg-ts` (MIT/Apache-2.0, from the rust-dvb project): packet, PCR and section
//!   reassembly with resync, but young and changing fast (0.1 to 0.7 within months,
//!   current versions need Rust 1.95 against the workspace's 1.85), and its reassembler
//!   does not say which sections failed their CRC.
//! - `oxideav-mpegts`, `ts-fix`: a remux demuxer and a repair tool, 0.x, with their own
//!   policies on what to drop or rewrite.
//!
//! TS packet and PSI section parsing is small (a packet header, an adaptation field, a
//! section assembler, a table-driven CRC, PAT/PMT bodies: a few hundred lines here, unit
//! tested), while the framing, continuity and timing rules are TR 101 290's own and have
//! to be written in any case. Writing it keeps every anomaly visible, the input path
//! copy-light, and the crate free of dependencies beyond vqa-core, serde and thiserror.

mod analyser;
mod clock;
mod framing;
mod model;
mod packet;
mod psi;
pub mod scte35;

pub use analyser::Analyser;
pub use model::{
    Cleared, Config, ConfigError, Counters, ElementaryStream, ErrorKind, Event, PcrAnchor,
    Priority, Programme, Report, Tr101290Error, SCTE35_STREAM_TYPE,
};
pub use packet::{PACKET_SIZE, SYNC_BYTE};
pub use psi::crc32_mpeg2;
