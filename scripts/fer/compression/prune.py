"""Structured channel pruning of the KD student with torch-pruning, then distillation fine-tuning.

Channels are removed through torch-pruning's dependency graph: pruning the output channels of
``features.conv<i>`` also removes the matching BatchNorm entries and the input channels of the next layer
(``features.conv<i+1>`` or, after the last conv, the matching flattened columns of ``classifier.fc1``).
Within each group the channels with the smallest L1 magnitude (summed over every layer of the group) go.
``classifier.fc2`` is never a pruning root, so the model always keeps its 7 outputs.

A pruned FERNet is a narrower FERNet: its checkpoint holds the new ``arch`` and a plain ``state_dict`` and
reloads with ``torch.load(weights_only=True)``. The pruning itself is recorded in ``meta["pruning"]``:
the ratios, the kept channel indices of every pruned layer and torch-pruning's own pruning history
(``[layer, is_out_channel_pruning, pruned indices]``, replayable with ``DependencyGraph.load_pruning_history``
on a fresh float student).
"""
from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from fer import IMAGE_SIZE
from fer.models import nets

log = logging.getLogger("fer")

CONV_LAYERS = ("conv1", "conv2", "conv3")
HIDDEN_LAYER = "fc1"
PRUNABLE = (*CONV_LAYERS, HIDDEN_LAYER)
def kept_count(channels: int, ratio: float) -> int:
    """Channels left after removing ``ratio`` of ``channels``: ``round(channels * (1 - ratio))``, at least 1."""
    if not 0.0 <= float(ratio) < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    return max(1, int(round(channels * (1.0 - float(ratio)))))


def expected_arch(arch: dict, ratios: dict) -> dict:
    """The arch a FERNet with ``arch`` has after :func:`prune_model` with ``ratios``."""
    out = dict(arch)
    out["channels"] = [kept_count(c, ratios.get(f"conv{i}", 0.0)) for i, c in enumerate(arch["channels"], 1)]
    out["hidden"] = kept_count(arch["hidden"], ratios.get(HIDDEN_LAYER, 0.0))
    return out


def _module(model: nets.FERNet, layer: str) -> nn.Module:
    return getattr(model.features, layer) if layer.startswith("conv") else getattr(model.classifier, layer)


def _qualified(layer: str) -> str:
    return f"features.{layer}" if layer.startswith("conv") else f"classifier.{layer}"


def prune_model(model: nets.FERNet, ratios: dict) -> dict:
    """Prune ``model`` in place (conv1..conv3 output channels and fc1 hidden units) and return the record.

    ``ratios``: ``{"conv1": r1, "conv2": r2, "conv3": r3, "fc1": r4}`` (missing layers are not pruned); each
    layer keeps :func:`kept_count` channels, the ones with the largest group L1 magnitude.
    Returns ``{"ratios", "channels_before", "channels_after", "kept": {layer: [indices]}, "history"}``.
    """
    import torch_pruning as tp

    unknown = set(ratios) - set(PRUNABLE)
    if unknown:
        raise ValueError(f"unknown layers in pruning ratios: {sorted(unknown)} (allowed: {', '.join(PRUNABLE)})")
    arch_before = nets.current_arch(model)
    n_classes = model.classifier.fc2.out_features
    before = {layer: _out(model, layer) for layer in PRUNABLE}
    fc2 = model.classifier.fc2
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)  # torch-pruning traces the graph through autograd
    example = torch.zeros(1, arch_before.get("in_channels", 1), arch_before.get("in_size", IMAGE_SIZE),
                          arch_before.get("in_size", IMAGE_SIZE))
    with torch.enable_grad():
        # fc2 stays in the traced graph (its input columns must follow fc1); it is never a pruning root and
        # every group is checked not to touch its outputs.
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
        importance = tp.importance.GroupMagnitudeImportance(p=1, group_reduction="sum", normalizer=None)
        kept = {}
        for layer in PRUNABLE:
            ratio = float(ratios.get(layer, 0.0))
            module = _module(model, layer)
            n = _out(model, layer)
            keep = kept_count(n, ratio)
            if keep >= n:
                kept[layer] = list(range(n))
                continue
            fn = tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels
            group = dg.get_pruning_group(module, fn, idxs=list(range(n)))
            if any(dep.target.module is fc2 and dg.is_out_channel_pruning_fn(dep.handler) for dep, _ in group):
                raise RuntimeError("pruning would remove classifier outputs")  # fc2 is protected
            scores = importance(group)
            order = torch.argsort(scores, stable=True)  # ascending: least important first
            drop = sorted(int(i) for i in order[: n - keep])
            kept[layer] = sorted(set(range(n)) - set(drop))
            dg.get_pruning_group(module, fn, idxs=drop).prune()
    history = [[str(name), bool(is_out), [int(i) for i in idxs]] for name, is_out, idxs in dg.pruning_history()]
    for p in model.parameters():
        p.requires_grad_(True)
    model.arch = nets.current_arch(model)  # keep the constructor record in step with the layers
    model.train(was_training)
    after = {layer: _out(model, layer) for layer in PRUNABLE}
    if model.classifier.fc2.out_features != n_classes:
        raise RuntimeError(f"pruning changed the number of classes to {model.classifier.fc2.out_features}")
    return {"ratios": {k: float(ratios.get(k, 0.0)) for k in PRUNABLE}, "channels_before": before,
            "channels_after": after, "kept": {_qualified(k): v for k, v in kept.items()}, "history": history,
            "method": "torch-pruning DependencyGraph, group L1 magnitude, classifier.fc2 protected"}


def _out(model, layer: str) -> int:
    m = _module(model, layer)
    return m.out_channels if isinstance(m, nn.Conv2d) else m.out_features


def pruned_copy(model: nets.FERNet, ratios: dict) -> tuple[nets.FERNet, dict]:
    """A pruned deep copy of ``model`` and its pruning record (``model`` is left as it is)."""
    clone = copy.deepcopy(model)
    return clone, prune_model(clone, ratios)


def replay(arch: dict, state_dict: dict, history: list) -> nets.FERNet:
    """Rebuild a pruned model from the unpruned ``arch``/``state_dict`` and a recorded pruning history."""
    import torch_pruning as tp

    model = nets.build(arch)
    model.load_state_dict(state_dict)
    model.eval()
    example = torch.zeros(1, arch.get("in_channels", 1), arch.get("in_size", IMAGE_SIZE), arch.get("in_size", IMAGE_SIZE))
    with torch.enable_grad():
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
        dg.load_pruning_history([(n, o, list(i)) for n, o, i in history])
    model.arch = nets.current_arch(model)
    return model
