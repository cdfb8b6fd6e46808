"""The package's plumbing: what imports what, what `import eventseq` loads, and the README's Layout."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "eventseq"

# Import circles closed by imports inside functions, still to be taken apart. The list may only shrink.
KNOWN_FUNCTION_LEVEL_CIRCLES: list[set[str]] = []


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(path: Path, module_level_only: bool) -> list[ast.ImportFrom | ast.Import]:
    tree = ast.parse(path.read_text())
    if not module_level_only:
        return [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    # module level, leaving out `if TYPE_CHECKING:` blocks (annotations only, never run)
    return [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]


def _graph(module_level_only: bool) -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _imports(path, module_level_only):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("eventseq"):
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_module_imports_another_modules_private_names():
    private = []
    for name, path in _modules().items():
        for node in _imports(path, module_level_only=False):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("eventseq"):
                private += [f"{name} imports {node.module}.{alias.name}" for alias in node.names
                            if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert private == []


def test_no_import_circle_at_module_level():
    assert _circles(_graph(module_level_only=True)) == []


def test_import_circles_through_function_level_imports_only_shrink():
    circles = _circles(_graph(module_level_only=False))
    assert all(circle in KNOWN_FUNCTION_LEVEL_CIRCLES for circle in circles), circles


def _loaded_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running `code`."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({name.split('.')[0] for name in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_import_eventseq_loads_nothing_heavy():
    loaded = _loaded_after("import eventseq")
    assert not loaded & {"torch", "lightning", "sklearn", "pandas", "polars"}
    assert "torch" in _loaded_after("import eventseq\neventseq.train")  # a name loads what it needs


def test_the_commands_help_loads_no_model_code():
    loaded = _loaded_after("from eventseq.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert not loaded & {"torch", "lightning", "sklearn"}


def test_readme_layout_names_every_module():
    layout = re.search(r"## Layout\n\n```\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    listed = set(re.findall(r"[\w]+\.py", layout))
    modules = {path.name for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    assert sorted(modules - listed) == []


def test_the_package_ships_its_license_and_a_changelog():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and "Apache License" in (ROOT / "LICENSE").read_text()
    assert project["license-files"] == ["LICENSE"]
    assert any(classifier.endswith(":: 3.11") for classifier in project["classifiers"])  # the version tested
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")
