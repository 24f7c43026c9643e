"""Rule plot_comparisons: results/summary.csv -> the four comparison figures under results/plots/.

Snakemake: input ``summary``; outputs ``teacher_student``, ``pruning``, ``quantization``, ``total`` (PNG);
params ``pruning`` (the config's pruning section, for the ratio table); one log. Outside Snakemake::

    python scripts/plot_comparisons.py results/summary.csv results/plots
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import plots  # noqa: E402


def pruning_ratios(section) -> dict:
    """level -> configured ratio (a number or a per-layer dict) from the config's pruning section."""
    section = dict(section or {})
    levels = section.get("levels", section)
    if isinstance(levels, list):
        return {str(x): "" for x in levels}
    out = {}
    for level, value in (levels or {}).items():
        if isinstance(value, dict) and "ratios" in value:
            value = value["ratios"]
        elif isinstance(value, dict) and "ratio" in value:
            value = value["ratio"]
        if isinstance(value, (int, float, dict, str)):
            out[str(level)] = value
    return out


def make_all(summary, out: dict, ratios: dict | None = None) -> None:
    df = plots._df(summary)
    plots.teacher_student_comparison(df, out["teacher_student"])
    plots.pruning_comparison(df, out["pruning"], ratios)
    plots.quantization_comparison(df, out["quantization"])
    plots.total_comparison(df, out["total"])


def main(sm, log):
    ratios = pruning_ratios(sm.params.get("pruning", {}))
    make_all(sm.input.summary, {k: sm.output[k] for k in ("teacher_student", "pruning", "quantization", "total")},
             ratios)
    log.info("wrote %s", ", ".join(sm.output))


if "snakemake" in globals():
    from fer import rule  # noqa: E402

    rule.run(snakemake, main)  # noqa: F821
elif __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_comparisons.py SUMMARY_CSV OUT_DIR")
    make_all(sys.argv[1], {k: os.path.join(sys.argv[2], f"{k}_comparison.png")
                           for k in ("teacher_student", "pruning", "quantization", "total")})
