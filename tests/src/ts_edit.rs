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

/// The video packets' byte positions, times on vqa's timeline (seconds from the input's
/// start) and PTS (90 kHz), from ffprobe.
pub fn video_packets(path: &Path) -> anyhow::Result<Vec<(usize, f64, u64)>> {
    let probe = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .arg(path)
            .output()
            .context("ffprobe runs")?;
        Ok(String::from_utf8(out.stdout)?)
    };
    let start: f64 = probe(&["-show_entries", "format=start_time", "-of", "csv=p=0"])?
        .trim()
        .parse()
        .context("start time")?;
    Ok(probe(&[
        "-select_streams",
        "v",
        "-show_entries",
        "packet=pos,pts_time,pts",
        "-of",
        "csv=p=0",
    ])?
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
