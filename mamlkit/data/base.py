"""The common shape every image dataset is turned into: per-class example tensors, split by alphabet.

A few-shot dataset is a set of *classes* (characters), each with the same number of examples
(drawings), grouped into *alphabets*. Splits are made by alphabet, so meta-test classes come from
alphabets never seen during meta-training, as in the Omniglot literature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mamlkit.errors import DataError


@dataclass
class ClassSplit:
    """One split of a few-shot image dataset.

    Attributes:
        name: the split's name, e.g. ``"train"``, ``"val"`` or ``"test"``.
        images: float32 tensor ``[n_classes, n_examples, channels, height, width]`` in ``[0, 1]``,
            strokes bright on a dark background.
        class_names: one name per class, e.g. ``"Korean/character07"``.
        alphabets: the alphabet of each class (same length as ``class_names``).
    """

    name: str
    images: torch.Tensor
    class_names: list[str]
    alphabets: list[str]

    def __post_init__(self) -> None:
        if self.images.dim() != 5:
            raise DataError(
                f"split {self.name!r}: images must be [classes, examples, C, H, W], "
                f"got shape {tuple(self.images.shape)}"
            )
        if len(self.class_names) != self.images.shape[0] or len(self.alphabets) != self.images.shape[0]:
            raise DataError(
                f"split {self.name!r}: {self.images.shape[0]} classes of images but "
                f"{len(self.class_names)} class names and {len(self.alphabets)} alphabet labels"
            )

    @property
    def n_classes(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_examples(self) -> int:
        """Examples per class."""
        return int(self.images.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[2:])  # type: ignore[return-value]

    @property
    def alphabet_names(self) -> list[str]:
        """The distinct alphabets in this split, in order of first appearance."""
        return list(dict.fromkeys(self.alphabets))

    def __repr__(self) -> str:
        return (
            f"ClassSplit({self.name!r}: {self.n_classes} classes x {self.n_examples} examples "
            f"of {'x'.join(map(str, self.image_shape))}, {len(self.alphabet_names)} alphabets)"
        )


@dataclass
class FewShotDataset:
    """A named few-shot dataset: its splits (by alphabet) and a description of where it came from."""

    name: str
    splits: dict[str, ClassSplit]
    description: str = ""
    info: dict[str, object] = field(default_factory=dict)

    def __getitem__(self, split: str) -> ClassSplit:
        if split not in self.splits:
            raise DataError(
                f"dataset {self.name!r} has no split {split!r}; choose one of {sorted(self.splits)}"
            )
        return self.splits[split]

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {v.n_classes} classes" for k, v in self.splits.items())
        return f"FewShotDataset({self.name!r}; {parts})"


def split_by_alphabet(
    images: torch.Tensor,
    class_names: list[str],
    alphabets: list[str],
    split_alphabets: dict[str, list[str]],
) -> dict[str, ClassSplit]:
    """Group classes into named splits by their alphabet.

    ``split_alphabets`` maps a split name to the alphabets it holds; every listed alphabet must
    exist and no alphabet may appear in two splits.
    """
    seen: dict[str, str] = {}
    for split, names in split_alphabets.items():
        for a in names:
            if a in seen:
                raise DataError(f"alphabet {a!r} is in both split {seen[a]!r} and split {split!r}")
            seen[a] = split
    known = set(alphabets)
    missing = [a for a in seen if a not in known]
    if missing:
        raise DataError(f"alphabets {missing} are not in the data; it has {sorted(known)}")
    out: dict[str, ClassSplit] = {}
    for split, names in split_alphabets.items():
        wanted = set(names)
        idx = [i for i, a in enumerate(alphabets) if a in wanted]
        out[split] = ClassSplit(
            name=split,
            images=images[idx],
            class_names=[class_names[i] for i in idx],
            alphabets=[alphabets[i] for i in idx],
        )
    return out
