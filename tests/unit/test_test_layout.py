"""Test modules do not import each other: what several tests share lives in helper modules
(tests/fakes.py, tests/builders.py, tests/worlds/), never in a test_*.py module, and nothing
else in the repository (the benchmarks in local/ included) imports a test module either."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("tests", "local", "shared", "ops", "functions")


def _imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module name an import statement names, with the names of `from x import a, b`
    both as `x` and `x.a`, `x.b` (which may be modules)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _is_test_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "tests" and (
        any(part.startswith("test_") for part in parts) or parts[1:2] in (["unit"], ["integration"])
    )


def test_no_module_imports_a_test_module() -> None:
    offenders = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            if "tests" not in text:
                continue  # names no module of tests/ at all: nothing to parse
            tree = ast.parse(text, filename=str(path))
            offenders += [
                f"{path.relative_to(ROOT)}:{line}: {name}"
                for line, name in _imported(tree)
                if _is_test_module(name)
            ]
    assert not offenders, "move what is shared to tests/fakes.py, builders.py or worlds/:\n" + "\n".join(
        offenders
    )


def test_the_check_sees_every_form_of_import() -> None:
    source = (  # "tests" and the rest apart, so that a grep for such imports finds none here
        "from {t}.unit.test_ingestion import World\n"
        "from {t}.unit import test_privacy\n"
        "import {t}.integration.test_shipping_handoff\n"
        "def f():\n    from {t}.integration.conftest import x\n"
        "from {t}.worlds.ingestion import World\n"
        "from {t} import fakes\n"
    ).format(t="tests")
    found = sorted({line for line, name in _imported(ast.parse(source)) if _is_test_module(name)})
    assert found == [1, 2, 3, 5]
