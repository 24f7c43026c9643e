"""Rule benchmark_jetson: ONNX variants -> latency on a Jetson over SSH (results/benchmark/jetson.{csv,json}).

Snakemake: input ``onnx`` (results/onnx/<variant>.onnx, variant = file stem), params ``jetson`` (the config
section), outputs ``csv`` and ``json``, one log. With no ``jetson.host`` the outputs are written with zero rows
and "skipped: no jetson.host configured" goes to the log and stdout. A failure (unreachable host, refused
login, no runtime on the device ...) ends the job with a one-line message and exit code 1.

Outside Snakemake it is a small CLI::

    python scripts/benchmark_jetson.py --host 192.168.1.20 --user nano --key ~/.ssh/id_ed25519 \\
        --runs 100 --csv jetson.csv --json jetson.json results/onnx/*.onnx
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import jetson  # noqa: E402


def main(sm, log):
    onnx = list(sm.input.get("onnx", sm.input))
    jetson.run_rule(onnx, dict(sm.params.get("jetson", {}) or {}), sm.output.csv, sm.output.json,
                    echo=lambda msg: print(msg, flush=True))


def cli(argv=None) -> int:
    import argparse
    import logging

    p = argparse.ArgumentParser(description="Benchmark ONNX models on a Jetson over SSH.")
    p.add_argument("models", nargs="+", help="ONNX files (variant = file stem) or variant=path")
    for key in ("host", "user", "key", "python", "workdir", "known_hosts", "trtexec"):
        p.add_argument("--" + key.replace("_", "-"), default=jetson.DEFAULTS[key])
    for key in ("port", "runs", "warmup", "threads", "connect_timeout"):
        p.add_argument("--" + key.replace("_", "-"), type=int, default=jetson.DEFAULTS[key])
    p.add_argument("--timeout", type=float, default=jetson.DEFAULTS["timeout"])
    p.add_argument("--runtimes", nargs="+", default=jetson.DEFAULTS["runtimes"], choices=jetson.RUNTIME_CHOICES)
    p.add_argument("--csv", default="")
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pairs = [tuple(m.split("=", 1)) if "=" in m else m for m in a.models]
    cfg = {k: getattr(a, k) for k in jetson.DEFAULTS}
    try:
        jetson.run_rule(pairs, cfg, a.csv or None, a.json or None)
    except jetson.JetsonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if "snakemake" in globals():
    from fer import rule  # noqa: E402

    rule.run(snakemake, main)  # noqa: F821
elif __name__ == "__main__":
    sys.exit(cli())
