"""Fuzzing the config check: a few hundred seeded mutations of config/config.yaml, each either accepted (and then
a dry run works) or refused with one line naming the key. A traceback is never an answer.

Each case changes one key path of config/config.yaml (as a user editing the file or an override file would):
a wrong type, NaN or infinity (also as text), a huge, negative or zero number, an empty value, a number written
as text, an unknown key, a mapping where a scalar belongs or the other way round, or a deleted key. The case is
validated as the Snakefile validates it (rules/common.smk: ``fer.config.validate`` on the config, the
repository as base folder). A deleted key stands for one deleted from config/config.yaml itself: an override
file cannot delete one, since Snakemake merges it over config/config.yaml. A few accepted cases are also
written to a file and run with ``snakemake -n --configfile`` in a copy of the workflow.
"""
from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake
from fer import config as fer_config
from fer.errors import ConfigError

SEED = 13
CASES = 400
DRY_RUNS = 4
SCHEMA = yaml.safe_load(fer_config.SCHEMA.read_text())

# kind -> replacement values (a case draws one); "number-text" and "float-for-int" also spell the old value
REPLACEMENTS = {
    "word": ["banana", "yes please", "True ", "~"],
    "list": [[], [1, "x"], [[0.5]]],
    "dict": [{}, {"a": 1}],
    "none": [None],
    "bool": [True, False],
    "nan-inf": [float("nan"), float("inf"), float("-inf")],
    "nan-inf-text": [".nan", "nan", "NaN", "inf", "-inf", "+.inf", "1e400"],
    "huge": [1e300, -1e300, 10**30, -(10**30), 2**63, 1e18, "9" * 5000],
    "negative": [-1, -0.5, -3, -(2**31)],
    "zero": [0, 0.0, -0.0],
    "empty": ["", [], {}],
    "number-text": ["1e-3", " 4 ", "0x10", "1_000", "+7", "-1", ".25", "3.0", "true", "null", "1e3"],
    "float-for-int": [1.5, 64.0],
}
# kinds that change the mapping around the value
PLACED = ("unknown-key", "scalar-for-mapping", "mapping-for-scalar", "delete")
KINDS = [*REPLACEMENTS, *PLACED]
# kinds about numbers
NUMERIC = ("nan-inf", "nan-inf-text", "huge", "negative", "zero", "number-text", "float-for-int")
UNKNOWN = ["fuzz_unknown_key", "Epochs", "fuzz key", "two\nlines", 7, None]


def _key(path) -> str:
    """``("prune", "levels", 0)`` -> ``prune.levels[0]`` (the spelling of the error messages; plain words only)."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _paths(node, path=()):
    """Every key path below ``node`` (mapping keys and list items), parents before children."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield (*path, k)
        yield from _paths(v, (*path, k))


def _get(cfg, path):
    for p in path:
        cfg = cfg[p]
    return cfg


def _applicable(value, path) -> list[str]:
    kinds = [*REPLACEMENTS, "unknown-key", "scalar-for-mapping"] if isinstance(value, dict) else \
        [*REPLACEMENTS, "mapping-for-scalar"]
    return kinds + (["delete"] if isinstance(path[-1], str) else [])


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# where a kind is drawn most of the time: numbers' kinds where a number is (its range is what they test), a
# flipped boolean, an empty or other string where a string is (the value may well be fine there)
HOME = {**{k: _number for k in NUMERIC}, "bool": lambda v: isinstance(v, bool),
        "empty": lambda v: isinstance(v, (str, list)), "word": lambda v: isinstance(v, str)}


def _replacement(kind, old, rng):
    if kind == "number-text" and _number(old) and rng.random() < 0.6:  # the old value, spelled as text
        return rng.choice([str(old), f" {old} ", f"{old:+}", f"{float(old):e}"])
    if kind == "float-for-int" and _number(old) and rng.random() < 0.7:  # 50 -> 50.0
        return float(old)
    if kind == "scalar-for-mapping":
        return rng.choice([3, "low", 0.5, True, None])
    if kind == "mapping-for-scalar":
        return rng.choice([{"value": old}, {"x": {"y": old}}, {str(old): old}])
    return copy.deepcopy(rng.choice(REPLACEMENTS[kind]))


class Case:
    """One mutation: the config, what changed (printed on failure), and the keys its error may name."""

    def __init__(self, kind, cfg, what, path, named, below=(), changed=True):
        self.kind, self.cfg, self.what, self.path, self.changed = kind, cfg, what, path, changed
        self.named, self.below = named, below  # "config key <named>:" | "config key <below>." / "<below>["

    def __repr__(self):
        return f"[{self.kind}] {self.what}"


def mutate(base: dict, rng: random.Random, path: tuple, kind: str) -> Case:
    cfg = copy.deepcopy(base)
    parent = _get(cfg, path[:-1])
    old = parent[path[-1]]
    key, up = _key(path), _key(path[:-1])
    if kind == "unknown-key":
        names = rng.choice([[n] for n in UNKNOWN] + [[7, "zz"]])
        for n in names:
            old[n] = rng.choice([1, "x", {"a": 1}])
        plain = all(isinstance(n, str) and n.isidentifier() for n in names)
        return Case(kind, cfg, f"{key}: + unknown key(s) {_short(names)}", path,
                    [_key((*path, names[0]))] if plain else [], [] if plain else [key])
    if kind == "delete":
        del parent[path[-1]]
        return Case(kind, cfg, f"{key}: deleted", path, [key])
    new = _replacement(kind, old, rng)
    parent[path[-1]] = new
    # a rule across keys (fractions that sum to 1, unique items) names the parent; a mapping or list a key or
    # an item in it
    below = [key] if isinstance(new, (dict, list)) or isinstance(old, (dict, list)) else []
    return Case(kind, cfg, f"{key}: {_short(old)} -> {_short(new)}", path, [key, up] if up else [key], below,
                changed=repr(new) != repr(old))


def cases(seed=SEED, n=CASES) -> list[Case]:
    """``n`` mutations of config/config.yaml, the same every run: the kinds in turn, each at a key path drawn
    among those where it applies (a number's kinds mostly where a number is)."""
    rng = random.Random(seed)
    base = fer_config.defaults()
    paths = list(_paths(base))
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        home = HOME.get(kind)
        at_home = home and rng.random() < (0.8 if kind in NUMERIC else 0.5)
        among = [p for p in paths if home(_get(base, p))] if at_home else paths
        path = rng.choice([p for p in among if kind in _applicable(_get(base, p), p)])
        out.append(mutate(base, rng, path, kind))
    return out


def _schema_node(path) -> dict:
    node = SCHEMA
    for p in path:
        if "$ref" in node:
            node = {**_get(SCHEMA, node["$ref"][2:].split("/")), **node}
        node = node["items"] if isinstance(p, int) else node["properties"][p]
    if "$ref" in node:
        node = {**_get(SCHEMA, node["$ref"][2:].split("/")), **node}
    return node


PY_TYPES = {"integer": (int,), "number": (int, float), "boolean": (bool,), "string": (str,), "array": (list,),
            "object": (dict,), "null": (type(None),)}


def _has_schema_type(value, node) -> bool:
    """What a rule reads is of the type the schema names (50.0 where it says integer is not; nor True)."""
    kinds = node.get("type")
    if kinds is None:  # an enum alone: one of its members, of the member's type
        return any(value == e and type(value) is type(e) for e in node["enum"])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return any(isinstance(value, PY_TYPES[k]) and (k == "boolean" or not isinstance(value, bool)) for k in kinds)


def check(case: Case) -> str:
    """``"accepted"`` or ``"refused"``; an assertion error (the mutation printed) for anything else."""
    try:
        cfg = fer_config.validate(copy.deepcopy(case.cfg), fer_config.SCHEMA, REPO)  # it coerces in place
    except ConfigError as exc:
        msg = str(exc)
        assert "\n" not in msg and "\r" not in msg, f"{case}: message is not one line: {msg!r}"
        assert msg.startswith("config key "), f"{case}: message does not start 'config key ': {msg!r}"
        rest = msg[len("config key "):]
        assert any(rest.startswith(f"{k}: ") for k in case.named) or any(
            rest.startswith(k + "[") or (k and rest.startswith(k + ".")) for k in case.below
        ), f"{case}: message does not name {case.named or case.below}: {msg!r}"
        return "refused"
    except Exception as exc:  # noqa: BLE001 - any other exception is the bug this test looks for
        raise AssertionError(f"{case}: {type(exc).__name__} escaped the validator: {exc}") from exc
    assert case.kind not in ("delete", "unknown-key"), f"{case}: accepted"
    value = _get(cfg, case.path)
    assert _has_schema_type(value, _schema_node(case.path)), f"{case}: accepted as {value!r}"
    return "accepted"


def _outcome(case: Case) -> str:
    try:
        return check(case)
    except AssertionError as exc:
        return f"BUG {exc}"


@pytest.fixture(scope="module")
def outcomes():
    start = time.perf_counter()
    out = [(c, _outcome(c)) for c in cases()]
    return out, time.perf_counter() - start


def test_every_mutation_is_accepted_or_refused_in_one_line_naming_the_key(outcomes):
    out, seconds = outcomes
    bugs = [r for _, r in out if r.startswith("BUG")]
    assert not bugs, f"{len(bugs)} of {len(out)} cases:\n" + "\n".join(bugs[:20])
    refused = sum(r == "refused" for _, r in out)
    accepted = len(out) - refused
    # not vacuous: many cases are refused, a fair share accepted, and every kind was drawn
    assert refused >= 0.3 * len(out) and accepted >= 0.1 * len(out), (accepted, refused)
    assert {c.kind for c, _ in out} == set(KINDS)
    assert seconds < 15, f"{len(out)} cases took {seconds:.1f} s"


def test_the_mutations_are_the_same_every_run():
    assert [c.what for c in cases()] == [c.what for c in cases()]


@pytest.fixture(scope="module")
def fuzz_workflow(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("fuzz") / "wf")


def _dry_run_sample(out) -> list[Case]:
    """A few accepted cases, the first of each of a few kinds whose values a rule could trip over."""
    accepted = [c for c, result in out if result == "accepted" and c.changed]
    kinds = ("number-text", "float-for-int", "empty", "huge", "zero", "negative", "none")
    first = [next(c for c in accepted if c.kind == k) for k in kinds if any(c.kind == k for c in accepted)]
    # which kinds the draw accepts depends on the config's keys: fill up with other accepted cases, in order
    rest = [c for c in accepted if all(c is not f for f in first)]
    return (first + rest)[:DRY_RUNS]


def test_accepted_mutations_run_the_dry_run(outcomes, fuzz_workflow, tmp_path):
    sample = _dry_run_sample(outcomes[0])
    assert len(sample) == DRY_RUNS
    for i, case in enumerate(sample):
        path = tmp_path / f"case{i}.yaml"  # the mutation as written (snakemake merges it over config.yaml)
        path.write_text(yaml.safe_dump(case.cfg, sort_keys=False))
        proc = snakemake(fuzz_workflow, "-n", configfile=path, timeout=120)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "Traceback" not in text, f"{case}:\n{text[-3000:]}"
