//! Each TR 101 290 fault written into a generated stream gives exactly the expected errors
//! at the expected times (ground truth from the writer's schedule: packet `i` is `i` ms
//! into the stream), and the clean stream gives none.

mod common;

use common::*;
use vqa_core::model::SpliceCue;
use vqa_ts_health::ErrorKind::{self, *};
use vqa_ts_health::{Analyser, Config, ConfigError, Event, Priority};

type Expected = Vec<(ErrorKind, Option<u16>, i64)>;

/// One case: how the stream is written, how its packets are then edited, the errors
/// expected (kind, PID, ms) and the clearances expected (None: not checked).
struct Case {
    name: &'static str,
    plan: Plan,
    edit: fn(&mut Vec<[u8; PACKET]>),
    errors: Expected,
    cleared: Option<Expected>,
}

fn case(
    name: &'static str,
    plan: Plan,
    edit: fn(&mut Vec<[u8; PACKET]>),
    errors: Expected,
) -> Case {
    Case {
        name,
        plan,
        edit,
        errors,
        cleared: None,
    }
}

fn no_edit(_: &mut Vec<[u8; PACKET]>) {}

fn run(case: &Case) {
    let mut packets = write(&case.plan);
    (case.edit)(&mut packets);
    let (events, _) = analyse(&concat(&packets));
    assert_matches(case.name, &errors(&events), &case.errors);
    if let Some(expected) = &case.cleared {
        assert_matches(
            &format!("{} (cleared)", case.name),
            &cleared(&events),
            expected,
        );
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("clean", Plan::default(), no_edit, vec![]),
        case(
            "clean, with CAT and SCTE-35",
            Plan {
                cat: true,
                scte35: true,
                ..Plan::default()
            },
            no_edit,
            vec![],
        ),
        case(
            // Cues come when there is a break to announce, minutes apart: an SCTE-35 PID
            // the PMT declares is not a PID that goes missing (scte35_absent judges that).
            "SCTE-35 declared, no cue for 8 s",
            Plan {
                scte35: true,
                ..Plan::default()
            },
            |p| {
                for packet in &mut p[1500..9500] {
                    let pid = u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2]);
                    if pid == SCTE35 {
                        packet[1] = (packet[1] & 0xE0) | (NULL >> 8) as u8;
                        packet[2] = NULL as u8;
                    }
                }
            },
            vec![],
        ),
        case(
            "clean, the PCR wrapping at 2^33 x 300 after 1 s",
            Plan {
                clock_start_us: ((1u64 << 33) * 300 / 27) - 1_000_000,
                ..Plan::default()
            },
            no_edit,
            vec![],
        ),
        case(
            "clean, a PMT in two packets",
            Plan {
                long_pmt: true,
                ..Plan::default()
            },
            no_edit,
            vec![],
        ),
        case(
            "the second packet of a two-packet PMT lost: no CRC error, the next PMT in time",
            Plan {
                long_pmt: true,
                ..Plan::default()
            },
            // The next PMT packet (slot 2101) shows the loss; the torn section is dropped.
            |p| {
                p.remove(2003);
            },
            vec![(ContinuityCount, Some(PMT_PID), 2100)],
        ),
        case(
            "the PMT drops the audio, which stops (allowed: no PID or PTS error)",
            Plan {
                drop_audio_from: Some(3001),
                ..Plan::default()
            },
            no_edit,
            vec![],
        ),
        case(
            "a video packet lost",
            Plan::default(),
            // Slot 3004 is video without PCR; the next video packet, slot 3006, is one slot
            // earlier in the bytes after the loss.
            |p| {
                p.remove(3004);
            },
            vec![(ContinuityCount, Some(VIDEO), 3005)],
        ),
        case(
            "a video packet sent twice (allowed)",
            Plan::default(),
            |p| {
                let copy = p[3004];
                p.insert(3005, copy);
            },
            vec![],
        ),
        case(
            "a video packet sent three times",
            Plan::default(),
            |p| {
                let copy = p[3004];
                p.insert(3005, copy);
                p.insert(3006, copy);
            },
            vec![(ContinuityCount, Some(VIDEO), 3006)],
        ),
        case(
            "a counter jump with the discontinuity_indicator (allowed)",
            Plan::default(),
            |p| {
                // Slot 3022 carries a PCR, so an adaptation field: flag it and skip 5.
                p[3022][5] |= 0x80;
                let cc = (p[3022][3] + 5) & 0x0F;
                p[3022][3] = (p[3022][3] & 0xF0) | cc;
                for slot in (3024..10_000)
                    .filter(|&s| matches!(slot(s as i64, &Plan::default()), Slot::Video { .. }))
                {
                    p[slot][3] = (p[slot][3] & 0xF0) | ((p[slot][3] + 5) & 0x0F);
                }
            },
            vec![],
        ),
        case(
            "a PCR-only packet with the discontinuity_indicator, the counter jumping after it (allowed)",
            Plan::default(),
            |p| {
                // Slot 3003 (a null packet) becomes a PCR-only video packet announcing a
                // discontinuity with counter 0; the video counters after it go up by 9.
                let mut pcr_only = p[3002];
                pcr_only[3] = 0x20;
                pcr_only[5] |= 0x80;
                p[3003] = pcr_only;
                let video = |i: &usize| matches!(slot(*i as i64, &Plan::default()), Slot::Video { .. });
                for i in (3004..10_000).filter(video) {
                    p[i][3] = (p[i][3] & 0xF0) | ((p[i][3] + 9) & 0x0F);
                }
            },
            vec![],
        ),
        case(
            "adaptation-field-only packets keep the counter (allowed)",
            Plan::default(),
            |p| {
                let mut pcr_only = p[3002];
                pcr_only[3] = (pcr_only[3] & 0x0F) | 0x20;
                p[3003] = pcr_only;
                p[3013] = pcr_only;
            },
            vec![],
        ),
        case(
            "a sync byte flipped",
            Plan::default(),
            |p| p[3004][0] = 0x46,
            vec![(SyncByte, None, 3004)],
        ),
        Case {
            name: "three packets garbled: sync lost, regained, packets lost",
            plan: Plan::default(),
            edit: |p| {
                p[3012..3015].fill([0u8; PACKET]);
            },
            errors: vec![
                (TsSyncLoss, None, 3012),
                (ContinuityCount, Some(VIDEO), 3016),
            ],
            cleared: Some(vec![(TsSyncLoss, None, 3015)]),
        },
        case(
            "transport_error_indicator",
            Plan::default(),
            |p| p[3004][1] |= 0x80,
            vec![(Transport, Some(VIDEO), 3004)],
        ),
        case(
            "a PAT's CRC broken",
            Plan::default(),
            |p| p[2000][14] ^= 0x01,
            vec![(Crc, Some(0), 2000)],
        ),
        case(
            "a PMT's CRC broken",
            Plan::default(),
            |p| p[2001][20] ^= 0x01,
            vec![(Crc, Some(PMT_PID), 2001)],
        ),
        Case {
            name: "no PAT for 1 s",
            plan: Plan {
                no_pat: 2000..3000,
                ..Plan::default()
            },
            edit: no_edit,
            errors: vec![(Pat, Some(0), 1900 + 500)],
            cleared: Some(vec![(Pat, Some(0), 3000)]),
        },
        case(
            "a section with table_id 0x02 on PID 0",
            Plan::default(),
            |p| {
                let section = pat_section(0x02);
                p[2000][5..5 + section.len()].copy_from_slice(&section);
            },
            vec![(Pat, Some(0), 2000)],
        ),
        case(
            "a scrambled PAT packet (and no CAT)",
            Plan::default(),
            |p| p[2000][3] |= 0x80,
            vec![(Pat, Some(0), 2000), (Cat, Some(0), 2000)],
        ),
        Case {
            name: "no PMT for 1 s",
            plan: Plan {
                no_pmt: 2000..3000,
                ..Plan::default()
            },
            edit: no_edit,
            errors: vec![(Pmt, Some(PMT_PID), 1901 + 500)],
            cleared: Some(vec![(Pmt, Some(PMT_PID), 3001)]),
        },
        case(
            "a section with table_id 0x00 on the PMT PID",
            Plan::default(),
            |p| {
                p[2001][5] = 0x00;
                fix_crc(&mut p[2001]);
            },
            vec![(Pmt, Some(PMT_PID), 2001)],
        ),
        case(
            "a private section on the PMT PID (allowed)",
            Plan::default(),
            |p| {
                p[2001][5] = 0xC0;
                fix_crc(&mut p[2001]);
            },
            vec![],
        ),
        case(
            "a scrambled PMT packet, with a CAT",
            Plan {
                cat: true,
                ..Plan::default()
            },
            |p| p[2001][3] |= 0xC0,
            vec![(Pmt, Some(PMT_PID), 2001)],
        ),
        Case {
            name: "audio stopped for 6 s",
            plan: Plan {
                no_audio: 2000..8000,
                ..Plan::default()
            },
            edit: no_edit,
            // Last audio at 1995, its last PTS at 1985; back at 8005, its next PTS at 8015.
            errors: vec![
                (Pts, Some(AUDIO), 1985 + 700),
                (Pid, Some(AUDIO), 1995 + 5000),
            ],
            cleared: Some(vec![(Pid, Some(AUDIO), 8005), (Pts, Some(AUDIO), 8015)]),
        },
        Case {
            name: "audio without PTS for 1 s",
            plan: Plan {
                no_audio_pts: 2000..3000,
                ..Plan::default()
            },
            edit: no_edit,
            errors: vec![(Pts, Some(AUDIO), 1985 + 700)],
            cleared: Some(vec![(Pts, Some(AUDIO), 3005)]),
        },
        Case {
            name: "a 60 ms gap between PCRs",
            plan: Plan {
                no_pcr: 2020..2050,
                ..Plan::default()
            },
            edit: no_edit,
            errors: vec![(PcrRepetition, Some(VIDEO), 2002 + 40)],
            cleared: Some(vec![(PcrRepetition, Some(VIDEO), 2062)]),
        },
        case(
            "the PCR jumps 200 ms without the discontinuity_indicator",
            Plan {
                pcr_jump: Some((3002, 200_000, false)),
                ..Plan::default()
            },
            no_edit,
            vec![(PcrDiscontinuityIndicator, Some(VIDEO), 3002)],
        ),
        case(
            "the PCR jumps 200 ms with the discontinuity_indicator (allowed)",
            Plan {
                pcr_jump: Some((3002, 200_000, true)),
                ..Plan::default()
            },
            no_edit,
            vec![],
        ),
        case(
            "the PCR goes back 50 ms without the discontinuity_indicator",
            Plan {
                clock_start_us: 600_000_000,
                pcr_jump: Some((3002, -50_000, false)),
                ..Plan::default()
            },
            no_edit,
            vec![(PcrDiscontinuityIndicator, Some(VIDEO), 3002)],
        ),
        case(
            "the PCR moves to another PID: the timeline follows it after 1 s",
            Plan {
                pcr_to_audio: Some(3000),
                no_pat: 6000..7000,
                ..Plan::default()
            },
            no_edit,
            // The video's last PCR at 2982; the PAT error is only found (before the end of
            // the input) if the audio's PCR times the stream.
            vec![
                (PcrRepetition, Some(VIDEO), 2982 + 40),
                (Pat, Some(0), 5900 + 500),
            ],
        ),
        case(
            "a scrambled video packet and no CAT",
            Plan::default(),
            |p| p[3004][3] |= 0x80,
            vec![(Cat, Some(VIDEO), 3004)],
        ),
        case(
            "a scrambled video packet with a CAT (allowed)",
            Plan {
                cat: true,
                ..Plan::default()
            },
            |p| p[3004][3] |= 0x80,
            vec![],
        ),
        case(
            "a section with table_id 0x02 on PID 1",
            Plan {
                cat: true,
                ..Plan::default()
            },
            |p| {
                p[2050][5] = 0x02;
                fix_crc(&mut p[2050]);
            },
            vec![(Cat, Some(1), 2050)],
        ),
        case(
            "a SCTE-35 section's CRC broken",
            Plan {
                scte35: true,
                ..Plan::default()
            },
            |p| p[3007][10] ^= 0x01,
            vec![(Crc, Some(SCTE35), 3007)],
        ),
    ]
}

#[test]
fn each_fault_gives_exactly_its_errors_at_its_time() {
    for case in cases() {
        run(&case);
    }
}

#[test]
fn the_clean_stream_clears_nothing_and_says_what_it_carries() {
    let plan = Plan {
        cat: true,
        scte35: true,
        ..Plan::default()
    };
    let (events, report) = analyse(&concat(&write(&plan)));
    // Nothing but the SCTE-35 PID's heartbeats, each decoded as the splice_null it is.
    assert!(!events.is_empty());
    for event in &events {
        match event {
            Event::Splice(cue) => assert_eq!(
                (cue.command, cue.pid, cue.event_id, cue.pre_roll),
                (SpliceCue::SPLICE_NULL, 0x1F4, None, None)
            ),
            other => panic!("not a clean stream's event: {other:?}"),
        }
    }
    assert_eq!(report.counters.splice_cues, events.len() as u64);
    assert!(ErrorKind::ALL
        .iter()
        .all(|&k| report.counters.errors(k) == 0));
    assert_eq!(report.counters.packets, 10_000);
    assert_eq!(report.trailing_bytes, 0);
    let [programme] = report.programmes.as_slice() else {
        panic!("one programme: {:?}", report.programmes);
    };
    assert_eq!((programme.number, programme.pmt_pid), (1, PMT_PID));
    assert_eq!(programme.pcr_pid, Some(VIDEO));
    let streams: Vec<(u16, u8)> = programme
        .streams
        .iter()
        .map(|s| (s.pid, s.stream_type))
        .collect();
    assert_eq!(streams, vec![(VIDEO, 0x02), (AUDIO, 0x03), (SCTE35, 0x86)]);
    assert_eq!(report.scte35_pids, vec![SCTE35]);
    let pids: Vec<u16> = report.pids.iter().map(|(pid, _)| *pid).collect();
    assert_eq!(pids, vec![0, 1, VIDEO, AUDIO, SCTE35, PMT_PID, NULL]);
    let anchor = report.pcr_anchor.expect("anchored");
    assert_eq!((anchor.pid, anchor.at), (VIDEO, 2_000));
    assert_eq!(anchor.pcr, (plan.clock_start_us + 2_000) * 27);
}

#[test]
fn counters_and_priorities_follow_the_errors() {
    let mut packets = write(&Plan::default());
    packets[3004][1] |= 0x80;
    packets[5004][1] |= 0x80;
    packets[4000][14] ^= 1;
    let (events, report) = analyse(&concat(&packets));
    assert_eq!(report.counters.errors(Transport), 2);
    assert_eq!(report.counters.errors(Crc), 1);
    let Some(Event::Error(first)) = events.first() else {
        panic!("an error first: {events:?}");
    };
    assert_eq!(first.priority, Priority::Second);
    assert_eq!(Pat.priority(), Priority::First);
    assert_eq!(
        PcrDiscontinuityIndicator.indicator(),
        "PCR_discontinuity_indicator_error"
    );
}

#[test]
fn pieces_of_any_size_give_the_same_events_as_one_buffer() {
    let mut packets = write(&Plan {
        no_pat: 2000..3000,
        no_pcr: 4020..4050,
        no_audio: 6000..7000,
        ..Plan::default()
    });
    packets[5004][0] = 0x46;
    packets[5112..5115].fill([0u8; PACKET]);
    packets.remove(8004);
    let mut bytes = vec![0x55u8; 1000];
    bytes.extend(concat(&packets));
    bytes.extend([0x47, 0x00, 0x00]);
    let (whole, whole_report) = analyse(&bytes);
    assert!(errors(&whole).len() >= 6, "{whole:?}");
    let mut rng = Rng(0x5EED);
    for round in 0..20 {
        let sizes: Vec<usize> = (0..64)
            .map(|_| match round % 3 {
                0 => 1 + rng.below(7),
                1 => 1 + rng.below(400),
                _ => 1 + rng.below(70_000),
            })
            .collect();
        let (chunked, report) = analyse_chunked(&bytes, &sizes);
        assert_eq!(chunked, whole, "pieces {sizes:?}");
        assert_eq!(report.counters, whole_report.counters);
        assert_eq!(report.trailing_bytes, 3);
    }
}

#[test]
fn live_arrival_times_are_the_timeline() {
    // Arrival 2 s after the writer's time, in pieces of 7 packets (a UDP datagram); no PAT
    // for 1 s.
    let packets = write(&Plan {
        no_pat: 2000..3000,
        ..Plan::default()
    });
    let mut analyser = Analyser::new(Config::default()).expect("config");
    let mut events = Vec::new();
    for (n, datagram) in packets.chunks(7).enumerate() {
        let arrival = 2_000_000 + (n as i64 * 7 + 6) * PACKET_US;
        analyser.push(&concat(datagram), Some(arrival));
        events.extend(analyser.take_events());
    }
    events.extend(analyser.finish().events);
    // The PAT at 1900 arrived with its datagram, at 1903 (+2 s).
    assert_matches(
        "live",
        &errors(&events),
        &[(Pat, Some(0), 2_000 + 1903 + 500)],
    );
}

#[test]
fn a_stream_that_never_syncs_reports_nothing_and_counts_what_it_skipped() {
    let (events, report) = analyse(&[0x47u8; 100]);
    assert_eq!(events, vec![]);
    assert_eq!(report.counters.packets, 0);
    let (events, report) = analyse(&vec![0u8; 10_000]);
    assert_eq!(events, vec![]);
    assert_eq!(report.counters.skipped_bytes, 10_000);
}

#[test]
fn a_short_input_of_fewer_than_five_packets_is_read() {
    let packets = write(&Plan::default());
    let (_, report) = analyse(&concat(&packets[..3]));
    assert_eq!(report.counters.packets, 3);
}

#[test]
fn limits_must_be_positive() {
    let config = Config {
        pid_absence: 0,
        ..Config::default()
    };
    let error = Analyser::new(config).expect_err("refused");
    assert!(matches!(
        error,
        ConfigError::NotPositive {
            field: "pid_absence",
            ..
        }
    ));
    assert!(
        error.to_string().contains("ts_health.pid_absence"),
        "{error}"
    );
}

#[test]
fn the_analyser_can_move_to_the_converter_thread() {
    fn send<T: Send + 'static>() {}
    send::<Analyser>();
    send::<vqa_ts_health::Report>();
}
