"""Print mamlkit's import graph (module -> the mamlkit modules it imports) and check it has no cycle.

    python tools/import_graph.py            # the graph, top-level imports and [function-level] ones

Exits 1 if the imports form a cycle, counting those inside functions (a cycle "broken" by a function-level
import is still a cycle of ideas).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mamlkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> tuple[set[str], set[str]]:
    """The mamlkit modules ``path`` imports at top level, and those it imports inside functions."""
    tree = ast.parse(path.read_text())
    top, inner = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mamlkit"):
            names = {node.module}
            if node.module == "mamlkit":
                names = {f"mamlkit.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names = {a.name for a in node.names if a.name.startswith("mamlkit")}
        else:
            continue
        (top if node.col_offset == 0 else inner).update(names)
    return top, inner


def main() -> int:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        top, inner = imports(path)
        graph[name] = (top | inner) - {name}
        shown = ", ".join(sorted(n.removeprefix("mamlkit.") for n in top - {name}))
        later = ", ".join(sorted(n.removeprefix("mamlkit.") for n in inner - top - {name}))
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
