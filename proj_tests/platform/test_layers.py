"""The layers run one way, read from the imports (ast) of every module of proj_assets,
proj_resources and proj_cluster, including imports inside functions (a lazy import still runs):

config (profiles, partitions, settings) -> shared/ -> domains -> platform/ -> definitions.py ->
entry points (entrypoints/, proj_cluster), with proj_resources below the domains. No module
imports itself back through a circle; a domain imports another domain only where ALLOWED_DOMAIN_IMPORTS
says so. Pure core modules import no dagster, directly or through a project module they import."""

import ast
import re
from functools import cache
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("proj_assets", "proj_resources", "proj_cluster")
DOMAINS = ("market", "scaling", "probes", "sft")
# domain -> the other domains it may import (scaling trains on market's features and splits)
ALLOWED_DOMAIN_IMPORTS = {"scaling": {"market"}}
SHELL_NAMES = re.compile(r"^(assets(_\w+)?|checks|schedules|sensors|definitions)$")
# Domain helpers that exist to serve the shell (they read the Dagster instance for asset bodies).
SHELL_HELPERS = {
    "proj_assets.sft.lineage": "finds upstream artifacts through the run's instance",
    "proj_assets.sft.budget_guard": "reads the domain's recorded spend from the instance",
}
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


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` except those under `if TYPE_CHECKING:` (annotations only, never run)."""
    for node in ast.iter_child_nodes(tree):
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        ):
            continue
        yield node
        yield from _runtime_nodes(node)


@cache
def imports(name: str) -> frozenset[str]:
    """Every module `name` imports at run time: project modules by full name (and their
    packages), others by their top-level name."""
    found: set[str] = set()
    for node in _runtime_nodes(modules()[name]):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[: -node.level] if name in modules() else []
                base = ".".join([*package, base] if base else package)
            targets = [base] + [
                f"{base}.{alias.name}"
                for alias in node.names
                if f"{base}.{alias.name}" in modules()
            ]
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
    if parts[0] == "proj_cluster":
        return "entrypoints"
    if len(parts) == 1 or (
        len(parts) == 2 and parts[1] in (*DOMAINS, "shared", "platform", "entrypoints")
    ):
        return "package"  # a package's __init__ (docstring only)
    if parts[1] in DOMAINS:
        return "config" if len(parts) == 3 and parts[2] == "settings" else "domain"
    if parts[1] in ("shared", "platform", "entrypoints"):
        return parts[1]
    return "definitions" if parts[1] == "definitions" else "config"


def domain_of(name: str) -> str | None:
    parts = name.split(".")
    return (
        parts[1] if parts[0] == "proj_assets" and len(parts) > 2 and parts[1] in DOMAINS else None
    )


@cache
def pure_modules() -> tuple[str, ...]:
    """Domain modules outside the shell, the pure loaders and hashing of proj_resources, config
    modules other than partitions.py (it builds Dagster partitions), and any module whose
    docstring says it is pure."""
    pure = []
    for name, tree in modules().items():
        doc = ast.get_docstring(tree) or ""
        short = name.split(".")[-1]
        if (
            (layer(name) == "domain" and not SHELL_NAMES.match(short) and name not in SHELL_HELPERS)
            or name.startswith("proj_resources.loaders")
            or name == "proj_resources.hashing"
            or (layer(name) == "config" and name != "proj_assets.partitions")
            or DECLARED_PURE.search(doc)
        ):
            pure.append(name)
    return tuple(sorted(pure))


def _violations(rule) -> list[str]:
    return [
        f"{name} imports {target}"
        for name in sorted(modules())
        for target in sorted(imports(name))
        if target in modules() and rule(name, target)
    ]


def test_the_modules_the_issue_named_are_pure_and_found_by_the_rule():
    named = {
        "proj_assets.market.validation",
        "proj_assets.market.plots",
        "proj_assets.probes.report",
        "proj_assets.sft.completion_model",
        "proj_assets.sft.lora_training",
        "proj_resources.loaders.models",
        "proj_resources.loaders.market_data",
        "proj_assets.shared.markdown",
        "proj_assets.platform.status",
        "proj_assets.platform.status_model",
        "proj_assets.platform.status_sections",
    }
    assert named <= set(pure_modules())


@pytest.mark.parametrize("name", pure_modules())
def test_pure_module_imports_no_dagster(name):
    chain = reaches(name, "dagster")
    assert chain is None, " -> ".join(chain or ())


def test_shared_imports_no_domain_platform_definitions_or_profile():
    """The profile module imports every domain's settings, so shared helpers take settings as arguments."""
    assert (
        _violations(
            lambda n, t: layer(n) == "shared"
            and (
                layer(t) in ("domain", "platform", "definitions", "entrypoints")
                or domain_of(t) is not None
                or t == "proj_assets.profiles"
            )
        )
        == []
    )


def test_domains_import_no_platform_definitions_or_entry_points():
    assert (
        _violations(
            lambda n, t: layer(n) == "domain"
            and layer(t) in ("platform", "definitions", "entrypoints")
        )
        == []
    )


def test_platform_imports_no_definitions_or_entry_points():
    assert (
        _violations(
            lambda n, t: layer(n) == "platform" and layer(t) in ("definitions", "entrypoints")
        )
        == []
    )


def test_domains_import_other_domains_only_where_allowed():
    def crosses(name: str, target: str) -> bool:
        mine, theirs = domain_of(name), domain_of(target)
        return (
            mine is not None
            and theirs not in (None, mine)
            and theirs not in ALLOWED_DOMAIN_IMPORTS.get(mine, ())
        )

    assert _violations(crosses) == []


def _cycles() -> list[list[str]]:
    """Every import circle among project modules (Tarjan's strongly connected components)."""
    graph = {
        n: [t for t in imports(n) if t in modules() and layer(t) != "package"] for n in modules()
    }
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    assert _cycles() == []


def test_the_cycle_finder_finds_a_circle():
    modules()["proj_assets.shared.fake_a"] = ast.parse("import proj_assets.shared.fake_b\n")
    modules()["proj_assets.shared.fake_b"] = ast.parse(
        "def f():\n    from proj_assets.shared import fake_a\n"
    )
    try:
        imports.cache_clear()
        assert ["proj_assets.shared.fake_a", "proj_assets.shared.fake_b"] in _cycles()
    finally:
        del modules()["proj_assets.shared.fake_a"], modules()["proj_assets.shared.fake_b"]
        imports.cache_clear()


def _own_pure_core(name: str, target: str) -> bool:
    """A domain's settings may validate a profile with that domain's pure core (e.g. scaling's
    budgets against its architecture grid); the pure test covers what that imports."""
    return name.split(".")[:2] == target.split(".")[:2] and target in pure_modules()


def test_config_imports_only_config():
    assert (
        _violations(
            lambda n, t: layer(n) == "config"
            and layer(t) not in ("config", "package")
            and not _own_pure_core(n, t)
        )
        == []
    )


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
    for entry_point in ("proj_assets.entrypoints.cli", "proj_assets.entrypoints.demo"):
        assert ENTRY_POINTS_MAY_LOAD in imports(entry_point) and entry_point not in loaded


def test_the_rules_catch_a_violation():
    """The import reader sees lazy imports inside functions and imports through a project module."""
    tree = ast.parse("def f():\n    from proj_assets.definitions import defs\n")
    modules()["proj_assets.platform.fake_for_test"] = tree
    try:
        assert "proj_assets.definitions" in imports("proj_assets.platform.fake_for_test")
        assert reaches("proj_assets.platform.fake_for_test", "dagster")[-1] == "dagster"
    finally:
        del modules()["proj_assets.platform.fake_for_test"]
        imports.cache_clear()
        reaches.cache_clear()
