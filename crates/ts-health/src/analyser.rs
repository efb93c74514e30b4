//! The checks: each packet, timed, against TR 101 290's priority 1 and 2 rules.

use std::collections::BTreeMap;

use vqa_core::Micros;

use crate::clock::{Clock, Mapping};
use crate::framing::{Framed, Framer};
use crate::model::{
    Cleared, Config, ConfigError, Counters, ElementaryStream, ErrorKind, Event, PcrAnchor,
    Programme, Report, Tr101290Error, SCTE35_STREAM_TYPE,
};
use crate::packet::{pcr_delta, Header, NULL_PID, PACKET_SIZE, PCR_TICKS_PER_MICRO};
use crate::psi::{self, SectionAssembler, SyntaxHeader};
use crate::scte35;

const PID_COUNT: usize = 0x2000;
const PAT_PID: u16 = 0x0000;
const CAT_PID: u16 = 0x0001;
/// DVB's SI PIDs (NIT, SDT/BAT, EIT, RST, TDT/TOT): sections whose CRCs are checked.
const SI_PIDS: std::ops::RangeInclusive<u16> = 0x0010..=0x0014;
/// stream_type 0x05: private sections, which carry CRCs when long-form.
const PRIVATE_SECTIONS_STREAM_TYPE: u8 = 0x05;

/// What a PID carries, as far as the checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Role {
    #[default]
    Unknown,
    Pat,
    Cat,
    Pmt,
    /// Sections whose CRCs are checked (SI, NIT, SCTE-35, private sections).
    Sections,
    /// PES: its PTSs are watched.
    Pes,
}

/// Per-PID state, for the PIDs seen or referenced: a slot per PID in a flat table (a lookup
/// per packet must be cheap), the states themselves allocated only for PIDs in use, so an
/// analyser holds kilobytes, not a state for each of 8192 PIDs (the monitor keeps one per
/// stream).
#[derive(Debug)]
struct PidTable {
    slots: Box<[u16; PID_COUNT]>,
    states: Vec<(u16, PidState)>,
}

impl PidTable {
    const NONE: u16 = u16::MAX;

    fn new() -> PidTable {
        PidTable {
            slots: Box::new([Self::NONE; PID_COUNT]),
            states: Vec::new(),
        }
    }

    /// The PID's state, created on first use.
    fn get_mut(&mut self, pid: u16) -> &mut PidState {
        let pid = pid & 0x1FFF;
        let slot = &mut self.slots[usize::from(pid)];
        if *slot == Self::NONE {
            // At most 8192 states: their index fits below NONE.
            *slot = self.states.len() as u16;
            self.states.push((pid, PidState::default()));
        }
        &mut self.states[usize::from(*slot)].1
    }

    fn get(&self, pid: u16) -> Option<&PidState> {
        let slot = *self.slots.get(usize::from(pid))?;
        self.states.get(usize::from(slot)).map(|(_, state)| state)
    }
}

#[derive(Debug, Default)]
struct PidState {
    role: Role,
    packets: u64,
    last_seen: Option<Micros>,
    // Continuity.
    cc: Option<u8>,
    duplicates: u8,
    last_payload: Vec<u8>,
    // Sections.
    sections: SectionAssembler,
    // PID_error: `Some` while a PMT refers to this PID (since when).
    referenced_since: Option<Micros>,
    missing: bool,
    // PCR: declared a PCR PID by a PMT; the last PCR's time and value.
    pcr_pid: bool,
    last_pcr: Option<(Micros, u64)>,
    pcr_late: bool,
    // PTS.
    last_pts: Option<Micros>,
    pts_late: bool,
    // CAT_error reported for this PID's scrambled packets.
    scrambled_reported: bool,
    /// In `Analyser::watched`.
    watched: bool,
}

#[derive(Debug)]
struct ProgrammeState {
    number: u16,
    pmt_pid: u16,
    /// When the PAT announced it: the PMT deadline runs from here until the first PMT.
    since: Micros,
    last_pmt: Option<Micros>,
    missing: bool,
    pcr_pid: Option<u16>,
    streams: Vec<ElementaryStream>,
}

/// A packet or sync event waiting for its time (the next PCR), with its offset.
#[derive(Debug)]
struct Queued {
    offset: u64,
    arrival: Option<Micros>,
    item: QueuedItem,
}

#[derive(Debug)]
enum QueuedItem {
    Packet {
        bytes: [u8; PACKET_SIZE],
        sync_error: bool,
    },
    SyncLost,
    SyncRegained,
}

/// The TR 101 290 analyser: push the transport stream's bytes as they arrive, take the
/// events, finish at the end of the input. See the crate documentation.
#[derive(Debug)]
pub struct Analyser {
    config: Config,
    framer: Framer,
    clock: Clock,
    /// The PID whose PCR times the stream (the first that carried one).
    reference_pid: Option<u16>,
    /// Where the timeline was first anchored to a PCR.
    pcr_anchor: Option<PcrAnchor>,
    queue: Vec<Queued>,
    /// Items at the front of `queue` already looked at for PCR anchors.
    scanned: usize,
    /// The time given to the last item: the timeline never goes backwards.
    now: Micros,
    events: Vec<Event>,
    counters: Counters,
    pids: PidTable,
    /// PIDs with a deadline of their own (referenced, PCR, PTS), so a deadline check
    /// does not walk all 8192.
    watched: Vec<u16>,
    programmes: Vec<ProgrammeState>,
    /// PAT sections of the current version by section_number: (program_number, PID) each.
    pat_sections: BTreeMap<u8, Vec<(u16, u16)>>,
    pat_version: Option<u8>,
    last_pat: Micros,
    pat_missing: bool,
    cat_seen: bool,
    /// No deadline can have passed before this time: the per-packet check is one compare.
    next_deadline: Micros,
    /// Analysing the packets after the reference PID's last PCR at the end of the input:
    /// their times are extrapolated, and the end of the input is not an absence.
    at_end: bool,
    /// An item has been analysed (the deadlines run from the first one's time).
    started: bool,
}

impl Analyser {
    pub fn new(config: Config) -> Result<Analyser, ConfigError> {
        config.validate()?;
        let mut pids = PidTable::new();
        pids.get_mut(PAT_PID).role = Role::Pat;
        pids.get_mut(CAT_PID).role = Role::Cat;
        for pid in SI_PIDS {
            pids.get_mut(pid).role = Role::Sections;
        }
        Ok(Analyser {
            clock: Clock::new(config.pcr_discontinuity),
            next_deadline: config.section_interval,
            config,
            framer: Framer::default(),
            reference_pid: None,
            pcr_anchor: None,
            queue: Vec::new(),
            scanned: 0,
            now: 0,
            events: Vec::new(),
            counters: Counters::default(),
            pids,
            watched: Vec::new(),
            programmes: Vec::new(),
            pat_sections: BTreeMap::new(),
            pat_version: None,
            last_pat: 0,
            pat_missing: false,
            cat_seen: false,
            at_end: false,
            started: false,
        })
    }

    /// Takes the next bytes of the stream, in any pieces. `arrival`: when they arrived, on
    /// the stream's timeline, for a live source; `None` to time them by the PCR. Packets
    /// are analysed once their time is known — at the reference PID's next PCR (tens of ms
    /// later), at once when `arrival` is given.
    pub fn push(&mut self, bytes: &[u8], arrival: Option<Micros>) {
        self.counters.bytes += bytes.len() as u64;
        let queue = &mut self.queue;
        self.framer
            .push(bytes, &mut |framed| queue.push(queued(framed, arrival)));
        self.counters.skipped_bytes = self.framer.skipped_bytes;
        self.analyse_timed();
        let buffered = self.queue.len() * PACKET_SIZE;
        if arrival.is_some() || buffered > self.config.max_buffered_bytes {
            self.analyse_all(self.clock.extrapolation());
        }
    }

    /// The events since the last call, in stream order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The programmes the PAT lists, with what their PMTs say.
    pub fn programmes(&self) -> Vec<Programme> {
        self.programmes
            .iter()
            .map(|p| Programme {
                number: p.number,
                pmt_pid: p.pmt_pid,
                pcr_pid: p.pcr_pid,
                streams: p.streams.clone(),
            })
            .collect()
    }

    /// Every PID seen so far, with its packet count, by PID.
    pub fn pids(&self) -> Vec<(u16, u64)> {
        let mut pids: Vec<(u16, u64)> = self
            .pids
            .states
            .iter()
            .filter(|(_, state)| state.packets > 0)
            .map(|(pid, state)| (*pid, state.packets))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// PIDs that PMTs declare as SCTE-35 (stream_type 0x86), for the SCTE-35 decoder.
    pub fn scte35_pids(&self) -> Vec<u16> {
        let mut pids: Vec<u16> = self
            .programmes
            .iter()
            .flat_map(|p| p.streams.iter().filter(|s| s.is_scte35()).map(|s| s.pid))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The end of the input: what is still waiting for a PCR is timed at the last rate and
    /// analysed, for everything but absences. Those packets' times are a guess, and what a
    /// muxer flushes at the end (FFmpeg: the audio it held for interleaving, tens of ms
    /// after the last PCR) is no PCR or PTS that went missing: TR 101 290 measures those
    /// between two occurrences.
    pub fn finish(mut self) -> Report {
        let queue = &mut self.queue;
        let trailing_bytes = self
            .framer
            .finish(&mut |framed| queue.push(queued(framed, None)));
        self.analyse_timed();
        self.at_end = true;
        self.analyse_all(self.clock.extrapolation());
        self.counters.skipped_bytes = self.framer.skipped_bytes;
        let pids = self.pids();
        Report {
            programmes: self.programmes(),
            scte35_pids: self.scte35_pids(),
            pcr_anchor: self.pcr_anchor,
            events: std::mem::take(&mut self.events),
            counters: self.counters,
            pids,
            trailing_bytes,
        }
    }

    /// Looks through the newly queued items for the reference PID's PCRs; each one that
    /// times the items before it lets them be analysed.
    fn analyse_timed(&mut self) {
        while self.scanned < self.queue.len() {
            let index = self.scanned;
            self.scanned += 1;
            let Queued {
                offset,
                item:
                    QueuedItem::Packet {
                        bytes,
                        sync_error: false,
                    },
                ..
            } = &self.queue[index]
            else {
                continue;
            };
            let offset = *offset;
            let header = Header::parse(bytes);
            let Some(pcr) = header.pcr.filter(|_| !header.transport_error) else {
                continue;
            };
            let reference = *self.reference_pid.get_or_insert(header.pid);
            let mut discontinuity = header.discontinuity;
            if header.pid != reference {
                // The reference's PCR stopped (its PID gone, or the PMT moved the PCR to
                // another): once it has been silent for a while, time by this PID's PCR,
                // as a new clock.
                if !self.clock.silent_since(offset) {
                    continue;
                }
                self.reference_pid = Some(header.pid);
                discontinuity = true;
            }
            if let Some(mapping) = self.clock.anchor(offset, pcr, discontinuity) {
                if let (None, Some((pcr, at))) = (self.pcr_anchor, self.clock.first) {
                    self.pcr_anchor = Some(PcrAnchor {
                        pid: header.pid,
                        pcr,
                        at,
                    });
                }
                self.analyse_front(index + 1, mapping);
            }
        }
    }

    fn analyse_all(&mut self, mapping: Mapping) {
        self.analyse_front(self.queue.len(), mapping);
    }

    /// Times the first `count` queued items with `mapping` (or their arrival) and analyses
    /// them.
    fn analyse_front(&mut self, count: usize, mapping: Mapping) {
        let mut queue = std::mem::take(&mut self.queue);
        for queued in &queue[..count] {
            let time = queued.arrival.unwrap_or_else(|| mapping.at(queued.offset));
            self.now = self.now.max(time);
            let now = self.now;
            if !self.started {
                // The PAT is due within the interval from the first packet, which is not
                // time 0 when arrival times are given.
                self.started = true;
                self.last_pat = now;
                self.next_deadline = now.saturating_add(self.config.section_interval);
            }
            // Absences that passed before this item come first: events stay in order.
            self.check_deadlines(now);
            match &queued.item {
                QueuedItem::Packet { bytes, sync_error } => self.packet(now, bytes, *sync_error),
                QueuedItem::SyncLost => {
                    self.error(
                        ErrorKind::TsSyncLoss,
                        None,
                        now,
                        "two consecutive packets without the 0x47 sync byte".to_string(),
                    );
                }
                QueuedItem::SyncRegained => self.cleared(ErrorKind::TsSyncLoss, None, now),
            }
        }
        queue.drain(..count);
        self.scanned -= count.min(self.scanned);
        self.queue = queue;
    }

    fn error(&mut self, kind: ErrorKind, pid: Option<u16>, at: Micros, detail: String) {
        self.counters.count(kind);
        self.events.push(Event::Error(Tr101290Error {
            kind,
            priority: kind.priority(),
            pid,
            at,
            detail,
        }));
    }

    fn cleared(&mut self, kind: ErrorKind, pid: Option<u16>, at: Micros) {
        self.events.push(Event::Cleared(Cleared { kind, pid, at }));
    }

    /// Brings the next deadline check forward to `deadline` if it is sooner.
    fn watch_until(&mut self, deadline: Micros) {
        self.next_deadline = self.next_deadline.min(deadline);
    }

    fn watch_pid(&mut self, pid: u16) {
        let state = self.pids.get_mut(pid);
        if !state.watched {
            state.watched = true;
            self.watched.push(pid);
        }
    }

    fn packet(&mut self, now: Micros, bytes: &[u8; PACKET_SIZE], sync_error: bool) {
        self.counters.packets += 1;
        if sync_error {
            self.error(
                ErrorKind::SyncByte,
                None,
                now,
                format!("sync byte {:#04x} instead of 0x47", bytes[0]),
            );
        }
        let header = Header::parse(bytes);
        let pid = header.pid;
        let state = self.pids.get_mut(pid);
        state.packets += 1;
        state.last_seen = Some(now);
        if state.missing {
            state.missing = false;
            self.watch_until(now.saturating_add(self.config.pid_absence));
            self.cleared(ErrorKind::Pid, Some(pid), now);
        }
        if header.transport_error {
            self.error(
                ErrorKind::Transport,
                Some(pid),
                now,
                "transport_error_indicator set".to_string(),
            );
        }
        if pid == NULL_PID {
            return;
        }
        if header.scrambling != 0 {
            self.scrambled(pid, now, header.scrambling);
        }
        let continuity = self.continuity(pid, &header, bytes, now);
        if continuity == Continuity::Repeat || header.transport_error {
            return;
        }
        if continuity == Continuity::Broken {
            self.pids.get_mut(pid).sections.reset();
        }
        if let Some(pcr) = header.pcr {
            self.pcr(pid, pcr, header.discontinuity, now);
        }
        if header.scrambling != 0 {
            return;
        }
        let payload = header.payload(bytes);
        if payload.is_empty() {
            return;
        }
        match self.pids.get_mut(pid).role {
            Role::Unknown => {}
            Role::Pes => {
                if header.payload_unit_start {
                    self.pes_start(pid, payload, now);
                }
            }
            Role::Pat | Role::Cat | Role::Pmt | Role::Sections => {
                let mut assembler = std::mem::take(&mut self.pids.get_mut(pid).sections);
                assembler.push(payload, header.payload_unit_start, |section| {
                    self.section(pid, section, now)
                });
                self.pids.get_mut(pid).sections = assembler;
            }
        }
    }

    fn scrambled(&mut self, pid: u16, now: Micros, scrambling: u8) {
        let detail = |table: &str| {
            format!("{table} packet scrambled (transport_scrambling_control {scrambling:#04b})")
        };
        match self.pids.get_mut(pid).role {
            Role::Pat => self.error(ErrorKind::Pat, Some(pid), now, detail("PAT")),
            Role::Pmt => self.error(ErrorKind::Pmt, Some(pid), now, detail("PMT")),
            _ => {}
        }
        let state = self.pids.get_mut(pid);
        if !self.cat_seen && !state.scrambled_reported {
            state.scrambled_reported = true;
            self.error(
                ErrorKind::Cat,
                Some(pid),
                now,
                "scrambled packets but no CAT".to_string(),
            );
        }
    }

    /// Continuity_count_error (1.4), with 13818-1's allowances: one duplicate of a packet
    /// (same counter, same payload), any counter after a discontinuity_indicator, and no
    /// increment on packets without payload. Those are not checked at all: their counter
    /// carries no information about lost payload, and some muxers increment it anyway.
    fn continuity(
        &mut self,
        pid: u16,
        header: &Header,
        bytes: &[u8; PACKET_SIZE],
        now: Micros,
    ) -> Continuity {
        let state = self.pids.get_mut(pid);
        let cc = header.continuity_counter;
        let payload = header.payload(bytes);
        let previous = match state.cc {
            Some(previous) if !header.discontinuity => previous,
            _ => {
                // The first packet, or a discontinuity: any counter goes. On a packet
                // without payload (a PCR-only packet announcing a discontinuity) the next
                // payload packet's counter is the new start.
                let starts = header.has_payload || state.cc.is_none() && !header.discontinuity;
                state.cc = starts.then_some(cc);
                state.duplicates = 0;
                state.last_payload.clear();
                state.last_payload.extend_from_slice(payload);
                return Continuity::Next;
            }
        };
        if !header.has_payload {
            return Continuity::Next;
        }
        let (outcome, detail) = if cc == previous {
            if state.duplicates == 0 && state.last_payload == payload {
                state.duplicates = 1;
                return Continuity::Repeat;
            }
            let detail = if state.last_payload == payload {
                format!("continuity counter {cc} and its packet sent more than twice")
            } else {
                format!("continuity counter {cc} repeated with a different payload")
            };
            (Continuity::Repeat, detail)
        } else if cc == (previous + 1) & 0x0F {
            state.cc = Some(cc);
            state.duplicates = 0;
            state.last_payload.clear();
            state.last_payload.extend_from_slice(payload);
            return Continuity::Next;
        } else {
            let lost = (cc + 16 - previous - 1) & 0x0F;
            let detail = format!(
                "continuity counter {cc} after {previous}: {lost} packet(s) lost or out of order"
            );
            state.cc = Some(cc);
            state.duplicates = 0;
            state.last_payload.clear();
            state.last_payload.extend_from_slice(payload);
            (Continuity::Broken, detail)
        };
        self.error(ErrorKind::ContinuityCount, Some(pid), now, detail);
        outcome
    }

    /// PCR_discontinuity_indicator_error (2.3b) on a programme's PCR PID, and the PCR's
    /// time for PCR_repetition_error (2.3a).
    fn pcr(&mut self, pid: u16, pcr: u64, discontinuity: bool, now: Micros) {
        let limit = self.config.pcr_discontinuity;
        let repetition = self.config.pcr_repetition;
        let state = self.pids.get_mut(pid);
        let previous = state.last_pcr.replace((now, pcr));
        if !state.pcr_pid {
            return;
        }
        if state.pcr_late {
            state.pcr_late = false;
            self.cleared(ErrorKind::PcrRepetition, Some(pid), now);
        }
        self.watch_until(now.saturating_add(repetition));
        let Some((_, previous)) = previous else {
            return;
        };
        let step = pcr_delta(previous, pcr);
        let max = limit.saturating_mul(PCR_TICKS_PER_MICRO as i64);
        if !discontinuity && !(0..=max).contains(&step) {
            self.error(
                ErrorKind::PcrDiscontinuityIndicator,
                Some(pid),
                now,
                format!(
                    "PCR moved by {:.1} ms without the discontinuity_indicator",
                    step as f64 / 27_000.0
                ),
            );
        }
    }

    /// A PES packet starts: does it carry a PTS (for PTS_error, 2.5)?
    fn pes_start(&mut self, pid: u16, payload: &[u8], now: Micros) {
        let [0, 0, 1, stream_id, _, _, flags1, flags2, ..] = *payload else {
            return;
        };
        // Streams without the optional PES header (13818-1 Table 2-21's exceptions).
        if matches!(
            stream_id,
            0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
        ) {
            return;
        }
        if flags1 & 0xC0 != 0x80 || flags2 & 0x80 == 0 {
            return;
        }
        let state = self.pids.get_mut(pid);
        let first = state.last_pts.replace(now).is_none();
        if state.pts_late {
            state.pts_late = false;
            self.cleared(ErrorKind::Pts, Some(pid), now);
        }
        if first {
            self.watch_pid(pid);
        }
        self.watch_until(now.saturating_add(self.config.pts_repetition));
    }

    fn section(&mut self, pid: u16, section: &[u8], now: Micros) {
        let table_id = section[0];
        if psi::has_crc(section) && psi::crc32_mpeg2(section) != 0 {
            self.error(
                ErrorKind::Crc,
                Some(pid),
                now,
                format!("section with table_id {table_id:#04x} fails its CRC_32"),
            );
            return;
        }
        match self.pids.get_mut(pid).role {
            Role::Pat if table_id != 0x00 => self.error(
                ErrorKind::Pat,
                Some(pid),
                now,
                format!("section with table_id {table_id:#04x} on PID 0 (a PAT is 0x00)"),
            ),
            Role::Pat => self.pat(section, now),
            Role::Cat if table_id != 0x01 => self.error(
                ErrorKind::Cat,
                Some(pid),
                now,
                format!("section with table_id {table_id:#04x} on PID 1 (a CAT is 0x01)"),
            ),
            Role::Cat => self.cat_seen = true,
            Role::Pmt if table_id == 0x02 => self.pmt(pid, section, now),
            // 13818-1 lets a PMT PID carry private sections (0x40–0xFE) beside the PMT.
            Role::Pmt if !(0x40..=0xFE).contains(&table_id) => self.error(
                ErrorKind::Pmt,
                Some(pid),
                now,
                format!("section with table_id {table_id:#04x} on a PMT PID (a PMT is 0x02)"),
            ),
            Role::Sections if table_id == scte35::SPLICE_INFO_TABLE_ID => {
                self.splice(pid, section, now)
            }
            _ => {}
        }
    }

    /// A splice_info_section on a PID a PMT declares as SCTE-35: decoded, with its splice
    /// time against the programme's clock (its PCR, carried forward to `now`).
    fn splice(&mut self, pid: u16, section: &[u8], now: Micros) {
        let Some(programme) = self
            .programmes
            .iter()
            .find(|p| p.streams.iter().any(|s| s.pid == pid && s.is_scte35()))
        else {
            return;
        };
        let Some(info) = scte35::decode(section) else {
            return;
        };
        let clock = programme
            .pcr_pid
            .and_then(|pcr_pid| self.pids.get(pcr_pid)?.last_pcr)
            .map(|(at, pcr)| {
                let since = u64::try_from(now.saturating_sub(at)).unwrap_or(0);
                (pcr / 300 + since * 9 / 100) % (1 << 33)
            });
        self.counters.splice_cues += 1;
        self.events.push(Event::Splice(info.cue(now, pid, clock)));
    }

    fn pat(&mut self, section: &[u8], now: Micros) {
        let Some(header) = SyntaxHeader::parse(section) else {
            return;
        };
        self.last_pat = now;
        if self.pat_missing {
            self.pat_missing = false;
            self.cleared(ErrorKind::Pat, Some(PAT_PID), now);
        }
        self.watch_until(now.saturating_add(self.config.section_interval));
        if !header.current {
            return;
        }
        if self.pat_version != Some(header.version) {
            self.pat_version = Some(header.version);
            self.pat_sections.clear();
        }
        let entries: Vec<(u16, u16)> = psi::pat_entries(section).collect();
        if self.pat_sections.get(&header.section_number) == Some(&entries) {
            return;
        }
        self.pat_sections.insert(header.section_number, entries);
        let listed: Vec<(u16, u16)> = self
            .pat_sections
            .values()
            .flatten()
            .copied()
            .filter(|&(number, _)| number != 0)
            .collect();
        self.programmes
            .retain(|p| listed.contains(&(p.number, p.pmt_pid)));
        for (number, pmt_pid) in listed {
            if !self.programmes.iter().any(|p| p.number == number) {
                self.programmes.push(ProgrammeState {
                    number,
                    pmt_pid,
                    since: now,
                    last_pmt: None,
                    missing: false,
                    pcr_pid: None,
                    streams: Vec::new(),
                });
            }
        }
        self.programmes.sort_by_key(|p| p.number);
        self.tables_changed(now);
    }

    fn pmt(&mut self, pid: u16, section: &[u8], now: Micros) {
        let Some(header) = SyntaxHeader::parse(section) else {
            return;
        };
        let Some(index) = self
            .programmes
            .iter()
            .position(|p| p.number == header.extension && p.pmt_pid == pid)
        else {
            return;
        };
        let programme = &mut self.programmes[index];
        programme.last_pmt = Some(now);
        let was_missing = std::mem::take(&mut programme.missing);
        if was_missing {
            self.cleared(ErrorKind::Pmt, Some(pid), now);
        }
        self.watch_until(now.saturating_add(self.config.section_interval));
        if !header.current {
            return;
        }
        let Some(body) = psi::pmt_body(section) else {
            return;
        };
        let pcr_pid = (body.pcr_pid != NULL_PID).then_some(body.pcr_pid);
        let streams: Vec<ElementaryStream> = body
            .streams
            .iter()
            .map(|&(stream_type, pid)| ElementaryStream { pid, stream_type })
            .collect();
        let programme = &mut self.programmes[index];
        if programme.pcr_pid == pcr_pid && programme.streams == streams {
            return;
        }
        programme.pcr_pid = pcr_pid;
        programme.streams = streams;
        self.tables_changed(now);
    }

    /// The PAT or a PMT changed: which PIDs carry what, which are referenced, which are
    /// PCR PIDs. One pass over the PID table and one over the tables, whatever their size.
    fn tables_changed(&mut self, now: Micros) {
        #[derive(Clone, Copy, Default)]
        struct Listed {
            role: Option<Role>,
            referenced: bool,
            pcr: bool,
        }
        let mut listed = vec![Listed::default(); PID_COUNT];
        if let Some(&(_, nit)) = self.pat_sections.values().flatten().find(|(n, _)| *n == 0) {
            listed[usize::from(nit)].role = Some(Role::Sections);
        }
        for programme in &self.programmes {
            for stream in &programme.streams {
                let entry = &mut listed[usize::from(stream.pid)];
                // Splice cues come when there is a break to announce, minutes apart: their
                // PID going quiet is no PID_error (`scte35_absent` judges that, by its own
                // limit).
                entry.referenced |= stream.stream_type != SCTE35_STREAM_TYPE;
                if entry.role != Some(Role::Pmt) {
                    entry.role = Some(match stream.stream_type {
                        SCTE35_STREAM_TYPE | PRIVATE_SECTIONS_STREAM_TYPE => Role::Sections,
                        _ => Role::Pes,
                    });
                }
            }
            if let Some(pcr_pid) = programme.pcr_pid {
                let entry = &mut listed[usize::from(pcr_pid)];
                entry.referenced = true;
                entry.pcr = true;
            }
        }
        // A PMT PID also listed as a stream stays a PMT PID.
        for programme in &self.programmes {
            listed[usize::from(programme.pmt_pid)].role = Some(Role::Pmt);
        }
        for (pid, listed) in (0..).zip(&listed) {
            let fixed = pid == PAT_PID || pid == CAT_PID || SI_PIDS.contains(&pid);
            let listed_any = listed.role.is_some() || listed.referenced || listed.pcr;
            if !listed_any && self.pids.get(pid).is_none() {
                continue;
            }
            let state = self.pids.get_mut(pid);
            if !fixed {
                state.role = listed.role.unwrap_or(Role::Unknown);
            }
            if listed.referenced {
                state.referenced_since.get_or_insert(now);
                if !state.watched {
                    state.watched = true;
                    self.watched.push(pid);
                }
            } else {
                // No longer referenced: nothing about it can go missing (its PTS included:
                // a stream the PMT dropped stops, and that is no PTS error).
                state.referenced_since = None;
                state.missing = false;
                state.last_pts = None;
                state.pts_late = false;
            }
            if !listed.pcr {
                state.pcr_late = false;
            }
            state.pcr_pid = listed.pcr;
        }
        let earliest = self
            .config
            .section_interval
            .min(self.config.pcr_repetition)
            .min(self.config.pid_absence);
        self.watch_until(now.saturating_add(earliest));
    }

    /// Fires every absence whose limit passed before `now` (PAT, PMT, PID, PCR, PTS), at
    /// the time it passed. Runs only when the earliest deadline may have passed.
    fn check_deadlines(&mut self, now: Micros) {
        if now <= self.next_deadline || self.at_end {
            return;
        }
        let config = &self.config;
        let mut fired: Vec<(Micros, ErrorKind, u16, String)> = Vec::new();
        let mut next = Micros::MAX;
        let mut absence = |last: Micros,
                           limit: Micros,
                           missing: &mut bool,
                           what: &dyn Fn() -> (ErrorKind, u16, String)| {
            if *missing {
                return;
            }
            let deadline = last.saturating_add(limit);
            if now > deadline {
                *missing = true;
                let (kind, pid, detail) = what();
                fired.push((deadline, kind, pid, detail));
            } else {
                next = next.min(deadline);
            }
        };
        let ms = |us: Micros| us as f64 / 1000.0;
        let last_pat = self.last_pat;
        absence(
            last_pat,
            config.section_interval,
            &mut self.pat_missing,
            &|| {
                (
                    ErrorKind::Pat,
                    PAT_PID,
                    format!(
                        "no PAT for more than {} ms (last at {:.3} s)",
                        ms(config.section_interval),
                        last_pat as f64 / 1e6
                    ),
                )
            },
        );
        for programme in &mut self.programmes {
            let (number, pid) = (programme.number, programme.pmt_pid);
            let last = programme.last_pmt.unwrap_or(programme.since);
            let seen = programme.last_pmt.is_some();
            absence(
                last,
                config.section_interval,
                &mut programme.missing,
                &|| {
                    let since = if seen { "last at" } else { "announced at" };
                    (
                        ErrorKind::Pmt,
                        pid,
                        format!(
                            "no PMT of programme {number} for more than {} ms ({since} {:.3} s)",
                            ms(config.section_interval),
                            last as f64 / 1e6
                        ),
                    )
                },
            );
        }
        for &pid in &self.watched {
            let state = self.pids.get_mut(pid);
            if let Some(since) = state.referenced_since {
                let last = state.last_seen.map_or(since, |seen| seen.max(since));
                absence(last, config.pid_absence, &mut state.missing, &|| {
                    (
                        ErrorKind::Pid,
                        pid,
                        format!(
                            "PID {pid:#x}, referred to by a PMT, absent for more than {} s (last at {:.3} s)",
                            config.pid_absence as f64 / 1e6,
                            last as f64 / 1e6
                        ),
                    )
                });
            }
            if let (true, Some((last, _))) = (state.pcr_pid, state.last_pcr) {
                absence(last, config.pcr_repetition, &mut state.pcr_late, &|| {
                    (
                        ErrorKind::PcrRepetition,
                        pid,
                        format!(
                            "no PCR for more than {} ms (last at {:.3} s)",
                            ms(config.pcr_repetition),
                            last as f64 / 1e6
                        ),
                    )
                });
            }
            if let Some(last) = state.last_pts {
                absence(last, config.pts_repetition, &mut state.pts_late, &|| {
                    (
                        ErrorKind::Pts,
                        pid,
                        format!(
                            "no PTS for more than {} ms (last at {:.3} s)",
                            ms(config.pts_repetition),
                            last as f64 / 1e6
                        ),
                    )
                });
            }
        }
        self.next_deadline = next;
        fired.sort_by_key(|(at, ..)| *at);
        for (at, kind, pid, detail) in fired {
            self.error(kind, Some(pid), at, detail);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continuity {
    /// In order (or the first, or after a discontinuity).
    Next,
    /// Same counter again: a permitted duplicate, or an error already reported; either way
    /// its content was seen.
    Repeat,
    /// Packets lost or out of order (reported).
    Broken,
}

fn queued(framed: Framed<'_>, arrival: Option<Micros>) -> Queued {
    let (offset, item) = match framed {
        Framed::Packet {
            offset,
            bytes,
            sync_error,
        } => (
            offset,
            QueuedItem::Packet {
                bytes: *bytes,
                sync_error,
            },
        ),
        Framed::SyncLost { offset } => (offset, QueuedItem::SyncLost),
        Framed::SyncRegained { offset } => (offset, QueuedItem::SyncRegained),
    };
    Queued {
        offset,
        arrival,
        item,
    }
}
