"""The variant behind the app: PyTorch weights or an ONNX Runtime model, one face batch in, probabilities out;
the face crops fed to it, and what ``--evaluate`` records about it (model-only latency, size and cost)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from fer import IMAGE_SIZE, checkpoints, variants
from fer.app import facedetect
from fer.app.console import quiet_opencv, warn
from fer.compression import size
from fer.data import preprocess
from fer.deploy import ort
from fer.errors import CheckpointError, FERError
from fer.models import nets
from fer.report import metrics


# ------------------------------------------------------------------------------------------ models
def resolve_device(device: str, runtime: str) -> str:
    """auto|cpu|cuda -> cpu|cuda, checked against what this torch / onnxruntime can do."""
    if runtime == "torch":
        has_cuda = torch.cuda.is_available()
    else:
        import onnxruntime  # heavy and optional: only the ONNX runtime needs it

        has_cuda = ort.CUDA in onnxruntime.get_available_providers()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise FERError(f"--device cuda: no CUDA device available to {runtime}; use --device cpu")
    return device


def set_threads(threads: int) -> int:
    """Apply --threads to OpenCV (detection) and torch; return the classifier's thread count.

    Default (0): OpenCV keeps its own default and the classifier gets one thread. A face batch is tiny (one
    48x48 face of the KD student is ~0.5 ms on one core); on a busy 2-core machine a second intra-op thread
    made that 20-60x slower (spin-waiting OpenMP workers fighting other processes), never faster.
    """
    if threads:
        cv2.setNumThreads(threads)
    model_threads = threads or 1
    torch.set_num_threads(model_threads)
    return model_threads


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

    def __init__(self, path: Path, device: str = "cpu", variant: str | None = None):
        self.path = Path(path)
        self.device = torch.device(device)
        # the file must hold the variant asked for: a copy of another variant's weights is refused
        self.classes = list(checkpoints.load_checkpoint(self.path, variant)["classes"])  # what it was trained on
        self.model = checkpoints.load_model(self.path, variant).to(self.device).eval()

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, 48, 48) -> class probabilities (N, len(self.classes))."""
        x = preprocess.to_tensor(faces).to(self.device)
        with torch.no_grad():
            logits = self.model(x)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()


class OnnxClassifier:
    runtime = "onnx"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0, variant: str | None = None):
        self.path = Path(path)
        if variant is not None:  # the graph of this variant, as exported (its sidecar's name and SHA-256)
            checkpoints.check_onnx(self.path, variant)
        self.classes = checkpoints.onnx_classes(self.path)  # the names of its outputs, from its sidecar
        # INT4 graphs: no int4 kernels, so the weights are dequantized once at load, as the benchmark runs them
        fold = checkpoints.onnx_record(self.path).get("format") == "int4"
        self.session = ort.session(self.path, threads, providers=ort.providers_for(device), fold_weight_dq=fold)
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
    if runtime == "torch" and not path.is_file() and variants.fold0_weights_path(variant, root).is_file():
        path = variants.fold0_weights_path(variant, root)  # a cross-validated study: fold 0's model, as exported
        warn(f"using {path.relative_to(root)} (cross-validation fold 0's model, the one exported to ONNX)")
    if not path.is_file():
        also = (f" (single split, data.split.folds: 0) or `{build_target(variants.fold0_weights_path(variant, root), root)}`"
                " (cross-validation)") if runtime == "torch" else ""
        raise FERError(f"{what} for {variant} not built yet: {path} does not exist. Build them with "
                       f"`{build_target(path, root)}`{also}")
    try:
        with quiet_opencv():
            clf = TorchClassifier(path, device, variant) if runtime == "torch" else OnnxClassifier(path, device, threads, variant)
        clf(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.uint8))  # warm-up, and a check that it really runs
    except CheckpointError as exc:  # damaged, or another variant's weights: the app's own build hint
        raise FERError(f"could not load {what} {path}: it {exc.reason}; rebuild it with "
                       f"`{build_target(path, root)}`") from None
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
    classes: list  # the names of ``probs``, in order: the classes the model was trained on


def classify(frame: np.ndarray, boxes, classifier, margin: float = facedetect.CROP_MARGIN) -> list[Face]:
    if not boxes:
        return []
    faces = np.stack([face_input(frame, b, margin) for b in boxes])
    probs = classifier(faces)
    out = []
    for box, p in zip(boxes, probs):
        k = int(np.argmax(p))
        out.append(Face(tuple(int(v) for v in box), classifier.classes[k], float(p[k]), p, classifier.classes))
    return out


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


BLANK_STATS = {"params": "", "macs": "", "size_bytes": "", "file_size_bytes": "", "bits": ""}


def model_stats(variant: str, root: Path, runtime: str) -> dict:
    """params, MACs and sizes of a variant (from its checkpoint; blank if only the ONNX file exists)."""
    out = dict(BLANK_STATS)
    wpath = variants.weights_path(variant, root)
    if wpath.is_file():
        ckpt = checkpoints.load_checkpoint(wpath)
        model = checkpoints.load_model(wpath)
        macs, params = metrics.count_macs_params(nets.build(ckpt["arch"]))  # MACs do not change with bits
        out.update(params=params, macs=macs, size_bytes=size.deployed_size_bytes(ckpt, model),
                   file_size_bytes=size.file_size_bytes(wpath),
                   bits=checkpoints.checkpoint_bits(ckpt)[0])
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
        return dict(BLANK_STATS)
