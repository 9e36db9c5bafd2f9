"""Print mamlkit's import graph (module -> the mamlkit modules it imports); check it has no cycle and that it keeps
the contracts between the core and the rooms (docs/architecture.md).

    python tools/import_graph.py            # the graph, top-level imports and [function-level] ones; then the checks
    python tools/import_graph.py --checks   # the checks only (make lint)

Exits 1 if the imports form a cycle or break a contract, counting imports inside functions (a cycle "broken" by a
function-level import is still a cycle of ideas, and a room reached from inside a function is still reached).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mamlkit"

#: Each room (a subpackage) and the rooms it may import besides itself and the core. The core is every module at the
#: top of mamlkit/, the datasets (``mamlkit.data``) and the plumbing (``mamlkit.plumbing``): it imports no room.
#: ``mamlkit/__init__`` is exempt (it loads a room on first use of one of its names) and ``mamlkit/__main__`` runs the
#: command line.
CONTRACTS = {
    "experiments": set(),
    "your_code": set(),
    "lessons": {"experiments", "your_code"},
    "cli": {"experiments", "your_code", "lessons"},
}
EXEMPT = {"mamlkit", "mamlkit.__main__"}


def room(module: str) -> str | None:
    """The room a module belongs to, or None for the core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in CONTRACTS else None


def broken_contracts(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a module into a room its contract does not allow."""
    broken = []
    for module, targets in sorted(graph.items()):
        if module in EXEMPT:
            continue
        mine = room(module)
        allowed = {mine} | (CONTRACTS[mine] if mine else set())
        for target in sorted(targets):
            theirs = room(target)
            if theirs is not None and theirs not in allowed:
                where = f"room {mine}" if mine else "the core"
                broken.append(f"{module} ({where}) imports {target} (room {theirs})")
    return broken


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """The mamlkit modules ``path`` imports at top level, and those it imports inside functions
    (``from mamlkit.lessons import plots`` imports ``mamlkit.lessons.plots``)."""
    tree = ast.parse(path.read_text())
    top, inner = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mamlkit"):
            names = {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names}
        elif isinstance(node, ast.Import):
            names = {a.name for a in node.names if a.name.startswith("mamlkit")}
        else:
            continue
        (top if node.col_offset == 0 else inner).update(names)
    return top, inner


def main() -> int:
    graph = {}
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    for path in paths:
        name = module_name(path)
        top, inner = imports(path, modules)
        graph[name] = (top | inner) - {name}
        shown = ", ".join(sorted(n.removeprefix("mamlkit.") for n in top - {name}))
        later = ", ".join(sorted(n.removeprefix("mamlkit.") for n in inner - top - {name}))
        if "--checks" not in sys.argv:
            print(f"{name.removeprefix('mamlkit.') or 'mamlkit':<16} -> {shown}" + (f"  [{later}]" if later else ""))
    state: dict[str, int] = {}

    def cycle(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == "mamlkit" or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return trail + [node, nxt]
            if not state.get(nxt):
                found = cycle(nxt, trail + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in graph:
        if node != "mamlkit" and not state.get(node):
            found = cycle(node, [])
            if found:
                print("cycle:", " -> ".join(found))
                return 1
    print("no cycle (imports inside functions included)")
    broken = broken_contracts(graph)
    for line in broken:
        print("contract broken:", line)
    if broken:
        return 1
    rules = "; ".join(f"{r} -> core" + "".join(f", {o}" for o in sorted(CONTRACTS[r])) for r in CONTRACTS)
    print(f"contracts kept: the core imports no room; {rules}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
