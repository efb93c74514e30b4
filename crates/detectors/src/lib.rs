//! vqa's defect detectors. Pure computation over one segment at a time: no I/O, no state
//! between segments (the aggregator joins findings across segments).

mod aspect_ratio;
mod audio_clicks;
mod audio_dropout;
mod audio_level;
mod audio_mono;
mod audio_phase;
mod av_sync;
mod black;
mod blockiness;
mod blur;
mod borders;
mod captions;
mod clipping;
mod colorbars;
mod corruption;
mod field_order;
mod frame_drop;
mod freeze;
mod loudness;
mod onnx;
mod runs;
mod scte35;
mod silence;
mod sparse;
mod stereo;
mod ts_health;

pub use aspect_ratio::{display_aspect, AspectRatioDetector};
pub use audio_clicks::AudioClicksDetector;
pub use audio_dropout::AudioDropoutDetector;
pub use audio_level::AudioLevelDetector;
pub use audio_mono::AudioMonoDetector;
pub use audio_phase::AudioPhaseDetector;
pub use av_sync::AvSyncDetector;
pub use black::BlackDetector;
pub use blockiness::{block_features, blocky_probability, frame_score, BlockinessDetector};
pub use blur::{edge_width, BlurDetector};
pub use borders::{BordersDetector, Geometry as BorderGeometry};
pub use captions::CaptionsDetector;
pub use clipping::ClippingDetector;
pub use colorbars::ColorbarsDetector;
pub use corruption::CorruptionDetector;
pub use field_order::{Combing, FieldOrderDetector};
pub use frame_drop::FrameDropDetector;
pub use freeze::FreezeDetector;
pub use loudness::LoudnessDetector;
pub use onnx::{ModelError, OnnxDetector};
pub use scte35::Scte35Detector;
pub use silence::SilenceDetector;
pub use ts_health::TsHealthDetector;

use vqa_core::{Detector, DetectorName, PipelineConfig};

/// The detectors the configuration enables, in the configuration's order. Fails only when
/// the `onnx` detector's model cannot be loaded.
pub fn from_config(config: &PipelineConfig) -> Result<Vec<Box<dyn Detector>>, ModelError> {
    config
        .detectors
        .iter()
        .map(|name| -> Result<Box<dyn Detector>, ModelError> {
            Ok(match name {
                DetectorName::Freeze => {
                    Box::new(FreezeDetector::new(&config.freeze, &config.black))
                }
                DetectorName::Black => Box::new(BlackDetector::new(&config.black)),
                DetectorName::Silence => Box::new(SilenceDetector::new(&config.silence)),
                DetectorName::Blockiness => Box::new(BlockinessDetector::new(&config.blockiness)),
                DetectorName::Corruption => Box::new(CorruptionDetector::new(&config.corruption)),
                DetectorName::Blur => Box::new(BlurDetector::new(&config.blur)),
                DetectorName::Colorbars => Box::new(ColorbarsDetector::new(&config.colorbars)),
                DetectorName::Borders => Box::new(BordersDetector::new(&config.borders)),
                DetectorName::AspectRatio => {
                    Box::new(AspectRatioDetector::new(&config.aspect_ratio))
                }
                DetectorName::FieldOrder => Box::new(FieldOrderDetector::new(&config.field_order)),
                DetectorName::FrameDrop => Box::new(FrameDropDetector::new(&config.frame_drop)),
                DetectorName::Loudness => Box::new(LoudnessDetector::new(
                    &config.loudness,
                    &config.loudness_jump,
                    &config.true_peak,
                )),
                DetectorName::Clipping => Box::new(ClippingDetector::new(&config.clipping)),
                DetectorName::AvSync => Box::new(AvSyncDetector::new(&config.av_sync)),
                DetectorName::AudioDropout => {
                    Box::new(AudioDropoutDetector::new(&config.audio_dropout))
                }
                DetectorName::AudioClicks => Box::new(AudioClicksDetector::new(
                    &config.audio_clicks,
                    &config.audio_dropout,
                )),
                DetectorName::AudioPhase => Box::new(AudioPhaseDetector::new(&config.audio_phase)),
                DetectorName::AudioMono => Box::new(AudioMonoDetector::new(&config.audio_mono)),
                DetectorName::AudioLevel => Box::new(AudioLevelDetector::new(
                    &config.audio_level,
                    &config.silence,
                )),
                DetectorName::Captions => Box::new(CaptionsDetector::new(&config.captions)),
                DetectorName::Onnx => Box::new(OnnxDetector::load(&config.onnx)?),
                DetectorName::TsPriority1 => Box::new(TsHealthDetector::new()),
                DetectorName::Scte35 => {
                    Box::new(Scte35Detector::new(&config.scte35, &config.scte35_absent))
                }
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Synthetic segments for unit tests: core's shared builders.
    pub use vqa_core::testing::*;
}
