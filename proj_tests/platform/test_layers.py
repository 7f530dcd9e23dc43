"""The layers run one way, read from the imports (ast) of every module of proj_assets and
proj_resources, including imports inside functions (a lazy import still runs):

config (profiles, partitions, settings) -> shared/ -> domains -> ops/ -> definitions.py, with
proj_resources below the domains. Pure core modules import no dagster, directly or through a
project module they import."""

import ast
import re
from functools import cache
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("proj_assets", "proj_resources")
DOMAINS = ("market", "scaling", "probes", "sft")
SHELL_NAMES = re.compile(r"^(assets(_\w+)?|checks|schedules|sensors)$")
# Domain helpers that exist to serve the shell (they read the Dagster instance for asset bodies).
SHELL_HELPERS = {"proj_assets.sft.lineage": "finds upstream artifacts through the run's instance",
                 "proj_assets.sft.budget_guard": "reads the domain's recorded spend from the instance"}
# A docstring that calls its module pure ("Pure code", "(pure ...", "no dagster import") is held to it.
DECLARED_PURE = re.compile(r"no dagster|pure code|\(pure\b|^pure\b", re.IGNORECASE)
ENTRY_POINTS_MAY_LOAD = "proj_assets.definitions"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            found[_module_name(path)] = ast.parse(path.read_text(), filename=str(path))
    return found


def _parents(name: str) -> list[str]:
    """A module and the packages whose __init__ importing it runs."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@cache
def imports(name: str) -> frozenset[str]:
    """Every module `name` imports: project modules by full name (and their packages), others by
    their top-level name."""
    found: set[str] = set()
    for node in ast.walk(modules()[name]):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[:-node.level] if name in modules() else []
                base = ".".join([*package, base] if base else package)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules()]
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                found.update(p for p in _parents(target) if p in modules() and p != name)
            else:
                found.add(target.split(".")[0])
    return frozenset(found)


@cache
def reaches(name: str, predicate_name: str) -> tuple[str, ...] | None:
    """A chain of project imports from `name` to a module outside the project matching
    `predicate_name` ('dagster'), or None."""
    return _chain(name, predicate_name, frozenset())


def _chain(name: str, external: str, seen: frozenset) -> tuple[str, ...] | None:
    for target in sorted(imports(name)):
        if target not in modules():
            if target == external or target.startswith(f"{external}_"):
                return (name, target)
        elif target not in seen:
            rest = _chain(target, external, seen | {name})
            if rest:
                return (name, *rest)
    return None


def layer(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "proj_resources":
        return "resources"
    if len(parts) == 1 or (len(parts) == 2 and parts[1] in (*DOMAINS, "shared", "ops")):
        return "package"  # a package's __init__ (docstring only)
    if parts[1] in DOMAINS:
        return "config" if len(parts) == 3 and parts[2] == "settings" else "domain"
    if parts[1] in ("shared", "ops"):
        return parts[1]
    return "definitions" if parts[1] == "definitions" else "config"


@cache
def pure_modules() -> tuple[str, ...]:
    """Domain modules outside the shell, the pure loaders and hashing of proj_resources, config
    modules other than partitions.py (it builds Dagster partitions), and any module whose
    docstring says it is pure."""
    pure = []
    for name, tree in modules().items():
        doc = ast.get_docstring(tree) or ""
        short = name.split(".")[-1]
        if ((layer(name) == "domain" and not SHELL_NAMES.match(short) and name not in SHELL_HELPERS)
                or name.startswith("proj_resources.loaders") or name == "proj_resources.hashing"
                or (layer(name) == "config" and name != "proj_assets.partitions") or DECLARED_PURE.search(doc)):
            pure.append(name)
    return tuple(sorted(pure))


def _violations(rule) -> list[str]:
    return [f"{name} imports {target}" for name in sorted(modules()) for target in sorted(imports(name))
            if target in modules() and rule(name, target)]


def test_the_modules_the_issue_named_are_pure_and_found_by_the_rule():
    named = {"proj_assets.market.validation", "proj_assets.market.plots", "proj_assets.probes.report",
             "proj_assets.sft.completion_model", "proj_assets.sft.lora_training", "proj_resources.loaders.models",
             "proj_resources.loaders.market_data", "proj_assets.shared.markdown", "proj_assets.ops.status"}
    assert named <= set(pure_modules())


@pytest.mark.parametrize("name", pure_modules())
def test_pure_module_imports_no_dagster(name):
    chain = reaches(name, "dagster")
    assert chain is None, " -> ".join(chain or ())


def test_shared_imports_no_domain_ops_or_definitions():
    assert _violations(lambda n, t: layer(n) == "shared" and layer(t) in ("domain", "ops", "definitions")) == []


def test_domains_import_no_ops_or_definitions():
    assert _violations(lambda n, t: layer(n) == "domain" and layer(t) in ("ops", "definitions")) == []


def _own_pure_core(name: str, target: str) -> bool:
    """A domain's settings may validate a profile with that domain's pure core (e.g. scaling's
    budgets against its architecture grid); the pure test covers what that imports."""
    return name.split(".")[:2] == target.split(".")[:2] and target in pure_modules()


def test_config_imports_only_config():
    assert _violations(lambda n, t: layer(n) == "config" and layer(t) not in ("config", "package")
                       and not _own_pure_core(n, t)) == []


def test_resources_import_nothing_of_proj_assets():
    assert _violations(lambda n, t: layer(n) == "resources" and t.startswith("proj_assets")) == []


def test_nothing_definitions_loads_imports_it_back():
    """Entry points (the CLI, the demo runner) may load `proj_assets.definitions`: definitions.py
    does not import them."""
    loaded, todo = set(), ["proj_assets.definitions"]
    while todo:
        for target in imports(todo.pop()):
            if target in modules() and target not in loaded:
                loaded.add(target)
                todo.append(target)
    back = sorted(n for n in loaded if ENTRY_POINTS_MAY_LOAD in imports(n))
    assert back == [], f"loaded by definitions.py and importing it: {back}"
    for entry_point in ("proj_assets.ops.cli", "proj_assets.ops.materialize_all"):
        assert ENTRY_POINTS_MAY_LOAD in imports(entry_point) and entry_point not in loaded


def test_the_rules_catch_a_violation():
    """The import reader sees lazy imports inside functions and imports through a project module."""
    tree = ast.parse("def f():\n    from proj_assets.definitions import defs\n")
    modules()["proj_assets.ops.fake_for_test"] = tree
    try:
        assert "proj_assets.definitions" in imports("proj_assets.ops.fake_for_test")
        assert reaches("proj_assets.ops.fake_for_test", "dagster")[-1] == "dagster"
    finally:
        del modules()["proj_assets.ops.fake_for_test"]
        imports.cache_clear()
        reaches.cache_clear()
