//! Picture format checks on real decoded video (docs/picture-format.md): clips made with the
//! ffmpeg CLI whose black borders change, whose declared aspect ratio changes, or whose
//! interlaced content is declared with the wrong field order, at known times; decoded by
//! the real converter and analysed by the single-process runner. Each change must be found
//! where it is (within a picture or two), with its sizes, and nothing on clean content —
//! the testkit's natural programme and a pan over a real photograph.

use std::path::{Path, PathBuf};

use vqa_core::{time, DetectorName, Incident, IncidentKind, PipelineConfig, StreamReport};
use vqa_testkit::{make_clip, run_ffmpeg, ClipSpec, Content};

/// Times within a picture or two of the truth (25 fps).
const TOLERANCE: f64 = 0.09;

fn picture_format() -> PipelineConfig {
    use DetectorName::*;
    PipelineConfig {
        detectors: vec![Borders, AspectRatio, FieldOrder, Black],
        ..PipelineConfig::default()
    }
}

fn analyze(path: &Path, config: &PipelineConfig) -> StreamReport {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let report = rt
        .block_on(vqa_deploy_ecs::analyze_file(path, config))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .report;
    assert!(report.complete, "{:?}", report.warnings);
    report
}

fn of_kind(report: &StreamReport, kind: IncidentKind) -> Vec<&Incident> {
    report.incidents.iter().filter(|i| i.kind == kind).collect()
}

/// Makes `name` in `dir` from a lavfi graph with the given output options.
fn make(dir: &Path, name: &str, graph: &str, options: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["-f", "lavfi", "-i", graph];
    args.extend(options);
    args.push(path.to_str().expect("utf-8 path"));
    run_ffmpeg(args).unwrap_or_else(|e| panic!("making {name}: {e:#}"));
    path
}

const H264: &[&str] = &["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "50"];

/// Black bars drawn over pictures `first..=last`: `rows` at the top and bottom, `columns`
/// at the left and right.
fn bars(rows: u32, columns: u32, first: u32, last: u32) -> String {
    let enable = format!("enable='between(n,{first},{last})'");
    let mut boxes = Vec::new();
    if rows > 0 {
        boxes.push(format!(
            "drawbox=x=0:y=0:w=iw:h={rows}:color=black:t=fill:{enable}"
        ));
        boxes.push(format!(
            "drawbox=x=0:y=ih-{rows}:w=iw:h={rows}:color=black:t=fill:{enable}"
        ));
    }
    if columns > 0 {
        boxes.push(format!(
            "drawbox=x=0:y=0:w={columns}:h=ih:color=black:t=fill:{enable}"
        ));
        boxes.push(format!(
            "drawbox=x=iw-{columns}:y=0:w={columns}:h=ih:color=black:t=fill:{enable}"
        ));
    }
    boxes.join(",")
}

/// An incident's start and its sizes after and before, top/bottom/left/right.
fn change(i: &Incident) -> (f64, [f64; 4], [f64; 4]) {
    let px = |prefix: &str| {
        ["top", "bottom", "left", "right"].map(|e| i.evidence[&format!("{prefix}{e}_px")].mean)
    };
    (time::to_secs(i.start), px(""), px("before_"))
}

fn assert_change(i: &Incident, start: f64, after: [f64; 4], before: [f64; 4]) {
    let (s, a, b) = change(i);
    let close = |x: [f64; 4], y: [f64; 4]| x.iter().zip(y).all(|(x, y)| (x - y).abs() <= 2.0);
    assert!(
        (s - start).abs() <= TOLERANCE && close(a, after) && close(b, before),
        "want a change at {start} s from {before:?} to {after:?}; found {:?}",
        change(i)
    );
    // Reported once the new borders held 1 s: within 2 s of the change.
    let held = time::to_secs(i.end) - s;
    assert!((1.0..2.0).contains(&held), "{i:?}");
}

#[test]
fn letterbox_and_pillarbox_appearing_changing_and_going_are_found_and_black_is_not() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // 13 s at 25 fps: plain to 3 s, letterbox 40 px to 7 s (black pictures 5.0-5.52 s
    // inside it), letterbox 60 px to 10 s, pillarbox 80 px after.
    let graph = [
        "testsrc2=s=640x360:r=25:d=13".to_string(),
        bars(40, 0, 75, 174),
        bars(60, 0, 175, 249),
        bars(0, 80, 250, 400),
        "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(n,125,137)'".into(),
    ]
    .join(",");
    let path = make(dir.path(), "borders.mp4", &graph, H264);
    let report = analyze(&path, &picture_format());
    let found = of_kind(&report, IncidentKind::Borders);
    assert_eq!(found.len(), 3, "{:#?}", report.incidents);
    assert_change(found[0], 3.0, [40.0, 40.0, 0.0, 0.0], [0.0; 4]);
    assert_change(
        found[1],
        7.0,
        [60.0, 60.0, 0.0, 0.0],
        [40.0, 40.0, 0.0, 0.0],
    );
    assert_change(
        found[2],
        10.0,
        [0.0, 0.0, 80.0, 80.0],
        [60.0, 60.0, 0.0, 0.0],
    );
    assert_eq!(
        found[0].kind.headline(&found[0].evidence).as_deref(),
        Some("borders (top/bottom/left/right) 0/0/0/0 → 40/40/0/0 px")
    );
    // The black pictures are black's, and no border change.
    let black = of_kind(&report, IncidentKind::Black);
    assert_eq!(black.len(), 1, "{black:?}");
    assert!(of_kind(&report, IncidentKind::AspectRatio).is_empty());
    assert!(of_kind(&report, IncidentKind::FieldOrder).is_empty());
}

/// 8 s at 25 fps, 640x360, a slow zoom and pan over a photograph, through `then`.
fn pan(dir: &Path, name: &str, then: &str) -> PathBuf {
    let photo = vqa_testkit::test_photo();
    let filter = format!(
        "scale=900:600:force_original_aspect_ratio=increase,crop=900:600,\
         zoompan=z='1.05+0.2*on/200':x='(iw-iw/zoom)*(0.2+0.5*on/200)':\
         y='(ih-ih/zoom)*0.4':d=200:s=640x360:fps=25,format=yuv420p{then}"
    );
    let path = dir.join(name);
    let photo = photo.to_string_lossy();
    let out = path.to_string_lossy();
    let mut args = vec![
        "-loop",
        "1",
        "-framerate",
        "25",
        "-i",
        &photo,
        "-vf",
        &filter,
        "-frames:v",
        "200",
    ];
    args.extend(H264);
    args.push(&out);
    run_ffmpeg(args).unwrap_or_else(|e| panic!("making {name}: {e:#}"));
    path
}

#[test]
fn natural_pictures_raise_nothing_steady_borders_neither_and_a_letterbox_over_them_is_found() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = picture_format();
    let quiet = |report: &StreamReport| {
        let ours = [
            IncidentKind::Borders,
            IncidentKind::AspectRatio,
            IncidentKind::FieldOrder,
        ];
        let found: Vec<_> = report
            .incidents
            .iter()
            .filter(|i| ours.contains(&i.kind))
            .collect();
        assert!(found.is_empty(), "{found:#?}");
    };
    // The testkit's natural programme: scenes (some dark, fractals with black areas) with
    // hard cuts.
    let spec = ClipSpec {
        content: Content::Natural,
        duration: 20.0,
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "natural", &spec).expect("natural clip");
    quiet(&analyze(&clip.path, &config));
    // A photograph, plain and letterboxed throughout (a 2.39:1 film in 16:9).
    quiet(&analyze(&pan(dir.path(), "pan.mp4", ""), &config));
    let boxed = pan(
        dir.path(),
        "boxed.mp4",
        ",pad=640:360:0:46:black,crop=640:360:0:0",
    );
    quiet(&analyze(&boxed, &config));
    // A letterbox of 44 px appearing over it at 3 s.
    let appearing = pan(
        dir.path(),
        "appearing.mp4",
        &format!(",{}", bars(44, 0, 75, 400)),
    );
    let report = analyze(&appearing, &config);
    let found = of_kind(&report, IncidentKind::Borders);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_change(found[0], 3.0, [44.0, 44.0, 0.0, 0.0], [0.0; 4]);
}

#[test]
fn a_change_of_declared_aspect_ratio_is_found_where_it_is() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Two 4 s MPEG-TS encodes, square pixels then 3:4 (16:9 then 4:3), joined by the
    // concat demuxer: the second part's SPS declares the new ratio.
    let a = make(
        dir.path(),
        "a.ts",
        "testsrc2=s=640x360:r=25:d=4,setsar=1",
        H264,
    );
    let b = make(
        dir.path(),
        "b.ts",
        "testsrc2=s=640x360:r=25:d=4,setsar=3/4",
        H264,
    );
    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        format!("file '{}'\nfile '{}'\n", a.display(), b.display()),
    )
    .expect("write list");
    let joined = dir.path().join("sar.ts");
    let (list, out) = (list.to_string_lossy(), joined.to_string_lossy());
    run_ffmpeg([
        "-f", "concat", "-safe", "0", "-i", &list, "-c", "copy", &out,
    ])
    .expect("concat");
    let report = analyze(&joined, &picture_format());
    let found = of_kind(&report, IncidentKind::AspectRatio);
    assert_eq!(found.len(), 1, "{:#?}", report.incidents);
    assert!(
        (time::to_secs(found[0].start) - 4.0).abs() <= TOLERANCE,
        "{found:?}"
    );
    let e = &found[0].evidence;
    assert!((e["dar_before"].mean - 16.0 / 9.0).abs() < 0.01, "{e:?}");
    assert!((e["dar"].mean - 4.0 / 3.0).abs() < 0.01, "{e:?}");
    // The pictures are the same shape: no border change.
    assert!(of_kind(&report, IncidentKind::Borders).is_empty());
}

#[test]
fn interlaced_content_against_its_declared_field_order_is_found_and_agreement_is_not() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = picture_format();
    // 8 s of 576i25 MPEG-2: 50 fps pictures woven into top-field-first frames (or left
    // progressive), and the stream's declaration: progressive unless coded interlaced,
    // then top or bottom first by `-top`.
    let clip = |name: &str, interlaced: bool, declare: &[&str]| {
        let weave = if interlaced {
            "testsrc2=s=720x576:r=50:d=8,interlace=scan=tff:lowpass=off"
        } else {
            "testsrc2=s=720x576:r=25:d=8"
        };
        let mut options = vec!["-c:v", "mpeg2video", "-q:v", "4"];
        options.extend(declare);
        make(dir.path(), name, weave, &options)
    };
    let interlaced = ["-flags", "+ilme+ildct"];
    let field_order = |report: &StreamReport| -> Vec<(f64, f64, f64)> {
        of_kind(report, IncidentKind::FieldOrder)
            .iter()
            .map(|i| {
                (
                    time::to_secs(i.start),
                    time::to_secs(i.end),
                    i.evidence["declared"].max,
                )
            })
            .collect()
    };
    // Woven TFF declared progressive (0) and bottom first (2): found over the whole clip.
    for (name, declare, code) in [
        ("prog.mpg", vec![], 0.0),
        ("bff.mpg", [&interlaced[..], &["-top", "0"]].concat(), 2.0),
    ] {
        let report = analyze(&clip(name, true, &declare), &config);
        let found = field_order(&report);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        let (start, end, declared) = found[0];
        assert!(start <= 0.1 && end >= 7.9, "{name}: {found:?}");
        assert_eq!(declared, code, "{name}");
        let i = of_kind(&report, IncidentKind::FieldOrder)[0];
        assert!(
            i.evidence["tff"].count >= 150,
            "{name}: {:?}",
            i.kind.headline(&i.evidence)
        );
    }
    // A slow pan over a photograph shot at 50 pictures a second and woven top first,
    // declared progressive: natural motion combs less, and is found too.
    let photo = vqa_testkit::test_photo();
    let woven = dir.path().join("pan.mpg");
    let (photo, out) = (photo.to_string_lossy(), woven.to_string_lossy());
    run_ffmpeg([
        "-loop",
        "1",
        "-framerate",
        "50",
        "-i",
        &photo,
        "-vf",
        "scale=900:600:force_original_aspect_ratio=increase,crop=900:600,\
         zoompan=z='1.05+0.2*on/400':x='(iw-iw/zoom)*(0.2+0.5*on/400)':\
         y='(ih-ih/zoom)*0.4':d=400:s=720x576:fps=50,format=yuv420p,\
         interlace=scan=tff:lowpass=linear",
        "-frames:v",
        "400",
        "-c:v",
        "mpeg2video",
        "-q:v",
        "3",
        &out,
    ])
    .expect("woven pan");
    let found = field_order(&analyze(&woven, &config));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].0 <= 0.1 && found[0].1 >= 7.9, "{found:?}");
    // Declared as it is, and progressive content declared interlaced: nothing.
    let tff = [&interlaced[..], &["-top", "1"]].concat();
    assert!(field_order(&analyze(&clip("tff.mpg", true, &tff), &config)).is_empty());
    assert!(field_order(&analyze(&clip("p.mpg", false, &[]), &config)).is_empty());
    assert!(field_order(&analyze(&clip("p_tff.mpg", false, &tff), &config)).is_empty());
}

#[test]
fn the_testkits_picture_defects_and_patterns_raise_no_picture_format_incident() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    use vqa_testkit::{BarsPattern, Defect, DefectKind::*};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = picture_format();
    let d = Defect::new;
    let specs = [
        ClipSpec {
            duration: 20.0,
            defects: vec![
                d(Black, 2.0, 4.0),
                d(Colorbars, 6.0, 9.0),
                d(Blur, 11.0, 13.0),
                d(Freeze, 15.0, 17.0),
            ],
            ..ClipSpec::default()
        },
        ClipSpec {
            duration: 20.0,
            width: 640,
            height: 360,
            content: Content::Natural,
            gop: Some(25),
            bars: BarsPattern::SmpteHd,
            defects: vec![
                d(Black, 1.0, 3.0),
                d(Blockiness, 5.0, 7.0),
                d(Corruption, 9.0, 10.0),
                d(FrameDrop, 12.0, 13.0),
                d(Colorbars, 15.0, 18.0),
            ],
            ..ClipSpec::default()
        },
        ClipSpec {
            duration: 10.0,
            content: Content::SyncPattern,
            ..ClipSpec::default()
        },
    ];
    for (n, spec) in specs.iter().enumerate() {
        let clip = make_clip(dir.path(), &format!("clip{n}"), spec).expect("clip");
        let report = analyze(&clip.path, &config);
        let ours: Vec<_> = report
            .incidents
            .iter()
            .filter(|i| matches!(i.kind, Borders | AspectRatio | FieldOrder))
            .collect();
        assert!(ours.is_empty(), "clip {n}: {ours:#?}");
    }
}
