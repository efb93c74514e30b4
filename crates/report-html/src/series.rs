//! The per-segment measurements behind the graphs, kept as the step runs.

use std::sync::Mutex;

use vqa_core::report::Measurements;
use vqa_core::step::{Outcome, StepLayer};
use vqa_core::{Micros, StreamId};

/// One segment's measurements over `[start, end)` of stream time (µs).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub start: Micros,
    pub end: Micros,
    pub measurements: Measurements,
}

/// A layer around the pipeline step that keeps every segment's measurements as the detect
/// phase produces them: the series the page graphs (one point per segment, so per second
/// with the default segment length). Its memory grows with the input's length, a few
/// hundred bytes per segment: meant for `vqa analyze` of a file, not for a live monitor.
#[derive(Default)]
pub struct Recorder {
    points: Mutex<Vec<Point>>,
}

impl Recorder {
    /// The points kept so far, in stream order.
    pub fn take(&self) -> Vec<Point> {
        let mut points = std::mem::take(&mut *self.lock());
        points.sort_by_key(|p| p.start);
        points
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Point>> {
        // A panicking holder cannot leave a Vec half-pushed.
        self.points.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl StepLayer for Recorder {
    async fn after(&self, _stream: &StreamId, _segment: u64, outcome: &Outcome<'_>) {
        if let Outcome::Detected { report, .. } = outcome {
            self.lock().push(Point {
                start: report.start,
                end: report.end,
                measurements: report.measurements.clone(),
            });
        }
    }
}
