"""Procedural 48x48 grayscale faces for the seven CK+ expressions and neutral, written in any data.layout.

The generator stands in for CK+ (or FER2013) wherever the real images may not be used (tests, CI, demos). It
writes ``out_dir/<class>/S{subject:03d}_{sequence:03d}_{frame:08d}.png`` like the "CK+48" copy of CK+
(``class-folders``), ``out_dir/<split>/<class>/...png`` (``split-folders``, subjects split 14:3:3 by
:func:`split_of`) or ``out_dir/fer2013.csv`` (``fer2013-csv``, FER2013's emotion codes and Usage), so the same
loader serves both. Class names are those of ``data.classes`` (any spelling :mod:`fer.data.classes` knows).

How the set is built
--------------------
* Every subject has an identity: face shape, skin/hair/background tone, hair line and length, eye size
  and spacing, brow shape and thickness, nose and mouth geometry, a natural mouth-corner set, how
  expressive they are, which side their contempt smirk goes to, and (rarely) a moustache.
* As in CK+, a subject shows only some of the expressions (one sequence each), drawn with CK+'s class
  frequencies (contempt rarest, surprise and happy most frequent; :data:`CKPLUS_RATES`).
* A sequence is the last ``frames`` frames of an onset->apex clip: expression intensity rises over the
  frames. Pose (rotation, shift, scale) and lighting (gradient, brightness, contrast, gamma) are drawn per
  sequence with a little extra jitter per frame, plus pixel noise per frame.
* Expressions differ through brow height/angle/squeeze, eye openness, cheek raise, nose wrinkle,
  nasolabial folds, mouth width/openness/corner lift, teeth, pressed or pushed-up lips and the one-sided
  lip corner of contempt. Each expression has variants (e.g. anger with pressed lips or bared teeth, happy
  with closed or open mouth), and subjects differ in their neutral face, so the classes are learnable by a
  small CNN but not separable by a linear model on raw pixels.

Drawing is vectorised numpy: a batch of faces is evaluated on a supersampled pixel grid (shapes as soft
signed-distance masks), composited in float32, area-downsampled and quantised to uint8. Images are
streamed to disk batch by batch (memory stays bounded whatever the number of subjects); every PNG is
written to a temporary name in its folder and renamed into place, so an interrupted run never leaves a
half-written image. A subject's images depend only on ``(seed, subject)`` and the drawing options, so the
same seed gives byte-identical files, and a run with more subjects extends a run with fewer.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fer import CLASSES, IMAGE_SIZE
from fer.data import classes as class_names, fer2013

# Fraction of CK+ subjects who show each expression (labelled sequences per class / 118 labelled subjects:
# anger 45, contempt 18, disgust 59, fear 25, happy 69, sadness 28, surprise 83).
CKPLUS_SEQUENCES = {"anger": 45, "contempt": 18, "disgust": 59, "fear": 25, "happy": 69, "sadness": 28,
                    "surprise": 83}
CKPLUS_RATES = {c: n / 118.0 for c, n in CKPLUS_SEQUENCES.items()}
# The expressions the generator draws (canonical names, fer.data.classes) and how often a subject shows each:
# CK+'s rates, and neutral (not a CK+ class) as often as the commonest CK+ expression.
DRAWABLE = (*CLASSES, "neutral")
RATES = {**CKPLUS_RATES, "neutral": CKPLUS_RATES["surprise"]}
LAYOUTS = ("class-folders", "split-folders", "fer2013-csv")
FER2013_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}

FILE_PATTERN = "S{subject:03d}_{sequence:03d}_{frame:08d}.png"

# Expression parameters and their neutral values. Units are "face units" (the image half-size before pose
# scaling) unless noted; the drawing code turns them into geometry.
NEUTRAL = {
    "brow_raise": 0.0,    # + lifts both brows (1 -> 0.09)
    "brow_tilt": 0.0,     # + lifts inner ends / drops outer ends (sad, fear); - gives the V of anger
    "brow_squeeze": 0.0,  # + pulls brows towards the midline
    "eye_open": 1.0,      # multiplier of the eye opening
    "cheek": 0.0,         # cheek raise: lower lid pushed up, cheek highlight, crow's feet
    "nose_wrinkle": 0.0,  # wrinkles across the nose bridge, nostrils lifted and widened
    "nasolabial": 0.0,    # depth of the nose-to-mouth folds
    "mouth_open": 0.0,    # gap between the lips (face units)
    "mouth_width": 1.0,   # multiplier of the mouth width
    "corner": 0.0,        # + lifts both lip corners (smile), - drops them
    "asym": 0.0,          # lifts and pulls back one lip corner (contempt)
    "upper_raise": 0.0,   # upper lip raised (disgust): the opening shifts upwards
    "teeth": 0.0,         # visibility of the upper teeth inside the opening
    "lower_teeth": 0.0,   # visibility of the lower teeth
    "lip_press": 0.0,     # lips pressed thin
    "lower_push": 0.0,    # lower lip pushed up (pout), chin raised
    "jaw": 0.0,           # jaw drop: rounder opening, longer face
    "forehead": 0.0,      # horizontal forehead lines
    "forehead_w": 1.0,    # width of the forehead lines (sadness: only the centre)
    "glabella": 0.0,      # vertical lines between the brows
}


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


# --------------------------------------------------------------------------------------------- parameters

def _identity(rng: np.random.Generator) -> dict:
    """The look of one subject."""
    blond = rng.random() < 0.15
    p = {
        "face_a": _u(rng, 0.80, 0.95), "face_b": _u(rng, 1.04, 1.18), "taper": _u(rng, 0.10, 0.40),
        "face_cy": _u(rng, 0.00, 0.10),
        "skin": _u(rng, 0.42, 0.86), "bg": _u(rng, 0.12, 0.80),
        "hair": _u(rng, 0.55, 0.75) if blond else _u(rng, 0.04, 0.32),
        "hairline": _u(rng, -0.92, -0.62), "hair_curv": _u(rng, -0.15, 0.45),
        "bangs": _u(rng, 0.0, 0.25) if rng.random() < 0.22 else 0.0,
        "hair_bottom": _u(rng, -0.25, 0.95), "hair_extra": _u(rng, 0.04, 0.20),
        "eye_dx": _u(rng, 0.32, 0.42), "eye_y": _u(rng, -0.36, -0.24), "eye_w": _u(rng, 0.13, 0.17),
        "eye_h": _u(rng, 0.048, 0.072), "iris": _u(rng, 0.058, 0.078), "sclera": _u(rng, 0.55, 0.90),
        "socket": _u(rng, 0.08, 0.28), "lash": _u(rng, 0.020, 0.034),
        "brow_gap": _u(rng, 0.11, 0.16), "brow_th": _u(rng, 0.035, 0.075), "brow_w": _u(rng, 0.15, 0.20),
        "brow_arch": _u(rng, 0.0, 0.045), "brow_dark": _u(rng, 0.35, 0.85), "brow_shift": _u(rng, -0.02, 0.04),
        "nose_y": _u(rng, 0.12, 0.22), "nose_w": _u(rng, 0.075, 0.115), "nose_shade": _u(rng, 0.05, 0.20),
        "mouth_y": _u(rng, 0.48, 0.58), "mouth_w": _u(rng, 0.23, 0.31), "lip_u": _u(rng, 0.018, 0.045),
        "lip_l": _u(rng, 0.028, 0.065), "lip_dark": _u(rng, 0.72, 0.94),
        "fold": _u(rng, 0.0, 0.15), "gaze": _u(rng, -0.015, 0.015),
        "moustache": _u(rng, 0.4, 0.8) if rng.random() < 0.08 else 0.0,
        "expressive": _u(rng, 0.7, 1.2), "smirk_side": 1.0 if rng.random() < 0.5 else -1.0,
    }
    # A subject's neutral face is not everyone's: resting brow, mouth-corner and eye set.
    p["rest"] = {"corner": _u(rng, -0.35, 0.30), "brow_tilt": _u(rng, -0.35, 0.35),
                 "brow_raise": _u(rng, -0.30, 0.30), "eye_open": _u(rng, 0.85, 1.15),
                 "mouth_width": _u(rng, 0.92, 1.08)}
    return p


def _apex(cls: str, rng: np.random.Generator) -> dict:
    """Expression parameter offsets (from neutral) at full intensity, with per-sequence variation."""
    r = rng.random
    if cls == "anger":
        d = {"brow_raise": -0.75, "brow_tilt": -1.0, "brow_squeeze": 0.8, "glabella": 0.9, "nose_wrinkle": 0.15,
             "eye_open": -0.2 if r() < 0.7 else 0.15}
        if r() < 0.6:  # pressed lips
            d.update(lip_press=0.9, lower_push=0.5, corner=-0.35, mouth_width=-0.12)
        else:          # bared teeth
            d.update(mouth_open=0.09, teeth=1.0, lower_teeth=0.7, corner=-0.25, upper_raise=0.3)
    elif cls == "contempt":
        d = {"asym": 1.0, "corner": 0.1, "eye_open": -0.08, "lip_press": 0.35, "brow_raise": 0.08 * (r() - 0.3)}
    elif cls == "disgust":
        d = {"nose_wrinkle": 1.0, "upper_raise": 1.0, "mouth_open": 0.045 if r() < 0.5 else 0.015,
             "teeth": 0.6, "brow_raise": -0.5, "brow_tilt": -0.45, "brow_squeeze": 0.45, "eye_open": -0.35,
             "nasolabial": 1.0, "corner": -0.45, "cheek": 0.4, "glabella": 0.5, "lower_push": 0.3}
    elif cls == "fear":
        d = {"brow_raise": 0.6, "brow_tilt": 0.8, "brow_squeeze": 0.5, "eye_open": 0.4, "forehead": 0.6,
             "forehead_w": -0.2, "mouth_width": 0.15, "corner": -0.4, "nasolabial": 0.3}
        if r() < 0.7:
            d.update(mouth_open=0.08, teeth=0.8, lower_teeth=0.8)
        else:
            d.update(mouth_open=0.012, lip_press=0.3)
    elif cls == "happy":
        d = {"corner": 1.0, "mouth_width": 0.18, "cheek": 1.0, "eye_open": -0.25, "nasolabial": 0.9,
             "brow_raise": 0.05}
        if r() < 0.7:
            d.update(mouth_open=0.075, teeth=1.0, upper_raise=0.5, lower_teeth=0.3 * r())
    elif cls == "sadness":
        d = {"brow_tilt": 1.0, "brow_raise": 0.1, "brow_squeeze": 0.4, "eye_open": -0.2, "corner": -0.85,
             "lower_push": 0.7, "lip_press": 0.4, "mouth_width": -0.05, "forehead": 0.3, "forehead_w": -0.55}
    elif cls == "surprise":
        d = {"brow_raise": 1.0, "brow_tilt": 0.15, "eye_open": 0.5, "forehead": 0.9, "corner": 0.0}
        if r() < 0.8:
            d.update(mouth_open=0.20, mouth_width=-0.22, jaw=1.0, teeth=0.25 * r())
        else:  # brows and eyes only, mouth slightly parted
            d.update(mouth_open=0.05, mouth_width=-0.1, jaw=0.3)
    elif cls == "neutral":  # the subject's own resting face
        d = {}
    else:
        raise ValueError(f"unknown expression {cls!r}; expected one of {DRAWABLE}")
    # Nobody makes the same face twice: jitter every component of this sequence's apex.
    return {k: v * float(rng.uniform(0.75, 1.25)) + float(rng.normal(0.0, 0.04)) * (k != "mouth_open")
            for k, v in d.items()}


def _expression(subject: dict, apex: dict, t: float) -> dict:
    """Parameters at intensity ``t`` (0 = the subject's neutral face, 1 = apex)."""
    e = dict(NEUTRAL)
    for k, v in subject["rest"].items():
        e[k] = e[k] * v if k in ("eye_open", "mouth_width") else e[k] + v
    s = subject["expressive"] * t
    for k, v in apex.items():
        e[k] = e[k] + v * s
    e["mouth_open"] = max(e["mouth_open"], 0.0)
    e["eye_open"] = max(e["eye_open"], 0.25)
    e["mouth_width"] = max(e["mouth_width"], 0.55)
    e["forehead_w"] = max(e["forehead_w"], 0.2)
    for k in ("teeth", "lower_teeth", "lip_press", "cheek", "nose_wrinkle", "nasolabial", "upper_raise",
              "lower_push", "jaw", "forehead", "glabella"):
        e[k] = min(max(e[k], 0.0), 1.2)
    return e


def _sequence_look(rng: np.random.Generator, jitter: float) -> dict:
    """Pose and lighting of one recording session (per sequence)."""
    j = jitter
    return {"angle": float(np.clip(rng.normal(0, 5.0 * j), -14, 14)),
            "scale": float(np.exp(rng.normal(0, 0.045 * j))),
            "tx": float(rng.normal(0, 0.045 * j)), "ty": float(rng.normal(0, 0.045 * j)),
            "light_dir": _u(rng, 0, 2 * math.pi), "light": _u(rng, 0.0, 0.40 * j),
            "brightness": float(rng.normal(0, 0.05 * j)), "contrast": float(np.exp(rng.normal(0, 0.15 * j))),
            "gamma": float(np.exp(rng.normal(0, 0.15 * j))), "noise": _u(rng, 0.003, 0.014 * max(j, 0.2))}


def _frame_look(seq: dict, rng: np.random.Generator, jitter: float) -> dict:
    """A frame's pose/lighting: its sequence's plus a little per-frame jitter."""
    j = jitter
    f = dict(seq)
    f["angle"] += float(rng.normal(0, 1.0 * j))
    f["scale"] *= float(np.exp(rng.normal(0, 0.01 * j)))
    f["tx"] += float(rng.normal(0, 0.012 * j))
    f["ty"] += float(rng.normal(0, 0.012 * j))
    f["light"] = max(0.0, f["light"] + float(rng.normal(0, 0.02 * j)))
    f["brightness"] += float(rng.normal(0, 0.01 * j))
    return f


def subject_plan(subject: int, seed: int = 0, frames: int = 3, classes: Sequence[str] = CLASSES,
                 rates: dict | None = None, jitter: float = 1.0) -> list[dict]:
    """Everything needed to draw one subject's images: one record per image (no pixels yet).

    Each record has ``cls``, ``subject``, ``sequence``, ``frame``, ``intensity`` and the drawing parameters
    (identity + expression + pose/lighting) plus a per-image ``noise_seed``. Depends only on the arguments.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(subject)]))
    ident = _identity(rng)
    rates = dict(RATES, **{class_names.canonical(c): v for c, v in (rates or {}).items()})
    shown = [c for c in classes if rng.random() < rates[class_names.canonical(c)]]
    if not shown:  # every subject shows at least one expression, chosen by the class frequencies
        w = np.array([rates[class_names.canonical(c)] for c in classes], dtype=float) + 1e-12
        shown = [classes[int(rng.choice(len(classes), p=w / w.sum()))]]
    order = list(rng.permutation(len(shown)))
    seq_ids = np.cumsum(rng.integers(1, 3, size=len(shown)))  # CK+ numbering has gaps (unlabelled sequences)
    records = []
    for seq_no, idx in zip(seq_ids, order):
        cls = shown[idx]
        apex = _apex(class_names.canonical(cls), rng)
        look = _sequence_look(rng, jitter)
        length = int(rng.integers(max(frames, 10), max(frames, 10) + 30))
        t_last = _u(rng, 0.9, 1.0)
        step = _u(rng, 0.04, 0.12)
        for k in range(frames):
            t = max(0.2, t_last - (frames - 1 - k) * step)
            rec = {"cls": cls, "subject": int(subject), "sequence": int(seq_no), "frame": length - frames + 1 + k,
                   "intensity": t, "noise_seed": int(rng.integers(0, 2**63 - 1))}
            rec.update(ident)
            rec.update(_expression(ident, apex, t))
            rec.update(_frame_look(look, rng, jitter))
            records.append(rec)
    return records


# ------------------------------------------------------------------------------------------------ drawing

def _soft(d, px):
    """Coverage of a shape with signed distance ``d`` (negative inside) for pixels of size ``px``."""
    return np.clip(0.5 - d / px, 0.0, 1.0)


def _paint(img, alpha, value):
    """img <- img * (1 - alpha) + value * alpha, in place."""
    img += alpha * (value - img)


def _bump(r2):
    """Smooth falloff 1 -> 0 for squared normalised radius 0 -> 1."""
    x = np.clip(1.0 - r2, 0.0, 1.0)
    return x * x


def _region(P, S, v0, v1, half_u):
    """Canvas window (rows, cols) holding the face-coordinate box |u| <= half_u, v0 <= v <= v1 in every image.

    The bounds are arrays over the batch; the window is their union, padded by two canvas pixels.
    """
    ang = np.deg2rad(P["angle"][:, 0, 0].astype(np.float64))
    ca, sa, k = np.cos(ang), np.sin(ang), P["scale"][:, 0, 0].astype(np.float64)
    cy = P["face_cy"][:, 0, 0]
    xs, ys = [], []
    for uu in (-half_u, half_u):
        for vv in (v0, v1):
            vp = np.broadcast_to(vv, cy.shape) + cy
            uu = np.broadcast_to(uu, cy.shape)
            xs.append(P["tx"][:, 0, 0] + k * (ca * uu - sa * vp))
            ys.append(P["ty"][:, 0, 0] + k * (sa * uu + ca * vp))

    def span(vals):
        lo = int(np.floor((np.min(vals) + 1) / 2 * S)) - 2
        hi = int(np.ceil((np.max(vals) + 1) / 2 * S)) + 2
        return slice(min(max(lo, 0), S), min(max(hi, 0), S))

    return span(ys), span(xs)


class _Grid:
    """Face coordinates of a canvas window for a batch (all arrays broadcast to (B, rows, cols))."""

    def __init__(self, P, S, rows=slice(None), cols=slice(None)):
        f32 = np.float32
        g = ((np.arange(S, dtype=f32) + 0.5) / S * 2 - 1)
        self.X, self.Y = g[None, None, cols], g[None, rows, None]
        ang = np.deg2rad(P["angle"])
        ca, sa = np.cos(ang), np.sin(ang)
        k = P["scale"]
        dx, dy = self.X - P["tx"], self.Y - P["ty"]
        self.u = (ca * dx + sa * dy) / k
        self.v = (-sa * dx + ca * dy) / k - P["face_cy"]
        self.px = (2.0 / S) / k  # canvas pixel size in face units
        self.au = np.abs(self.u)
        self.sgn = np.where(self.u >= 0, f32(1), f32(-1))


def render(records: list[dict], size: int = IMAGE_SIZE, supersample: int = 2) -> np.ndarray:
    """Draw a batch of faces described by :func:`subject_plan` records -> uint8 array (B, size, size)."""
    if not records:
        return np.zeros((0, size, size), np.uint8)
    f32 = np.float32
    S = size * supersample
    P = {k: np.array([r[k] for r in records], dtype=f32)[:, None, None]
         for k, v in records[0].items() if isinstance(v, (int, float)) and k != "noise_seed"}
    B = len(records)
    skin, hair = P["skin"], P["hair"]
    jaw = P["jaw"]
    fa, fb = P["face_a"], P["face_b"] + 0.06 * jaw
    ey, ex, ew = P["eye_y"], P["eye_dx"], P["eye_w"]
    ny = P["nose_y"] - 0.025 * P["nose_wrinkle"]
    nw = P["nose_w"] * (1 + 0.25 * P["nose_wrinkle"])
    my = P["mouth_y"] + 0.04 * jaw
    mw = P["mouth_w"] * P["mouth_width"]
    mo = P["mouth_open"]
    hl0 = P["hairline"]

    # ---------------- whole canvas: background, hair, face
    G = _Grid(P, S)
    u, v, au, px = G.u, G.v, G.au, G.px
    img = np.broadcast_to(P["bg"] * (1 + 0.15 * G.Y), (B, S, S)).astype(f32)
    # Hair behind the head (length varies), neck and shoulders.
    hr2 = (u / (fa + P["hair_extra"])) ** 2 + ((v + 0.12) / (fb + 0.08)) ** 2
    hair_back = _soft((np.sqrt(hr2) - 1) * fa, px) * _soft(v - P["hair_bottom"], px)
    _paint(img, hair_back, hair)
    neck = _soft(np.maximum(au - 0.42 - 0.5 * np.maximum(v - 0.95, 0), 0.55 - v), px)
    _paint(img, neck, skin * 0.78)
    # Face: an egg (narrower at the chin), shaded darker towards its rim; ears at eye level.
    aeff = fa * (1 - P["taper"] * np.clip(v / fb, 0, 1) ** 2)
    fr2 = (u / aeff) ** 2 + (v / fb) ** 2
    face = _soft((np.sqrt(fr2) - 1) * fa, px)
    shade = skin * (1 - 0.32 * np.clip(fr2 - 0.35, 0, 1)) * (1 - 0.05 * v)
    ear = _soft((np.sqrt(((au - fa * 0.98) / 0.07) ** 2 + ((v - ey - 0.1) / 0.13) ** 2) - 1) * 0.07, px)
    _paint(img, ear * (1 - face), skin * 0.85)
    _paint(img, face, shade)
    # Hair on the forehead: hair line (curved, optional bangs).
    hl = hl0 + P["hair_curv"] * u * u + P["bangs"] * (1 - np.clip(au / 0.55, 0, 1))
    _paint(img, face * _soft(v - hl, px), hair)
    # Shadow under the chin / jaw line.
    _paint(img, 0.25 * _bump(((v - fb * 0.98) / 0.08) ** 2 + (u / (fa * 0.6)) ** 2) * (1 - face), skin * 0.5)
    del G, u, v, au, hr2, hair_back, neck, aeff, fr2, shade, ear, hl

    # ---------------- eyes, brows, forehead (a window of the canvas)
    bw = P["brow_w"]
    base = ey - P["brow_gap"] - 0.09 * P["brow_raise"]
    rows, cols = _region(P, S, np.minimum(base - 0.32, hl0 - 0.05).min(), (ey + 0.3).max(),
                         float((ex + 2 * ew + 0.06).max()))
    W = img[:, rows, cols]
    G = _Grid(P, S, rows, cols)
    u, v, au, px, sgn = G.u, G.v, G.au, G.px, G.sgn
    face = _soft((np.sqrt((u / fa) ** 2 + (v / fb) ** 2) - 1) * fa, px)  # upper face: no chin taper needed
    hl = hl0 + P["hair_curv"] * u * u + P["bangs"] * (1 - np.clip(au / 0.55, 0, 1))
    eopen, cheek = P["eye_open"], P["cheek"]
    du = au - ex
    xn = du / ew
    prof = 1 - xn * xn
    h_up = P["eye_h"] * eopen * 1.15
    h_lo = P["eye_h"] * np.maximum(eopen, 0.8) * 0.85 * (1 - 0.55 * np.clip(cheek, 0, 1))
    vu_e = ey - h_up * prof
    vl_e = ey + h_lo * prof
    # Socket shadow around the eye and under the brow.
    _paint(W, P["socket"] * _bump((du / (ew * 1.7)) ** 2 + ((v - ey + 0.03) / 0.11) ** 2), skin * 0.45)
    opening = _soft(np.maximum(vu_e - v, v - vl_e), px)
    _paint(W, opening, skin * P["sclera"])
    iris_c = ex + P["gaze"] * sgn
    r_iris = np.sqrt((au - iris_c) ** 2 + (v - ey + 0.005) ** 2)
    _paint(W, opening * _soft(r_iris - P["iris"], px), skin * 0.22)
    _paint(W, opening * _soft(r_iris - P["iris"] * 0.45, px), f32(0.03))
    lash = _soft(np.maximum(np.abs(v - vu_e + 0.004) - P["lash"] * 0.5, (np.abs(xn) - 1.08) * ew), px)
    _paint(W, 0.85 * lash, skin * 0.15)
    lower_lid = _soft(np.maximum(np.abs(v - vl_e - 0.006) - 0.008, (np.abs(xn) - 0.95) * ew), px)
    _paint(W, (0.25 + 0.35 * cheek) * lower_lid, skin * 0.35)
    # Cheek raise: bulge highlight under the eye and crow's feet.
    _paint(W, cheek * 0.5 * _bump((du / (ew * 1.4)) ** 2 + ((v - ey - 0.16) / 0.08) ** 2),
           np.minimum(skin * 1.25, 1.0))
    cv = v - ey
    crows = _soft(np.maximum(np.abs(cv - 0.35 * (du - ew * 1.2) * np.sign(cv)) - 0.007,
                             np.abs(du - ew * 1.35) - 0.05), px) * _soft(np.abs(cv) - 0.06, px)
    _paint(W, 0.45 * cheek * crows, skin * 0.5)
    # Brows: -1 = inner end, +1 = outer end.
    bx = (au - (ex + P["brow_shift"] - 0.045 * P["brow_squeeze"])) / bw
    vb = base - P["brow_arch"] * (1 - bx * bx) + 0.05 * P["brow_tilt"] * bx
    th = P["brow_th"] * (1 - 0.45 * np.clip(bx, 0, 1)) * (1 + 0.2 * np.clip(-P["brow_raise"], 0, 1))
    brow = _soft(np.maximum(np.abs(v - vb) - th * 0.5, (np.abs(bx) - 1) * bw), px)
    _paint(W, P["brow_dark"] * brow, hair * 0.6)
    # Forehead lines and the vertical lines between the brows.
    fw = 0.32 * P["forehead_w"]
    below_hair = face * _soft(hl - v, px)
    for i in range(3):
        fv = base - 0.10 - 0.065 * i + 0.06 * (u / 0.4) ** 2 * (1 - 0.5 * np.clip(P["brow_tilt"], 0, 1))
        line = _soft(np.maximum(np.abs(v - fv) - 0.008, au - fw * (1 - 0.15 * i)), px)
        _paint(W, 0.4 * P["forehead"] * line * below_hair, skin * 0.5)
    glab = _soft(np.maximum(np.abs(au - 0.035) - 0.008, np.abs(v - (base + 0.05)) - 0.06), px)
    _paint(W, 0.55 * P["glabella"] * glab, skin * 0.45)
    img[:, rows, cols] = W
    del G, W, u, v, au, sgn

    # ---------------- nose
    rows, cols = _region(P, S, float(ey.min()) - 0.02, float((ny + 0.08).max()), float((nw * 1.3 + 0.08).max()))
    W = img[:, rows, cols]
    G = _Grid(P, S, rows, cols)
    u, v, au, px = G.u, G.v, G.au, G.px
    bridge = _bump(((au - 0.085) / 0.06) ** 2 + ((v - 0.5 * (ey + ny)) / (0.5 * (ny - ey))) ** 4)
    _paint(W, P["nose_shade"] * 1.5 * bridge, skin * 0.55)
    _paint(W, 0.15 * _bump((u / (nw * 1.3)) ** 2 + ((v - ny + 0.02) / 0.05) ** 2), np.minimum(skin * 1.15, 1.0))
    _paint(W, 0.3 * _bump((u / (nw * 1.2)) ** 2 + ((v - ny - 0.035) / 0.025) ** 2), skin * 0.5)
    nostril = _soft((np.sqrt(((au - nw * 0.6) / 0.032) ** 2 + ((v - ny - 0.01) / 0.018) ** 2) - 1) * 0.018, px)
    _paint(W, 0.75 * nostril, skin * 0.25)
    for i in range(3):
        wr = _soft(np.maximum(np.abs(v - (ey + 0.05 + 0.03 * i) - 0.25 * u * u) - 0.006, au - 0.09), px)
        _paint(W, 0.55 * P["nose_wrinkle"] * wr, skin * 0.4)
    img[:, rows, cols] = W
    del G, W, u, v, au

    # ---------------- mouth, folds, chin
    lip_l0 = P["lip_l"] * (1 + 0.3 * P["lower_push"])
    rows, cols = _region(P, S, float(np.minimum(ny - 0.04, my - mo - 0.35).min()),
                         float((my + mo + lip_l0 + 0.2).max()), float((mw * 1.25 + 0.12).max()))
    W = img[:, rows, cols]
    G = _Grid(P, S, rows, cols)
    u, v, au, px, sgn = G.u, G.v, G.au, G.px, G.sgn
    side = P["smirk_side"]
    asym = P["asym"]
    mu = u - 0.012 * asym * side
    mxn = mu / mw
    on_side = (sgn == side).astype(f32)
    x2 = mxn * mxn
    cd = -(0.085 * P["corner"] + 0.065 * asym * on_side) * (0.5 * x2 + 0.5 * x2 * x2)
    mp = (1 - x2) * (1 - 0.6 * jaw) + (1 - x2 * x2) * (0.6 * jaw)
    up_frac = 0.35 + 0.3 * P["upper_raise"]
    vu_m = my + cd - mo * up_frac * mp - 0.02 * P["upper_raise"] * mp - 0.02 * P["lower_push"] * mp
    vl_m = my + cd + mo * (1 - up_frac) * mp - 0.02 * P["lower_push"] * mp
    press = np.clip(P["lip_press"], 0, 1)
    # Nasolabial folds: from beside the nostrils to beyond the lip corners.
    v0, v1 = ny - 0.02, my + 0.06
    tt = np.clip((v - v0) / (v1 - v0), 0, 1)
    fold_u = nw + 0.05 + (mw * 1.02 + 0.01 - nw) * tt + 0.05 * np.clip(P["corner"], 0, None) * tt * (1 - tt)
    fold = _soft(np.maximum(np.abs(au - fold_u) - 0.009, np.maximum(v0 - v, v - v1)), px)
    _paint(W, (P["fold"] + 0.5 * P["nasolabial"]) * fold, skin * 0.45)
    # Moustache.
    must = _soft(np.maximum(np.maximum(vu_m - P["lip_u"] - 0.06 - v, v - vu_m + P["lip_u"] * 0.5),
                            (np.abs(mxn) - 1.15) * mw), px)
    _paint(W, P["moustache"] * must, hair)
    # Lips.
    lip_u = P["lip_u"] * (1 - 0.75 * press)
    lip_l = lip_l0 * (1 - 0.7 * press)
    inside = np.abs(mxn) < 1.02
    smp = np.sqrt(np.clip(mp, 0, 1))
    _paint(W, _soft(np.maximum(vu_m - lip_u * smp - v, v - vu_m), px) * inside, skin * P["lip_dark"] * 0.92)
    _paint(W, _soft(np.maximum(vl_m - v, v - vl_m - lip_l * smp), px) * inside, skin * P["lip_dark"])
    # Shadow under the lower lip (deeper with a pout).
    chin_sh = _bump((mu / (mw * 0.8)) ** 2 + ((v - vl_m - lip_l - 0.03) / 0.03) ** 2)
    _paint(W, (0.15 + 0.35 * P["lower_push"]) * chin_sh, skin * 0.55)
    # Opening, teeth and the line between the lips.
    cav = _soft(np.maximum(np.maximum(vu_m - v, v - vl_m), (np.abs(mxn) - 1) * mw), px)
    _paint(W, cav, skin * 0.12)
    tu = cav * _soft(v - vu_m - np.minimum(0.045, mo * 0.55) * mp, px) * np.clip(P["teeth"], 0, 1)
    _paint(W, tu, np.minimum(skin * 1.2 + 0.1, 0.97))
    tl = cav * _soft(vl_m - np.minimum(0.03, mo * 0.35) * mp - v, px) * np.clip(P["lower_teeth"], 0, 1)
    _paint(W, tl * 0.85, np.minimum(skin * 1.1 + 0.1, 0.95))
    lip_line = _soft(np.maximum(np.abs(v - 0.5 * (vu_m + vl_m)) - (0.006 + 0.006 * press),
                                (np.abs(mxn) - 1.04) * mw), px)
    _paint(W, 0.75 * lip_line, skin * 0.2)
    # Contempt dimple at the lifted corner.
    cvx = side * (mw * 1.06 + 0.024 * asym)
    cvy = my - 0.065 * asym - 0.085 * P["corner"]
    dimple = _soft(np.maximum(np.abs(u - cvx - 2.0 * side * (v - cvy) ** 2) - 0.008, np.abs(v - cvy) - 0.035), px)
    _paint(W, 0.5 * np.clip(asym, 0, 1) * dimple, skin * 0.45)
    img[:, rows, cols] = W
    del G, W

    # ---------------- lighting, downsampling, noise
    g = ((np.arange(S, dtype=f32) + 0.5) / S * 2 - 1)
    ld = P["light_dir"]
    img *= 1 + P["light"] * (np.cos(ld) * g[None, None, :] + np.sin(ld) * g[None, :, None])
    img = img.reshape(B, size, supersample, size, supersample).mean(axis=(2, 4))
    img = np.clip(img, 0, 1) ** P["gamma"]
    img = (img - 0.5) * P["contrast"] + 0.5 + P["brightness"]
    noise = np.stack([np.random.default_rng(r["noise_seed"]).standard_normal((size, size), dtype=f32)
                      for r in records])
    img += noise * P["noise"]
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------- generation

def _check(classes, frames, size, supersample, n_subjects, rates, jitter=1.0):
    canon = [class_names.canonical(c) for c in classes]
    if any(c not in DRAWABLE for c in canon) or not classes or len(set(canon)) != len(canon):
        raise ValueError(f"classes must be distinct names of the expressions {DRAWABLE} (or their common "
                         f"spellings), got {list(classes)}")
    if frames < 1 or size < 8 or supersample < 1 or n_subjects < 0 or not jitter >= 0:
        raise ValueError("need frames >= 1, size >= 8, supersample >= 1, n_subjects >= 0, jitter >= 0")
    bad = [c for c in (rates or {}) if class_names.canonical(c) not in DRAWABLE or not 0 <= rates[c] <= 1]
    if bad:
        raise ValueError(f"rates must map class names to probabilities in [0, 1]: {bad}")


def iter_faces(n_subjects: int = 60, seed: int = 0, size: int = IMAGE_SIZE, frames: int = 3,
               classes: Sequence[str] = CLASSES, supersample: int = 2, jitter: float = 1.0,
               rates: dict | None = None, batch: int = 64, first_subject: int = 1
               ) -> Iterator[tuple[dict, np.ndarray]]:
    """Yield ``(record, image)`` for every image of subjects ``first_subject .. first_subject+n-1``.

    ``image`` is a (size, size) uint8 array; ``record`` holds ``cls``, ``subject``, ``sequence``,
    ``frame`` and ``intensity`` (and the drawing parameters). Images are drawn ``batch`` at a time.
    """
    classes = tuple(classes)
    _check(classes, frames, size, supersample, n_subjects, rates, jitter)
    pending: list[dict] = []
    for s in range(first_subject, first_subject + n_subjects):
        pending.extend(subject_plan(s, seed, frames, classes, rates, jitter))
        if len(pending) >= batch or s == first_subject + n_subjects - 1:
            yield from zip(pending, render(pending, size, supersample))
            pending = []


def load_arrays(n_subjects: int = 60, seed: int = 0, **kwargs):
    """The set in memory (for tests and quick experiments): ``(images uint8 (N,H,W), labels (N,), subjects (N,))``.

    Labels index ``kwargs.get("classes", CLASSES)``.
    """
    classes = tuple(kwargs.get("classes", CLASSES))
    imgs, labels, subjects = [], [], []
    for rec, img in iter_faces(n_subjects, seed, **kwargs):
        imgs.append(img)
        labels.append(classes.index(rec["cls"]))
        subjects.append(rec["subject"])
    size = kwargs.get("size", IMAGE_SIZE)
    return (np.stack(imgs) if imgs else np.zeros((0, size, size), np.uint8),
            np.array(labels, dtype=np.int64), np.array(subjects, dtype=np.int64))


def encode_png(img: np.ndarray) -> bytes:
    """8-bit grayscale PNG bytes of a 2-D uint8 array (OpenCV's encoder: fast and deterministic)."""
    import cv2

    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got {img.dtype} {img.shape}")
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _write_png(path: Path, img: np.ndarray) -> None:
    """Write ``img`` to a temporary name in the same folder, then rename it onto ``path``."""
    data = encode_png(img)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_stats(path, stats: dict) -> None:
    """Write ``stats`` as JSON atomically (without importing torch, unlike :mod:`fer.files`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_text(json.dumps(stats, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def split_of(subject: int) -> str:
    """The split of a subject in the split-folders and fer2013-csv layouts: 14 of every 20 subjects train, 3
    validate, 3 test (by number, so a run with more subjects extends one with fewer)."""
    k = (int(subject) - 1) % 20
    return "train" if k < 14 else "val" if k < 17 else "test"


def _png_path(out: Path, layout: str, rec: dict) -> Path:
    name = FILE_PATTERN.format(subject=rec["subject"], sequence=rec["sequence"], frame=rec["frame"])
    if layout == "split-folders":
        return out / split_of(rec["subject"]) / rec["cls"] / name
    return out / rec["cls"] / name


def _class_dirs(out: Path, classes, layout: str) -> list[Path]:
    """Class folders a layout may hold (split-folders: made when their first image is written)."""
    if layout == "split-folders":
        return [out / split / c for split in FER2013_USAGE for c in classes]
    return [out / c for c in classes] if layout == "class-folders" else []


def clean(out_dir, classes: Sequence[str] = CLASSES, layout: str = "class-folders") -> int:
    """Remove generator-named PNGs and leftover temporary files from the class folders of ``out_dir`` (and its
    fer2013.csv); return the count."""
    pat = re.compile(r"^(S\d{3,}_\d{3,}_\d{8}\.png|\.S\d{3,}_\d{3,}_\d{8}\.png\.\d+\.part)$")
    n = 0
    for d in _class_dirs(Path(out_dir), classes, layout):
        if d.is_dir():
            for p in d.iterdir():
                if pat.match(p.name):
                    p.unlink()
                    n += 1
    csv_file = Path(out_dir) / "fer2013.csv"
    if layout == "fer2013-csv" and csv_file.is_file():
        csv_file.unlink()
        n += 1
    return n


def generate(out_dir, n_subjects: int = 60, seed: int = 0, size: int = IMAGE_SIZE, frames: int = 3,
             classes: Sequence[str] = CLASSES, supersample: int = 2, jitter: float = 1.0,
             rates: dict | None = None, batch: int = 64, first_subject: int = 1, clean_first: bool = False,
             progress: bool | None = True, layout: str = "class-folders", max_images: int | None = None) -> dict:
    """Write a synthetic set into ``out_dir`` in ``layout`` and return statistics.

    Parameters
    ----------
    n_subjects, first_subject: subjects ``S{first_subject:03d}`` ... are drawn (numbers > 999 get 4 digits).
    seed: with the other options, fixes every pixel (same seed -> byte-identical PNGs).
    size: output side in pixels (48 like CK+48); supersample: drawing resolution factor (anti-aliasing).
    frames: images per sequence (the last ``frames`` frames of an onset->apex clip).
    classes: the expressions to draw (names of :data:`DRAWABLE` or their spellings, e.g. data.classes); a class
    folder is made for each, named as given.
    jitter: scales pose and lighting variation (0 = frontal, even light; 1 = default).
    rates: per-class probability that a subject shows that expression (default: CK+'s, :data:`RATES`).
    batch: images drawn per vectorised batch (bounds memory).
    clean_first: delete generator-named PNGs already in the class folders first (stale files of a larger run).
    progress: show a tqdm bar on stderr (``None``: only when stderr is a terminal).
    layout: ``class-folders`` (CK+'s), ``split-folders`` (``<split>/<class>/``, :func:`split_of`) or
    ``fer2013-csv`` (``out_dir/fer2013.csv``; every class needs a FER2013 emotion code, so no contempt).
    max_images: stop after this many images (a set of an exact size, e.g. FER2013's 35,887; None: all).

    Returns ``{"images", "per_class", "subjects", "sequences", "seconds", "images_per_second", "out_dir", ...}``.
    """
    from tqdm import tqdm

    classes = tuple(classes)
    _check(classes, frames, size, supersample, n_subjects, rates, jitter)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    codes = {c: class_names.index_of(c, class_names.FER2013_CODES) for c in classes}
    if layout == "fer2013-csv" and None in codes.values():
        raise ValueError(f"fer2013.csv has no emotion code for {[c for c, k in codes.items() if k is None]}")
    if layout == "fer2013-csv" and size != IMAGE_SIZE:
        raise ValueError(f"fer2013.csv holds {IMAGE_SIZE}x{IMAGE_SIZE} images")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for d in _class_dirs(out, classes, layout) if layout == "class-folders" else []:
        d.mkdir(parents=True, exist_ok=True)
    removed = clean(out, classes, layout) if clean_first else 0
    t0 = time.perf_counter()
    per_class = {c: 0 for c in classes}
    sequences = set()
    bar = tqdm(total=n_subjects, unit="subject", desc="synthetic faces", file=sys.stderr,
               disable=None if progress is None else not progress)
    last_subject = first_subject - 1

    def faces():
        nonlocal last_subject
        for rec, img in iter_faces(n_subjects, seed, size, frames, classes, supersample, jitter, rates, batch,
                                   first_subject):
            if max_images is not None and sum(per_class.values()) >= max_images:
                return
            per_class[rec["cls"]] += 1
            sequences.add((rec["subject"], rec["sequence"]))
            if rec["subject"] != last_subject:
                bar.update(rec["subject"] - last_subject)
                last_subject = rec["subject"]
            yield rec, img

    if layout == "fer2013-csv":
        rows = ((img, codes[rec["cls"]], FER2013_USAGE[split_of(rec["subject"])]) for rec, img in faces())
        fer2013.write(out / "fer2013.csv", rows)
    else:
        made = set()
        for rec, img in faces():
            path = _png_path(out, layout, rec)
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            _write_png(path, img)
    bar.close()
    seconds = time.perf_counter() - t0
    images = sum(per_class.values())
    return {"out_dir": str(out), "images": images, "per_class": per_class, "subjects": n_subjects,
            "sequences": len(sequences), "frames": frames, "seed": seed, "size": size, "layout": layout,
            "removed_stale": removed, "seconds": round(seconds, 3),
            "images_per_second": round(images / seconds, 1) if seconds > 0 else None}
