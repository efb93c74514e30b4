//! Turning a sequence of per-item verdicts (frame pairs, frames, sample runs) into findings.

use vqa_core::report::{Evidence, Finding, IncidentKind, Level, Summary};
use vqa_core::Micros;

/// Items closer than this are contiguous (timestamps are rounded to microseconds).
const CONTIGUOUS: Micros = 1_000;

struct Run {
    start: Micros,
    end: Micros,
    evidence: Evidence,
    from_first_item: bool,
    /// The item before the run was judged a miss (not undecided).
    anew: bool,
}

/// Collects the runs of consecutive "hit" items of one segment.
///
/// A run is kept if it lasts at least `min_duration` or touches the segment's first or last
/// item: only those can be, or become part of, an incident. Shorter runs inside the segment
/// are dropped here, which keeps findings (and handoffs) small.
pub(crate) struct Runs {
    kind: IncidentKind,
    channel: Option<u16>,
    level: Level,
    min_duration: Micros,
    current: Option<Run>,
    findings: Vec<Finding>,
    seen_items: bool,
    /// Every item so far was undecided: the next run may continue one from the segment before.
    undecided_lead: bool,
    /// The last item was a miss: a run starting next starts anew.
    after_miss: bool,
}

impl Runs {
    pub fn new(kind: IncidentKind, min_duration: Micros) -> Self {
        Self::on_channel(kind, None, min_duration)
    }

    /// Runs of a condition on one audio channel (`Some`) or on the whole stream (`None`).
    pub fn on_channel(kind: IncidentKind, channel: Option<u16>, min_duration: Micros) -> Self {
        Runs {
            kind,
            channel,
            level: Level::Raise,
            min_duration,
            current: None,
            findings: Vec::new(),
            seen_items: false,
            undecided_lead: false,
            after_miss: false,
        }
    }

    /// Runs of a condition at its clear level (between the raise and the clear threshold of
    /// a hysteresis): their findings continue an open incident and never open one, so they
    /// are kept however short.
    pub fn holding(kind: IncidentKind) -> Self {
        Runs {
            level: Level::Hold,
            ..Self::on_channel(kind, None, 0)
        }
    }

    /// Adds the next item, covering `[start, end)`, with its measurements when it is a hit.
    pub fn push(&mut self, start: Micros, end: Micros, hit: Option<&[(&str, f64)]>) {
        let first_item = !self.seen_items || std::mem::take(&mut self.undecided_lead);
        self.seen_items = true;
        let after_miss = std::mem::replace(&mut self.after_miss, hit.is_none());
        let Some(measures) = hit else {
            self.close(false);
            return;
        };
        if self
            .current
            .as_ref()
            .is_some_and(|r| start > r.end + CONTIGUOUS)
        {
            self.close(false);
        }
        let run = self.current.get_or_insert_with(|| Run {
            start,
            end,
            evidence: Evidence::new(),
            from_first_item: first_item,
            anew: after_miss,
        });
        run.end = run.end.max(end);
        for (name, value) in measures {
            run.evidence
                .entry((*name).to_string())
                .and_modify(|s| s.add(*value))
                .or_insert_with(|| Summary::of(*value));
        }
    }

    /// Adds an item at the segment's edge whose verdict depends on the neighbouring segment.
    /// It is no hit here, but the runs next to it are kept as if they touched the edge, so
    /// the aggregator can join them across it (its neighbours' findings are adjacent).
    pub fn push_undecided(&mut self) {
        self.undecided_lead = !self.seen_items;
        self.seen_items = true;
        self.after_miss = false;
        self.close(true);
    }

    fn close(&mut self, at_last_item: bool) {
        if let Some(run) = self.current.take() {
            if run.from_first_item || at_last_item || run.end - run.start >= self.min_duration {
                self.findings.push(Finding {
                    kind: self.kind,
                    channel: self.channel,
                    start: run.start,
                    end: run.end,
                    reaches_end: at_last_item,
                    starts_anew: run.anew,
                    level: self.level,
                    evidence: run.evidence,
                });
            }
        }
    }

    pub fn finish(mut self) -> Vec<Finding> {
        self.close(true);
        self.findings
    }
}

/// Joins findings, in the order given, whose start is at most `gap` after the end of the one
/// before (for kinds whose events are sporadic: frame drops, clips); the last one reaches the
/// segment's end when it ends within `gap` of it.
pub(crate) fn join_within(
    findings: Vec<Finding>,
    gap: Micros,
    segment_end: Micros,
) -> Vec<Finding> {
    let mut joined: Vec<Finding> = Vec::new();
    for f in findings {
        match joined.last_mut() {
            Some(last) if f.start <= last.end + gap => {
                last.end = last.end.max(f.end);
                vqa_core::report::merge_evidence(&mut last.evidence, &f.evidence);
            }
            _ => joined.push(f),
        }
    }
    if let Some(last) = joined.last_mut() {
        last.reaches_end = last.end + gap >= segment_end;
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(f: &[Finding]) -> Vec<(Micros, Micros)> {
        f.iter().map(|f| (f.start, f.end)).collect()
    }

    #[test]
    fn keeps_long_runs_and_runs_at_the_edges_drops_short_inner_ones() {
        let mut r = Runs::new(IncidentKind::Black, 100);
        let hit: Option<&[(&str, f64)]> = Some(&[("v", 1.0)]);
        // items of 10 µs... but contiguity is 1 ms, so use ms-sized items
        let items = [true, false, true, false, true, true, true, false, true];
        for (i, h) in items.iter().enumerate() {
            let t = i as Micros * 40;
            r.push(t, t + 40, if *h { hit } else { None });
        }
        let f = r.finish();
        // first item (edge), items 4..6 (120 µs >= 100), last item (edge); item 2 dropped.
        assert_eq!(spans(&f), vec![(0, 40), (160, 280), (320, 360)]);
        assert_eq!(f[1].evidence["v"].count, 3);
    }

    #[test]
    fn runs_next_to_an_undecided_edge_item_are_kept() {
        let hit: Option<&[(&str, f64)]> = Some(&[]);
        let mut r = Runs::new(IncidentKind::Freeze, 1_000_000);
        r.push_undecided();
        r.push(40_000, 80_000, hit);
        r.push(80_000, 120_000, None);
        r.push(120_000, 160_000, hit); // short, inside: dropped
        r.push(160_000, 200_000, None);
        r.push(200_000, 240_000, hit);
        r.push_undecided();
        assert_eq!(
            spans(&r.finish()),
            vec![(40_000, 80_000), (200_000, 240_000)]
        );
    }

    #[test]
    fn a_gap_in_time_splits_a_run() {
        let mut r = Runs::new(IncidentKind::Silence, 1);
        r.push(0, 10_000, Some(&[]));
        r.push(50_000, 60_000, Some(&[]));
        assert_eq!(spans(&r.finish()), vec![(0, 10_000), (50_000, 60_000)]);
    }
}
