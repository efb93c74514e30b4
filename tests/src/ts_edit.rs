//! MPEG-TS fixtures: a TS made by FFmpeg, where its pictures' packets are (ffprobe), and
//! SCTE-35 cues added to it where the ground truth says — the PMT declares an SCTE-35 PID
//! (stream_type 0x86) and splice_info_sections are inserted just before chosen pictures.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use vqa_ts_health::crc32_mpeg2;

pub const PACKET: usize = 188;

/// An MPEG-2 video + MP2 audio TS of `seconds`, at a constant 2 Mbit/s with a PCR every
/// 20 ms, as a broadcast multiplex is.
pub fn make_ts(path: &Path, seconds: f64) -> anyhow::Result<()> {
    let (video, audio) = (
        format!("testsrc2=size=320x240:rate=25:duration={seconds}"),
        format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
    );
    let out = path.to_str().context("utf-8 path")?;
    crate::run_ffmpeg([
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-c:v",
        "mpeg2video",
        "-b:v",
        "1M",
        "-c:a",
        "mp2",
        "-muxrate",
        "2M",
        "-pcr_period",
        "20",
        "-f",
        "mpegts",
        out,
    ])
}

/// Runs ffprobe on `path` with `args`, and returns what it printed.
fn ffprobe(path: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .context("ffprobe runs")?;
    Ok(String::from_utf8(out.stdout)?)
}

/// Where vqa's timeline starts: the input's start time (seconds on the 90 kHz clock).
pub fn start_time(path: &Path) -> anyhow::Result<f64> {
    ffprobe(
        path,
        &["-show_entries", "format=start_time", "-of", "csv=p=0"],
    )?
    .trim()
    .parse()
    .context("start time")
}

/// The video packets' byte positions, times on vqa's timeline (seconds from the input's
/// start) and PTS (90 kHz), from ffprobe.
pub fn video_packets(path: &Path) -> anyhow::Result<Vec<(usize, f64, u64)>> {
    let start = start_time(path)?;
    Ok(ffprobe(
        path,
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pos,pts_time,pts",
            "-of",
            "csv=p=0",
        ],
    )?
    .lines()
    .filter_map(|l| {
        let mut fields = l.split(',');
        let pts = fields.next()?.trim().parse::<u64>().ok()?;
        let time = fields.next()?.trim().parse::<f64>().ok()?;
        let pos = fields.next()?.trim().parse().ok()?;
        Some((pos, time - start, pts))
    })
    .collect())
}

/// [`video_packets`] in file order (by their first packet's offset). Without B-frames,
/// that is display order.
pub fn pictures_in_file_order(path: &Path) -> anyhow::Result<Vec<(usize, f64, u64)>> {
    let mut pictures = video_packets(path)?;
    pictures.sort_by_key(|p| p.0);
    Ok(pictures)
}

/// [`arrival_times`] from the first byte, as TR 101 290 analysers (and vqa:
/// docs/ts-health.md) time a file: the multiplex's clock with the first packet at 0.
pub fn arrival_times_from_start(ts: &[u8]) -> anyhow::Result<Vec<f64>> {
    let times = arrival_times(ts)?;
    let origin = times.first().copied().unwrap_or_default();
    Ok(times.into_iter().map(|t| t - origin).collect())
}

/// Each packet's arrival time, seconds on the system clock (the PCR's, whose base is the
/// 90 kHz clock of the PTS): interpolated by byte position between the PCRs of the first
/// PID that carries them (ISO/IEC 13818-1, 2.4.2.2), and at the nearest PCRs' rate before
/// the first and after the last.
pub fn arrival_times(ts: &[u8]) -> anyhow::Result<Vec<f64>> {
    if !ts.len().is_multiple_of(PACKET) {
        bail!("not whole 188-byte packets");
    }
    let pcr = |p: &[u8]| -> Option<f64> {
        let adaptation = p[3] & 0x20 != 0 && p[4] >= 7 && p[5] & 0x10 != 0;
        adaptation.then(|| {
            let base = (u64::from(p[6]) << 25)
                | (u64::from(p[7]) << 17)
                | (u64::from(p[8]) << 9)
                | (u64::from(p[9]) << 1)
                | (u64::from(p[10]) >> 7);
            let extension = (u64::from(p[10] & 1) << 8) | u64::from(p[11]);
            (base * 300 + extension) as f64 / 27e6
        })
    };
    let packets: Vec<&[u8]> = ts.chunks_exact(PACKET).collect();
    let pcr_pid = packets
        .iter()
        .find(|p| pcr(p).is_some())
        .map(|p| pid(p))
        .context("no PCR")?;
    let pcrs: Vec<(usize, f64)> = packets
        .iter()
        .enumerate()
        .filter(|(_, p)| pid(p) == pcr_pid)
        .filter_map(|(i, p)| Some((i, pcr(p)?)))
        .collect();
    if pcrs.len() < 2 {
        bail!("fewer than two PCRs: no rate to interpolate at");
    }
    Ok((0..packets.len())
        .map(|i| {
            let after = pcrs
                .partition_point(|(at, _)| *at <= i)
                .clamp(1, pcrs.len() - 1);
            let ((i0, t0), (i1, t1)) = (pcrs[after - 1], pcrs[after]);
            t0 + (i as f64 - i0 as f64) * (t1 - t0) / (i1 - i0) as f64
        })
        .collect())
}

/// The first video packet (a picture's first TS packet) at or after `t`: its offset, its
/// picture's time and PTS.
pub fn picture_at(packets: &[(usize, f64, u64)], t: f64) -> anyhow::Result<(usize, f64, u64)> {
    packets
        .iter()
        .find(|(_, time, _)| *time >= t)
        .copied()
        .with_context(|| format!("no picture at or after {t} s"))
}

pub fn pid(packet: &[u8]) -> u16 {
    (u16::from(packet[1] & 0x1f) << 8) | u16::from(packet[2])
}

/// A splice_info_section (SCTE 35 §9.6) around `command` (type and bytes) and
/// `descriptors`, with its CRC.
fn splice_info(command_type: u8, command: &[u8], descriptors: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00]; // protocol_version
    body.extend([0x00, 0, 0, 0, 0]); // not encrypted, pts_adjustment 0
    body.push(0x00); // cw_index
    let length = command.len() as u16;
    body.extend([0xFF, 0xF0 | (length >> 8) as u8, length as u8]); // tier 0xFFF
    body.push(command_type);
    body.extend(command);
    body.extend((descriptors.len() as u16).to_be_bytes());
    body.extend(descriptors);
    let section_length = body.len() + 4;
    let mut s = vec![
        0xFC,
        0x30 | (section_length >> 8) as u8,
        section_length as u8,
    ];
    s.extend(body);
    let crc = crc32_mpeg2(&s);
    s.extend(crc.to_be_bytes());
    s
}

fn splice_time(pts: u64) -> [u8; 5] {
    let b = pts.to_be_bytes();
    [0xFE | b[3] & 1, b[4], b[5], b[6], b[7]]
}

/// A splice_insert: out of (or back into) the network at `pts`, with a break duration
/// (90 kHz, auto-return) if given.
pub fn splice_insert(event_id: u32, out: bool, pts: u64, duration: Option<u64>) -> Vec<u8> {
    let mut c = event_id.to_be_bytes().to_vec();
    c.push(0x7F); // not cancelled
    c.push(u8::from(out) << 7 | 0x40 | u8::from(duration.is_some()) << 5 | 0x0F);
    c.extend(splice_time(pts));
    if let Some(d) = duration {
        let b = d.to_be_bytes();
        c.extend([0xFE | b[3] & 1, b[4], b[5], b[6], b[7]]);
    }
    c.extend([0, 0, 0, 0]); // unique_program_id, avail_num, avails_expected
    splice_info(0x05, &c, &[])
}

/// A time_signal at `pts` with one segmentation descriptor of `type_id` (0x34: a provider
/// placement opportunity starts, 0x35: it ends), its event and duration (90 kHz).
pub fn time_signal(pts: u64, type_id: u8, event_id: u32, duration: Option<u64>) -> Vec<u8> {
    let mut d = b"CUEI".to_vec();
    d.extend(event_id.to_be_bytes());
    d.push(0x7F); // not cancelled
                  // Program segmentation, the duration flag, delivery not restricted (and reserved bits).
    d.push(0x80 | u8::from(duration.is_some()) << 6 | 0x3F);
    if let Some(duration) = duration {
        d.extend(&duration.to_be_bytes()[3..]);
    }
    d.extend([0x00, 0x00]); // no UPID
    d.extend([type_id, 0, 0]);
    let mut descriptors = vec![0x02, d.len() as u8];
    descriptors.extend(d);
    splice_info(0x06, &splice_time(pts), &descriptors)
}

/// A splice_null: the heartbeat.
pub fn splice_null() -> Vec<u8> {
    splice_info(0x00, &[], &[])
}

/// `ts` with SCTE-35 on PID `scte35_pid`: every PMT of its one programme declares it
/// (stream_type 0x86), and each `(offset, section)` is sent in a packet of its own just
/// before the packet at `offset` (offsets in `ts`, ascending).
pub fn with_scte35(
    ts: &[u8],
    scte35_pid: u16,
    cues: &[(usize, Vec<u8>)],
) -> anyhow::Result<Vec<u8>> {
    if !ts.len().is_multiple_of(PACKET) {
        bail!("not whole 188-byte packets");
    }
    let pmt_pid = pmt_pid(ts).context("no PAT")?;
    let mut out = Vec::with_capacity(ts.len() + cues.len() * PACKET);
    let mut cues = cues.iter().peekable();
    let mut cc = 0u8;
    for (i, packet) in ts.chunks(PACKET).enumerate() {
        while let Some((_, section)) = cues.next_if(|(offset, _)| *offset <= i * PACKET) {
            if section.len() > PACKET - 5 {
                bail!("a section longer than one packet");
            }
            let mut p = [0xFFu8; PACKET];
            p[..5].copy_from_slice(&[
                0x47,
                0x40 | (scte35_pid >> 8) as u8,
                scte35_pid as u8,
                0x10 | cc,
                0x00,
            ]);
            p[5..5 + section.len()].copy_from_slice(section);
            out.extend(p);
            cc = (cc + 1) & 0x0F;
        }
        if pid(packet) == pmt_pid && packet[1] & 0x40 != 0 {
            out.extend(declare_scte35(packet, scte35_pid)?);
        } else {
            out.extend(packet);
        }
    }
    Ok(out)
}

/// The PMT PID of the first programme of the first PAT.
fn pmt_pid(ts: &[u8]) -> Option<u16> {
    let packet = ts
        .chunks(PACKET)
        .find(|p| pid(p) == 0 && p[1] & 0x40 != 0)?;
    let section = &packet[5 + usize::from(packet[4])..];
    let entries = section.get(8..)?;
    entries
        .chunks(4)
        .find(|e| e.len() == 4 && u16::from_be_bytes([e[0], e[1]]) != 0)
        .map(|e| u16::from_be_bytes([e[2] & 0x1F, e[3]]))
}

/// A PMT packet (the section whole in it) with one more stream: SCTE-35 on `pid`.
fn declare_scte35(packet: &[u8], pid: u16) -> anyhow::Result<Vec<u8>> {
    let start = 5 + usize::from(packet[4]);
    let length = usize::from(u16::from_be_bytes([packet[start + 1], packet[start + 2]]) & 0x0FFF);
    let end = start + 3 + length;
    if end + 5 > PACKET {
        bail!("the PMT has no room for another stream");
    }
    let mut section = packet[start..end - 4].to_vec();
    section.extend([0x86, 0xE0 | (pid >> 8) as u8, pid as u8, 0xF0, 0x00]);
    let length = section.len() + 4 - 3;
    section[1] = (section[1] & 0xF0) | (length >> 8) as u8;
    section[2] = length as u8;
    let crc = crc32_mpeg2(&section);
    section.extend(crc.to_be_bytes());
    let mut out = packet[..start].to_vec();
    out.extend(section);
    out.resize(PACKET, 0xFF);
    Ok(out)
}

/// What [`damage_pictures`] does to a picture's TS packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketDamage {
    /// The packet is lost: a continuity count error (TR 101 290 priority 1).
    Lose,
    /// The packet's transport_error_indicator is set: a transport error (priority 2).
    TransportError,
}

/// `ts` with one video packet (PID `video_pid`) of each picture damaged: the picture's
/// second packet, so its PES header stays, or its only one. `pictures` are the byte offsets
/// of the pictures' first packets (as [`video_packets`] gives them), in any order. Returns
/// the new stream and, for each picture, the index in `ts` of the packet damaged.
pub fn damage_pictures(
    ts: &[u8],
    video_pid: u16,
    pictures: &[(usize, PacketDamage)],
) -> anyhow::Result<(Vec<u8>, Vec<usize>)> {
    if !ts.len().is_multiple_of(PACKET) {
        bail!("not whole 188-byte packets");
    }
    let packets: Vec<&[u8]> = ts.chunks_exact(PACKET).collect();
    let mut damage: Vec<(usize, PacketDamage)> = Vec::with_capacity(pictures.len());
    for &(offset, how) in pictures {
        let first = offset / PACKET;
        if offset % PACKET != 0 || packets.get(first).is_none_or(|p| pid(p) != video_pid) {
            bail!("no video packet starts a picture at byte {offset}");
        }
        // The picture's next packet, unless the next picture starts there (PUSI set).
        let second = (first + 1..packets.len())
            .find(|&i| pid(packets[i]) == video_pid)
            .filter(|&i| packets[i][1] & 0x40 == 0);
        damage.push((second.unwrap_or(first), how));
    }
    let mut out = Vec::with_capacity(ts.len());
    for (i, packet) in packets.iter().enumerate() {
        match damage.iter().find(|(at, _)| *at == i).map(|(_, how)| how) {
            Some(PacketDamage::Lose) => {}
            Some(PacketDamage::TransportError) => {
                out.push(packet[0]);
                out.push(packet[1] | 0x80);
                out.extend(&packet[2..]);
            }
            None => out.extend(*packet),
        }
    }
    Ok((out, damage.into_iter().map(|(at, _)| at).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet of `pid`, starting a PES when `start`, with a PCR (27 MHz ticks) if given.
    fn packet(pid: u16, start: bool, pcr: Option<u64>) -> [u8; PACKET] {
        let mut p = [0xFFu8; PACKET];
        p[..4].copy_from_slice(&[
            0x47,
            u8::from(start) << 6 | (pid >> 8) as u8,
            pid as u8,
            0x10,
        ]);
        if let Some(pcr) = pcr {
            let (base, extension) = (pcr / 300, pcr % 300);
            p[3] = 0x30;
            p[4] = 7;
            p[5] = 0x10;
            p[6..10].copy_from_slice(&((base >> 1) as u32).to_be_bytes());
            p[10] = ((base & 1) << 7) as u8 | 0x7E | (extension >> 8) as u8;
            p[11] = extension as u8;
        }
        p
    }

    #[test]
    fn arrival_times_interpolate_between_pcrs_by_position() {
        let mut ts = Vec::new();
        for i in 0..21u64 {
            let pcr = (i % 10 == 0).then_some(27_000_000 + i * 2_700);
            ts.extend(packet(
                if pcr.is_some() { 0x100 } else { 0x101 },
                false,
                pcr,
            ));
        }
        let times = arrival_times(&ts).expect("PCRs");
        assert_eq!(times.len(), 21);
        for (i, t) in times.iter().enumerate() {
            assert!((t - (1.0 + i as f64 * 1e-4)).abs() < 1e-9, "{i}: {t}");
        }
        assert!(
            arrival_times(&ts[..PACKET * 9]).is_err(),
            "one PCR gives no rate"
        );
    }

    #[test]
    fn a_pictures_second_packet_is_damaged_or_its_only_one() {
        // Picture A: packets 0, 2, 3 (audio at 1); picture B: packet 4 only; picture C: 5, 6.
        let layout = [
            (0x100, true),
            (0x101, true),
            (0x100, false),
            (0x100, false),
            (0x100, true),
            (0x100, true),
            (0x100, false),
        ];
        let ts: Vec<u8> = layout
            .iter()
            .flat_map(|&(pid, start)| packet(pid, start, None))
            .collect();
        let (lost, at) = damage_pictures(
            &ts,
            0x100,
            &[(0, PacketDamage::Lose), (4 * PACKET, PacketDamage::Lose)],
        )
        .expect("damaged");
        assert_eq!(at, [2, 4]);
        let kept: Vec<&[u8]> = lost.chunks(PACKET).collect();
        let want: Vec<&[u8]> = [0, 1, 3, 5, 6]
            .map(|i| &ts[i * PACKET..(i + 1) * PACKET])
            .to_vec();
        assert_eq!(kept, want);
        let (flagged, at) =
            damage_pictures(&ts, 0x100, &[(5 * PACKET, PacketDamage::TransportError)])
                .expect("damaged");
        assert_eq!(at, [6]);
        assert_eq!(flagged.len(), ts.len());
        let teis: Vec<usize> = (0..7)
            .filter(|i| flagged[i * PACKET + 1] & 0x80 != 0)
            .collect();
        assert_eq!(teis, [6]);
        assert!(damage_pictures(&ts, 0x100, &[(PACKET, PacketDamage::Lose)]).is_err());
    }
}
