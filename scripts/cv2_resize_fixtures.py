#!/usr/bin/env python3
"""Fixtures for a cv2-exact resize, and the written-down algorithm they pin (issue 20).

The YOLOX reference recipe resizes with `cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)`
on 8-bit images. `resize_linear_u8` below is a pure-numpy reimplementation of what OpenCV does
there, bit for bit: it is the specification a Rust implementation follows. This script writes
small inputs and cv2's outputs as lossless PNGs into tests/fixtures/cv2_resize/ with an index,
and refuses to write anything unless the numpy version matches cv2 exactly on every case.

    .lookout/venv-models/bin/python scripts/cv2_resize_fixtures.py          # (re)write the fixtures
    .lookout/venv-models/bin/python scripts/cv2_resize_fixtures.py --check  # compare, write nothing
    .lookout/venv-models/bin/python scripts/cv2_resize_fixtures.py --sweep 2000  # random sizes too

The venv: scripts/models.requirements.txt (opencv-python-headless, numpy, pillow).

What OpenCV 4.12 does for INTER_LINEAR on uint8 (modules/imgproc/src/resize.cpp, checked here
numerically, not only read):

* Same size: a copy. Exactly half in both directions (src == 2 * dst): INTER_AREA's fast path,
  the rounded mean of each 2x2 block, (a + b + c + d + 2) >> 2. The generic path below gives
  the same bytes there (its weights are then 1024/1024 and every shift is exact), so an
  implementation need not special-case it.
* Otherwise separable, in fixed point with 11 fractional bits (INTER_RESIZE_COEF_BITS), one
  coordinate table per axis (see `axis_table`):
    scale = 1 / (dst / src) in double; f = float32((d + 0.5) * scale - 0.5); i = floor(f);
    t = f - i (float32); w0 = round_half_even((1 - t) * 2048), w1 = round_half_even(t * 2048),
    each computed on float32 and rounded on its own (they sum to 2048 in every case seen).
  Borders: along x, i < 0 becomes i = 0 with t = 0, and i >= src - 1 becomes i = src - 1 with
  t = 0 (weights 2048, 0). Along y the weights are NOT reset: the two rows i and i + 1 are
  clamped to [0, src - 1], so at the top and bottom both taps read the same row with the
  unreset weights. Because of the split rounding below, that is not the same as 2048, 0.
* Horizontal pass, exact in int32 for each source row needed:
    H[x] = S[ix0[x]] * wx0[x] + S[ix1[x]] * wx1[x]         (0 .. 255 * 2048)
* Vertical pass, per output row y with rows r0 = clamp(iy), r1 = clamp(iy + 1):
    D[x] = ((((H_r0[x] >> 4) * wy0) >> 16) + (((H_r1[x] >> 4) * wy1) >> 16) + 2) >> 2
  (arithmetic shifts; this is what the SIMD kernel VResizeLinearVec_32s8u computes with
  mulhi on int16, and the scalar tail was written to give the same bytes). The result is
  always in 0..255. It is NOT the textbook (H0 * wy0 + H1 * wy1 + (1 << 21)) >> 22: that
  differs from cv2 by 1 on about one byte in nine (index.json counts them per case).
"""

import argparse
import hashlib
import json
import os
import sys

import cv2
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "cv2_resize")
COEF_BITS = 11
COEF_SCALE = 1 << COEF_BITS  # 2048

# (input file, output width, output height): the cases the Rust test checks.
CASES = [
    ("pattern_37x23.png", 17, 11),    # down by 2.18 x 2.09
    ("pattern_37x23.png", 8, 5),      # down by 4.6: bilinear skips pixels, no antialiasing
    ("pattern_37x23.png", 50, 31),    # up by 1.35: the clamped borders on every side
    ("pattern_37x23.png", 37, 70),    # width kept, height up by 3.04
    ("dog_200x150.png", 64, 48),      # down by 3.125
    ("dog_200x150.png", 133, 100),    # down by 1.5
    ("dog_200x150.png", 100, 75),     # exactly half: cv2's INTER_AREA fast path
    ("dog_200x150.png", 100, 150),    # half in x only: the generic path
    ("dog_200x150.png", 416, 312),    # up by 2.08, the letterbox size of a 4:3 frame at 416
]


def make_inputs():
    """The two inputs, as HxWx3 uint8 RGB."""
    rng = np.random.default_rng(20)
    # Noise over a gradient: every rounding path is hit, and the borders differ from the middle.
    yy, xx = np.mgrid[0:23, 0:37]
    grad = np.stack([xx * 7, yy * 11, (xx + yy) * 4], axis=2)
    pattern = ((grad + rng.integers(0, 256, (23, 37, 3))) % 256).astype(np.uint8)
    pattern[0, 0] = (0, 0, 0)          # the extremes, so saturation would show
    pattern[0, 1] = (255, 255, 255)
    pattern[-1, -1] = (255, 0, 255)
    dog = np.asarray(Image.open(os.path.join(ROOT, "media", "dog.jpg")).convert("RGB"))
    dog = np.ascontiguousarray(dog[200:350, 100:300])  # the dog's face and the bicycle wheel
    return {"pattern_37x23.png": pattern, "dog_200x150.png": dog}


# --- The specification ------------------------------------------------------------------------
def axis_table(src, dst, reset_border_weights):
    """Source indices (i0, i1) and fixed-point weights (w0, w1) for each destination index."""
    scale = 1.0 / (dst / src)                                   # double, as cv::resize has it
    d = np.arange(dst, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)           # half-pixel centres, to float32
    i = np.floor(f).astype(np.int64)
    t = (f - i.astype(np.float32)).astype(np.float32)           # float32 subtraction
    if reset_border_weights:                                    # x only
        lo, hi = i < 0, i >= src - 1
        t[lo], i[lo] = 0, 0
        t[hi], i[hi] = 0, src - 1
    # saturate_cast<short>(float) is cvRound: round half to even, on the float32 product.
    w0 = np.rint((np.float32(1) - t) * np.float32(COEF_SCALE)).astype(np.int64)
    w1 = np.rint(t * np.float32(COEF_SCALE)).astype(np.int64)
    i0 = np.clip(i, 0, src - 1)
    i1 = np.clip(i + 1, 0, src - 1)
    return i0, i1, w0, w1


def resize_linear_u8(img, dst_w, dst_h):
    """cv2.resize(img, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR) for HxWxC uint8."""
    src_h, src_w, _ = img.shape
    s = img.astype(np.int64)
    if (src_w, src_h) == (dst_w, dst_h):
        return img.copy()
    if src_w == 2 * dst_w and src_h == 2 * dst_h:
        # cv2's INTER_AREA fast path; the generic path below gives the same bytes.
        return ((s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2] + 2) >> 2).astype(np.uint8)
    x0, x1, wx0, wx1 = axis_table(src_w, dst_w, reset_border_weights=True)
    y0, y1, wy0, wy1 = axis_table(src_h, dst_h, reset_border_weights=False)
    h = s[:, x0] * wx0[None, :, None] + s[:, x1] * wx1[None, :, None]   # [src_h, dst_w, C]
    a = ((h[y0] >> 4) * wy0[:, None, None]) >> 16
    b = ((h[y1] >> 4) * wy1[:, None, None]) >> 16
    out = (a + b + 2) >> 2
    assert out.min() >= 0 and out.max() <= 255
    return out.astype(np.uint8)


def resize_linear_u8_generic(img, dst_w, dst_h):
    """The generic path alone (no copy, no 2x special case), to show the 2x path is the same."""
    x0, x1, wx0, wx1 = axis_table(img.shape[1], dst_w, True)
    y0, y1, wy0, wy1 = axis_table(img.shape[0], dst_h, False)
    s = img.astype(np.int64)
    h = s[:, x0] * wx0[None, :, None] + s[:, x1] * wx1[None, :, None]
    return (((((h[y0] >> 4) * wy0[:, None, None]) >> 16) + (((h[y1] >> 4) * wy1[:, None, None]) >> 16) + 2) >> 2).astype(np.uint8)


def textbook_u8(img, dst_w, dst_h):
    """The rounding a reader might expect: (H0*w0 + H1*w1 + (1 << 21)) >> 22. Not cv2's."""
    x0, x1, wx0, wx1 = axis_table(img.shape[1], dst_w, True)
    y0, y1, wy0, wy1 = axis_table(img.shape[0], dst_h, False)
    s = img.astype(np.int64)
    h = s[:, x0] * wx0[None, :, None] + s[:, x1] * wx1[None, :, None]
    return ((h[y0] * wy0[:, None, None] + h[y1] * wy1[:, None, None] + (1 << 21)) >> 22).astype(np.uint8)


def cv2_resize(img, w, h):
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def sweep(n):
    """Random sizes and contents (1, 3 and 4 channels): the numpy version against cv2."""
    rng = np.random.default_rng(7)
    for k in range(n):
        sh, sw = (int(v) for v in rng.integers(1, 160, 2))
        dh, dw = (int(v) for v in rng.integers(1, 260, 2))
        if k % 7 == 0:
            dh, dw = max(1, sh // 2), max(1, sw // 2)
        cn = int(rng.choice([1, 3, 4]))
        img = rng.integers(0, 256, (sh, sw, cn), dtype=np.uint8)
        ref = cv2_resize(img, dw, dh).reshape(dh, dw, cn)
        got = resize_linear_u8(img, dw, dh)
        if not np.array_equal(got, ref):
            sys.exit(f"sweep: {sw}x{sh}x{cn} -> {dw}x{dh}: {(got != ref).sum()} bytes differ from cv2")
    print(f"sweep: {n} random resizes, numpy == cv2 on every byte", file=sys.stderr)


def png_bytes(arr):
    import io
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare the committed fixtures, write nothing")
    ap.add_argument("--sweep", type=int, default=0, metavar="N", help="also N random sizes against cv2")
    a = ap.parse_args()

    if a.check:
        inputs = {f: np.asarray(Image.open(os.path.join(OUT, f)).convert("RGB")) for f, _, _ in CASES}
    else:
        inputs = make_inputs()
    files, index = {}, []
    for name, w, h in CASES:
        img = inputs[name]
        ref = cv2_resize(img, w, h)
        got = resize_linear_u8(img, w, h)
        if not np.array_equal(got, ref):
            sys.exit(f"{name} -> {w}x{h}: the numpy version differs from cv2 on {(got != ref).sum()} bytes")
        generic_same = np.array_equal(resize_linear_u8_generic(img, w, h), ref)
        textbook_diff = int((textbook_u8(img, w, h) != ref).sum())
        out = f"{os.path.splitext(name)[0]}_to_{w}x{h}.png"
        if a.check:
            want = np.asarray(Image.open(os.path.join(OUT, out)).convert("RGB"))
            if not np.array_equal(want, ref):
                sys.exit(f"{out}: cv2 {cv2.__version__} now gives other bytes than the fixture")
        files[out] = ref
        path = "area_fast_2x" if img.shape[1] == 2 * w and img.shape[0] == 2 * h else "generic"
        index.append({"input": name, "width": w, "height": h, "output": out, "cv2_path": path,
                      "generic_path_same": generic_same, "textbook_rounding_bytes_off": textbook_diff})
        print(f"{name} {img.shape[1]}x{img.shape[0]} -> {w}x{h}: numpy == cv2 ({path}); generic path "
              f"{'same' if generic_same else 'DIFFERENT'}; textbook rounding off on {textbook_diff} of "
              f"{ref.size} bytes", file=sys.stderr)
    if a.sweep:
        sweep(a.sweep)
    if a.check:
        print("check: the fixtures match cv2 and the numpy version", file=sys.stderr)
        return

    os.makedirs(OUT, exist_ok=True)
    files.update(inputs)
    total = 0
    for f, arr in sorted(files.items()):
        data = png_bytes(arr)
        with open(os.path.join(OUT, f), "wb") as fh:
            fh.write(data)
        total += len(data)
    meta = {
        "generated_by": "scripts/cv2_resize_fixtures.py",
        "opencv": cv2.__version__,
        "call": "cv2.resize(input, (width, height), interpolation=cv2.INTER_LINEAR), uint8 RGB",
        "sha256": {f: hashlib.sha256(png_bytes(arr)).hexdigest() for f, arr in sorted(files.items())},
        "cases": index,
    }
    with open(os.path.join(OUT, "index.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    print(f"wrote {len(files)} PNGs ({total} bytes) and index.json to {os.path.relpath(OUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
