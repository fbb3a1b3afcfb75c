"""The house: harness's subpackages import one another only along the flow, with no circles.

cases (what is tested) -> checks, timing (how it is checked and timed) -> results (stored,
compared, gated) -> reports; the CLI, the pytest plugin and ``harness run`` sit on top. Only
module-level imports count: an import inside a function runs when that function does.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "harness"
LAYERS = ("cases", "checks", "timing", "results", "reports")
#: What each subpackage may import at module level (besides itself, engines and third parties).
ALLOWED = {
    "cases": set(),
    "checks": {"cases", "results"},
    "timing": {"cases", "results"},
    "results": set(),
    "reports": {"results"},
}
#: Top-level modules any layer may import: the package itself (its __version__, its folder) and
#: a utility that imports nothing of the harness.
SHARED = {"harness", "harness._signals"}
#: Third-party packages that a subpackage's modules may not import at module level.
TEST_TOOLS = ("pytest", "_pytest", "pytest_benchmark", "xdist", "hypothesis")
#: Imported only inside the functions that draw: importing a module of the harness never loads it.
PLOTTING = "matplotlib"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(HARNESS.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported: not in functions, not under TYPE_CHECKING."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import"
                module = node.module or ""
                found.add(module)
                # `from harness.x import y` may import the submodule harness.x.y
                found.update(f"{module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not _type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With | ast.ClassDef):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


MODULES = _modules()
GRAPH = {
    name: {m for m in _top_level_imports(path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def _layer(module: str) -> str | None:
    """'cases', 'checks', ... for a subpackage's module; None for the top (cli, plugin, ...)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


@pytest.mark.parametrize("module", [m for m in MODULES if _layer(m)])
def test_a_subpackage_imports_only_along_the_flow(module: str) -> None:
    layer = _layer(module)
    assert layer is not None
    for imported in sorted(GRAPH[module]):
        if imported in SHARED:
            continue
        target = _layer(imported)
        assert target is not None, f"{module} imports {imported}, which sits on top of it"
        assert target == layer or target in ALLOWED[layer], (
            f"{module} imports {imported}: {layer}/ may import "
            f"{sorted(ALLOWED[layer]) or 'no other subpackage'} at module level"
        )


@pytest.mark.parametrize("module", list(MODULES))
def test_only_the_plugin_and_the_checks_import_test_tools(module: str) -> None:
    tools = {m.split(".")[0] for m in _top_level_imports(MODULES[module])} & set(TEST_TOOLS)
    allowed = {"harness.plugin": {"pytest"}}.get(module, set())
    if _layer(module) == "checks":
        allowed = {"hypothesis"}
    assert tools <= allowed, f"{module} imports {sorted(tools - allowed)} at module level"


@pytest.mark.parametrize("module", list(MODULES))
def test_no_module_imports_matplotlib_at_module_level(module: str) -> None:
    imported = {m.split(".")[0] for m in _top_level_imports(MODULES[module])}
    assert PLOTTING not in imported, f"{module} imports {PLOTTING} at module level"


def test_shared_modules_import_nothing_of_the_harness() -> None:
    for module in SHARED:
        assert not GRAPH[module], f"{module} imports {sorted(GRAPH[module])}"


def test_no_import_circles() -> None:
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            circle = " -> ".join((*path[path.index(module) :], module))
            pytest.fail(f"import circle: {circle}")
        if module in done:
            return
        for imported in sorted(GRAPH[module]):
            visit(imported, (*path, module))
        done.add(module)

    for module in MODULES:
        visit(module, ())


def test_engines_never_import_harness() -> None:
    for path in sorted((ROOT / "engines").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "harness" for n in names), f"{path} imports harness"


_LOADED = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(*modules: str) -> set[str]:
    """Every module loaded by importing ``modules`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _LOADED, *modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return set(json.loads(out.stdout))


def test_results_and_reports_run_on_json_alone() -> None:
    """What `harness report`, `gate` and `history` import: no cases, checks, timing, pytest,
    matplotlib (until a plot is drawn)."""
    modules = [m for m in MODULES if _layer(m) in ("results", "reports")]
    loaded = _loaded(*modules)
    upstream = sorted(m for m in loaded if _layer(m) in ("cases", "checks", "timing"))
    tools = sorted(m for m in loaded if m.split(".")[0] in (*TEST_TOOLS, PLOTTING))
    assert not upstream, f"results/ and reports/ load {upstream}"
    assert not tools, f"results/ and reports/ load {tools}"


def test_the_cli_loads_no_test_tools_until_a_command_runs() -> None:
    loaded = _loaded("harness.cli", "harness.worker")
    assert not sorted(m for m in loaded if m.split(".")[0] in TEST_TOOLS)
