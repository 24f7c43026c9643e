"""Sample media for the app's tests and speed benchmark, made here, no download: a real face photograph
(scikit-image's astronaut portrait, shipped with the package) and a synthetic 640x480 video of that face
pasted onto a textured background, moving and zooming slightly, one face per frame with its true box."""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

# The astronaut's face as OpenCV's frontal cascade finds it in skimage.data.astronaut() (x, y, w, h).
ASTRONAUT_FACE = (177, 66, 95, 95)


@functools.lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    import skimage.data  # heavy (scikit-image): only the sample photo needs it

    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def astronaut_bgr() -> np.ndarray:
    """scikit-image's astronaut portrait (a real photograph shipped with the package) as a BGR array."""
    return _astronaut().copy()


def head_patch(face_width: int = 115) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The astronaut's head (with some hair and neck around it) scaled so the face is ``face_width`` wide,
    and the face box inside the patch."""
    img = _astronaut()
    x, y, w, h = ASTRONAUT_FACE
    x0, y0 = max(x - w // 2, 0), max(y - int(0.6 * h), 0)
    x1, y1 = min(x + w + w // 2, img.shape[1]), min(y + h + int(0.6 * h), img.shape[0])
    patch = img[y0:y1, x0:x1]
    s = face_width / w
    patch = cv2.resize(patch, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    box = (int(round((x - x0) * s)), int(round((y - y0) * s)), int(round(w * s)), int(round(h * s)))
    return patch, box


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.dstack([60 + 80 * xx / width, 90 + 60 * yy / height, 120 + 40 * (xx + yy) / (width + height)])
    noise = cv2.GaussianBlur(rng.normal(0, 25, (height, width, 3)).astype(np.float32), (0, 0), 3)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def face_frames(n: int, width: int = 640, height: int = 480, face_width: int | None = None, seed: int = 0):
    """Yield (BGR frame, true face box) for ``n`` frames of one face moving and zooming slightly."""
    face_width = face_width or int(round(0.24 * height))  # ~115 px in 480 rows: a face at arm's length
    bg = background(width, height, seed)
    for t in range(n):
        zoom = 1.0 + 0.06 * np.sin(2 * np.pi * t / 120)
        patch, box = head_patch(int(round(face_width * zoom)))
        ph, pw = patch.shape[:2]
        cx = width / 2 + 0.08 * width * np.sin(2 * np.pi * t / 90)
        cy = height / 2 + 0.05 * height * np.sin(2 * np.pi * t / 70)
        x0 = int(np.clip(round(cx - pw / 2), 0, width - pw))
        y0 = int(np.clip(round(cy - ph / 2), 0, height - ph))
        frame = bg.copy()
        frame[y0:y0 + ph, x0:x0 + pw] = patch
        yield frame, (box[0] + x0, box[1] + y0, box[2], box[3])


def write_video(path, n: int = 300, width: int = 640, height: int = 480, fps: float = 30.0, seed: int = 0,
                face_width: int | None = None) -> list[tuple[int, int, int, int]]:
    """Write the moving-face video to ``path`` (.mp4: mp4v, .avi: MJPG); return the true box of each frame."""
    path = Path(path)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    vw = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    if not vw.isOpened():
        raise RuntimeError(f"cannot write {path}")
    boxes = []
    for frame, box in face_frames(n, width, height, face_width, seed):
        vw.write(frame)
        boxes.append(box)
    vw.release()
    return boxes
