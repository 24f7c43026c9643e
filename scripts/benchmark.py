"""Rule benchmark: one variant on one runtime on this machine -> results/benchmarks/<variant>_<runtime>.json.

Snakemake: wildcards ``variant`` and ``runtime`` (pytorch | onnxruntime), inputs ``weights`` (and ``onnx`` for
onnxruntime), params ``runs``, ``warmup``, ``threads``, ``pin``, output ``json``, one log. See fer.bench for the
protocol. Outside Snakemake it is a small CLI that prints the row::

    python scripts/benchmark.py --variant kd --runtime onnxruntime --weights weights/kd.pt \\
        --onnx results/onnx/kd.onnx --runs 300 --warmup 50 --threads 1
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import bench  # noqa: E402


def main(sm, log):
    bench.run_rule(sm.wildcards.variant, sm.wildcards.runtime, sm.input.weights, sm.input.get("onnx"),
                   sm.output.json, runs=int(sm.params.runs), warmup=int(sm.params.warmup),
                   threads=int(sm.params.threads), pin=bool(sm.params.pin), onnx_info=sm.input.get("info"),
                   realtime=bool(sm.params.get("realtime", False)))


def cli(argv=None) -> int:
    import argparse
    import json
    import logging

    p = argparse.ArgumentParser(description="Batch-1 latency of one variant on this machine.")
    p.add_argument("--variant", required=True)
    p.add_argument("--runtime", choices=bench.RUNTIMES, default="onnxruntime")
    p.add_argument("--weights", required=True, help="the variant's checkpoint (weights/<variant>.pt)")
    p.add_argument("--onnx", help="the exported graph (results/onnx/<variant>.onnx), for onnxruntime")
    p.add_argument("--onnx-info", help="its export sidecar (results/onnx/<variant>.json), optional")
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-pin", action="store_true", help="do not pin the process to --threads cores")
    p.add_argument("--realtime", action="store_true", help="measure under SCHED_FIFO (needs root/CAP_SYS_NICE)")
    p.add_argument("--json", help="also write the result file here")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        row = bench.benchmark(a.variant, a.runtime, a.weights, a.onnx, runs=a.runs, warmup=a.warmup,
                              threads=a.threads, pin=not a.no_pin, onnx_info=a.onnx_info, realtime=a.realtime)
    except (bench.FERError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if a.json:
        bench.write_result(a.json, row)
    print(json.dumps(row, indent=2))
    return 0


if "snakemake" in globals():
    from fer import rule  # noqa: E402

    rule.run(snakemake, main)  # noqa: F821
elif __name__ == "__main__":
    sys.exit(cli())
