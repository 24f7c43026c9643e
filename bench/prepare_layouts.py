"""Data preparation at FER2013's size in every data.layout: wall time and peak memory.

    .venv/bin/python bench/prepare_layouts.py [--images 35887] [--layouts class-folders,split-folders,fer2013-csv]
                                              [--out /tmp/fer-layouts] [--reuse] [--snakemake]

For each layout:

1. ``synthesize`` (not timed against the goal): the built-in faces (:func:`fer.data.synthetic.generate`) write
   exactly ``--images`` images (FER2013 has 35,887) labelled with FER2013's seven classes in the class-folders
   layout, once; the other layouts are made from those same images (split-folders: hard links, 14:3:3 subjects
   in train/val/test by :func:`fer.data.synthetic.split_of` as the generator does; fer2013-csv: one fer2013.csv,
   ~290 MB like the real one, FER2013's codes and Usage), so every layout holds the same pixels.
2. ``prepare``: :func:`fer.stages.data.prepare_data`, the function rule prepare_data's script calls, in its own
   child process (``python -c``), so the figures are one job's: wall time from start to exit (imports
   included), peak resident memory = the child's ``ru_maxrss`` from ``os.wait4``. With ``--snakemake`` also the
   real rule through Snakemake in a copy of the workflow (the DAG with one input file per image included; peak
   memory is then the largest of Snakemake's and the job's processes).

The goal (issue 11): <= 60 s and <= 500 MiB peak per layout on this machine. The 1-minute load average before
and after each step is printed: on a shared machine the times are only as good as the machine was idle.
Writes OUT/bench_prepare_layouts.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import yaml

from fer import config as fer_config
from fer.data import classes as class_names
from fer.data import fer2013, synthetic

ROOT = fer_config.REPO
FER2013_IMAGES = 35887
FER2013_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
GOAL_SECONDS, GOAL_MIB = 60, 500
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "envs", "report", "profiles")

PREPARE_CHILD = r"""
import json, logging, sys
from fer.settings import Split
from fer.stages.data import prepare_data
a = json.loads(sys.argv[1])
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
stats = prepare_data(root=a["root"], test_root="", split=Split.of(a["split"]), classes=a["classes"],
                     layout=a["layout"], out_dataset=a["out"] + "/dataset.pt", out_manifest=a["out"] + "/manifest.csv")
print(json.dumps({s: v["images"] for s, v in stats.items()}))
"""


def measure(name: str, cmd: list[str], cwd: Path, log: Path) -> dict:
    """Run ``cmd`` as a child; its wall time, CPU time, peak RSS (MiB), exit status and load averages."""
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    res = {"step": name, "seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
           "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "exit": os.waitstatus_to_exitcode(status),
           "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2), "log": str(log)}
    print(f"  {name:<34} {seconds:7.1f} s wall {res['cpu_seconds']:7.1f} s CPU  peak RSS {res['peak_rss_mib']:7.1f} MiB"
          f"  (load {res['load_before']}->{res['load_after']})", flush=True)
    if res["exit"] != 0:
        raise SystemExit(f"{name} failed (exit {res['exit']}); end of {log}:\n{log.read_text(errors='replace')[-3000:]}")
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=FER2013_IMAGES, help="images per set (default FER2013's)")
    ap.add_argument("--layouts", default=",".join(synthetic.LAYOUTS), help="comma-separated (default: all)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/fer-layouts"), help="work folder (default %(default)s)")
    ap.add_argument("--reuse", action="store_true", help="keep a synthetic set already written")
    ap.add_argument("--snakemake", action="store_true", help="also run rule prepare_data through Snakemake")
    a = ap.parse_args(argv)
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    split = fer_config.defaults()["data"]["split"]
    report = {"images": a.images, "cpu_count": os.cpu_count(), "goal": {"seconds": GOAL_SECONDS, "mib": GOAL_MIB},
              "runs": []}
    print(f"prepare_layouts: {a.images} images per layout in {out} ({os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f})")
    source = out / "class-folders" / "faces"
    fresh = False  # the class-folders set was written by this run
    for layout in [x.strip() for x in a.layouts.split(",") if x.strip()]:
        faces = out / layout / "faces"
        root = faces / "fer2013.csv" if layout == "fer2013-csv" else faces
        stats_file = out / layout / "synthetic.json"
        if not (a.reuse and stats_file.is_file()):
            t0 = time.perf_counter()
            if not (out / "class-folders" / "synthetic.json").is_file() or not (a.reuse or fresh):
                fresh = True
                shutil.rmtree(source, ignore_errors=True)
                stats = synthetic.generate(source, n_subjects=synthetic_subjects(a.images), seed=0,
                                           classes=FER2013_CLASSES, progress=False, max_images=a.images)
                synthetic.write_stats(out / "class-folders" / "synthetic.json", stats)
            if layout != "class-folders":
                shutil.rmtree(faces, ignore_errors=True)
                stats = derive(source, faces, layout)
                synthetic.write_stats(stats_file, stats)
            print(f"  {layout}: wrote {json.loads(stats_file.read_text())['images']} images in "
                  f"{time.perf_counter() - t0:.0f} s")
        stats = json.loads(stats_file.read_text())
        if stats["images"] != a.images:
            raise SystemExit(f"{layout}: the generator wrote {stats['images']} images, not {a.images}")
        work = out / layout / "prepared"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        args = {"root": str(root), "split": dict(split, folds=0), "classes": FER2013_CLASSES, "layout": layout,
                "out": str(work)}
        run = measure(f"{layout}: prepare_data (job)", [sys.executable, "-c", PREPARE_CHILD, json.dumps(args)], out,
                      out / layout / "prepare.log")
        run["split_images"] = json.loads(Path(run["log"]).read_text().strip().splitlines()[-1])
        run.update(layout=layout, images=stats["images"], within_goal=run["seconds"] <= GOAL_SECONDS
                   and run["peak_rss_mib"] <= GOAL_MIB)
        report["runs"].append(run)
        if a.snakemake:
            report["runs"].append(snakemake_run(out, layout, root))
    (out / "bench_prepare_layouts.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'bench_prepare_layouts.json'}")
    return report


def derive(source: Path, dest: Path, layout: str) -> dict:
    """The class-folders set ``source`` in ``layout`` at ``dest`` (the same images; see the module doc)."""
    pngs = sorted(source.glob("*/*.png"))
    split = [synthetic.split_of(int(p.name[1:p.name.index("_")])) for p in pngs]
    if layout == "split-folders":
        for p, s in zip(pngs, split):
            (dest / s / p.parent.name).mkdir(parents=True, exist_ok=True)
            os.link(p, dest / s / p.parent.name / p.name)
    else:
        usage = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
        fer2013.write(dest / "fer2013.csv", ((cv2.imread(str(p), cv2.IMREAD_GRAYSCALE),
                                              class_names.index_of(p.parent.name, class_names.FER2013_CODES),
                                              usage[s]) for p, s in zip(pngs, split)))
    return {"images": len(pngs), "layout": layout, "from": str(source)}


def synthetic_subjects(images: int, frames: int = 3) -> int:
    """Subjects enough for ``images`` (the generator stops at that many): expected images per subject of
    FER2013's classes, with a 10% margin."""
    per_subject = frames * sum(synthetic.RATES[c] for c in synthetic.DRAWABLE if c != "contempt")
    return int(images / per_subject * 1.1) + 3


def snakemake_run(out: Path, layout: str, root: Path) -> dict:
    """Rule prepare_data through Snakemake in a copy of the workflow reading ``root``."""
    wf = out / layout / "wf"
    shutil.rmtree(wf, ignore_errors=True)
    wf.mkdir(parents=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, wf / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, wf / part)
    cfg = {"data": {"source": "folder", "path": str(root), "layout": layout, "classes": FER2013_CLASSES,
                    "split": {"folds": 0}}}
    (wf / "bench.yaml").write_text(yaml.safe_dump(cfg))
    run = measure(f"{layout}: prepare_data (snakemake)", [sys.executable, "-m", "snakemake", "results/data/dataset.pt",
                                                          "--cores", "1", "--configfile=bench.yaml"], wf,
                  out / layout / "snakemake.log")
    run.update(layout=layout, via="snakemake")
    return run


if __name__ == "__main__":
    main()
