"""Datasets: the offline procedural default (glyphs), real Omniglot, and sinusoid regression.

``load_dataset(name, ...)`` is the one entry point the rest of the package uses for image data.
"""

from __future__ import annotations

from pathlib import Path

from mamlkit.data.base import ClassSplit, FewShotDataset
from mamlkit.errors import DataError

DATASETS: dict[str, str] = {
    "glyphs": "procedural handwritten-like characters in styled alphabets (offline, no files)",
    "omniglot": "real Omniglot from a folder holding images_background/ etc. (zipped or extracted)",
}


def load_dataset(name: str, data_dir: str | Path | None = None, **options: object) -> FewShotDataset:
    """Load an image dataset by name.

    Args:
        name: ``"glyphs"`` or ``"omniglot"``.
        data_dir: the Omniglot folder (required for ``"omniglot"``).
        options: passed to the dataset's loader (e.g. glyph generation overrides).
    """
    if name == "glyphs":
        from mamlkit.data.glyphs import load_glyphs

        return load_glyphs(**options)
    if name == "omniglot":
        if data_dir is None:
            raise DataError(
                "the omniglot dataset needs a data folder: pass data_dir (CLI: --data-dir PATH) pointing "
                "at a folder with images_background/ and images_evaluation/ (or their .zip files, or the "
                "_small1/_small2 subsets)"
            )
        from mamlkit.data.omniglot import load_omniglot

        return load_omniglot(data_dir, **options)
    if name == "sinusoid":
        raise DataError("sinusoid is a regression task family, not an image dataset: use SinusoidSampler")
    raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


__all__ = ["DATASETS", "ClassSplit", "DataError", "FewShotDataset", "load_dataset"]
