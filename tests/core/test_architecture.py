"""The architecture, kept (issue 14): the layer order of CONTRIBUTING.md, no import cycle,
and no function over 60 lines or file over 450 lines but the exceptions CONTRIBUTING.md names.

The layers are read from CONTRIBUTING.md's module map itself, so the document and the test
cannot drift apart: a module missing from the map fails here too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "doku_async"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 450


def _section(title: str) -> str:
    text = CONTRIBUTING.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"CONTRIBUTING.md has no '## {title}' section"
    return match.group(1)


def layers() -> dict[str, int]:
    """Module (dotted, under ``doku_async``) or package prefix -> its layer number, from the
    "Layers" table: ``| 3 | `_pipeline`, `_settlement` | ... |``."""
    found: dict[str, int] = {}
    for line in _section("Layers").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].isdigit():
            continue
        for name in re.findall(r"`([\w.]+)`", cells[1]):
            found[name] = int(cells[0])
    assert found, "the Layers table is empty"
    return found


def exceptions() -> set[str]:
    """``path`` or ``path:function`` entries of the "Size exceptions" list."""
    return set(re.findall(r"^- `([^`]+)`", _section("Size exceptions"), re.M))


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts) or "__init__"  # the package's own __init__


def layer_of(module: str, table: dict[str, int]) -> int:
    best = ""
    for name in table:
        if (module == name or module.startswith(name + ".")) and len(name) > len(best):
            best = name
    assert best, f"doku_async.{module} is not in CONTRIBUTING.md's Layers table"
    return table[best]


def imports_of(path: Path) -> set[str]:
    """The ``doku_async`` modules ``path`` imports (relative imports resolved), at run time:
    imports under ``if TYPE_CHECKING:`` are not counted."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = [".".join(filter(None, [target, a.name])) for a in node.names]
                found.update(n for n in [target, *names] if n)
            elif node.module and node.module.startswith("doku_async"):
                found.add(node.module.removeprefix("doku_async").lstrip("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("doku_async."):
                    found.add(alias.name.removeprefix("doku_async."))
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules and name != module_name(path)}


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    table = layers()
    own = layer_of(module_name(path), table)
    higher = {m: layer_of(m, table) for m in imports_of(path) if layer_of(m, table) > own}
    assert not higher, f"{module_name(path)} (layer {own}) imports higher layers: {higher}"


def test_there_is_no_import_cycle() -> None:
    graph = {module_name(p): imports_of(p) for p in SOURCES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function, docstrings (its own and attribute docstrings) not counted."""
    lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
    for child in ast.walk(node):
        if (
            isinstance(child, ast.Expr)
            and isinstance(child.value, ast.Constant)
            and isinstance(child.value.value, str)
        ):
            lines -= child.end_lineno - child.lineno + 1  # type: ignore[operator]
    return lines


def oversized() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        rel = str(path.relative_to(ROOT))
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_FILE_LINES:
            found.add(rel)
        for node in ast.walk(ast.parse(text)):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and _code_lines(node) > MAX_FUNCTION_LINES
            ):
                found.add(f"{rel}:{node.name}")
    return found


def test_no_function_or_file_is_over_the_limits_but_the_named_exceptions() -> None:
    unnamed = oversized() - exceptions()
    assert not unnamed, (
        f"over {MAX_FUNCTION_LINES} lines per function or {MAX_FILE_LINES} per file, and not "
        f"named in CONTRIBUTING.md's 'Size exceptions': {sorted(unnamed)}"
    )


def test_every_named_exception_is_still_needed() -> None:
    """An exception that no longer applies is taken off the list."""
    stale = exceptions() - oversized()
    assert not stale, f"CONTRIBUTING.md names exceptions that are within the limits: {stale}"


def test_resources_and_the_bulk_runner_use_no_private_attribute_of_another_module() -> None:
    """``x._name`` on an object from elsewhere (``self._name`` and module-level private
    imports of the same package are fine)."""
    offenders: list[str] = []
    for path in [*(PACKAGE / "resources").glob("*.py"), *(PACKAGE / "bulk").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert not offenders, offenders
