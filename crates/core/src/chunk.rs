//! Chunks: a stream cut into runs of consecutive segment windows, each analysed by its own
//! execution of the distributed topology, and the cursor that applies them to the stream's
//! aggregator in order.
//!
//! A chunk is named by windows of stream time, not by segment numbers: window `w` covers
//! `[w × segment length, (w + 1) × segment length)` on every chunk's converter alike, so
//! chunks can be planned before anything is decoded. A window with no media makes no
//! segment (the converter skips gaps), so the segment numbers the single process would
//! give are only known in order: the [`ChunkCursor`] keeps the next one, and the aggregator
//! numbers a chunk's segments from it when the chunk's turn comes.

use serde::{Deserialize, Serialize};

use crate::model::MediaInfo;
use crate::report::StreamSummary;
use crate::time::{self, Micros};

/// One chunk of a stream: `windows` segment windows from `first_window`. The last chunk
/// runs to the end of the input, however long the input turns out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The chunk's number in its stream, from 0; chunks are applied in this order.
    pub index: u64,
    pub first_window: u64,
    pub windows: u64,
    pub last: bool,
}

impl Chunk {
    /// The whole input as one chunk.
    pub const WHOLE: Chunk = Chunk {
        index: 0,
        first_window: 0,
        windows: u64::MAX,
        last: true,
    };

    /// Where the chunk starts on the stream's timeline.
    pub fn start(&self, length: Micros) -> Micros {
        (self.first_window as i64).saturating_mul(length)
    }

    /// Where the chunk ends; `None` for the last chunk (the end of the input).
    pub fn end(&self, length: Micros) -> Option<Micros> {
        (!self.last)
            .then(|| (self.first_window.saturating_add(self.windows) as i64).saturating_mul(length))
    }

    /// The chunks of an input of `duration` µs (as its container declares it; `None` when
    /// it does not) in chunks of `windows` windows of `length` µs. The last chunk is open:
    /// an input longer than declared is analysed to its end, and one shorter leaves the
    /// trailing chunks empty, which is harmless.
    pub fn plan(duration: Option<Micros>, length: Micros, windows: u64) -> Vec<Chunk> {
        let windows = windows.max(1);
        let total_windows = match duration {
            Some(d) if d > 0 && length > 0 => (d as u64).div_ceil(length as u64).max(1),
            _ => return vec![Chunk::WHOLE],
        };
        let count = total_windows.div_ceil(windows);
        (0..count)
            .map(|i| Chunk {
                index: i,
                first_window: i * windows,
                windows,
                last: i + 1 == count,
            })
            .collect()
    }
}

/// What the stream's chunk cursor says to do with a chunk's findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// An earlier chunk has not been applied yet: try again later.
    Wait { next_chunk: u64 },
    /// Apply the chunk: its first segment is the stream's segment `first_index`.
    Apply { first_index: u64 },
    /// The chunk was applied before (a retried aggregator): nothing to apply.
    Done,
}

/// The stream's progress through its chunks, kept in the state store next to the
/// aggregator's own state. Applying a chunk and advancing the cursor are separate stores, so
/// a retry after a fault between them applies nothing twice: segments already applied are
/// ignored by the aggregator, and a chunk behind the cursor is not applied again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkCursor {
    /// The chunk to apply next.
    pub next_chunk: u64,
    /// The stream's number of the next chunk's first segment (segments applied so far).
    pub next_index: u64,
    /// Warnings of the chunks applied so far, in order (the converters' and skipped chunks').
    pub warnings: Vec<String>,
    /// Packets or frames that could not be decoded, over the chunks applied so far.
    pub decode_errors: u64,
    /// Every chunk applied so far was read to its end.
    pub complete: bool,
    /// The input's name and what its converters learnt of it (for the report of a stream
    /// whose last chunk could not be analysed).
    pub input: String,
    pub media: Option<MediaInfo>,
    /// A live stream's input losses so far, and the stream time they took.
    #[serde(default)]
    pub losses: u64,
    #[serde(default)]
    pub lost: Micros,
    /// The input's TS health, from the converter that read it whole (only a stream of one
    /// chunk has it: docs/ts-health.md).
    #[serde(default)]
    pub ts_health: Option<crate::report::TsHealthSummary>,
}

impl ChunkCursor {
    /// The cursor before any chunk.
    pub fn new() -> Self {
        ChunkCursor {
            complete: true,
            ..ChunkCursor::default()
        }
    }

    pub fn turn(&self, chunk: &Chunk) -> Turn {
        use std::cmp::Ordering::*;
        match chunk.index.cmp(&self.next_chunk) {
            Less => Turn::Done,
            Equal => Turn::Apply {
                first_index: self.next_index,
            },
            Greater => Turn::Wait {
                next_chunk: self.next_chunk,
            },
        }
    }

    /// Records a chunk applied: `segments` of them, with what its converter learnt.
    pub fn advance(&mut self, segments: u64, summary: &StreamSummary, decode_errors: u64) {
        self.next_chunk += 1;
        self.next_index += segments;
        self.warnings.extend(summary.warnings.iter().cloned());
        self.decode_errors += decode_errors;
        self.complete &= summary.complete;
        if summary.ts_health.is_some() {
            self.ts_health = summary.ts_health.clone();
        }
        // A chunk with no media (a live stream's empty end) knows nothing of it.
        if segments > 0 || self.media.is_none() {
            self.input = summary.input.clone();
            self.media = Some(summary.media.clone());
        }
    }

    /// Records a chunk that could not be analysed (its part of the stream has no segments),
    /// and why.
    pub fn skip(&mut self, chunk: &Chunk, length: Micros, why: &str) {
        self.next_chunk += 1;
        let from = time::to_secs(chunk.start(length));
        let to = match chunk.end(length) {
            Some(end) => format!("{:.2} s", time::to_secs(end)),
            None => "the end".to_string(),
        };
        self.warnings.push(format!(
            "{from:.2} s to {to} (chunk {}) could not be analysed: {why}",
            chunk.index
        ));
        self.complete = false;
    }

    /// Records a chunk of a live stream's lost input: `span` of stream time lost (in one
    /// segment, when it was not nothing), a new loss when it `begins` one.
    pub fn lose(&mut self, span: Micros, begins: bool) {
        self.next_chunk += 1;
        if span > 0 {
            self.next_index += 1;
            self.lost += span;
        }
        if begins {
            self.losses += 1;
        }
    }

    /// Records a chunk that only carries warnings (a live stream's end, say).
    pub fn note(&mut self, warnings: &[String]) {
        self.warnings.extend(warnings.iter().cloned());
    }

    /// The stream's summary once its last chunk is applied: the chunks' warnings in order,
    /// then `decode_warning` (the one warning about undecodable packets, worded by the
    /// converter from [`decode_errors`](Self::decode_errors)), then the input losses, as the
    /// single-process monitor words them.
    pub fn summary(&self, decode_warning: Option<String>) -> StreamSummary {
        let mut warnings = self.warnings.clone();
        warnings.extend(decode_warning);
        let mut complete = self.complete;
        if self.lost > 0 {
            warnings.push(loss_warning(self.losses, self.lost));
            complete = false;
        }
        StreamSummary {
            input: self.input.clone(),
            media: self.media.clone().unwrap_or_default(),
            complete,
            warnings,
            ts_health: self.ts_health.clone(),
        }
    }
}

/// The report's warning about a live stream's input losses: `count` of them, `lost` µs in
/// all.
pub fn loss_warning(count: u64, lost: Micros) -> String {
    format!(
        "the input was lost {count} time(s), {:.1} s in all (see the input_loss incidents); nothing was analysed then",
        time::to_secs(lost)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    #[test]
    fn a_plan_covers_the_declared_duration_and_leaves_the_last_chunk_open() {
        let plan = Chunk::plan(Some(125 * S + 1), S, 60);
        assert_eq!(plan.len(), 3, "126 windows in chunks of 60");
        assert_eq!(plan[0].start(S), 0);
        assert_eq!(plan[0].end(S), Some(60 * S));
        assert_eq!(plan[1].start(S), 60 * S);
        assert_eq!(plan[2].start(S), 120 * S);
        assert_eq!(plan[2].end(S), None, "the last chunk runs to the end");
        assert!(plan.iter().enumerate().all(|(i, c)| c.index == i as u64));
        assert_eq!(plan.iter().filter(|c| c.last).count(), 1);
        assert_eq!(Chunk::plan(Some(60 * S), S, 60).len(), 1);
        assert_eq!(Chunk::plan(None, S, 60), vec![Chunk::WHOLE]);
        assert_eq!(Chunk::WHOLE.end(S), None);
    }

    #[test]
    fn chunks_take_their_turn_in_order_and_a_retried_one_is_not_applied_twice() {
        let mut cursor = ChunkCursor::new();
        let plan = Chunk::plan(Some(180 * S), S, 60);
        assert_eq!(cursor.turn(&plan[1]), Turn::Wait { next_chunk: 0 });
        assert_eq!(cursor.turn(&plan[0]), Turn::Apply { first_index: 0 });
        let summary = |warnings: Vec<String>, complete| StreamSummary {
            input: "in.mp4".into(),
            media: MediaInfo::default(),
            complete,
            warnings,
            ts_health: None,
        };
        cursor.advance(58, &summary(vec!["a".into()], true), 2);
        assert_eq!(cursor.turn(&plan[0]), Turn::Done);
        assert_eq!(cursor.turn(&plan[1]), Turn::Apply { first_index: 58 });
        cursor.advance(60, &summary(vec![], true), 1);
        assert!(cursor.complete);
        assert_eq!(cursor.turn(&plan[2]), Turn::Apply { first_index: 118 });
        cursor.skip(&plan[2], S, "damaged");
        assert_eq!(cursor.turn(&plan[2]), Turn::Done);
        let report = cursor.summary(Some("3 errors".into()));
        assert_eq!(
            report.warnings,
            vec![
                "a".to_string(),
                "120.00 s to the end (chunk 2) could not be analysed: damaged".into(),
                "3 errors".into()
            ]
        );
        assert_eq!(cursor.decode_errors, 3);
        assert_eq!(cursor.next_index, 118, "a skipped chunk has no segments");
        assert!(!report.complete);
        assert_eq!(report.input, "in.mp4");
    }
}
