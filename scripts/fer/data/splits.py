"""Subject-independent splits: every image of a subject (a group) lands in one split, stratified by class as
far as whole groups allow. Holdout fractions (train/val/test) or k folds."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from fer.settings import Split

SPLITS = ("train", "val", "test")
# With cross-validation and data.test_path: the separate test folder's images are in no fold (fold -1) and
# are every fold's "external" test set, besides the fold's own test subjects.
EXTERNAL = 3
SPLIT_NAMES = (*SPLITS, "external")


def _group_table(groups, labels):
    table: dict[str, Counter] = defaultdict(Counter)
    for g, y in zip(groups, labels):
        table[g][int(y)] += 1
    return table


def _greedy_assign(names, table, class_totals, fractions, n_total):
    """Place groups one by one where they lower the deviation from the targets most (per class and in total);
    ties go to the split that is emptiest relative to its target. Returns (assignment, total deviation)."""
    target = {c: fractions * n for c, n in class_totals.items()}
    have = {c: np.zeros(len(fractions)) for c in class_totals}
    sizes = np.zeros(len(fractions))
    size_target = fractions * n_total
    assign: dict[str, int] = {}
    for g in names:
        counts = table[g]
        k_total = sum(counts.values())
        # change of the L1 deviation if this group joined each split
        cost = np.zeros(len(fractions))
        for c, k in counts.items():
            cost += np.abs(have[c] + k - target[c]) - np.abs(have[c] - target[c])
        cost += np.abs(sizes + k_total - size_target) - np.abs(sizes - size_target)
        cost += 1e-6 * (sizes + k_total) / np.maximum(size_target, 1e-9)
        cost[fractions == 0] = np.inf
        s = int(np.argmin(cost))
        assign[g] = s
        for c, k in counts.items():
            have[c][s] += k
        sizes[s] += k_total
    deviation = sum(float(np.abs(have[c] - target[c]).sum()) for c in class_totals)
    deviation += float(np.abs(sizes - size_target).sum())
    return assign, deviation


def split_groups(groups, labels, fractions=(0.7, 0.15, 0.15), seed: int = 0, tries: int = 64) -> np.ndarray:
    """Assign every sample a split (0 train, 1 val, 2 test) by group, stratified by class as far as the
    groups allow: a greedy assignment in seeded random group orders, keeping the order whose per-class
    counts deviate least from the fractions. Deterministic for a given seed. Returns an int8 array aligned
    with ``groups``."""
    fractions = np.asarray(fractions, dtype=float)
    if fractions.sum() <= 0 or (fractions < 0).any():
        raise ValueError(f"split fractions must be >= 0 and sum to > 0, got {fractions.tolist()}")
    fractions = fractions / fractions.sum()
    labels = np.asarray(labels)
    table = _group_table(groups, labels)
    rng = np.random.default_rng(seed)
    class_totals = Counter(int(y) for y in labels)
    best = None
    for _ in range(tries):
        names = sorted(table)
        rng.shuffle(names)
        assign, dev = _greedy_assign(names, table, class_totals, fractions, len(labels))
        if best is None or dev < best[1]:
            best = (assign, dev)
    return np.array([best[0][g] for g in groups], dtype=np.int8)


def kfold_groups(groups, labels, k: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) for every sample; folds are disjoint in groups and stratified as far as possible."""
    if k < 2:
        raise ValueError("k-fold needs k >= 2")
    labels = np.asarray(labels)
    table = _group_table(groups, labels)
    rng = np.random.default_rng(seed)
    names = sorted(table)
    rng.shuffle(names)
    class_totals = Counter(int(y) for y in labels)
    names.sort(key=lambda g: min(class_totals[c] for c in table[g]))
    have = {c: np.zeros(k) for c in class_totals}
    sizes = np.zeros(k)
    assign = {}
    for g in names:
        counts = table[g]
        cost = np.zeros(k)
        for c, n in counts.items():
            cost += n * have[c] / max(class_totals[c], 1)
        cost += 0.5 * sizes / max(len(labels), 1)
        f = int(np.argmin(cost))
        assign[g] = f
        for c, n in counts.items():
            have[c][f] += n
        sizes[f] += sum(counts.values())
    return np.array([assign[g] for g in groups], dtype=np.int8)


def fold_split(fold_of, fold: int, k: int) -> np.ndarray:
    """The split of cross-validation fold ``fold``: its own subjects are the test set, the next fold's
    subjects (``(fold + 1) % k``) the validation set for model selection, every other fold trains. Images in no
    fold (``-1``: a separate test folder) are the :data:`EXTERNAL` split of every fold."""
    fold_of = np.asarray(fold_of)
    if not 0 <= int(fold) < int(k):
        raise ValueError(f"fold {fold} is not in 0..{k - 1}")
    out = np.zeros(len(fold_of), dtype=np.int8)
    out[fold_of == (int(fold) + 1) % int(k)] = 1
    out[fold_of == int(fold)] = 2
    out[fold_of < 0] = EXTERNAL
    return out


def assign_splits(groups, labels, split_cfg: Split) -> np.ndarray:
    """Split ids from the ``data.split`` config: holdout fractions, or, with ``folds``, the split of fold 0
    (:func:`fold_split`; the other folds' splits come from the same fold assignment)."""
    seed = int(split_cfg.seed)
    folds = int(split_cfg.folds)
    if folds:
        return fold_split(kfold_groups(groups, labels, folds, seed), 0, folds)
    return split_groups(groups, labels, (split_cfg.train, split_cfg.val, split_cfg.test), seed)


def check_subject_independent(subjects, split) -> None:
    where = defaultdict(set)
    for g, s in zip(subjects, split):
        where[g].add(int(s))
    bad = [g for g, s in where.items() if len(s) > 1]
    if bad:
        raise AssertionError(f"subjects in more than one split: {bad[:5]}")


def split_stats(labels, split, subjects, classes) -> dict:
    """Images, subjects and images per class (by name, ``classes``) of every split."""
    out = {}
    names = SPLIT_NAMES if (np.asarray(split) == EXTERNAL).any() else SPLITS
    for i, s in enumerate(names):
        m = np.asarray(split) == i
        out[s] = {"images": int(m.sum()),
                  "subjects": len({g for g, k in zip(subjects, m) if k}),
                  "per_class": {name: int(((np.asarray(labels) == c) & m).sum()) for c, name in enumerate(classes)}}
    return out


