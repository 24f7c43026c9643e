"""The pruning-sensitivity figure (accuracy vs ratio, one panel per layer) and its HTML table for the report."""
from __future__ import annotations

import html

import pandas as pd

from fer import files


def plot(table: pd.DataFrame, path, title: str) -> None:
    """Validation accuracy against pruning ratio, one panel per layer: pruned alone without fine-tune (solid)
    and after the short fine-tune (dashed); the label of each point is its share of the full MACs."""
    import matplotlib  # here, not at the top: rule prune_budget imports this module and draws nothing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(table["layer"]))
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 4), sharey=True, squeeze=False)
    for ax, layer in zip(axes[0], layers):
        t = table[table["layer"] == layer].sort_values("ratio")
        ax.plot(t["ratio"], t["val_acc"], "o-", label="no fine-tune")
        if t["val_acc_finetuned"].notna().any():
            ax.plot(t["ratio"], t["val_acc_finetuned"], "s--", label="short KD fine-tune")
        for _, r in t.iterrows():
            ax.annotate(f"{100 * r['macs_fraction']:.0f}%", (r["ratio"], r["val_acc"]), fontsize=8,
                        textcoords="offset points", xytext=(0, -12), ha="center")
        ax.set_title(f"{layer} ({int(t['channels_before'].iloc[0])} channels)")
        ax.set_xlabel("share of channels removed")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy")
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _cell(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return html.escape(format(v, fmt) if fmt else str(v))


def table_html(table: pd.DataFrame, path, protocol: str) -> None:
    """results/report/prune_sensitivity.html: the sensitivity table as one self-contained page."""
    cols = [("layer", "layer", ""), ("ratio", "ratio", ".2f"), ("channels_after", "channels kept", "d"),
            ("macs", "MACs", ",d"), ("macs_fraction", "MACs (share)", ".1%"), ("val_acc", "val acc", ".3f"),
            ("val_acc_finetuned", "val acc (fine-tuned)", ".3f"), ("val_loss", "val loss", ".3f")]
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(int(r[c]) if f in ('d', ',d') else r[c], f)}</td>" for c, _, f in cols)
        + "</tr>" for _, r in table.iterrows())
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Pruning sensitivity</title><style>"
            "body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse} "
            "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}</style></head><body>"
            f"<h1>Pruning sensitivity per layer</h1><p>{html.escape(protocol)}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n")
    files.write_text(path, page)
