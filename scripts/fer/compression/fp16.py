"""FP16 variants (``fp16_<base>``): a float student with BN folded into its convs and every weight rounded to
float16.

Why folded first: a deployment ships the folded network (the ONNX exporter folds BN too), and rounding the
folded weights is what makes the checkpoint, the PyTorch model and the ONNX graph hold the same numbers. The
checkpoint stores the float16 tensors themselves (2 bytes per parameter on disk); loading them into the fp32
:class:`fer.models.nets.FERNet` (``batchnorm=False``) is exact, so PyTorch computes in fp32 on fp16-rounded
weights, which is what the exported graph computes on a runtime without fp16 kernels
(:func:`fer.deploy.onnx_export.to_fp16_graph`: float16 initializers, each followed by a Cast to float).
"""
from __future__ import annotations

import torch

from fer.compression import quantize
from fer.models import nets

# the checkpoint's "fp16" entry: what the weights are and how the exported graph computes
INFO = {"weights": "float16", "bn": "folded into the convs",
        "compute": "fp32 on the fp16 weights (Cast nodes) unless the runtime computes in fp16 (TensorRT --fp16)"}


def to_fp16(model: nets.FERNet) -> tuple[dict, dict]:
    """``(arch, state_dict)`` of ``model`` with BN folded and every tensor float16; ``arch`` has
    ``"batchnorm": False``."""
    if not isinstance(model, nets.FERNet) or model.arch.get("batchnorm") is False:
        raise ValueError("fp16 conversion needs a float FERNet with BatchNorm (kd or a pr_kd_* variant)")
    arch = {**nets.current_arch(model), "batchnorm": False}
    state = {k: v.to(torch.float16) for k, v in quantize.fold_bn_state_dict(model).items()}
    return arch, state


def rounded_model(model: nets.FERNet) -> nets.FERNet:
    """The fp32 FERNet (no BN) holding ``model``'s folded weights rounded to float16 (eval mode)."""
    arch, state = to_fp16(model)
    out = nets.build(arch)
    out.load_state_dict(state)
    return out.eval()
