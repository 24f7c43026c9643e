"""The one preprocessing path shared by data preparation and the inference app.

Every image that reaches a model — a CK+ file during data preparation, a face crop from a camera frame in
``inference.py`` — goes through :func:`to_model_image` (any image array -> 48x48 uint8 grayscale) and then
:func:`to_tensor` (uint8 batch -> normalised float tensor). Keeping a single implementation is what makes
the deployed app see the same pixels the model was trained on. Image files are decoded by one reader in both,
:func:`fer.data.images.read_image` (EXIF orientation applied); the app turns its pictures into BGR frames with
:func:`to_bgr`.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from fer import IMAGE_SIZE

# Normalisation applied to uint8 pixels: x / 255 -> (x - MEAN) / STD.
MEAN = 0.5
STD = 0.25


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Any image array -> uint8: 16-bit (and larger integers) scaled by 1/257, float 0..1 by 255, bool to 0/255."""
    arr = np.asarray(image)
    if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.size and arr.max() > 255):
        return (arr.astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
    if arr.dtype.kind == "f":
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        return (arr * scale).round().clip(0, 255).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    return arr.astype(np.uint8, copy=False)


def to_gray(image: np.ndarray, channel_order: str = "RGB") -> np.ndarray:
    """Return a 2-D uint8 grayscale array from a 2-D or 3-D (H, W, C) image array.

    ``channel_order`` names the order of colour channels ("RGB" for PIL, "BGR" for OpenCV). Alpha is dropped;
    16-bit and float images are rescaled to 0..255 (:func:`to_uint8`). Luma uses the ITU-R 601 weights in both
    orders.
    """
    arr = to_uint8(image)
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D image array, got shape {arr.shape}")
    channels = arr.shape[2]
    if channels == 1:
        return arr[:, :, 0]
    if channels == 2:  # gray + alpha
        return arr[:, :, 0]
    if channels not in (3, 4):
        raise ValueError(f"unsupported channel count {channels}")
    rgb = arr[:, :, :3]
    code = cv2.COLOR_RGB2GRAY if channel_order.upper() == "RGB" else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(np.ascontiguousarray(rgb), code)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """An image array in RGB(A) order or gray (:func:`fer.data.images.read_image`) -> 8-bit 3-channel BGR, the
    inference app's frame format. Same 8-bit conversion and channel choice as :func:`to_gray`, so
    ``to_gray(to_bgr(x), "BGR") == to_gray(x, "RGB")``: the app and data preparation see the same pixels."""
    arr = to_uint8(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 2):  # gray (+ alpha)
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_GRAY2BGR)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected a 2-D or 3-D image array with 1 to 4 channels, got shape {arr.shape}")
    return cv2.cvtColor(np.ascontiguousarray(arr[:, :, :3]), cv2.COLOR_RGB2BGR)


def to_model_image(image: np.ndarray, channel_order: str = "RGB", size: int = IMAGE_SIZE) -> np.ndarray:
    """Any image (or face crop) -> ``size`` x ``size`` uint8 grayscale, area-resampled."""
    gray = to_gray(image, channel_order)
    if gray.shape == (size, size):
        return np.ascontiguousarray(gray)
    interp = cv2.INTER_AREA if min(gray.shape) >= size else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interp)


def to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) or (H, W) -> float32 tensor (N, 1, H, W), normalised."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    return normalize(t.float().div_(255.0))


def normalize(x01: torch.Tensor) -> torch.Tensor:
    """Float images in 0..1 -> model input."""
    return (x01 - MEAN) / STD
