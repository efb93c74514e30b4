//! vqa's defect detectors. Pure computation over one segment at a time: no I/O, no state
//! between segments (the aggregator joins findings across segments).

mod black;
mod freeze;
mod runs;
mod silence;

pub use black::BlackDetector;
pub use freeze::FreezeDetector;
pub use silence::SilenceDetector;

use vqa_core::{Detector, DetectorName, PipelineConfig};

/// The detectors the configuration enables, in the configuration's order.
pub fn from_config(config: &PipelineConfig) -> Vec<Box<dyn Detector>> {
    config
        .detectors
        .iter()
        .map(|name| -> Box<dyn Detector> {
            match name {
                DetectorName::Freeze => {
                    Box::new(FreezeDetector::new(&config.freeze, &config.black))
                }
                DetectorName::Black => Box::new(BlackDetector::new(&config.black)),
                DetectorName::Silence => Box::new(SilenceDetector::new(&config.silence)),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Synthetic segments for unit tests.
    use bytes::Bytes;
    use vqa_core::model::{AudioBlock, LumaRange, Segment, StreamId, VideoFrame};

    pub const FRAME: i64 = 40_000;

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
            luma: Bytes::from(luma),
        }
    }

    pub fn video_segment(
        index: u64,
        lead_in: Option<VideoFrame>,
        frames: Vec<VideoFrame>,
    ) -> Segment {
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
            decode_errors: 0,
        }
    }

    pub fn audio_segment(index: u64, blocks: Vec<AudioBlock>) -> Segment {
        Segment {
            has_video: false,
            has_audio: true,
            audio: blocks,
            ..video_segment(index, None, vec![])
        }
    }
}
