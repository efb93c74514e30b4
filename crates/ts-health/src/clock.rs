//! The stream's timeline from the PCR: byte offsets to microseconds from the start of the
//! input.
//!
//! A file has no wall clock, so time is the multiplex's own: the PCR of one PID (the first
//! that carries one, the "reference"), and between two of its PCRs the bytes in between
//! are spread evenly (the multiplex is constant-rate between PCRs, which is what PCR
//! interpolation in every decoder assumes); if that PID's PCR falls silent for a second,
//! the next PID that carries one takes over, as a new clock. Bytes before the first PCR are timed at the rate
//! of the first interval, so byte 0 is time 0. A PCR step that is no valid step — backwards,
//! zero, more than the discontinuity limit, or flagged as a discontinuity — is not followed:
//! the bytes since the last PCR are timed at the last interval's rate, so an erroneous PCR
//! jump does not move the timeline (and does not make every later deadline fire).

use vqa_core::Micros;

use crate::packet::{pcr_delta, PCR_TICKS_PER_MICRO};

/// How long the reference PID's PCR may be silent before another PID's PCR times the
/// stream: long past any PCR interval a stream that means to keep its PCR has (TR 101 290
/// wants 40 ms, 100 ms is common), short against the PID absence limit.
const SILENT: Micros = 1_000_000;
/// The same before the rate is known (a second at 8 Mbit/s).
const SILENT_BYTES: u64 = 1 << 20;

/// Byte offset → time: `base_time + (offset − base_offset) × micros / bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    base_offset: u64,
    base_time: Micros,
    bytes: u64,
    micros: i64,
}

impl Mapping {
    /// Everything at time 0: no rate is known.
    const UNKNOWN: Mapping = Mapping {
        base_offset: 0,
        base_time: 0,
        bytes: 1,
        micros: 0,
    };

    pub fn at(&self, offset: u64) -> Micros {
        let bytes = i128::from(self.bytes.max(1));
        let elapsed = (i128::from(offset) - i128::from(self.base_offset)) * i128::from(self.micros);
        let time = i128::from(self.base_time) + elapsed / bytes;
        time.clamp(i128::from(Micros::MIN), i128::from(Micros::MAX)) as Micros
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Unanchored,
    /// One PCR seen: its offset and value; the rate needs a second.
    First {
        offset: u64,
        pcr: u64,
    },
    /// The last PCR's offset, time and value, and the rate of the last valid interval.
    Running {
        offset: u64,
        time: Micros,
        pcr: u64,
        bytes: u64,
        micros: i64,
    },
}

#[derive(Debug)]
pub struct Clock {
    state: State,
    /// The PCR limit beyond which a step is not followed, in ticks.
    max_step: i64,
    /// The first PCR a second one confirmed, and its time.
    pub first: Option<(u64, Micros)>,
}

impl Clock {
    pub fn new(max_step: Micros) -> Clock {
        Clock {
            state: State::Unanchored,
            max_step: max_step.saturating_mul(PCR_TICKS_PER_MICRO as i64),
            first: None,
        }
    }

    /// A PCR of the reference PID at `offset`. Returns the mapping that times every byte
    /// up to `offset` once it is known (from the second PCR on).
    pub fn anchor(&mut self, offset: u64, pcr: u64, discontinuity: bool) -> Option<Mapping> {
        let valid = |previous: u64, previous_offset: u64| {
            let ticks = pcr_delta(previous, pcr);
            (!discontinuity && ticks > 0 && ticks <= self.max_step && offset > previous_offset)
                .then_some(ticks / PCR_TICKS_PER_MICRO as i64)
        };
        match self.state {
            State::Unanchored => {
                self.state = State::First { offset, pcr };
                None
            }
            State::First {
                offset: first_offset,
                pcr: first_pcr,
            } => {
                let Some(micros) = valid(first_pcr, first_offset) else {
                    self.state = State::First { offset, pcr };
                    return None;
                };
                let bytes = offset - first_offset;
                let mapping = Mapping {
                    base_offset: 0,
                    base_time: 0,
                    bytes,
                    micros,
                };
                self.first = Some((first_pcr, mapping.at(first_offset)));
                self.state = State::Running {
                    offset,
                    time: mapping.at(offset),
                    pcr,
                    bytes,
                    micros,
                };
                Some(mapping)
            }
            State::Running {
                offset: last_offset,
                time,
                pcr: last_pcr,
                bytes,
                micros,
            } => {
                if offset <= last_offset {
                    return None;
                }
                let mapping = match valid(last_pcr, last_offset) {
                    Some(step) => Mapping {
                        base_offset: last_offset,
                        base_time: time,
                        bytes: offset - last_offset,
                        micros: step,
                    },
                    None => Mapping {
                        base_offset: last_offset,
                        base_time: time,
                        bytes,
                        micros,
                    },
                };
                self.state = State::Running {
                    offset,
                    time: mapping.at(offset),
                    pcr,
                    bytes: mapping.bytes,
                    micros: mapping.micros,
                };
                Some(mapping)
            }
        }
    }

    /// Whether the reference PCR has been silent at `offset` for long enough to take another
    /// PID's: a second at the last rate, or a MiB before a rate is known.
    pub fn silent_since(&self, offset: u64) -> bool {
        match self.state {
            State::Unanchored => true,
            State::First { offset: last, .. } => offset.saturating_sub(last) > SILENT_BYTES,
            State::Running {
                offset: last,
                bytes,
                micros,
                ..
            } => {
                let elapsed = i128::from(offset.saturating_sub(last)) * i128::from(micros)
                    / i128::from(bytes.max(1));
                elapsed > i128::from(SILENT)
            }
        }
    }

    /// Times bytes past the last PCR when they cannot wait for the next one: at the last
    /// interval's rate, or all at 0 before a rate is known.
    pub fn extrapolation(&self) -> Mapping {
        match self.state {
            State::Running {
                offset,
                time,
                bytes,
                micros,
                ..
            } => Mapping {
                base_offset: offset,
                base_time: time,
                bytes,
                micros,
            },
            State::Unanchored | State::First { .. } => Mapping::UNKNOWN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_timed_between_pcrs_and_before_the_first() {
        let mut clock = Clock::new(100_000);
        assert_eq!(clock.anchor(376, 2_000 * 27, false), None);
        let mapping = clock
            .anchor(376 + 20 * 188, 22_000 * 27, false)
            .expect("rate");
        assert_eq!(mapping.at(0), 0);
        assert_eq!(mapping.at(376), 2_000);
        assert_eq!(mapping.at(188 * 12), 12_000);
        // A jump of 200 ms is not followed: the next 20 packets take 20 ms as before.
        let jump = clock
            .anchor(376 + 40 * 188, 242_000 * 27, false)
            .expect("mapping");
        assert_eq!(jump.at(376 + 40 * 188), 42_000);
        // And the timeline goes on from there with the PCR's steps.
        let next = clock
            .anchor(376 + 60 * 188, 262_000 * 27, false)
            .expect("mapping");
        assert_eq!(next.at(376 + 60 * 188), 62_000);
    }
}
