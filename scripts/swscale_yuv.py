#!/usr/bin/env python3
"""How OpenCV's video reader turns decoded YUV into the BGR frames the YOLOX reference recipe
sees, reproduced byte for byte, and checked on a clip.

cv2.VideoCapture (opencv-python 4.12, its bundled FFmpeg 5.1 / swscale 6.7) converts yuv420p
frames at their own size with swscale's unscaled converter: ff_yuv2rgb_get_func_ptr() picks
the x86 SIMD yuv420 -> bgr24 routine (libswscale/x86/yuv_2_rgb.asm), with the coefficients of
ff_yuv2rgb_c_init_tables() for the default matrix (BT.601, limited range), whatever the stream's
colour metadata says. In integers, per pixel (row r, column c):

    yy = ((8*Y - 128) * 9539) >> 16          every >> is a floor (pmulhw), no rounding term
    uu = 8*U[r>>1][c>>1] - 1024              chroma: the 2x2 block's sample, not interpolated
    vv = 8*V[r>>1][c>>1] - 1024
    B = yy + ((uu * 16525) >> 16)
    G = yy + ((uu * -3209) >> 16) + ((vv * -6660) >> 16)   each product floored on its own
    R = yy + ((vv * 13075) >> 16)
    each clamped to 0..255

That is the difference between the daemon's camera path (GStreamer's videoconvert) and the
reference on video (docs/performance.md, "Preprocessing"). Run with the models venv:

    .lookout/venv-models/bin/python scripts/swscale_yuv.py media/bikes.mp4

It decodes the clip to I420 with GStreamer (H.264 decoding is bit-exact), converts every frame
with the formula above, and counts the bytes that differ from cv2.VideoCapture's frames.
"""
import subprocess
import sys
import tempfile

import numpy as np

Y_COEFF, Y_OFFSET, UV_OFFSET = 9539, 128, 1024
VR, UB, UG, VG = 13075, 16525, -3209, -6660


def i420_to_bgr(y, u, v):
    """y: (H, W) uint8; u, v: (ceil(H/2), ceil(W/2)) uint8 -> (H, W, 3) uint8 BGR, as cv2 reads it."""
    h, w = y.shape
    up = lambda p: np.repeat(np.repeat(p.astype(np.int32), 2, 0), 2, 1)[:h, :w]
    uu, vv = (up(u) << 3) - UV_OFFSET, (up(v) << 3) - UV_OFFSET
    yy = (((y.astype(np.int32) << 3) - Y_OFFSET) * Y_COEFF) >> 16
    b = yy + ((uu * UB) >> 16)
    g = yy + ((uu * UG) >> 16) + ((vv * VG) >> 16)
    r = yy + ((vv * VR) >> 16)
    return np.clip(np.stack([b, g, r], axis=-1), 0, 255).astype(np.uint8)


def main(path):
    import cv2

    cap = cv2.VideoCapture(path)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    with tempfile.NamedTemporaryFile(suffix=".i420") as raw:
        subprocess.run(
            ["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!", "decodebin", "!", "videoconvert", "!",
             "video/x-raw,format=I420", "!", "filesink", f"location={raw.name}"],
            check=True,
        )
        data = np.fromfile(raw.name, np.uint8)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    size = w * h + 2 * cw * ch
    frames = differing = total = 0
    while True:
        ok, want = cap.read()
        if not ok or (frames + 1) * size > data.size:
            break
        f = data[frames * size:(frames + 1) * size]
        y = f[: w * h].reshape(h, w)
        u = f[w * h: w * h + cw * ch].reshape(ch, cw)
        v = f[w * h + cw * ch:].reshape(ch, cw)
        differing += int((i420_to_bgr(y, u, v) != want).sum())
        total += want.size
        frames += 1
    print(f"{path}: {frames} frames {w}x{h}, {differing} of {total} bytes differ from cv2.VideoCapture")
    return 0 if frames and differing == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "media/bikes.mp4"))
