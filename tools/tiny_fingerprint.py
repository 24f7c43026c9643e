"""Fingerprint of the tiny DAG at a git revision: every variant's metrics and a hash of its weights.

    .venv/bin/python tools/tiny_fingerprint.py REV [REV ...]     # e.g. HEAD~5 HEAD

For each revision: `git archive` into a temporary folder, run Snakemake there on tests/config/tiny.yaml for
every variant's results/metrics/<variant>.json (data, teacher, students, pruned and quantized variants,
evaluation), then record the metrics JSON (without machine-dependent keys) and a SHA-256 over each
checkpoint's state_dict tensors (names, dtypes, shapes, values). With two or more revisions it prints what
differs and exits 1 if anything does. Used to show that a refactoring changed no number: run it on the
commit before and after the change, on one machine (oneDNN's kernels differ between CPU models).
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MACHINE_DEPENDENT = re.compile(r"latency|_ms$|seconds|time|throughput|per_s|fps|machine|host|recorded|created", re.I)


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if not MACHINE_DEPENDENT.search(str(k))}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def tensors_sha256(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


CACHE = Path(tempfile.gettempdir()) / "fer-tiny-fingerprints"  # one file per commit: a commit's numbers do not change


def fingerprint(rev: str) -> dict:
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    cached = CACHE / f"{sha}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    out = _run(rev)
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(out, indent=1))
    return out


def _run(rev: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="fer-fp-") as tmp:
        wd = Path(tmp) / "wf"
        wd.mkdir()
        archive = Path(tmp) / "src.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), rev], check=True)
        with tarfile.open(archive) as tf:
            tf.extractall(wd, filter="data")
        cfg = wd / "tests" / "config" / "tiny.yaml"
        # every variant: what the summary rule needs (metrics of all variants), without benchmarks
        targets = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "2", f"--configfile={cfg}", "--summary",
             "results/summary.csv"], cwd=wd, capture_output=True, text=True).stdout
        metrics = sorted(set(re.findall(r"(results/metrics/[A-Za-z0-9_]+\.json)", targets)))
        if not metrics:
            metrics = sorted(set(re.findall(r"(results/(?:folds/\d+/)?metrics/[A-Za-z0-9_]+\.json)", targets)))
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", f"--configfile={cfg}", *metrics],
                              cwd=wd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{rev}: snakemake failed:\n{proc.stderr[-4000:]}")
        out = {"rev": subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], capture_output=True,
                                     text=True).stdout.strip(), "metrics": {}, "weights": {}}
        for m in metrics:
            variant = Path(m).stem
            out["metrics"][variant] = _clean(json.loads((wd / m).read_text()))
            ckpt = torch.load(wd / "weights" / f"{variant}.pt", map_location="cpu", weights_only=True)
            out["weights"][variant] = tensors_sha256(ckpt["state_dict"])
        return out


def main(argv) -> int:
    if not argv:
        print(__doc__)
        return 2
    prints = [fingerprint(rev) for rev in argv]
    for rev, fp in zip(argv, prints):
        print(f"{rev} ({fp['rev'][:10]}): {len(fp['weights'])} variants")
        for v in sorted(fp["weights"]):
            print(f"  {v:<24} weights {fp['weights'][v][:16]}  accuracy {fp['metrics'][v].get('accuracy')}")
    differ = 0
    for rev, fp in zip(argv[1:], prints[1:]):
        ref = prints[0]
        for v in sorted(set(ref["weights"]) | set(fp["weights"])):
            if ref["weights"].get(v) != fp["weights"].get(v):
                print(f"DIFFERS {argv[0]} vs {rev}: weights of {v}")
                differ += 1
            if ref["metrics"].get(v) != fp["metrics"].get(v):
                a, b = ref["metrics"].get(v) or {}, fp["metrics"].get(v) or {}
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                print(f"DIFFERS {argv[0]} vs {rev}: metrics of {v}: {keys}")
                differ += 1
    if len(argv) > 1:
        print("identical" if not differ else f"{differ} differences")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
