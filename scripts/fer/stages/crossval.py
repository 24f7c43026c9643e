"""Rule cv_summary: the cross-validated table, the paired comparisons and the per-fold table of a study with
folds (data.split.folds). Apart from fer.stages.evaluate so that the evaluate jobs (one per variant and fold)
do not import SciPy's statistics."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from fer import files
from fer.data import datasets
from fer.report import crossval

log = logging.getLogger("fer")


def cv_summary(*, metric_files, prediction_files, dataset, variants: list, bases: dict, folds: int, seeds: list,
               out_summary, out_comparisons, out_folds) -> pd.DataFrame:
    """Rule cv_summary: every fold's (and seed's) metrics and predictions -> results/cv/summary.csv (mean, std and
    95% interval over folds, pooled out-of-fold figures), comparisons.csv (paired, per fold) and folds.csv."""
    rows = [json.loads(Path(f).read_text()) for f in metric_files]
    preds = []
    for row, f in zip(rows, prediction_files):
        p = pd.read_csv(f)
        p["variant"], p["fold"], p["seed"] = row["variant"], row["fold"], row["seed"]
        preds.append(p)
    predictions = pd.concat(preds, ignore_index=True)
    ds = datasets.load_prepared(dataset)
    crossval.check_out_of_fold(predictions, ds["folds"].numpy(), len(ds["labels"]))
    table = crossval.summarize(rows, predictions, variants, folds, seeds)
    comparisons = crossval.compare(rows, bases)
    for frame, path in ((table, out_summary), (comparisons, out_comparisons), (crossval.fold_table(rows), out_folds)):
        with files.atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    for _, r in table.iterrows():
        log.info("%-20s accuracy %.4f [%.4f, %.4f]  macro-F1 %.4f  pooled accuracy %.4f", r["variant"],
                 r["accuracy"], r["accuracy_ci_low"], r["accuracy_ci_high"], r["macro_f1"], r["pooled_accuracy"])
    for _, r in comparisons[comparisons["metric"] == "accuracy"].iterrows():
        log.info("%-30s %+.4f [%+.4f, %+.4f]  t-test p %.3f  Wilcoxon p %.3f  %s", r["comparison"], r["mean_diff"],
                 r["ci_low"], r["ci_high"], r["t_test_p"], r["wilcoxon_p"], r["verdict"])
    return table
