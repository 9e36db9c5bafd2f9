"""A small table that prints aligned in a terminal and renders as HTML in a notebook."""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Table:
    """Rows of cells under column headers, with an optional title and footnote.

    ``str(table)`` gives aligned plain text; in Jupyter the table displays as HTML.
    """

    columns: list[str]
    rows: list[list[object]] = field(default_factory=list)
    title: str = ""
    note: str = ""

    def add_row(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells but the table has {len(self.columns)} columns")
        self.rows.append(list(cells))

    def _cells(self) -> list[list[str]]:
        return [[str(c) for c in row] for row in self.rows]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(self.columns)]

        def line(parts: list[str]) -> str:
            first = parts[0].ljust(widths[0])
            rest = [p.rjust(w) for p, w in zip(parts[1:], widths[1:])]
            return "  ".join([first, *rest]).rstrip()

        out = []
        if self.title:
            out.append(self.title)
        out.append(line(self.columns))
        out.append("  ".join("-" * w for w in widths))
        out.extend(line(r) for r in cells)
        if self.note:
            out.append(self.note)
        return "\n".join(out)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self._cells()
        )
        title = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        note = f"<p><small>{html.escape(self.note)}</small></p>" if self.note else ""
        return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"

    def to_markdown(self) -> str:
        """The table as GitHub-flavoured Markdown."""
        out = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        out += ["| " + " | ".join(r) + " |" for r in self._cells()]
        return "\n".join(out)
