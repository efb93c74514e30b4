//! TS health end to end: an MPEG-TS made by FFmpeg, clean and damaged in known places
//! (a lost packet, TEI set, a PAT's CRC broken, a second of PATs gone), analysed by
//! `vqa analyze`'s pipeline: the TR 101 290 incidents at the times of the pictures whose
//! bytes were damaged (the ground truth: FFmpeg's own packet positions and times).

use std::path::Path;

use vqa_core::{time, IncidentKind, PipelineConfig};

use vqa_testkit::ts_edit::{make_ts, picture_at, pid, video_packets, PACKET};

const SECONDS: f64 = 11.0;

type TsIncident = (IncidentKind, f64, f64, Vec<String>);

/// The TS incidents of analysing `path` (kind, start, end (s), the indicators), and the
/// report's errors per indicator.
fn ts_incidents(path: &Path) -> (Vec<TsIncident>, Vec<(String, u64)>) {
    ts_incidents_with(path, &PipelineConfig::default())
}

fn ts_incidents_with(
    path: &Path,
    config: &PipelineConfig,
) -> (Vec<TsIncident>, Vec<(String, u64)>) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let analysis = rt
        .block_on(vqa_deploy_ecs::analyze_file(path, config))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ts = analysis
        .report
        .ts_health
        .clone()
        .expect("a TS health summary");
    assert_eq!(ts.programmes.len(), 1, "{:?}", ts.programmes);
    assert_eq!(ts.programmes[0].streams.len(), 2, "{:?}", ts.programmes);
    let counts = ts.errors.into_iter().filter(|(_, n)| *n > 0).collect();
    let incidents = analysis
        .report
        .incidents
        .iter()
        .filter(|i| {
            matches!(
                i.kind,
                IncidentKind::TsPriority1 | IncidentKind::TsPriority2
            )
        })
        .map(|i| {
            (
                i.kind,
                time::to_secs(i.start),
                time::to_secs(i.end),
                i.evidence.keys().cloned().collect(),
            )
        })
        .collect();
    (incidents, counts)
}

#[test]
fn damaged_packets_are_ts_incidents_at_their_pictures_and_a_clean_stream_has_none() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = dir.path().join("clean.ts");
    make_ts(&clean, SECONDS).expect("ffmpeg makes the TS");
    assert_eq!(
        ts_incidents(&clean),
        (vec![], vec![]),
        "a clean stream has no TS errors"
    );

    let bytes = std::fs::read(&clean).expect("read");
    let packets = video_packets(&clean).expect("ffprobe lists the pictures");
    let video_pid = pid(&bytes[packets[0].0..]);
    let at = |t: f64| {
        let (offset, time, _) = picture_at(&packets, t).expect("a picture that late");
        (offset, time)
    };
    let mut out: Vec<[u8; PACKET]> = bytes
        .chunks_exact(PACKET)
        .map(|p| p.try_into().expect("188 bytes"))
        .collect();
    let index_of = |offset: usize| offset / PACKET;
    // Truth, in the order below: (kind, time, indicator).
    let mut truth = Vec::new();

    // TEI on a video packet of the picture at 5 s.
    let (offset, t) = at(5.0);
    out[index_of(offset) + 1][1] |= 0x80;
    truth.push((IncidentKind::TsPriority2, t, "Transport_error"));
    // The CRC of the first PAT after the picture at 7 s.
    let (offset, t) = at(7.0);
    let pat = (index_of(offset)..out.len())
        .find(|&i| pid(&out[i]) == 0)
        .expect("a PAT after 7 s");
    out[pat][PACKET - 1] ^= 0xff; // a byte of the CRC_32 or after it: stuffing stays 0xff
    let pointer = 5 + usize::from(out[pat][4]);
    let section_length =
        usize::from(out[pat][pointer + 1] & 0x0f) << 8 | usize::from(out[pat][pointer + 2]);
    let crc_last = pointer + 2 + section_length;
    out[pat][PACKET - 1] ^= 0xff;
    out[pat][crc_last] ^= 0x01;
    truth.push((IncidentKind::TsPriority2, t, "CRC_error"));
    // PATs replaced by null packets from the picture at 8 s to that at 9.5 s: PAT missing
    // from the last PAT + 0.5 s until the next.
    let (from, _) = at(8.0);
    let (to, back) = at(9.5);
    let mut last_pat = None;
    for (i, packet) in out.iter_mut().enumerate() {
        if pid(packet) != 0 {
            continue;
        }
        if i < index_of(from) {
            last_pat = Some(i);
        } else if i < index_of(to) {
            packet[1] = 0x1f;
            packet[2] = 0xff;
        }
    }
    let last_pat = last_pat.expect("a PAT before 8 s");
    let pat_time = packets
        .iter()
        .rev()
        .find(|(o, _, _)| *o <= last_pat * PACKET)
        .map_or(0.0, |(_, t, _)| *t);
    truth.push((IncidentKind::TsPriority1, pat_time + 0.5, "PAT_error"));
    // A video packet of the picture at 3 s lost (last, as it removes a packet).
    let (offset, t) = at(3.0);
    let lost = (index_of(offset) + 2..out.len())
        .find(|&i| pid(&out[i]) == video_pid)
        .expect("a video packet after 3 s");
    out.remove(lost);
    truth.push((IncidentKind::TsPriority1, t, "Continuity_count_error"));

    let damaged = dir.path().join("damaged.ts");
    std::fs::write(&damaged, out.concat()).expect("write");
    let (mut found, counts) = ts_incidents(&damaged);
    let counts: Vec<(&str, u64)> = counts.iter().map(|(i, n)| (i.as_str(), *n)).collect();
    assert_eq!(
        counts,
        [
            ("PAT_error", 1),
            ("Continuity_count_error", 1),
            ("Transport_error", 1),
            ("CRC_error", 1)
        ]
    );
    found.sort_by(|a, b| a.1.total_cmp(&b.1));
    truth.sort_by(|a, b| a.1.total_cmp(&b.1));
    eprintln!("found {found:?}\ntruth {truth:?} (PAT back at {back:.3} s)");
    assert_eq!(found.len(), truth.len(), "{found:?}");
    for ((kind, start, end, indicators), (want_kind, want_at, indicator)) in
        found.iter().zip(&truth)
    {
        assert_eq!(kind, want_kind, "{found:?}");
        assert!(
            (start - want_at).abs() <= 0.1,
            "{indicator} at {start:.3} s, its picture at {want_at:.3} s"
        );
        assert!(indicators.iter().any(|i| i == indicator), "{indicators:?}");
        if *indicator == "PAT_error" {
            assert!(
                (end - back).abs() <= 0.1,
                "PAT back at {back:.3}, incident ends {end:.3}"
            );
        }
    }
}

/// A live MPEG-TS over UDP, its bytes sent as they are (7 packets a datagram, as
/// broadcast senders do) with a video packet lost at 3 s and TEI set on one at 5 s: the
/// analyser reads the datagrams FFmpeg's demuxer reads, once, and finds both at their
/// pictures' times.
#[test]
fn a_live_udp_transport_stream_is_checked_as_it_arrives() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let clean = dir.path().join("clean.ts");
    make_ts(&clean, SECONDS).expect("ffmpeg makes the TS");
    let bytes = std::fs::read(&clean).expect("read");
    let packets = video_packets(&clean).expect("ffprobe lists the pictures");
    let video_pid = pid(&bytes[packets[0].0..]);
    let at = |t: f64| {
        let (offset, time, _) = picture_at(&packets, t).expect("a picture that late");
        (offset, time)
    };
    let mut out: Vec<&[u8]> = bytes.chunks_exact(PACKET).collect();
    let (tei_offset, tei_at) = at(5.0);
    let mut tei: [u8; PACKET] = out[tei_offset / PACKET + 1].try_into().expect("188 bytes");
    tei[1] |= 0x80;
    out[tei_offset / PACKET + 1] = &tei;
    let (lost_offset, lost_at) = at(3.0);
    let lost = (lost_offset / PACKET + 2..out.len())
        .find(|&i| pid(out[i]) == video_pid)
        .expect("a video packet after 3 s");
    out.remove(lost);
    let datagrams: Vec<Vec<u8>> = out.chunks(7).map(|c| c.concat()).collect();

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a sending socket");
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("its address").port()
    };
    let sender = std::thread::spawn(move || {
        // Time for the analysis to open the port; then twice real time.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let pause = std::time::Duration::from_secs_f64(SECONDS / 2.0 / datagrams.len() as f64);
        for d in &datagrams {
            socket
                .send_to(d, ("127.0.0.1", port))
                .expect("send a datagram");
            std::thread::sleep(pause);
        }
    });
    let mut config = PipelineConfig::default();
    // The source stops sending when the file ends: the input ends 2 s later.
    config.converter.read_timeout = 2.0;
    let url = format!("udp://127.0.0.1:{port}");
    let (found, counts) = ts_incidents_with(Path::new(&url), &config);
    sender.join().expect("the sender finishes");
    let counts: Vec<(&str, u64)> = counts.iter().map(|(i, n)| (i.as_str(), *n)).collect();
    assert_eq!(
        counts,
        [("Continuity_count_error", 1), ("Transport_error", 1)],
        "{found:?}"
    );
    let mut found: Vec<(f64, String)> = found
        .into_iter()
        .flat_map(|(_, start, _, evidence)| evidence.into_iter().map(move |e| (start, e)))
        .filter(|(_, e)| vqa_core::model::TS_INDICATORS.contains(&e.as_str()))
        .collect();
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(found.len(), 2, "{found:?}");
    for ((start, indicator), (want_at, want)) in found.iter().zip([
        (lost_at, "Continuity_count_error"),
        (tei_at, "Transport_error"),
    ]) {
        assert_eq!(indicator, want, "{found:?}");
        assert!(
            (start - want_at).abs() <= 0.1,
            "{indicator} at {start:.3} s, its picture at {want_at:.3} s"
        );
    }
}
