"""The import rules of docs/architecture.md, read from the code itself (ast): services never
import each other, the kernel contexts import no service, nothing in `shared/` imports the
entry points, and the triggers reach only the composition root and the messages."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"ingestion", "shipping", "invoices", "retention", "privacy"}
KERNEL = {"orders", "crypto", "storage", "telemetry"}
ENTRY_POINTS = ("function_app", "functions", "local", "ops", "tests")
TRIGGERS_MAY_IMPORT = {"shared.app.runtime", "shared.orders.messages"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return found


def _context(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "shared" and len(parts) > 2 else None


def _modules(folder: str) -> dict[str, set[str]]:
    return {
        str(p.relative_to(ROOT).with_suffix("")).replace("/", "."): _imports(p)
        for p in (ROOT / folder).rglob("*.py")
    }


def test_shared_holds_packages_and_at_most_two_flat_modules() -> None:
    flat = sorted(p.name for p in (ROOT / "shared").glob("*.py") if p.name != "__init__.py")
    packages = [p for p in (ROOT / "shared").iterdir() if (p / "__init__.py").exists()]
    assert len(flat) <= 2, flat
    assert len(packages) >= 6


def test_services_do_not_import_each_other() -> None:
    for module, imports in _modules("shared").items():
        own = _context(module)
        if own in SERVICES:
            sideways = {i for i in imports if _context(i) in SERVICES - {own}}
            assert not sideways, f"{module} imports {sorted(sideways)}"


def test_kernel_contexts_import_no_service_and_not_the_composition_root() -> None:
    for module, imports in _modules("shared").items():
        if _context(module) in KERNEL:
            upward = {i for i in imports if _context(i) in SERVICES | {"app"}}
            assert not upward, f"{module} imports {sorted(upward)}"


def test_only_the_composition_root_imports_it() -> None:
    for module, imports in _modules("shared").items():
        if _context(module) != "app":
            assert not {i for i in imports if _context(i) == "app"}, module


def test_shared_never_imports_an_entry_point() -> None:
    for module, imports in _modules("shared").items():
        bad = {i for i in imports if i.split(".")[0] in ENTRY_POINTS}
        assert not bad, f"{module} imports {sorted(bad)}"


def test_triggers_reach_only_the_runtime_and_the_messages() -> None:
    for module, imports in _modules("functions").items():
        ours = {i for i in imports if i.startswith("shared.")}
        reached = {i for i in ours if any(i == m or i.startswith(m + ".") for m in TRIGGERS_MAY_IMPORT)}
        assert ours - {"shared.app", "shared.orders"} <= reached, f"{module} imports {sorted(ours - reached)}"


def _stage_writes(path: Path) -> list[int]:
    """Lines that set an order's stage: `stage=Stage.X` anywhere, or `.evolve(stage=...)`."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg != "stage":
                continue
            value = keyword.value
            literal = isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)
            literal = literal and value.value.id == "Stage"  # type: ignore[union-attr]
            evolve = isinstance(node.func, ast.Attribute) and node.func.attr == "evolve"
            if literal or evolve:
                lines.append(node.lineno)
    return lines


def test_only_the_lifecycle_writes_a_stage() -> None:
    lifecycle = ROOT / "shared" / "orders" / "lifecycle.py"
    assert _stage_writes(lifecycle), "the check would be vacuous: the lifecycle writes no stage"
    for path in (ROOT / "shared").rglob("*.py"):
        if path != lifecycle:
            assert _stage_writes(path) == [], f"{path.relative_to(ROOT)} writes a stage"


def test_module_docstrings_say_what_a_module_is_in_a_few_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): len(doc.splitlines())
        for folder in ("shared", "ops")
        for path in (ROOT / folder).rglob("*.py")
        if (doc := ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False))
        and len(doc.splitlines()) > 15
    }
    assert long == {}, "design reasoning belongs in docs/"
