//! TS health (ETSI TR 101 290) of an MPEG-TS input, from the very bytes FFmpeg's demuxer
//! reads: the input is opened through a custom AVIO context whose reader ([`TeeReader`])
//! hands every byte it returns to a `vqa-ts-health` analyser as well, once, in input order,
//! so the source is read once. The decoding half ([`TsHealth`]) hands each segment the
//! analyser's events that fall in its span (`Segment::ts_events`).
//!
//! **Exactly once.** FFmpeg reads the start of the input to probe it, and may seek (to the
//! end, to estimate a file's duration, and back). The tee keeps a frontier, the offset of the
//! next byte the analyser expects: it hands on only bytes at the frontier, so bytes read again
//! after a seek back are not analysed twice, and bytes read ahead of the frontier (the
//! duration probe at the end of a file) are left for when reading reaches them in order.
//!
//! **Time.** The analyser times a file by its PCR, byte 0 at time 0; vqa's timeline is
//! microseconds from the input's first timestamp (FFmpeg's `start_time`, the earliest PTS).
//! PCR and PTS run on the same 90 kHz clock and a multiplexer sends each access unit a
//! near-constant delay (its PTS minus the PCR where its bytes are) ahead of its
//! presentation, so both timelines start with the first bytes and advance alike: the
//! analyser's time of a byte is the vqa time of the pictures and sound around it, and is
//! used as it is. (What differs is the delay's change along the stream, a few frames with
//! B-frame reordering; the tests check the errors land within 100 ms of the damaged
//! pictures.) An error found after its segment was cut (the analyser runs a PCR interval
//! behind the bytes) goes with the next segment, at its start.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, MutexGuard};

use vqa_core::config::TsHealthConfig;
use vqa_core::model::{SpliceCue, TsEvent};
use vqa_core::report::{TsHealthSummary, TsProgramme};
use vqa_core::{time, Micros};
use vqa_ts_health::{Analyser, Config, ErrorKind, Event, Report, PACKET_SIZE, SYNC_BYTE};

/// Whether `head` (the input's first bytes) is an MPEG-TS of 188-byte packets: the sync byte
/// at three consecutive packet starts (FFmpeg's own probe wants more, but this only decides
/// whether the analyser runs; a false guess costs an analyser that finds sync loss).
pub(crate) fn looks_like_ts(head: &[u8]) -> bool {
    head.len() > 2 * PACKET_SIZE && (0..3).all(|i| head.get(i * PACKET_SIZE) == Some(&SYNC_BYTE))
}

/// The analyser's limits from the configuration's `ts_health` section.
pub(crate) fn analyser_config(section: &TsHealthConfig) -> Config {
    Config {
        section_interval: time::from_secs(section.section_interval),
        pid_absence: time::from_secs(section.pid_absence),
        pcr_repetition: time::from_secs(section.pcr_repetition),
        pcr_discontinuity: time::from_secs(section.pcr_discontinuity),
        pts_repetition: time::from_secs(section.pts_repetition),
        ..Config::default()
    }
}

/// The analyser and where in the input it is, shared by the reader (which feeds it) and the
/// decoding half (which takes its events): they may run on different threads (the monitor).
struct Shared {
    /// `None` once finished (at the end of the input) or abandoned (a seek for a chunk).
    analyser: Option<Analyser>,
    /// Offset of the next byte the analyser expects.
    frontier: u64,
    report: Option<Report>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic while holding the lock cannot leave the analyser half-updated in a way that
    // matters more than losing TS health: keep going with what is there.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A reader that hands every byte it returns for the first time, in order, to the analyser.
pub(crate) struct TeeReader<R> {
    inner: R,
    position: u64,
    shared: Arc<Mutex<Shared>>,
}

impl<R: Read> Read for TeeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let (start, end) = (self.position, self.position + n as u64);
        self.position = end;
        let mut shared = lock(&self.shared);
        if (start..end).contains(&shared.frontier) {
            let from = (shared.frontier - start) as usize;
            if let Some(analyser) = shared.analyser.as_mut() {
                analyser.push(&buf[from..n], None);
            }
            shared.frontier = end;
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for TeeReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.position = self.inner.seek(pos)?;
        Ok(self.position)
    }
}

/// The decoding half: hands segments their TS events.
pub(crate) struct TsHealth {
    shared: Arc<Mutex<Shared>>,
    /// Events taken from the analyser, not yet handed on, in stream order.
    pending: VecDeque<Event>,
    /// Conditions (sync lost, a table, PID, PCR or PTS absent) open at the last segment's
    /// end: their indicator's kind, PID, priority and where they began.
    open: Vec<(ErrorKind, Option<u16>, Micros, String)>,
}

/// A reader teeing into a new analyser, and the decoding half that hands its events on.
pub(crate) fn tap<R>(inner: R, config: &TsHealthConfig) -> Option<(TeeReader<R>, TsHealth)> {
    let analyser = Analyser::new(analyser_config(config)).ok()?;
    let shared = Arc::new(Mutex::new(Shared {
        analyser: Some(analyser),
        frontier: 0,
        report: None,
    }));
    let reader = TeeReader {
        inner,
        position: 0,
        shared: Arc::clone(&shared),
    };
    let health = TsHealth {
        shared,
        pending: VecDeque::new(),
        open: Vec::new(),
    };
    Some((reader, health))
}

/// Whether an error starts a condition that a `Cleared` event ends, rather than being found
/// in one packet. PAT and PMT errors are absences only when the limit passed ("no PAT ...");
/// a wrong table_id or scrambling is found in one packet.
fn is_condition(kind: ErrorKind, detail: &str) -> bool {
    match kind {
        ErrorKind::TsSyncLoss | ErrorKind::Pid | ErrorKind::PcrRepetition | ErrorKind::Pts => true,
        ErrorKind::Pat | ErrorKind::Pmt => detail.starts_with("no P"),
        _ => false,
    }
}

impl TsHealth {
    /// Stops analysing: the converter seeks into the input (a chunk), so the bytes would
    /// not reach the analyser in order.
    pub(crate) fn abandon(&mut self) {
        lock(&self.shared).analyser = None;
    }

    /// The input ended: the analyser's last events and its report.
    pub(crate) fn finish(&mut self) {
        let mut shared = lock(&self.shared);
        if let Some(analyser) = shared.analyser.take() {
            let mut report = analyser.finish();
            self.pending.extend(report.events.drain(..));
            shared.report = Some(report);
        }
    }

    /// The analyser's report, once the input ended.
    pub(crate) fn report(&self) -> Option<Report> {
        lock(&self.shared).report.clone()
    }

    /// The events in `[start, end)` (and any left from before `start`, placed at `start`),
    /// conditions open over it included, and the SCTE-35 cues among them.
    pub(crate) fn events_for(
        &mut self,
        start: Micros,
        end: Micros,
    ) -> (Vec<TsEvent>, Vec<SpliceCue>) {
        if let Some(analyser) = lock(&self.shared).analyser.as_mut() {
            self.pending.extend(analyser.take_events());
        }
        let (mut out, mut cues) = (Vec::new(), Vec::new());
        // Conditions carried over from earlier segments start at this one's start.
        for (_, _, since, _) in &mut self.open {
            *since = (*since).max(start);
        }
        while self.pending.front().is_some_and(|e| e.at() < end) {
            let Some(event) = self.pending.pop_front() else {
                break;
            };
            match event {
                Event::Error(error) => {
                    let at = error.at.max(start);
                    if is_condition(error.kind, &error.detail) {
                        self.open.push((error.kind, error.pid, at, error.detail));
                    } else {
                        out.push(ts_event(error.kind, error.pid, at, at, false, error.detail));
                    }
                }
                Event::Splice(mut cue) => {
                    cue.at = cue.at.max(start);
                    cues.push(cue);
                }
                Event::Cleared(cleared) => {
                    let at = cleared.at.max(start);
                    if let Some(i) = self
                        .open
                        .iter()
                        .position(|(k, p, ..)| *k == cleared.kind && *p == cleared.pid)
                    {
                        let (kind, pid, since, detail) = self.open.remove(i);
                        out.push(ts_event(kind, pid, since, at, false, detail));
                    }
                }
            }
        }
        for (kind, pid, since, detail) in &mut self.open {
            out.push(ts_event(
                *kind,
                *pid,
                *since,
                end,
                true,
                std::mem::take(detail),
            ));
        }
        out.sort_by_key(|e| e.start);
        (out, cues)
    }
}

/// The report's TS health summary from the analyser's report.
pub(crate) fn summary(report: &Report) -> TsHealthSummary {
    TsHealthSummary {
        errors: ErrorKind::ALL
            .iter()
            .map(|k| (k.indicator().to_string(), report.counters.errors(*k)))
            .collect(),
        packets: report.counters.packets,
        skipped_bytes: report.counters.skipped_bytes,
        programmes: report
            .programmes
            .iter()
            .map(|p| TsProgramme {
                number: p.number,
                pmt_pid: p.pmt_pid,
                pcr_pid: p.pcr_pid,
                streams: p.streams.iter().map(|s| (s.pid, s.stream_type)).collect(),
            })
            .collect(),
        scte35_pids: report.scte35_pids.clone(),
    }
}

fn ts_event(
    kind: ErrorKind,
    pid: Option<u16>,
    start: Micros,
    end: Micros,
    ongoing: bool,
    detail: String,
) -> TsEvent {
    TsEvent {
        indicator: kind.indicator().to_string(),
        priority: kind.priority().number(),
        pid,
        start,
        end,
        ongoing,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_names_the_indicators_as_the_analyser_does() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.indicator()).collect();
        assert_eq!(names, vqa_core::model::TS_INDICATORS);
        for kind in ErrorKind::ALL {
            let first = vqa_core::model::TS_INDICATORS[..vqa_core::model::TS_PRIORITY1_INDICATORS]
                .contains(&kind.indicator());
            assert_eq!(first, kind.priority().number() == 1);
        }
    }

    #[test]
    fn bytes_reach_the_analyser_once_in_order_whatever_is_read_again() {
        let bytes: Vec<u8> = (0..10 * PACKET_SIZE)
            .map(|i| {
                if i % PACKET_SIZE == 0 {
                    SYNC_BYTE
                } else {
                    0xff
                }
            })
            .collect();
        let (mut reader, health) =
            tap(std::io::Cursor::new(bytes), &TsHealthConfig::default()).unwrap();
        let mut buf = vec![0; 500];
        reader.read_exact(&mut buf).unwrap();
        reader.seek(SeekFrom::End(-300)).unwrap(); // a duration probe
        let _ = reader.read(&mut buf).unwrap();
        reader.seek(SeekFrom::Start(100)).unwrap(); // back over analysed bytes
        while reader.read(&mut buf).unwrap() > 0 {}
        let shared = lock(&health.shared);
        assert_eq!(shared.frontier, 10 * PACKET_SIZE as u64);
        let counters = shared.analyser.as_ref().unwrap().counters();
        assert_eq!(counters.bytes, 10 * PACKET_SIZE as u64);
    }

    #[test]
    fn conditions_span_segments_until_cleared() {
        let (_, mut health) = tap(
            std::io::Cursor::new(Vec::<u8>::new()),
            &TsHealthConfig::default(),
        )
        .unwrap();
        health.abandon();
        health.pending.extend([
            Event::Error(vqa_ts_health::Tr101290Error {
                kind: ErrorKind::Pat,
                priority: ErrorKind::Pat.priority(),
                pid: Some(0),
                at: 1_500_000,
                detail: "no PAT for more than 500 ms".into(),
            }),
            Event::Error(vqa_ts_health::Tr101290Error {
                kind: ErrorKind::ContinuityCount,
                priority: ErrorKind::ContinuityCount.priority(),
                pid: Some(256),
                at: 1_600_000,
                detail: "lost".into(),
            }),
            Event::Cleared(vqa_ts_health::Cleared {
                kind: ErrorKind::Pat,
                pid: Some(0),
                at: 2_200_000,
            }),
        ]);
        let (first, _) = health.events_for(1_000_000, 2_000_000);
        let spans: Vec<_> = first
            .iter()
            .map(|e| (e.indicator.as_str(), e.start, e.end, e.ongoing))
            .collect();
        assert_eq!(
            spans,
            [
                ("PAT_error", 1_500_000, 2_000_000, true),
                ("Continuity_count_error", 1_600_000, 1_600_000, false)
            ]
        );
        let (second, _) = health.events_for(2_000_000, 3_000_000);
        assert_eq!(
            (second[0].start, second[0].end, second[0].ongoing),
            (2_000_000, 2_200_000, false)
        );
        assert!(health.events_for(3_000_000, 4_000_000).0.is_empty());
    }
}
