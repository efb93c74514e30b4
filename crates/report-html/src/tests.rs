//! The page's contents, from hand-made reports and series.

use vqa_core::report::{Evidence, Measurements, Summary};
use vqa_core::{DetectorName, StreamId};

use super::*;

const S: i64 = 1_000_000;

fn incident(kind: IncidentKind, channel: Option<u16>, start: f64, end: f64) -> Incident {
    let (start, end) = (time::from_secs(start), time::from_secs(end));
    let mut evidence = Evidence::new();
    evidence.insert("mafd".into(), Summary::of(0.004));
    Incident {
        kind,
        channel,
        start,
        end,
        duration: end - start,
        severity: Severity::Major,
        segments: [0, 0],
        evidence,
    }
}

fn report(incidents: Vec<Incident>) -> StreamReport {
    let mut r = StreamReport {
        stream: StreamId::new("clip".to_string()),
        input: "clip.mp4".into(),
        complete: true,
        incidents,
        ..StreamReport::default()
    };
    r.coverage.analysed = 10 * S;
    r.coverage.segments = 10;
    r.media.video = Some(vqa_core::model::VideoInfo {
        codec: "h264".into(),
        width: 640,
        height: 360,
        frame_rate: Some(25.0),
    });
    r.media.audio = Some(vqa_core::model::AudioInfo {
        codec: "aac".into(),
        sample_rate: 48_000,
        channels: 2,
        layout: "stereo".into(),
    });
    r
}

/// Ten one-second segments, each measuring `name` with the given (min, mean, max).
fn points(name: &str, value: impl Fn(usize) -> (f64, f64, f64)) -> Vec<Point> {
    (0..10)
        .map(|i| {
            let (min, mean, max) = value(i);
            let mut measurements = Measurements::default();
            measurements.values.insert(
                name.into(),
                Summary {
                    min,
                    max,
                    mean,
                    count: 25,
                },
            );
            Point {
                start: i as i64 * S,
                end: (i as i64 + 1) * S,
                measurements,
            }
        })
        .collect()
}

/// The value of `attr="..."` in `element`.
fn attr(element: &str, attr: &str) -> f64 {
    let from = element
        .find(&format!(" {attr}=\""))
        .unwrap_or_else(|| panic!("no {attr} in {element}"))
        + attr.len()
        + 3;
    let len = element[from..].find('"').expect("closing quote");
    element[from..from + len].parse().expect("a number")
}

/// Each element of the page that starts with `prefix`, up to its `>`.
fn elements<'a>(page: &'a str, prefix: &str) -> Vec<&'a str> {
    page.match_indices(prefix)
        .map(|(at, _)| {
            let end = page[at..].find('>').expect("element end");
            &page[at..at + end]
        })
        .collect()
}

/// The SVG of one graph.
fn graph<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("data-graph=\"{id}\""))
        .unwrap_or_else(|| panic!("no graph {id}"));
    let end = page[start..].find("</svg>").expect("graph end");
    &page[start..start + end]
}

#[test]
fn incidents_are_bars_at_their_times_in_a_lane_per_kind_and_channel() {
    let mut silence = incident(IncidentKind::Silence, Some(1), 8.0, 9.0);
    silence.severity = Severity::Critical;
    let r = report(vec![
        incident(IncidentKind::Freeze, None, 2.0, 4.52),
        silence,
    ]);
    let page = render(&r, Some(&[]), &PipelineConfig::default());
    let plot = WIDTH - LABELS - RIGHT;
    let bars = elements(&page, "<rect class=\"incident\"");
    assert_eq!(bars.len(), 2, "{bars:?}");
    let freeze = bars
        .iter()
        .find(|b| b.contains("data-kind=\"freeze\""))
        .expect("freeze bar");
    assert!(
        (attr(freeze, "x") - (LABELS + 0.2 * plot)).abs() < 0.1,
        "{freeze}"
    );
    assert!(
        (attr(freeze, "width") - 0.252 * plot).abs() < 0.1,
        "{freeze}"
    );
    assert!(freeze.contains(severity_colour(Severity::Major)));
    let silence = bars
        .iter()
        .find(|b| b.contains("data-kind=\"silence\""))
        .expect("silence bar");
    assert!((attr(silence, "x") - (LABELS + 0.8 * plot)).abs() < 0.1);
    assert!(silence.contains(severity_colour(Severity::Critical)));
    // Two lanes, the second below the first, named with the channel.
    assert!(attr(silence, "y") > attr(freeze, "y"));
    assert!(page.contains(">silence ch 1</text>"));
    // Hovering says when, how bad and why.
    assert!(
        page.contains(
            "<title>freeze: 2.000 – 4.520 s (2.520 s), major: frame difference ≤ 0.004</title>"
        ),
        "{page}"
    );
    // The header counts them by kind.
    assert!(page.contains("<b>2 incidents</b>"));
    assert!(page.contains("freeze: 1 major") && page.contains("silence: 1 critical"));
    // The freeze graph shades its incident; the black graph does not.
    assert_eq!(graph(&page, "freeze").matches("incident-shade").count(), 1);
    assert_eq!(graph(&page, "black").matches("incident-shade").count(), 0);
}

#[test]
fn no_incidents_says_so() {
    let page = render(&report(vec![]), Some(&[]), &PipelineConfig::default());
    assert!(page.contains(">No incidents</text>"));
    assert!(elements(&page, "<rect class=\"incident\"").is_empty());
}

#[test]
fn series_are_drawn_per_segment_on_the_shared_axis_against_their_limits() {
    // Black share 10% .. 100% rising a tenth a second; 2 s of full black at the end.
    let points = points(BLACK_RATIO, |i| {
        let v = (i + 1) as f64 / 10.0;
        (v * 0.5, v, v)
    });
    let page = render(&report(vec![]), Some(&points), &PipelineConfig::default());
    let black = graph(&page, "black");
    assert!(black.contains("data-points=\"10\""));
    let plot = WIDTH - LABELS - RIGHT;
    // The mean of segment 4 (50%) at its middle, 4.5 s; the plot spans 0..100% over
    // 110 px from y = 28.
    let x = LABELS + 0.45 * plot;
    let y = 28.0 + 110.0 * 0.5;
    assert!(
        black.contains(&format!("{x:.1},{y:.1}")),
        "{x:.1},{y:.1} in {black}"
    );
    let line = elements(black, "<polyline");
    assert_eq!(line.len(), 1);
    assert_eq!(line[0].matches(',').count(), 10, "{}", line[0]);
    // The configured limit: black at 98%.
    assert!(black.contains("black at 98%"));
    assert!(
        (attr(elements(black, "<line class=\"guide\"")[0], "y1") - (28.0 + 110.0 * 0.02)).abs()
            < 0.1
    );
    // The other graphs measured nothing: each says why.
    for id in ["freeze", "blur", "loudness"] {
        let g = graph(&page, id);
        assert!(g.contains("data-points=\"0\""), "{id}");
        assert!(g.contains("not measured in any segment"), "{id}: {g}");
    }
    assert!(graph(&page, "av_sync").contains("no sync test pattern"));
}

#[test]
fn a_segment_without_the_measurement_breaks_the_line() {
    let mut points = points(FREEZE_MAFD, |_| (2.0, 3.0, 4.0));
    points[5].measurements = Measurements::default();
    let page = render(&report(vec![]), Some(&points), &PipelineConfig::default());
    let freeze = graph(&page, "freeze");
    assert!(freeze.contains("data-points=\"9\""));
    assert_eq!(elements(freeze, "<polyline").len(), 2);
}

#[test]
fn loudness_is_read_from_the_segments_histograms_against_the_target_window() {
    let mut points = points("unrelated", |_| (0.0, 0.0, 0.0));
    for p in &mut points {
        for v in [-30.0, -24.0, -20.0] {
            p.measurements
                .add_to_histogram(vqa_core::loudness::MOMENTARY, v);
        }
    }
    let page = render(&report(vec![]), Some(&points), &PipelineConfig::default());
    let loudness = graph(&page, "loudness");
    assert!(loudness.contains("data-points=\"10\""), "{loudness}");
    // Mean -24.67 LUFS on a -60..0 scale; the band from -30 to -20.
    let y = |v: f64| 28.0 + 110.0 * (-v / 60.0);
    assert!(
        loudness.contains(&format!(",{:.1}", y(-74.0 / 3.0))),
        "{loudness}"
    );
    let band = elements(loudness, "<rect class=\"guide\"")[0];
    // The programme's window, -23 ± 1 LU: -24 .. -22 LUFS.
    assert!((attr(band, "y") - y(-22.0)).abs() < 0.1, "{band}");
    assert!(
        (attr(band, "height") - (y(-24.0) - y(-22.0))).abs() < 0.1,
        "{band}"
    );
    assert!(loudness.contains("target -23 LUFS ±1 LU (programme, whole input)"));
    assert!(loudness.contains("short-term maximum -18 LUFS"));
}

#[test]
fn a_detector_that_did_not_run_is_named_in_its_graph() {
    let config = PipelineConfig {
        detectors: vec![DetectorName::Freeze],
        ..PipelineConfig::default()
    };
    let mut r = report(vec![]);
    let page = render(&r, Some(&[]), &config);
    assert!(graph(&page, "blur").contains("the blur detector did not run"));
    assert!(graph(&page, "loudness").contains("the loudness detector did not run"));
    assert!(page.contains("h264 640x360 25 fps"));
    // Without a recorder (distributed topology) the page says why nothing is plotted.
    let page = render(&r, None, &config);
    assert!(page.contains("kept only when the stages run in this process"));
    r.media.audio = None;
    let page = render(&r, Some(&[]), &PipelineConfig::default());
    assert!(graph(&page, "loudness").contains("the input has no audio"));
}

#[test]
fn names_paths_and_warnings_are_escaped_and_nothing_is_fetched() {
    let mut r = report(vec![incident(IncidentKind::Freeze, None, 1.0, 2.0)]);
    r.input = r#"/tmp/<script>alert("x")</script>&'.mp4"#.into();
    r.warnings = vec!["packet <b>17</b> & more".into()];
    let page = render(&r, Some(&[]), &PipelineConfig::default());
    assert!(!page.contains("<script"), "no markup from the input");
    assert!(page.contains("/tmp/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;.mp4"));
    assert!(page.contains("packet &lt;b&gt;17&lt;/b&gt; &amp; more"));
    // Self-contained: no scripts, stylesheets, images or fonts from elsewhere.
    for outside in ["src=", "href=", "@import", "url("] {
        assert!(!page.contains(outside), "{outside}");
    }
}
