"""The lessons' room: what the notebooks show and check.

``plots`` (matplotlib figures), ``widgets`` (ipywidgets controls), ``lab`` (the classroom lab's checks),
``exercises`` (the notebooks' exercise checks), ``predictions`` (predict, then measure) and ``why_eval`` (the
experiment that separates why eval mode fails). They need matplotlib and ipywidgets; import them on their own::

    from mamlkit.lessons import plots, widgets

This room imports the core, ``mamlkit.experiments`` and ``mamlkit.your_code`` (``docs/package.md``).
"""
