//! `loudness`: EBU R128 loudness with the `ebur128` crate (a port of libebur128).
//!
//! Per segment, the audio lead-in (the rest of a 3 s window) fills the meter's filters and
//! windows without being read, then the segment's audio is fed in 100 ms steps. After each
//! step the momentary (400 ms) and short-term (3 s) loudness are read: momentary values are
//! BS.1770's gating blocks (400 ms, 75% overlap) and go to a histogram from which the
//! aggregator computes the stream's integrated loudness and loudness range, and judges
//! programme loudness over a sliding window (`loudness` incidents are the aggregator's: they
//! span segments). Per segment the detector reports the momentary kinds:
//!
//! * `loudness_jump`: short-term values (read every 500 ms) above `target + max_above` (EBU
//!   R128 s1's maximum short-term loudness); if `max_below` is set, also below `target -
//!   max_below` (above -70 LUFS, silence being the silence detector's), and the aggregator
//!   keeps such a dip only if it is also `max_below` under the programme level, so a quiet
//!   programme is one `loudness` incident, not a dip every few seconds.
//! * `true_peak`: each 100 ms step whose true peak (4x oversampled) is above
//!   `max_true_peak_dbtp`.

use ebur128::{Channel, EbuR128, Mode};
use vqa_core::config::{LoudnessConfig, LoudnessJumpConfig, TruePeakConfig};
use vqa_core::loudness::{MOMENTARY, SHORT_TERM, TRUE_PEAK};
use vqa_core::model::{AudioBlock, Segment};
use vqa_core::report::{Finding, IncidentKind, Measurements};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;

const SILENT: f64 = -70.0;
/// Short-term loudness is read every this many 100 ms steps.
const SHORT_TERM_EVERY: usize = 5;

pub struct LoudnessDetector {
    low: f64,
    high: f64,
    /// Hysteresis: inside the window by less than this is still the excursion's.
    clear: f64,
    jump_min_duration: Micros,
    /// Largest true peak allowed, dBTP.
    max_true_peak: f64,
    peak_min_duration: Micros,
}

impl LoudnessDetector {
    pub fn new(
        config: &LoudnessConfig,
        jump: &LoudnessJumpConfig,
        true_peak: &TruePeakConfig,
    ) -> Self {
        LoudnessDetector {
            // No lower bound unless dips are judged (`max_below_lu` > 0).
            low: if config.max_below_lu > 0.0 {
                config.target_lufs - config.max_below_lu
            } else {
                f64::NEG_INFINITY
            },
            high: config.target_lufs + config.max_above_lu,
            clear: config.clear_lu,
            jump_min_duration: time::from_secs(jump.min_duration),
            max_true_peak: config.max_true_peak_dbtp,
            peak_min_duration: time::from_secs(true_peak.min_duration),
        }
    }
}

/// The interleaved samples of the blocks that share the first one's format.
fn samples_of<'a>(blocks: impl Iterator<Item = &'a AudioBlock>, rate: u32, ch: u16) -> Vec<f32> {
    let mut out = Vec::new();
    for b in blocks.filter(|b| b.rate == rate && b.channels == ch) {
        out.extend_from_slice(&b.samples);
    }
    out
}

impl Detector for LoudnessDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Loudness
    }

    fn needs_pictures(&self) -> bool {
        false // audio only
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let Some(first) = segment.audio.first() else {
            return Vec::new();
        };
        let (rate, channels) = (first.rate, first.channels);
        // Loudness over lead-in and segment; true peak (4x oversampling, the costly part)
        // over the segment only.
        let meters = EbuR128::new(u32::from(channels), rate, Mode::S | Mode::M)
            .and_then(|m| Ok((m, EbuR128::new(u32::from(channels), rate, Mode::TRUE_PEAK)?)));
        let Ok((mut meter, mut peak_meter)) = meters else {
            return Vec::new();
        };
        if let Some(lfe) = first.lfe {
            let _ = meter.set_channel(u32::from(lfe), Channel::Unused);
        }
        let lead = samples_of(segment.audio_lead_in.iter(), rate, channels);
        let body = samples_of(segment.audio.iter(), rate, channels);
        let ch = usize::from(channels.max(1));
        // The lead-in fills the meter's windows; only the segment's own steps are read.
        if meter.add_frames_f32(&lead).is_err() {
            return Vec::new();
        }
        let mut fed = (lead.len() / ch) as u64;
        let step = (rate / 10).max(1) as usize;
        let (momentary_frames, short_frames) = (u64::from(rate) * 4 / 10, u64::from(rate) * 3);
        let mut runs = Runs::new(IncidentKind::LoudnessJump, self.jump_min_duration);
        let mut holds = Runs::holding(IncidentKind::LoudnessJump);
        let mut overs = Runs::new(IncidentKind::TruePeak, self.peak_min_duration);
        let mut peak = 0f64;
        let origin = first.time_of(0);
        let steps = body.len().div_ceil(step * ch);
        let mut judged_until = origin;
        for (k, chunk) in body.chunks(step * ch).enumerate() {
            if meter.add_frames_f32(chunk).is_err() {
                break;
            }
            fed += (chunk.len() / ch) as u64;
            let from = origin + (k * step) as i64 * 1_000_000 / i64::from(rate);
            let to = origin
                + ((k * step) as i64 + (chunk.len() / ch) as i64) * 1_000_000 / i64::from(rate);
            // True peak of this step, on every channel but the LFE.
            let mut step_peak = 0f64;
            if peak_meter.add_frames_f32(chunk).is_ok() {
                for c in 0..u32::from(channels) {
                    if Some(c as u16) != first.lfe {
                        step_peak = step_peak.max(peak_meter.prev_true_peak(c).unwrap_or(0.0));
                    }
                }
            }
            peak = peak.max(step_peak);
            let step_dbtp = 20.0 * step_peak.log10();
            let over = [("true_peak_dbtp", step_dbtp)];
            overs.push(
                from,
                to,
                (step_peak > 0.0 && step_dbtp > self.max_true_peak).then_some(&over[..]),
            );
            if fed >= momentary_frames {
                if let Ok(l) = meter.loudness_momentary() {
                    m.add_to_histogram(MOMENTARY, l.max(-200.0));
                }
            }
            if fed < short_frames {
                runs.push_undecided();
                holds.push_undecided();
                judged_until = to;
                continue;
            }
            // Short-term loudness sums its whole 3 s window on every read: read it every
            // `SHORT_TERM_EVERY` steps (and at the segment's last), each verdict covering
            // the steps since the one before.
            if !(k + 1).is_multiple_of(SHORT_TERM_EVERY) && k + 1 != steps {
                continue;
            }
            let from = judged_until.max(from - (SHORT_TERM_EVERY as i64 - 1) * 100_000);
            judged_until = to;
            let Ok(st) = meter.loudness_shortterm() else {
                runs.push(from, to, None);
                holds.push(from, to, None);
                continue;
            };
            if st > SILENT {
                m.add_to_histogram(SHORT_TERM, st);
            }
            let measure = [("short_term_lufs", st)];
            let out = st > SILENT && (st < self.low || st > self.high);
            let near = st > SILENT && (st < self.low + self.clear || st > self.high - self.clear);
            runs.push(from, to, out.then_some(&measure[..]));
            holds.push(from, to, (near && !out).then_some(&measure[..]));
        }
        if peak > 0.0 {
            m.add(TRUE_PEAK, 20.0 * peak.log10());
        }
        let mut findings = runs.finish();
        findings.extend(holds.finish());
        findings.extend(overs.finish());
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::audio_segment;

    /// `seconds` of a 1 kHz stereo sine at `amplitude`, starting at `start` µs.
    fn sine(start: Micros, seconds: f64, amplitude: f64) -> AudioBlock {
        let n = (48_000.0 * seconds) as usize;
        let samples: Vec<f32> = (0..n)
            .flat_map(|i| {
                let t = start as f64 / 1e6 + i as f64 / 48_000.0;
                let s = (amplitude * (2.0 * std::f64::consts::PI * 997.0 * t).sin()) as f32;
                [s, s]
            })
            .collect();
        AudioBlock {
            pts: start,
            skipped: 0,
            rate: 48_000,
            channels: 2,
            lfe: None,
            samples: samples.into(),
        }
    }

    fn segment(index: i64, amplitude: f64, lead: f64) -> Segment {
        let start = index * 1_000_000;
        let mut seg = audio_segment(index as u64, vec![sine(start, 1.0, amplitude)]);
        let from = start - (lead * 1e6) as i64;
        seg.audio_lead_in = vec![sine(from, lead, amplitude)];
        seg
    }

    fn run(seg: &Segment) -> (Vec<Finding>, Measurements) {
        run_with(seg, &LoudnessConfig::default())
    }

    fn run_with(seg: &Segment, config: &LoudnessConfig) -> (Vec<Finding>, Measurements) {
        let mut m = Measurements::default();
        let d = LoudnessDetector::new(config, &Default::default(), &Default::default());
        let f = d.analyze_measuring(seg, &mut m);
        (f, m)
    }

    fn of_kind(found: &[Finding], kind: IncidentKind) -> Vec<&Finding> {
        found.iter().filter(|f| f.kind == kind).collect()
    }

    #[test]
    fn a_true_peak_above_the_standards_maximum_is_a_finding_where_it_happened() {
        // Segment 5 at -20 dBFS, with 200 ms at 0.95 (-0.45 dBTP: above R128's -1) from
        // 5.5 s; a 997 Hz sine's true peak is its amplitude.
        let mut seg = segment(5, 0.1, 2.9);
        seg.audio = vec![
            sine(5_000_000, 0.5, 0.1),
            sine(5_500_000, 0.2, 0.95),
            sine(5_700_000, 0.3, 0.1),
        ];
        let (found, m) = run(&seg);
        let peaks = of_kind(&found, IncidentKind::TruePeak);
        assert_eq!(peaks.len(), 1, "{found:?}");
        // The oversampling filter's delay carries the last samples' peak into the next step.
        assert_eq!(peaks[0].start, 5_500_000);
        assert!(
            [5_700_000, 5_800_000].contains(&peaks[0].end),
            "{:?}",
            peaks[0]
        );
        assert!(!peaks[0].reaches_end);
        let tp = peaks[0].evidence["true_peak_dbtp"].max;
        assert!((tp + 0.45).abs() < 0.1, "{tp}");
        assert!((m.values[TRUE_PEAK].max + 0.45).abs() < 0.1);
    }

    #[test]
    fn true_peak_is_judged_against_the_chosen_standard() {
        use vqa_core::config::LoudnessStandard;
        // 0.85 is -1.41 dBTP: under EBU R128's -1 dBTP, over ATSC A/85's -2.
        let seg = segment(5, 0.85, 2.9);
        let (r128, _) = run(&seg);
        assert!(
            of_kind(&r128, IncidentKind::TruePeak).is_empty(),
            "{r128:?}"
        );
        let a85 = LoudnessConfig::for_standard(LoudnessStandard::AtscA85);
        let (found, _) = run_with(&seg, &a85);
        let peaks = of_kind(&found, IncidentKind::TruePeak);
        assert_eq!(peaks.len(), 1, "{found:?}");
        assert_eq!((peaks[0].start, peaks[0].end), (5_000_000, 6_000_000));
        assert!(peaks[0].reaches_end);
    }

    #[test]
    fn a_sine_measures_its_known_loudness() {
        // BS.1770: a 997 Hz sine at 0 dBFS on one channel is -3.01 LUFS; on two, 0.0 LUFS.
        // At amplitude 0.1 (-20 dBFS) on both channels: -20 LUFS.
        let (found, m) = run(&segment(5, 0.1, 2.9));
        assert!(found.is_empty(), "{found:?}");
        let h = &m.histograms[MOMENTARY];
        assert_eq!(h.values().sum::<u64>(), 10);
        let l = vqa_core::loudness::integrated(h).unwrap();
        assert!((l + 20.0).abs() < 0.15, "{l}");
        let st = &m.histograms[SHORT_TERM];
        assert_eq!(st.values().sum::<u64>(), 2);
        let tp = m.values[TRUE_PEAK].max;
        assert!((tp + 20.0).abs() < 0.2, "{tp}");
    }

    #[test]
    fn too_loud_and_too_quiet_are_findings_and_silence_is_not() {
        // -8 LUFS is 15 LU above the -23 target; -40 LUFS 17 LU below it.
        let (loud, _) = run(&segment(5, 0.4, 2.9));
        assert_eq!(loud.len(), 1);
        assert_eq!(loud[0].kind, IncidentKind::LoudnessJump);
        assert!(loud[0].reaches_end);
        assert_eq!(loud[0].start, 5_000_000);
        // Dips are judged only when `max_below_lu` is set.
        let (quiet, _) = run(&segment(5, 0.01, 2.9));
        assert!(quiet.is_empty(), "{quiet:?}");
        let dips = LoudnessConfig {
            max_below_lu: 10.0,
            ..LoudnessConfig::default()
        };
        let (quiet, _) = run_with(&segment(5, 0.01, 2.9), &dips);
        assert_eq!(quiet.len(), 1);
        let (silent, _) = run_with(&segment(5, 0.0, 2.9), &dips);
        assert!(silent.is_empty());
    }

    #[test]
    fn without_three_seconds_of_audio_short_term_is_not_judged() {
        let (found, m) = run(&segment(0, 0.4, 0.0));
        assert!(found.is_empty());
        // Momentary blocks from 400 ms on: 7 of the 10 steps.
        assert_eq!(m.histograms[MOMENTARY].values().sum::<u64>(), 7);
    }
}
