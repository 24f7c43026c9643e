#!/usr/bin/env python3
"""Write a synthetic face set in a data.layout (default the CK+ folder layout,
``<out>/<class>/S###_###_########.png``), outside Snakemake (the rule synthesize_faces writes
results/synthetic/ from the config's `synthetic:` section, data.classes and data.layout).

    .venv/bin/python tools/make_synthetic.py OUT --subjects 60 --seed 0 [--frames 3] [--jitter 1.0]
        [--classes angry,disgust,fear,happy,sad,surprise,neutral] [--layout split-folders|fer2013-csv] ...

Defaults: the `synthetic:` section of config/config.yaml (subjects, seed, frames, jitter) and its data.classes
and data.layout.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from fer import config as fer_config
from fer.data import synthetic


def main(argv=None) -> dict:
    defaults = fer_config.defaults()
    d = defaults["synthetic"]
    ap = argparse.ArgumentParser(description="Write procedurally drawn 48x48 faces (the 7 CK+ expressions and "
                                             "neutral) in a data.layout (default <out>/<class>/S###_###_########.png).")
    ap.add_argument("out", help="output folder (class folders are created inside)")
    ap.add_argument("--subjects", type=int, default=d["subjects"],
                    help="number of subjects (about 2.8 sequences x FRAMES images each; default %(default)s)")
    ap.add_argument("--seed", type=int, default=d["seed"], help="random seed (default %(default)s)")
    ap.add_argument("--frames", type=int, default=d["frames"],
                    help="images per sequence, rising intensity (default %(default)s)")
    ap.add_argument("--jitter", type=float, default=d["jitter"],
                    help="scale of pose/lighting variation, 0 = frontal and evenly lit (default %(default)s)")
    ap.add_argument("--classes", default=",".join(defaults["data"]["classes"]),
                    help=f"comma-separated names of {', '.join(synthetic.DRAWABLE)} or their spellings "
                         "(default %(default)s)")
    ap.add_argument("--layout", default=defaults["data"]["layout"], choices=synthetic.LAYOUTS,
                    help="class-folders, split-folders (<out>/<split>/<class>/) or fer2013-csv (<out>/fer2013.csv; "
                         "default %(default)s)")
    ap.add_argument("--clean", action="store_true",
                    help="first delete generator-named PNGs already in OUT's class folders")
    ap.add_argument("--stats", help="also write the statistics JSON to this file")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        stats = synthetic.generate(a.out, n_subjects=a.subjects, seed=a.seed, frames=a.frames, jitter=a.jitter,
                                   classes=tuple(c.strip() for c in a.classes.split(",") if c.strip()),
                                   clean_first=a.clean, progress=not a.no_progress, layout=a.layout)
    except ValueError as exc:
        ap.error(str(exc))
    if a.stats:
        synthetic.write_stats(a.stats, stats)
    print(json.dumps(stats, indent=2))
    return stats


if __name__ == "__main__":
    main()
