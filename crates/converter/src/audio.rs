//! The audio track: decoding to interleaved f32 samples.

use ffmpeg::format::sample::Type as Layout;
use ffmpeg::format::Sample;
use ffmpeg::util::frame::Audio as AvFrame;
use ffmpeg::{Packet, Rational};
use ffmpeg_next as ffmpeg;
use vqa_core::model::AudioBlock;
use vqa_core::Micros;

use crate::cutter::Cutter;
use crate::{decode_frames, no_decoder, ticks_to_micros, track_codec, OpenError};

pub(crate) struct AudioTrack {
    pub index: usize,
    pub codec: String,
    pub rate: u32,
    pub channels: u16,
    /// Index of the low-frequency effects channel, if the layout has one.
    lfe: Option<u16>,
    decoder: ffmpeg::decoder::Audio,
    time_base: Rational,
    next_pts: Option<Micros>,
}

impl AudioTrack {
    pub fn open(stream: &ffmpeg::format::stream::Stream) -> Result<Self, OpenError> {
        let (codec, ctx) = track_codec(stream, "audio")?;
        let decoder = ctx
            .decoder()
            .audio()
            .map_err(|e| no_decoder("audio", &codec, e))?;
        Ok(AudioTrack {
            index: stream.index(),
            codec,
            rate: decoder.rate(),
            channels: decoder.channels(),
            lfe: lfe_index(decoder.channel_layout().bits(), decoder.channels()),
            decoder,
            time_base: stream.time_base(),
            next_pts: None,
        })
    }

    /// FFmpeg's usual name for the channel count.
    pub fn layout_name(&self) -> String {
        match self.channels {
            1 => "mono".into(),
            2 => "stereo".into(),
            6 => "5.1".into(),
            8 => "7.1".into(),
            n => format!("{n} channels"),
        }
    }

    /// Sends a packet (or end of stream) and passes every decoded block to the cutter.
    /// Returns how many errors the decoder reported.
    pub fn decode(&mut self, packet: Option<&Packet>, origin: Micros, cutter: &mut Cutter) -> u32 {
        let (frames, mut errors) = decode_frames(&mut self.decoder, packet, AvFrame::empty);
        for frame in frames {
            match self.block_from(&frame, origin) {
                Some(f) => cutter.push_audio(f),
                None => errors += 1,
            }
        }
        errors
    }

    fn block_from(&mut self, frame: &AvFrame, origin: Micros) -> Option<AudioBlock> {
        let (n, channels, rate) = (
            frame.samples(),
            frame.channels().max(1),
            frame.rate().max(1),
        );
        let pts = match frame.timestamp() {
            Some(ts) => ticks_to_micros(ts, self.time_base) - origin,
            None => self.next_pts.unwrap_or(0),
        };
        let samples = interleaved_f32(frame, n, channels as usize)?;
        let block = AudioBlock {
            pts,
            skipped: 0,
            rate,
            channels,
            lfe: self.lfe.filter(|&c| c < channels),
            samples: samples.into(),
        };
        self.next_pts = Some(block.end());
        Some(block)
    }
}

/// FFmpeg's channel mask bit for the low-frequency effects channel (AV_CH_LOW_FREQUENCY).
const LFE_BIT: u64 = 0x8;

/// Where the LFE channel is in an FFmpeg channel mask. Channels are stored in mask-bit order,
/// so it is the number of channels before it. Without a mask, FFmpeg's default layouts for 6
/// and 8 channels (5.1, 7.1) put it fourth.
fn lfe_index(mask: u64, channels: u16) -> Option<u16> {
    if mask == 0 {
        return matches!(channels, 6 | 8).then_some(3);
    }
    (mask & LFE_BIT != 0).then(|| (mask & (LFE_BIT - 1)).count_ones() as u16)
}

/// Reads one sample of some format from its bytes.
type SampleReader = fn(&[u8]) -> f32;

/// Converts any FFmpeg sample format to interleaved f32 in [-1, 1].
fn interleaved_f32(frame: &AvFrame, n: usize, channels: usize) -> Option<Vec<f32>> {
    let (width, layout, convert): (usize, Layout, SampleReader) = match frame.format() {
        Sample::U8(l) => (1, l, |b| (b[0] as f32 - 128.0) / 128.0),
        Sample::I16(l) => (2, l, |b| i16::from_ne_bytes([b[0], b[1]]) as f32 / 32_768.0),
        Sample::I32(l) => (4, l, |b| {
            i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
        }),
        Sample::I64(l) => (8, l, |b| {
            (i64::from_ne_bytes(b.try_into().unwrap_or([0; 8])) as f64 / 9.223_372e18) as f32
        }),
        Sample::F32(l) => (4, l, |b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        Sample::F64(l) => (8, l, |b| {
            f64::from_ne_bytes(b.try_into().unwrap_or([0; 8])) as f32
        }),
        Sample::None => return None,
    };
    let mut out = vec![0f32; n * channels];
    match layout {
        Layout::Packed => {
            let data = frame.data(0).get(..n * channels * width)?;
            for (o, b) in out.iter_mut().zip(data.chunks_exact(width)) {
                *o = convert(b);
            }
        }
        Layout::Planar => {
            if frame.planes() < channels {
                return None;
            }
            for c in 0..channels {
                let data = frame.data(c).get(..n * width)?;
                for (i, b) in data.chunks_exact(width).enumerate() {
                    out[i * channels + c] = convert(b);
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfe_is_found_in_the_mask_or_assumed_for_unmasked_surround() {
        assert_eq!(lfe_index(0x3F, 6), Some(3)); // 5.1: FL FR FC LFE BL BR
        assert_eq!(lfe_index(0x60F, 6), Some(3)); // 5.1(side)
        assert_eq!(lfe_index(0x3, 2), None); // stereo
        assert_eq!(lfe_index(0xB, 3), Some(2)); // 2.1: FL FR LFE
        assert_eq!(lfe_index(0, 6), Some(3));
        assert_eq!(lfe_index(0, 2), None);
    }
}
