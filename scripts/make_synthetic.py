"""Write a synthetic face set in the CK+ folder layout (``<out>/<class>/S###_###_########.png``).

As a Snakemake rule script it reads ``snakemake.params`` (either one ``cfg`` dict, normally
``config["synthetic"]``, or the keys below as separate params; separate params win), writes into
``snakemake.output[0]`` (a ``directory()``), optionally the statistics JSON into ``snakemake.output.stats``,
and logs to ``snakemake.log[0]``.

From the command line::

    python scripts/make_synthetic.py OUT --subjects 60 --seed 0 [--frames 3] [--jitter 1.0] ...

Keys (config ``synthetic:``): subjects, seed, frames, size, supersample, jitter, classes, rates, batch.
"""

import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import CLASSES, synthetic  # noqa: E402

DEFAULTS = {"subjects": 60, "seed": 0, "frames": 3, "size": 48, "supersample": 2, "jitter": 1.0,
            "classes": list(CLASSES), "rates": {}, "batch": 64}

log = logging.getLogger("make_synthetic")


def run(out_dir, cfg: dict, progress=True, clean_first=False) -> dict:
    """Generate with config-style keys (missing keys take :data:`DEFAULTS`)."""
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown synthetic option(s) {unknown}; expected {sorted(DEFAULTS)}")
    c = dict(DEFAULTS, **{k: v for k, v in cfg.items() if v is not None})
    log.info("synthetic faces -> %s with %s", out_dir, json.dumps(c, sort_keys=True))
    stats = synthetic.generate(out_dir, n_subjects=int(c["subjects"]), seed=int(c["seed"]),
                               size=int(c["size"]), frames=int(c["frames"]), classes=tuple(c["classes"]),
                               supersample=int(c["supersample"]), jitter=float(c["jitter"]),
                               rates=dict(c["rates"] or {}), batch=int(c["batch"]), clean_first=clean_first,
                               progress=progress)
    log.info("done: %s", json.dumps(stats))
    return stats


def from_snakemake(smk) -> dict:
    handler = logging.FileHandler(smk.log[0], mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    params = dict(smk.params.items())
    cfg = dict(params.pop("cfg", None) or {})
    cfg.update(params)
    try:
        # tqdm only when stderr is a terminal (progress=None), so parallel jobs do not garble the console.
        stats = run(smk.output[0], cfg, progress=None)
        if "stats" in smk.output.keys():
            synthetic.write_stats(smk.output.stats, stats)
        from fer import rule

        rule.record_provenance(smk, log)
        return stats
    except Exception:
        log.exception("synthetic data generation failed")
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description="Write procedurally drawn 48x48 faces for the 7 CK+ expressions "
                                             "in the CK+ folder layout (<out>/<class>/S###_###_########.png).")
    ap.add_argument("out", help="output folder (class folders are created inside)")
    ap.add_argument("--subjects", type=int, default=DEFAULTS["subjects"],
                    help="number of subjects (about 2.8 sequences x FRAMES images each; default %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="random seed (default %(default)s)")
    ap.add_argument("--frames", type=int, default=DEFAULTS["frames"],
                    help="images per sequence, rising intensity (default %(default)s)")
    ap.add_argument("--size", type=int, default=DEFAULTS["size"], help="image side in pixels (default %(default)s)")
    ap.add_argument("--supersample", type=int, default=DEFAULTS["supersample"],
                    help="anti-aliasing factor (default %(default)s)")
    ap.add_argument("--jitter", type=float, default=DEFAULTS["jitter"],
                    help="scale of pose/lighting variation, 0 = frontal and evenly lit (default %(default)s)")
    ap.add_argument("--classes", default=",".join(CLASSES),
                    help="comma-separated subset of %(default)s")
    ap.add_argument("--batch", type=int, default=DEFAULTS["batch"], help="images per drawing batch")
    ap.add_argument("--clean", action="store_true",
                    help="first delete generator-named PNGs already in OUT's class folders")
    ap.add_argument("--stats", help="also write the statistics JSON to this file")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cfg = {"subjects": a.subjects, "seed": a.seed, "frames": a.frames, "size": a.size,
           "supersample": a.supersample, "jitter": a.jitter, "batch": a.batch,
           "classes": [c.strip() for c in a.classes.split(",") if c.strip()]}
    stats = run(a.out, cfg, progress=not a.no_progress, clean_first=a.clean)
    if a.stats:
        synthetic.write_stats(a.stats, stats)
    print(json.dumps(stats, indent=2))
    return stats


if __name__ == "__main__":
    if "snakemake" in globals():
        from_snakemake(snakemake)  # noqa: F821
    else:
        main()
