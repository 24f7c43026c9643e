#!/usr/bin/env python3
"""Batch-1 latency of one variant on this machine, outside Snakemake (rule benchmark does the same per
variant and runtime); prints the result row as JSON.

    .venv/bin/python tools/benchmark_variant.py --variant kd --runtime onnxruntime --weights weights/kd.pt \\
        --onnx results/onnx/kd.onnx [--runs 300 --warmup 50 --threads 1] [--json out.json]

Defaults: the `benchmark:` section of config/config.yaml. Exit status 0, or 1 with one `error:` line.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from fer import config as fer_config
from fer.deploy import latency
from fer.errors import FERError


def main(argv=None) -> int:
    d = fer_config.defaults()["benchmark"]
    p = argparse.ArgumentParser(description="Batch-1 latency of one variant on this machine.")
    p.add_argument("--variant", required=True)
    p.add_argument("--runtime", choices=latency.RUNTIMES, default="onnxruntime")
    p.add_argument("--weights", required=True, help="the variant's checkpoint (weights/<variant>.pt)")
    p.add_argument("--onnx", help="the exported graph (results/onnx/<variant>.onnx), for onnxruntime")
    p.add_argument("--onnx-info", help="its export sidecar (results/onnx/<variant>.json), optional")
    p.add_argument("--runs", type=int, default=d["runs"])
    p.add_argument("--warmup", type=int, default=d["warmup"])
    p.add_argument("--threads", type=int, default=d["threads"])
    p.add_argument("--no-pin", action="store_true", help="do not pin the process to --threads cores")
    p.add_argument("--realtime", action="store_true", help="measure under SCHED_FIFO (needs root/CAP_SYS_NICE)")
    p.add_argument("--json", help="also write the result file here")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        row = latency.benchmark(a.variant, a.runtime, a.weights, a.onnx, runs=a.runs, warmup=a.warmup,
                                threads=a.threads, pin=not a.no_pin, onnx_info=a.onnx_info, realtime=a.realtime)
    except (FERError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if a.json:
        latency.write_result(a.json, row)
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
