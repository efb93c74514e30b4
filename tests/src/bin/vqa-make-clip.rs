//! `vqa-make-clip OUT.mp4` — writes the README demo clip and prints its ground truth.
//!
//! The clip is 12 s of 640x360 25 fps natural content with stereo 48 kHz audio, a
//! freeze at 2–4.5 s, black at 6–7 s and silence at 8.5–10 s. The container follows
//! the extension (`.mp4`, `.mkv`, `.ts`). Each truth entry is printed on stdout as one
//! JSON line, e.g. `{"kind":"freeze","start":2.0,"end":4.5}`. With `--implied`, the
//! freeze over the black span (which an analyser may also report) is printed too, with
//! `"implied":true`.
//!
//! `vqa-make-clip --corpus DIR [--quick]` writes a labelled corpus for `vqa eval`: several
//! clips of every defect kind plus clean ones, and `DIR/corpus.json` listing each clip's
//! spec and ground truth (see `vqa_testkit::corpus`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use vqa_testkit::{
    bench_clip_spec, corpus::write_corpus_of, ffmpeg_available, make_clip, ClipSpec, Container,
    Content, CorpusSize, Defect, DefectKind, FFMPEG_INSTALL_HINT,
};

const USAGE: &str = "usage: vqa-make-clip [--implied] OUT.{mp4,mkv,ts}\n       \
                     vqa-make-clip --bench SECONDS [--size WxH] [--with-defects] OUT.mp4   \
                     (1080p25 benchmark clip, or WxH; --with-defects: frozen for a third of it, black for a sixth)\n       \
                     vqa-make-clip --corpus DIR [--quick] [--kinds KIND,...]   \
                     (labelled clips of every defect kind, or of these, and DIR/corpus.json, for `vqa eval`)";

fn demo_spec(container: Container) -> ClipSpec {
    ClipSpec {
        duration: 12.0,
        width: 640,
        height: 360,
        fps: 25,
        content: Content::Natural,
        container,
        defects: vec![
            Defect::freeze(2.0, 4.5),
            Defect::black(6.0, 7.0),
            Defect::silence(8.5, 10.0),
        ],
        ..ClipSpec::default()
    }
}

fn run() -> Result<()> {
    let mut implied = false;
    let mut with_defects = false;
    let mut bench: Option<f64> = None;
    let mut corpus: Option<PathBuf> = None;
    let mut quick = false;
    let mut kinds: Vec<DefectKind> = Vec::new();
    let mut size: Option<(u32, u32)> = None;
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return Ok(());
            }
            Some("--implied") => implied = true,
            Some("--with-defects") => with_defects = true,
            Some("--quick") => quick = true,
            Some("--size") => {
                let parsed = args.next().and_then(|s| {
                    let s = s.to_str()?.to_string();
                    let (w, h) = s.split_once('x')?;
                    Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?))
                });
                match parsed {
                    Some((w, h)) if w >= 16 && h >= 16 && w % 2 == 0 && h % 2 == 0 => {
                        size = Some((w, h))
                    }
                    _ => bail!("--size needs WIDTHxHEIGHT, even numbers of at least 16, e.g. 1280x720\n{USAGE}"),
                }
            }
            Some("--kinds") => {
                let list = args.next().and_then(|s| s.to_str().map(str::to_owned));
                let Some(list) = list else {
                    bail!("--kinds needs a comma-separated list of kinds\n{USAGE}")
                };
                for name in list.split(',') {
                    let kind = vqa_testkit::INJECTABLE
                        .into_iter()
                        .find(|k| k.as_str() == name.trim());
                    match kind {
                        Some(kind) => kinds.push(kind),
                        None => bail!(
                            "--kinds: `{name}` is not a kind a clip can carry; use some of {}",
                            vqa_testkit::INJECTABLE.map(|k| k.as_str()).join(",")
                        ),
                    }
                }
            }
            Some("--corpus") => match args.next() {
                Some(dir) => corpus = Some(PathBuf::from(dir)),
                None => bail!("--corpus needs a directory\n{USAGE}"),
            },
            Some("--bench") => {
                let seconds = args
                    .next()
                    .and_then(|s| s.to_str().and_then(|s| s.parse::<f64>().ok()));
                match seconds {
                    Some(s) if s > 0.0 => bench = Some(s),
                    _ => bail!("--bench needs a positive number of seconds\n{USAGE}"),
                }
            }
            _ if out.is_none() => out = Some(PathBuf::from(arg)),
            _ => bail!("{USAGE}"),
        }
    }
    if let Some(dir) = corpus {
        if out.is_some() || bench.is_some() || with_defects {
            bail!("--corpus takes only a directory and --quick\n{USAGE}");
        }
        return make_corpus(&dir, quick, &kinds);
    }
    if quick || !kinds.is_empty() {
        bail!("--quick and --kinds go with --corpus\n{USAGE}");
    }
    if size.is_some() && bench.is_none() {
        bail!("--size goes with --bench\n{USAGE}");
    }
    let Some(out) = out else { bail!("{USAGE}") };
    let Some(container) = Container::from_path(&out) else {
        bail!(
            "{}: unknown extension; use .mp4, .mkv or .ts",
            out.display()
        );
    };
    if !ffmpeg_available() {
        bail!("{FFMPEG_INSTALL_HINT}");
    }
    let dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_stem()
        .context("output path has no file name")?
        .to_string_lossy()
        .into_owned();

    let spec = match bench {
        Some(seconds) => {
            let mut spec = ClipSpec {
                container,
                ..bench_clip_spec(seconds)
            };
            if let Some((width, height)) = size {
                spec.width = width;
                spec.height = height;
            }
            if with_defects {
                spec.defects = vec![
                    Defect::freeze(seconds / 6.0, seconds / 6.0 + seconds / 3.0),
                    Defect::black(seconds * 2.0 / 3.0, seconds * 2.0 / 3.0 + seconds / 6.0),
                ];
            }
            spec
        }
        None => demo_spec(container),
    };
    let clip = make_clip(&dir, &name, &spec)?;

    let stdout = io::stdout();
    let mut stdout = stdout.lock();
    for defect in &clip.truth {
        writeln!(stdout, "{}", serde_json::to_string(defect)?)?;
    }
    if implied {
        for defect in &clip.implied {
            let mut value = serde_json::to_value(defect)?;
            value["implied"] = serde_json::Value::Bool(true);
            writeln!(stdout, "{value}")?;
        }
    }
    stdout.flush()?;
    Ok(())
}

/// Writes the corpus, with one progress line per clip on stderr and a summary on stdout.
fn make_corpus(dir: &Path, quick: bool, kinds: &[DefectKind]) -> Result<()> {
    if !ffmpeg_available() {
        bail!("{FFMPEG_INSTALL_HINT}");
    }
    let size = if quick {
        CorpusSize::Quick
    } else {
        CorpusSize::Full
    };
    let started = Instant::now();
    let manifest = write_corpus_of(dir, size, kinds, |position, total, name| {
        eprintln!("[{:>2}/{total}] {name}", position + 1);
    })
    .with_context(|| format!("{}: cannot write the corpus", dir.display()))?;
    let defects: usize = manifest.clips.iter().map(|c| c.truth.len()).sum();
    println!(
        "{}: {} clips, {defects} labelled defects, in {:.0} s; run `vqa eval {}`",
        dir.join(vqa_testkit::corpus::MANIFEST_NAME).display(),
        manifest.clips.len(),
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the whole context chain joined by ": ".
            let message = format!("{err:#}").replace('\n', " ");
            eprintln!("vqa-make-clip: error: {message}");
            ExitCode::FAILURE
        }
    }
}
