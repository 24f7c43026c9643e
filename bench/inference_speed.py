#!/usr/bin/env python3
"""End-to-end speed of the inference app (decode, detection, classification, drawing) on a 640x480 video.

The video comes from :mod:`fer.app.sample_media`: the real face of scikit-image's astronaut photograph
pasted onto a textured background, moving and zooming slightly, one face per frame. Each configuration runs
``inference.py`` in a fresh process (``--no-display --json``) and reads its JSON lines: frames per second end
to end, per-stage milliseconds, and, for every frame, whether the detected box still covers the pasted face
(IoU >= 0.5), so a faster setting cannot win by losing the face.

Model: the KD student architecture (channels [16, 32, 48], hidden 128) with random weights (timing does not
depend on the weights), or the repository's weights/kd.pt with --repo-weights.

    python bench/inference_speed.py                    # default matrix, prints a Markdown table
    python bench/inference_speed.py --frames 300 --json results/inference/bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import torch

from fer import checkpoints, variants
from fer.app.sample_media import write_video
from fer.models import nets

from fer import config as fer_config
STUDENT_ARCH = fer_config.defaults()["models"]["student"]  # the default widths, from config/config.yaml

REPO = Path(__file__).resolve().parents[1]
INFERENCE = REPO / "inference.py"


def make_root(root: Path, onnx: bool = True) -> Path:
    """A project folder with KD-student-sized random weights (and their ONNX export) for timing."""
    torch.manual_seed(0)
    model = nets.FERNet(**STUDENT_ARCH).eval()
    checkpoints.save_checkpoint(variants.weights_path("kd", root), "kd", model.arch, model.state_dict(),
                                {"note": "random weights for timing"})
    if onnx:
        out = variants.onnx_path("kd", root)
        out.parent.mkdir(parents=True, exist_ok=True)
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(model, torch.zeros(1, 1, 48, 48), str(out), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return root


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


CONFIGS = {
    # name: (inference.py options, description)
    "original": (["--no-track", "--detect-width", "0", "--min-face", "30"],
                 "every frame searched whole at 640x480, scaleFactor 1.1, minSize 30 (the original's detector)"),
    "downscaled": (["--no-track"], "every frame searched whole, downscaled to 320 wide, min face 60 px"),
    "tuned": ([], "defaults: downscaled full search every 15 frames, ROI search near the last face between"),
}


def run_one(video: Path, truth, root: Path, runtime: str, threads: int, config: str, frames: int) -> dict:
    opts, _ = CONFIGS[config]
    cmd = [sys.executable, str(INFERENCE), "--model", "kd", "--source", str(video), "--no-display", "--json",
           "--runtime", runtime, "--device", "cpu", "--threads", str(threads), "--root", str(root),
           "--max-frames", str(frames), *opts]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    faces: dict[int, list] = {}
    summary = None
    for line in proc.stdout.splitlines():
        obj = json.loads(line)
        if obj["type"] == "face":
            faces.setdefault(int(obj["frame"].split()[-1]), []).append(obj["box"])
        else:
            summary = obj
    n = summary["frames"]
    hit = sum(1 for i in range(n) if any(iou(b, truth[i]) >= 0.5 for b in faces.get(i, [])))
    extra = sum(max(0, len(faces.get(i, [])) - 1) for i in range(n))
    return {"config": config, "runtime": runtime, "threads": threads, "frames": n, "fps": summary["fps"],
            "cpu_ms_per_frame": summary["cpu_ms_per_frame"],
            "face_found": hit / n if n else 0.0, "false_boxes": extra,
            **{k: summary.get(k) for k in ("decode_ms", "detect_ms", "detect_ms_p95", "classify_ms",
                                           "classify_ms_per_face", "draw_ms", "detect_full", "detect_roi")}}


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300, help="frames per run (default 300 = 10 s at 30 fps)")
    p.add_argument("--original-frames", type=int, default=60,
                   help="frames for the slow 'original' configuration (default 60)")
    p.add_argument("--runtimes", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per configuration; the table shows the median run (default 1)")
    p.add_argument("--repo-weights", action="store_true",
                   help="use this repository's weights/kd.pt and results/onnx/kd.onnx instead of random weights")
    p.add_argument("--video", type=Path, default=None, help="keep the generated video here")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="fer-bench-") as tmp:
        tmp = Path(tmp)
        video = args.video or tmp / "face_640x480.mp4"
        truth = write_video(video, n=max(args.frames, args.original_frames))
        root = REPO if args.repo_weights else make_root(tmp / "root", onnx="onnx" in args.runtimes)
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"python {platform.python_version()}, opencv {cv2.__version__}; load average before: {loadavg()}", flush=True)
        rows = []
        for config in args.configs:
            for runtime in args.runtimes:
                for threads in args.threads:
                    frames = args.original_frames if config == "original" else args.frames
                    t0 = time.perf_counter()
                    runs = [run_one(video, truth, root, runtime, threads, config, frames)
                            for _ in range(args.repeat)]
                    row = sorted(runs, key=lambda r: r["fps"])[len(runs) // 2]  # the median run
                    row["fps_runs"] = [r["fps"] for r in runs]
                    row["run_s"] = round(time.perf_counter() - t0, 1)
                    rows.append(row)
                    print(f"  {config:<10} {runtime:<5} {threads} thr: {row['fps']:7.1f} fps (runs: "
                          f"{', '.join(f'{v:.1f}' for v in row['fps_runs'])}), face found in "
                          f"{100 * row['face_found']:.1f}% of {row['frames']} frames", file=sys.stderr, flush=True)
        print(f"# load average after: {loadavg()}")
    print()
    print("| detection | runtime | threads | frames | end-to-end FPS | CPU ms/frame | face found | decode ms "
          "| detect ms (p95) | classify ms | draw ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['runtime']} | {r['threads']} | {r['frames']} | {r['fps']:.1f} | "
              f"{r['cpu_ms_per_frame']:.1f} | "
              f"{100 * r['face_found']:.1f}% | {r['decode_ms']:.2f} | "
              f"{r['detect_ms']:.2f} ({r['detect_ms_p95']:.1f}) | "
              f"{r['classify_ms']:.2f} | {r['draw_ms']:.2f} |")
    print()
    for name in args.configs:
        print(f"- {name}: {CONFIGS[name][1]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"load_average_end": loadavg(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
