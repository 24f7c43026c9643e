"""Rule benchmark_jetson: every variant's ONNX graph -> latency on a Jetson over SSH
(results/benchmarks/jetson.{csv,json}; fer.stages.benchmark.benchmark_jetson). With no jetson.host the tables
are written with zero rows."""
from fer.settings import Jetson
from fer.stages.benchmark import benchmark_jetson
from fer.stages.runner import run


def main(sm, log):
    benchmark_jetson(models=list(sm.input.get("onnx", [])), settings=Jetson.of(sm.params.jetson),
                     out_csv=sm.output.csv, out_json=sm.output.json, echo=lambda msg: print(msg, flush=True))


run(snakemake, main)  # noqa: F821
