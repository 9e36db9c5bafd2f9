"""Tests for the procedural glyph dataset (mamlkit.data.glyphs)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from mamlkit.data.base import FewShotDataset
from mamlkit.data.glyphs import GlyphConfig, _alphabet_styles, _kind_probabilities, generate_glyphs, load_glyphs
from mamlkit.errors import DataError

SMALL = GlyphConfig(
    n_alphabets=6,
    chars_per_alphabet=4,
    examples_per_char=5,
    n_train_alphabets=2,
    n_val_alphabets=2,
    n_test_alphabets=2,
)


@pytest.fixture(scope="module")
def default_data() -> tuple[torch.Tensor, list[str], list[str], float]:
    """The default dataset, generated once, with the seconds it took."""
    start = time.perf_counter()
    images, names, alphabets = generate_glyphs(GlyphConfig())
    return images, names, alphabets, time.perf_counter() - start


def test_default_generation_is_fast(default_data: tuple) -> None:
    seconds = default_data[3]
    assert seconds < 20.0, f"generating the default glyphs took {seconds:.1f} s"


def test_shapes_dtype_and_range(default_data: tuple) -> None:
    images, names, alphabets, _ = default_data
    config = GlyphConfig()
    n_classes = config.n_alphabets * config.chars_per_alphabet
    assert images.shape == (n_classes, config.examples_per_char, 1, 28, 28)
    assert images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert len(names) == len(alphabets) == n_classes
    assert len(set(names)) == n_classes
    assert names[0] == "alphabet00/char00" and alphabets[0] == "alphabet00"
    assert names[-1] == "alphabet19/char19" and alphabets[-1] == "alphabet19"
    assert all(name.split("/")[0] == alphabet for name, alphabet in zip(names, alphabets))


def test_image_size_parameter() -> None:
    config = dataclasses.replace(SMALL, chars_per_alphabet=2, examples_per_char=2, image_size=40)
    images, _, _ = generate_glyphs(config)
    assert images.shape == (12, 2, 1, 40, 40)


def test_deterministic_and_leaves_global_rng_alone() -> None:
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a = generate_glyphs(SMALL)
    b = generate_glyphs(dataclasses.replace(SMALL))
    assert torch.equal(a[0], b[0])
    assert a[1:] == b[1:]
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_different_seeds_differ() -> None:
    a, _, _ = generate_glyphs(SMALL)
    b, _, _ = generate_glyphs(dataclasses.replace(SMALL, seed=1))
    assert not torch.equal(a, b)
    assert (a - b).abs().mean() > 0.05


def test_characters_do_not_depend_on_examples_per_char() -> None:
    # Without variation and noise every drawing is the prototype, which depends only on the seed.
    base = dataclasses.replace(SMALL, variation=0.0, noise_std=0.0)
    few, _, _ = generate_glyphs(dataclasses.replace(base, examples_per_char=2))
    many, _, _ = generate_glyphs(dataclasses.replace(base, examples_per_char=5))
    assert torch.equal(few[:, :2], many[:, :2])
    assert torch.equal(many[:, 0], many[:, 4])  # all drawings identical without variation


def test_splits_by_alphabet() -> None:
    ds = load_glyphs(SMALL)
    assert isinstance(ds, FewShotDataset)
    assert ds.name == "glyphs"
    assert set(ds.splits) == {"train", "val", "test"}
    seen: set[str] = set()
    for split in ("train", "val", "test"):
        alphabets = set(ds[split].alphabet_names)
        assert len(alphabets) == 2
        assert not alphabets & seen
        seen |= alphabets
        assert ds[split].n_classes == 2 * SMALL.chars_per_alphabet
        assert ds[split].n_examples == SMALL.examples_per_char
    assert ds.info["config"] == dataclasses.asdict(SMALL)
    assert ds.info["split_alphabets"] == SMALL.split_alphabets()
    assert "glyphs" in ds.description and "6 alphabets" in ds.description


def test_default_split_sizes() -> None:
    splits = GlyphConfig().split_alphabets()
    assert [len(splits[s]) for s in ("train", "val", "test")] == [12, 4, 4]


def test_unused_alphabets_are_left_out() -> None:
    ds = load_glyphs(SMALL, n_train_alphabets=1, n_val_alphabets=1, n_test_alphabets=1)
    assert sum(ds[s].n_classes for s in ds.splits) == 3 * SMALL.chars_per_alphabet
    rows = glyph_style_table(GlyphConfig(**ds.info["config"]))
    assert [r["split"] for r in rows] == ["train", "val", "test", "unused", "unused", "unused"]


def test_instances_closer_within_class_than_between(default_data: tuple) -> None:
    """In pixel space, drawings of a character are closer to each other than to other characters.

    The default (variation 2.0) is deliberately hard, like handwriting, so the margin is small there;
    at variation 1.0 it is large.
    """
    for images, ratio_bound, share_bound in (
        (default_data[0], 0.98, 0.6),
        (generate_glyphs(GlyphConfig(n_alphabets=6, n_train_alphabets=4, n_val_alphabets=1, n_test_alphabets=1,
                                     variation=1.0))[0], 0.92, 0.9),
    ):
        x = images[:, :10].flatten(2)  # [classes, 10, pixels]
        within = torch.cdist(x, x).sum(dim=(1, 2)) / (10 * 9)  # mean over distinct pairs, per class
        # Between: each class's drawings against the next class's (same alphabet mostly).
        between = torch.cdist(x, x.roll(1, dims=0)).mean(dim=(1, 2))
        assert within.mean() < ratio_bound * between.mean()  # measured 0.95 (default) and 0.85 (variation 1)
        assert (within < between).float().mean() > share_bound  # measured 0.68 and 0.97


def test_alphabets_differ_in_style(default_data: tuple) -> None:
    images, _, alphabets, _ = default_data
    config = GlyphConfig()
    per_alphabet = images.reshape(config.n_alphabets, -1)
    background = per_alphabet.median(dim=1).values
    ink = torch.quantile(per_alphabet[:, ::7], 0.995, dim=1)
    ink_fraction = (per_alphabet > (background[:, None] + ink[:, None]) / 2).float().mean(dim=1)
    assert background.max() - background.min() > 0.2
    assert ink.max() - ink.min() > 0.2
    assert ink_fraction.max() > 2.0 * ink_fraction.min()  # thick vs thin / large vs small glyphs
    assert (ink > background + 0.2).all()  # strokes always brighter than background
    # The style table describes what was drawn.
    table = glyph_style_table(config)
    planned = torch.tensor([row["background"] for row in table])
    assert torch.corrcoef(torch.stack([planned, background]))[0, 1] > 0.95


def test_style_table() -> None:
    rows = glyph_style_table()
    assert len(rows) == 20
    assert rows[0]["alphabet"] == "alphabet00" and rows[0]["split"] == "train"
    assert [r["split"] for r in rows].count("val") == 4
    for row in rows:
        assert row["ink"] > row["background"]
        assert 1 <= row["mean_strokes"] <= 4
    widths = [r["stroke_width_px"] for r in rows]
    assert max(widths) > 2 * min(widths)
    uniform = glyph_style_table(GlyphConfig(style_strength=0.0))
    assert len({(r["ink"], r["background"], r["stroke_width_px"]) for r in uniform}) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_alphabets": 0}, "n_alphabets must be at least 1"),
        ({"n_alphabets": 10}, "raise n_alphabets to at least 20"),
        ({"n_test_alphabets": 0}, "n_test_alphabets must be at least 1"),
        ({"image_size": 8}, "image_size must be between 16 and 256"),
        ({"chars_per_alphabet": 2.5}, "chars_per_alphabet must be an int"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"variation": -0.5}, "variation must be between 0 and 5"),
        ({"noise_std": float("nan")}, "noise_std must be between"),
    ],
)
def test_bad_arguments_raise_data_error(overrides: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        GlyphConfig(**overrides)
    with pytest.raises(DataError, match=message):
        load_glyphs(**overrides)


def test_unknown_override_names_valid_fields() -> None:
    with pytest.raises(DataError, match=r"unknown GlyphConfig field\(s\) \['n_classes'\].*examples_per_char"):
        load_glyphs(n_classes=5)
    with pytest.raises(DataError, match="expects a GlyphConfig"):
        load_glyphs({"seed": 1})  # type: ignore[arg-type]


def test_cache_is_fast_equal_and_safe_from_mutation() -> None:
    first = load_glyphs(SMALL, seed=7)
    start = time.perf_counter()
    second = load_glyphs(SMALL, seed=7)
    assert time.perf_counter() - start < 0.5
    for split in ("train", "val", "test"):
        assert torch.equal(first[split].images, second[split].images)
        assert first[split].class_names == second[split].class_names
    first["train"].images.fill_(0.5)
    first["train"].class_names.append("bogus")
    third = load_glyphs(SMALL, seed=7)
    assert torch.equal(third["train"].images, second["train"].images)
    assert not torch.equal(third["train"].images, first["train"].images)
    assert third["train"].class_names == second["train"].class_names
    fresh, _, _ = generate_glyphs(dataclasses.replace(SMALL, seed=7))
    assert torch.equal(third["train"].images, fresh[: third["train"].n_classes])


def glyph_style_table(config: GlyphConfig | None = None) -> list[dict[str, object]]:
    """Each alphabet's style, as the generator draws it (the tests below check that alphabets differ).

    Args:
        config: the dataset's config (default: ``GlyphConfig()``).

    Returns:
        One dict per alphabet, in alphabet order, with keys ``alphabet``, ``split`` (``"train"``,
        ``"val"``, ``"test"`` or ``"unused"``), ``stroke_width_px`` (pen diameter), ``glyph_size``
        (half-extent as a fraction of the image side), ``slant``, ``ink`` (stroke intensity),
        ``background``, ``contrast`` (ink minus background), ``mean_strokes``, ``curvature``,
        ``snap_45deg`` (probability a straight stroke snaps to a multiple of 45 degrees) and
        ``line_fraction`` (probability that a stroke is a straight line).
    """
    config = GlyphConfig() if config is None else config
    split_of = {a: s for s, names in config.split_alphabets().items() for a in names}
    rows: list[dict[str, object]] = []
    for name, st in zip(config.alphabet_names, _alphabet_styles(config)):
        rows.append(
            {
                "alphabet": name,
                "split": split_of.get(name, "unused"),
                "stroke_width_px": round(st.stroke_width, 3),
                "glyph_size": round(st.glyph_size, 3),
                "slant": round(st.slant, 3),
                "ink": round(st.ink, 3),
                "background": round(st.background, 3),
                "contrast": round(st.ink - st.background, 3),
                "mean_strokes": round(st.mean_strokes, 3),
                "curvature": round(st.curvature, 3),
                "snap_45deg": round(st.snap, 3),
                "line_fraction": round(float(_kind_probabilities(st)[0]), 3),
            }
        )
    return rows
