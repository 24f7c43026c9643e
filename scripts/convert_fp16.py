"""Rule convert_fp16: weights/<base>.pt (kd or pr_kd_<level>) -> BN folded, float16 weights ->
weights/fp16_<base>.pt (fer.stages.compress.convert_fp16)."""
from fer.stages.compress import convert_fp16
from fer.stages.runner import run


def main(sm, log):
    convert_fp16(variant=sm.params.variant, base=sm.params.base, source=sm.input.source,
                 out_weights=sm.output.weights)


run(snakemake, main)  # noqa: F821
