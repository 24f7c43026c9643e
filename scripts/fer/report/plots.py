"""Matplotlib figures: confusion matrices, training curves (comparison figures live here too)."""
from __future__ import annotations

import numpy as np

from fer import files


def _pyplot():
    """matplotlib.pyplot on the Agg backend, imported by the first figure, not with this module: most jobs
    that import it (every compression and export rule, through fer.stages.train) draw nothing, and pyplot
    costs them more start-up time than their work."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def confusion_matrix(cm, classes, path, title: str) -> None:
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = _pyplot().subplots(figsize=(6.2, 5.4))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="row-normalised (recall)")
    ax.set_title(title)
    _save(fig, path)


def training_curves(history: list[dict], path, title: str) -> None:
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = _pyplot().subplots(1, 2, figsize=(10, 3.8))
    a1.plot(ep, [h["train_loss"] for h in history], label="train")
    a1.plot(ep, [h["val_loss"] for h in history], label="validation (CE)")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(ep, [h["train_acc"] for h in history], label="train (augmented)")
    a2.plot(ep, [h["val_acc"] for h in history], label="validation")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy")
    a2.set_ylim(0, 1.02)
    a2.legend()
    fig.suptitle(title)
    _save(fig, path)


# ------------------------------------------------------------------------------------ comparison figures
# The four comparison figures read results/summary.csv (one row per variant x runtime x device, accuracy and
# cost repeated in each row). Latency bars show p50 with a whisker up to p90.

METHOD_COLORS = {"teacher": "#4C72B0", "distillation": "#DD8452", "scratch": "#8C8C8C", "pruning": "#55A868",
                 "quantization": "#C44E52", "pruning+quantization": "#8172B3", "fp16": "#937860"}
LOCAL_DEVICE = "local-cpu"
_RUNTIME_LABEL = {"pytorch": "PyTorch eager", "onnxruntime": "onnxruntime"}


def _df(summary):
    import pandas as pd

    if isinstance(summary, pd.DataFrame):
        return summary.copy()
    return pd.read_csv(summary)


def variant_table(summary):
    """One row per variant (the first summary row of each), in summary order, indexed by variant."""
    df = _df(summary)
    return df.drop_duplicates("variant").set_index("variant", drop=False)


def latency_rows(summary, device: str | None = LOCAL_DEVICE):
    """Rows with a measured p50 (on ``device``; None = every device)."""
    df = _df(summary)
    if "latency_ms_p50" not in df:
        return df.iloc[0:0]
    df = df[df["latency_ms_p50"].notna()]
    if device is not None:
        df = df[df["device"] == device]
    return df


def best_latency(summary, device: str | None = LOCAL_DEVICE):
    """Per variant, the row of its fastest runtime (lowest p50) on ``device``, indexed by variant."""
    df = latency_rows(summary, device)
    if df.empty:
        return df.set_index("variant", drop=False) if "variant" in df else df
    idx = df.groupby("variant", sort=False)["latency_ms_p50"].idxmin()
    return df.loc[idx].set_index("variant", drop=False)


def pareto_front(x, y) -> list[int]:
    """Indices of the points no other point beats (lower or equal ``x`` and higher or equal ``y``, one of them
    strictly), sorted by ``x``. NaNs never belong to the front."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.flatnonzero(~(np.isnan(x) | np.isnan(y)))
    front = []
    for i in ok:
        dominated = any((x[j] <= x[i] and y[j] >= y[i]) and (x[j] < x[i] or y[j] > y[i]) for j in ok if j != i)
        if not dominated:
            front.append(int(i))
    return sorted(front, key=lambda i: (x[i], -y[i]))


def accuracy_ci(v, names):
    """(low, high) bounds of the accuracy interval of ``names`` (rows of a cross-validated summary), else None."""
    if "accuracy_ci_low" not in v or "accuracy_ci_high" not in v:
        return None
    return ([float(v.loc[n, "accuracy_ci_low"]) for n in names], [float(v.loc[n, "accuracy_ci_high"]) for n in names])


def pct_change(new, ref) -> float:
    return (float(new) / float(ref) - 1.0) * 100.0 if ref else float("nan")


def protocol_text(summary) -> str:
    """One line on how the figures were measured, read from the summary rows."""
    df = _df(summary)
    parts = []
    lat = latency_rows(df, LOCAL_DEVICE)
    if not lat.empty:
        r = lat.iloc[0]
        cpu = str(r.get("machine_cpu", "") or "this CPU")
        parts.append(f"latency: {cpu}, batch 1, {int(r['threads'])} thread(s), p50 of {int(r['runs'])} runs "
                     f"after {int(r['warmup'])} warm-up (whisker: p90)")
    jet = latency_rows(df, None)
    jet = jet[jet["device"] != LOCAL_DEVICE] if not jet.empty else jet
    if not jet.empty:
        parts.append(f"Jetson: {jet.iloc[0].get('machine', '') or 'device'}")
    v = variant_table(df)
    if "test_images" in v and len(v) and not v["test_images"].isna().all():
        r = v.iloc[0]
        subj = f" of {int(r['test_subjects'])} held-out subjects" if "test_subjects" in v else ""
        if "folds" in v and not v["folds"].isna().all():
            parts.append(f"accuracy: mean over {int(r['folds'])} subject-disjoint folds ({int(r['test_images'])} "
                         f"images{subj}, each tested once), bars and whiskers: 95% t-interval over folds")
        else:
            parts.append(f"accuracy: subject-independent test split, {int(r['test_images'])} images{subj}")
    return " | ".join(parts)


def _placeholder(path, title: str, message: str) -> None:
    fig, ax = _pyplot().subplots(figsize=(8, 3))
    ax.axis("off")
    ax.text(0.5, 0.6, title, ha="center", va="center", fontsize=14, weight="bold")
    ax.text(0.5, 0.35, message, ha="center", va="center", fontsize=11, wrap=True)
    _save(fig, path)


def _footer(fig, summary, extra: str = "") -> None:
    text = protocol_text(summary)
    if extra:
        text = f"{extra}\n{text}" if text else extra
    if text:
        fig.text(0.5, -0.01, text, ha="center", va="top", fontsize=8.5, color="#444444", wrap=True)


def _bars(ax, labels, values, colors, fmt="{:.3g}", ref_index: int | None = 0, pct: bool = True,
          delta_pp: bool = False, whiskers=None, ylabel: str = "", title: str = "", ci=None) -> None:
    """Bar chart with value labels; bars after ``ref_index`` also get their change against it in %. ``ci``:
    (lows, highs) of an interval around each value, drawn as error bars (e.g. 95% over folds)."""
    values = np.asarray(values, dtype=float)
    xs = np.arange(len(values))
    ax.bar(xs, np.nan_to_num(values), color=colors, edgecolor="black", linewidth=0.6)
    if ci is not None:
        lo, hi = np.asarray(ci[0], dtype=float), np.asarray(ci[1], dtype=float)
        ax.errorbar(xs, values, yerr=[np.nan_to_num(values - lo), np.nan_to_num(hi - values)], fmt="none",
                    ecolor="black", elinewidth=1.2, capsize=5, zorder=4)
        whiskers = hi
    if whiskers is not None:
        w = np.asarray(whiskers, dtype=float)
        ok = ~np.isnan(w) & ~np.isnan(values)
        ax.vlines(xs[ok], values[ok], w[ok], color="black", linewidth=1.2)
        ax.hlines(w[ok], xs[ok] - 0.12, xs[ok] + 0.12, color="black", linewidth=1.2)
    top = np.nanmax(values if whiskers is None else np.fmax(values, np.asarray(whiskers, dtype=float))) \
        if np.isfinite(values).any() else 1.0
    for i, v in enumerate(values):
        if np.isnan(v):
            ax.text(i, 0.02 * top, "n/a", ha="center", va="bottom", fontsize=9, color="#666666")
            continue
        label = fmt.format(v)
        if ref_index is not None and i != ref_index and not np.isnan(values[ref_index]):
            if delta_pp:
                label += f"\n{(v - values[ref_index]) * 100:+.1f} pp"
            elif pct:
                label += f"\n{pct_change(v, values[ref_index]):+.1f}%"
        at = v
        if whiskers is not None and np.isfinite(whiskers[i]):
            at = max(v, float(whiskers[i]))
        ax.text(i, at + 0.02 * top, label, ha="center", va="bottom", fontsize=9)
    ax.set_xticks(xs, labels, rotation=0 if len(labels) <= 4 else 30, ha="center" if len(labels) <= 4 else "right")
    ax.set_ylim(0, top * 1.32 if top > 0 else 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _log_y(ax, low: float, high: float, label: str) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.set_ylim(low, high)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda val, _: f"{val:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(label)


def _colors(methods):
    return [METHOD_COLORS.get(m, "#999999") for m in methods]


def _latency_groups(summary, variants, device=LOCAL_DEVICE):
    """{group label: {variant: (p50, p90, precision)}} for every (device, runtime) measured."""
    df = latency_rows(summary, device)
    groups: dict[str, dict] = {}
    for _, r in df.iterrows():
        if r["variant"] not in variants:
            continue
        label = _RUNTIME_LABEL.get(r["runtime"], str(r["runtime"]))
        if r["device"] != LOCAL_DEVICE:
            label = f"{r['device']} {r['runtime']} {r.get('precision', '')}".strip()
        groups.setdefault(label, {})[r["variant"]] = (r["latency_ms_p50"], r["latency_ms_p90"],
                                                      r.get("precision", ""))
    return groups


def _grouped_latency(ax, groups, variants, names, colors, title="latency, batch 1 (p50, whisker p90)") -> None:
    if not groups:
        ax.axis("off")
        ax.text(0.5, 0.5, "no latency measured", ha="center", va="center")
        return
    n = len(variants)
    width = 0.8 / n
    top = 0.0
    for j, v in enumerate(variants):
        xs, p50, p90 = [], [], []
        for g, (label, vals) in enumerate(groups.items()):
            if v in vals:
                xs.append(g + (j - (n - 1) / 2) * width)
                p50.append(vals[v][0])
                p90.append(vals[v][1])
        if not xs:
            continue
        ax.bar(xs, p50, width, color=colors[j], edgecolor="black", linewidth=0.6, label=names[j])
        ax.vlines(xs, p50, p90, color="black", linewidth=1.1)
        top = max(top, max(p90))
    for g, (label, vals) in enumerate(groups.items()):
        ref = vals.get(variants[0])
        for j, v in enumerate(variants):
            if v not in vals:
                continue
            x = g + (j - (n - 1) / 2) * width
            text = f"{vals[v][0]:.3g}"
            if j and ref is not None:
                text += f"\n{pct_change(vals[v][0], ref[0]):+.0f}%"
            ax.annotate(text, (x, vals[v][1]), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=8)
    ax.set_xticks(range(len(groups)), list(groups), fontsize=9)
    lows = [vals[v][0] for vals in groups.values() for v in vals if vals[v][0] > 0]
    if lows and top / min(lows) > 15:  # runtimes an order of magnitude apart: a log axis keeps all bars visible
        _log_y(ax, min(lows) / 3, top * 6, "ms per image (log scale)")
    else:
        ax.set_ylim(0, top * 1.35 if top else 1)
        ax.set_ylabel("ms per image")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def teacher_student_comparison(summary, path, teacher: str = "teacher", student: str = "kd",
                               scratch: str = "scratch") -> None:
    """Size, MACs, latency per runtime and accuracy of the teacher and the KD student (student's change in %)."""
    v = variant_table(summary)
    if teacher not in v.index or student not in v.index:
        _placeholder(path, "Teacher vs student", f"needs the variants {teacher!r} and {student!r} in the summary")
        return
    t, s = v.loc[teacher], v.loc[student]
    pair = [teacher, student]
    names = ["teacher", "KD student"]
    cols = _colors([t["method"], s["method"]])
    fig, axes = _pyplot().subplots(1, 4, figsize=(17, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.6, 1.2]})
    _bars(axes[0], names, [t["size_bytes"] / 1024, s["size_bytes"] / 1024], cols, fmt="{:,.1f} KB",
          ylabel="KB (fp32, BN folded)", title="deployed size")
    _bars(axes[1], names, [t["macs"] / 1e6, s["macs"] / 1e6], cols, fmt="{:,.2f} M", ylabel="million MACs",
          title="MACs per image")
    _grouped_latency(axes[2], _latency_groups(summary, pair, None), pair, names, cols)
    acc_vars = [x for x in (teacher, student, scratch) if x in v.index]
    acc_names = {teacher: "teacher", student: "KD student", scratch: "student\nno KD"}
    _bars(axes[3], [acc_names[x] for x in acc_vars], [v.loc[x, "accuracy"] for x in acc_vars],
          _colors([v.loc[x, "method"] for x in acc_vars]), fmt="{:.3f}", delta_pp=True, ylabel="test accuracy",
          title="accuracy (Δ vs teacher in points)", ci=accuracy_ci(v, acc_vars))
    axes[3].set_ylim(0, 1.18)
    best = best_latency(summary)
    speed = ""
    if teacher in best.index and student in best.index:
        speed = (f", {best.loc[teacher, 'latency_ms_p50'] / best.loc[student, 'latency_ms_p50']:.1f}x faster "
                 f"(best runtime)")
    fig.suptitle(f"Teacher vs KD student: {-pct_change(s['size_bytes'], t['size_bytes']):.1f}% smaller, "
                 f"{-pct_change(s['macs'], t['macs']):.1f}% fewer MACs{speed}, accuracy "
                 f"{(s['accuracy'] - t['accuracy']) * 100:+.1f} points", fontsize=13, weight="bold")
    fig.tight_layout()
    _footer(fig, summary)
    _save(fig, path)


def _format_ratio(r) -> str:
    if isinstance(r, dict):
        return ", ".join(f"{k} {float(x):.2f}" if isinstance(x, (int, float)) else f"{k} {x}" for k, x in r.items())
    if isinstance(r, (int, float)):
        return f"{float(r):.2f}"
    return "" if r is None else str(r)


def pruning_comparison(summary, path, ratios: dict | None = None, base: str = "kd") -> None:
    """Params, MACs, latency and accuracy of the pruned levels against the KD student, plus the ratio table.

    ``ratios`` maps a level (low/medium/high) to its configured pruning ratio (a number or a per-layer dict);
    the levels are drawn in its order, else in summary order.
    """
    v = variant_table(summary)
    pruned = v[v["method"] == "pruning"]
    if base not in v.index or pruned.empty:
        _placeholder(path, "Pruning", "no pruned variants in this run (pr_kd_<level>): nothing to compare")
        return
    levels = [str(x) for x in pruned["setting"]]
    if ratios:
        order = [str(k) for k in ratios]
        levels = [lv for lv in order if lv in levels] + [lv for lv in levels if lv not in order]
    names = [f"pr_kd_{lv}" for lv in levels]
    vs = [base, *names]
    labels = ["KD student", *levels]
    cols = _colors([v.loc[x, "method"] for x in vs])
    best = best_latency(summary)
    lat = [best.loc[x, "latency_ms_p50"] if x in best.index else np.nan for x in vs]
    lat90 = [best.loc[x, "latency_ms_p90"] if x in best.index else np.nan for x in vs]
    fig = _pyplot().figure(figsize=(17, 6.4))
    gs = fig.add_gridspec(2, 4, height_ratios=[3.2, 1.1])
    axes = [fig.add_subplot(gs[0, i]) for i in range(4)]
    _bars(axes[0], labels, [v.loc[x, "params"] / 1e3 for x in vs], cols, fmt="{:,.1f}k", ylabel="thousand",
          title="parameters")
    _bars(axes[1], labels, [v.loc[x, "macs"] / 1e6 for x in vs], cols, fmt="{:,.2f} M", ylabel="million MACs",
          title="MACs per image")
    rt = ""
    if base in best.index:
        rt = _RUNTIME_LABEL.get(best.loc[base, "runtime"], best.loc[base, "runtime"])
    _bars(axes[2], labels, lat, cols, fmt="{:.3f}", whiskers=lat90, ylabel="ms per image",
          title=f"latency p50 (fastest local runtime{', ' + rt if rt else ''})")
    _bars(axes[3], labels, [v.loc[x, "accuracy"] for x in vs], cols, fmt="{:.3f}", delta_pp=True,
          ylabel="test accuracy", title="accuracy (Δ vs KD student in points)", ci=accuracy_ci(v, vs))
    axes[3].set_ylim(0, 1.18)
    tab = fig.add_subplot(gs[1, :])
    tab.axis("off")
    ref = v.loc[base]
    cells = []
    for lv, name in zip(levels, names):
        r = v.loc[name]
        cells.append([lv, _format_ratio((ratios or {}).get(lv, "")) or "-",
                      f"{(1 - r['params'] / ref['params']) * 100:.1f}%", f"{(1 - r['macs'] / ref['macs']) * 100:.1f}%",
                      f"{r['size_bytes'] / 1024:,.1f} KB", f"{r['accuracy']:.3f} ({(r['accuracy'] - ref['accuracy']) * 100:+.1f} pp)"])
    table = tab.table(cellText=cells, colLabels=["level", "configured pruning ratio", "params removed",
                                                 "MACs removed", "size (fp32)", "accuracy (Δ vs KD)"],
                      loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    table.scale(1, 1.4)
    fig.suptitle("Pruning the KD student: low / medium / high (change against the unpruned KD student)",
                 fontsize=13, weight="bold")
    fig.tight_layout()
    _footer(fig, summary)
    _save(fig, path)


def quantization_comparison(summary, path, base: str = "kd") -> None:
    """Real (bit-packed) size, accuracy and latency of ptq_kd_<bits>, from 32 down to 4 bits, and fp16_kd."""
    v = variant_table(summary)
    q = v[v["method"] == "quantization"]
    if q.empty:
        _placeholder(path, "Quantization", "no quantized variants in this run (ptq_kd_<bits>): nothing to compare")
        return
    q = q.assign(_bits=q["setting"].astype(int)).sort_values("_bits", ascending=False)
    half = [f"fp16_{base}"] if f"fp16_{base}" in v.index else []
    vs = ([base] if base in v.index else []) + half + list(q["variant"])
    labels = (["KD fp32"] if base in v.index else []) + ["fp16"] * len(half) + [f"{b} bit" for b in q["_bits"]]
    cols = _colors([v.loc[x, "method"] for x in vs])
    fig, axes = _pyplot().subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1, 1, 1.5]})
    _bars(axes[0], labels, [v.loc[x, "size_bytes"] / 1024 for x in vs], cols, fmt="{:,.1f} KB",
          ylabel="KB (bit-packed weights + scales + biases)", title="real size (change vs first bar)")
    _bars(axes[1], labels, [v.loc[x, "accuracy"] for x in vs], cols, fmt="{:.3f}", delta_pp=True,
          ylabel="test accuracy", title="accuracy (Δ vs first bar in points)", ci=accuracy_ci(v, vs))
    axes[1].set_ylim(0, 1.18)
    ax = axes[2]
    df = latency_rows(summary, LOCAL_DEVICE)
    runtimes = [r for r in dict.fromkeys(df["runtime"]) if isinstance(r, str)] if not df.empty else []
    if not runtimes:
        ax.axis("off")
        ax.text(0.5, 0.5, "no latency measured", ha="center", va="center")
    else:
        width = 0.8 / len(runtimes)
        top = float(df[df["variant"].isin(vs)]["latency_ms_p90"].max() or 1)
        for j, rt in enumerate(runtimes):
            sub = df[df["runtime"] == rt].set_index("variant")
            for i, x in enumerate(vs):
                if x not in sub.index:
                    continue
                r = sub.loc[x]
                xpos = i + (j - (len(runtimes) - 1) / 2) * width
                ax.bar(xpos, r["latency_ms_p50"], width, color=["#BBBBBB", "#555555", "#999999"][j % 3],
                       edgecolor="black", linewidth=0.6, label=_RUNTIME_LABEL.get(rt, rt) if i == 0 else None)
                ax.vlines(xpos, r["latency_ms_p50"], r["latency_ms_p90"], color="black", linewidth=1.1)
                ax.annotate(f"{r['latency_ms_p50']:.3g} {r['precision']}", (xpos, r["latency_ms_p90"]),
                            xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=7,
                            rotation=90)
        ax.set_xticks(range(len(vs)), labels)
        low = float(df[df["variant"].isin(vs)]["latency_ms_p50"].min() or 0)
        if low > 0 and top / low > 15:
            _log_y(ax, low / 3, top * 40, "ms per image (log scale)")
        else:
            ax.set_ylim(0, top * 1.7)
            ax.set_ylabel("ms per image")
        ax.set_title("latency p50 (whisker p90), label = what ran", fontsize=11)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    widths = " / ".join((["fp16"] if half else []) + [f"{b} bits" for b in q["_bits"]])
    fig.suptitle(f"Quantization of the KD student: {widths}", fontsize=13, weight="bold")
    fig.tight_layout()
    _footer(fig, summary, "Below 8 bits the weights still sit in int8 containers at run time: the gain is storage "
                          "(real size is computed from the bit width), not speed.")
    _save(fig, path)


def _label_points(ax, points) -> None:
    """Label (x, y, text, bold) points, moving a label down in 11-point steps while it would sit on top of
    one already placed (a greedy pass in data order; enough for a dozen variants)."""
    placed: list[tuple[float, float, float]] = []  # label anchor in points: x, y, width
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling before mapping data to points
    to_pts = ax.transData
    dpi = ax.figure.dpi / 72.0
    for xv, yv, text, bold in sorted(points, key=lambda p: (-p[1], p[0])):
        px, py = (to_pts.transform((xv, yv)) / dpi) if np.isfinite(xv) else (0.0, 0.0)
        width = 5.2 * len(text)
        dy = 5.0
        for _ in range(12):
            ly = py + dy
            if all(abs(ly - qy) >= 10 or px + 6 + width < qx or qx + qw < px + 6 for qx, qy, qw in placed):
                break
            dy -= 11.0
        placed.append((px + 6, py + dy, width))
        ax.annotate(text, (xv, yv), xytext=(6, dy), textcoords="offset points", fontsize=8,
                    weight="bold" if bold else "normal",
                    arrowprops=dict(arrowstyle="-", color="#999999", linewidth=0.5) if dy < -20 else None)


def _scatter_front(ax, x, y, names, methods, xlabel: str, title: str, ci=None) -> None:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if ci is not None:  # interval bars (95% over folds) behind the points
        lo, hi = np.asarray(ci[0], dtype=float), np.asarray(ci[1], dtype=float)
        ok = np.isfinite(x) & np.isfinite(lo) & np.isfinite(hi)
        ax.vlines(x[ok], lo[ok], hi[ok], color="#777777", linewidth=1.0, zorder=1)
    for m in dict.fromkeys(methods):
        k = [i for i, mm in enumerate(methods) if mm == m]
        ax.scatter(x[k], y[k], s=60, color=METHOD_COLORS.get(m, "#999999"), label=m, zorder=3,
                   edgecolor="white", linewidth=0.5)
    front = pareto_front(x, y)
    if front:
        fx, fy = x[front], y[front]
        ax.step(fx, fy, where="post", color="black", linewidth=1.2, linestyle="--", zorder=2, label="Pareto front")
        ax.scatter(fx, fy, s=150, facecolor="none", edgecolor="black", linewidth=1.4, zorder=4)
    if np.isfinite(x).any() and np.nanmin(x) > 0:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda val, _: f"{val:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        lo, hi = np.nanmin(x), np.nanmax(x)
        ax.set_xlim(lo / 1.4, hi * 1.6)
    ok = np.isfinite(y)
    if ok.any():
        ylo, yhi = float(np.nanmin(y)), float(np.nanmax(y))
        if ci is not None:  # room for the interval bars
            ylo = min(ylo, float(np.nanmin(np.asarray(ci[0], dtype=float))))
            yhi = max(yhi, float(np.nanmax(np.asarray(ci[1], dtype=float))))
        pad = max(0.02, (yhi - ylo) * 0.08)
        ax.set_ylim(ylo - 2 * pad, yhi + pad)
    # one label per position: variants that coincide (e.g. kd and ptq_kd_32) share it
    spots: dict[tuple, list[int]] = {}
    for i in range(len(names)):
        if np.isfinite(x[i]) and np.isfinite(y[i]):
            spots.setdefault((float(f"{x[i]:.3g}"), round(float(y[i]), 4)), []).append(i)
    _label_points(ax, [(x[idx[0]], y[idx[0]], " / ".join(names[j] for j in idx), any(j in front for j in idx))
                       for idx in spots.values()])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3, which="both")


def total_comparison(summary, path) -> None:
    """Accuracy against latency (fastest local runtime; Jetson too when measured) and against real size, every
    variant, Pareto front marked (up and to the left is better)."""
    v = variant_table(summary)
    if v.empty:
        _placeholder(path, "All variants", "the summary is empty")
        return
    best = best_latency(summary)
    dev = latency_rows(summary, None)
    dev = dev[dev["device"] != LOCAL_DEVICE] if not dev.empty else dev
    panels = 3 if not dev.empty else 2
    fig, axes = _pyplot().subplots(1, panels, figsize=(7.2 * panels, 5.6))
    names, methods, acc = list(v["variant"]), list(v["method"]), list(v["accuracy"])
    lat = [best.loc[n, "latency_ms_p50"] if n in best.index else np.nan for n in names]
    ci = accuracy_ci(v, names)
    _scatter_front(axes[0], lat, acc, names, methods, "latency p50, ms (fastest local runtime, log scale)",
                   "accuracy vs latency (this machine)", ci)
    _scatter_front(axes[1], list(v["size_bytes"] / 1024), acc, names, methods,
                   "real size, KB (log scale)", "accuracy vs size", ci)
    if panels == 3:
        jb = dev.loc[dev.groupby("variant", sort=False)["latency_ms_p50"].idxmin()].set_index("variant", drop=False)
        jl = [jb.loc[n, "latency_ms_p50"] if n in jb.index else np.nan for n in names]
        _scatter_front(axes[2], jl, acc, names, methods, "latency p50, ms (fastest device runtime, log scale)",
                       f"accuracy vs latency ({dev.iloc[0].get('machine', '') or 'Jetson'})", ci)
    axes[0].legend(fontsize=8, loc="best", framealpha=0.85)
    fig.suptitle("Every variant: accuracy against cost (up and left is better; circled = Pareto front)",
                 fontsize=13, weight="bold")
    fig.tight_layout()
    _footer(fig, summary)
    _save(fig, path)
