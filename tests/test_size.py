"""Deployed model size: bit-packed weights + scales + zero-points + biases, counted by hand on a tiny model."""
from __future__ import annotations

import math

import pytest
import torch

from fer import checkpoints
from fer.models import nets
from fer.compression import quantize, size

from fer import config as fer_config
STUDENT_ARCH = fer_config.defaults()["models"]["student"]  # the default widths, from config/config.yaml

TINY = {"channels": [2, 3, 4], "hidden": 5, "dropout": 0.0}  # 48x48 input -> 4 x 6 x 6 = 144 features


def _tiny_quant(bits: int) -> quantize.QuantFERNet:
    torch.manual_seed(0)
    m = nets.FERNet(**TINY).eval()
    calib = (torch.rand(40, 48, 48) * 255).to(torch.uint8)
    return quantize.ptq(m, calib, weight_bits=bits, act_bits=bits, batches=1, batch_size=40)


def test_float_size_counts_bn_folded_parameters():
    m = nets.FERNet(**TINY)
    # conv weights + one bias per channel (BN folded) ; fc weights + biases
    by_hand = (2 * 1 * 9 + 2) + (3 * 2 * 9 + 3) + (4 * 3 * 9 + 4) + (5 * 144 + 5) + (7 * 5 + 7)
    assert size.float_param_count(m) == by_hand == 956
    assert size.float_size_bytes(m) == 4 * 956


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_packed_size_by_hand(bits):
    q = _tiny_quant(bits)
    weights = [2 * 1 * 9, 3 * 2 * 9, 4 * 3 * 9, 5 * 144, 7 * 5]  # 18, 54, 108, 720, 35
    out_channels = [2, 3, 4, 5, 7]
    act_quantizers = 5  # the input and the four ReLUs, one scale each
    packed = sum(math.ceil(n * bits / 8) for n in weights)
    scales = 4 * sum(out_channels) + 4 * act_quantizers
    zero_points = sum(math.ceil(c * bits / 8) for c in out_channels) + act_quantizers * math.ceil(bits / 8)
    biases = 4 * sum(out_channels)  # int32
    parts = size.size_breakdown(q)
    assert parts["weights"] == packed
    assert parts["scales"] == scales
    assert parts["zero_points"] == zero_points
    assert parts["biases"] == biases
    assert parts["float_params"] == 0
    assert size.packed_size_bytes(q) == packed + scales + zero_points + biases
    if bits == 4:  # the per-tensor ceil matters: fc2 holds 35 weights = 17.5 bytes -> 18
        assert packed == 9 + 27 + 54 + 360 + 18 == 468
        assert size.packed_size_bytes(q) == 468 + 104 + 17 + 84 == 673


def test_deployed_size_of_checkpoints(tmp_path):
    """size.deployed_size_bytes: float checkpoints fp32 (BN folded), quantized ones bit-packed."""
    q = _tiny_quant(4)
    path = tmp_path / "q.pt"
    checkpoints.save_checkpoint(path, "ptq_kd_4", nets.current_arch(nets.FERNet(**TINY)), q.state_dict(),
                       quant=quantize.quant_info(4, 4, "ptq"))
    ckpt = checkpoints.load_checkpoint(path)

    assert size.deployed_size_bytes(ckpt, checkpoints.load_model(path)) == 673
    fm = nets.FERNet(**TINY)
    checkpoints.save_checkpoint(tmp_path / "f.pt", "kd", nets.current_arch(fm), fm.state_dict())
    assert size.deployed_size_bytes(checkpoints.load_checkpoint(tmp_path / "f.pt"), fm) == 4 * 956
    # the on-disk size is a different quantity (pickled fp32 weights, keys, metadata)
    assert size.file_size_bytes(path) != 673


def test_four_bit_student_is_at_most_a_seventh_of_fp32():
    m = nets.FERNet(**STUDENT_ARCH).eval()
    calib = (torch.rand(16, 48, 48) * 255).to(torch.uint8)
    q4 = quantize.ptq(m, calib, weight_bits=4, act_bits=4, batches=1, batch_size=16)
    assert size.packed_size_bytes(q4) * 7 <= size.float_size_bytes(m)
