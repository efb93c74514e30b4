//! What vqa's HTML pages share: escaping, the palette, and a time axis for SVG charts.

use std::fmt::Write;

/// Enough distinct colours for every series of a chart (Tableau 10, then two more).
pub const PALETTE: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1b9e77", "#7570b3",
];

/// Text made safe inside HTML elements and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Seconds from the start of the input mapped onto a chart's horizontal extent: every chart
/// of a page shares one, so an incident and the measurements behind it line up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeAxis {
    /// Where time 0 is drawn, px.
    pub left: f64,
    /// Width of the plotted span, px.
    pub width: f64,
    /// The span's length, seconds (> 0).
    pub seconds: f64,
}

impl TimeAxis {
    pub fn new(left: f64, width: f64, seconds: f64) -> Self {
        TimeAxis {
            left,
            width,
            seconds: if seconds > 0.0 { seconds } else { 1.0 },
        }
    }

    /// The x of a time, seconds; times beyond the span are kept at its edges.
    pub fn x(&self, seconds: f64) -> f64 {
        self.left + seconds.clamp(0.0, self.seconds) / self.seconds * self.width
    }

    /// Tick times: a round step giving about `about` ticks over the span.
    pub fn ticks(&self, about: usize) -> Vec<f64> {
        const STEPS: [f64; 16] = [
            0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0,
            1800.0, 3600.0,
        ];
        let want = self.seconds / about.max(1) as f64;
        let step = STEPS
            .iter()
            .copied()
            .find(|s| *s >= want)
            .unwrap_or_else(|| (want / 3600.0).ceil() * 3600.0);
        let n = (self.seconds / step).floor() as usize;
        (0..=n).map(|i| i as f64 * step).collect()
    }

    /// A tick's label: seconds under a minute, m:ss or h:mm:ss beyond.
    pub fn label(&self, seconds: f64) -> String {
        if self.seconds < 60.0 {
            let s = format!("{seconds:.1}");
            format!("{} s", s.trim_end_matches(".0"))
        } else {
            let t = seconds.round() as u64;
            let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
            if h > 0 {
                format!("{h}:{m:02}:{s:02}")
            } else {
                format!("{m}:{s:02}")
            }
        }
    }

    /// Vertical grid lines from `top` to `bottom` at the ticks, labelled under `bottom` when
    /// `labels` is set.
    pub fn grid(&self, top: f64, bottom: f64, labels: bool) -> String {
        let mut svg = String::new();
        for t in self.ticks(12) {
            let x = self.x(t);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#e3e3e3"/>"##
            );
            if labels {
                let _ = write!(
                    svg,
                    r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                    bottom + 14.0,
                    esc(&self.label(t))
                );
            }
        }
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_axis_maps_time_linearly_and_ticks_are_round() {
        let a = TimeAxis::new(100.0, 1000.0, 12.0);
        assert_eq!(a.x(0.0), 100.0);
        assert_eq!(a.x(6.0), 600.0);
        assert_eq!(a.x(99.0), 1100.0, "clamped at the end");
        assert_eq!(a.ticks(12), (0..=12).map(f64::from).collect::<Vec<_>>());
        assert_eq!(a.label(2.0), "2 s");
        let long = TimeAxis::new(0.0, 1000.0, 1250.0);
        assert_eq!(long.ticks(12)[1], 120.0);
        assert_eq!(long.label(1230.0), "20:30");
    }
}
