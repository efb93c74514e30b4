//! `vqa eval` as a user meets it: a corpus directory that is not one, a one-clip corpus in
//! text and JSON, and a corpus listing a clip that is not there.

use std::path::Path;
use std::process::{Command, Output};

use vqa_testkit::corpus::{MANIFEST_NAME, MANIFEST_VERSION};
use vqa_testkit::{make_clip, ClipSpec, CorpusEntry, CorpusSize, Defect, Manifest};

fn vqa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vqa"))
        .args(args)
        .output()
        .expect("run vqa")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn a_directory_that_is_no_corpus_is_one_line_naming_it_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    for (path, cause) in [
        (&missing, "no such directory"),
        (&dir.path().to_path_buf(), "no corpus.json"),
    ] {
        let o = vqa(&["eval", utf8(path)]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("vqa: error: "), "{err}");
        assert!(err.contains(utf8(path)), "names the directory: {err}");
        assert!(err.contains(cause), "{err}");
        assert!(
            err.contains("vqa-make-clip --corpus"),
            "says how to make one: {err}"
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn a_one_clip_corpus_is_scored_in_text_and_json_and_a_missing_clip_fails_the_run() {
    if !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ClipSpec {
        duration: 5.0,
        defects: vec![Defect::black(1.5, 2.5)],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "black", &spec).expect("clip");
    let entry = CorpusEntry {
        path: "black.mp4".into(),
        spec,
        truth: clip.truth.clone(),
        implied: clip.implied.clone(),
        offset_ms: None,
        clean: false,
    };
    let mut manifest = Manifest {
        version: MANIFEST_VERSION,
        size: CorpusSize::Quick,
        clips: vec![entry.clone()],
    };
    let write = |m: &Manifest| {
        let json = serde_json::to_string(m).expect("json");
        std::fs::write(dir.path().join(MANIFEST_NAME), json).expect("write");
    };
    write(&manifest);
    let corpus = utf8(dir.path());

    let o = vqa(&["eval", corpus, "--detectors", "black,freeze"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
    assert!(text.contains("1 clips, 1 analysed"), "{text}");
    for expected in ["black         vqa", "ffmpeg", "blackdetect", "freezedetect"] {
        assert!(text.contains(expected), "{expected}: {text}");
    }

    let o = vqa(&[
        "eval",
        corpus,
        "--detectors",
        "black",
        "--no-ffmpeg",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let detectors = json["detectors"].as_array().expect("detectors");
    assert_eq!(detectors.len(), 1, "only black is run and labelled: {json}");
    let black = &detectors[0];
    assert_eq!(black["detector"], "black");
    assert_eq!(black["ran"], true);
    assert!(black["ffmpeg"].is_null(), "--no-ffmpeg");
    let vqa_score = &black["vqa"];
    assert_eq!(vqa_score["truth"], 1);
    let (tp, fn_) = (vqa_score["tp"].as_u64(), vqa_score["fn"].as_u64());
    assert_eq!(tp.zip(fn_).map(|(a, b)| a + b), Some(1), "{vqa_score}");

    // The same clip marked clean (its black second taken for an edit): every incident on it
    // is a false alarm, judged under both profiles unless `--profile` names one. File QC
    // raises black after 0.5 s, broadcast after 10 s.
    let clean = Manifest {
        clips: vec![CorpusEntry {
            truth: Vec::new(),
            implied: Vec::new(),
            clean: true,
            ..entry.clone()
        }],
        ..manifest.clone()
    };
    write(&clean);
    let o = vqa(&["eval", corpus, "--detectors", "black", "--no-ffmpeg"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
    assert!(text.contains("Clean content: 1 clips, 5 s"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("black ") && l.contains('('))
        .unwrap_or_else(|| panic!("a clean-content row for black: {text}"));
    // Columns: file QC's count (per hour), then broadcast's; 5 s is 1/720 of an hour.
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cells[1], cells[3], cells[4]),
        ("1", "0", "(0.0)"),
        "{text}"
    );
    let per_hour: f64 = cells[2]
        .trim_matches(|c| c == '(' || c == ')')
        .parse()
        .expect("a rate");
    assert!((700.0..=730.0).contains(&per_hour), "{text}");
    let o = vqa(&[
        "eval",
        corpus,
        "--detectors",
        "black",
        "--no-ffmpeg",
        "--profile",
        "broadcast",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let judges = json["clean"]["judges"].as_array().expect("judges");
    assert_eq!(judges.len(), 1, "{json}");
    assert_eq!(judges[0]["judge"], "broadcast");
    assert_eq!(judges[0]["kinds"][0]["incidents"], 0, "{json}");
    write(&manifest);

    // A listed clip that is not there: the rest is still scored, the run fails naming it.
    let mut gone = entry;
    gone.path = "gone.mp4".into();
    manifest.clips.push(gone);
    write(&manifest);
    let o = vqa(&["eval", corpus, "--no-ffmpeg"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains("gone.mp4"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 clips, 1 analysed"));
}
