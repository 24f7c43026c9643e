"""Metrics against small hand-made examples: accuracy, macro-F1 over present classes, confusion matrix."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fer import CLASSES
from fer.report import metrics


def test_hand_example():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    r = metrics.classification_report(y_true, y_pred)
    assert r["n"] == 6
    assert r["accuracy"] == pytest.approx(4 / 6)
    # class 0: tp 1, support 2, predicted 2 -> P 1/2, R 1/2, F1 1/2
    # class 1: tp 2, support 2, predicted 3 -> P 2/3, R 1,   F1 0.8
    # class 2: tp 1, support 2, predicted 1 -> P 1,   R 1/2, F1 2/3
    f1 = {0: 0.5, 1: 0.8, 2: 2 / 3}
    for c, v in f1.items():
        assert r["per_class_f1"][CLASSES[c]] == pytest.approx(v)
    assert r["macro_f1"] == pytest.approx(sum(f1.values()) / 3)  # classes 3..6 are absent: not averaged
    assert r["per_class_recall"] == {"anger": 0.5, "contempt": 1.0, "disgust": 0.5, "fear": None, "happy": None,
                                     "sadness": None, "surprise": None}
    assert r["per_class_precision"]["contempt"] == pytest.approx(2 / 3)
    cm = np.array(r["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum() == 6
    assert cm[:3, :3].tolist() == [[1, 1, 0],
                                   [0, 2, 0],
                                   [1, 0, 1]]
    assert r["support"]["anger"] == 2 and r["support"]["fear"] == 0
    assert r["classes"] == list(CLASSES)


def test_confusion_matrix_rows_are_true_classes():
    r = metrics.classification_report([4, 4, 4], [6, 6, 4])  # happy mistaken for surprise twice
    cm = np.array(r["confusion_matrix"])
    assert cm[4, 6] == 2 and cm[6, 4] == 0 and cm[4, 4] == 1
    assert cm.sum(1)[4] == 3  # row sums are the true-class supports
    assert r["per_class_recall"]["happy"] == pytest.approx(1 / 3)
    assert r["per_class_recall"]["surprise"] is None


def test_macro_f1_counts_only_classes_present_in_the_truth():
    r = metrics.classification_report([0, 0], [0, 3])
    # anger: P 1, R 1/2 -> F1 2/3; fear is predicted but absent -> F1 0, not part of the mean
    assert r["macro_f1"] == pytest.approx(2 / 3)
    assert r["per_class_f1"]["fear"] == 0.0
    assert r["accuracy"] == pytest.approx(0.5)


def test_perfect_and_empty():
    y = list(range(7)) * 2
    r = metrics.classification_report(y, y)
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0
    assert np.array_equal(np.array(r["confusion_matrix"]), 2 * np.eye(7, dtype=int))
    e = metrics.classification_report([], [])
    assert e["n"] == 0 and math.isnan(e["accuracy"]) and math.isnan(e["macro_f1"])
