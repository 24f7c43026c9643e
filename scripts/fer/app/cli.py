"""``python inference.py``: the options, their checks, one run from source to summary, and the exit codes.

Exit codes: 0 success; 2 a user mistake (one ``error: ...`` line on stderr) or an option argparse refuses
(its usage message); 130 interrupted (Ctrl-C outside the frame loop); 1 stdout closed by its reader.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import cv2

from fer import variants
from fer.app import classifiers, facedetect, loop, output, sources
from fer.app.console import warn
from fer.errors import FERError

ROOT = Path(__file__).resolve().parents[3]  # the repository: scripts/fer/app/cli.py -> ../../..
MODELS = ("teacher", "kd", "scratch", "pr_kd", "ptq_kd")
PR_LEVELS = ("low", "medium", "high")
BITS = (32, 16, 8, 6, 4)
EXIT_ERROR = 2
# Bounds of every numeric option (inclusive): far beyond any real use, well before a library misbehaves (OpenCV
# and torch crash at thread counts in the millions; a detection width of 10**9 allocates terabytes).
LIMITS = {"max_frames": (0, 10**9), "threads": (0, 256), "detect_width": (0, 16384), "min_face": (1, 16384),
          "min_neighbors": (0, 100), "redetect_every": (0, 10**6)}
SCALE_FACTOR = (1.0, 10.0)  # exclusive of 1.0


def integer(text: str) -> int:
    """An integer option in the spellings a user writes: ``4``, `` 4 ``, ``+4``, ``4.0``, ``1e3``, ``1_000``;
    refused (argparse's usage message naming the option): a fraction, NaN, inf, a word."""
    s = str(text).strip().replace("_", "")
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(f)


def number(text: str) -> float:
    """A finite real option (``1.1``, ``1,1`` is refused, ``nan``/``inf`` refused)."""
    try:
        f = float(str(text).strip().replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(f):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return f


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inference.py",
        description="Facial expression recognition on a camera, a video, an image or a folder of images: "
                    "Haar-cascade face detection, then one of the pipeline's model variants.",
        epilog="Examples: python inference.py --model kd --source 0 | "
               "python inference.py --model pr_kd --pr-level high --source clip.mp4 --no-display --output out.mp4 | "
               "python inference.py --model ptq_kd --quantize-bits 8 --runtime onnx --source faces/ "
               "--no-display --json")
    g = p.add_argument_group("model (as in the original app)")
    g.add_argument("--model", required=True, choices=MODELS, help="model variant family")
    g.add_argument("--pr-level", choices=PR_LEVELS, default=None,
                   help="pruning level for --model pr_kd (default: medium); with --model ptq_kd, quantize that "
                        "pruned model (combined variant)")
    g.add_argument("--quantize-bits", type=integer, choices=BITS, default=None,
                   help="bit width for --model ptq_kd (default: 8)")
    g.add_argument("--evaluate", action="store_true",
                   help="write model statistics and latency to results/inference/<variant>.csv")
    g = p.add_argument_group("input and output")
    g.add_argument("--source", default="0",
                   help="camera index (default 0; the CSI camera on a Jetson), a video file, an image file or a "
                        "folder of images")
    g.add_argument("--output", default=None,
                   help="write annotated frames: an image file (image source), a video file (.mp4/.avi) or a "
                        "folder (one PNG per frame)")
    g.add_argument("--no-display", action="store_true", help="do not open a window (headless use)")
    g.add_argument("--json", action="store_true", help="JSON lines on stdout instead of text")
    g.add_argument("--max-frames", type=integer, default=0, help="stop after N frames (0: until the source ends)")
    g = p.add_argument_group("runtime")
    g.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                   help="PyTorch weights (weights/<variant>.pt) or ONNX Runtime (results/onnx/<variant>.onnx)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if available")
    g.add_argument("--threads", type=integer, default=0,
                   help="CPU threads for face detection (OpenCV) and the model (torch/onnxruntime); "
                        "0 (default): OpenCV's default for detection, 1 thread for the model")
    g.add_argument("--root", type=Path, default=ROOT,
                   help="project folder holding weights/ and results/ (default: this repository)")
    g = p.add_argument_group("face detection")
    d = facedetect.DetectorSettings()
    g.add_argument("--detect-width", type=integer, default=d.detect_width,
                   help=f"search whole frames downscaled to this width, 0 = full size (default {d.detect_width})")
    g.add_argument("--min-face", type=integer, default=d.min_face,
                   help=f"smallest face in pixels of the frame (default {d.min_face})")
    g.add_argument("--scale-factor", type=number, default=d.scale_factor,
                   help=f"Haar pyramid step (default {d.scale_factor})")
    g.add_argument("--min-neighbors", type=integer, default=d.min_neighbors,
                   help=f"Haar detections needed to accept a face (default {d.min_neighbors})")
    g.add_argument("--redetect-every", type=integer, default=d.redetect_every,
                   help=f"on video, search the whole frame every N frames; between, search near the last faces "
                        f"(default {d.redetect_every})")
    g.add_argument("--no-track", action="store_true", help="search the whole frame on every video frame")
    return p


def variant_name(args) -> str:
    if args.model == "pr_kd":
        return variants.name("pr_kd", pr_level=args.pr_level or "medium")
    if args.model == "ptq_kd":
        return variants.name("ptq_kd", pr_level=args.pr_level,
                             bits=args.quantize_bits if args.quantize_bits is not None else 8)
    return variants.name(args.model)


def check_args(args) -> None:
    """Every numeric option inside its bounds, and no option that the chosen model would silently ignore."""
    for opt, (lo, hi) in LIMITS.items():
        value = getattr(args, opt)
        if not lo <= value <= hi:
            raise FERError(f"--{opt.replace('_', '-')} must be between {lo} and {hi}, not {value}")
    lo, hi = SCALE_FACTOR
    if not lo < args.scale_factor <= hi:
        raise FERError(f"--scale-factor must be > {lo:g} and <= {hi:g} (e.g. 1.1), not {args.scale_factor:g}")
    if args.quantize_bits is not None and args.model != "ptq_kd":
        raise FERError(f"--quantize-bits is for --model ptq_kd; --model {args.model} is not quantized "
                       "(drop --quantize-bits, or use --model ptq_kd)")
    if args.pr_level is not None and args.model not in ("pr_kd", "ptq_kd"):
        raise FERError(f"--pr-level is for --model pr_kd (or ptq_kd, to quantize a pruned model); --model "
                       f"{args.model} is not pruned (drop --pr-level)")


def run(args) -> int:
    check_args(args)
    try:
        variant = variant_name(args)
    except ValueError as exc:
        raise FERError(str(exc)) from None
    root = Path(args.root)
    display = not args.no_display
    if display:
        problem = output.display_problem()
        if problem:
            raise FERError(problem)
    kind = sources.source_kind(args.source)  # a missing file is reported before the model loads
    if args.output:
        output.refuse_overwriting_input(Path(args.output), kind, Path(args.source))
    model_threads = classifiers.set_threads(args.threads)
    device = classifiers.resolve_device(args.device, args.runtime)
    classifier = classifiers.load_classifier(variant, args.runtime, root, device, model_threads)
    source = sources.open_source(args.source)
    writer = None
    try:
        writer = output.OutputWriter(args.output, source) if args.output else None
        settings = facedetect.DetectorSettings(
            scale_factor=args.scale_factor, min_neighbors=args.min_neighbors, min_face=args.min_face,
            detect_width=args.detect_width, redetect_every=args.redetect_every, track=not args.no_track)
        detector = facedetect.FaceDetector(settings)
        timing = loop.process(source, detector, classifier, writer, display, args)
        if source.kind in ("image", "folder") and timing.faces == 0:
            where = source.description if source.kind == "folder" else str(args.source)
            raise FERError(f"no face found in {where}: the Haar cascade needs a frontal, upright face at least "
                           f"{args.min_face} px wide (try a lower --min-face, or --scale-factor 1.05)")
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        source.release()
        if display:
            with contextlib.suppress(cv2.error):
                cv2.destroyAllWindows()
    summary = timing.summary()
    out = sys.stdout
    if args.json:
        print(json.dumps({"type": "summary", "variant": variant, "runtime": args.runtime, "device": device,
                          **summary, "detect_full": detector.stats.full, "detect_roi": detector.stats.roi}), file=out)
    else:
        print(f"{variant} ({args.runtime}, {device}) on {source.description}", file=out)
        print(loop.format_summary(summary, detector.stats), file=out)
    if writer is not None and writer.written:
        where = writer.path if writer.mode != "folder" else f"{writer.path}/ ({len(writer.written)} images)"
        print(f"wrote {where}", file=sys.stderr if args.json else out)
    if args.evaluate:
        path = root / "results" / "inference" / f"{variant}.csv"
        row = {"variant": variant, **variants.summary_fields(variant),
               "runtime": args.runtime, "device": device,
               "threads": args.threads, "detect_threads": cv2.getNumThreads(), "model_threads": model_threads,
               "source": source.kind,
               **classifiers.safe_model_stats(variant, root, args.runtime), **classifiers.model_latency(classifier),
               **summary,
               "detect_full": detector.stats.full, "detect_roi": detector.stats.roi,
               "detect_width": settings.detect_width, "min_face": settings.min_face,
               "scale_factor": settings.scale_factor,
               "redetect_every": settings.redetect_every if settings.track else 0,
               "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
               "jetson": sources.is_jetson(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            output.write_evaluation(path, row)
        except OSError as exc:
            raise FERError(f"could not write {path}: {exc.strerror or exc}") from None
        print(f"wrote {path}", file=sys.stderr if args.json else out)
    if source.kind in ("video", "camera") and timing.frames and timing.faces == 0:
        warn(f"no face found in any of the {timing.frames} frames of {source.description}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except FERError as exc:
        sys.stdout.flush()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed by the reader (e.g. `| head -1`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
