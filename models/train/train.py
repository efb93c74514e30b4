#!/usr/bin/env python3
"""Train the blockiness patch classifier with numpy only, export it to ONNX, verify it.

Network (NCHW, no padding anywhere, so the input normalisation folds exactly into conv1):

  patches [N,1,32,32] = luma / 255
  conv1 3x3 stride 2, 1->C1   -> [N,C1,15,15]  ReLU
  conv2 3x3 stride 2, C1->C2  -> [N,C2,7,7]    ReLU
  conv3 3x3 stride 2, C2->C3  -> [N,C3,3,3]    ReLU
  GlobalAveragePool -> Flatten -> Gemm C3->1 -> Sigmoid = score [N,1]

With valid 3x3/stride-2 convolutions, the 3x3 positions of conv3 see input pixels
8k..8k+14 (k = 0,1,2): every one is centred on an 8-px grid line of the (16-aligned) patch
and has the same phase with respect to the block grid, so averaging them keeps the
"step at the grid line vs. inside the block" signal.

Training: binary cross-entropy with corrupt patches weighted by sqrt(clean/corrupt), Adam,
cosine learning-rate decay, dihedral augmentation (flips/transposes keep grid lines at
offsets 8, 16, 24) and a mild brightness/contrast jitter. Gradients of the hand-written backward pass are checked
against finite differences (float64, tiny batch) before training.

The ONNX model is built with onnx.helper (opset 13), checked with onnx.checker, and run
with onnxruntime on the validation patches: its scores must match the numpy forward pass.
"""

import argparse
import datetime
import hashlib
import json
import os
import sys
import time

# Single-threaded BLAS: the matrices here are small, and threaded OpenBLAS spins badly when
# the 2 cores are shared (measured: 7x slower per batch while another build runs).
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

IN_SCALE = 4.0   # training-time input transform x' = (x - IN_MEAN) * IN_SCALE, folded into conv1
IN_MEAN = 0.5


# ----------------------------------------------------------------------------- layers (NHWC)

def im2col(x, k=3, s=2):
    """x [N,H,W,C] -> cols [N,Ho,Wo,k,k,C] (a copy), valid convolution."""
    n, h, w, c = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    sn, sh, sw, sc = x.strides
    v = np.lib.stride_tricks.as_strided(x, (n, ho, wo, k, k, c), (sn, sh * s, sw * s, sh, sw, sc),
                                        writeable=False)
    return np.ascontiguousarray(v)


def conv_fwd(x, w, b):
    """w [Cout,k,k,Cin]; returns y [N,Ho,Wo,Cout] and the cols cache."""
    cols = im2col(x)
    n, ho, wo = cols.shape[:3]
    y = cols.reshape(n * ho * wo, -1) @ w.reshape(w.shape[0], -1).T + b
    return y.reshape(n, ho, wo, -1), cols


def conv_bwd(dy, cols, w, xshape, s=2):
    n, ho, wo, co = dy.shape
    k = w.shape[1]
    d2 = dy.reshape(-1, co)
    dw = (d2.T @ cols.reshape(d2.shape[0], -1)).reshape(w.shape)
    db = d2.sum(0)
    dx = None
    if xshape is not None:
        dcols = (d2 @ w.reshape(co, -1)).reshape(n, ho, wo, k, k, -1)
        dx = np.zeros(xshape, dy.dtype)
        for i in range(k):
            for j in range(k):
                dx[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s, :] += dcols[:, :, :, i, j, :]
    return dw, db, dx


class Net:
    def __init__(self, ch, rng, dtype=np.float32):
        c1, c2, c3 = ch
        self.ch = ch

        def he(shape):
            fan_in = np.prod(shape[1:])
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

        self.p = {
            "w1": he((c1, 3, 3, 1)), "b1": np.zeros(c1, dtype),
            "w2": he((c2, 3, 3, c1)), "b2": np.zeros(c2, dtype),
            "w3": he((c3, 3, 3, c2)), "b3": np.zeros(c3, dtype),
            "w4": (rng.standard_normal((1, c3)) * np.sqrt(1.0 / c3)).astype(dtype), "b4": np.zeros(1, dtype),
        }

    def forward(self, x, cache=False):
        """x [N,32,32,1] already normalised. Returns logits [N]."""
        p = self.p
        z1, c1 = conv_fwd(x, p["w1"], p["b1"])
        a1 = np.maximum(z1, 0)
        z2, c2 = conv_fwd(a1, p["w2"], p["b2"])
        a2 = np.maximum(z2, 0)
        z3, c3 = conv_fwd(a2, p["w3"], p["b3"])
        a3 = np.maximum(z3, 0)
        g = a3.mean((1, 2))
        logit = g @ p["w4"].T + p["b4"]
        if cache:
            self.cache = (x.shape, c1, z1, a1.shape, c2, z2, a2.shape, c3, z3, g)
        return logit[:, 0]

    def backward(self, dlogit):
        p = self.p
        xs, c1, z1, a1s, c2, z2, a2s, c3, z3, g = self.cache
        grads = {}
        dl = dlogit[:, None]
        grads["w4"] = dl.T @ g
        grads["b4"] = dl.sum(0)
        dg = dl @ p["w4"]
        da3 = np.broadcast_to(dg[:, None, None, :] / (z3.shape[1] * z3.shape[2]), z3.shape)
        dz3 = da3 * (z3 > 0)
        grads["w3"], grads["b3"], da2 = conv_bwd(dz3, c3, p["w3"], a2s)
        dz2 = da2 * (z2 > 0)
        grads["w2"], grads["b2"], da1 = conv_bwd(dz2, c2, p["w2"], a1s)
        dz1 = da1 * (z1 > 0)
        grads["w1"], grads["b1"], _ = conv_bwd(dz1, c1, p["w1"], None)
        return grads


def bce(logit, y, wt):
    """Weighted mean binary cross-entropy with logits and its gradient."""
    loss = float((wt * (np.logaddexp(0, logit) - y * logit)).sum() / wt.sum())
    return loss, wt * (sigmoid(logit) - y) / wt.sum()


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def normalise(x_u8):
    """uint8 [N,32,32] -> float32 [N,32,32,1] as the network sees it during training."""
    return ((x_u8.astype(np.float32) / 255.0 - IN_MEAN) * IN_SCALE)[..., None]


def grad_check(ch, seed):
    rng = np.random.default_rng(seed)
    net = Net(ch, rng, np.float64)
    for k in net.p:
        if k.startswith("b"):
            net.p[k] = rng.standard_normal(net.p[k].shape) * 0.1
    x = rng.standard_normal((4, 32, 32, 1))
    y = np.array([0.0, 1.0, 1.0, 0.0])
    wt = np.array([1.0, 2.0, 1.0, 0.5])
    loss, dl = bce(net.forward(x, cache=True), y, wt)
    grads = net.backward(dl)
    worst = 0.0
    for k, v in net.p.items():
        for _ in range(6):
            idx = tuple(int(rng.integers(s)) for s in v.shape)
            old = v[idx]
            eps = 1e-6
            v[idx] = old + eps
            lp, _ = bce(net.forward(x), y, wt)
            v[idx] = old - eps
            lm, _ = bce(net.forward(x), y, wt)
            v[idx] = old
            num = (lp - lm) / (2 * eps)
            rel = abs(num - grads[k][idx]) / max(1e-7, abs(num) + abs(grads[k][idx]))
            worst = max(worst, rel)
    print("gradient check (finite differences, float64): worst relative error %.2e" % worst)
    if worst > 1e-4:
        sys.exit("gradient check failed")
    return worst


# ----------------------------------------------------------------------------- training

def augment(xb, rng):
    """Dihedral transforms (grid lines stay at offsets 8, 16, 24) + brightness/contrast."""
    k = int(rng.integers(8))
    if k & 1:
        xb = xb[:, :, ::-1]
    if k & 2:
        xb = xb[:, ::-1, :]
    if k & 4:
        xb = xb.transpose(0, 2, 1, 3)
    xb = np.ascontiguousarray(xb)
    n = len(xb)
    c = rng.uniform(0.8, 1.2, (n, 1, 1, 1)).astype(np.float32)
    o = rng.uniform(-0.3, 0.3, (n, 1, 1, 1)).astype(np.float32)  # in normalised units (x4)
    return xb * c + o


def predict(net, x_u8, bs=2048):
    out = np.empty(len(x_u8), np.float32)
    for i in range(0, len(x_u8), bs):
        out[i:i + bs] = net.forward(normalise(x_u8[i:i + bs]))
    return sigmoid(out)


class Adam:
    def __init__(self, params, lr):
        self.lr = lr
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params, grads, lr, wd=1e-4):
        self.t += 1
        b1, b2 = 0.9, 0.999
        for k in params:
            g = grads[k] + (wd * params[k] if k.startswith("w") else 0)
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            mh = self.m[k] / (1 - b1 ** self.t)
            vh = self.v[k] / (1 - b2 ** self.t)
            params[k] -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(params[k].dtype)


# ----------------------------------------------------------------------------- export

def folded_params(net):
    """ONNX-layout weights with the input normalisation folded into conv1."""
    p = {k: v.astype(np.float32) for k, v in net.p.items()}
    w1 = p["w1"] * IN_SCALE                                   # [C1,3,3,1]
    b1 = p["b1"] - IN_MEAN * IN_SCALE * p["w1"].sum((1, 2, 3))
    return {
        "conv1.w": np.ascontiguousarray(w1.transpose(0, 3, 1, 2)), "conv1.b": b1.astype(np.float32),
        "conv2.w": np.ascontiguousarray(p["w2"].transpose(0, 3, 1, 2)), "conv2.b": p["b2"],
        "conv3.w": np.ascontiguousarray(p["w3"].transpose(0, 3, 1, 2)), "conv3.b": p["b3"],
        "fc.w": p["w4"], "fc.b": p["b4"],
    }


def numpy_reference(fp, x):
    """Independent NCHW float32 forward pass of the exported (folded) graph, x = luma/255."""
    def conv(a, w, b):
        n, c, h, wd = a.shape
        ho, wo = (h - 3) // 2 + 1, (wd - 3) // 2 + 1
        out = np.zeros((n, w.shape[0], ho, wo), np.float32)
        for i in range(3):
            for j in range(3):
                patch = a[:, :, i:i + 2 * (ho - 1) + 1:2, j:j + 2 * (wo - 1) + 1:2]
                out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
        return out + b[None, :, None, None]
    a = np.maximum(conv(x, fp["conv1.w"], fp["conv1.b"]), 0)
    a = np.maximum(conv(a, fp["conv2.w"], fp["conv2.b"]), 0)
    a = np.maximum(conv(a, fp["conv3.w"], fp["conv3.b"]), 0)
    g = a.mean((2, 3))
    z = g @ fp["fc.w"].T + fp["fc.b"]
    return sigmoid(z)


def export_onnx(fp, path, doc):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(v, k) for k, v in fp.items()]
    conv_attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    nodes = [
        helper.make_node("Conv", ["patches", "conv1.w", "conv1.b"], ["c1"], name="conv1", **conv_attrs),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.w", "conv2.b"], ["c2"], name="conv2", **conv_attrs),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "conv3.w", "conv3.b"], ["c3"], name="conv3", **conv_attrs),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logit"], name="fc", transB=1),
        helper.make_node("Sigmoid", ["logit"], ["score"], name="sigmoid"),
    ]
    graph = helper.make_graph(
        nodes, "blockiness",
        [helper.make_tensor_value_info("patches", TensorProto.FLOAT, ["N", 1, 32, 32])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="vqa models/train/train.py", producer_version="1")
    model.ir_version = 8
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return model


# ----------------------------------------------------------------------------- evaluation

def frame_eval(scores_grid, truth, gfrac, gvar, variants):
    """scores_grid [F,24]; rule: frame flagged when the mean patch score > 0.5."""
    fs = scores_grid.mean(1)
    flag = fs > 0.5
    known = truth >= 0
    res = {"frames": int(len(truth)), "corrupt_frames": int((truth == 1).sum()),
           "clean_frames": int((truth == 0).sum()), "partial_frames": int((truth == -1).sum()),
           "accuracy": float((flag[known] == (truth[known] == 1)).mean()) if known.any() else None,
           "detection_rate": float(flag[truth == 1].mean()) if (truth == 1).any() else None,
           "false_alarm_rate": float(flag[truth == 0].mean()) if (truth == 0).any() else None}
    per_var = {}
    for vi, name in enumerate(variants):
        m = gvar == vi
        if not m.any():
            continue
        d = {"frames": int(m.sum())}
        for t, key in ((0, "clean"), (1, "corrupt"), (-1, "partial")):
            mm = m & (truth == t)
            if mm.any():
                d[key] = {"frames": int(mm.sum()), "flagged": float(flag[mm].mean())}
        per_var[name] = d
    res["per_variant"] = per_var
    part = {}
    for lo, hi in ((0.0, 0.02), (0.02, 0.1), (0.1, 0.25), (0.25, 0.5)):
        m = (truth == -1) & (gfrac >= lo) & (gfrac < hi)
        if m.any():
            part["%.2f-%.2f" % (lo, hi)] = {"frames": int(m.sum()), "flagged": float(flag[m].mean())}
    res["partial_by_corrupt_fraction"] = part
    # an alternative rule, for comparison: flag when >= 25% of the grid patches score > 0.5
    alt = (scores_grid > 0.5).mean(1) >= 0.25
    res["alt_rule_fraction_ge_0.25"] = {
        "accuracy": float((alt[known] == (truth[known] == 1)).mean()) if known.any() else None,
        "detection_rate": float(alt[truth == 1].mean()) if (truth == 1).any() else None,
        "false_alarm_rate": float(alt[truth == 0].mean()) if (truth == 0).any() else None,
        "partial_flagged": float(alt[truth == -1].mean()) if (truth == -1).any() else None}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="target/blockiness/data.npz")
    ap.add_argument("--out", default="models/blockiness.onnx")
    ap.add_argument("--metrics", default="models/blockiness.json")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--channels", default="16,32,32")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--pos-weight-power", type=float, default=0.5,
                    help="1 = fully class-balanced loss, 0 = unweighted")
    ap.add_argument("--max-train", type=int, default=160000, help="cap on training patches (balanced)")
    ap.add_argument("--command", default=None, help="command line recorded in the metrics file")
    args = ap.parse_args()
    t0 = time.time()
    ch = tuple(int(c) for c in args.channels.split(","))
    grad_err = grad_check(ch, args.seed)

    d = np.load(args.data)
    meta = json.loads(str(d["meta"]))
    variants = meta["variants"]
    xtr, ytr = d["train_x"], d["train_y"].astype(np.float32)
    xva, yva = d["val_x"], d["val_y"].astype(np.float32)
    rng = np.random.default_rng(args.seed)
    if len(ytr) > args.max_train:
        # keep every corrupt patch when possible, fill up with clean ones
        pos = np.nonzero(ytr == 1)[0]
        neg = np.nonzero(ytr == 0)[0]
        npos = min(len(pos), args.max_train // 2)
        sel = np.concatenate([rng.choice(pos, npos, replace=False),
                              rng.choice(neg, min(len(neg), args.max_train - npos), replace=False)])
        sel.sort()
        xtr, ytr = xtr[sel], ytr[sel]
    npos, nneg = int(ytr.sum()), int(len(ytr) - ytr.sum())
    # class weights: corrupt patches weighted up by (clean/corrupt)^pos_weight_power
    wneg = 1.0
    wpos = (nneg / npos) ** args.pos_weight_power
    print("train %d patches (%d corrupt, %d clean), val %d patches (%d corrupt)" % (
        len(ytr), npos, nneg, len(yva), int(yva.sum())))

    net = Net(ch, rng)
    opt = Adam(net.p, args.lr)
    steps = args.epochs * ((len(ytr) + args.batch - 1) // args.batch)
    step = 0
    history = []
    for ep in range(args.epochs):
        te = time.time()
        perm = rng.permutation(len(ytr))
        tot, cnt = 0.0, 0
        for i in range(0, len(perm), args.batch):
            b = perm[i:i + args.batch]
            xb = augment(normalise(xtr[b]), rng)
            yb = ytr[b]
            wt = np.where(yb == 1, wpos, wneg).astype(np.float32)
            loss, dl = bce(net.forward(xb, cache=True), yb, wt)
            grads = net.backward(dl.astype(np.float32))
            lr = args.lr * 0.5 * (1 + np.cos(np.pi * step / steps))
            opt.step(net.p, grads, lr)
            step += 1
            tot += loss * len(b)
            cnt += len(b)
        pv = predict(net, xva)
        acc = float(((pv > 0.5) == (yva == 1)).mean())
        history.append({"epoch": ep + 1, "train_loss": round(tot / cnt, 4), "val_patch_accuracy": round(acc, 4),
                        "seconds": round(time.time() - te, 1)})
        print("epoch %2d  loss %.4f  val patch acc %.4f  (%.1fs)" % (ep + 1, tot / cnt, acc, time.time() - te),
              flush=True)
    train_seconds = time.time() - t0

    # ---- evaluation
    pv = predict(net, xva)
    pred = pv > 0.5
    patch = {"accuracy": float((pred == (yva == 1)).mean()),
             "corrupt_recall": float(pred[yva == 1].mean()),
             "clean_specificity": float((~pred[yva == 0]).mean()),
             "patches": int(len(yva)), "corrupt": int(yva.sum())}
    vv = d["val_var"]
    patch["per_variant"] = {variants[v]: {"patches": int((vv == v).sum()), "corrupt": int(yva[vv == v].sum()),
                                          "accuracy": float((pred[vv == v] == (yva[vv == v] == 1)).mean())}
                            for v in np.unique(vv)}
    ptr = predict(net, d["train_x"])
    train_patch_acc = float(((ptr > 0.5) == (d["train_y"] == 1)).mean())

    def grid_scores(split):
        gx = d[split + "_gx"]
        return predict(net, gx.reshape(-1, 32, 32)).reshape(len(gx), -1)

    frame_val = frame_eval(grid_scores("val"), d["val_gtruth"], d["val_gfrac"], d["val_gvar"], variants)
    frame_train = frame_eval(grid_scores("train"), d["train_gtruth"], d["train_gfrac"], d["train_gvar"], variants)
    print("val patch accuracy %.4f (corrupt recall %.4f, clean specificity %.4f)" % (
        patch["accuracy"], patch["corrupt_recall"], patch["clean_specificity"]))
    print("val frame accuracy %.4f (detection %.4f, false alarms %.4f; %d partial frames not scored)" % (
        frame_val["accuracy"], frame_val["detection_rate"], frame_val["false_alarm_rate"],
        frame_val["partial_frames"]))

    # ---- export + verification
    fp = folded_params(net)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    export_onnx(fp, args.out, "Blockiness (macroblocking) classifier for 16-aligned 32x32 luma patches. "
                "Input 'patches' [N,1,32,32] float32 = decoded Y byte / 255 (limited range as decoded). "
                "Output 'score' [N,1] = probability the patch is block-corrupted. See models/README.md.")
    import onnxruntime as ort
    sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    xin = (xva.astype(np.float32) / 255.0)[:, None]
    ort_scores = np.concatenate([sess.run(["score"], {"patches": xin[i:i + 4096]})[0]
                                 for i in range(0, len(xin), 4096)])
    ref_scores = np.concatenate([numpy_reference(fp, xin[i:i + 4096]) for i in range(0, len(xin), 4096)])
    diff_train_net = float(np.abs(ort_scores[:, 0] - pv).max())
    diff_ref = float(np.abs(ort_scores - ref_scores).max())
    ort_acc = float(((ort_scores[:, 0] > 0.5) == (yva == 1)).mean())
    print("onnxruntime vs numpy: max |diff| %.2e (training net), %.2e (NCHW reference); onnxruntime val acc %.4f"
          % (diff_train_net, diff_ref, ort_acc))
    if diff_train_net > 1e-4 or diff_ref > 1e-4:
        sys.exit("ONNX model does not match the numpy forward pass")

    # reference outputs for tests of other runtimes (luma bytes, then / 255 as the contract says)
    yy, xx = np.mgrid[0:32, 0:32]
    probes = {
        "flat_16": np.full((32, 32), 16),
        "flat_128": np.full((32, 32), 128),
        "flat_235": np.full((32, 32), 235),
        "ramp_40_plus_4x": 40 + 4 * xx,
        "blocks_8x8_60_plus_8_times_bx_plus_by": 60 + 8 * (xx // 8 + yy // 8),
    }
    pin = np.stack([v.astype(np.float32) / 255.0 for v in probes.values()])[:, None]
    pout = sess.run(["score"], {"patches": pin})[0][:, 0]
    reference_outputs = {k: round(float(v), 6) for k, v in zip(probes, pout)}
    print("reference outputs:", reference_outputs)

    size = os.path.getsize(args.out)
    sha = hashlib.sha256(open(args.out, "rb").read()).hexdigest()
    nparams = int(sum(v.size for v in fp.values()))
    clips = meta["clips"]
    metrics = {
        "model": os.path.basename(args.out),
        "sha256": sha,
        "bytes": size,
        "parameters": nparams,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": args.command or " ".join(sys.argv),
        "input": {"name": "patches", "shape": ["N", 1, 32, 32], "dtype": "float32",
                  "values": "decoded luma (Y plane, limited range as decoded) byte / 255.0; no other normalisation",
                  "patch_positions": "x, y multiples of 16 in the frame (8x8/16x16 block edges at patch offsets 0, 8, 16, 24)"},
        "output": {"name": "score", "shape": ["N", 1], "dtype": "float32",
                   "values": "sigmoid probability that the patch is block-corrupted"},
        "frame_rule": {"grid": "%d columns x %d rows of 32x32 patches" % (meta["grid"]["cols"], meta["grid"]["rows"]),
                       "grid_positions": "x_i = clamp(floor(((i + 0.5) * W / cols - 16) / 16) * 16, 0, W - 32), "
                                         "y_j likewise with H and rows",
                       "score": "mean of the grid patch scores", "threshold": 0.5},
        "opset": 13, "ir_version": 8,
        "architecture": "Conv3x3/2(1->%d) ReLU, Conv3x3/2(%d->%d) ReLU, Conv3x3/2(%d->%d) ReLU, "
                        "GlobalAveragePool, Flatten, Gemm(%d->1), Sigmoid; no padding" % (
                            ch[0], ch[0], ch[1], ch[1], ch[2], ch[2]),
        "normalisation_folded_into_conv1": {"mean": IN_MEAN, "scale": IN_SCALE},
        "data": {
            "generator": "models/train/gen_data.py (ffmpeg lavfi sources, x264/mpeg2video/mpeg4, noise bsf)",
            "ffmpeg": meta["ffmpeg"], "seed": meta["seed"], "thresholds": meta["thresholds"],
            "clips_train": sum(1 for c in clips if c["split"] == "train"),
            "clips_val": sum(1 for c in clips if c["split"] == "val"),
            "variants": variants,
            "train_patches_available": int(len(d["train_y"])),
            "train_patches_used": int(len(ytr)), "train_corrupt": npos, "train_clean": nneg,
            "val_patches": int(len(yva)), "val_corrupt": int(yva.sum()),
            "val_frames": int(len(d["val_gtruth"])), "train_frames": int(len(d["train_gtruth"])),
            "generation_seconds": meta["seconds"],
        },
        "training": {"seed": args.seed, "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
                     "optimizer": "Adam, cosine decay, weight decay 1e-4 on weights",
                     "loss": "binary cross-entropy, corrupt patches weighted by (clean/corrupt)^%g = %.2f"
                             % (args.pos_weight_power, wpos),
                     "gradient_check_worst_relative_error": grad_err,
                     "seconds": round(train_seconds, 1), "history": history},
        "validation": {
            "patch": patch,
            "frame": frame_val,
            "onnxruntime": {"max_abs_diff_vs_numpy": max(diff_train_net, diff_ref), "patch_accuracy": ort_acc,
                            "version": ort.__version__},
        },
        "train_fit": {"patch_accuracy": train_patch_acc, "frame": frame_train},
        "reference_outputs": {"note": "onnxruntime scores of synthetic 32x32 patches; names give the luma "
                                      "byte formula (x, y = column, row in the patch; bx = x // 8, by = y // 8)",
                              "scores": reference_outputs},
    }
    with open(args.metrics, "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print("wrote %s (%d bytes, %d parameters) and %s in %.0f s" % (args.out, size, nparams, args.metrics,
                                                                     time.time() - t0))


if __name__ == "__main__":
    main()
