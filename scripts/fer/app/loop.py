"""The frame loop (decode, detect, classify, draw, write, show) and its per-stage timing."""
from __future__ import annotations

import sys
import time

import cv2
import numpy as np

from fer.app.classifiers import classify
from fer.app.console import warn
from fer.app.output import WINDOW, draw, face_line
from fer.app.sources import Source

STAGES = ("decode", "detect", "classify", "draw", "output", "display")


class Timing:
    """Per-frame milliseconds of each stage, and the wall time of the whole loop."""

    def __init__(self):
        self.ms = {s: [] for s in STAGES}
        self.classify_per_face: list[float] = []
        self.frames = 0
        self.frames_with_face = 0
        self.faces = 0
        self.wall = 0.0
        self.cpu = 0.0  # process CPU time of the loop (all threads): the work, whatever else runs

    def summary(self) -> dict:
        out = {"frames": self.frames, "frames_with_face": self.frames_with_face, "faces": self.faces,
               "wall_s": round(self.wall, 4), "fps": round(self.frames / self.wall, 2) if self.wall > 0 else None,
               "cpu_s": round(self.cpu, 4),
               "cpu_ms_per_frame": round(1000.0 * self.cpu / self.frames, 3) if self.frames else None}
        for stage, values in self.ms.items():
            if not values:
                continue
            arr = np.asarray(values)
            out[f"{stage}_ms"] = round(float(arr.mean()), 3)
            out[f"{stage}_ms_p50"] = round(float(np.percentile(arr, 50)), 3)
            out[f"{stage}_ms_p95"] = round(float(np.percentile(arr, 95)), 3)
        if self.classify_per_face:
            out["classify_ms_per_face"] = round(float(np.mean(self.classify_per_face)), 3)
        return out


def format_summary(s: dict, det_stats=None) -> str:
    lines = [f"{s['frames']} frames ({s['frames_with_face']} with a face, {s['faces']} faces) in {s['wall_s']:.2f} s: "
             + (f"{s['fps']:.1f} frames per second end to end" if s.get("fps") else "no timing")
             + (f" ({s['cpu_ms_per_frame']:.1f} ms CPU per frame)" if s.get("cpu_ms_per_frame") else "")]
    for stage in STAGES:
        if f"{stage}_ms" not in s:
            continue
        extra = ""
        if stage == "detect" and det_stats is not None:
            extra = f"  [{det_stats.full} full-frame searches, {det_stats.roi} ROI searches]"
        if stage == "classify":
            extra = f"  per frame with faces; {s.get('classify_ms_per_face', 0):.2f} ms per face"
        lines.append(f"  {stage:<9}{s[f'{stage}_ms']:8.2f} ms mean  {s[f'{stage}_ms_p95']:8.2f} ms p95{extra}")
    return "\n".join(lines)


def process(source: Source, detector, classifier, writer, display: bool, args) -> Timing:
    """The frame loop: detect, classify, draw, write, show; returns its :class:`Timing`."""
    timing = Timing()
    track = source.kind in ("video", "camera")
    lines = []
    t_loop = time.perf_counter()
    c_loop = time.process_time()
    frames = iter(source)
    try:
        while True:
            if args.max_frames and timing.frames >= args.max_frames:
                break
            t0 = time.perf_counter()
            try:
                name, frame = next(frames)
            except StopIteration:
                break
            t1 = time.perf_counter()
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            if not track:
                detector.reset()
            boxes = detector.detect(gray, track=None if track else False)  # None: --no-track decides
            t2 = time.perf_counter()
            faces = classify(frame, boxes, classifier)
            t3 = time.perf_counter()
            draw(frame, faces)
            t4 = time.perf_counter()
            if writer is not None:
                writer.write(frame, name)
            t5 = time.perf_counter()
            quit_now = False
            if display:
                cv2.imshow(WINDOW, frame)
                key = cv2.waitKey(0 if source.kind in ("image", "folder") else 1) & 0xFF
                quit_now = key in (ord("q"), 27)
            t6 = time.perf_counter()
            timing.frames += 1
            for stage, a, b in zip(STAGES, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
                if stage == "classify" and not faces:
                    continue
                if stage == "output" and writer is None or stage == "display" and not display:
                    continue
                timing.ms[stage].append((b - a) * 1000.0)
            if faces:
                timing.frames_with_face += 1
                timing.faces += len(faces)
                timing.classify_per_face.append((t3 - t2) * 1000.0 / len(faces))
                lines.extend(face_line(name, k, f, args.json) for k, f in enumerate(faces, start=1))
            elif source.kind == "folder":
                warn(f"no face found in {name}")
            if lines:
                print("\n".join(lines), flush=not track)
                lines.clear()
            if quit_now:
                break
    except KeyboardInterrupt:
        pass
    finally:
        timing.wall = time.perf_counter() - t_loop
        timing.cpu = time.process_time() - c_loop
        sys.stdout.flush()
    return timing
