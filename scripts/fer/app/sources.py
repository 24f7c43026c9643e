"""Where frames come from: a camera (the CSI camera through GStreamer on a Jetson), a video, an image or a
folder of images. Every way a source can be unusable is a :class:`~fer.errors.FERError` with a clear message."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer.app.console import quiet_opencv, warn
from fer.data import images, preprocess
from fer.errors import FERError, ImageReadError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"}
CAMERA_SIZE = (640, 480)
CAMERA_FPS = 15  # the original's CSI camera rate on the Jetson Nano


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


# ------------------------------------------------------------------------------------------ sources
def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file -> 8-bit BGR frame, decoded by the reader data preparation uses
    (:func:`fer.data.images.read_image`: EXIF orientation applied, regular files only); ImageReadError (a
    FERError naming the file and the problem) if it cannot be read."""
    return preprocess.to_bgr(images.read_image(path).pixels)


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
            except ImageReadError as exc:
                if self.kind == "image":
                    raise FERError(f"could not read image: {exc}") from None
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
