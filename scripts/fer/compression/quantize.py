"""Quantization of a float FERNet with brevitas: post-training (PTQ) and quantization-aware fine-tuning (QAT).

What is quantized (:class:`QuantFERNet`, the same layer names as :class:`fer.models.FERNet`):

- BatchNorm is folded into the preceding conv first (Conv->BN->ReLU), so every conv gains a bias;
- weights: symmetric signed integers, one scale per output channel, ``weight_bits`` wide (narrow range:
  at b bits the integers lie in [-(2^(b-1)-1), 2^(b-1)-1], at most 2^b - 1 distinct values per channel);
- activations: one scale per tensor, ``act_bits`` wide: the network input as signed integers, every ReLU
  output as unsigned integers;
- biases: int32 with the accumulator's scale (input scale x weight scale) when ``act_bits <= 8``; left in
  float at wider activations (a 32-bit bias quantizer on a 16-bit accumulator scale saturates).

PTQ: activation scales from ``calibration_batches`` training batches (percentile statistics), then bias
correction (the mean output shift each quantized layer causes is folded back into its bias). QAT: after
PTQ, fine-tune the quantized model with straight-through rounding, distilled from the teacher.

32 bits is the float reference: its checkpoint is the float model itself (no quantizers at all).

A quantized checkpoint is a normal ``fer-checkpoint`` whose ``arch`` is the float architecture (so MACs are
counted on the float twin) with a ``"quant"`` entry ``{"weight_bits", "act_bits", "bias_bits", "method",
...}``; its ``state_dict`` is the QuantFERNet's (folded float weights and learned activation scales). It
loads with ``torch.load(weights_only=True)`` and :func:`load_quantized`.
"""
from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from torch import nn

from fer import IMAGE_SIZE
from fer.data import preprocess
from fer.models import nets
from torch.nn.utils.fusion import fuse_conv_bn_weights

log = logging.getLogger("fer")

BITS = (32, 16, 8, 6, 4)
FLOAT_BITS = 32
MAX_INT_BITS = 16


# --------------------------------------------------------------------------------------------- BN folding
def fold_bn_state_dict(model: nets.FERNet) -> dict:
    """The float weights of ``model`` with every BatchNorm folded into its conv: keys of a QuantFERNet
    (``features.conv<i>.weight/bias``, ``classifier.fc1/fc2.weight/bias``)."""
    out = OrderedDict()
    convs = [n for n, _ in model.features.named_children() if n.startswith("conv")]
    for name in convs:
        conv = getattr(model.features, name)
        bn = getattr(model.features, name.replace("conv", "bn"))
        w, b = fuse_conv_bn_weights(conv.weight.detach(), None if conv.bias is None else conv.bias.detach(),
                                    bn.running_mean, bn.running_var, bn.eps, bn.weight.detach(), bn.bias.detach())
        out[f"features.{name}.weight"] = w.detach().clone()
        out[f"features.{name}.bias"] = b.detach().clone()
    for name in ("fc1", "fc2"):
        fc = getattr(model.classifier, name)
        out[f"classifier.{name}.weight"] = fc.weight.detach().clone()
        out[f"classifier.{name}.bias"] = fc.bias.detach().clone()
    return out


# ------------------------------------------------------------------------------------------------ model
class QuantFERNet(nn.Module):
    """The brevitas twin of a (possibly pruned) FERNet, with BN folded away."""

    def __init__(self, arch: dict, weight_bits: int, act_bits: int, bias_quant: bool | None = None):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import (Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int32Bias,
                                    Uint8ActPerTensorFloat)

        weight_bits, act_bits = int(weight_bits), int(act_bits)
        for what, b in (("weight", weight_bits), ("activation", act_bits)):
            if not 2 <= b <= MAX_INT_BITS:
                raise ValueError(f"{what} bit width must be in 2..{MAX_INT_BITS}, got {b}")
        if bias_quant is None:
            bias_quant = act_bits <= 8
        self.weight_bits, self.act_bits, self.bias_bits = weight_bits, act_bits, 32 if bias_quant else None
        self.arch = {**dict(arch), "weight_bits": weight_bits, "act_bits": act_bits, "bias_bits": self.bias_bits}
        bias = Int32Bias if bias_quant else None
        channels = [int(c) for c in arch["channels"]]
        in_ch, size = int(arch.get("in_channels", 1)), int(arch.get("in_size", IMAGE_SIZE))

        def wq(layer_cls, *args, **kw):
            return layer_cls(*args, bias=True, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=weight_bits,
                             bias_quant=bias, return_quant_tensor=False, **kw)

        def relu():
            return qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=act_bits, return_quant_tensor=True)

        self.quant_inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=act_bits,
                                           return_quant_tensor=True)
        layers = OrderedDict()
        prev = in_ch
        for i, c in enumerate(channels, start=1):
            layers[f"conv{i}"] = wq(qnn.QuantConv2d, prev, c, kernel_size=3, padding=1)
            layers[f"relu{i}"] = relu()
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            prev, size = c, size // 2
        self.features = nn.Sequential(layers)
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),
            ("fc1", wq(qnn.QuantLinear, prev * size * size, int(arch["hidden"]))),
            ("relu", relu()),
            ("dropout", nn.Dropout(float(arch.get("dropout", 0.0)))),
            ("fc2", wq(qnn.QuantLinear, int(arch["hidden"]), int(arch["num_classes"]))),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.quant_inp(x)))

    def quant_layers(self):
        """``(name, layer)`` of every weight-quantized layer, in forward order."""
        import brevitas.nn as qnn

        return [(n, m) for n, m in self.named_modules() if isinstance(m, (qnn.QuantConv2d, qnn.QuantLinear))]

    def act_quantizers(self):
        """``(name, module)`` of every activation quantizer (QuantIdentity / QuantReLU), in forward order."""
        import brevitas.nn as qnn

        return [(n, m) for n, m in self.named_modules() if isinstance(m, (qnn.QuantIdentity, qnn.QuantReLU))]


def from_float(model: nets.FERNet, weight_bits: int, act_bits: int) -> QuantFERNet:
    """An uncalibrated QuantFERNet holding ``model``'s BN-folded weights."""
    q = QuantFERNet(nets.current_arch(model), weight_bits, act_bits)
    missing, unexpected = q.load_state_dict(fold_bn_state_dict(model), strict=False)
    wrong = [k for k in missing if not k.endswith("scaling_impl.value")] + list(unexpected)
    if wrong:
        raise RuntimeError(f"BN-folded weights do not fit the quantized model: {wrong}")
    return q.eval()


# ------------------------------------------------------------------------------------------------- PTQ
def _batches(x_u8: torch.Tensor, batches: int, batch_size: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x_u8), generator=gen)
    n = min(len(x_u8), max(1, batches) * batch_size)
    for i in range(0, n, batch_size):
        yield preprocess.to_tensor(x_u8[perm[i:i + batch_size]])


def ptq(model: nets.FERNet, calib_u8: torch.Tensor, *, weight_bits: int, act_bits: int, batches: int = 16,
        batch_size: int = 64, bias_correction: bool = True, seed: int = 0) -> QuantFERNet:
    """Post-training quantization: fold BN, calibrate activation scales on ``batches`` batches of
    ``calib_u8`` (uint8 training images, no augmentation) and apply bias correction."""
    from brevitas.graph.calibrate import bias_correction_mode, calibration_mode

    q = from_float(model, weight_bits, act_bits)
    q.eval()
    with torch.no_grad(), calibration_mode(q):
        for x in _batches(calib_u8, batches, batch_size, seed):
            q(x)
    if bias_correction:
        with torch.no_grad(), bias_correction_mode(q):
            for x in _batches(calib_u8, batches, batch_size, seed + 1):
                q(x)
    return q.eval()


# ----------------------------------------------------------------------------------------- checkpoints
def quant_info(weight_bits: int, act_bits: int, method: str, **extra) -> dict:
    """The checkpoint's ``"quant"`` entry."""
    weight_bits = int(weight_bits)
    if weight_bits >= FLOAT_BITS:
        return {"weight_bits": FLOAT_BITS, "act_bits": FLOAT_BITS, "bias_bits": FLOAT_BITS, "method": "float",
                **extra}
    return {"weight_bits": weight_bits, "act_bits": int(act_bits), "bias_bits": 32 if int(act_bits) <= 8 else None,
            "method": method, "weight_quant": "per-channel symmetric int (narrow range), scale = max|w|",
            "act_quant": "per-tensor (input signed, ReLU outputs unsigned), percentile calibration", **extra}


def load_quantized(ckpt: dict) -> nn.Module:
    """Rebuild the model of a checkpoint with a ``"quant"`` entry (eval mode)."""
    q = ckpt["quant"]
    if int(q["weight_bits"]) >= FLOAT_BITS:
        model = nets.build(ckpt["arch"])
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()
    model = QuantFERNet(ckpt["arch"], q["weight_bits"], q["act_bits"], bias_quant=q.get("bias_bits") is not None)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def int_weights(layer) -> torch.Tensor:
    """The integer weights of a quantized layer (as a float tensor of integers)."""
    with torch.no_grad():
        return layer.quant_weight().int().float()


# ------------------------------------------------------------------------------------------------ rule
def resolve_act_bits(weight_bits: int, act_bits) -> int:
    """Activation width for a weight width: ``"same"`` (or None/0) means the weight width."""
    if act_bits in (None, 0, "same"):
        return int(weight_bits)
    return int(act_bits)
