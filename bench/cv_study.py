"""Wall time of the whole cross-validated study (every fold, every variant, benchmarks, plots, report).

    .venv/bin/python bench/cv_study.py --data ../shared/datasets/ckplus-dev --workdir /tmp/cv-study \
        [--config override.yaml] [--cores 2] [--target all] [--profile-args ...]

Copies the workflow (the files git tracks) into ``--workdir`` (kept: its results/ are the study's results),
points ``data.path`` at ``--data`` (merged over ``--config``), runs ``snakemake --cores N`` there and prints
the wall time of the whole run, and per rule the number of jobs and their summed and longest wall time, read
from Snakemake's own log (the time between a job's start and its "Finished jobid" line, so process start-up
and imports are included). With ``--reuse`` an existing workdir is run again as it is (only what is out of
date reruns). The 1-minute load average before and after is printed: on a shared machine the figure is only
as good as the machine was idle.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")


def copy_workflow(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src, dst = REPO / name.decode(), dest / name.decode()
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
            dst.chmod(src.stat().st_mode)


def job_times(log_text: str) -> dict[str, list[float]]:
    """{rule: [seconds of each job]} from a Snakemake log."""
    now, starts, rule_of, out = None, {}, {}, collections.defaultdict(list)
    pending_rule = None
    for line in log_text.splitlines():
        if m := STAMP.match(line):
            now = dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := START.match(line):
            pending_rule = m.group(1)
        elif (m := JOBID.match(line)) and pending_rule:
            starts[m.group(1)], rule_of[m.group(1)] = now, pending_rule
            pending_rule = None
        elif (m := FINISHED.match(line)) and m.group(1) in starts and now is not None:
            out[rule_of[m.group(1)]].append((now - starts[m.group(1)]).total_seconds())
    return dict(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--config", help="override file merged over config/config.yaml")
    ap.add_argument("--cores", default="2")
    ap.add_argument("--target", default="all")
    ap.add_argument("--reuse", action="store_true", help="run an existing workdir again as it is")
    args, extra = ap.parse_known_args(argv)
    wd = args.workdir.resolve()
    if not args.reuse:
        if wd.exists() and any(wd.iterdir()):
            raise SystemExit(f"{wd} is not empty (use --reuse to run it again)")
        copy_workflow(wd)
        over = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
        over.setdefault("data", {})["path"] = str(Path(args.data).resolve())
        (wd / "study.yaml").write_text(yaml.safe_dump(over, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "snakemake", args.target, "--cores", args.cores, "--configfile", "study.yaml",
           *extra]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=wd, env=env)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    logs = sorted((wd / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    times = job_times(logs[-1].read_text()) if logs else {}
    print(f"\nstudy: {' '.join(cmd[1:])} in {wd}")
    print(f"exit code {proc.returncode}; wall time {wall / 60:.1f} min ({wall:.0f} s) on {os.cpu_count()} CPUs; "
          f"load average {load0:.2f} before, {load1:.2f} after")
    print(f"{'rule':28s} {'jobs':>5s} {'sum s':>8s} {'max s':>7s}")
    for rule, secs in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        print(f"{rule:28s} {len(secs):5d} {sum(secs):8.0f} {max(secs):7.0f}")
    (wd / "study_times.json").write_text(json.dumps({"wall_s": wall, "exit": proc.returncode, "cores": args.cores,
                                                      "load_before": load0, "load_after": load1, "jobs": times},
                                                     indent=1))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
