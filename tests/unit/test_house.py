"""House rules read from the source: no import circle, no process module imported by another
and nothing outside tests/ importing tests, no file over 400 lines in services/,
commands/, stages/ or shared/, and
tests that wait on events (at most 8 deliberate sleeps, each explained)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "commands", "stages", "shared", "training", "bench")
#: Who may import whom: processes (services) and commands -> stages -> shared. Each may import
#: itself and the layers after it; processes and commands never import each other.
ALLOWED = {
    "services": {"services", "stages", "shared"},
    "commands": {"commands", "stages", "shared"},
    "stages": {"stages", "shared"},
    "shared": {"shared"},
}
MAX_LINES = 400
MAX_SLEEPS = 8


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Project modules ``path`` imports, at any level of the file (lazy imports included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for imported in targets:
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (REPO / folder).rglob("*.py"))


def test_no_import_circle_among_the_projects_modules() -> None:
    paths = _sources(*PACKAGES)
    modules = {_module_name(path) for path in paths}
    graph = {_module_name(path): _imports(path, modules) for path in paths}
    # A package's __init__ re-exporting its modules is not a circle of its own.
    graph = {
        name: {t for t in targets if not name.startswith(t + ".")}
        for name, targets in graph.items()
    }
    assert _cycles(graph) == []


def _graph(*folders: str) -> dict[str, set[str]]:
    """Module -> the project modules it imports, for the modules under ``folders`` (the
    targets may be anywhere in the project, tests included)."""
    everything = _sources(*PACKAGES, "tests")
    modules = {_module_name(path) for path in everything}
    return {_module_name(path): _imports(path, modules) for path in _sources(*folders)}


def _is_process(module: str) -> bool:
    """A service's process module: ``services.<name>.main`` (settings, sockets, loops)."""
    parts = module.split(".")
    return len(parts) == 3 and parts[0] == "services" and parts[2] == "main"


def test_no_process_module_is_imported_by_the_house() -> None:
    """What several processes or commands share lives beside them, never in a ``main``: only
    tests (which run a service in their own process) import one."""
    imports = [
        (module, target)
        for module, targets in _graph(*PACKAGES).items()
        for target in targets
        if _is_process(target) and not module.startswith(target.rpartition(".")[0])
    ]
    assert imports == []


def test_dependencies_run_one_way_processes_and_commands_stages_shared() -> None:
    upward = [
        (module, target)
        for layer, allowed in ALLOWED.items()
        for module, targets in _graph(layer).items()
        for target in targets
        if target.split(".")[0] not in allowed
    ]
    assert upward == []


def test_nothing_outside_tests_imports_tests() -> None:
    imports = [
        (module, target)
        for module, targets in _graph(*PACKAGES).items()
        for target in targets
        if target == "tests" or target.startswith("tests.")
    ]
    assert imports == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_source_file_over_400_lines_in_services_or_shared() -> None:
    long = {
        str(path.relative_to(REPO)): lines
        for path in _sources("services", "commands", "stages", "shared")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def _sleep_lines(path: Path) -> list[int]:
    """Line numbers of the calls to the time module's sleep in ``path`` (calls only, not text
    that names them)."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "sleep"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "time"
    )


def test_tests_sleep_at_most_8_times_and_say_why() -> None:
    sleeps = []
    for path in _sources("tests"):
        lines = path.read_text().splitlines()
        for number in _sleep_lines(path):
            context = " ".join(lines[max(0, number - 3) : number])
            sleeps.append((str(path.relative_to(REPO)), number, "#" in context))
    assert len(sleeps) <= MAX_SLEEPS, sleeps
    assert all(explained for *_, explained in sleeps), sleeps
