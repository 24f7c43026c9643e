"""Config validation: the JSON schema (config/schema.yaml: types and ranges, no defaults) plus the checks a
schema cannot express. Every key must be present (config/config.yaml holds them all; override files are merged
over it) and every problem is reported as one line naming the key, before any job runs."""
from __future__ import annotations

import copy
import functools
import math
import re
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from fer.compression import budget
from fer.data import CKPLUS_HELP, classes as class_names, synthetic
from fer.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "config.yaml"
SCHEMA = REPO / "config" / "schema.yaml"
SHELL_META = re.compile(r"[\s;&|`$<>()\\'\"*?!{}\[\]#~]")
PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
INT_TEXT = re.compile(r"[+-]?\d{1,4000}")  # int() refuses a text of over 4300 digits
INT64_MAX = 2**63 - 1  # the largest integer NumPy and PyTorch take (seeds, sizes, counts)


def _all_required(cls):
    """Every property a schema object lists is required (the schema holds no defaults to fill in)."""
    validate_props = cls.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict) and schema.get("additionalProperties") is False:
            for prop in props:
                if prop not in instance:
                    yield ValidationError("missing (config/config.yaml sets every key: was it deleted there?)",
                                          path=[prop])
        yield from validate_props(validator, props, instance, schema)

    return validators.extend(cls, {"properties": properties})


def _key(path) -> str:
    """``["prune", "levels", 0]`` -> ``prune.levels[0]``; a key that is not a plain word (a typo with a space or a
    line break) is quoted, ``train['a b']``, so that the message stays one line."""
    out = ""
    for p in path:
        if isinstance(p, str) and PLAIN_KEY.fullmatch(p):
            out += f".{p}" if out else p
        else:
            out += f"[{p!r}]"
    return out or "(top level)"


def merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``, dictionaries key by key (as Snakemake merges --configfile)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def defaults() -> dict:
    """config/config.yaml: the value of every key."""
    return yaml.safe_load(CONFIG.read_text())


def load(overrides: dict | None = None, base_dir=".") -> dict:
    """config/config.yaml with ``overrides`` merged over it, validated: what a rule sees (for tools and tests)."""
    return validate(merge(defaults(), overrides or {}), SCHEMA, base_dir)


@functools.lru_cache(maxsize=4)
def _checker(schema_path: str, version: tuple):
    """The parsed schema and its validator, read once per schema file ``version`` (its mtime and size): parsing
    the YAML took most of a validation, and tools and tests validate often."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    return schema, _all_required(Draft202012Validator)(schema)


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if ref and ref.startswith("#/"):
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _coerce(value, node: dict, root: dict):
    """``value`` with numbers and booleans given as strings turned into what the schema asks for: Snakemake's
    ``--config key=value`` reads nested values (``--config 'data={split: {folds: 10}}'``) as strings. A whole
    float where the schema asks for an integer (``epochs: 50.0``, which JSON schema counts as an integer) becomes
    an int, so that ``range(epochs)`` and the variant names (``ptq_kd_8``) see what they expect."""
    node = _resolve(node, root)
    kinds = node.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if isinstance(value, dict):
        props = node.get("properties", {})
        return {k: _coerce(v, props[k], root) if k in props else v for k, v in value.items()}
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_coerce(v, node["items"], root) for v in value]
    if isinstance(value, float) and value.is_integer():
        whole = "integer" in kinds and "number" not in kinds
        if whole or (not kinds and int(value) in [e for e in node.get("enum", []) if type(e) is int]):
            return int(value)
    if isinstance(value, str):
        text = value.strip()
        if "integer" in kinds and INT_TEXT.fullmatch(text):
            return int(text)
        if "number" in kinds and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            return float(text)
        if "boolean" in kinds and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if "null" in kinds and text.lower() in ("null", "none", "~"):
            return None
        if node.get("enum") and value not in node["enum"] and INT_TEXT.fullmatch(text):
            if int(text) in node["enum"]:
                return int(text)
    return value


def _check_finite(value, path) -> None:
    """NaN and infinity pass every range check of a JSON schema (a NaN compares false with any bound): refuse
    them, naming the key; and integers no 64-bit integer holds (``1e300`` where a count belongs), which would
    fail deep inside NumPy or PyTorch."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, path + [k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, path + [i])
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {_key(path)}: {value} is not a finite number")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        raise ConfigError(f"config key {_key(path)}: an integer of {value.bit_length()} bits is too large "
                          "(at most 2**63 - 1)")


def validate(config: dict, schema_path=SCHEMA, base_dir=".") -> dict:
    """Check ``config`` against the schema and the semantic rules; raise :class:`ConfigError` (one line) on the
    first problem. Numbers and booleans written as strings (as Snakemake's ``--config`` passes nested values)
    are first converted in place to the type the schema asks for. Returns ``config``."""
    path = Path(schema_path).resolve()
    stat = path.stat()
    schema, validator = _checker(str(path), (stat.st_mtime_ns, stat.st_size))
    config.update(_coerce(dict(config), schema, schema))
    _check_finite(config, [])
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        e = errors[0]
        if e.validator == "additionalProperties":
            extra = sorted(set(e.instance) - set(e.schema.get("properties", {})), key=str)
            raise ConfigError(f"config key {_key(list(e.absolute_path) + extra[:1])}: unknown key "
                              f"(allowed here: {', '.join(sorted(e.schema.get('properties', {})))})")
        if e.validator == "required":  # name the missing key, not the mapping that lacks it
            missing = [k for k in e.validator_value if k not in e.instance]
            raise ConfigError(f"config key {_key(list(e.absolute_path) + missing[:1])}: missing ({e.message})")
        value = repr(e.instance)  # a value of 5,000 characters makes no readable line: its start is enough
        message = e.message.replace(value, f"{value[:60]}... ({len(value)} characters)") if len(value) > 100 \
            else e.message
        raise ConfigError(f"config key {_key(e.absolute_path)}: {message}")
    check_semantics(config, Path(base_dir))
    return config


def check_semantics(config: dict, base_dir: Path) -> None:
    d = config["data"]
    sp = d["split"]
    check_classes(d)
    if d["test_path"] and d["layout"] != "class-folders":
        raise ConfigError(f"config key data.test_path: only with data.layout class-folders (the {d['layout']} "
                          "layout carries its own test set); leave it empty")
    if not sp["folds"]:
        total = sp["train"] + sp["val"] + (0 if d["test_path"] else sp["test"])
        what = "data.split.train + val" + ("" if d["test_path"] else " + test")
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"config key data.split: {what} must sum to 1, got {total:g}")
        if sp["train"] <= 0 or sp["val"] <= 0 or (not d["test_path"] and sp["test"] <= 0):
            raise ConfigError("config key data.split: train, val and test fractions must all be > 0")
    else:
        if sp["folds"] < 3:
            raise ConfigError("config key data.split.folds: k-fold needs at least 3 folds (test, val, train)")
    if config["seeds"] and not sp["folds"]:
        raise ConfigError("config key seeds: repeats need cross-validation (data.split.folds >= 3); for one split "
                          "set `seed` instead")
    if d["source"] == "folder":
        p = base_dir / d["path"]
        if d["layout"] == "fer2013-csv":
            if not p.is_file():
                raise ConfigError(f"config key data.path: file {d['path']!r} does not exist (data.layout fer2013-csv "
                                  "reads the original fer2013.csv: emotion,pixels,Usage)")
        elif not p.is_dir():
            raise ConfigError(f"config key data.path: folder {d['path']!r} does not exist. "
                              + (CKPLUS_HELP.format(root=d["path"]) if d["layout"] == "class-folders" else
                                 "data.layout split-folders reads <path>/train/<class>/* and <path>/test/<class>/*"))
    if d["test_path"] and not (base_dir / d["test_path"]).is_dir():
        raise ConfigError(f"config key data.test_path: folder {d['test_path']!r} does not exist")
    check_ssh_strings(config.get("jetson") or {})
    check_device(config["train"])
    check_benchmark_runtimes(config["benchmark"])
    check_prune_targets(config)


def check_prune_targets(config: dict) -> None:
    """prune.targets: known budget keys only; a MAC budget {macs} the search can meet (below the KD student's
    MACs, at least the smallest network prune.round_to allows); a latency budget {latency_ms, runtime} with an
    installed runtime (whether it can be met is measured when its job starts); no two budgets with one variant
    name."""
    student = config["models"]["student"]
    arch = {"channels": student["channels"], "hidden": student["hidden"], "num_classes": len(config["data"]["classes"])}
    round_to = config["prune"]["round_to"]
    names = {}
    for i, target in enumerate(config["prune"]["targets"]):
        key = f"prune.targets[{i}]"
        unknown = sorted(set(target) - set(budget.BUDGET_KEYS), key=str)
        if unknown:
            raise ConfigError(f"config key {_key(['prune', 'targets', i, unknown[0]])}: "
                              f"unknown budget key (allowed: {', '.join(budget.BUDGET_KEYS)})")
        if "latency_ms" in target and "macs" in target:
            raise ConfigError(f"config key {key}: one budget per entry, macs or latency_ms (give two entries for "
                              "two budgets)")
        if "runtime" in target:
            rt = target["runtime"]
            if rt not in budget.RUNTIMES:
                raise ConfigError(f"config key {key}.runtime: unknown runtime {rt!r} (allowed: "
                                  f"{', '.join(budget.RUNTIMES)})")
            if not budget.runtime_installed(rt):
                raise ConfigError(f"config key {key}.runtime: {rt} is not installed in this environment")
        if "latency_ms" in target:
            if "runtime" not in target:
                raise ConfigError(f"config key {key}.runtime: missing (a latency budget is measured on a runtime: "
                                  f"{', '.join(budget.RUNTIMES)})")
        elif "runtime" in target:
            raise ConfigError(f"config key {key}.runtime: a runtime belongs to a latency budget, which a MAC budget "
                              "does not need; remove it")
        elif "macs" not in target:
            raise ConfigError(f"config key {key}.macs: missing (a budget needs a MAC count, e.g. {{macs: 1.5e6}}, "
                              "or a latency, e.g. {latency_ms: 0.05, runtime: onnxruntime})")
        name = budget.budget_name(target)
        if name in names:
            raise ConfigError(f"config key {key}: the same variant pr_kd_{name} as prune.targets[{names[name]}]")
        names[name] = i
        if "latency_ms" in target:
            continue
        macs = float(target["macs"])
        full = budget.fernet_macs(arch)
        floor = budget.fernet_macs(budget.smallest_arch(arch, round_to))
        if macs >= full:
            raise ConfigError(f"config key {key}.macs: {macs:,.0f} is not below the KD student's {full:,} MACs "
                              "(models.student): nothing to prune")
        if macs < floor:
            raise ConfigError(f"config key {key}.macs: a budget of {macs:,.0f} MACs cannot be met: the smallest "
                              f"network prune.round_to {round_to} allows (channels "
                              f"{budget.smallest_arch(arch, round_to)['channels']}, hidden "
                              f"{budget.smallest_arch(arch, round_to)['hidden']}) has {floor:,} MACs")


def check_device(train: dict) -> None:
    """train.device cuda needs a CUDA device, and train.precision fp16 needs CUDA: refused before any job runs."""
    device, precision = train["device"], train["precision"]
    if device != "cuda" and precision != "fp16":
        return  # auto resolves in each job (fer.models.training.resolve_device)
    import torch  # only here: every other config validates without loading torch (seconds per Snakemake start)

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ConfigError("config key train.device: cuda, but the installed torch has no usable CUDA device "
                          "(torch.cuda.is_available() is False; the pinned torch==2.13.0 is a CPU build here): use "
                          "cpu or auto, or install a CUDA build of torch (docs/training.md#gpu)")
    if precision == "fp16" and (device == "cpu" or not has_cuda):
        raise ConfigError("config key train.precision: fp16 needs CUDA (train.device cuda, or auto on a machine with "
                          "a GPU); on the CPU use auto, fp32 or bf16")


def check_benchmark_runtimes(bench: dict) -> None:
    """benchmark.runtimes onnxruntime-cuda needs onnxruntime's CUDA execution provider: refused before any job."""
    if "onnxruntime-cuda" not in bench["runtimes"]:
        return
    import onnxruntime  # only here: every other config validates without it

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise ConfigError("config key benchmark.runtimes: onnxruntime-cuda, but the installed onnxruntime has no "
                          f"CUDA execution provider (it has {onnxruntime.get_available_providers()}; the pinned "
                          "onnxruntime is the CPU build): install onnxruntime-gpu or drop the runtime")


def check_classes(d: dict) -> None:
    """data.classes: a usable list (no two spellings of one expression); with fer2013-csv, names FER2013's
    emotion codes stand for; with the synthetic source, expressions the generator draws."""
    try:
        class_names.check(d["classes"])
    except ValueError as exc:
        raise ConfigError(f"config key data.classes: {exc}") from None
    if d["layout"] == "fer2013-csv":
        lost = class_names.without_fer2013_code(d["classes"])
        if lost:
            raise ConfigError(f"config key data.classes: {lost} have no emotion code in fer2013.csv (its codes: "
                              f"{', '.join(class_names.FER2013_CODES)}); drop them or choose another data.layout")
    if d["source"] == "synthetic":
        lost = [c for c in d["classes"] if class_names.canonical(c) not in synthetic.DRAWABLE]
        if lost:
            raise ConfigError(f"config key data.classes: the synthetic faces cannot draw {lost} (they draw "
                              f"{', '.join(synthetic.DRAWABLE)} and their common spellings)")


# Characters a shell would interpret. ssh/scp get the jetson strings as separate arguments and the remote
# command quotes every word, but a host like "pi;rm -rf ~" or "-oProxyCommand=..." is never meant
# seriously, so it is refused before any job runs.
SSH_KEYS = {
    # key: (characters refused, may hold several words)
    "host": (SHELL_META, False),                              # address or ~/.ssh/config alias
    "user": (SHELL_META, False),
    "key": (re.compile(r"[\s;&|`$<>()\\'\"*?!{}\[\]#]"), False),  # local file: ~ allowed
    "python": (re.compile(r"[;&|`$<>()\\'\"*?!{}\[\]#]"), True),   # "python3 -u" or ~/venv/bin/python
    "workdir": (re.compile(r"[\s;&|`$<>()\\'\"*?!{}\[\]#]"), False),  # ~/fer-bench
}


def check_ssh_strings(jet: dict) -> None:
    for key, (bad, words) in SSH_KEYS.items():
        val = str(jet.get(key, "") or "")
        if not val:
            continue
        m = bad.search(val)
        if m:
            raise ConfigError(f"config key jetson.{key}: {val!r} contains {m.group()!r} (shell metacharacters"
                              + (" are" if words else " and spaces are") + " not allowed)")
        if key in ("host", "user") and val.startswith("-"):
            raise ConfigError(f"config key jetson.{key}: {val!r} starts with '-' (ssh would read it as an option)")
