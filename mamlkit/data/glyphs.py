"""Procedurally generated handwritten-like glyphs: the offline default few-shot dataset.

An Omniglot stand-in that needs no files and no network. Every *character* is a prototype made of
1-4 pen strokes (straight segments, quadratic or cubic Bezier curves, short dashes for dots). Every
*instance* of a character (one "drawing", like one of Omniglot's 20 drawers) is the prototype with
its own variation: control points and whole strokes jittered, a small affine jitter (shift, scale,
rotation, shear), a different pen thickness, and pixel noise.

Characters are grouped in *alphabets*, and each alphabet has its own *style*: pen width, glyph
size, slant, stroke intensity (ink), background level, number of strokes, curvature and how often
straight strokes snap to multiples of 45 degrees. Styles are spread evenly over their ranges
(stratified sampling), so some alphabets are dim thin strokes on grey and others bright thick
strokes on black. Tasks drawn from different alphabets therefore have different image statistics,
which is what BatchNorm statistics react to.

Rendering is a vectorised distance field: each stroke is sampled densely (about every 0.45 pixels),
each sample splats its squared distance into the few pixels around it (a pixel keeps the nearest
sample's), and pen coverage is ``clip(radius + 0.5 - distance, 0, 1)``, which anti-aliases the
stroke edges. The default 8,000 images take 1-2 seconds on one CPU core.

Generation is deterministic: the same :class:`GlyphConfig` gives bit-identical tensors on the same
platform and numpy version. All randomness comes from ``numpy.random.default_rng`` seeded from the
config (the global numpy and torch generators are never touched). Prototype and instances of a
character have their own generators, so e.g. ``examples_per_char`` does not change the characters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from mamlkit.data.base import FewShotDataset, split_by_alphabet
from mamlkit.errors import DataError

# Style ranges (at 28x28; widths scale with image_size). Each alphabet gets values spread evenly over
# these ranges; ``style_strength`` shrinks them towards their midpoints.
_STYLE_RANGES: dict[str, tuple[float, float]] = {
    "stroke_width": (1.0, 3.2),  # pen diameter in pixels at 28x28
    "glyph_size": (0.25, 0.40),  # half-extent of a glyph as a fraction of the image side
    "slant": (-0.35, 0.35),  # horizontal shear: x += slant * (distance above centre)
    "ink": (0.6, 1.0),  # stroke intensity
    "background": (0.0, 0.35),  # background level
    "mean_strokes": (1.5, 3.8),  # typical number of strokes per character (1-4)
    "curvature": (0.05, 0.9),  # how far Bezier control points bend away from the chord
    "snap": (0.0, 0.9),  # probability that a straight stroke snaps to a multiple of 45 degrees
}
_STROKE_KINDS = ("line", "quadratic", "cubic", "dot")
_SAMPLE_SPACING_PX = 0.55  # distance between samples along a (prototype) stroke, in pixels
_MAX_WIDTH_PER_HALF_EXTENT = 0.33  # pen diameter cap relative to the glyph's half-extent in pixels
_SEED_TAG_STYLE = 0x5717E  # separates the style generator's seed from the characters' seeds


@dataclass(frozen=True)
class GlyphConfig:
    """Everything that determines a generated glyph dataset.

    Two equal configs generate bit-identical data, and the config is hashable, so it is also the
    cache key of :func:`load_glyphs`.

    The default, 20 alphabets x 20 characters x 20 drawings at 28x28 (8,000 images, about 25 MB as
    float32), mirrors Omniglot's 20 drawings per character with enough classes for 5-way tasks in
    every split (12 x 20 = 240 meta-training, 80 validation and 80 test classes) while staying fast
    enough to generate on the fly.

    Attributes:
        n_alphabets: number of alphabets (styles) generated.
        chars_per_alphabet: characters (classes) per alphabet.
        examples_per_char: drawings (instances) per character.
        image_size: side of the square images in pixels (16-256).
        seed: non-negative integer; every random choice derives from it.
        n_train_alphabets: alphabets in the ``"train"`` split (the first ones).
        n_val_alphabets: alphabets in the ``"val"`` split (the next ones).
        n_test_alphabets: alphabets in the ``"test"`` split (the next ones). The three counts may add
            up to less than ``n_alphabets``; the remaining alphabets are generated but unused.
        variation: one multiplier on all the per-instance variation strengths below (0.0 = every
            drawing is the prototype plus pixel noise). The main difficulty knob. The default, 2.0,
            was calibrated so that an untrained Conv4 adapted in train mode scores about what it
            scores on real Omniglot (about 70% in 5-way 1-shot), leaving room for meta-learning; at
            1.0 an untrained network already reaches about 89%.
        point_jitter: std of the independent jitter of every Bezier control point, in glyph units
            (a glyph spans [-1, 1]).
        stroke_jitter: std of the shift of each whole stroke, in glyph units.
        shift_jitter: std of the shift of the whole glyph, as a fraction of the image side.
        scale_jitter: std of the log of the glyph's scale (plus half of it for the aspect ratio).
        rotation_jitter: std of the glyph's rotation, in radians.
        shear_jitter: std of extra per-drawing slant (horizontal shear).
        thickness_jitter: std of the log of the pen width.
        noise_std: std of the Gaussian pixel noise (not scaled by ``variation``).
        style_strength: how different the alphabets' styles are, from 0.0 (all alphabets share the
            mid-range style) to 1.0 (styles spread over their full ranges).
    """

    n_alphabets: int = 20
    chars_per_alphabet: int = 20
    examples_per_char: int = 20
    image_size: int = 28
    seed: int = 0
    n_train_alphabets: int = 12
    n_val_alphabets: int = 4
    n_test_alphabets: int = 4
    variation: float = 2.0
    point_jitter: float = 0.10
    stroke_jitter: float = 0.06
    shift_jitter: float = 0.04
    scale_jitter: float = 0.08
    rotation_jitter: float = 0.12
    shear_jitter: float = 0.08
    thickness_jitter: float = 0.20
    noise_std: float = 0.04
    style_strength: float = 1.0

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def alphabet_names(self) -> list[str]:
        """Names of all generated alphabets, e.g. ``["alphabet00", "alphabet01", ...]``."""
        width = max(2, len(str(self.n_alphabets - 1)))
        return [f"alphabet{a:0{width}d}" for a in range(self.n_alphabets)]

    def split_alphabets(self) -> dict[str, list[str]]:
        """The alphabets of each split: train first, then val, then test, in alphabet order."""
        names = self.alphabet_names
        n_tr, n_va, n_te = self.n_train_alphabets, self.n_val_alphabets, self.n_test_alphabets
        return {
            "train": names[:n_tr],
            "val": names[n_tr : n_tr + n_va],
            "test": names[n_tr + n_va : n_tr + n_va + n_te],
        }


_INT_FIELDS = (
    "n_alphabets",
    "chars_per_alphabet",
    "examples_per_char",
    "image_size",
    "seed",
    "n_train_alphabets",
    "n_val_alphabets",
    "n_test_alphabets",
)
# Upper bounds keep the values in the range where the glyphs still look like glyphs.
_FLOAT_LIMITS: dict[str, float] = {
    "variation": 5.0,
    "point_jitter": 1.0,
    "stroke_jitter": 1.0,
    "shift_jitter": 0.5,
    "scale_jitter": 1.0,
    "rotation_jitter": math.pi,
    "shear_jitter": 1.0,
    "thickness_jitter": 1.0,
    "noise_std": 0.5,
    "style_strength": 1.0,
}


def _validate(c: GlyphConfig) -> None:
    """Raise :class:`DataError` saying what to change if ``c`` holds a bad value."""
    for name in _INT_FIELDS:
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise DataError(f"GlyphConfig.{name} must be an int, got {value!r} ({type(value).__name__})")
    for name in ("n_alphabets", "chars_per_alphabet", "examples_per_char"):
        if getattr(c, name) < 1:
            raise DataError(f"GlyphConfig.{name} must be at least 1, got {getattr(c, name)}")
    if not 16 <= c.image_size <= 256:
        raise DataError(f"GlyphConfig.image_size must be between 16 and 256 pixels, got {c.image_size}")
    if c.seed < 0:
        raise DataError(f"GlyphConfig.seed must be a non-negative int, got {c.seed}")
    for name in ("n_train_alphabets", "n_val_alphabets", "n_test_alphabets"):
        if getattr(c, name) < 1:
            raise DataError(
                f"GlyphConfig.{name} must be at least 1 (every split needs an alphabet), "
                f"got {getattr(c, name)}"
            )
    n_split = c.n_train_alphabets + c.n_val_alphabets + c.n_test_alphabets
    if n_split > c.n_alphabets:
        raise DataError(
            f"the splits need {c.n_train_alphabets} + {c.n_val_alphabets} + {c.n_test_alphabets} = {n_split} "
            f"alphabets but n_alphabets is {c.n_alphabets}; raise n_alphabets to at least {n_split} "
            f"or lower n_train_alphabets / n_val_alphabets / n_test_alphabets"
        )
    for name, upper in _FLOAT_LIMITS.items():
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise DataError(f"GlyphConfig.{name} must be a number, got {value!r} ({type(value).__name__})")
        if not (math.isfinite(value) and 0.0 <= value <= upper):
            raise DataError(f"GlyphConfig.{name} must be between 0 and {upper:g}, got {value!r}")


# ----------------------------------------------------------------------------------------------
# Alphabet styles
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Style:
    stroke_width: float  # pen diameter in pixels (already scaled to image_size)
    glyph_size: float
    slant: float
    ink: float
    background: float
    mean_strokes: float
    curvature: float
    snap: float


def _alphabet_styles(config: GlyphConfig) -> list[_Style]:
    """One style per alphabet; each attribute is spread evenly over its range (stratified)."""
    rng = np.random.default_rng([config.seed, _SEED_TAG_STYLE])
    n = config.n_alphabets
    values: dict[str, np.ndarray] = {}
    for name, (lo, hi) in _STYLE_RANGES.items():
        # One value in each of n equal bins, bins assigned to alphabets in random order.
        u = (rng.permutation(n) + rng.uniform(0.0, 1.0, size=n)) / n
        u = 0.5 + config.style_strength * (u - 0.5)
        values[name] = lo + (hi - lo) * u
    px_scale = config.image_size / 28.0
    return [
        _Style(
            # Cap the pen at a third of the glyph's half-extent, so small glyphs do not become blobs.
            stroke_width=min(
                float(values["stroke_width"][a]) * px_scale,
                _MAX_WIDTH_PER_HALF_EXTENT * float(values["glyph_size"][a]) * config.image_size,
            ),
            glyph_size=float(values["glyph_size"][a]),
            slant=float(values["slant"][a]),
            ink=float(values["ink"][a]),
            background=float(values["background"][a]),
            mean_strokes=float(values["mean_strokes"][a]),
            curvature=float(values["curvature"][a]),
            snap=float(values["snap"][a]),
        )
        for a in range(n)
    ]


def _kind_probabilities(style: _Style) -> np.ndarray:
    """Probabilities of line / quadratic / cubic / dot strokes: curvy alphabets draw fewer lines."""
    c = (style.curvature - _STYLE_RANGES["curvature"][0]) / (
        _STYLE_RANGES["curvature"][1] - _STYLE_RANGES["curvature"][0]
    )
    p_line = 0.7 * (1.0 - c) + 0.05
    p_dot = 0.06
    rest = 1.0 - p_line - p_dot
    return np.array([p_line, 0.5 * rest, 0.5 * rest, p_dot])


# ----------------------------------------------------------------------------------------------
# Character prototypes
# ----------------------------------------------------------------------------------------------


def _bezier_basis(t: np.ndarray) -> np.ndarray:
    """Cubic Bernstein basis ``[len(t), 4]``."""
    s = 1.0 - t
    return np.stack([s**3, 3.0 * s**2 * t, 3.0 * s * t**2, t**3], axis=1)


def _make_prototype(style: _Style, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one character: ``(control_points [n_strokes, 4, 2], is_dot [n_strokes])``.

    Every stroke is stored as a cubic Bezier curve (lines and quadratics degree-elevated), in glyph
    units, centred and scaled so the glyph's larger half-extent is 1.
    """
    n_strokes = int(np.clip(np.rint(rng.normal(style.mean_strokes, 0.7)), 1, 4))
    probs = _kind_probabilities(style)
    strokes: list[np.ndarray] = []
    is_dot: list[bool] = []
    for _ in range(n_strokes):
        kind = _STROKE_KINDS[int(rng.choice(4, p=probs))]
        if n_strokes == 1:
            kind = "cubic"  # a lone straight line or dot is too plain to be a character
        if kind == "dot":  # a short dash anywhere, drawn as a (nearly) straight cubic
            start = rng.uniform(-0.9, 0.9, size=2)
            angle = rng.uniform(0.0, 2.0 * np.pi)
            end = start + 0.12 * np.array([np.cos(angle), np.sin(angle)])
            strokes.append(np.stack([start, start + (end - start) / 3, start + 2 * (end - start) / 3, end]))
            is_dot.append(True)
            continue
        # Start on an earlier stroke (connected, like most handwriting) or anywhere.
        if strokes and rng.uniform() < 0.6:
            donor = strokes[int(rng.integers(len(strokes)))]
            start = (_bezier_basis(np.array([rng.uniform()])) @ donor)[0]
        else:
            start = rng.uniform(-0.9, 0.9, size=2)
        length = rng.uniform(0.8, 1.9)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        if kind == "line" and rng.uniform() < style.snap:
            angle = np.round(angle / (np.pi / 4)) * (np.pi / 4)
        direction = np.array([np.cos(angle), np.sin(angle)])
        end = np.clip(start + length * direction, -1.2, 1.2)
        chord = end - start
        normal = np.array([-chord[1], chord[0]])
        if kind == "line":
            p1, p2 = start + chord / 3, start + 2 * chord / 3
        elif kind == "quadratic":
            q = start + chord / 2 + normal * style.curvature * rng.normal(0.0, 1.0)
            p1, p2 = start + 2 * (q - start) / 3, end + 2 * (q - end) / 3
        else:  # cubic: independent bends give C, S and hook shapes (lone strokes always bend)
            curvature = max(style.curvature, 0.6) if n_strokes == 1 else style.curvature
            bend = curvature * rng.normal(0.0, 1.0, size=2)
            along = 0.3 * curvature * rng.normal(0.0, 1.0, size=2)
            p1 = start + chord * (1 / 3 + along[0]) + normal * bend[0]
            p2 = start + chord * (2 / 3 + along[1]) + normal * bend[1]
        strokes.append(np.stack([start, p1, p2, end]))
        is_dot.append(False)
    cps = np.stack(strokes)
    # Centre the glyph's drawn extent and scale its larger half-extent to 1.
    pts = _bezier_basis(np.linspace(0.0, 1.0, 33)) @ cps  # [n_strokes, 33, 2]
    lo, hi = pts.reshape(-1, 2).min(axis=0), pts.reshape(-1, 2).max(axis=0)
    half = max(float((hi - lo).max()) / 2.0, 0.3)
    cps = (cps - (lo + hi) / 2.0) / half
    return cps, np.array(is_dot)


# ----------------------------------------------------------------------------------------------
# Instances and rendering
# ----------------------------------------------------------------------------------------------


def _render_character(
    cps: np.ndarray,
    is_dot: np.ndarray,
    style: _Style,
    config: GlyphConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``config.examples_per_char`` varied instances of one prototype: float32 ``[N, H, W]``."""
    n = config.examples_per_char
    size = config.image_size
    v = config.variation
    n_strokes = cps.shape[0]

    # Per-instance geometry, in glyph units: jitter every control point and every whole stroke
    # (dots move as a whole and only wobble a little).
    point_scale = np.where(is_dot, 0.2, 1.0)[None, :, None, None]
    cps_i = (
        cps[None]
        + v * config.point_jitter * point_scale * rng.normal(size=(n, n_strokes, 4, 2))
        + v * config.stroke_jitter * rng.normal(size=(n, n_strokes, 1, 2))
    )

    # Sample every stroke about every 0.45 pixels (counted on the prototype, with a margin for jitter).
    half_px = style.glyph_size * size
    proto_pts = _bezier_basis(np.linspace(0.0, 1.0, 17)) @ cps
    lengths = np.linalg.norm(np.diff(proto_pts, axis=1), axis=2).sum(axis=1) * half_px
    counts = np.maximum(4, np.ceil(1.25 * lengths / _SAMPLE_SPACING_PX).astype(int) + 1)
    t = np.concatenate([np.linspace(0.0, 1.0, k) for k in counts])
    stroke_of = np.repeat(np.arange(n_strokes), counts)
    basis = _bezier_basis(t)  # [P, 4]
    pts = np.einsum("pk,npkc->npc", basis, cps_i[:, stroke_of])  # [N, P, 2], glyph units

    # Per-instance affine map to pixels: rotation @ shear @ scale, then shift to the centre.
    scale = half_px * np.exp(v * config.scale_jitter * rng.normal(size=n))
    aspect = np.exp(0.5 * v * config.scale_jitter * rng.normal(size=n))
    theta = v * config.rotation_jitter * rng.normal(size=n)
    shear = style.slant + v * config.shear_jitter * rng.normal(size=n)
    shift = size / 2.0 + v * config.shift_jitter * size * rng.normal(size=(n, 2))
    sx, sy = scale * aspect, scale / aspect
    # y grows downwards in the image; positive slant leans the top to the right.
    x0, y0 = pts[..., 0] * sx[:, None], pts[..., 1] * sy[:, None]
    x1 = x0 - shear[:, None] * y0
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    xs = (cos * x1 - sin * y0 + shift[:, 0:1]).astype(np.float32)
    ys = (sin * x1 + cos * y0 + shift[:, 1:2]).astype(np.float32)

    radius = (0.5 * style.stroke_width * np.exp(v * config.thickness_jitter * rng.normal(size=n))).astype(
        np.float32
    )

    # Distance field by splatting: every sample writes its squared distance into the small square of
    # pixels its pen can reach, and each pixel keeps the smallest (np.minimum.at). A pixel whose
    # column is o pixels from the sample's column is more than o - 0.5 pixels away, so offsets up to
    # ceil(r_max + 1) - 1 cover every pixel that a pen of radius r_max can touch. The canvas is
    # padded by 2 * reach on each side so that no square leaves it; samples too far outside the
    # image to touch it are parked at the edge with an infinite distance.
    reach = int(math.ceil(float(radius.max()) + 1.0)) - 1
    k = 2 * reach + 1
    padded = size + 4 * reach
    fx, fy = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    offsets = np.arange(-reach, reach + 1, dtype=np.float32) + np.float32(0.5)
    ddx = np.square((fx.astype(np.float32)[..., None] + offsets) - xs[..., None])  # [N, P, k]
    ddy = np.square((fy.astype(np.float32)[..., None] + offsets) - ys[..., None])  # [N, P, k]
    d2_patch = ddy[..., :, None] + ddx[..., None, :]  # [N, P, k, k]
    lo, hi = -reach, size + reach - 1
    d2_patch[(fx < lo) | (fx > hi) | (fy < lo) | (fy > hi)] = np.inf
    fx, fy = np.clip(fx, lo, hi), np.clip(fy, lo, hi)
    corner = np.arange(n)[:, None] * padded * padded + (fy + reach) * padded + (fx + reach)  # [N, P]
    square = np.arange(k)[:, None] * padded + np.arange(k)[None, :]  # [k, k]
    d2 = np.full(n * padded * padded, np.inf, dtype=np.float32)
    np.minimum.at(d2, (corner[..., None, None] + square).ravel(), d2_patch.ravel())
    d2 = d2.reshape(n, padded, padded)[:, 2 * reach : 2 * reach + size, 2 * reach : 2 * reach + size]

    # Pen coverage with anti-aliased edges, then ink on background plus pixel noise.
    coverage = np.clip(radius[:, None, None] + np.float32(0.5) - np.sqrt(d2), 0.0, 1.0)
    img = np.float32(style.background) + np.float32(style.ink - style.background) * coverage
    if config.noise_std > 0:
        img += np.float32(config.noise_std) * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0, out=img)


def generate_glyphs(config: GlyphConfig | None = None) -> tuple[torch.Tensor, list[str], list[str]]:
    """Generate every alphabet's characters and drawings (uncached; see :func:`load_glyphs`).

    Args:
        config: what to generate (default: ``GlyphConfig()``).

    Returns:
        ``(images, class_names, alphabets)``: float32 images
        ``[n_alphabets * chars_per_alphabet, examples_per_char, 1, image_size, image_size]`` in
        ``[0, 1]`` (strokes brighter than background), class names like ``"alphabet03/char07"``,
        and the alphabet name of each class.
    """
    config = GlyphConfig() if config is None else config
    styles = _alphabet_styles(config)
    size = config.image_size
    n_classes = config.n_alphabets * config.chars_per_alphabet
    out = np.empty((n_classes, config.examples_per_char, 1, size, size), dtype=np.float32)
    char_width = max(2, len(str(config.chars_per_alphabet - 1)))
    class_names: list[str] = []
    alphabets: list[str] = []
    k = 0
    for a, (alphabet, style) in enumerate(zip(config.alphabet_names, styles)):
        for c in range(config.chars_per_alphabet):
            proto_seq, inst_seq = np.random.SeedSequence([config.seed, a, c]).spawn(2)
            cps, is_dot = _make_prototype(style, np.random.default_rng(proto_seq))
            out[k, :, 0] = _render_character(cps, is_dot, style, config, np.random.default_rng(inst_seq))
            class_names.append(f"{alphabet}/char{c:0{char_width}d}")
            alphabets.append(alphabet)
            k += 1
    return torch.from_numpy(out), class_names, alphabets


@functools.lru_cache(maxsize=4)
def _generate_cached(config: GlyphConfig) -> tuple[torch.Tensor, tuple[str, ...], tuple[str, ...]]:
    images, class_names, alphabets = generate_glyphs(config)
    return images, tuple(class_names), tuple(alphabets)


def load_glyphs(config: GlyphConfig | None = None, **overrides: object) -> FewShotDataset:
    """Load the procedural glyph dataset, split by alphabet into ``"train"``, ``"val"`` and ``"test"``.

    Generated data is cached in-process (the four most recent configs), so repeated loads are
    instant. Every call returns fresh tensors: modifying them never changes what later calls return.

    Args:
        config: the base config (default: ``GlyphConfig()``).
        **overrides: fields of :class:`GlyphConfig` to change, e.g. ``load_glyphs(seed=1)``.

    Returns:
        A :class:`FewShotDataset` named ``"glyphs"`` whose ``info["config"]`` is the config as a dict
        and ``info["split_alphabets"]`` the alphabets of each split.

    Raises:
        DataError: an override names no config field, or a value is out of range.
    """
    config = GlyphConfig() if config is None else config
    if not isinstance(config, GlyphConfig):
        raise DataError(f"load_glyphs expects a GlyphConfig or None, got {type(config).__name__}")
    if overrides:
        known = {f.name for f in dataclasses.fields(GlyphConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise DataError(f"unknown GlyphConfig field(s) {unknown}; valid fields are {sorted(known)}")
        config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
    images, class_names, alphabets = _generate_cached(config)
    split_alphabets = config.split_alphabets()
    # split_by_alphabet indexes with lists, which copies; the clone makes the guarantee explicit.
    splits = split_by_alphabet(images.clone(), list(class_names), list(alphabets), split_alphabets)
    description = (
        f"Procedural handwritten-like glyphs (offline Omniglot stand-in): {config.n_alphabets} alphabets "
        f"x {config.chars_per_alphabet} characters x {config.examples_per_char} drawings, "
        f"{config.image_size}x{config.image_size} grayscale, seed {config.seed}, variation "
        f"{config.variation:g}; split by alphabet {config.n_train_alphabets}/{config.n_val_alphabets}/"
        f"{config.n_test_alphabets} (train/val/test)."
    )
    return FewShotDataset(
        name="glyphs",
        splits=splits,
        description=description,
        info={"config": dataclasses.asdict(config), "split_alphabets": split_alphabets},
    )
