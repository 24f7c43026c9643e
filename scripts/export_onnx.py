"""Rule export_onnx: weights/<variant>.pt -> results/onnx/<variant>.onnx + JSON sidecar
(fer.stages.compress.export_onnx)."""
from fer.stages.compress import export_onnx
from fer.stages.runner import run


def main(sm, log):
    export_onnx(variant=sm.wildcards.variant, weights=sm.input.weights, dataset=sm.input.dataset,
                out_onnx=sm.output.onnx, out_json=sm.output.info, opset=int(sm.params.opset),
                qcdq_bits=list(sm.params.qcdq_bits))


run(snakemake, main)  # noqa: F821
