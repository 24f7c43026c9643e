"""Cross-validated results: per-fold metrics with intervals, pooled out-of-fold predictions, paired comparisons.

Protocol. With ``data.split.folds = k`` every subject is in exactly one test fold; fold f's models are trained
on the other folds' subjects, with fold f + 1's subjects for model selection. Per variant:

- accuracy and macro-F1 of each fold (with repeat seeds: the mean over a fold's seeds first, so that the
  interval is over independent test sets), their mean, sample standard deviation and a 95% **t-interval over
  folds** (mean +- t(0.975, k-1) * std / sqrt(k));
- pooled accuracy, macro-F1 and confusion matrix over every out-of-fold prediction (each image once per seed);
- with seeds, ``seed_std``: the mean over folds of the standard deviation across seeds (training noise, as
  opposed to the fold-to-fold spread, which is split noise).

Paired comparisons (variant - base, per fold, the same test subjects for both): the mean difference with its
95% t-interval over folds, a paired t-test and a Wilcoxon signed-rank test across folds (two-sided p-values),
and a verdict from the interval: "better" (it lies above 0), "worse" (below 0), else "no detectable difference".
The interval is over folds: with one training seed it holds the split noise only, not the training noise (two
seeds of one recipe can differ by more than the interval says: docs/crossval.md), which the ``noise`` column
says; with repeat seeds every fold's figure is the mean over its seeds, which shrinks the training noise.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import stats

from fer.report import metrics

CONFIDENCE = 0.95
INTERVAL = "95% t-interval over folds"
TEST = "paired t-test over folds (two-sided); Wilcoxon signed-rank over folds (two-sided)"


def t_interval(values) -> dict:
    """mean, std (sample), and the 95% t-interval of ``values`` (NaN bounds for fewer than 2 values)."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": n}
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def verdict(ci_low: float, ci_high: float) -> str:
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "no detectable difference"


def paired(diffs) -> dict:
    """The paired comparison of per-fold differences (variant - base)."""
    d = np.asarray(diffs, dtype=float)
    ci = t_interval(d)
    if len(d) < 2:
        t_p = w_p = math.nan
    elif np.all(d == 0):
        t_p = w_p = 1.0  # identical in every fold
    else:
        # constant non-zero differences have zero variance: the t statistic is infinite (p = 0)
        t_p = float(stats.ttest_1samp(d, 0.0).pvalue) if np.any(d != d[0]) else 0.0
        w_p = float(stats.wilcoxon(d).pvalue)
    return {"mean_diff": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "folds": ci["n"],
            "t_test_p": t_p, "wilcoxon_p": w_p,
            "verdict": verdict(ci["ci_low"], ci["ci_high"]) if ci["n"] >= 2 else "too few folds"}


def fold_table(rows: list[dict]) -> pd.DataFrame:
    """One row per variant, fold and seed: accuracy, macro-F1, test images and subjects."""
    keep = ["variant", "fold", "seed", "accuracy", "macro_f1", "test_images", "test_subjects"]
    if any("external_accuracy" in r for r in rows):  # data.test_path with folds
        keep += ["external_accuracy", "external_macro_f1", "external_images"]
    return pd.DataFrame([{k: r.get(k) for k in keep} for r in rows]).sort_values(["variant", "fold", "seed"])


def per_fold(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """variant x fold matrix of ``metric``, each cell the mean over that fold's seeds."""
    return table.groupby(["variant", "fold"])[metric].mean().unstack("fold")


def check_out_of_fold(predictions: pd.DataFrame, folds_of_image, n_images: int) -> None:
    """Every image predicted exactly once per variant and seed, by the model of the fold that holds its subject
    (so by a model that never saw that subject); images in no fold (data.test_path) are not among them.
    Raises ValueError otherwise."""
    folds_of_image = np.asarray(folds_of_image)
    in_folds = folds_of_image >= 0  # -1: a separate test folder (data.test_path), in no fold
    for (variant, seed), p in predictions.groupby(["variant", "seed"]):
        counts = np.bincount(p["index"].to_numpy(), minlength=n_images)
        if not (counts[in_folds] == 1).all() or (counts[~in_folds] != 0).any():
            bad = int((counts[in_folds] != 1).sum() + (counts[~in_folds] != 0).sum())
            raise ValueError(f"{variant} (seed {seed}): {bad} images are not predicted exactly once over the folds")
        wrong = p[folds_of_image[p["index"].to_numpy()] != p["fold"].to_numpy()]
        if len(wrong):
            raise ValueError(f"{variant} (seed {seed}): {len(wrong)} images were predicted by another fold's model")


def pooled(predictions: pd.DataFrame, classes) -> dict:
    """Accuracy, macro-F1 and confusion matrix over every out-of-fold prediction of one variant (labels index
    ``classes``, the class list of its metrics files)."""
    rep = metrics.classification_report(predictions["label"].to_numpy(), predictions["prediction"].to_numpy(),
                                        classes)
    return {"pooled_accuracy": rep["accuracy"], "pooled_macro_f1": rep["macro_f1"],
            "pooled_confusion_matrix": json.dumps(rep["confusion_matrix"]),
            **{f"pooled_recall_{c}": rep["per_class_recall"][c] for c in classes}}


def summarize(rows: list[dict], predictions: pd.DataFrame, variants: list[str], k: int, seeds: list[int]) -> pd.DataFrame:
    """results/cv/summary.csv: one row per variant (see the module doc)."""
    table = fold_table(rows)
    acc, f1 = per_fold(table, "accuracy"), per_fold(table, "macro_f1")
    by_variant = {r["variant"]: r for r in rows}
    out = []
    n_seeds = max(1, len(seeds))
    for v in variants:
        first = by_variant[v]
        a, f = t_interval(acc.loc[v].dropna()), t_interval(f1.loc[v].dropna())
        t = table[table["variant"] == v]
        row = {"variant": v, "method": first["method"], "setting": first["setting"], "bits": first.get("bits"),
               "params": first["params"], "macs": first["macs"], "size_bytes": first["size_bytes"],
               "file_size_bytes": first["file_size_bytes"],
               "accuracy": a["mean"], "accuracy_std": a["std"], "accuracy_ci_low": a["ci_low"],
               "accuracy_ci_high": a["ci_high"],
               "macro_f1": f["mean"], "macro_f1_std": f["std"], "macro_f1_ci_low": f["ci_low"],
               "macro_f1_ci_high": f["ci_high"],
               **pooled(predictions[predictions["variant"] == v], first["classes"]),
               "folds": a["n"], "seeds": n_seeds,
               "test_images": int(t["test_images"].sum() // n_seeds),
               "test_subjects": int(t["test_subjects"].sum() // n_seeds),
               "interval": INTERVAL}
        if "external_accuracy" in t and t["external_accuracy"].notna().any():
            # data.test_path: every fold's model on the same separate folder (mean and interval over folds)
            for metric in ("external_accuracy", "external_macro_f1"):
                e = t_interval(per_fold(table, metric).loc[v].dropna())
                row.update({metric: e["mean"], f"{metric}_std": e["std"], f"{metric}_ci_low": e["ci_low"],
                            f"{metric}_ci_high": e["ci_high"]})
            row["external_images"] = int(t["external_images"].iloc[0])
        if "budget_macs" in first:  # pr_kd_<budget>: the budget, and the share one run reached (each run searches)
            row.update({"budget_macs": first["budget_macs"], "budget_macs_reached": first["budget_macs_reached"]})
        if "budget_latency_ms" in first:  # pr_kd_lat<L>us: the budget, and what one run's search measured
            row.update({"budget_latency_ms": first["budget_latency_ms"],
                        "budget_latency_ms_reached": first["budget_latency_ms_reached"]})
        if len(seeds) > 1:
            row["accuracy_seed_std"] = float(t.groupby("fold")["accuracy"].std(ddof=1).mean())
        row["protocol"] = (f"{k}-fold cross-validation by subject ({row['test_subjects']} subjects, "
                           f"{row['test_images']} images, each tested once per seed"
                           + (f", {n_seeds} training seeds" if len(seeds) > 1 else "")
                           + f"); mean over folds with the {INTERVAL}; pooled = over all out-of-fold predictions")
        out.append(row)
    return pd.DataFrame(out)


def noise_note(n_seeds: int) -> str:
    """What the interval of a paired comparison covers (the ``noise`` column, see the module doc)."""
    if n_seeds > 1:
        return f"split and training noise: each fold's figure is the mean over {n_seeds} training seeds"
    return ("split noise only: one training seed per fold, training noise is not in the interval "
            "(repeat with seeds: [...] to include it)")


def compare(rows: list[dict], bases: dict[str, str | None]) -> pd.DataFrame:
    """results/cv/comparisons.csv: every variant against its base, per metric (see the module doc)."""
    table = fold_table(rows)
    n_seeds = int(table["seed"].nunique()) if len(table) else 1
    out = []
    for metric in ("accuracy", "macro_f1"):
        m = per_fold(table, metric)
        for v, base in bases.items():
            if not base or v not in m.index or base not in m.index:
                continue
            d = (m.loc[v] - m.loc[base]).dropna()
            out.append({"comparison": f"{v} - {base}", "variant": v, "base": base, "metric": metric,
                        **paired(d.to_numpy()), "per_fold_diff": json.dumps([round(float(x), 6) for x in d]),
                        "interval": INTERVAL, "test": TEST, "seeds": n_seeds, "noise": noise_note(n_seeds)})
    return pd.DataFrame(out)
