//! Synthetic frames and segments for tests and benchmarks, shared by every crate's tests
//! (feature `testing`; always on in core's own tests). Clips made with FFmpeg are
//! `vqa-testkit`'s.

use bytes::Bytes;

use crate::model::{AudioBlock, LumaRange, PictureFormat, Segment, StreamId, VideoFrame};

/// One picture's duration at 25 fps, µs.
pub const FRAME: i64 = 40_000;

/// A 64x36 picture on an 80-byte stride (padding as decoders leave it, 0xEE), each pixel
/// from `fill(x, y)`.
pub fn frame(pts: i64, fill: impl Fn(usize, usize) -> u8) -> VideoFrame {
    let (w, h, stride) = (64usize, 36usize, 80usize);
    let mut luma = vec![0xEEu8; stride * h];
    for y in 0..h {
        for x in 0..w {
            luma[y * stride + x] = fill(x, y);
        }
    }
    VideoFrame {
        pts,
        duration: FRAME,
        width: w as u32,
        height: h as u32,
        stride: stride as u32,
        range: LumaRange::Limited,
        keyframe: false,
        corrupt: false,
        format: PictureFormat::default(),
        captions: Default::default(),
        luma: Bytes::from(luma),
    }
}

/// A 64x36 picture on an 80-byte stride whose every byte, padding included, depends on
/// `seed`: what a round trip must give back exactly.
pub fn patterned_frame(pts: i64, seed: u8) -> VideoFrame {
    let (h, stride) = (36usize, 80usize);
    let luma: Vec<u8> = (0..stride * h)
        .map(|i| (i as u8).wrapping_mul(seed) ^ (i / 7) as u8)
        .collect();
    VideoFrame {
        luma: Bytes::from(luma),
        ..frame(pts, |_, _| 0)
    }
}

/// A `width`x`height` picture with texture and noise (from `seed`), so that compression
/// sees something like camera content.
pub fn textured_frame(pts: i64, width: u32, height: u32, seed: &mut u32) -> VideoFrame {
    let luma: Vec<u8> = (0..width * height)
        .map(|p| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 17;
            *seed ^= *seed << 5;
            let (x, y) = (p % width, p / width);
            let t = (pts / FRAME) as u32;
            ((x.wrapping_add(y).wrapping_add(t.wrapping_mul(3)) / 8) as u8)
                .wrapping_add((*seed & 7) as u8)
        })
        .collect();
    VideoFrame {
        pts,
        duration: FRAME,
        width,
        height,
        stride: width,
        range: LumaRange::Limited,
        keyframe: pts == 0,
        corrupt: false,
        format: PictureFormat::default(),
        captions: Default::default(),
        luma: Bytes::from(luma),
    }
}

/// One second of stereo 48 kHz audio at `pts`: a sine of amplitude `amplitude`.
pub fn stereo_block(pts: i64, amplitude: f32) -> AudioBlock {
    stereo_frames(pts, 48_000, amplitude)
}

/// `frames` sample instants of stereo 48 kHz audio at `pts` (1024: one AAC frame).
pub fn stereo_frames(pts: i64, frames: usize, amplitude: f32) -> AudioBlock {
    AudioBlock {
        pts,
        skipped: 0,
        rate: 48_000,
        channels: 2,
        lfe: None,
        samples: (0..frames * 2)
            .map(|i| (i as f32 * 0.001).sin() * amplitude)
            .collect::<Vec<f32>>()
            .into(),
    }
}

/// Segment `index` (1 s long) of stream `t` with video only.
pub fn video_segment(index: u64, lead_in: Option<VideoFrame>, frames: Vec<VideoFrame>) -> Segment {
    Segment {
        stream: StreamId::new("t"),
        index,
        start: index as i64 * 1_000_000,
        end: (index as i64 + 1) * 1_000_000,
        has_video: true,
        has_audio: false,
        lead_in,
        video: frames,
        audio: vec![],
        audio_lead_in: vec![],
        decode_errors: 0,
        ts_events: vec![],
        splice_cues: vec![],
    }
}

/// Segment `index` (1 s long) of stream `t` with audio only.
pub fn audio_segment(index: u64, blocks: Vec<AudioBlock>) -> Segment {
    Segment {
        has_video: false,
        has_audio: true,
        audio: blocks,
        ..video_segment(index, None, vec![])
    }
}

/// Segment `index` of `stream` with everything a segment can carry: a lead-in picture
/// (marked corrupt), 25 patterned pictures, a second of stereo audio and a decode error.
pub fn full_segment(stream: &str, index: u64) -> Segment {
    let start = index as i64 * 1_000_000;
    let mut lead_in = patterned_frame(start - FRAME, 3);
    lead_in.corrupt = true;
    let video = (0..25)
        .map(|i| {
            let mut f = patterned_frame(start + i * FRAME, i as u8 + 5);
            f.keyframe = f.pts == 0;
            f
        })
        .collect();
    Segment {
        stream: StreamId::new(stream),
        has_audio: true,
        audio: vec![stereo_block(start, 1.0)],
        decode_errors: 1,
        ts_events: vec![],
        splice_cues: vec![],
        ..video_segment(index, Some(lead_in), video)
    }
}
