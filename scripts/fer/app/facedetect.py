"""Face detection for the inference app: OpenCV's Haar cascade, made fast enough for live video.

The cascade file is the one that ships inside opencv-python(-headless) (``cv2.data.haarcascades``); nothing
is downloaded. Speed comes from three things, all measured by ``bench/inference_speed.py``:

* full-frame detection runs on a copy of the frame downscaled to ``detect_width`` pixels, with a minimum
  face size (``min_face``, in full-frame pixels) that skips the many tiny scales;
* a face found in one frame is looked for in the next frame only inside a region around its last box
  (ROI reuse), at a scale that makes the face about ``roi_face`` pixels wide, and only at sizes close to its
  last size. Each box is still a real Haar detection of the current frame, so the framing the classifier
  sees stays close to the framing of a full-resolution detection (300 frames of the benchmark video: boxes
  of the default settings are 4.7% wider on average, sd 3.3%; 320-px full searches alone 3.7%; ROI searches
  at ``roi_face=48`` were 12% wider, hence 32);
* the full frame is searched again every ``redetect_every`` frames (to pick up new faces) and whenever a
  tracked face is lost.

Boxes are ``(x, y, w, h)`` integer tuples in full-frame pixel coordinates.

Crop framing: CK+48 images are tight face crops. Running this cascade on CK+48 images (upscaled 4x and
padded) finds a box that covers the whole 48x48 image: the image is on median 0.975 box widths wide (q25-q75
0.955-0.99), i.e. CK+48 framing *is* the Haar box. So :data:`CROP_MARGIN` is 0: the crop is the detected box
itself (kept square and clipped to the frame).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from fer.errors import FERError

CASCADE_FILE = "haarcascade_frontalface_default.xml"
CROP_MARGIN = 0.0

Box = tuple[int, int, int, int]


def cascade_path() -> str:
    """Path of the frontal-face Haar cascade that ships with OpenCV."""
    return cv2.data.haarcascades + CASCADE_FILE


def load_cascade() -> cv2.CascadeClassifier:
    path = cascade_path()
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FERError(f"could not load the Haar cascade {path}: reinstall opencv-python-headless<5 "
                       "(it ships the cascade files)")
    return cascade


def crop_box(frame_shape, box: Box, margin: float = CROP_MARGIN) -> Box:
    """The square crop (x, y, w, h) around ``box`` grown by ``margin`` x size per side, clipped to the frame."""
    height, width = frame_shape[:2]
    x, y, w, h = (int(v) for v in box)
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    x1 = int(round(cx + side / 2.0))
    y1 = int(round(cy + side / 2.0))
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    return x0, y0, max(x1 - x0, 0), max(y1 - y0, 0)


def crop(frame: np.ndarray, box: Box, margin: float = CROP_MARGIN) -> np.ndarray:
    """The face crop of ``frame`` (a view, not a copy) for a detected ``box``; see :func:`crop_box`."""
    x, y, w, h = crop_box(frame.shape, box, margin)
    return frame[y:y + h, x:x + w]


def iou(a: Box, b: Box) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class DetectorSettings:
    scale_factor: float = 1.1       # cascade pyramid step (original app: 1.1)
    min_neighbors: int = 5          # original app: 5
    min_face: int = 60              # smallest face looked for, in full-frame pixels (a 48x48 input needs >= 48)
    max_face: int = 0               # largest face, full-frame pixels; 0 = no limit
    detect_width: int = 320         # full-frame search runs on the frame downscaled to this width (0 = as is)
    track: bool = True              # ROI reuse between consecutive frames of a video/camera
    redetect_every: int = 15        # full-frame search every N frames while tracking (0 = only when lost)
    roi_pad: float = 0.5            # ROI = last box grown by this fraction of its size per side
    roi_face: int = 32              # in the ROI, the face is resized to about this many pixels
    roi_size_range: float = 1.25    # in the ROI, look for sizes last/1.25 .. last*1.25


@dataclass
class DetectStats:
    full: int = 0                   # full-frame searches
    roi: int = 0                    # ROI searches
    lost: int = 0                   # tracked faces not found again in their ROI


@dataclass
class FaceDetector:
    """Haar-cascade face detector with optional ROI tracking; call :meth:`detect` once per frame."""

    settings: DetectorSettings = field(default_factory=DetectorSettings)

    def __post_init__(self):
        self.cascade = load_cascade()
        self.tracks: list[Box] = []
        self.since_full = 0
        self.stats = DetectStats()

    def reset(self) -> None:
        """Forget tracked faces (call between unrelated images)."""
        self.tracks = []
        self.since_full = 0

    # ------------------------------------------------------------------------------------------ searches
    def _cascade(self, gray: np.ndarray, min_size: int, max_size: int = 0) -> list[Box]:
        s = self.settings
        min_size = max(int(min_size), 1)
        if max_size and max_size < min_size:
            return []
        if min(gray.shape[:2]) < max(min_size, 24):
            return []
        found = self.cascade.detectMultiScale(gray, scaleFactor=s.scale_factor, minNeighbors=s.min_neighbors,
                                              minSize=(min_size, min_size),
                                              maxSize=(int(max_size), int(max_size)) if max_size else (0, 0))
        return [tuple(int(v) for v in b) for b in found] if len(found) else []

    def detect_full(self, gray: np.ndarray) -> list[Box]:
        """All faces of a whole grayscale frame."""
        s = self.settings
        self.stats.full += 1
        height, width = gray.shape[:2]
        scale = 1.0
        small = gray
        if s.detect_width and width > s.detect_width:
            scale = s.detect_width / width
            small = cv2.resize(gray, (s.detect_width, max(int(round(height * scale)), 1)),
                               interpolation=cv2.INTER_AREA)
        min_size = max(int(round(s.min_face * scale)), 24)  # 24 px is the cascade's own window
        max_size = int(round(s.max_face * scale)) if s.max_face else 0
        boxes = self._cascade(small, min_size, max_size)
        if scale != 1.0:
            boxes = [tuple(int(round(v / scale)) for v in b) for b in boxes]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)

    def detect_roi(self, gray: np.ndarray, last: Box) -> Box | None:
        """The face near ``last`` in this frame, searched only around it; None if it is gone."""
        s = self.settings
        self.stats.roi += 1
        height, width = gray.shape[:2]
        x, y, w, h = last
        pad = int(round(max(w, h) * s.roi_pad))
        x0, y0 = max(x - pad, 0), max(y - pad, 0)
        x1, y1 = min(x + w + pad, width), min(y + h + pad, height)
        if x1 - x0 < 24 or y1 - y0 < 24:
            return None
        roi = gray[y0:y1, x0:x1]
        scale = min(1.0, s.roi_face / max(w, 1))
        if scale < 1.0:
            roi = cv2.resize(roi, (max(int(round((x1 - x0) * scale)), 1), max(int(round((y1 - y0) * scale)), 1)),
                             interpolation=cv2.INTER_AREA)
        face = w * scale
        min_size = max(int(face / s.roi_size_range), 24)
        max_size = int(np.ceil(face * s.roi_size_range))
        boxes = self._cascade(roi, min_size, max_size)
        if not boxes:
            return None
        cx, cy = x + w / 2.0, y + h / 2.0

        def full(b):
            return (int(round(b[0] / scale)) + x0, int(round(b[1] / scale)) + y0,
                    int(round(b[2] / scale)), int(round(b[3] / scale)))

        boxes = [full(b) for b in boxes]
        return min(boxes, key=lambda b: (b[0] + b[2] / 2.0 - cx) ** 2 + (b[1] + b[3] / 2.0 - cy) ** 2)

    # ------------------------------------------------------------------------------------------ per frame
    def detect(self, gray: np.ndarray, track: bool | None = None) -> list[Box]:
        """Faces of this frame (largest first). ``track`` (default: settings.track) reuses the last boxes."""
        s = self.settings
        track = s.track if track is None else track
        if not track:
            self.tracks = self.detect_full(gray)
            return list(self.tracks)
        due = not self.tracks or (s.redetect_every and self.since_full >= s.redetect_every)
        if not due:
            found = []
            for last in self.tracks:
                box = self.detect_roi(gray, last)
                if box is None:
                    self.stats.lost += 1
                    due = True
                    break
                if all(iou(box, other) < 0.3 for other in found):
                    found.append(box)
            if not due:
                self.since_full += 1
                self.tracks = found
                return list(found)
        self.tracks = self.detect_full(gray)
        self.since_full = 1
        return list(self.tracks)
