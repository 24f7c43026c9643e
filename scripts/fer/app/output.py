"""Where results go: boxes and labels drawn on the frame, the window (and why it may not open), annotated
files (``--output``), one stdout line per face, and the ``--evaluate`` CSV."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np

from fer import files
from fer.app.classifiers import Face
from fer.app.console import quiet_opencv
from fer.app.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Source
from fer.errors import FERError

VIDEO_FOURCC = {".avi": "MJPG", ".mkv": "MJPG"}  # everything else: mp4v
WINDOW = "Emotion Recognition"
COLOR = (0, 255, 0)
NO_DISPLAY_HINT = "run with --no-display (and --output FILE to keep the annotated result)"


# ------------------------------------------------------------------------------------------ display
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


# ------------------------------------------------------------------------------------------ drawing, lines
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


def face_line(name: str, k: int, face: Face, as_json: bool) -> str:
    if as_json:
        return json.dumps({"type": "face", "frame": name, "face": k, "box": list(face.box), "label": face.label,
                           "confidence": round(face.confidence, 4),
                           "probs": {c: round(float(p), 4) for c, p in zip(face.classes, face.probs)}})
    x, y, w, h = face.box
    return f"{name}  face {k}: {face.label} {face.confidence:.2f}  box x={x} y={y} w={w} h={h}"


# ------------------------------------------------------------------------------------------ files
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
        self.used: set[str] = set()  # result names given in folder mode

    def write(self, frame: np.ndarray, name: str) -> None:
        if self.mode == "image":
            self.pending = frame.copy()  # written by close(): a failed run leaves no half result
        elif self.mode == "folder":
            self._write_image(self.path / self._unique_name(name), frame)
        else:
            if self.writer is None:
                self._open_video(frame)
            self.writer.write(frame)
        self.count += 1

    def _unique_name(self, name: str) -> str:
        """``<stem>.png`` for input ``name``; inputs that would share one (``a.png`` and ``a.jpg``) get their
        extension in the name (``a_jpg.png``), then a counter: one result file per input, never overwritten."""
        stem = Path(name).stem if "." in name else name.replace(" ", "_")
        candidates = [f"{stem}.png"]
        if "." in name:
            candidates.append(f"{stem}_{Path(name).suffix.lstrip('.').lower()}.png")
        candidates += [f"{stem}_{i}.png" for i in range(2, 10**6)]
        for c in candidates:
            if c not in self.used:
                self.used.add(c)
                return c
        raise FERError(f"--output {self.path}: too many inputs named {stem}")

    def _write_image(self, path: Path, frame: np.ndarray) -> None:
        ok, buf = cv2.imencode(path.suffix or ".png", frame)
        if not ok:
            raise FERError(f"could not encode {path}")
        try:
            with files.atomic_path(path) as tmp:
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


def write_evaluation(path: Path, row: dict) -> None:
    """Add or replace this (runtime, device, threads) row of the variant's CSV, atomically."""
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
    with files.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            for r in rows:
                w.writerow(r)


def refuse_overwriting_input(out: Path, kind: str, source: Path) -> None:
    """``--output`` never replaces the user's input: not the source file itself, and, for a folder of annotated
    frames (one ``<stem>.png`` per input image), not an input image of the same name (e.g. ``--output`` equal to
    the source folder). FERError before anything is read or written."""
    if kind == "camera":
        return
    src, dst = source.resolve(), out.resolve()
    if dst == src:
        raise FERError(f"--output {out} is the source itself and would be overwritten: choose another name")
    if kind in ("image", "folder") and not out.suffix:
        inputs = [src] if kind == "image" else [p.resolve() for p in src.iterdir() if p.is_file()]
        clash = [p for p in inputs if dst / f"{p.stem}.png" == p]
        if clash:
            raise FERError(f"--output {out} would overwrite the input image {clash[0]} with its annotated copy: "
                           "choose another folder")
