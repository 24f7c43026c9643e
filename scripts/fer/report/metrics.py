"""Classification metrics and model cost (params and MACs from torch-pruning's counter)."""
from __future__ import annotations

import numpy as np
import torch

from fer import CLASSES, IMAGE_SIZE


def classification_report(y_true, y_pred, classes=CLASSES) -> dict:
    """Accuracy, macro-F1, per-class figures (by name) and the confusion matrix (rows: true class) of labels
    that index ``classes`` (the model's class list)."""
    n_classes = len(classes)
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    cm = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(cm, (y_true, y_pred), 1)
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n_classes), where=denom > 0)
    present = support > 0  # macro-F1 over the classes present in the test split
    names = list(classes)
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "per_class_recall": {c: float(r) if s else None for c, r, s in zip(names, recall, support)},
        "per_class_precision": {c: float(p) for c, p in zip(names, precision)},
        "per_class_f1": {c: float(v) for c, v in zip(names, f1)},
        "support": {c: int(s) for c, s in zip(names, support)},
        "confusion_matrix": cm.tolist(),
        "classes": names,
    }


def count_macs_params(model, in_size: int = IMAGE_SIZE) -> tuple[int, int]:
    """(MACs, params) of one forward pass on a 1x1x48x48 input, counted by torch-pruning."""
    import torch_pruning as tp

    example = torch.zeros(1, 1, in_size, in_size)
    was_training = model.training
    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, example)
    model.train(was_training)
    return int(macs), int(params)
