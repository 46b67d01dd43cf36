"""Dependencies between the project's packages point one way: no cycle comes back.

Every module's imports are read with ``ast`` (module level, inside functions, relative imports,
and ``import_module``/``__import__`` with a literal name), so an import hidden inside a function
counts like any other. ``ALLOWED`` is the intended layering, bottom first: the event schema and
the mixin (the one thresholds file, with the flag rules) import nothing of the project; the
exporter (whose flag detector reads the thresholds) and the store only those; readers of
the store above them; the composition root (``groundtruth``) wires everything; tests and
benchmarks share the real services of ``testservices`` and never import each other.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION = {
    "schema",
    "mixin",
    "graph",
    "exporter",
    "store",
    "graphapi",
    "incident",
    "dashboards",
    "alerts",
    "groundtruth",
    "policy",
    "baseline",
}
# Package -> the other project packages it may import.
ALLOWED = {
    "schema": set(),
    "mixin": set(),
    # Policies are read by the exporter's detector (live deviations) and by baseline's CLI.
    "policy": {"schema", "mixin"},
    "exporter": {"schema", "mixin", "policy"},
    "store": {"schema"},
    "graph": {"schema", "store"},
    # graphapi's pages show the incident commands' ancestry and timeline, from their code.
    "graphapi": {"schema", "mixin", "store", "graph", "incident"},
    "incident": {"schema", "mixin", "store", "graph"},
    "dashboards": {"schema", "mixin"},
    "alerts": {"schema", "mixin"},
    # Learns from the store as the incident commands read it; replays ancestry and runs policy
    # tests through the exporter's own detector.
    "baseline": {"schema", "mixin", "store", "graph", "incident", "policy", "exporter"},
    "groundtruth": PRODUCTION - {"groundtruth"},
    "testservices": PRODUCTION,
    "tests": PRODUCTION | {"testservices"},
    "bench": PRODUCTION | {"testservices"},
}


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, wherever it is written.

    ``module`` is the dotted name of the module the source belongs to (for relative imports).
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            found.append((node.lineno, ".".join([*base, *filter(None, [node.module])])))
        elif isinstance(node, ast.Call) and _dynamic_import_name(node):
            found.append((node.lineno, _dynamic_import_name(node)))
    return sorted(found)


def _dynamic_import_name(call: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def project_packages() -> set[str]:
    return {p.parent.name for p in ROOT.glob("*/__init__.py")}


def modules():
    """(path, dotted module name, is a package's __init__) of every module of every package."""
    for package in sorted(project_packages()):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            yield path, ".".join(parts[:-1] if is_package else parts), is_package


def wrong_way(where: str, source: str, module: str, is_package: bool = False) -> list[str]:
    """``where:line imports name (...)`` for each import of ``source`` that ALLOWED forbids."""
    owner = module.split(".")[0]
    wrong = []
    for line, name in imported_modules(source, module, is_package):
        target = name.split(".")[0]
        if target in ALLOWED and target != owner and target not in ALLOWED[owner]:
            wrong.append(f"{where}:{line} imports {name} ({owner} may not import {target})")
    return wrong


def wrong_way_imports() -> list[str]:
    return [
        problem
        for path, module, is_package in modules()
        for problem in wrong_way(str(path.relative_to(ROOT)), path.read_text(), module, is_package)
    ]


def test_every_package_has_a_place_in_the_layering():
    assert project_packages() == set(ALLOWED)


def test_imports_point_one_way():
    assert wrong_way_imports() == []


def test_the_layering_has_no_cycle():
    try:
        order = list(TopologicalSorter(ALLOWED).static_order())
    except CycleError as e:
        raise AssertionError(f"the allowed imports form a cycle: {e.args[1]}") from None
    assert order.index("schema") < order.index("exporter") < order.index("groundtruth")
    assert order.index("mixin") < order.index("dashboards")
    assert order.index("mixin") < order.index("alerts")


def test_the_reader_sees_imports_inside_functions_and_relative_ones():
    source = (
        "import store.db\n"
        "from exporter.config import ConfigError\n"
        "def make():\n"
        "    from store.sink import open_sink\n"
        "    importlib.import_module('alerts.cli')\n"
        "from . import sinks\n"
        "from ..schema import events\n"
    )
    assert imported_modules(source, "exporter.sinks.factory") == [
        (1, "store.db"),
        (2, "exporter.config"),
        (4, "store.sink"),
        (5, "alerts.cli"),
        (6, "exporter.sinks"),
        (7, "exporter.schema"),
    ]


def test_an_import_the_wrong_way_is_reported_with_its_place():
    source = "import schema.events\ndef make():\n    from store.sink import open_sink\n"
    assert wrong_way("exporter/x.py", source, "exporter.x") == [
        "exporter/x.py:3 imports store.sink (exporter may not import store)"
    ]
    assert wrong_way("groundtruth/x.py", source, "groundtruth.x") == []
