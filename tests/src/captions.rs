//! Clips carrying closed captions (CEA-608/708 in ATSC A/53 picture user data) over known
//! spans, and their exact ground truth.
//!
//! FFmpeg's command line cannot put captions on generated pictures, so these clips are
//! encoded through the libraries (`ffmpeg-next`): each picture is made here and, where a
//! span says so, given `AV_FRAME_DATA_A53_CC` side data, which FFmpeg's libx264 wrapper
//! (`a53cc`, on by default) writes as an A/53 SEI and its MPEG-2 encoder as picture user
//! data. Picture `n` is shown over `[n/fps, (n+1)/fps)` (no B-frames, so no reordering
//! and no edit list); a span `[S, E)` covers pictures `round(S·fps)` … `round(E·fps) − 1`,
//! so its truth is `[F/fps, L/fps)` on those frame numbers.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ffmpeg_next as ffmpeg;

use ffmpeg::util::frame::side_data::Type as SideDataType;
use vqa_core::captions::Captions;
use vqa_core::{time, Micros};

/// What the pictures of a span carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptionContent {
    /// CEA-608 text on field 1 (CC1), field 2 padded.
    Cea608,
    /// A CEA-708 caption channel packet of service 1, and 608 padding.
    Cea708,
    /// Both: 608 text and a 708 service.
    Both,
    /// `cc_data` of padding only (608 null pairs, invalid 708 triplets): what an encoder
    /// whose caption source went away keeps sending. No captions.
    Padding,
}

impl CaptionContent {
    /// The services vqa should find in a picture carrying this.
    pub fn services(self) -> Captions {
        match self {
            CaptionContent::Cea608 => Captions {
                cea608: true,
                cea708: false,
            },
            CaptionContent::Cea708 => Captions {
                cea608: false,
                cea708: true,
            },
            CaptionContent::Both => Captions {
                cea608: true,
                cea708: true,
            },
            CaptionContent::Padding => Captions::NONE,
        }
    }
}

/// The video codec and container of a caption clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptionCodec {
    /// H.264 (libx264, A/53 in SEI) in MP4.
    H264Mp4,
    /// MPEG-2 video (A/53 in picture user data) in MPEG-TS, as broadcast carries it.
    Mpeg2Ts,
}

/// A caption clip to make: `seconds` of moving picture, with caption data over `spans`
/// (`[start, end)` seconds) and none elsewhere (no side data at all).
#[derive(Clone, Debug)]
pub struct CaptionClipSpec {
    pub seconds: f64,
    pub fps: u32,
    pub codec: CaptionCodec,
    pub spans: Vec<(f64, f64, CaptionContent)>,
}

impl Default for CaptionClipSpec {
    fn default() -> Self {
        CaptionClipSpec {
            seconds: 10.0,
            fps: 25,
            codec: CaptionCodec::H264Mp4,
            spans: Vec::new(),
        }
    }
}

/// A made caption clip's ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptionClip {
    pub frames: u64,
    pub fps: u32,
    /// Per picture, the services it carries (padding counts as none).
    pub pictures: Vec<Captions>,
}

impl CaptionClip {
    /// Time of picture `n`, µs from the start of the clip.
    pub fn time_of(&self, n: u64) -> Micros {
        time::from_secs(n as f64 / f64::from(self.fps))
    }

    /// The clip's end, µs.
    pub fn end(&self) -> Micros {
        self.time_of(self.frames)
    }

    /// The spans `[start, end)` (µs) without captions, with the services of the picture
    /// before each (none for a span at the start).
    pub fn absences(&self) -> Vec<(Micros, Micros, Captions)> {
        let mut out = Vec::new();
        let mut last = Captions::NONE;
        let mut from: Option<u64> = None;
        for (n, c) in self.pictures.iter().enumerate() {
            let n = n as u64;
            match (c.any(), from) {
                (false, None) => from = Some(n),
                (true, Some(f)) => {
                    out.push((self.time_of(f), self.time_of(n), last));
                    from = None;
                }
                _ => {}
            }
            if c.any() {
                last = *c;
            }
        }
        if let Some(f) = from {
            out.push((self.time_of(f), self.end(), last));
        }
        out
    }
}

/// A byte with odd parity in bit 7, as CEA-608 sends characters.
fn odd_parity(b: u8) -> u8 {
    let b = b & 0x7F;
    if b.count_ones().is_multiple_of(2) {
        b | 0x80
    } else {
        b
    }
}

/// Picture `n`'s `cc_data` triplets for `content`.
pub fn cc_data(content: CaptionContent, n: u64) -> Vec<u8> {
    const TEXT: &[u8] = b"CAPTIONS FROM VQA TESTKIT ";
    let len = TEXT.len() as u64;
    let pair = [
        TEXT[(2 * n % len) as usize],
        TEXT[((2 * n + 1) % len) as usize],
    ];
    let field1_text = [0xFC, odd_parity(pair[0]), odd_parity(pair[1])];
    let field1_null = [0xFC, 0x80, 0x80];
    let field2_null = [0xFD, 0x80, 0x80];
    // A DTVCC packet start: sequence number, size code 2 (4 bytes); service 1, 2 bytes.
    let seq = (n % 4) as u8;
    let dtvcc = [[0xFF, (seq << 6) | 0x02, 0x22], [0xFE, pair[0], pair[1]]];
    let dtvcc_padding = [[0xFA, 0x00, 0x00], [0xFA, 0x00, 0x00]];
    let triplets: Vec<[u8; 3]> = match content {
        CaptionContent::Cea608 => vec![field1_text, field2_null],
        CaptionContent::Cea708 => vec![field1_null, field2_null, dtvcc[0], dtvcc[1]],
        CaptionContent::Both => vec![field1_text, field2_null, dtvcc[0], dtvcc[1]],
        CaptionContent::Padding => {
            vec![field1_null, field2_null, dtvcc_padding[0], dtvcc_padding[1]]
        }
    };
    triplets.concat()
}

/// What picture `n` carries under `spec`.
fn content_of(spec: &CaptionClipSpec, n: u64) -> Option<CaptionContent> {
    let fps = f64::from(spec.fps);
    spec.spans
        .iter()
        .find(|(s, e, _)| {
            let (first, end) = ((s * fps).round() as u64, (e * fps).round() as u64);
            (first..end).contains(&n)
        })
        .map(|&(_, _, c)| c)
}

/// Encodes the clip to `path` and returns its ground truth.
pub fn make_caption_clip(spec: &CaptionClipSpec, path: &Path) -> Result<CaptionClip> {
    if spec.fps == 0 || spec.seconds.is_nan() || spec.seconds <= 0.0 {
        bail!("a caption clip needs a frame rate and a length: {spec:?}");
    }
    ffmpeg::init().context("initialising FFmpeg")?;
    // libx264 describes itself at the info level; only problems are worth printing.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    let (width, height) = (160u32, 90u32);
    let frames = (spec.seconds * f64::from(spec.fps)).round() as u64;
    let (encoder_name, format) = match spec.codec {
        CaptionCodec::H264Mp4 => ("libx264", "mp4"),
        CaptionCodec::Mpeg2Ts => ("mpeg2video", "mpegts"),
    };
    let mut octx = ffmpeg::format::output_as(path, format)
        .with_context(|| format!("creating {}", path.display()))?;
    let codec = ffmpeg::encoder::find_by_name(encoder_name)
        .ok_or_else(|| anyhow!("FFmpeg has no {encoder_name} encoder"))?;
    let global_header = octx
        .format()
        .flags()
        .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
    let mut encoder = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()?;
    let time_base = ffmpeg::Rational::new(1, spec.fps as i32);
    encoder.set_width(width);
    encoder.set_height(height);
    encoder.set_format(ffmpeg::format::Pixel::YUV420P);
    encoder.set_time_base(time_base);
    encoder.set_frame_rate(Some(ffmpeg::Rational::new(spec.fps as i32, 1)));
    encoder.set_gop(spec.fps);
    encoder.set_max_b_frames(0);
    if global_header {
        encoder.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
    }
    let mut options = ffmpeg::Dictionary::new();
    options.set("a53cc", "1");
    if spec.codec == CaptionCodec::H264Mp4 {
        options.set("preset", "ultrafast");
    }
    let mut encoder = encoder
        .open_with(options)
        .with_context(|| format!("opening the {encoder_name} encoder"))?;
    let stream_index = {
        let mut stream = octx.add_stream(codec)?;
        stream.set_parameters(&encoder);
        stream.set_time_base(time_base);
        stream.index()
    };
    octx.write_header().context("writing the header")?;
    let stream_time_base = octx
        .stream(stream_index)
        .ok_or_else(|| anyhow!("the output stream went missing"))?
        .time_base();

    let write = |encoder: &mut ffmpeg::encoder::Video,
                 octx: &mut ffmpeg::format::context::Output|
     -> Result<()> {
        let mut packet = ffmpeg::Packet::empty();
        while encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(stream_index);
            // One picture each: without it the MP4 muxer's edit list ends at the last
            // picture's start, and players drop that picture.
            packet.set_duration(1);
            packet.rescale_ts(time_base, stream_time_base);
            packet.write_interleaved(octx).context("writing a packet")?;
        }
        Ok(())
    };
    let mut pictures = Vec::with_capacity(frames as usize);
    for n in 0..frames {
        let mut frame = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, width, height);
        draw(&mut frame, n);
        frame.set_pts(Some(n as i64));
        let content = content_of(spec, n);
        if let Some(content) = content {
            let bytes = cc_data(content, n);
            let mut side = frame
                .new_side_data(SideDataType::A53CC, bytes.len())
                .ok_or_else(|| anyhow!("no memory for side data"))?;
            // SAFETY: FFmpeg allocated `size` bytes at `data` for this side data just now,
            // and nothing else refers to them; `size` is `bytes.len()`.
            unsafe {
                let sd = side.as_mut_ptr();
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), (*sd).data, bytes.len());
            }
        }
        pictures.push(content.map_or(Captions::NONE, CaptionContent::services));
        encoder.send_frame(&frame).context("encoding a picture")?;
        write(&mut encoder, &mut octx)?;
    }
    encoder.send_eof().context("flushing the encoder")?;
    write(&mut encoder, &mut octx)?;
    octx.write_trailer().context("writing the trailer")?;
    Ok(CaptionClip {
        frames,
        fps: spec.fps,
        pictures,
    })
}

/// A moving ramp: every picture differs from the one before.
fn draw(frame: &mut ffmpeg::frame::Video, n: u64) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let stride = frame.stride(0);
    let luma = frame.data_mut(0);
    for y in 0..h {
        for x in 0..w {
            luma[y * stride + x] = (16 + (x + y + 3 * n as usize) % 200) as u8;
        }
    }
    for plane in 1..3 {
        let stride = frame.stride(plane);
        let data = frame.data_mut(plane);
        for y in 0..h / 2 {
            data[y * stride..y * stride + w / 2].fill(128);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_frame_numbers_and_absences_follow_them() {
        let spec = CaptionClipSpec {
            seconds: 4.0,
            spans: vec![
                (0.0, 1.0, CaptionContent::Cea708),
                (2.0, 3.0, CaptionContent::Padding),
            ],
            ..CaptionClipSpec::default()
        };
        let pictures: Vec<Captions> = (0..100)
            .map(|n| content_of(&spec, n).map_or(Captions::NONE, CaptionContent::services))
            .collect();
        let clip = CaptionClip {
            frames: 100,
            fps: 25,
            pictures,
        };
        assert_eq!(
            clip.absences(),
            vec![(1_000_000, 4_000_000, CaptionContent::Cea708.services())]
        );
    }

    #[test]
    fn generated_cc_data_parses_to_its_services() {
        for content in [
            CaptionContent::Cea608,
            CaptionContent::Cea708,
            CaptionContent::Both,
            CaptionContent::Padding,
        ] {
            for n in 0..30 {
                assert_eq!(
                    Captions::from_cc_data(&cc_data(content, n)),
                    content.services(),
                    "{content:?} picture {n}"
                );
            }
        }
    }
}
