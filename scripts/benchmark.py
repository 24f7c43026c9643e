"""Rule benchmark: one variant on one runtime on this machine -> results/benchmarks/<variant>_<runtime>.json
(fer.stages.benchmark.benchmark)."""
from fer.settings import Benchmark
from fer.stages.benchmark import benchmark
from fer.stages.runner import run


def main(sm, log):
    benchmark(variant=sm.wildcards.variant, runtime=sm.wildcards.runtime, weights=sm.input.weights,
              onnx=sm.input.get("onnx"), onnx_info=sm.input.get("info"), settings=Benchmark.of(sm.params.benchmark),
              out_json=sm.output.json)


run(snakemake, main)  # noqa: F821
