"""The inference app behind ``inference.py``: camera, video, image or folder in; faces, labels and timing out.

Per frame: decode -> Haar face detection (:mod:`fer.facedetect`) -> each face crop through the one
preprocessing path of the training data (:func:`fer.preprocess.to_model_image` with ``channel_order="BGR"``,
then :func:`fer.preprocess.to_tensor`) -> the chosen variant (PyTorch or ONNX Runtime) -> boxes, labels and
confidences drawn on the frame -> display and/or ``--output`` file. One line per face goes to stdout (JSON
lines with ``--json``); per-stage timing is printed at the end and ``--evaluate`` writes it, with the model's
size and cost, to ``results/inference/<variant>.csv``.

Every user mistake (missing file, unreadable or empty video, no face in an image, no camera, no display,
weights not built) ends in one ``error: ...`` line and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# FFmpeg's own console messages ("moov atom not found" ...) would precede our one-line error; quiet them
# unless the user asks for them. OpenCV reads this when it first opens a video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from . import CLASSES, IMAGE_SIZE, facedetect, preprocess, variants
from .errors import FERError

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("teacher", "kd", "scratch", "pr_kd", "ptq_kd")
PR_LEVELS = ("low", "medium", "high")
BITS = (32, 16, 8, 6, 4)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"}
VIDEO_FOURCC = {".avi": "MJPG", ".mkv": "MJPG"}  # everything else: mp4v
WINDOW = "Emotion Recognition"
CAMERA_SIZE = (640, 480)
CAMERA_FPS = 15  # the original's CSI camera rate on the Jetson Nano
EXIT_ERROR = 2


# ------------------------------------------------------------------------------------------ platform
def is_jetson(tegra_release: str | os.PathLike = "/etc/nv_tegra_release",
              model_file: str | os.PathLike = "/proc/device-tree/model") -> bool:
    """True on an NVIDIA Jetson (L4T release file, or a device-tree model naming a Jetson)."""
    if Path(tegra_release).exists():
        return True
    try:
        return "jetson" in Path(model_file).read_bytes().decode("utf-8", "replace").lower()
    except OSError:
        return False


def gstreamer_pipeline(sensor_id: int = 0, capture_width: int = 640, capture_height: int = 480,
                       framerate: int = CAMERA_FPS, flip_method: int = 0, display_width: int = 640,
                       display_height: int = 480) -> str:
    """The CSI-camera pipeline of the original app (nvarguscamerasrc -> NV12 -> nvvidconv -> BGR appsink)."""
    sensor = f" sensor-id={int(sensor_id)}" if sensor_id else ""
    return (
        f"nvarguscamerasrc{sensor} ! "
        "video/x-raw(memory:NVMM), "
        f"width=(int){capture_width}, height=(int){capture_height}, "
        f"format=(string)NV12, framerate=(fraction){framerate}/1 ! "
        f"nvvidconv flip-method={flip_method} ! "
        f"video/x-raw, width=(int){display_width}, height=(int){display_height}, "
        "format=(string)BGRx ! "
        "videoconvert ! "
        "video/x-raw, format=(string)BGR ! "
        "appsink"
    )


NO_DISPLAY_HINT = "run with --no-display (and --output FILE to keep the annotated result)"


def display_problem(env=None, system: str | None = None) -> str | None:
    """Why a window cannot be shown here (None if it can): no X11/Wayland display, or an OpenCV without GUI."""
    env = os.environ if env is None else env
    system = platform.system() if system is None else system
    if system == "Linux" and not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return f"no display found (DISPLAY and WAYLAND_DISPLAY are not set): {NO_DISPLAY_HINT}"
    if not gui_available():
        return (f"this OpenCV build has no GUI (opencv-python-headless cannot open windows): {NO_DISPLAY_HINT}, "
                "or install opencv-python instead of opencv-python-headless")
    return None


def gui_available() -> bool:
    """Whether cv2 can open a window (opencv-python-headless raises on any GUI call)."""
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
    except cv2.error:
        return False
    return True


@contextlib.contextmanager
def quiet_opencv():
    """Silence OpenCV's own warnings (e.g. "can't open camera by index") while we decide what to report."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    old = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(old)


# ------------------------------------------------------------------------------------------ sources
def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file -> 8-bit BGR array (any path, also non-ASCII); FERError if it cannot be decoded."""
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8) if path.stat().st_size else np.zeros(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FERError(f"could not read image {path}: the file is empty, damaged or not an image")
    return image


@dataclass
class Source:
    """Frames from a camera, a video, an image or a folder of images: iterate to get (name, BGR frame)."""

    kind: str                       # camera | video | image | folder
    description: str
    fps: float = 0.0
    files: list = field(default_factory=list)
    cap: object = None
    first: np.ndarray | None = None
    skipped: list = field(default_factory=list)

    def __iter__(self):
        if self.kind in ("camera", "video"):
            index = 0
            frame = self.first
            self.first = None
            while frame is not None:
                yield f"frame {index}", frame
                index += 1
                ok, frame = self.cap.read()
                if not ok:
                    frame = None
            return
        for path in self.files:
            try:
                image = read_image(path)
            except FERError as exc:
                if self.kind == "image":
                    raise
                self.skipped.append(path)
                warn(f"skipped {exc}")
                continue
            yield Path(path).name, image

    def release(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def source_kind(spec: str) -> str:
    """camera | video | image | folder for a --source value, checking only that a path exists."""
    if spec.strip().isdigit():
        return "camera"
    path = Path(spec)
    if not path.exists():
        raise FERError(f"--source {spec}: no such file or folder (give a camera index like 0, a video, an image "
                       "or a folder of images)")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES or not path.is_file():  # e.g. /dev/video0
        return "video"
    raise FERError(f"--source {spec}: unknown file type {suffix or '(no suffix)'}; images: "
                   f"{', '.join(sorted(IMAGE_SUFFIXES))}; videos: {', '.join(sorted(VIDEO_SUFFIXES))}")


def open_camera(index: int, jetson: bool | None = None):
    jetson = is_jetson() if jetson is None else jetson
    with quiet_opencv():
        if jetson:
            cap = cv2.VideoCapture(gstreamer_pipeline(sensor_id=index), cv2.CAP_GSTREAMER)
            what = f"CSI camera {index} (GStreamer nvarguscamerasrc)"
        else:
            cap = cv2.VideoCapture(index)
            what = f"camera {index}"
        if not cap.isOpened():
            raise FERError(f"could not open {what}: no camera found or it is in use. Connect a camera, pick "
                           "another index with --source N, or give a video/image file with --source FILE")
        if not jetson:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, CAMERA_SIZE[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, CAMERA_SIZE[1])
        ok, frame = cap.read()
    if not ok or frame is None:
        cap.release()
        raise FERError(f"{what} opened but delivered no frame: check the cable/driver or that no other program "
                       "uses it")
    return cap, frame, what


def open_source(spec: str, jetson: bool | None = None) -> Source:
    """Open a --source value; FERError with a clear message for every way it can be unusable."""
    kind = source_kind(spec)
    if kind == "camera":
        cap, frame, what = open_camera(int(spec), jetson)
        return Source("camera", what, fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0), cap=cap, first=frame)
    path = Path(spec)
    if kind == "folder":
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise FERError(f"--source {spec}: the folder has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return Source("folder", f"folder {path} ({len(files)} images)", files=files)
    if kind == "image":
        return Source("image", f"image {path}", files=[path])
    if path.is_file() and path.stat().st_size == 0:
        raise FERError(f"video {path} is empty (0 bytes)")
    with quiet_opencv():
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise FERError(f"could not read video {path}: damaged, or a format/codec OpenCV cannot decode "
                           "(convert it to .mp4 or .avi)")
        ok, frame = cap.read()
    if not ok or frame is None:
        cap.release()
        raise FERError(f"video {path} has no readable frames (empty or damaged)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return Source("video", f"video {path}", fps=fps if math.isfinite(fps) else 0.0, cap=cap, first=frame)


# ------------------------------------------------------------------------------------------ output
class OutputWriter:
    """Annotated frames -> one image, a video, or a folder of images; files appear only when complete."""

    def __init__(self, path: str | os.PathLike, source: Source):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            if source.kind != "image":
                raise FERError(f"--output {path}: an image file can hold one image, but the source is a "
                               f"{source.kind}; use a video name (.mp4, .avi) or a folder")
            self.mode = "image"
        elif suffix in VIDEO_SUFFIXES:
            self.mode = "video"
        elif suffix:
            raise FERError(f"--output {path}: unknown file type {suffix}; use an image (.png, .jpg) for one image, "
                           "a video (.mp4, .avi) or a folder")
        else:
            self.mode = "folder"
        self.fps = source.fps if source.fps and source.fps > 0 else 30.0
        self.writer = None
        self.tmp: Path | None = None
        self.count = 0
        self.pending: np.ndarray | None = None
        self.written: list[Path] = []

    def write(self, frame: np.ndarray, name: str) -> None:
        if self.mode == "image":
            self.pending = frame.copy()  # written by close(): a failed run leaves no half result
        elif self.mode == "folder":
            stem = Path(name).stem if "." in name else name.replace(" ", "_")
            self._write_image(self.path / f"{stem}.png", frame)
        else:
            if self.writer is None:
                self._open_video(frame)
            self.writer.write(frame)
        self.count += 1

    def _write_image(self, path: Path, frame: np.ndarray) -> None:
        from . import io

        ok, buf = cv2.imencode(path.suffix or ".png", frame)
        if not ok:
            raise FERError(f"could not encode {path}")
        try:
            with io.atomic_path(path) as tmp:
                tmp.write_bytes(buf.tobytes())
        except OSError as exc:
            raise FERError(f"could not write {path}: {exc.strerror or exc}") from None
        self.written.append(path)

    def _open_video(self, frame: np.ndarray) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent)
        except OSError as exc:
            raise FERError(f"could not write {self.path}: {exc.strerror or exc}") from None
        os.close(fd)
        self.tmp = Path(tmp)
        fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC.get(self.path.suffix.lower(), "mp4v"))
        height, width = frame.shape[:2]
        with quiet_opencv():
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (width, height))
        if not self.writer.isOpened():
            self.abort()
            raise FERError(f"could not open a video writer for {self.path}; try an .avi or .mp4 name")

    def close(self) -> None:
        if self.pending is not None:
            self._write_image(self.path, self.pending)
            self.pending = None
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            if self.count:
                os.replace(self.tmp, self.path)
                self.written.append(self.path)
            self.tmp = None

    def abort(self) -> None:
        self.pending = None
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
            self.tmp = None


# ------------------------------------------------------------------------------------------ models
def resolve_device(device: str, runtime: str) -> str:
    """auto|cpu|cuda -> cpu|cuda, checked against what this torch / onnxruntime can do."""
    if runtime == "torch":
        import torch

        has_cuda = torch.cuda.is_available()
    else:
        import onnxruntime as ort

        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise FERError(f"--device cuda: no CUDA device available to {runtime}; use --device cpu")
    return device


def build_target(path: Path, root: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        rel = path
    return f"snakemake --cores all {rel.as_posix()}"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class TorchClassifier:
    runtime = "torch"

    def __init__(self, path: Path, device: str = "cpu"):
        import torch

        self.torch = torch
        self.path = Path(path)
        self.device = torch.device(device)
        self.model = variants.load_model(self.path).to(self.device).eval()

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, 48, 48) -> class probabilities (N, 7)."""
        x = preprocess.to_tensor(faces).to(self.device)
        with self.torch.no_grad():
            logits = self.model(x)
        return self.torch.softmax(logits.float(), dim=1).cpu().numpy()


class OnnxClassifier:
    runtime = "onnx"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0):
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        x = preprocess.to_tensor(faces).numpy()
        if self.fixed_batch and self.fixed_batch != len(x):
            logits = np.concatenate([self.session.run(None, {self.input_name: x[i:i + 1]})[0] for i in range(len(x))])
        else:
            logits = self.session.run(None, {self.input_name: x})[0]
        return softmax(np.asarray(logits, dtype=np.float32))


def load_classifier(variant: str, runtime: str, root: Path, device: str = "cpu", threads: int = 0):
    """The variant's classifier; FERError naming the snakemake target when its file is not built yet."""
    root = Path(root)
    path = variants.weights_path(variant, root) if runtime == "torch" else variants.onnx_path(variant, root)
    what = "weights" if runtime == "torch" else "ONNX model"
    if not path.is_file():
        raise FERError(f"{what} for {variant} not built yet: {path} does not exist. Build them with "
                       f"`{build_target(path, root)}`")
    try:
        with quiet_opencv():
            clf = TorchClassifier(path, device) if runtime == "torch" else OnnxClassifier(path, device, threads)
        clf(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.uint8))  # warm-up, and a check that it really runs
    except FERError:
        raise
    except Exception as exc:  # a damaged or foreign file: say which and how to rebuild it
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FERError(f"could not load {what} {path} ({msg}); rebuild it with `{build_target(path, root)}`") from None
    return clf


# ------------------------------------------------------------------------------------------ per face
def face_input(frame: np.ndarray, box, margin: float = facedetect.CROP_MARGIN) -> np.ndarray:
    """A detected face of a BGR frame -> the 48x48 uint8 model image, through the training data's path."""
    return preprocess.to_model_image(facedetect.crop(frame, box, margin), channel_order="BGR")


@dataclass
class Face:
    box: tuple
    label: str
    confidence: float
    probs: np.ndarray


def classify(frame: np.ndarray, boxes, classifier, margin: float = facedetect.CROP_MARGIN) -> list[Face]:
    if not boxes:
        return []
    faces = np.stack([face_input(frame, b, margin) for b in boxes])
    probs = classifier(faces)
    out = []
    for box, p in zip(boxes, probs):
        k = int(np.argmax(p))
        out.append(Face(tuple(int(v) for v in box), CLASSES[k], float(p[k]), p))
    return out


COLOR = (0, 255, 0)


def draw(frame: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Box, label and confidence of each face, drawn in place (as the original app did)."""
    for f in faces:
        x, y, w, h = f.box
        thick = max(1, int(round(w / 60)))
        cv2.rectangle(frame, (x, y), (x + w, y + h), COLOR, thick)
        text = f"{f.label.capitalize()}: {f.confidence:.2f}"
        scale = max(0.4, min(1.2, w / 200))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y - 6 if y - 6 - th >= 0 else min(y + h + th + 6, frame.shape[0] - base)
        cv2.putText(frame, text, (x, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, COLOR, thick, cv2.LINE_AA)
    return frame


# ------------------------------------------------------------------------------------------ timing
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


# ------------------------------------------------------------------------------------------ --evaluate
def model_latency(classifier, runs: int = 100, warmup: int = 10, seed: int = 0) -> dict:
    """Model-only latency on one 48x48 face (the original --evaluate: 100 runs after 10 warm-up runs)."""
    face = np.random.default_rng(seed).integers(0, 256, (1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for _ in range(warmup):
        classifier(face)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        classifier(face)
        times.append((time.perf_counter() - t0) * 1000.0)
    arr = np.asarray(times)
    return {"model_ms": round(float(arr.mean()), 4), "model_ms_std": round(float(arr.std()), 4),
            "model_ms_p50": round(float(np.percentile(arr, 50)), 4), "model_runs": runs}


def model_stats(variant: str, root: Path, runtime: str) -> dict:
    """params, MACs and sizes of a variant (from its checkpoint; blank if only the ONNX file exists)."""
    from . import io, metrics, models, size

    out = {"params": "", "macs": "", "size_bytes": "", "file_size_bytes": "", "bits": ""}
    wpath = variants.weights_path(variant, root)
    if wpath.is_file():
        ckpt = io.load_checkpoint(wpath)
        model = variants.load_model(wpath)
        macs, params = metrics.count_macs_params(models.build(ckpt["arch"]))  # MACs do not change with bits
        out.update(params=params, macs=macs, size_bytes=size.deployed_size_bytes(ckpt, model),
                   file_size_bytes=size.file_size_bytes(wpath),
                   bits=(ckpt.get("quant") or {}).get("weight_bits", 32) if ckpt.get("quant") else 32)
    if runtime == "onnx":
        opath = variants.onnx_path(variant, root)
        out["onnx_size_bytes"] = opath.stat().st_size if opath.is_file() else ""
    return out


def safe_model_stats(variant: str, root: Path, runtime: str) -> dict:
    """:func:`model_stats`, or blanks and a warning when the checkpoint cannot be read (e.g. ONNX-only runs)."""
    try:
        return model_stats(variant, root, runtime)
    except Exception as exc:  # the run itself succeeded; its statistics stay without model cost
        warn(f"model statistics left blank: {variants.weights_path(variant, root)}: {exc}")
        return {"params": "", "macs": "", "size_bytes": "", "file_size_bytes": "", "bits": ""}


def write_evaluation(path: Path, row: dict) -> None:
    """Add or replace this (runtime, device, threads) row of the variant's CSV, atomically."""
    from . import io

    key = ("runtime", "device", "threads")
    rows = []
    if path.is_file():
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if tuple(str(r.get(k, "")) for k in key)
                    != tuple(str(row.get(k, "")) for k in key)]
    rows.append({k: v for k, v in row.items()})
    fields = list(row)
    for r in rows:
        fields += [k for k in r if k not in fields]
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            for r in rows:
                w.writerow(r)


# ------------------------------------------------------------------------------------------ CLI
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
    g.add_argument("--quantize-bits", type=int, choices=BITS, default=None,
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
    g.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: until the source ends)")
    g = p.add_argument_group("runtime")
    g.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                   help="PyTorch weights (weights/<variant>.pt) or ONNX Runtime (results/onnx/<variant>.onnx)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if available")
    g.add_argument("--threads", type=int, default=0,
                   help="CPU threads for face detection (OpenCV) and the model (torch/onnxruntime); "
                        "0 (default): OpenCV's default for detection, 1 thread for the model")
    g.add_argument("--root", type=Path, default=ROOT,
                   help="project folder holding weights/ and results/ (default: this repository)")
    g = p.add_argument_group("face detection")
    d = facedetect.DetectorSettings()
    g.add_argument("--detect-width", type=int, default=d.detect_width,
                   help=f"search whole frames downscaled to this width, 0 = full size (default {d.detect_width})")
    g.add_argument("--min-face", type=int, default=d.min_face,
                   help=f"smallest face in pixels of the frame (default {d.min_face})")
    g.add_argument("--scale-factor", type=float, default=d.scale_factor,
                   help=f"Haar pyramid step (default {d.scale_factor})")
    g.add_argument("--min-neighbors", type=int, default=d.min_neighbors,
                   help=f"Haar detections needed to accept a face (default {d.min_neighbors})")
    g.add_argument("--redetect-every", type=int, default=d.redetect_every,
                   help=f"on video, search the whole frame every N frames; between, search near the last faces "
                        f"(default {d.redetect_every})")
    g.add_argument("--no-track", action="store_true", help="search the whole frame on every video frame")
    return p


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def set_threads(threads: int) -> int:
    """Apply --threads to OpenCV (detection) and torch; return the classifier's thread count.

    Default (0): OpenCV keeps its own default and the classifier gets one thread. A face batch is tiny (one
    48x48 face of the KD student is ~0.5 ms on one core); on a busy 2-core machine a second intra-op thread
    made that 20-60x slower (spin-waiting OpenMP workers fighting other processes), never faster.
    """
    import torch

    if threads:
        cv2.setNumThreads(threads)
    model_threads = threads or 1
    torch.set_num_threads(model_threads)
    return model_threads


def variant_name(args) -> str:
    if args.model == "pr_kd":
        return variants.name("pr_kd", pr_level=args.pr_level or "medium")
    if args.model == "ptq_kd":
        return variants.name("ptq_kd", pr_level=args.pr_level,
                             bits=args.quantize_bits if args.quantize_bits is not None else 8)
    return variants.name(args.model)


def check_args(args) -> None:
    for opt in ("max_frames", "threads", "detect_width", "redetect_every"):
        if getattr(args, opt) < 0:
            raise FERError(f"--{opt.replace('_', '-')} must be >= 0")
    if args.min_face < 1:
        raise FERError("--min-face must be >= 1")
    if args.scale_factor <= 1.0:
        raise FERError("--scale-factor must be > 1 (e.g. 1.1)")
    if args.min_neighbors < 0:
        raise FERError("--min-neighbors must be >= 0")


def face_line(name: str, k: int, face: Face, as_json: bool) -> str:
    if as_json:
        return json.dumps({"type": "face", "frame": name, "face": k, "box": list(face.box), "label": face.label,
                           "confidence": round(face.confidence, 4),
                           "probs": {c: round(float(p), 4) for c, p in zip(CLASSES, face.probs)}})
    x, y, w, h = face.box
    return f"{name}  face {k}: {face.label} {face.confidence:.2f}  box x={x} y={y} w={w} h={h}"


def run(args) -> int:
    check_args(args)
    try:
        variant = variant_name(args)
    except ValueError as exc:
        raise FERError(str(exc)) from None
    root = Path(args.root)
    display = not args.no_display
    if display:
        problem = display_problem()
        if problem:
            raise FERError(problem)
    source_kind(args.source)  # a missing file is reported before the model loads
    model_threads = set_threads(args.threads)
    device = resolve_device(args.device, args.runtime)
    classifier = load_classifier(variant, args.runtime, root, device, model_threads)
    source = open_source(args.source)
    writer = None
    try:
        writer = OutputWriter(args.output, source) if args.output else None
        settings = facedetect.DetectorSettings(
            scale_factor=args.scale_factor, min_neighbors=args.min_neighbors, min_face=args.min_face,
            detect_width=args.detect_width, redetect_every=args.redetect_every, track=not args.no_track)
        detector = facedetect.FaceDetector(settings)
        timing = process(source, detector, classifier, writer, display, args)
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
        print(format_summary(summary, detector.stats), file=out)
    if writer is not None and writer.written:
        where = writer.path if writer.mode != "folder" else f"{writer.path}/ ({len(writer.written)} images)"
        print(f"wrote {where}", file=sys.stderr if args.json else out)
    if args.evaluate:
        path = root / "results" / "inference" / f"{variant}.csv"
        row = {"variant": variant, **{k: v for k, v in variants.describe(variant).items() if k != "base"},
               "runtime": args.runtime, "device": device,
               "threads": args.threads, "detect_threads": cv2.getNumThreads(), "model_threads": model_threads,
               "source": source.kind,
               **safe_model_stats(variant, root, args.runtime), **model_latency(classifier), **summary,
               "detect_full": detector.stats.full, "detect_roi": detector.stats.roi,
               "detect_width": settings.detect_width, "min_face": settings.min_face,
               "scale_factor": settings.scale_factor,
               "redetect_every": settings.redetect_every if settings.track else 0,
               "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
               "jetson": is_jetson(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            write_evaluation(path, row)
        except OSError as exc:
            raise FERError(f"could not write {path}: {exc.strerror or exc}") from None
        print(f"wrote {path}", file=sys.stderr if args.json else out)
    if source.kind in ("video", "camera") and timing.frames and timing.faces == 0:
        warn(f"no face found in any of the {timing.frames} frames of {source.description}")
    return 0


def process(source: Source, detector, classifier, writer, display: bool, args):
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
