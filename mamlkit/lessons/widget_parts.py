"""The pieces the lessons' widgets share (``mamlkit.lessons.widgets``, ``mamlkit.lessons.explorers``): status
and prose lines, figures shown in an output area, folder names with no path of this machine, counts checked with
a clear message, and ``Shown``: a widget that displays as its box and leaves a still ``Picture`` of its chart."""

from __future__ import annotations

import html
import io
import os
from pathlib import Path
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from IPython import get_ipython
from IPython.display import Markdown, display

from mamlkit.errors import ConfigError


def status_html(text: str, kind: str = "info") -> str:
    colours = {"info": "#333", "busy": "#1a5fb4", "ok": "#26734d", "error": "#b00020"}
    prefix = "\u26a0 " if kind == "error" else ""
    return f'<span style="color:{colours[kind]}">{prefix}{html.escape(text)}</span>'


def prose_html(text: str, bold: bool = False) -> str:
    """``text`` escaped, in a block that wraps at words within the output's width: without an explicit
    ``white-space: normal`` and ``max-width`` a long verdict can be laid out as one line thousands of
    pixels wide (a flex item sized to its content), which a student has to scroll sideways to read."""
    body = f"<b>{html.escape(text)}</b>" if bold else html.escape(text)
    return (f'<div style="white-space:normal;overflow-wrap:break-word;max-width:min(100%, 60em);'
            f'line-height:1.4">{body}</div>')


def wrapping(widget: W.HTML) -> W.HTML:
    """An HTML widget that takes the box's width, never more (its ``prose_html`` value then wraps)."""
    widget.layout = W.Layout(width="100%", max_width="1000px")
    return widget


def show_figure(output: W.Output, fig: plt.Figure) -> None:
    """Replace what ``output`` shows by ``fig``; the figure is closed so that it is shown only once.

    Outside a notebook (tests, scripts) nothing is displayed: the figure stays available as an attribute.
    """
    if get_ipython() is not None:
        with output:
            output.clear_output(wait=True)
            display(fig)
    plt.close(fig)


def relative_folder(folder: str | Path) -> str:
    """``folder`` as a box may show it, with no path of this machine (``""`` stays ``""``).

    ``$MAMLKIT_OMNIGLOT`` where the folder is that variable's; else relative to the current folder (the
    notebook's, e.g. ``../data/omniglot``) when that stays within two levels up; else ``~/...`` under the
    home folder; else the folder's name (the playground remembers which folder the text it showed stands for;
    ``_data_dir`` also expands ``$MAMLKIT_OMNIGLOT`` and ``~`` in what a student types)."""
    if not str(folder):
        return ""
    path = Path(folder).expanduser()
    env = os.environ.get("MAMLKIT_OMNIGLOT")
    try:
        if env and Path(env).expanduser().resolve() == path.resolve():
            return "$MAMLKIT_OMNIGLOT"
    except OSError:
        pass
    try:
        relative = os.path.relpath(path)
    except ValueError:                     # another drive (Windows)
        relative = str(path)
    if not Path(relative).is_absolute() and Path(relative).parts[:3].count("..") < 3:
        return relative
    try:
        return str(Path("~") / path.resolve().relative_to(Path.home().resolve()))
    except (ValueError, RuntimeError):
        return path.name


def check_count(kind: str, value: object, low: int, high: int, why_high: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"the number of {kind} must be a whole number, got {value!r}")
    if not low <= value <= high:
        extra = f" ({why_high})" if why_high and value > high else ""
        raise ConfigError(f"the number of {kind} must be between {low} and {high}, got {value}{extra}")
    return int(value)


class Picture:
    """A still picture (PNG) of a widget's chart, as computed by the runs that drew it, with a one-line caption.

    A notebook stored with outputs shows it where no kernel runs (JupyterLab before the cell is run, the
    book), where the live widget itself cannot be drawn. ``png`` holds the image's bytes.
    """

    def __init__(self, figure: plt.Figure, caption: str, dpi: int = 90) -> None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        self.png = buffer.getvalue()
        self.caption = caption

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return self.caption


class Shown:
    """Displays as its ``widget`` (an ipywidgets box) when it is the last value of a notebook cell."""

    widget: W.Widget
    figure: plt.Figure | None
    #: What the widget is, for the line a frontend shows where it cannot draw the widget.
    title = "widget"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict) and "text/plain" in bundle:   # not "VBox(children=(HTML(value=..."
            bundle = {**bundle, "text/plain": f"[{self.title}: run this cell to get the live controls]"}
        return bundle

    def _caption(self) -> str:
        return f"The {self.title} as this cell left it"

    def picture(self) -> Picture:
        """A still picture of the widget's chart as it stands now (raises ValueError before anything is drawn)."""
        if self.figure is None:
            raise ValueError(f"the {self.title} has drawn nothing yet: run it first")
        return Picture(self.figure, self._caption())

    def show_picture(self) -> Picture:
        """Display ``picture()`` and one line under it, "Run this cell to get the live controls"; a cell that
        ends with the widget itself then shows, once stored, a picture of the widget in use before the live
        widget (which only a running kernel can draw). Returns the picture."""
        shown = self.picture()
        display(shown)
        display(Markdown(f"*{shown.caption} (a picture). Run this cell to get the live controls.*"))
        return shown
