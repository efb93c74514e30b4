//! Stream time. Timestamps are integer microseconds from the start of the input, so that
//! reports are exact and identical whichever topology (and wire encoding) produced them.

/// Microseconds from the start of the input.
pub type Micros = i64;

pub const MICROS_PER_SECOND: i64 = 1_000_000;

/// Seconds (as written in configuration and reports) to microseconds, rounded to nearest.
pub fn from_secs(seconds: f64) -> Micros {
    (seconds * MICROS_PER_SECOND as f64).round() as Micros
}

/// Microseconds to seconds, for reports.
pub fn to_secs(us: Micros) -> f64 {
    us as f64 / MICROS_PER_SECOND as f64
}

/// Serde adapter: a `Micros` field written as seconds (a JSON number) in reports.
pub mod as_secs {
    use super::Micros;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(us: &Micros, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(super::to_secs(*us))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Micros, D::Error> {
        f64::deserialize(d).map(super::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_trip_at_microsecond_precision() {
        for us in [0, 1, 40_000, 1_000_000, 3_599_999_999, -20_000] {
            assert_eq!(from_secs(to_secs(us)), us);
        }
        assert_eq!(from_secs(0.04), 40_000);
        assert_eq!(from_secs(1.0 / 3.0), 333_333);
    }
}
