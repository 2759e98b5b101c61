#!/usr/bin/env python3
"""Reference detector in Python (numpy + onnxruntime + Pillow), independent of the Rust code.

It follows the recipes written down in models/README.md, not Lookout's manifests, so
that the golden files it writes check the manifests as well as the Rust decoders.

    .lookout/venv-models/bin/python scripts/reference_detect.py --family nanodet \
        --model models/nanodet_m_320.onnx media/*.jpg media/*.png \
        > tests/fixtures/nanodet_m_320_detections.json

The resize is cv2.resize INTER_LINEAR, as the YOLOX repository's own `preproc` does and as
Lookout's `resize` reproduces bit for bit; `--resize pil` takes Pillow's bilinear instead
(antialiased when it shrinks: a softer picture, scores up to 0.04 apart).

`--video PATH` decodes a clip with cv2.VideoCapture instead of reading images, detects every
K-th frame (`--every K`, from frame 0) until N frames are detected (`--limit N`), and prints one
JSON line per detected frame: {"frame": index in the clip from 0, "detections": [...]}, each
detection as in the images' output. OpenCV's decoder (FFmpeg, swscale to BGR) is not
GStreamer's, so its pixels may differ slightly from what the daemon sees.

    .lookout/venv-models/bin/python scripts/reference_detect.py --family yolox --resize cv2 \
        --model models/yolox_nano.onnx --video media/vtest.avi --every 10 --limit 20

Set up the venv with:
    python3 -m venv .lookout/venv-models
    .lookout/venv-models/bin/pip install -r scripts/models.requirements.txt
"""

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
        "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
        "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
        "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
        "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
        "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
        "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
        "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
        "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
        "teddy bear", "hair drier", "toothbrush"]


def nms(boxes, scores, thr):
    """Greedy NMS; a box survives when its IoU with every kept box is <= thr."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort(kind="stable")[::-1]
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


def per_class_nms(boxes, scores, cls, iou):
    out = []
    for c in np.unique(cls):
        idx = np.where(cls == c)[0]
        for k in nms(boxes[idx], scores[idx], iou):
            out.append((COCO[c], float(scores[idx][k]), boxes[idx][k]))
    return sorted(out, key=lambda t: -t[1])


# --- NanoDet-m 320 (models/README.md, "NanoDet-m 320") ----------------------------------------
NANODET_MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # B, G, R
NANODET_STD = np.array([57.375, 57.12, 58.395], np.float32)


def nanodet_preprocess(img_rgb, w, h, resize="cv2"):
    """Plain resize (no letterbox) to w x h, bilinear; BGR; (x - mean) / std; NCHW."""
    if resize == "cv2":
        import cv2
        resized = cv2.resize(img_rgb, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    else:
        resized = np.asarray(Image.fromarray(img_rgb).resize((w, h), Image.BILINEAR)).astype(np.float32)
    bgr = resized[:, :, ::-1]
    x = ((bgr - NANODET_MEAN) / NANODET_STD).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(x, dtype=np.float32)


def nanodet_postprocess(outs, names, img_w, img_h, in_w, in_h, conf=0.35, iou=0.6, strides=(8, 16, 32), reg_max=7):
    by_name = dict(zip(names, outs))
    boxes, scores, classes = [], [], []
    for s in strides:
        cls = by_name[f"cls_pred_stride_{s}"][0]  # [N, 80], already sigmoided
        dis = by_name[f"dis_pred_stride_{s}"][0]  # [N, 4 * (reg_max + 1)]
        nx, ny = -(-in_w // s), -(-in_h // s)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        cx = (xs.reshape(-1) * s + (s - 1) / 2).astype(np.float32)
        cy = (ys.reshape(-1) * s + (s - 1) / 2).astype(np.float32)
        bins = dis.reshape(-1, 4, reg_max + 1)
        e = np.exp(bins - bins.max(axis=2, keepdims=True))
        p = e / e.sum(axis=2, keepdims=True)
        d = (p * np.arange(reg_max + 1, dtype=np.float32)).sum(axis=2) * s  # l, t, r, b
        b = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1)
        c = cls.argmax(1)
        sc = cls[np.arange(len(cls)), c]
        m = sc > conf
        boxes.append(b[m]); scores.append(sc[m]); classes.append(c[m])
    boxes = np.concatenate(boxes); scores = np.concatenate(scores); classes = np.concatenate(classes)
    # Back to image pixels: x and y scale separately (the resize stretched).
    boxes = boxes * np.array([img_w / in_w, img_h / in_h, img_w / in_w, img_h / in_h], np.float32)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, img_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, img_h)
    return per_class_nms(boxes, scores, classes, iou)


# --- YOLOX (models/README.md, "YOLOX-Nano") ----------------------------------------------------
def yolox_preprocess(img_rgb, size, resize="pil"):
    h, w = img_rgb.shape[:2]
    r = min(size / h, size / w)
    nw, nh = int(w * r), int(h * r)
    if resize == "cv2":
        import cv2  # only here, so that a venv without OpenCV still runs the default recipe

        # Channel by channel, so RGB in gives the same bytes as the BGR the YOLOX repo passes.
        resized = cv2.resize(img_rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    else:
        resized = np.asarray(Image.fromarray(img_rgb).resize((nw, nh), Image.BILINEAR))
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[:nh, :nw] = resized
    x = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
    return np.ascontiguousarray(x), r


def yolox_postprocess(raw, r, size, img_w, img_h, conf=0.3, iou=0.45, strides=(8, 16, 32)):
    grids, exps = [], []
    for s in strides:
        n = size // s
        yv, xv = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        exps.append(np.full((n * n, 1), s))
    g = np.concatenate(grids).astype(np.float32)
    st = np.concatenate(exps).astype(np.float32)
    p = raw[0].copy()
    p[:, :2] = (p[:, :2] + g) * st
    p[:, 2:4] = np.exp(p[:, 2:4]) * st
    cls = p[:, 5:].argmax(1)
    score = p[:, 4] * p[np.arange(len(p)), 5 + cls]
    m = score > conf
    p, cls, score = p[m], cls[m], score[m]
    b = np.empty((len(p), 4), np.float32)
    b[:, 0] = p[:, 0] - p[:, 2] / 2
    b[:, 1] = p[:, 1] - p[:, 3] / 2
    b[:, 2] = p[:, 0] + p[:, 2] / 2
    b[:, 3] = p[:, 1] + p[:, 3] / 2
    b /= r
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, img_w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, img_h)
    return per_class_nms(b, score, cls, iou)


def detections_json(dets):
    return [{"label": n, "score": round(s, 4), "box": [round(float(v), 1) for v in b]} for n, s, b in dets]


def video_frames(path, every, limit):
    """(index, RGB frame) for every `every`-th frame of the clip, at most `limit` of them."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        sys.exit(f"reference_detect: OpenCV cannot open {path}")
    index = done = 0
    while limit is None or done < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        if index % every == 0:
            yield index, np.ascontiguousarray(bgr[:, :, ::-1])
            done += 1
        index += 1
    cap.release()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=["nanodet", "yolox"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--resize", choices=["pil", "cv2"], default="cv2",
                    help="cv2.resize INTER_LINEAR (default: the recipes, and the goldens) or Pillow's antialiased bilinear")
    ap.add_argument("--video", help="detect the frames of this clip (cv2.VideoCapture), not images")
    ap.add_argument("--every", type=int, default=1, metavar="K", help="with --video: every K-th frame")
    ap.add_argument("--limit", type=int, metavar="N", help="with --video: stop after N detected frames")
    ap.add_argument("images", nargs="*")
    a = ap.parse_args()
    if bool(a.video) == bool(a.images):
        ap.error("give either images or --video")
    if a.every < 1 or (a.limit is not None and a.limit < 1):
        ap.error("--every and --limit must be at least 1")
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    in_h, in_w = inp.shape[2], inp.shape[3]
    names = [o.name for o in sess.get_outputs()]
    if a.family == "nanodet":
        conf, iou, recipe = 0.35, 0.6, f"{in_w}x{in_h} plain resize, BGR, (x - mean) / std"
        if a.resize == "cv2":
            recipe += ", cv2.resize INTER_LINEAR"
    else:
        conf, iou, recipe = 0.3, 0.45, f"{in_w}x{in_h} top-left letterbox, pad 114, BGR float 0..255"
        if a.resize == "cv2":
            recipe += ", cv2.resize INTER_LINEAR"

    def detect(im):
        h, w = im.shape[:2]
        if a.family == "nanodet":
            outs = sess.run(None, {inp.name: nanodet_preprocess(im, in_w, in_h, a.resize)})
            return nanodet_postprocess(outs, names, w, h, in_w, in_h, conf, iou)
        x, r = yolox_preprocess(im, in_w, a.resize)
        return yolox_postprocess(sess.run(None, {inp.name: x})[0], r, in_w, w, h, conf, iou)

    if a.video:
        for index, im in video_frames(a.video, a.every, a.limit):
            sys.stdout.write(json.dumps({"frame": index, "detections": detections_json(detect(im))}) + "\n")
        return
    images = {}
    for f in a.images:
        im = np.asarray(Image.open(f).convert("RGB"))
        images[os.path.basename(f)] = {
            "width": im.shape[1],
            "height": im.shape[0],
            "detections": detections_json(detect(im)),
        }
    out = {
        "model": os.path.basename(a.model),
        "generated_by": "scripts/reference_detect.py --family " + a.family
        + (" --resize pil" if a.resize == "pil" else ""),
        "onnxruntime": ort.__version__,
        "conf_threshold": conf,
        "nms_iou": iou,
        "input": recipe,
        "images": images,
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
