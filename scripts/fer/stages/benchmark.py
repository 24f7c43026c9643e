"""Rules benchmark (one variant on one runtime on this machine) and benchmark_jetson (every variant's ONNX graph
on a Jetson over SSH; an empty table when no host is configured)."""
from __future__ import annotations

import logging

from fer.deploy import jetson, latency
from fer.settings import Benchmark, Jetson

log = logging.getLogger("fer")


def benchmark(*, variant: str, runtime: str, weights, onnx, onnx_info, settings: Benchmark, out_json) -> dict:
    """Rule benchmark: batch-1 latency of ``variant`` on ``runtime`` -> results/benchmarks/<variant>_<runtime>.json."""
    row = latency.benchmark(variant, runtime, weights, onnx, runs=settings.runs, warmup=settings.warmup,
                            threads=settings.threads, pin=settings.pin, onnx_info=onnx_info,
                            realtime=settings.realtime)
    latency.write_result(out_json, row)
    return row


def benchmark_jetson(*, models, settings: Jetson, out_csv, out_json, echo) -> dict:
    """Rule benchmark_jetson: skip (with an empty table) when no host is set, else benchmark on the device.

    ``echo`` receives the one-line status for stdout. A :class:`fer.errors.JetsonError` propagates and no output
    is written, so the rule fails and nothing else is touched.
    """
    if not settings.host:
        result = jetson.skipped_result()
        log.info("%s", jetson.SKIP_MESSAGE)
        echo(jetson.SKIP_MESSAGE)
    else:
        result = jetson.benchmark(models, settings)
        log.info("jetson: %s", result["message"])
        echo(f"jetson: {result['message']}")
    jetson.write_outputs(result, out_csv, out_json)
    return result
