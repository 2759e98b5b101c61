#!/usr/bin/env python3
"""Tracking-quality benchmark: Lookout's tracker vs supervision's ByteTrack on synthetic MOT.

Generates seeded synthetic sequences with known ground truth, feeds the same detections to
both trackers in the same run, and scores both with py-motmetrics (MOTA, IDF1, ID switches,
IoU matching threshold 0.5). Prints a markdown table.

Scenarios (11 sequences, 10 fps, 300 frames, 1920x1080, 5-15 objects, person-shaped boxes unless noted):
  linear       objects moving linearly with small box noise
  crossing     pairs of objects walking through each other (same class), head-on or at
               right angles, passing within 15 px of each other
  fast         objects at 150-400 px/s (15-40 px per frame): the motion model must carry them
  occlusion    each object has 1-3 detection gaps of 0.3-1.2 s (GT keeps them)
  missed       20% of detections dropped at random
  false_pos    3 false positives per frame (score 0.5-0.9), random places and sizes
  jitter       box jitter of 8% of the box size
  low_conf     objects spend stretches at score 0.15-0.45 (partial occlusion)
  dense        15 objects in a small area, many overlaps
  bicycles     people riding bicycles: person + bicycle boxes overlapping (two classes)
  mixed        all of the above at once
Speeds are 20-120 px/s unless noted. Objects enter and leave at random times; velocities
drift slowly (not perfectly linear).

Settings, matched where the two trackers correspond:
  Lookout     TrackerConfig::default(): high_score 0.5, new_track_score 0.6, match_iou 0.2,
              low_match_iou 0.5, tentative_match_iou 0.3, min_hits 3, max_lost_seconds 1.5.
  supervision sv.ByteTrack(track_activation_threshold=0.5 (so its det_thresh is 0.6),
              minimum_matching_threshold=0.8 (= IoU 0.2), frame_rate=fps,
              lost_track_buffer=45 (45 * fps / 30 frames = 1.5 s), minimum_consecutive_frames=3).
              Its second stage (IoU 0.5) and unconfirmed stage (0.7) are fixed, like ours.
              sv.ByteTrack is class-agnostic, so one instance runs per class (what a user
              wanting class-aware tracking would do); ids are offset per class.
Both report only tracks matched in the current frame. Lookout reports the Kalman-filtered
box, supervision the detection box.

Timing: Lookout's is the time inside Tracker::update only (measured by the example binary);
supervision's is the time inside update_with_detections only (sv.Detections are built
outside the timer). Both single-threaded on the same machine.

Usage:
  python3 -m venv .venv-bench && .venv-bench/bin/pip install -r scripts/track_bench.requirements.txt
  cargo build --release --example track_file
  .venv-bench/bin/python scripts/track_bench.py [--bin target/release/examples/track_file]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import motmetrics as mm  # noqa: E402
import supervision as sv  # noqa: E402

FPS = 10.0
FRAMES = 300
W, H = 1920, 1080
SEED = 20261128


def scenario_params(name):
    base = dict(n=(5, 10), noise=0.02, drop=0.03, gaps=0, fp=0, low=False, crossing=False,
                dense=False, bicycles=False, speed=(20, 120))
    extra = {
        "linear": dict(),
        "crossing": dict(crossing=True, n=(8, 12), speed=(40, 150)),
        "fast": dict(speed=(150, 400)),
        "occlusion": dict(gaps=3),
        "missed": dict(drop=0.2),
        "false_pos": dict(fp=3),
        "jitter": dict(noise=0.08),
        "low_conf": dict(low=True),
        "dense": dict(dense=True, n=(15, 15)),
        "bicycles": dict(bicycles=True, n=(5, 8)),
        "mixed": dict(gaps=2, drop=0.1, fp=2, noise=0.05, low=True, crossing=True, n=(10, 15),
                      speed=(20, 200)),
    }[name]
    base.update(extra)
    return base


def trajectory(rng, anchor, x, y, vx, vy, start, end):
    """Centres from `start` to `end` passing through (x, y) at frame `anchor`, integrated both
    ways from the anchor with a slow random drift of the velocity (people don't walk on rails)."""
    centres = [None] * FRAMES
    for step in (1, -1):
        cx, cy, cvx, cvy = x, y, vx, vy
        f = anchor
        while start <= f < end:
            centres[f] = (cx, cy)
            cvx += float(rng.normal(0, 3))
            cvy += float(rng.normal(0, 3))
            cx += step * cvx / FPS
            cy += step * cvy / FPS
            f += step
    return centres


def make_objects(rng, p):
    """Ground-truth objects: class, size, and per-frame centre (None when absent)."""
    n = int(rng.integers(p["n"][0], p["n"][1] + 1))
    objs = []
    area = (W * 0.35, H * 0.35, W * 0.65, H * 0.65) if p["dense"] else (0, 0, W, H)
    lo, hi = p["speed"]
    k = 0
    while k < n:
        w = float(rng.uniform(30, 80))
        h = w * float(rng.uniform(1.8, 2.6))
        speed = float(rng.uniform(lo, hi))
        ang = float(rng.uniform(0, 2 * math.pi))
        if p["crossing"] and k + 1 < n:
            # Two same-class objects through one point at one frame, head-on or at right angles.
            meet = int(rng.integers(40, FRAMES - 40))
            x, y = float(rng.uniform(W * 0.2, W * 0.8)), float(rng.uniform(H * 0.2, H * 0.8))
            turn = math.pi + float(rng.uniform(-0.5, 0.5)) if rng.random() < 0.6 else math.pi / 2
            for a, dy in ((ang, 0.0), (ang + turn, float(rng.uniform(-15, 15)))):
                s0, s1 = meet - int(rng.integers(20, 60)), meet + int(rng.integers(20, 60))
                v = float(rng.uniform(lo, hi))
                c = trajectory(rng, meet, x, y + dy, math.cos(a) * v, math.sin(a) * v, s0, min(FRAMES, s1))
                objs.append(dict(cls=0, w=w, h=h, centres=c))
                w = float(rng.uniform(30, 80))
                h = w * float(rng.uniform(1.8, 2.6))
            k += 2
            continue
        start = int(rng.integers(0, FRAMES // 3))
        end = min(FRAMES, start + int(rng.integers(FRAMES // 3, FRAMES)))
        x, y = float(rng.uniform(area[0], area[2])), float(rng.uniform(area[1], area[3]))
        c = trajectory(rng, start, x, y, math.cos(ang) * speed, math.sin(ang) * speed, start, end)
        objs.append(dict(cls=0, w=w, h=h, centres=c))
        if p["bicycles"]:
            # The bicycle under its rider: lower, wider, same motion.
            bc = [None if q is None else (q[0] + 3, q[1] + h * 0.3) for q in c]
            objs.append(dict(cls=1, w=w * 1.6, h=h * 0.6, centres=bc))
        k += 1
    return objs


def box(c, w, h):
    return [c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2]


def visible(b):
    return b[2] > 0 and b[3] > 0 and b[0] < W and b[1] < H


def make_sequence(name, seed):
    rng = np.random.default_rng(seed)
    p = scenario_params(name)
    objs = make_objects(rng, p)
    # Per-object detection gaps and low-confidence stretches (frame ranges).
    gaps, lows = [], []
    for _ in objs:
        g = []
        for _ in range(p["gaps"]):
            s = int(rng.integers(0, FRAMES))
            g.append((s, s + int(rng.uniform(0.3, 1.2) * FPS)))
        gaps.append(g)
        lo = []
        if p["low"]:
            for _ in range(2):
                s = int(rng.integers(0, FRAMES))
                lo.append((s, s + int(rng.uniform(0.5, 2.0) * FPS)))
        lows.append(lo)
    frames = []
    for f in range(FRAMES):
        gt, dets = [], []
        for i, o in enumerate(objs):
            c = o["centres"][f]
            if c is None:
                continue
            b = box(c, o["w"], o["h"])
            if not visible(b):
                continue
            gt.append((i + 1, o["cls"], b))
            if any(s <= f < e for s, e in gaps[i]) or rng.random() < p["drop"]:
                continue
            n = p["noise"]
            jb = [b[0] + rng.normal(0, n * o["w"]), b[1] + rng.normal(0, n * o["h"]),
                  b[2] + rng.normal(0, n * o["w"]), b[3] + rng.normal(0, n * o["h"])]
            if jb[2] <= jb[0] + 2 or jb[3] <= jb[1] + 2:
                continue
            low = any(s <= f < e for s, e in lows[i])
            score = float(rng.uniform(0.15, 0.45) if low else rng.uniform(0.55, 0.95))
            dets.append(dict(cls=o["cls"], score=score, bbox=[float(v) for v in jb]))
        for _ in range(p["fp"]):
            w = float(rng.uniform(20, 90))
            h = w * float(rng.uniform(1, 2.5))
            x, y = float(rng.uniform(0, W - w)), float(rng.uniform(0, H - h))
            dets.append(dict(cls=0, score=float(rng.uniform(0.5, 0.9)), bbox=[x, y, x + w, y + h]))
        rng.shuffle(dets)
        frames.append(dict(t=f / FPS, gt=gt, dets=dets))
    return frames


def run_lookout(binary, frames):
    lines = []
    for fr in frames:
        lines.append(json.dumps({"t": fr["t"], "detections": [
            {"class": d["cls"], "score": d["score"], "bbox": d["bbox"]} for d in fr["dets"]]}))
    proc = subprocess.run([binary], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    hyps = [[(t["id"], t["bbox"]) for t in o["tracks"]] for o in out]
    return hyps, stats["tracker_seconds"]


def run_supervision(frames):
    trackers = {}
    spent = 0.0
    hyps = []
    for fr in frames:
        hyp = []
        classes = sorted({d["cls"] for d in fr["dets"]} | set(trackers))
        for cls in classes:
            tr = trackers.get(cls)
            if tr is None:
                tr = trackers[cls] = sv.ByteTrack(
                    track_activation_threshold=0.5, lost_track_buffer=45,
                    minimum_matching_threshold=0.8, frame_rate=FPS, minimum_consecutive_frames=3)
            ds = [d for d in fr["dets"] if d["cls"] == cls]
            if ds:
                det = sv.Detections(xyxy=np.array([d["bbox"] for d in ds], dtype=np.float32),
                                    confidence=np.array([d["score"] for d in ds], dtype=np.float32),
                                    class_id=np.full(len(ds), cls, dtype=int))
            else:
                det = sv.Detections.empty()
                det.confidence = np.zeros(0, dtype=np.float32)
            t0 = time.perf_counter()
            res = tr.update_with_detections(det)
            spent += time.perf_counter() - t0
            for tid, b in zip(res.tracker_id, res.xyxy):
                hyp.append((int(tid) + cls * 1_000_000, [float(v) for v in b]))
        hyps.append(hyp)
    return hyps, spent


def xywh(b):
    return [b[0], b[1], b[2] - b[0], b[3] - b[1]]


def accumulate(frames, hyps):
    acc = mm.MOTAccumulator(auto_id=True)
    for fr, hyp in zip(frames, hyps):
        gt_ids = [g[0] for g in fr["gt"]]
        gt_boxes = np.array([xywh(g[2]) for g in fr["gt"]]).reshape(-1, 4)
        h_ids = [h[0] for h in hyp]
        h_boxes = np.array([xywh(h[1]) for h in hyp]).reshape(-1, 4)
        dist = mm.distances.iou_matrix(gt_boxes, h_boxes, max_iou=0.5)
        acc.update(gt_ids, h_ids, dist)
    return acc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=None, help="track_file binary (default: cargo build it)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--per-sequence", action="store_true", help="also print per-sequence rows")
    args = ap.parse_args()
    binary = args.bin
    if binary is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        subprocess.run(["cargo", "build", "--release", "--example", "track_file"], cwd=root, check=True)
        binary = os.path.join(root, "target", "release", "examples", "track_file")

    names = ["linear", "crossing", "fast", "occlusion", "missed", "false_pos", "jitter", "low_conf",
             "dense", "bicycles", "mixed"]
    accs = {"lookout": [], "supervision": []}
    spent = {"lookout": 0.0, "supervision": 0.0}
    n_frames = 0
    for k, name in enumerate(names):
        frames = make_sequence(name, args.seed + k)
        n_frames += len(frames)
        for tracker, fn in (("lookout", lambda fr: run_lookout(binary, fr)), ("supervision", run_supervision)):
            hyps, s = fn(frames)
            spent[tracker] += s
            accs[tracker].append(accumulate(frames, hyps))

    mh = mm.metrics.create()
    metrics = ["mota", "idf1", "num_switches"]
    print(f"{len(names)} sequences, {n_frames} frames at {FPS:g} fps, seed {args.seed}\n")
    if args.per_sequence:
        print("| sequence | tracker | MOTA | IDF1 | ID switches |\n|---|---|---|---|---|")
        for tracker in accs:
            s = mh.compute_many(accs[tracker], metrics=metrics, names=names)
            for name in names:
                r = s.loc[name]
                print(f"| {name} | {tracker} | {r['mota']:.3f} | {r['idf1']:.3f} | {int(r['num_switches'])} |")
        print()
    sup_us = spent["supervision"] / n_frames * 1e6
    print("| tracker | MOTA | IDF1 | ID switches | time per frame (µs) | speed ratio vs supervision |")
    print("|---|---|---|---|---|---|")
    for tracker in accs:
        s = mh.compute_many(accs[tracker], metrics=metrics, names=names, generate_overall=True)
        r = s.loc["OVERALL"]
        us = spent[tracker] / n_frames * 1e6
        print(f"| {tracker} | {r['mota']:.3f} | {r['idf1']:.3f} | {int(r['num_switches'])} | {us:.1f} | "
              f"{sup_us / us:.1f}x |")


if __name__ == "__main__":
    sys.exit(main())
