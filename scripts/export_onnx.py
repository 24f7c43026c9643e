"""Rule export_onnx: weights/<variant>.pt -> results/onnx/<variant>.onnx (float, QCDQ or fake-quant) + JSON sidecar."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import export, rule  # noqa: E402


def main(sm, log):
    p = sm.params
    export.export_rule(variant=sm.wildcards.variant, weights=sm.input.weights, dataset=sm.input.dataset,
                       out_onnx=sm.output.onnx, out_json=sm.output.info, opset=int(p.opset),
                       qcdq_bits=list(p.qcdq_bits))


rule.run(snakemake, main)  # noqa: F821
