"""Provenance: for every output, the config values, code version and package versions it came from.

Two steps:

* Every rule script that runs through :func:`fer.stages.runner.run` calls :func:`record_job` after its work is done.
  It writes a job record ``results/provenance/jobs/<rule>[-<wildcards>].json``: the rule, its wildcards, its
  params (the config values the rule received: config enters rules only through ``params:``), its input and
  output files with their SHA-256, the code version and the installed package versions, at the time the job
  ran. A rerun of the job overwrites its record.
* The ``provenance`` rule (:func:`collect`) walks from the final targets back through the job records (an
  output's record lists the job's inputs, whose records list theirs ...) and writes ``results/provenance.json``
  with one entry per output. An entry is only trusted while the file still has the checksum the job recorded;
  otherwise it is marked ``"stale": true``. Outputs without a record (a rule script that does not call
  :func:`record_job`) are listed with ``"rule": null``; inputs outside results/ and weights/ are source data
  (e.g. the CK+ images) and appear only in the input lists of the job records.

Code version: the git commit and whether the workflow files differ from it (``git_dirty``) when the workflow
sits in a git checkout, and always ``workflow_sha256``, a hash over the workflow files themselves
(Snakefile, rules/, scripts/, envs/, config/schema.yaml), which identifies the code also outside git.

Machine-dependent parts (times, host, and outputs holding latency or throughput figures) are named under
``"machine_dependent"`` in the JSON (:data:`MACHINE_DEPENDENT`); the rest, e.g. the data set, the weights
(``content_sha256``) and the metrics files, is identical for two runs of the same config and code on the same
machine (tests/test_reproducibility.py).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import socket
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from fer import files

FORMAT = "fer-provenance/1"
JOBS_DIR = Path("results/provenance/jobs")
# the code: config values are recorded separately (the schema with its defaults is code)
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "envs", "config/schema.yaml")
CODE_SUFFIXES = {".py", ".smk", ".yaml", ".yml", ".sh", ".json", ".rst", ""}
OUTPUT_DIRS = ("results", "weights")  # where the workflow writes; other inputs are source data
MAX_LISTED_INPUTS = 200  # larger named inputs (e.g. every CK+ image) are recorded as a count and a hash
MACHINE_DEPENDENT = {
    "fields": ["created", "outputs.*.recorded", "environments.*.host", "environments.*.platform"],
    "outputs": "latency, throughput and wall-clock figures: results/benchmarks/*, their columns in "
               "results/summary.csv, the plots and report pages that show them, and the seconds and images_per_s "
               "columns of results/training/*.csv. Their checksums differ between runs and machines; data, "
               "weights (content_sha256), accuracy, F1 and confusion matrices do not.",
}


def workflow_root() -> Path:
    """The workflow folder this code runs from (``scripts/fer/`` -> two levels up)."""
    return Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------- hashing
def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(folder) -> tuple[str, int, int]:
    """``(sha256, files, bytes)`` over the relative names and contents of every file below ``folder``."""
    folder = Path(folder)
    h = hashlib.sha256()
    n = size = 0
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        rel = p.relative_to(folder).as_posix()
        h.update(rel.encode() + b"\0" + file_sha256(p).encode() + b"\n")
        n += 1
        size += p.stat().st_size
    return h.hexdigest(), n, size


def _tensor_buffer(t):
    """The tensor's bytes as a buffer (no copy for contiguous CPU tensors: an 80 MB data set stays 80 MB)."""
    import torch

    t = t.detach().cpu()
    if t.is_quantized:
        t = t.int_repr()
    t = t.contiguous()
    try:
        return t.reshape(-1).view(torch.uint8).numpy()
    except (RuntimeError, TypeError):
        return t.numpy().tobytes()


def tensors_sha256(obj) -> str:
    """A hash of the tensors (names, dtypes, shapes, values) and plain values in ``obj``, independent of how
    torch.save laid the file out."""
    import torch  # here, not at the top: every job records its provenance, most of the report jobs without torch

    h = hashlib.sha256()

    def walk(o, key):
        if isinstance(o, torch.Tensor):
            h.update(f"{key}|{o.dtype}|{tuple(o.shape)}|".encode())
            h.update(_tensor_buffer(o))
        elif isinstance(o, dict):
            for k in sorted(o, key=str):
                walk(o[k], f"{key}/{k}")
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o):
                walk(v, f"{key}[{i}]")
        else:
            h.update(f"{key}={json.dumps(o, sort_keys=True, default=str)}|".encode())

    walk(obj, "")
    return h.hexdigest()


def state_dict_sha256(path) -> str:
    """:func:`tensors_sha256` of a checkpoint's ``state_dict`` (the weights only)."""
    ckpt = files.load_torch(path)
    return tensors_sha256(ckpt["state_dict"] if isinstance(ckpt, dict) and "state_dict" in ckpt else ckpt)


def describe_file(path) -> dict:
    """Checksums of one output: ``sha256`` of the bytes; for torch files also ``content_sha256`` (the weights
    of a checkpoint, else all tensors), which stays equal when torch.save's byte layout does not."""
    p = Path(path)
    if p.is_dir():
        digest, n, size = tree_sha256(p)
        return {"kind": "folder", "sha256": digest, "files": n, "bytes": size}
    if not p.is_file():
        return {"kind": "missing"}
    out = {"kind": "file", "sha256": file_sha256(p), "bytes": p.stat().st_size}
    if p.suffix == ".pt":
        try:
            out["content_sha256"] = state_dict_sha256(p)
        except Exception as exc:  # not loadable with weights_only=True: say so instead of failing the run
            out["content_sha256"] = None
            out["content_error"] = f"{type(exc).__name__}: {exc}"[:200]
    return out


# --------------------------------------------------------------------------------------- environment
def _git(root: Path, *args) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def workflow_files(root: Path) -> list[Path]:
    files = []
    for part in WORKFLOW_PARTS:
        p = root / part
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += [q for q in p.rglob("*") if q.is_file() and "__pycache__" not in q.parts
                      and q.suffix in CODE_SUFFIXES and not q.name.startswith(".")]
    return sorted(files)


@lru_cache(maxsize=4)
def code_version(root: str | os.PathLike | None = None) -> dict:
    """``{"git_commit", "git_dirty", "workflow_sha256", "workflow_files"}``; the git fields are None outside
    a git checkout (or without git)."""
    root = Path(root or workflow_root()).resolve()
    h = hashlib.sha256()
    files = workflow_files(root)
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + file_sha256(p).encode() + b"\n")
    out = {"git_commit": None, "git_dirty": None, "workflow_sha256": h.hexdigest(), "workflow_files": len(files)}
    top = _git(root, "rev-parse", "--show-toplevel")
    # only if the Snakefile itself is tracked: a workflow copied into some other repository is "not in git"
    if top and _git(root, "ls-files", "--error-unmatch", "Snakefile") is not None:
        commit = _git(root, "rev-parse", "HEAD")
        status = _git(root, "status", "--porcelain", "--untracked-files=normal", "--",
                      *[p for p in WORKFLOW_PARTS if (root / p).exists()])
        out["git_commit"] = commit.strip() if commit else None
        out["git_dirty"] = bool(status.strip()) if status is not None else None
    return out


# recorded also when requirements.txt is not next to the workflow (e.g. a copy of the workflow folders only)
CORE_PACKAGES = ["torch", "snakemake", "numpy", "pandas", "torch-pruning", "brevitas", "onnx", "onnxruntime",
                 "onnxoptimizer", "matplotlib", "pillow", "opencv-python-headless", "scikit-image", "PyYAML",
                 "jsonschema", "tqdm"]


def _requirement_names(root: Path) -> list[str]:
    req = root / "requirements.txt"
    names = []
    if req.is_file():
        for line in req.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^([A-Za-z0-9_.\-]+)", line)
            if m:
                names.append(m.group(1))
    return list(dict.fromkeys(names + CORE_PACKAGES))


@lru_cache(maxsize=4)
def package_versions(root: str | os.PathLike | None = None) -> dict:
    """Installed version of every package named in requirements.txt and of :data:`CORE_PACKAGES` (None when
    not installed)."""
    out = {}
    for name in _requirement_names(Path(root or workflow_root())):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment(root=None) -> dict:
    return {"code": code_version(root), "packages": package_versions(root),
            "python": platform.python_version(), "platform": platform.platform(), "host": socket.gethostname()}


def environment_id(env: dict) -> str:
    stable = {k: v for k, v in env.items() if k != "host"}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------- job records
def _jsonable(v):
    try:
        return json.loads(json.dumps(v, default=str))
    except (TypeError, ValueError):
        return str(v)


def _named(namedlist) -> dict:
    """A Snakemake Namedlist -> ``{name: value}`` (a list without names -> ``{"_": [...]}``)."""
    named = dict(namedlist.items())
    if not named and len(namedlist):
        return {"_": list(namedlist)}
    return named


def _files(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _inputs(namedlist) -> dict:
    out = {}
    for k, v in _named(namedlist).items():
        files = _files(v)
        if len(files) > MAX_LISTED_INPUTS:
            out[k] = {"count": len(files), "names_sha256": hashlib.sha256("\n".join(files).encode()).hexdigest()}
        else:
            out[k] = files
    return out


def job_record_path(rule: str, wildcards: dict) -> Path:
    tag = "-".join(f"{v}" for _, v in sorted(wildcards.items()))
    tag = re.sub(r"[^A-Za-z0-9_.+-]", "_", tag)
    return JOBS_DIR / (f"{rule}-{tag}.json" if tag else f"{rule}.json")


def record_job(smk) -> Path:
    """Write the job record of a finished Snakemake job (``smk`` is the script's ``snakemake`` object)."""
    wildcards = {k: str(v) for k, v in smk.wildcards.items()}
    outputs = {}
    for f in smk.output:
        outputs[str(f)] = describe_file(f)
    record = {"format": FORMAT, "rule": smk.rule, "wildcards": wildcards,
              "params": _jsonable(_named(smk.params)), "input": _inputs(smk.input), "output": outputs,
              "threads": smk.threads, "recorded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "environment": environment()}
    path = job_record_path(smk.rule, wildcards)
    files.write_json(path, record)
    return path


# --------------------------------------------------------------------------------------------- collect
def load_job_records(jobs_dir=JOBS_DIR) -> dict[str, dict]:
    """``{output path: job record}`` from every record below ``jobs_dir``. When two records name the same
    output (e.g. a renamed rule left an old record), the one matching the file's checksum wins, then the
    newest."""
    claims: dict[str, list[dict]] = {}
    for p in sorted(Path(jobs_dir).glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        for out in rec.get("output", {}):
            claims.setdefault(os.path.normpath(out), []).append(rec)
    index = {}
    for out, recs in claims.items():
        if len(recs) > 1:
            now = describe_file(out).get("sha256")
            recs.sort(key=lambda r: ((r["output"].get(out) or {}).get("sha256") == now, r.get("recorded") or ""))
        index[out] = recs[-1]
    return index


def collect(targets, config: dict, out_path, jobs_dir=JOBS_DIR) -> dict:
    """Walk from ``targets`` back through the job records and write ``out_path`` (see the module doc)."""
    index = load_job_records(jobs_dir)
    environments: dict[str, dict] = {}
    outputs: dict[str, dict] = {}
    queue = [os.path.normpath(str(t)) for t in targets]
    asked = set(queue)
    seen = set()
    while queue:
        f = queue.pop(0)
        if f in seen:
            continue
        seen.add(f)
        rec = index.get(f)
        if rec is None:
            # an input without a record is source data (e.g. CK+ images), unless it sits among the outputs
            if Path(f).exists() and (f in asked or Path(f).parts[0] in OUTPUT_DIRS):
                outputs[f] = {"rule": None, "note": "no job record (made by a script that does not record "
                                                    "provenance, or by hand)", **describe_file(f)}
            continue
        env = rec.get("environment") or {}
        env_id = environment_id(env)
        environments.setdefault(env_id, env)
        for out, recorded in rec["output"].items():  # every output of the job, not only the one asked for
            out = os.path.normpath(out)
            seen.add(out)
            now = describe_file(out)
            entry = {"rule": rec.get("rule"), "wildcards": rec.get("wildcards", {}),
                     "config": rec.get("params", {}), "environment": env_id, "recorded": rec.get("recorded"), **now}
            if recorded.get("sha256") != now.get("sha256"):
                entry["stale"] = True
                entry["note"] = "the file changed after its job record was written"
            outputs[out] = entry
        for paths in rec.get("input", {}).values():
            if isinstance(paths, list):
                queue.extend(os.path.normpath(x) for x in paths if os.path.normpath(x) not in seen)
    env = environment()
    env_id = environment_id(env)
    environments.setdefault(env_id, env)
    doc = {"format": FORMAT,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "collected_by": env_id,
           "config": _jsonable(config),
           "machine_dependent": MACHINE_DEPENDENT,
           "environments": environments,
           "outputs": dict(sorted(outputs.items()))}
    files.write_json(out_path, doc)
    return doc
