#!/usr/bin/env python3
"""Benchmark ONNX models on a Jetson over SSH, outside Snakemake (the rule benchmark_jetson does the same for
every variant of the study).

    .venv/bin/python tools/benchmark_jetson.py --host 192.168.1.20 --user nano --key ~/.ssh/id_ed25519 \\
        --runs 100 --csv jetson.csv --json jetson.json results/onnx/*.onnx

Every option's default is the `jetson:` section of config/config.yaml; the settings are validated like the
config (one line naming the option on a bad value). With no --host the tables are written with zero rows.
Exit status: 0 done (or skipped), 1 the benchmark failed (one `error:` line), 2 a bad option.
"""
from __future__ import annotations

import argparse
import logging
import sys

from fer import config as fer_config
from fer.errors import ConfigError, FERError
from fer.settings import Jetson
from fer.stages.benchmark import benchmark_jetson

RUNTIMES = ("auto", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt-fp32", "tensorrt-fp16")


def main(argv=None) -> int:
    defaults = fer_config.defaults()["jetson"]
    p = argparse.ArgumentParser(description="Benchmark ONNX models on a Jetson over SSH (defaults: config/config.yaml).")
    p.add_argument("models", nargs="+", help="ONNX files (variant = file stem) or variant=path")
    for key in ("host", "user", "key", "python", "workdir", "known_hosts", "trtexec"):
        p.add_argument("--" + key.replace("_", "-"), default=defaults[key])
    for key in ("port", "runs", "warmup", "threads", "connect_timeout"):
        p.add_argument("--" + key.replace("_", "-"), type=int, default=defaults[key])
    p.add_argument("--timeout", type=float, default=defaults["timeout"])
    p.add_argument("--runtimes", nargs="+", default=defaults["runtimes"], choices=RUNTIMES)
    p.add_argument("--csv", default="")
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    section = {k: getattr(a, k) for k in defaults}
    try:
        fer_config.load({"jetson": section})
    except ConfigError as exc:
        print(f"error: {str(exc).replace('config key jetson.', '--').replace('_', '-')}", file=sys.stderr)
        return 2
    pairs = [tuple(m.split("=", 1)) if "=" in m else m for m in a.models]
    try:
        benchmark_jetson(models=pairs, settings=Jetson.of(section), out_csv=a.csv or None, out_json=a.json or None,
                         echo=print)
    except FERError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
