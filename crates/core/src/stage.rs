//! The stages' pure code, shared by every topology: the [`Converter`] and [`Detector`]
//! traits, running a set of detectors on a segment ([`detect`]) and thinning a segment's
//! pictures when a monitor sheds load ([`thin_pictures`]). How they are driven through a
//! transport is [`crate::step`].

use crate::config::DetectorName;
use crate::model::{MediaInfo, Segment};
use crate::report::{Finding, Measurements, SegmentReport, StreamSummary};

/// Turns an input into segments. Opening the input (and failing on bad input) is the
/// implementation's constructor; after that, damage is recorded in the summary, not raised.
pub trait Converter: Send {
    fn media(&self) -> &MediaInfo;

    /// The next segment, or `None` when the input is exhausted.
    fn next_segment(&mut self) -> Option<Segment>;

    /// What the converter learnt about the input; complete once `next_segment` returned `None`.
    fn summary(&self) -> StreamSummary;
}

/// Looks at one segment and reports where its condition held.
///
/// Detectors are stateless: anything spanning segments is the aggregator's job. A detector
/// implements one of the two `analyze` methods: `analyze_measuring` when it also reports
/// measurements (values summarised over the stream, or histograms).
pub trait Detector: Send + Sync {
    fn name(&self) -> DetectorName;

    /// Whether it reads pictures' pixels. A group of detectors that all say no is handed the
    /// segment without them where the transport can leave them behind (per-picture objects):
    /// timestamps, flags and audio only.
    fn needs_pictures(&self) -> bool {
        true
    }

    fn analyze(&self, segment: &Segment) -> Vec<Finding> {
        self.analyze_measuring(segment, &mut Measurements::default())
    }

    fn analyze_measuring(
        &self,
        segment: &Segment,
        measurements: &mut Measurements,
    ) -> Vec<Finding> {
        let _ = measurements;
        self.analyze(segment)
    }
}

/// Runs every detector on a segment.
pub fn detect(detectors: &[Box<dyn Detector>], segment: &Segment) -> SegmentReport {
    let mut measurements = Measurements::default();
    let findings = detectors
        .iter()
        .flat_map(|d| d.analyze_measuring(segment, &mut measurements))
        .collect();
    SegmentReport {
        stream: segment.stream.clone(),
        index: segment.index,
        start: segment.start,
        end: segment.end,
        video_frames: segment.video.len() as u32,
        audio_frames: segment.audio_frames(),
        decode_errors: segment.decode_errors,
        findings,
        measurements,
    }
}

/// One picture in `keep_every` of a segment (its lead-in kept, audio untouched): what
/// detectors see when a monitor running behind real time sheds load. Returns the thinned
/// segment and how many pictures it left out.
pub fn thin_pictures(segment: &Segment, keep_every: u32) -> (Segment, u64) {
    let keep_every = keep_every.max(1) as usize;
    let video: Vec<_> = segment.video.iter().step_by(keep_every).cloned().collect();
    let shed = (segment.video.len() - video.len()) as u64;
    let thinned = Segment {
        video,
        ..segment.clone()
    };
    (thinned, shed)
}
