"""docs/configuration.md lists every environment variable the code reads, and only those.

The source of model/, training/ and calculator/ is parsed (not imported): every
``os.environ.get(X)``, ``os.getenv(X)``, ``os.environ[X]``, ``os.environ.setdefault(X, ...)``,
``os.environ.pop(X)`` and ``X in os.environ`` is found, X resolved to its string (a literal, or a
module-level constant of the same file), and looked up on the page.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

PAGE = REPO / "docs" / "configuration.md"
PACKAGES = ("model", "training", "calculator")
_READS = {"get", "setdefault", "pop"}


def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` or a bare ``environ`` (``from os import environ``)."""
    return ((isinstance(node, ast.Attribute) and node.attr == "environ"
             and isinstance(node.value, ast.Name) and node.value.id == "os")
            or (isinstance(node, ast.Name) and node.id == "environ"))


def _constants(tree: ast.Module) -> dict[str, str]:
    found = {}
    for statement in tree.body:
        if (isinstance(statement, (ast.Assign, ast.AnnAssign))
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = statement.value.value
    return found


def environment_reads(source: str, where: str) -> list[tuple[str, str]]:
    """(variable or ``"?expression"``, where) for each environment access in ``source``."""
    tree = ast.parse(source)
    constants = _constants(tree)
    keys: list[tuple[ast.AST, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in _READS and _is_environ(node.func.value):
                keys.append((node.args[0], node.lineno))
            elif (node.func.attr == "getenv" and isinstance(node.func.value, ast.Name)
                  and node.func.value.id == "os"):
                keys.append((node.args[0], node.lineno))
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            keys.append((node.slice, node.lineno))
        elif (isinstance(node, ast.Compare) and len(node.ops) == 1
              and isinstance(node.ops[0], (ast.In, ast.NotIn)) and _is_environ(node.comparators[0])):
            keys.append((node.left, node.lineno))
    reads = []
    for key, line in keys:
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            name = key.value
        elif isinstance(key, ast.Name) and key.id in constants:
            name = constants[key.id]
        else:
            name = "?" + ast.unparse(key)
        reads.append((name, f"{where}:{line}"))
    return reads


def all_reads() -> list[tuple[str, str]]:
    reads = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            reads += environment_reads(path.read_text(encoding="utf-8"),
                                       str(path.relative_to(REPO)))
    return reads


def documented() -> set[str]:
    """Variables named in the first column of the page's tables."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", PAGE.read_text(encoding="utf-8"), re.M))


def test_every_environment_variable_the_code_reads_is_documented():
    reads = all_reads()
    unresolved = [where for name, where in reads if name.startswith("?")]
    assert not unresolved, f"environment read with a name the test cannot resolve: {unresolved}"
    missing = sorted({f"{name} ({where})" for name, where in reads if name not in documented()})
    assert not missing, f"read by the code but not in docs/configuration.md: {missing}"


def test_every_documented_cart_risk_variable_is_read_by_the_code():
    read = {name for name, _ in all_reads()}
    stale = sorted(name for name in documented() if name.startswith("CART_RISK_")
                   and name not in read)
    assert not stale, f"docs/configuration.md lists variables nothing reads: {stale}"


def test_every_setting_is_a_cart_risk_variable():
    others = sorted({name for name, _ in all_reads() if not name.startswith("CART_RISK_")})
    assert others == ["PROMETHEUS_MULTIPROC_DIR"]  # prometheus_client's own, set by the server


def test_the_scan_finds_each_kind_of_read():
    source = ('import os\nfrom os import environ\nKEY = "CART_RISK_A"\n'
              'os.environ.get(KEY)\nos.getenv("CART_RISK_B", "x")\nos.environ["CART_RISK_C"]\n'
              '"CART_RISK_D" in os.environ\nenviron.setdefault("CART_RISK_E", "1")\n'
              'os.environ.get(name)\n')
    assert environment_reads(source, "m.py") == [
        ("CART_RISK_A", "m.py:4"), ("CART_RISK_B", "m.py:5"), ("CART_RISK_C", "m.py:6"),
        ("CART_RISK_D", "m.py:7"), ("CART_RISK_E", "m.py:8"), ("?name", "m.py:9")]
