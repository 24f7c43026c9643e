"""Scale check on one machine: a FER2013-sized synthetic set through data preparation and training.

    .venv/bin/python bench/scale.py [--images 35887] [--out /tmp/fer-scale] [--threads 2]
                                    [--train-limit N] [--steps a,b,...] [--reuse]

Steps, each in its own child process (peak memory = that child's ``ru_maxrss`` from ``os.wait4``, which
includes the processes it waited for, e.g. a Snakemake job):

1. ``synthesize``: tools/make_synthetic.py writes about ``--images`` faces (FER2013 has 35,887) in the
   CK+ folder layout.
2. ``prepare_data``: the real rule, through Snakemake, in a copy of the workflow whose config reads that
   folder (``data.source: folder``), so the DAG with one input per image is part of the measurement.
3. ``train_teacher``, ``train_student_kd``, ``train_student_scratch``: one epoch each of the models in
   config/config.yaml (``models:`` and ``train:`` batch size and learning rate, no warm-up), through
   :func:`fer.stages.train.train_teacher` / :func:`fer.stages.train.train_student`, the functions the training
   rules call, on the prepared set (the KD student learns from the teacher of step ``train_teacher``).
   Throughput is the training loop's images/s (the ``images_per_s`` column of the training history; the per-epoch
   validation pass is not included). ``--train-limit N`` trains on a random N of the training images only
   (the whole data set is still loaded and validated on), for a quicker throughput figure on a slow machine.

Prints a table and writes OUT/bench_scale.json. The 1-minute load average before and after each step is
recorded: on a shared machine the times are only as good as the machine was idle.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from fer import config as fer_config
from fer.data import datasets, synthetic

ROOT = fer_config.REPO

WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "envs", "report", "profiles")
FER2013_IMAGES = 35887

# One training step in a child process: args = {"threads", "limit", "step", "kwargs"}; kwargs holds the config
# sections as mappings, turned into the typed sections the stage functions take.
TRAIN_CHILD = r"""
import json, sys, time
import torch
from fer.data import datasets
from fer.settings import KD, Arch, Augment, TrainHP
from fer.stages import train
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
limit = args["limit"]
if limit:
    _subset = datasets.subset
    def capped(ds, split):
        x, y = _subset(ds, split)
        if split != "train" or limit >= len(x):
            return x, y
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:limit].sort().values
        return x[keep], y[keep]  # a random subset: the set is stored class by class
    datasets.subset = capped
kw = dict(args["kwargs"], arch=Arch.of(args["kwargs"]["arch"]), hp=TrainHP.of(args["kwargs"]["hp"]),
          augment=Augment.of(args["kwargs"]["augment"]))
t0 = time.perf_counter()
if args["step"] == "train_teacher":
    train.train_teacher(**kw)
else:
    kw["kd"] = KD.of(kw["kd"]) if kw["kd"] else None
    train.train_student(**kw)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def run_step(name: str, cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> dict:
    """Run ``cmd`` as a child process; wall time, exit status, peak RSS (MiB) and load averages."""
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    res = {"step": name, "seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
           "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "exit": proc.returncode,
           "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2), "log": str(log)}
    print(f"  {name:<24} {seconds:8.1f} s wall  {res['cpu_seconds']:8.1f} s CPU  peak RSS {res['peak_rss_mib']:7.1f} MiB"
          f"  (load {res['load_before']}->{res['load_after']})", flush=True)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"step {name} failed (exit {proc.returncode}); end of {log}:\n{tail}")
    return res


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def subjects_for(images: int, frames: int) -> int:
    per_subject = frames * sum(synthetic.CKPLUS_RATES.values())  # expected sequences per subject x frames
    return max(3, math.ceil(images / per_subject))


def count_images(folder: Path) -> int:
    return sum(1 for p in folder.glob("*/*.png"))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=FER2013_IMAGES, help="about this many images (default FER2013's)")
    ap.add_argument("--frames", type=int, default=3, help="images per synthetic sequence")
    ap.add_argument("--out", type=Path, default=Path("/tmp/fer-scale"), help="work folder (default %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training (config threads)")
    ap.add_argument("--train-limit", type=int, default=0, help="train on the first N training images only")
    ap.add_argument("--steps", default="synthesize,prepare_data,train_teacher,train_student_kd,train_student_scratch",
                    help="comma-separated steps to run (default: all)")
    ap.add_argument("--reuse", action="store_true", help="keep an existing synthetic set / prepared data")
    a = ap.parse_args(argv)

    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    faces, wf = out / "faces", out / "wf"
    steps = [s.strip() for s in a.steps.split(",") if s.strip()]
    py = sys.executable
    env = {**os.environ, "PATH": f"{Path(py).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    report = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()},
              "images_requested": a.images, "threads": a.threads, "train_limit": a.train_limit, "steps": []}
    print(f"bench_scale: {a.images} images in {out} ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})")

    # 1. synthetic faces
    if "synthesize" in steps and not (a.reuse and faces.is_dir() and count_images(faces)):
        shutil.rmtree(faces, ignore_errors=True)
        subjects = subjects_for(a.images, a.frames)
        r = run_step("synthesize", [py, str(ROOT / "tools" / "make_synthetic.py"), str(faces), "--subjects", str(subjects),
                                    "--frames", str(a.frames), "--seed", "0", "--no-progress",
                                    "--stats", str(out / "synthetic_stats.json")], out, out / "synthesize.log", env)
        r["subjects"] = subjects
        report["steps"].append(r)
        save(report, out)
    n_images = count_images(faces)
    report["images"] = n_images
    print(f"  {n_images} images in {faces}")

    # 2. the prepare_data rule through Snakemake, reading the folder
    if "prepare_data" in steps and wf.exists() and not a.reuse:
        shutil.rmtree(wf)
    copy_workflow(wf)
    cfg = {"data": {"source": "folder", "path": str(faces)}, "threads": a.threads}
    (out / "scale.yaml").write_text(yaml.safe_dump(cfg))
    dataset = wf / "results" / "data" / "dataset.pt"
    if "prepare_data" in steps and not (a.reuse and dataset.is_file()):
        r = run_step("prepare_data (snakemake)", [py, "-m", "snakemake", "results/data/dataset.pt", "--cores",
                                                  str(a.threads), "--configfile", str(out / "scale.yaml")],
                     wf, out / "prepare_data.log", env)
        report["steps"].append(r)
        save(report, out)
    if not any(s.startswith("train_") for s in steps):
        save(report, out)
        return report
    if not dataset.is_file():
        raise SystemExit(f"{dataset} is missing: run the prepare_data step first")

    ds = datasets.load_prepared(dataset)
    split_sizes = {s: int((ds["split"] == i).sum()) for i, s in enumerate(("train", "val", "test"))}
    report["split"] = split_sizes
    report["dataset_file_mib"] = round(dataset.stat().st_size / 2**20, 1)
    del ds
    print(f"  split {split_sizes}, dataset file {report['dataset_file_mib']} MiB")

    # 3. one epoch of each model, through the training rules' functions
    config = fer_config.validate(fer_config.merge(yaml.safe_load((wf / "config" / "config.yaml").read_text()), cfg),
                                 wf / "config" / "schema.yaml", wf)
    jobs = {
        "train_teacher": ("teacher", "teacher", None),
        "train_student_kd": ("kd", "student", out / "models" / "teacher.pt"),
        "train_student_scratch": ("scratch", "student", None),
    }
    for step, (variant, role, teacher) in jobs.items():
        if step not in steps:
            continue
        if teacher is not None and not teacher.is_file():
            raise SystemExit(f"{step} needs {teacher}: run train_teacher first")
        hp = dict(config["train"][role], epochs=1, warmup_epochs=0)
        kwargs = {"dataset": str(dataset), "arch": config["models"][role], "hp": hp, "augment": config["augment"],
                  "seed": config["seed"], "precision": config["train"]["precision"],
                  "device": config["train"]["device"], "checkpoint": str(out / "models" / f"{variant}.ckpt"),
                  "out_weights": str(out / "models" / f"{variant}.pt"),
                  "out_history": str(out / "models" / f"{variant}.csv"),
                  "out_plot": str(out / "models" / f"{variant}.png")}
        if step != "train_teacher":
            kwargs.update(variant=variant, teacher=str(teacher) if teacher else None,
                          kd=config["kd"] if teacher else None, out_teacher_logits=None)
        (out / "models").mkdir(exist_ok=True)
        Path(kwargs["checkpoint"]).unlink(missing_ok=True)
        args = json.dumps({"threads": a.threads, "limit": a.train_limit, "step": step, "kwargs": kwargs})
        r = run_step(step, [py, "-c", TRAIN_CHILD, args], out, out / f"{step}.log", env)
        with open(kwargs["out_history"], newline="") as fh:
            row = next(csv.DictReader(fh))
        r.update({"train_images": split_sizes["train"] if not a.train_limit else min(a.train_limit, split_sizes["train"]),
                  "images_per_s": round(float(row["images_per_s"]), 1), "epoch_seconds": round(float(row["seconds"]), 1),
                  "batch_size": hp["batch_size"], "arch": config["models"][role]})
        r["full_epoch_seconds_estimate"] = round(split_sizes["train"] / r["images_per_s"], 1)
        print(f"  {'':<22} {r['images_per_s']} training images/s (batch {hp['batch_size']}); a full epoch of "
              f"{split_sizes['train']} images ~ {r['full_epoch_seconds_estimate']} s", flush=True)
        report["steps"].append(r)
        save(report, out)

    save(report, out)
    print(f"wrote {out / 'bench_scale.json'}")
    return report


def save(report: dict, out: Path) -> None:
    """OUT/bench_scale.json, merged with the steps of an earlier run (``--steps`` runs one part at a time)."""
    path = out / "bench_scale.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    names = {s["step"] for s in report["steps"]}
    merged = {**old, **report, "steps": [s for s in old.get("steps", []) if s["step"] not in names] + report["steps"]}
    path.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    main()
