"""The sizes of mamlkit's core and rooms in lines of code, and the longest functions and modules.

    python tools/sizes.py           # print the sizes; exit 1 if a limit is broken beyond the known list below

A line of code is a line that holds code: blank lines, comment-only lines and docstrings are not counted (a
docstring explains, and #40 asks to cut repetition, not explanation). The limits are #40's: a function at most
60 lines of code, a module at most 400, the core at most 1,500 and the installed package at most 5,500.
``OVER`` lists what is still over a limit, at its size when listed: it may shrink, never grow, and nothing new may
join it. An entry that has come under its limit must leave the list (the check says so).
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mamlkit"
ROOMS = ("data", "plumbing", "experiments", "your_code", "lessons", "cli")
LIMITS = {"function": 60, "module": 400, "core": 1500, "package": 5500}

#: What is over a limit today, with its lines of code: the list may only shrink.
OVER = {
    "package": 8111,
}


def code_lines(source: str) -> set[int]:
    """The numbers of the lines of ``source`` that hold code (not blank, not only a comment, not a docstring)."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines: set[int] = set()
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines - docstrings


def measure() -> tuple[dict[str, int], dict[str, int]]:
    """Lines of code per module (repository path) and per function (``path:name``, nested ones counted in their
    own right and in the function around them)."""
    modules, functions = {}, {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = code_lines(source)
        where = str(path.relative_to(ROOT))
        modules[where] = len(lines)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside = sum(1 for line in lines if node.lineno <= line <= node.end_lineno)
                functions[f"{where}:{node.name}"] = max(inside, functions.get(f"{where}:{node.name}", 0))
    return modules, functions


def room_of(path: str) -> str:
    parts = Path(path).relative_to("mamlkit").parts
    return parts[0] if len(parts) > 1 and parts[0] in ROOMS else "core"


def check(modules: dict[str, int], functions: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """Each measured size of a limit (``name -> lines``) and every problem: over a limit and not in ``OVER``, larger
    than ``OVER`` lists, or listed in ``OVER`` but now within its limit."""
    rooms: dict[str, int] = {}
    for path, n in modules.items():
        rooms[room_of(path)] = rooms.get(room_of(path), 0) + n
    sizes = {"package": sum(modules.values()), "core": rooms["core"]}
    sizes.update({f"module {p}": n for p, n in modules.items()})
    sizes.update({f"function {f}": n for f, n in functions.items()})
    problems = []
    for name, n in sizes.items():
        limit = LIMITS[name.split()[0]]
        known = OVER.get(name)
        if n > limit and known is None:
            problems.append(f"{name}: {n} lines of code, over the limit of {limit}")
        elif known is not None and n > known:
            problems.append(f"{name}: {n} lines of code, more than the {known} listed in tools/sizes.py OVER")
        elif known is not None and n <= limit:
            problems.append(f"{name}: {n} lines of code, within its limit of {limit}: remove it from OVER")
    problems += [f"{name}: listed in OVER but not found" for name in OVER if name not in sizes]
    return rooms, problems


def main() -> int:
    modules, functions = measure()
    rooms, problems = check(modules, functions)
    print("lines of code by room: " + ", ".join(f"{r} {n}" for r, n in sorted(rooms.items(), key=lambda x: -x[1])))
    print(f"installed package {sum(modules.values())} (limit {LIMITS['package']}), "
          f"core {rooms['core']} (limit {LIMITS['core']})")
    longest_module = max(modules, key=modules.get)
    longest_function = max(functions, key=functions.get)
    print(f"longest module {longest_module} {modules[longest_module]} (limit {LIMITS['module']}); "
          f"longest function {longest_function} {functions[longest_function]} (limit {LIMITS['function']})")
    print(f"{len(OVER)} sizes still over a limit (tools/sizes.py OVER, may only shrink)")
    for line in problems:
        print("size check:", line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
