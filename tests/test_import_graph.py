"""The import graph of model/, training/ and calculator/, built from the source: no circles.

Every ``import`` counts, those inside functions included (they dodge the error at import time, not
the tangle); imports under ``if TYPE_CHECKING:`` do not, since they never run. Importing a submodule
is an edge to that submodule only, not to the packages above it (whose ``__init__`` modules hold
docstrings and, in ``calculator``, the app factory).
"""
from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "training", "calculator")
#: training's subpackages, bottom layer first: each may import only those before it.
TRAINING_LAYERS = ("fitting", "paper", "evaluation", "development", "simulation", "report",
                   "external")
#: At most this many modules directly in training/ (the commands); the rest live in subpackages.
MAX_TOP_LEVEL_TRAINING_MODULES = 12


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES
            for path in sorted((REPO / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The project modules this module imports: for ``from X import Y``, X.Y when Y is a
    submodule, else X."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in modules and name != module}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = _modules()
    return {name: _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), name,
                           path.name == "__init__.py", set(modules))
            for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        return error.args[1]
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_is_built_from_the_source(graph):
    # a guard that the walker sees function-level and package-relative imports at all
    assert "calculator.interop.fhir_api" in graph["calculator.interop"]
    assert "training.fitting.cox" in graph["training.development.methods"]
    assert "training.paper.analyses" in graph["training.train"]


def test_no_import_circle_anywhere(graph):
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_a_circle_is_found_when_there_is_one(graph):
    tangled = {name: set(targets) for name, targets in graph.items()}
    tangled["training.fitting.newton"].add("training.development.methods")
    assert _cycle(tangled) is not None


def test_model_imports_neither_training_nor_calculator(graph):
    wrong = sorted(f"{name} -> {target}" for name, targets in graph.items()
                   if name.startswith("model") for target in targets
                   if target.split(".")[0] in ("training", "calculator"))
    assert not wrong, wrong


def test_training_subpackages_import_downward_only(graph):
    def layer(name: str) -> str | None:
        parts = name.split(".")
        return parts[1] if len(parts) > 2 and parts[0] == "training" else None

    wrong = []
    for name, targets in graph.items():
        here = layer(name)
        if here is None:
            continue
        for target in targets:
            there = layer(target)
            if target.startswith("training") and there is None:
                wrong.append(f"{name} -> {target} (a command module)")
            elif there and TRAINING_LAYERS.index(there) > TRAINING_LAYERS.index(here):
                wrong.append(f"{name} -> {target} (a layer above)")
    assert not wrong, wrong


def test_every_training_subpackage_has_a_layer_and_says_what_it_holds():
    subpackages = sorted(path.parent.name for path in (REPO / "training").glob("*/__init__.py"))
    assert sorted(TRAINING_LAYERS) == subpackages
    for name in subpackages:
        doc = ast.get_docstring(ast.parse((REPO / "training" / name / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) <= 8, name


def test_training_keeps_few_modules_at_its_top():
    top = [path.name for path in (REPO / "training").glob("*.py") if path.name != "__init__.py"]
    assert len(top) + 1 <= MAX_TOP_LEVEL_TRAINING_MODULES, sorted(top)


def test_interop_does_not_depend_on_the_json_api(graph):
    wrong = sorted(f"{name} -> {target}" for name, targets in graph.items()
                   if name.startswith("calculator.interop") for target in targets
                   if target in ("calculator.api", "calculator.web"))
    assert not wrong, wrong
    assert not any(target.startswith("calculator.interop") for target in graph["calculator.api"])
