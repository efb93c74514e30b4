//! `vqa monitor --topology ab`: each source is read once and fed to both topologies — the
//! stages in this process and the chunks' executions — and their incidents are compared as
//! they close. An incident one side reports and the other does not, or reports with a start
//! or end further apart than [`TOLERANCE`], is a [`Divergence`]: counted as soon as both
//! sides have analysed past it, and listed in the stream's report with both sides'
//! incidents (their evidence included).

use vqa_core::report::IncidentKind;
use vqa_core::{Divergence, Incident, IncidentEvent, Micros, StreamReport};

/// How far apart two incidents' starts and ends may be and still be one incident. Audio
/// decoded after a seek differs in its last bits (FFmpeg's decoders dither), which can move
/// an edge by a sample; pictures decode exactly alike.
pub const TOLERANCE: Micros = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Single,
    Distributed,
}

impl Side {
    /// Its `topology` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Side::Single => "single",
            Side::Distributed => "distributed",
        }
    }
}

/// One side's incidents not yet compared.
#[derive(Debug, Default)]
struct Seen {
    /// Closed, not matched yet.
    closed: Vec<Incident>,
    /// Open now: kind, channel, start.
    open: Vec<(IncidentKind, Option<u16>, Micros)>,
    /// Where its analysis is (`Micros::MAX` once it finished).
    analysed: Micros,
}

/// The comparison of one stream's two sides.
#[derive(Debug, Default)]
pub struct Comparison {
    single: Seen,
    distributed: Seen,
    pub divergences: Vec<Divergence>,
}

fn same(a: &Incident, b: &Incident) -> bool {
    a.kind == b.kind
        && a.channel == b.channel
        && (a.start - b.start).abs() <= TOLERANCE
        && (a.end - b.end).abs() <= TOLERANCE
}

fn overlap(a: &Incident, b: &Incident) -> bool {
    a.kind == b.kind && a.channel == b.channel && a.start < b.end && b.start < a.end
}

impl Comparison {
    fn side(&mut self, side: Side) -> (&mut Seen, &mut Seen) {
        match side {
            Side::Single => (&mut self.single, &mut self.distributed),
            Side::Distributed => (&mut self.distributed, &mut self.single),
        }
    }

    /// Events of one side, and where its analysis now is; returns the divergences found.
    pub fn events(&mut self, side: Side, events: &[IncidentEvent], analysed: Micros) -> usize {
        let (this, _) = self.side(side);
        for e in events {
            match e {
                IncidentEvent::Opened {
                    kind,
                    channel,
                    start,
                } => this.open.push((*kind, *channel, *start)),
                IncidentEvent::Closed(i) => {
                    this.open
                        .retain(|(k, c, s)| !(*k == i.kind && *c == i.channel && *s == i.start));
                    this.closed.push(i.clone());
                }
            }
        }
        this.analysed = this.analysed.max(analysed);
        self.settle()
    }

    /// One side finished: everything it will report, it has.
    pub fn finished(&mut self, side: Side) -> usize {
        let (this, _) = self.side(side);
        this.analysed = Micros::MAX;
        this.open.clear();
        self.settle()
    }

    /// Compares what can be compared: pairs that agree go; an incident the other side has
    /// analysed past (and has no open incident of its kind for) is a divergence, paired with
    /// the other side's overlapping incident if there is one.
    fn settle(&mut self) -> usize {
        let before = self.divergences.len();
        let single = std::mem::take(&mut self.single.closed);
        for s in single {
            match self.distributed.closed.iter().position(|d| same(&s, d)) {
                Some(j) => {
                    self.distributed.closed.remove(j);
                }
                None => self.single.closed.push(s),
            }
        }
        for side in [Side::Single, Side::Distributed] {
            let (this, other) = self.side(side);
            let mut kept = Vec::new();
            let mut found = Vec::new();
            for i in std::mem::take(&mut this.closed) {
                let decided = other.analysed >= i.end.saturating_add(TOLERANCE)
                    && !other
                        .open
                        .iter()
                        .any(|(k, c, s)| *k == i.kind && *c == i.channel && *s < i.end);
                if !decided {
                    kept.push(i);
                    continue;
                }
                let theirs = other
                    .closed
                    .iter()
                    .position(|o| overlap(&i, o))
                    .map(|j| other.closed.remove(j));
                let (mine, theirs) = (Some(i), theirs);
                let (single, distributed) = match side {
                    Side::Single => (mine, theirs),
                    Side::Distributed => (theirs, mine),
                };
                let any = single.as_ref().or(distributed.as_ref());
                if let Some(any) = any {
                    found.push(Divergence {
                        kind: any.kind,
                        channel: any.channel,
                        single,
                        distributed,
                    });
                }
            }
            this.closed = kept;
            self.divergences.extend(found);
        }
        self.divergences.len() - before
    }

    /// The report both sides' comparison makes: the single process's, with the
    /// divergences.
    pub fn report(&self, mut single: StreamReport) -> StreamReport {
        single.divergences = self.divergences.clone();
        single
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vqa_core::Severity;

    fn incident(kind: IncidentKind, start: Micros, end: Micros) -> Incident {
        Incident {
            kind,
            channel: None,
            start,
            end,
            duration: end - start,
            severity: Severity::Major,
            segments: [0, 0],
            evidence: Default::default(),
        }
    }

    fn opened(i: &Incident) -> IncidentEvent {
        IncidentEvent::Opened {
            kind: i.kind,
            channel: i.channel,
            start: i.start,
        }
    }

    const S: Micros = 1_000_000;

    #[test]
    fn incidents_both_sides_report_alike_are_no_divergence() {
        let mut c = Comparison::default();
        let freeze = incident(IncidentKind::Freeze, 2 * S, 4 * S);
        let mut nearly = freeze.clone();
        nearly.end += 20; // a sample of audio later
        assert_eq!(c.events(Side::Single, &[opened(&freeze)], 3 * S), 0);
        assert_eq!(
            c.events(
                Side::Single,
                &[IncidentEvent::Closed(freeze.clone())],
                5 * S
            ),
            0
        );
        // The distributed side is behind: nothing decided yet.
        assert_eq!(c.events(Side::Distributed, &[opened(&nearly)], 3 * S), 0);
        assert_eq!(
            c.events(Side::Distributed, &[IncidentEvent::Closed(nearly)], 10 * S),
            0
        );
        assert_eq!(c.finished(Side::Single) + c.finished(Side::Distributed), 0);
        assert!(c.divergences.is_empty());
    }

    #[test]
    fn an_incident_one_side_misses_or_times_differently_is_a_divergence_once_both_are_past_it() {
        let mut c = Comparison::default();
        let freeze = incident(IncidentKind::Freeze, 2 * S, 4 * S);
        let black = incident(IncidentKind::Black, 6 * S, 7 * S);
        let mut later_black = black.clone();
        later_black.end += S;
        c.events(
            Side::Single,
            &[
                opened(&freeze),
                IncidentEvent::Closed(freeze.clone()),
                opened(&black),
                IncidentEvent::Closed(black.clone()),
            ],
            9 * S,
        );
        // Distributed at 5 s: past the freeze, which it does not have.
        assert_eq!(c.events(Side::Distributed, &[], 5 * S), 1);
        assert_eq!(c.divergences[0].single.as_ref(), Some(&freeze));
        assert_eq!(c.divergences[0].distributed, None);
        // Its black is open past the single side's end: not decided while open.
        assert_eq!(
            c.events(Side::Distributed, &[opened(&later_black)], 7 * S + S / 2),
            0
        );
        let closed = IncidentEvent::Closed(later_black.clone());
        assert_eq!(c.events(Side::Distributed, &[closed], 9 * S), 1);
        let d = &c.divergences[1];
        assert_eq!(d.kind, IncidentKind::Black);
        assert_eq!(d.single.as_ref(), Some(&black));
        assert_eq!(d.distributed.as_ref(), Some(&later_black));
        assert_eq!(c.finished(Side::Single) + c.finished(Side::Distributed), 0);
        assert_eq!(c.divergences.len(), 2);
    }
}
