#!/usr/bin/env python3
"""The Python peer for `lookout bench peer`: what a user writes in an afternoon.

OpenCV decodes the video (cv2.VideoCapture), every frame is letterboxed the way the YOLOX
repository's `preproc` does it (cv2.resize INTER_LINEAR, pasted at the top-left of a canvas of
grey 114, BGR raw 0..255, NCHW float32), ONNX Runtime runs the model on the CPU, and the output
is decoded with YOLOX's grids and strides (8, 16, 32): score = obj * best class, kept above 0.3,
then non-maximum suppression per class at IoU 0.45, in numpy. Every frame is detected; nothing is
displayed or written.

    .lookout/venv-models/bin/python scripts/peer.py --model models/yolox_nano.onnx \\
        --video media/bikes.mp4 --threads 2

It prints one JSON line at the end:

    {"frames": N, "seconds": S, "fps": F, "detections": D, "peak_rss_kib": K,
     "threads": T, "ort": "1.31.1", "cv2": "4.12.0"}

`seconds` is the wall time of the frame loop (decode, letterbox, inference, decode, NMS), from
the first read to the end of the last frame, so the model load is not in it; `fps` is
frames / seconds; `detections` the number of boxes over all frames after NMS; `peak_rss_kib`
this process's peak resident set (getrusage ru_maxrss, in KiB on Linux). `--threads` sets ONNX
Runtime's intra-op threads only: OpenCV's decoder and resize keep their own defaults, as they
would in a user's script.

The script stands alone on purpose, as a user's would: its preproc, grids and NMS are the
reference recipe's (scripts/reference_detect.py), written again rather than imported, because
importing that module loads Pillow too and would add to the peak RSS being compared.

Set up the venv with (scripts/models.requirements.txt pins opencv-python-headless):
    python3 -m venv .lookout/venv-models
    .lookout/venv-models/bin/pip install -r scripts/models.requirements.txt
"""

import argparse
import json
import resource
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

SCORE_THRESHOLD = 0.3
NMS_IOU = 0.45
STRIDES = (8, 16, 32)
PAD = 114


def preproc(img, in_h, in_w):
    """YOLOX's preproc: resize keeping the aspect, top-left on grey 114, HWC BGR -> NCHW float."""
    r = min(in_h / img.shape[0], in_w / img.shape[1])
    nw, nh = int(img.shape[1] * r), int(img.shape[0] * r)
    padded = np.full((in_h, in_w, 3), PAD, np.uint8)
    padded[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32), r


def make_grids(in_h, in_w):
    grids, strides = [], []
    for s in STRIDES:
        xv, yv = np.meshgrid(np.arange(in_w // s), np.arange(in_h // s))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((grids[-1].shape[0], 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)


def nms(boxes, scores, thr):
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0, xx2 - xx1) * np.maximum(0, yy2 - yy1)
        iou = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[1:][iou <= thr]
    return keep


def postprocess(out, grids, strides, r, img_w, img_h):
    """Boxes (x1, y1, x2, y2 in frame pixels), scores and classes after per-class NMS."""
    p = out[0]
    cls = p[:, 5:].argmax(1)
    score = p[:, 4] * p[np.arange(len(p)), 5 + cls]
    m = score > SCORE_THRESHOLD
    p, cls, score = p[m], cls[m], score[m]
    xy = (p[:, :2] + grids[m]) * strides[m]
    wh = np.exp(p[:, 2:4]) * strides[m]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1) / r
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, img_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, img_h)
    keep = []
    for c in np.unique(cls):
        idx = np.where(cls == c)[0]
        keep.extend(idx[nms(boxes[idx], score[idx], NMS_IOU)])
    return boxes[keep], score[keep], cls[keep]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a YOLOX ONNX export taking float32 NCHW BGR 0..255")
    ap.add_argument("--video", required=True, help="a video file OpenCV can open")
    ap.add_argument("--threads", type=int, required=True, help="ONNX Runtime intra-op threads")
    ap.add_argument("--frames-limit", type=int, help="stop after this many frames")
    a = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    in_h, in_w = inp.shape[2], inp.shape[3]
    if inp.type != "tensor(float)" or not isinstance(in_h, int) or not isinstance(in_w, int):
        sys.exit(f"peer: {a.model}: want a float32 NCHW input of fixed size, got {inp.type} {inp.shape}")
    grids, strides = make_grids(in_h, in_w)

    cap = cv2.VideoCapture(a.video)
    if not cap.isOpened():
        sys.exit(f"peer: OpenCV cannot open {a.video}")
    frames = detections = 0
    start = time.perf_counter()
    while a.frames_limit is None or frames < a.frames_limit:
        ok, img = cap.read()
        if not ok:
            break
        x, r = preproc(img, in_h, in_w)
        out = sess.run(None, {inp.name: x})[0]
        boxes, _, _ = postprocess(out, grids, strides, r, img.shape[1], img.shape[0])
        frames += 1
        detections += len(boxes)
    seconds = time.perf_counter() - start
    cap.release()
    if frames == 0:
        sys.exit(f"peer: no frame decoded from {a.video}")

    print(json.dumps({
        "frames": frames,
        "seconds": round(seconds, 3),
        "fps": round(frames / seconds, 2),
        "detections": detections,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "threads": a.threads,
        "ort": ort.__version__,
        "cv2": cv2.__version__,
    }))


if __name__ == "__main__":
    main()
