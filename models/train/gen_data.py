#!/usr/bin/env python3
"""Generate labelled 32x32 luma patches (clean vs block-corrupted) with the ffmpeg CLI.

Every clip is rendered from lavfi sources (no downloads) to raw YUV 4:2:0, the *source*.
Each clip is then put through several codec chains ("variants"):

  clean      x264 CRF 16-23, normal deblocking
  clean_alt  mpeg2video/mpeg4 at high quality (q:v 2-4) re-encoded to x264 CRF 16-20,
             or x264 with another preset/GOP/tune
  starved    x264 -qp 45-51 (deblocking on or off), or a q=51 zone inside a CRF 20 clip
  mpeg_lowq  mpeg2video/mpeg4 at q:v 20-31 re-encoded to x264 CRF 16-20 (blocks survive)
  bitnoise   x264 CRF 18-23 with a fixed GOP, `-c copy -bsf:v noise=...` on a few
             packets, then decoded (error concealment: displaced/garbage macroblocks)

Every variant is decoded back with `-pix_fmt yuv420p -f rawvideo` and the Y plane is taken
as decoded (limited range, no swscale remapping). Patches are 32x32 at positions that are
multiples of 16, so block edges fall at patch offsets 0, 8, 16, 24.

Labels (1 = block-corrupted, 0 = clean, dropped = ambiguous). For a patch, "on" is the mean
|step| between neighbouring pixels across the grid lines at offsets 8, 16, 24 (both
directions) and "off" the mean |step| everywhere else in the patch:
  exc = (on - off)(decoded) - max(0, (on - off)(reference))   grid lines stand out more
  rat = (on + 0.5) / (off + 0.5)                              ... than the texture in blocks
  err = mean |decoded - reference|
  clean variants: every patch is 0 (mild x264 artefacts at CRF <= 23 are "clean").
  starved / mpeg_lowq (reference = source):
      1 if exc >= 1.0 and rat(decoded) >= 1.5 and rat(source) < 1.5 and err >= 1.5;
      0 if exc < 0.3 or rat(decoded) < 1.1; else dropped.
  bitnoise (reference = clean decode of the same stream, i.e. what the frame should be):
      1 if >= 25% of the patch's 8x8 blocks have MAD >= 6 and exc >= 1.0 and
        rat(decoded) >= 1.3; 0 if every 8x8 block has MAD < 1 (decoded as intended) or
        err < 2 and exc < 0.3 (slight drift, no grid lines); else dropped (e.g. smeared/displaced content without visible block edges).

Frame ground truth (for the frame-level rule "mean of the grid patch scores > 0.5"):
  clean variants: clean. Corrupt variants: p = fraction of all 16-aligned patches of the
  frame labelled 1; p >= 0.5: corrupt; p <= 0.02 with <= 10% ambiguous patches: clean;
  otherwise "partial" (reported separately, not counted in the frame accuracy).

Train/validation split is by clip: every content family has held-out instances with other
seeds/parameters. Output: one .npz with uint8 patches, labels and metadata.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

# Single-threaded BLAS: the matrices here are small, and threaded OpenBLAS spins badly when
# the 2 cores are shared (measured: 7x slower per batch while another build runs).
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

FPS = 25
PATCH = 32
STEP = 16
# Label thresholds (luma levels, 0..255).
EXC_POS = 1.0       # grid-line excess over the reference for a corrupt patch
RAT_POS = 1.5       # grid-line steps / in-block steps for a corrupt patch
ERR_POS = 1.5       # mean |decoded - source| for a corrupt patch
EXC_NEG = 0.3       # below this grid-line excess (or RAT_NEG ratio) a patch is clean
RAT_NEG = 1.1
DMG_MAD = 6.0       # 8x8 block MAD vs the clean decode that counts as damaged (bitnoise)
RAT_POS_NOISE = 1.3
# Frame grid used by the Rust detector (documented in models/README.md).
GRID_COLS, GRID_ROWS = 6, 4

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"


def run(args, stdout=None):
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"] + args
    res = subprocess.run(cmd, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise RuntimeError("ffmpeg failed: %s\n%s" % (" ".join(cmd), res.stderr.decode()[-2000:]))
    return res


def grid_positions(w, h):
    """The fixed 6x4 grid of 16-aligned 32x32 patches spread over a WxH frame."""
    xs = [min(w - PATCH, max(0, int(((i + 0.5) * w / GRID_COLS - PATCH / 2) // STEP * STEP)))
          for i in range(GRID_COLS)]
    ys = [min(h - PATCH, max(0, int(((j + 0.5) * h / GRID_ROWS - PATCH / 2) // STEP * STEP)))
          for j in range(GRID_ROWS)]
    return [(x, y) for y in ys for x in xs]


# ----------------------------------------------------------------------------- content

def color(rng):
    return "0x%02x%02x%02x" % tuple(int(v) for v in rng.integers(0, 256, 3))


def motion(rng, w, h):
    """An optional motion filter (scroll or zoom/pan), or ''."""
    r = rng.random()
    if r < 0.35:
        return ",scroll=h=%.4f:v=%.4f" % (rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01))
    if r < 0.55:
        z = rng.uniform(0.001, 0.004)
        return (",zoompan=z='min(zoom+%.4f\\,1.6)':d=1:s=%dx%d:fps=%d"
                ":x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'" % (z, w, h, FPS))
    return ""


def modifiers(rng, family):
    """Optional blur / grain / darkening / contrast so that flat, smooth, detailed, noisy
    and dark material all occur."""
    m = ""
    if family not in ("clouds", "gradients") and rng.random() < 0.25:
        m += ",gblur=sigma=%.2f" % rng.uniform(1.0, 5.0)
    r = rng.random()
    if r < 0.2:
        m += ",noise=alls=%d:allf=t+u:all_seed=%d" % (rng.integers(8, 30), rng.integers(1, 1 << 30))
    elif r < 0.4:
        m += ",noise=alls=%d:allf=t:all_seed=%d" % (rng.integers(2, 7), rng.integers(1, 1 << 30))
    r = rng.random()
    if r < 0.15:
        m += ",eq=brightness=%.2f:contrast=%.2f" % (rng.uniform(-0.35, -0.15), rng.uniform(0.4, 0.8))
    elif r < 0.25:
        m += ",eq=contrast=%.2f" % rng.uniform(1.2, 1.8)
    return m


def content_graph(family, rng, w, h):
    s = "s=%dx%d:r=%d" % (w, h, FPS)
    seed = int(rng.integers(1, 1 << 30))
    if family == "testsrc2":
        g = "testsrc2=%s" % s + motion(rng, w, h)
    elif family == "testsrc":
        g = "testsrc=%s:decimals=2" % s + motion(rng, w, h)
    elif family == "bars":
        src = rng.choice(["smptehdbars", "smptebars", "pal75bars", "rgbtestsrc"])
        g = "%s=%s" % (src, s) + motion(rng, w, h)
    elif family == "mandelbrot":
        pts = [(-0.743643887037158704752191506114774, 0.131825904205311970493132056385139),
               (-0.1011, 0.9563), (-1.25066, 0.02012), (0.2549870375144766, -0.0005679790528465),
               (-0.7453, 0.1127), (-1.7497591451303665, 0.0)]
        x0, y0 = pts[int(rng.integers(len(pts)))]
        g = ("mandelbrot=%s:maxiter=%d:start_x=%.16f:start_y=%.16f:start_scale=%.3f:end_scale=%.4f"
             ":end_pts=%d:outer=%s" % (s, rng.choice([256, 512, 1024]), x0, y0, rng.uniform(0.3, 3.0),
                                       rng.uniform(0.005, 0.3), rng.integers(40, 400),
                                       rng.choice(["normalized_iteration_count", "iteration_count"])))
    elif family == "cellauto":
        g = ("cellauto=%s:rule=%d:random_fill_ratio=%.2f:random_seed=%d:scroll=1,format=yuv420p"
             % (s, rng.choice([18, 30, 45, 73, 90, 105, 110, 150]), rng.uniform(0.2, 0.8), seed))
        g += ",gblur=sigma=%.2f" % rng.uniform(0.6, 3.0)
        g += ",eq=contrast=%.2f:brightness=%.2f" % (rng.uniform(0.3, 1.0), rng.uniform(-0.2, 0.2))
        g += motion(rng, w, h)
    elif family == "life":
        g = ("life=%s:mold=%d:ratio=%.2f:seed=%d:life_color=%s:death_color=%s:mold_color=%s"
             % (s, rng.integers(0, 40), rng.uniform(0.05, 0.6), seed, color(rng), color(rng), color(rng)))
        if rng.random() < 0.6:
            g += ",format=yuv420p,gblur=sigma=%.2f" % rng.uniform(0.5, 2.5)
        g += motion(rng, w, h)
    elif family == "gradients":
        # all 8 colours explicit: unset ones are random per run despite the seed (FFmpeg 5.1)
        g = "gradients=%s:n=%d:speed=%.3f:seed=%d:" % (s, rng.integers(2, 8), rng.uniform(0.005, 0.06), seed)
        g += ":".join("c%d=%s" % (i, color(rng)) for i in range(8))
    elif family == "sierpinski":
        g = ("sierpinski=%s:seed=%d:jump=%d:type=%s" %
             (s, seed, rng.integers(1, 12), rng.choice(["carpet", "triangle"])))
        if rng.random() < 0.5:
            g += ",format=yuv420p,gblur=sigma=%.2f" % rng.uniform(0.5, 2.0)
    elif family == "rings":
        f = rng.uniform(3.0, 14.0)
        a = rng.uniform(30, 100)
        cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        kind = rng.integers(3)
        if kind == 0:
            lum = "128+%.1f*sin(hypot(X-W*%.2f\\,Y-H*%.2f)/(%.2f+%.2f*sin(T)))" % (a, cx, cy, f, f / 3)
        elif kind == 1:
            lum = "128+%.1f*sin(X/%.2f+T*2)*cos(Y/%.2f-T)" % (a, f * 2, f * 1.5)
        else:
            lum = ("clip(128+%.1f*sin((X*X+Y*Y)/(%.1f*W))+%.1f*(random(1)-0.5)\\,16\\,235)"
                   % (a, f * 8, rng.uniform(5, 40)))
        g = "nullsrc=%s,geq=lum='%s':cb=128:cr=128" % (s, lum)
    elif family == "clouds":
        k = int(rng.choice([4, 8, 16]))
        g = ("color=c=gray:s=%dx%d:r=%d,noise=alls=100:allf=u:all_seed=%d,loop=loop=-1:size=1:start=0,"
             "scale=%d:%d:flags=bicubic,gblur=sigma=%.2f,eq=contrast=%.2f:brightness=%.2f"
             % (w // k + 64, h // k + 64, FPS, seed, w + 64 * k, h + 64 * k, k / 2.5,
                rng.uniform(1.5, 4.0), rng.uniform(-0.2, 0.2)))
        g += ",crop=%d:%d:x='t*%.1f':y='t*%.1f'" % (w, h, rng.uniform(0, 60), rng.uniform(0, 30))
    else:
        raise ValueError(family)
    return g + modifiers(rng, family) + ",scale=%d:%d,format=yuv420p" % (w, h)


FAMILIES = ["testsrc2", "testsrc", "bars", "mandelbrot", "cellauto", "life", "gradients",
            "sierpinski", "rings", "clouds"]


def make_source(path, graphs, nframes, w, h):
    """Render the source clip as raw yuv420p; several graphs = scene cuts."""
    cuts = np.linspace(0, nframes, len(graphs) + 1).astype(int)
    with open(path, "wb") as out:
        for g, a, b in zip(graphs, cuts[:-1], cuts[1:]):
            res = run(["-f", "lavfi", "-i", g, "-frames:v", str(b - a), "-f", "rawvideo",
                       "-pix_fmt", "yuv420p", "-"], stdout=subprocess.PIPE)
            want = (b - a) * w * h * 3 // 2
            if len(res.stdout) != want:
                raise RuntimeError("source %s gave %d bytes, want %d" % (g, len(res.stdout), want))
            out.write(res.stdout)


def decode_y(path, w, h, cfr=False):
    """Decode to the Y planes as decoded. cfr=True keeps frame i at time i/25 when a damaged
    frame does not decode at all (the previous picture is repeated, as a player would)."""
    sync = ["-fps_mode", "cfr", "-r", str(FPS)] if cfr else ["-fps_mode", "passthrough"]
    # one decoder thread: with frame threads, error concealment of damaged streams differs
    # from run to run
    res = run(["-threads", "1", "-i", path] + sync + ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
              stdout=subprocess.PIPE)
    fs = w * h * 3 // 2
    n = len(res.stdout) // fs
    return np.frombuffer(res.stdout[:n * fs], np.uint8).reshape(n, fs)[:, :w * h].reshape(n, h, w)


def raw_in(src, w, h):
    return ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "%dx%d" % (w, h), "-r", str(FPS), "-i", src]


def x264(crf=None, qp=None, preset="medium", params=None, g=None):
    a = ["-c:v", "libx264", "-preset", preset]
    a += ["-crf", str(crf)] if qp is None else ["-qp", str(qp)]
    if g:
        a += ["-g", str(g)]
    if params:
        a += ["-x264-params", params]
    return a


def mpeg_lowq_chain(rng, src, w, h, wd, tag, q):
    codec = str(rng.choice(["mpeg2video", "mpeg4"]))
    mid = os.path.join(wd, tag + "_mid.mkv")
    run(raw_in(src, w, h) + ["-c:v", codec, "-q:v", str(q), "-g", str(int(rng.choice([12, 25, 50]))), mid])
    out = os.path.join(wd, tag + ".mkv")
    run(["-i", mid] + x264(crf=int(rng.integers(16, 21))) + [out])
    return out, "%s q:v %d -> x264" % (codec, q)


def make_variants(rng, src, w, h, n, wd):
    """Yield (variant name, kind, decoded Y, reference Y or None (=source), description)."""
    # clean
    crf = int(rng.integers(16, 24))
    out = os.path.join(wd, "clean.mkv")
    run(raw_in(src, w, h) + x264(crf=crf, preset=str(rng.choice(["veryfast", "fast", "medium"]))) + [out])
    yield "clean", "clean", out, None, "x264 crf %d" % crf
    # clean_alt
    if rng.random() < 0.5:
        out, d = mpeg_lowq_chain(rng, src, w, h, wd, "clean_alt", int(rng.integers(2, 5)))
    else:
        crf = int(rng.integers(16, 24))
        gop = int(rng.choice([12, 25, 50, 250]))
        tune = str(rng.choice(["film", "grain", "animation"]))
        out = os.path.join(wd, "clean_alt.mkv")
        run(raw_in(src, w, h) + x264(crf=crf, preset="fast", g=gop) + ["-tune", tune, out])
        d = "x264 crf %d g %d tune %s" % (crf, gop, tune)
    yield "clean_alt", "clean", out, None, d
    # starved
    out = os.path.join(wd, "starved.mkv")
    nodb = rng.random() < 0.5
    if rng.random() < 0.3:
        a = int(rng.integers(0, n // 2))
        b = int(rng.integers(a + n // 4, n))
        params = "zones=%d,%d,q=51" % (a, b) + (":no-deblock=1" if nodb else "")
        run(raw_in(src, w, h) + x264(crf=20, params=params) + [out])
        d = "x264 crf 20 " + params
    else:
        qp = int(rng.integers(45, 52))
        run(raw_in(src, w, h) + x264(qp=qp, params="no-deblock=1" if nodb else None) + [out])
        d = "x264 qp %d%s" % (qp, " no-deblock" if nodb else "")
    yield "starved", "vs_source", out, None, d
    # mpeg_lowq
    out, d = mpeg_lowq_chain(rng, src, w, h, wd, "mpeg_lowq", int(rng.integers(20, 32)))
    yield "mpeg_lowq", "vs_source", out, None, d
    # bitnoise
    crf = int(rng.integers(18, 24))
    gop = int(rng.choice([25, 50]))
    ref = os.path.join(wd, "bn_ref.mkv")
    run(raw_in(src, w, h) + x264(crf=crf, g=gop) + [ref])
    a = int(rng.integers(1, n - 8))
    b = a + int(rng.integers(0, 8))
    amount = int(rng.choice([50, 100, 300, 1000]))
    out = os.path.join(wd, "bitnoise.mkv")
    run(["-i", ref, "-c", "copy", "-bsf:v", "noise=amount=if(between(n\\,%d\\,%d)\\,%d\\,0)" % (a, b, amount),
         out])
    yield "bitnoise", "vs_ref", out, ref, "x264 crf %d g %d, noise amount %d on packets %d..%d" % (
        crf, gop, amount, a, b)


# ----------------------------------------------------------------------------- labels

_BMASK = np.zeros(PATCH - 1, bool)
_BMASK[[7, 15, 23]] = True


def grid_steps(p):
    """Mean |step| across the 8-px grid lines inside the patch (offsets 8, 16, 24) and mean
    |step| between all other neighbouring pixels, both directions averaged ([N,32,32])."""
    dh = np.abs(p[:, :, 1:] - p[:, :, :-1])
    dv = np.abs(p[:, 1:, :] - p[:, :-1, :])
    on = (dh[:, :, _BMASK].mean((1, 2)) + dv[:, _BMASK, :].mean((1, 2))) / 2
    off = (dh[:, :, ~_BMASK].mean((1, 2)) + dv[:, ~_BMASK, :].mean((1, 2))) / 2
    return on, off


def cut(frame, pos):
    xs = np.array([p[0] for p in pos], dtype=np.intp)
    ys = np.array([p[1] for p in pos], dtype=np.intp)
    ar = np.arange(PATCH)
    return frame[ys[:, None, None] + ar[None, :, None], xs[:, None, None] + ar[None, None, :]]


def patch_stats(dec, ref):
    """Label statistics of patches: dec, ref uint8 [N,32,32] -> dict of [N] arrays."""
    d = dec.astype(np.float32)
    r = ref.astype(np.float32)
    on_d, off_d = grid_steps(d)
    on_r, off_r = grid_steps(r)
    bm = np.abs(d - r).reshape(-1, 4, 8, 4, 8).mean((2, 4)).reshape(-1, 16)
    return {"on_d": on_d, "off_d": off_d, "on_r": on_r, "off_r": off_r, "err": bm.mean(1),
            "dmg": (bm >= DMG_MAD).mean(1), "bmax": bm.max(1)}


def frame_stats(dec, ref):
    """The same statistics for every 16-aligned 32x32 patch of a frame at once (row-major
    over the dense grid: y outer, x inner). Frame sides must be multiples of 8. Equal to
    patch_stats() on the cut patches (checked to float rounding)."""
    h, w = dec.shape
    nj, ni = (h - PATCH) // STEP + 1, (w - PATCH) // STEP + 1

    def win(a, hb, wg, op=np.add):
        out = None
        for i in range(hb):
            for j in range(wg):
                s = a[i:i + 2 * (nj - 1) + 1:2, j:j + 2 * (ni - 1) + 1:2]
                out = s if out is None else op(out, s)
        return out.reshape(-1)

    def steps(f):
        dh = np.pad(np.abs(np.diff(f, axis=1)), ((0, 0), (0, 1)))
        gh = dh.reshape(h // 8, 8, w // 8, 8).sum(1)            # [band, group, col in group]
        dv = np.pad(np.abs(np.diff(f, axis=0)), ((0, 1), (0, 0)))
        gv = dv.reshape(h // 8, 8, w // 8, 8).sum(3)            # [band, row in band, group]
        n_on, n_off = PATCH * 3, PATCH * (PATCH - 4)
        on = (win(gh[:, :, 7], 4, 3) + win(gv[:, 7, :], 3, 4)) / (2 * n_on)
        off = (win(gh[:, :, :7].sum(-1), 4, 4) + win(gv[:, :7, :].sum(1), 4, 4)) / (2 * n_off)
        return on, off

    d = dec.astype(np.float32)
    r = ref.astype(np.float32)
    on_d, off_d = steps(d)
    on_r, off_r = steps(r)
    bm = np.abs(d - r).reshape(h // 8, 8, w // 8, 8).mean((1, 3))
    return {"on_d": on_d, "off_d": off_d, "on_r": on_r, "off_r": off_r, "err": win(bm, 4, 4) / 16,
            "dmg": win((bm >= DMG_MAD).astype(np.float32), 4, 4) / 16, "bmax": win(bm, 4, 4, np.maximum)}


def label(kind, st):
    """Labels int8 (1 corrupt, 0 clean, -1 ambiguous) and exc (grid-line excess of the
    decode over the reference) from patch statistics."""
    # how much more the grid lines stand out in the decode than in the reference
    exc = (st["on_d"] - st["off_d"]) - np.maximum(st["on_r"] - st["off_r"], 0)
    # how much they stand out against the texture inside the blocks (masking)
    rat_d = (st["on_d"] + 0.5) / (st["off_d"] + 0.5)
    rat_r = (st["on_r"] + 0.5) / (st["off_r"] + 0.5)
    lab = np.full(len(exc), -1, np.int8)
    if kind == "clean":
        lab[:] = 0
    elif kind == "vs_source":
        lab[(exc < EXC_NEG) | (rat_d < RAT_NEG)] = 0
        lab[(exc >= EXC_POS) & (rat_d >= RAT_POS) & (rat_r < RAT_POS) & (st["err"] >= ERR_POS)] = 1
    else:
        # decoded as intended, or drifted slightly without visible grid lines
        lab[(st["bmax"] < 1.0) | ((st["err"] < 2.0) & (exc < EXC_NEG))] = 0
        lab[(st["dmg"] >= 0.25) & (exc >= EXC_POS) & (rat_d >= RAT_POS_NOISE)] = 1
    return lab, exc


# ----------------------------------------------------------------------------- per clip

def process_clip(ci, spec, args):
    rng = np.random.default_rng([args.seed, ci])
    w, h, n = spec["w"], spec["h"], spec["n"]
    wd = os.path.join(args.work, "clip%03d" % ci)
    os.makedirs(wd, exist_ok=True)
    src = os.path.join(wd, "src.yuv")
    t0 = time.time()
    make_source(src, spec["graphs"], n, w, h)
    fs = w * h * 3 // 2
    srcy = np.fromfile(src, np.uint8).reshape(n, fs)[:, :w * h].reshape(n, h, w)
    dense = [(x, y) for y in range(0, h - PATCH + 1, STEP) for x in range(0, w - PATCH + 1, STEP)]
    grid = grid_positions(w, h)
    per_frame = args.patches_per_frame * (w * h) // (640 * 360)
    out = {"x": [], "y": [], "var": [], "frame": [], "err": [], "exc": [],
           "gx": [], "gtruth": [], "gfrac": [], "gvar": [], "gframe": []}
    variants = []
    for vi, (vname, kind, path, refpath, desc) in enumerate(make_variants(rng, src, w, h, n, wd)):
        dec = decode_y(path, w, h, cfr=kind == "vs_ref")
        ref = srcy if refpath is None else decode_y(refpath, w, h)
        if len(dec) != n or len(ref) != n:
            print("clip %d %s: %d/%d frames decoded, skipped" % (ci, vname, len(dec), n), file=sys.stderr)
            continue
        variants.append({"name": vname, "desc": desc})
        vcode = VARIANTS.index(vname)
        for f in range(n):
            st = frame_stats(dec[f], ref[f])
            lab, exc = label(kind, st)
            err = st["err"]
            p = float((lab == 1).mean())
            if kind == "clean":
                truth = 0
            elif p >= 0.5:
                truth = 1
            elif p <= 0.02 and (lab == -1).mean() <= 0.1:
                truth = 0
            else:
                truth = -1
            out["gx"].append(cut(dec[f], grid))
            out["gtruth"].append(truth)
            out["gfrac"].append(p)
            out["gvar"].append(vcode)
            out["gframe"].append(f)
            if f % args.frame_step:
                continue
            sel = rng.choice(len(dense), size=min(per_frame, len(dense)), replace=False)
            keep = sel[lab[sel] >= 0]
            out["x"].append(cut(dec[f], [dense[i] for i in keep]))
            out["y"].append(lab[keep])
            out["var"].append(np.full(len(keep), vcode, np.int8))
            out["frame"].append(np.full(len(keep), f, np.int16))
            out["err"].append(err[keep].astype(np.float16))
            out["exc"].append(exc[keep].astype(np.float16))
    if not args.keep:
        shutil.rmtree(wd)
    res = {k: (np.concatenate(v) if k in ("x", "y", "var", "frame", "err", "exc") else np.array(v))
           for k, v in out.items()}
    res["gx"] = np.stack(out["gx"])
    info = dict(spec, index=ci, variants=variants, seconds=round(time.time() - t0, 1),
                patches=int(len(res["y"])), positives=int(res["y"].sum()))
    print("clip %3d %-5s %-11s %4dx%-4d %5d patches (%4.1f%% pos) %5.1fs" % (
        ci, spec["split"], spec["family"], w, h, info["patches"],
        100.0 * info["positives"] / max(1, info["patches"]), info["seconds"]), flush=True)
    return res, info


VARIANTS = ["clean", "clean_alt", "starved", "mpeg_lowq", "bitnoise"]


def clip_specs(args):
    """Clip list: per family `per_family` instances, the last `val_per_family` held out;
    plus scene-cut clips that join two families."""
    rng = np.random.default_rng(args.seed)
    specs = []
    fams = FAMILIES + ["cut"]
    for fam in fams:
        for k in range(args.per_family):
            big = rng.random() < 0.2
            w, h = (1280, 720) if big else (640, 360)
            n = args.frames // 2 if big else args.frames
            if fam == "cut":
                two = rng.choice(FAMILIES, size=2, replace=False)
                graphs = [content_graph(str(f), rng, w, h) for f in two]
                name = "cut:" + "+".join(two)
            else:
                graphs = [content_graph(fam, rng, w, h)]
                name = fam
            split = "val" if k >= args.per_family - args.val_per_family else "train"
            specs.append({"family": name, "split": split, "w": w, "h": h, "n": n, "graphs": graphs})
    return specs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="target/blockiness/data.npz")
    ap.add_argument("--work", default="target/blockiness/work")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--per-family", type=int, default=5)
    ap.add_argument("--val-per-family", type=int, default=1)
    ap.add_argument("--frames", type=int, default=40, help="frames per 640x360 clip (half at 1280x720)")
    ap.add_argument("--frame-step", type=int, default=2, help="sample training patches every Nth frame")
    ap.add_argument("--patches-per-frame", type=int, default=40, help="per 640x360 frame (scaled by area)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="only the first N clips (debugging)")
    ap.add_argument("--keep", action="store_true", help="keep the encoded clips (debugging)")
    args = ap.parse_args()

    t0 = time.time()
    specs = clip_specs(args)
    if args.limit:
        specs = specs[:args.limit]
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as ex:
        results = list(ex.map(lambda a: process_clip(a[0], a[1], args), enumerate(specs)))

    data = {}
    for split in ("train", "val"):
        rs = [(ci, r) for ci, (r, info) in enumerate(results) if info["split"] == split]
        if not rs:
            continue
        data[split + "_x"] = np.concatenate([r["x"] for _, r in rs])
        data[split + "_y"] = np.concatenate([r["y"] for _, r in rs])
        data[split + "_var"] = np.concatenate([r["var"] for _, r in rs])
        data[split + "_clip"] = np.concatenate([np.full(len(r["y"]), ci, np.int16) for ci, r in rs])
        data[split + "_frame"] = np.concatenate([r["frame"] for _, r in rs])
        data[split + "_err"] = np.concatenate([r["err"] for _, r in rs])
        data[split + "_exc"] = np.concatenate([r["exc"] for _, r in rs])
        data[split + "_gx"] = np.concatenate([r["gx"] for _, r in rs])
        data[split + "_gtruth"] = np.concatenate([r["gtruth"] for _, r in rs]).astype(np.int8)
        data[split + "_gfrac"] = np.concatenate([r["gfrac"] for _, r in rs]).astype(np.float32)
        data[split + "_gvar"] = np.concatenate([r["gvar"] for _, r in rs]).astype(np.int8)
        data[split + "_gclip"] = np.concatenate([np.full(len(r["gtruth"]), ci, np.int16) for ci, r in rs])
        data[split + "_gframe"] = np.concatenate([r["gframe"] for _, r in rs]).astype(np.int16)
    meta = {"clips": [info for _, info in results], "variants": VARIANTS, "seed": args.seed,
            "thresholds": {"EXC_POS": EXC_POS, "RAT_POS": RAT_POS, "ERR_POS": ERR_POS, "EXC_NEG": EXC_NEG,
                           "RAT_NEG": RAT_NEG, "DMG_MAD": DMG_MAD, "RAT_POS_NOISE": RAT_POS_NOISE},
            "grid": {"cols": GRID_COLS, "rows": GRID_ROWS}, "seconds": round(time.time() - t0, 1),
            "ffmpeg": subprocess.run([FFMPEG, "-version"], stdout=subprocess.PIPE).stdout.decode().split("\n")[0]}
    data["meta"] = np.array(json.dumps(meta))
    np.savez(args.out, **data)
    for split in ("train", "val"):
        if split + "_y" in data:
            y, gt = data[split + "_y"], data[split + "_gtruth"]
            print("%s: %d patches (%d corrupt), %d grid frames (%d corrupt, %d clean, %d partial)" % (
                split, len(y), int(y.sum()), len(gt), int((gt == 1).sum()), int((gt == 0).sum()),
                int((gt == -1).sum())))
    print("data generation took %.1f s -> %s" % (time.time() - t0, args.out))


if __name__ == "__main__":
    main()
