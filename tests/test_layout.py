"""The shape of the code: the import graph of the library, one source of truth for every default, rule ->
script -> stage names, and the project files that must agree with each other."""
from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import yaml

from fer import config as fer_config
from fer import settings

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "scripts" / "fer"
# third-party packages a module may import inside a function: heavy, and only some code paths need them
LAZY_OK = {"brevitas", "torch_pruning", "onnx", "onnxruntime", "onnxoptimizer", "tqdm", "matplotlib", "skimage",
           "PIL", "cv2", "pandas", "scipy",
           "torch"}  # fer.config: only to check train.device cuda (every Snakemake start validates the config)


def _module_name(path: Path) -> str:
    rel = path.relative_to(LIB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path):
    """(top-level fer imports, fer imports inside functions, third-party imports inside functions)."""
    tree = ast.parse(path.read_text())
    top, inner, lazy = set(), [], []
    mod = _module_name(path)

    def targets(node):
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if node.level:  # relative
            base = mod.rsplit(".", node.level if path.name != "__init__.py" else node.level - 1)[0]
            src = f"{base}.{node.module}" if node.module else base
        else:
            src = node.module or ""
        out = [src]
        if src.startswith("fer"):
            out += [f"{src}.{a.name}" for a in node.names]
        return out

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = targets(node)
            in_function = any(isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef)) for p in _parents(tree, node))
            for n in names:
                if n == "fer" or n.startswith("fer."):
                    (inner.append(n) if in_function else top.add(n))
                elif in_function:
                    lazy.append(n.split(".")[0])
    return top, inner, lazy


def _parents(tree, target):
    stack = [(tree, [])]
    while stack:
        node, chain = stack.pop()
        if node is target:
            return chain
        for child in ast.iter_child_nodes(node):
            stack.append((child, chain + [node]))
    return []


def _library_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in LIB.rglob("*.py") if "payload" not in p.parts}


def _graph() -> dict[str, set[str]]:
    mods = _library_modules()
    graph = {}
    for name, path in mods.items():
        top, _, _ = _imports(path)
        graph[name] = {t for t in top if t in mods and t != name}
    return graph


def test_library_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(n, trail):
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycle.extend(trail[trail.index(m):] + [m] if m in trail else [n, m])
                return True
            if state.get(m) is None and visit(m, trail + [m]):
                return True
        state[n] = 2
        return False

    for n in sorted(graph):
        if state.get(n) is None and visit(n, [n]):
            break
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"


def test_no_library_import_inside_a_function_and_only_heavy_optional_ones_lazily():
    for name, path in _library_modules().items():
        _, inner, lazy = _imports(path)
        assert not inner, f"{name} imports {inner} inside a function (import at the top; no cycle to dodge)"
        odd = sorted(set(lazy) - LAZY_OK - {"fer"})
        assert not odd, f"{name} imports {odd} inside a function"


def test_algorithm_modules_never_import_stages():
    for name, targets in _graph().items():
        if name.startswith("fer.stages"):
            continue
        assert not any(t.startswith("fer.stages") for t in targets), f"{name} imports a stage: {targets}"


def test_no_sys_path_tricks_anywhere():
    hits = []
    for path in REPO.rglob("*"):
        if path.suffix not in (".py", ".smk") and path.name != "Snakefile":
            continue
        if any(part in (".venv", ".snakemake", "results") for part in path.parts):
            continue
        if re.search(r"sys\.path\.(insert|append)", path.read_text(errors="replace")):
            hits.append(str(path.relative_to(REPO)))
    assert hits == [] or hits == ["tests/test_layout.py"], hits


def test_every_user_error_class_lives_in_errors():
    for name, path in _library_modules().items():
        if name == "fer.errors":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not any(b.endswith("Error") for b in bases), f"{name}.{node.name} belongs in fer.errors"


# ------------------------------------------------------------------------------------------------- defaults
def _walk_schema(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk_schema(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk_schema(v, f"{path}[{i}]")


def test_schema_holds_no_default():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    found = [p for p, node in _walk_schema(schema) if "default" in node and isinstance(node.get("type", ""), (str, list))
             or "default" in node and "$ref" in node]
    assert found == [], f"the schema has defaults (they belong in config/config.yaml): {found}"


def test_config_yaml_sets_every_key_and_validates():
    cfg = fer_config.defaults()
    fer_config.validate(cfg, REPO / "config" / "schema.yaml", REPO)
    del cfg["kd"]["alpha"]
    with pytest.raises(fer_config.ConfigError, match=r"config key kd\.alpha: missing"):
        fer_config.validate(cfg, REPO / "config" / "schema.yaml", REPO)


def test_settings_sections_have_no_default_values():
    sections = [c for _, c in inspect.getmembers(settings, inspect.isclass)
                if dataclasses.is_dataclass(c) and issubclass(c, settings.Section) and c is not settings.Section]
    assert len(sections) >= 10
    for cls in sections:
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, \
                f"{cls.__name__}.{f.name} has a default (it belongs in config/config.yaml)"


def test_sections_build_from_the_config_and_refuse_unknown_or_missing_keys():
    cfg = fer_config.defaults()
    assert settings.TrainHP.of(cfg["train"]["teacher"]).epochs == cfg["train"]["teacher"]["epochs"]
    assert settings.TrainHP.of(cfg["prune"]["finetune"]).lr == cfg["prune"]["finetune"]["lr"]
    assert settings.Jetson.of(cfg["jetson"]).port == cfg["jetson"]["port"]
    with pytest.raises(KeyError, match="missing"):
        settings.KD.of({"temperature": 4.0})
    with pytest.raises(KeyError, match="unknown"):
        settings.KD.of({"temperature": 4.0, "alpha": 0.5, "beta": 1})


def test_stage_functions_take_no_default_values():
    from fer.stages import benchmark, compress, data, evaluate, report, train

    for module in (benchmark, compress, data, evaluate, report, train):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ != module.__name__ or name.startswith("_"):
                continue
            defaults = [p for p in inspect.signature(fn).parameters.values() if p.default is not p.empty]
            assert not defaults, f"{module.__name__}.{name} has defaults {[p.name for p in defaults]}"


# ------------------------------------------------------------------------------------------------- one hop
def test_each_rule_script_and_stage_share_the_rule_name():
    rules = {}
    derived = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", text, re.M | re.S):
            script = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+)\.py"', m.group(2))
            rules[m.group(1)] = script.group(1) if script else None
        for m in re.finditer(r"^use rule (\w+) as (\w+) with:", text, re.M):
            derived[m.group(2)] = m.group(1)
    scripts = {p.stem for p in (REPO / "scripts").glob("*.py")}
    assert rules, "no rule found"
    for rule, script in rules.items():
        if script is None:
            continue
        family = rule if script == rule else None
        # a rule that others derive from with `use rule` may name the shared script after the family
        if family is None:
            assert rule.startswith(script), f"rule {rule} runs scripts/{script}.py"
        text = (REPO / "scripts" / f"{script}.py").read_text()
        assert re.search(rf"from fer\.stages\.\w+ import [\w, ]*\b{script}\b", text), \
            f"scripts/{script}.py does not call a stage function named {script}"
    used = set(rules.values()) - {None}
    assert scripts == used, f"scripts without a rule: {sorted(scripts - used)}"
    for new, base in derived.items():
        assert new not in rules and base in rules, (new, base)


# ---------------------------------------------------------------------------------------------- project files
def test_conda_env_mirrors_requirements():
    req = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    req = [r for r in req if r]
    env = yaml.safe_load((REPO / "envs" / "fer.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pip == req


def test_top_level_layout():
    for name in ("Snakefile", "rules", "scripts", "config", "ck+", "weights", "results", "envs", "tests",
                 "README.md", "pyproject.toml", "docs", "bench"):
        assert (REPO / name).exists(), name
