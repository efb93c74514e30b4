//! The video track: decoding to luma frames.

use bytes::Bytes;
use ffmpeg::format::Pixel;
use ffmpeg::util::frame::Video as AvFrame;
use ffmpeg::{codec, Packet, Rational};
use ffmpeg_next as ffmpeg;
use vqa_core::captions::Captions;
use vqa_core::model::{LumaRange, PictureFormat, Scan, VideoFrame};
use vqa_core::Micros;

use crate::cutter::Cutter;
use crate::{decode_frames, no_decoder, ticks_to_micros, track_codec, OpenError};

/// Keeps a decoded frame alive while its luma plane is shared as [`Bytes`]: no pixel copy.
struct LumaPlane(AvFrame);

impl AsRef<[u8]> for LumaPlane {
    fn as_ref(&self) -> &[u8] {
        self.0.data(0)
    }
}

/// An swscale context owned by one track.
struct GrayScaler(ffmpeg::software::scaling::Context);

// SAFETY: an SwsContext has no thread affinity; it is only ever used through `&mut self` of
// the one track that owns it, so moving it to another thread is sound.
unsafe impl Send for GrayScaler {}

/// How to get 8-bit luma out of a decoded pixel format.
enum LumaAccess {
    /// Plane 0 already is 8-bit luma: share it.
    Direct,
    /// Plane 0 is little-endian 16-bit samples: copy, shifting right by this many bits.
    Wide(u32),
    /// Anything else (RGB, packed YUV): convert with swscale.
    Convert,
}

fn luma_access(format: Pixel) -> LumaAccess {
    use Pixel::*;
    match format {
        YUV420P | YUVJ420P | YUV422P | YUVJ422P | YUV444P | YUVJ444P | YUV440P | YUVJ440P
        | YUV411P | YUV410P | GRAY8 | NV12 | NV21 | NV16 | NV24 | NV42 | YUVA420P | YUVA422P
        | YUVA444P => LumaAccess::Direct,
        YUV420P10LE | YUV422P10LE | YUV444P10LE | GRAY10LE => LumaAccess::Wide(2),
        YUV420P12LE | YUV422P12LE | YUV444P12LE | GRAY12LE => LumaAccess::Wide(4),
        P010LE | P016LE => LumaAccess::Wide(8),
        _ => LumaAccess::Convert,
    }
}

/// The picture's declared sample aspect ratio and scan: FFmpeg's `sample_aspect_ratio`
/// (0/1 when the stream declares none) and `interlaced_frame` / `top_field_first`.
fn picture_format(frame: &AvFrame) -> PictureFormat {
    let sar = frame.aspect_ratio();
    let (n, d) = (sar.numerator(), sar.denominator());
    let sar = match (u32::try_from(n), u32::try_from(d)) {
        (Ok(n), Ok(d)) if n > 0 && d > 0 => (n, d),
        _ => (0, 1),
    };
    let scan = match (frame.is_interlaced(), frame.is_top_first()) {
        (false, _) => Scan::Progressive,
        (true, true) => Scan::TopFieldFirst,
        (true, false) => Scan::BottomFieldFirst,
    };
    PictureFormat { sar, scan }
}

pub(crate) struct VideoTrack {
    pub index: usize,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
    decoder: ffmpeg::decoder::Video,
    time_base: Rational,
    /// Duration of one frame when the stream does not say.
    default_duration: Micros,
    next_pts: Option<Micros>,
    scaler: Option<(Pixel, u32, u32, GrayScaler)>,
    /// The decoder rejected a packet or frame since the last picture it produced.
    damage_pending: bool,
    /// When the picture damage began that has not yet been recovered from: pictures decoded
    /// after a damaged one predict from it, so they are damaged too until a random access
    /// point (IDR, recovery point, open-GOP keyframe) decodes clean.
    damaged_since: Option<Micros>,
}

/// Damage stops being carried forward after this long without a random access point
/// (a stream refreshing intra blocks gradually without marking recovery points has none).
const MAX_DAMAGE_SPAN: Micros = 10_000_000;

impl VideoTrack {
    pub fn open(
        stream: &ffmpeg::format::stream::Stream,
        threads: usize,
    ) -> Result<Self, OpenError> {
        let (codec, mut ctx) = track_codec(stream, "video")?;
        ctx.set_threading(codec::threading::Config {
            count: threads,
            ..codec::threading::Config::kind(codec::threading::Type::Frame)
        });
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| no_decoder("video", &codec, e))?;
        let rate = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0);
        let frame_rate = rate.map(f64::from);
        let default_duration = rate.map_or(40_000, |r| ticks_to_micros(1, r.invert()).max(1));
        Ok(VideoTrack {
            index: stream.index(),
            codec,
            width: decoder.width(),
            height: decoder.height(),
            frame_rate,
            decoder,
            time_base: stream.time_base(),
            default_duration,
            next_pts: None,
            scaler: None,
            damage_pending: false,
            damaged_since: None,
        })
    }

    /// Sends a packet (or, with `None`, end of stream) and passes every decoded frame to the
    /// cutter. Returns how many errors the decoder reported.
    pub fn decode(&mut self, packet: Option<&Packet>, origin: Micros, cutter: &mut Cutter) -> u32 {
        let (frames, mut errors) = decode_frames(&mut self.decoder, packet, AvFrame::empty);
        // A rejected packet damages the pictures decoded next (their references are gone).
        self.damage_pending |= errors > 0;
        for frame in frames {
            // FFmpeg marks random access points key frames: IDR, recovery point SEI, CRA,
            // MPEG-2 I pictures.
            let random_access = frame.is_key();
            match self.luma_frame(frame, origin) {
                Some(mut f) => {
                    f.corrupt |= std::mem::take(&mut self.damage_pending);
                    self.damaged_since = match self.damaged_since {
                        _ if f.corrupt => self.damaged_since.or(Some(f.pts)),
                        _ if random_access => None,
                        Some(since) if f.pts - since > MAX_DAMAGE_SPAN => None,
                        since => since,
                    };
                    f.corrupt |= self.damaged_since.is_some();
                    cutter.push_video(f)
                }
                None => {
                    errors += 1;
                    self.damage_pending = true;
                }
            }
        }
        errors
    }

    fn luma_frame(&mut self, frame: AvFrame, origin: Micros) -> Option<VideoFrame> {
        let pts = match frame.timestamp() {
            Some(ts) => ticks_to_micros(ts, self.time_base) - origin,
            None => self.next_pts.unwrap_or(0),
        };
        let packet_duration = frame.packet().duration;
        let duration = if packet_duration > 0 {
            ticks_to_micros(packet_duration, self.time_base)
        } else {
            self.default_duration
        };
        self.next_pts = Some(pts + duration);
        let (width, height) = (frame.width(), frame.height());
        if width == 0 || height == 0 || frame.planes() == 0 {
            return None;
        }
        let full_range = matches!(frame.color_range(), ffmpeg::color::Range::JPEG)
            || matches!(
                frame.format(),
                Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P | Pixel::YUVJ440P
            );
        let range = if full_range {
            LumaRange::Full
        } else {
            LumaRange::Limited
        };
        let keyframe = frame.is_key() || frame.kind() == ffmpeg::picture::Type::I;
        // SAFETY: reading plain fields of a frame we own.
        let (error_flags, flags) = unsafe {
            (
                (*frame.as_ptr()).decode_error_flags,
                (*frame.as_ptr()).flags,
            )
        };
        let corrupt = error_flags != 0 || flags & ffmpeg::ffi::AV_FRAME_FLAG_CORRUPT != 0;
        let format = picture_format(&frame);
        // ATSC A/53 closed captions the decoder found in the picture (its cc_data triplets).
        let captions = frame
            .side_data(ffmpeg::util::frame::side_data::Type::A53CC)
            .map_or(Captions::NONE, |cc| Captions::from_cc_data(cc.data()));
        let stride = frame.stride(0);
        let sane_stride = stride >= width as usize && stride < (1 << 24);
        let (luma, stride, range) = match luma_access(frame.format()) {
            LumaAccess::Direct if sane_stride => {
                (Bytes::from_owner(LumaPlane(frame)), stride, range)
            }
            LumaAccess::Wide(shift) if sane_stride && stride >= 2 * width as usize => {
                let mut out = Vec::with_capacity(width as usize * height as usize);
                let data = frame.data(0);
                for y in 0..height as usize {
                    let row = &data[y * stride..y * stride + 2 * width as usize];
                    out.extend(
                        row.chunks_exact(2)
                            .map(|p| (u16::from_le_bytes([p[0], p[1]]) >> shift).min(255) as u8),
                    );
                }
                (Bytes::from(out), width as usize, range)
            }
            _ => (
                self.convert_to_gray(&frame)?,
                width as usize,
                LumaRange::Full,
            ),
        };
        Some(VideoFrame {
            keyframe,
            corrupt,
            format,
            captions,
            pts,
            duration,
            width,
            height,
            stride: stride as u32,
            range,
            luma,
        })
    }

    /// The slow path for pixel formats without a luma plane: swscale to full-range GRAY8.
    fn convert_to_gray(&mut self, frame: &AvFrame) -> Option<Bytes> {
        let key = (frame.format(), frame.width(), frame.height());
        if self
            .scaler
            .as_ref()
            .is_none_or(|(f, w, h, _)| (*f, *w, *h) != key)
        {
            let ctx = ffmpeg::software::scaling::Context::get(
                key.0,
                key.1,
                key.2,
                Pixel::GRAY8,
                key.1,
                key.2,
                ffmpeg::software::scaling::Flags::POINT,
            )
            .ok()?;
            self.scaler = Some((key.0, key.1, key.2, GrayScaler(ctx)));
        }
        let (_, _, _, scaler) = self.scaler.as_mut()?;
        let mut gray = AvFrame::empty();
        scaler.0.run(frame, &mut gray).ok()?;
        let (w, h, s) = (
            gray.width() as usize,
            gray.height() as usize,
            gray.stride(0),
        );
        let data = gray.data(0);
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            out.extend_from_slice(&data[y * s..y * s + w]);
        }
        Some(Bytes::from(out))
    }
}
