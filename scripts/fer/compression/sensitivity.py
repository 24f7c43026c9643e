"""Per-layer pruning sensitivity: each prunable layer of a FERNet pruned alone at a few ratios.

Every (layer, ratio) pair prunes a copy of the model with :func:`fer.compression.prune.prune_model` at
``{layer: ratio}`` only (the other layers untouched), measures it as it is, and, with a ``finetune`` callable,
measures it again after that short fine-tune. A layer whose accuracy falls early is the one to spare; the
budget search (:mod:`fer.compression.budget`) measures the same kind of cost on the fly.
"""
from __future__ import annotations

import copy
import logging

from fer.compression import budget, prune
from fer.models import nets

log = logging.getLogger("fer")

COLUMNS = ["layer", "ratio", "channels_before", "channels_after", "macs", "macs_fraction", "params", "val_loss",
           "val_acc", "val_acc_finetuned", "val_loss_finetuned"]


def sweep(model: nets.FERNet, ratios, measure, finetune=None, layers=prune.PRUNABLE) -> list[dict]:
    """One row per layer and ratio (plus a ``ratio`` 0 row per layer: the unpruned model), columns
    :data:`COLUMNS`.

    ``measure(model) -> {"val_acc", "val_loss"}`` scores a model (on the validation split); ``finetune(model,
    layer, ratio)`` trains a pruned copy in place (None: the ``*_finetuned`` columns stay None). ``model`` is
    left as it is.
    """
    arch = nets.current_arch(model)
    full = budget.fernet_macs(arch)
    base = measure(model)
    rows = []
    for layer in layers:
        n = budget.counts_of(arch)[layer]
        rows.append({"layer": layer, "ratio": 0.0, "channels_before": n, "channels_after": n, "macs": full,
                     "macs_fraction": 1.0, "params": sum(p.numel() for p in model.parameters()),
                     "val_loss": base["val_loss"], "val_acc": base["val_acc"],
                     "val_acc_finetuned": base["val_acc"] if finetune else None,
                     "val_loss_finetuned": base["val_loss"] if finetune else None})
        for ratio in ratios:
            clone = copy.deepcopy(model)
            record = prune.prune_model(clone, {layer: float(ratio)})
            macs = budget.fernet_macs(nets.current_arch(clone))
            row = {"layer": layer, "ratio": float(ratio), "channels_before": n,
                   "channels_after": record["channels_after"][layer], "macs": macs, "macs_fraction": macs / full,
                   "params": sum(p.numel() for p in clone.parameters()), **measure(clone),
                   "val_acc_finetuned": None, "val_loss_finetuned": None}
            if finetune:
                finetune(clone, layer, float(ratio))
                after = measure(clone)
                row.update({"val_acc_finetuned": after["val_acc"], "val_loss_finetuned": after["val_loss"]})
            log.info("%s at ratio %.2f: %d -> %d channels, MACs %.1f%%, val acc %.4f%s", layer, ratio, n,
                     row["channels_after"], 100 * row["macs_fraction"], row["val_acc"],
                     "" if row["val_acc_finetuned"] is None else f" (fine-tuned {row['val_acc_finetuned']:.4f})")
            rows.append(row)
    return [{k: r[k] for k in COLUMNS} for r in rows]
