"""Glyph images: characters rendered from TrueType fonts, with random affine jitter.

Each (font, character) pair is rasterised once by FreeType (through matplotlib's ``ft2font``)
into an em-sized canvas with a common baseline, so case and size differences between
characters survive ('o' stays smaller than 'O'). Samples are then drawn by warping these
templates with random affine maps (rotation, scale, shear, translation) in one batched
``grid_sample`` call at twice the target resolution and average-pooled down (anti-aliasing),
with optional stroke-width and intensity noise. Every random number comes from one
``numpy.random.Generator`` seeded by the caller, so a seed fixes the dataset bit for bit.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ablab.errors import DataError, did_you_mean

DIGITS = string.digits
UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
ALL_CHARS = DIGITS + UPPER + LOWER

#: Fonts used for in-distribution glyphs (matplotlib's bundled DejaVu families).
ID_FONTS: tuple[str, ...] = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
    "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique",
    "DejaVuSansMono-BoldOblique",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
)  # fmt: skip
#: Fonts held out for the style-shift OOD set (STIX and Computer Modern, also bundled).
HELDOUT_FONTS: tuple[str, ...] = (
    "STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic", "STIXGeneralBolIta",
    "cmr10", "cmss10", "cmtt10", "cmti10", "cmb10",
)  # fmt: skip

_EM = 64  # pixels per em when rasterising templates
_CANVAS = int(_EM * 1.2)  # square canvas side, in pixels
_BASELINE = int(_CANVAS / 2 + 0.3 * _EM)  # row of the baseline in the canvas


@dataclass(frozen=True)
class Jitter:
    """Ranges of the random affine map and noise applied to each glyph sample.

    ``rotation`` (degrees) and ``shear`` are symmetric ranges; ``scale`` is ``(low, high)``;
    ``translate`` is a fraction of the image side; ``stroke`` is the probability that a sample's
    strokes are thickened or thinned by one supersampled pixel; ``intensity`` draws each
    sample's ink intensity from ``U(1 - intensity, 1)``; ``noise`` is the standard deviation of
    additive Gaussian pixel noise (result clipped to [0, 1]).
    """

    rotation: float = 12.0
    scale: tuple[float, float] = (0.85, 1.1)
    shear: float = 0.2
    translate: float = 0.08
    stroke: float = 0.0
    intensity: float = 0.0
    noise: float = 0.0

    @classmethod
    def none(cls) -> Jitter:
        return cls(rotation=0.0, scale=(1.0, 1.0), shear=0.0, translate=0.0)


def bundled_font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=1)
def available_fonts() -> dict[str, str]:
    """Map font name (file stem) to path: matplotlib's bundled fonts, then system fonts."""
    from matplotlib import font_manager

    fonts: dict[str, str] = {}
    for p in sorted(bundled_font_dir().glob("*.ttf")):
        fonts[p.stem] = str(p)
    for p in sorted(font_manager.findSystemFonts(fontext="ttf")):
        fonts.setdefault(Path(p).stem, p)
    return fonts


def resolve_font(font: str) -> str:
    """Return the file path of ``font`` (a bundled/system font name or a path)."""
    if os.path.sep in font or font.endswith((".ttf", ".otf")):
        if not Path(font).is_file():
            raise DataError(f"font file '{font}' does not exist", hint="pass an existing .ttf path")
        return font
    fonts = available_fonts()
    if font not in fonts:
        hint = did_you_mean(font, fonts) or f"available fonts: {', '.join(sorted(fonts))}"
        raise DataError(f"unknown font '{font}'", hint=hint)
    return fonts[font]


@lru_cache(maxsize=4096)
def _canvas(path: str, char: str) -> np.ndarray | None:
    """Rasterise ``char`` from the font at ``path`` into the em canvas (None if missing)."""
    from matplotlib.ft2font import FT2Font

    ft = FT2Font(path)
    if ft.get_char_index(ord(char)) == 0:
        return None
    ft.set_size(_EM, 72)
    glyph = ft.load_char(ord(char))
    ft.set_text(char, 0.0)
    ft.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(ft.get_image(), dtype=np.float32) / 255.0
    if img.size == 0 or img.max() <= 0:
        return None
    ys, xs = np.nonzero(img > 0)
    img = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = img.shape
    h, w = min(h, _CANVAS), min(w, _CANVAS)
    img = img[:h, :w]
    top = int(np.clip(_BASELINE - round(glyph.horiBearingY / 64), 0, _CANVAS - h))
    left = (_CANVAS - w) // 2
    canvas = np.zeros((_CANVAS, _CANVAS), dtype=np.float32)
    canvas[top : top + h, left : left + w] = img
    return canvas


def _templates(paths: list[str], chars: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Templates ``(K, size, size)`` and a ``(len(chars), len(paths))`` index table (-1 missing)."""
    import torch
    import torch.nn.functional as F

    canvases, table = [], np.full((len(chars), len(paths)), -1, dtype=np.int64)
    for i, ch in enumerate(chars):
        for j, p in enumerate(paths):
            c = _canvas(p, ch)
            if c is not None:
                table[i, j] = len(canvases)
                canvases.append(c)
    if not canvases:
        raise DataError("none of the requested fonts contains any of the requested characters")
    t = torch.from_numpy(np.stack(canvases))[:, None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t[:, 0].clamp_(0, 1).numpy(), table


def _affine_thetas(n: int, jitter: Jitter, rng: np.random.Generator) -> np.ndarray:
    """``(n, 2, 3)`` output->input maps in normalised coordinates for ``affine_grid``."""
    rot = np.deg2rad(rng.uniform(-jitter.rotation, jitter.rotation, n))
    scale = rng.uniform(jitter.scale[0], jitter.scale[1], n)
    shear = rng.uniform(-jitter.shear, jitter.shear, n)
    trans = rng.uniform(-jitter.translate, jitter.translate, (n, 2)) * 2.0
    cos, sin = np.cos(rot), np.sin(rot)
    # forward map A = R @ Shear @ S; the sampler needs its inverse applied to (out - t)
    fwd = np.empty((n, 2, 2))
    fwd[:, 0, 0] = scale * cos
    fwd[:, 0, 1] = scale * (cos * shear - sin)
    fwd[:, 1, 0] = scale * sin
    fwd[:, 1, 1] = scale * (sin * shear + cos)
    inv = np.linalg.inv(fwd)
    theta = np.empty((n, 2, 3))
    theta[:, :, :2] = inv
    theta[:, :, 2] = -np.einsum("nij,nj->ni", inv, trans)
    return theta


def render_glyphs(
    chars: str,
    labels: np.ndarray,
    fonts: list[str] | tuple[str, ...],
    resolution: int,
    rng: np.random.Generator,
    jitter: Jitter | None = None,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one image per entry of ``labels`` (indices into ``chars``).

    Returns ``(images, font_index)``: images ``(N, 1, resolution, resolution)`` float32 in
    [0, 1] (ink is bright), and the font each sample was drawn from. A character missing from
    a font is drawn from the other fonts; a character no font has raises :class:`DataError`.
    """
    import torch
    import torch.nn.functional as F

    if resolution < 4:
        raise DataError(f"glyph resolution must be at least 4 pixels, got {resolution}")
    jitter = jitter or Jitter()
    paths = [resolve_font(f) for f in fonts]
    templates, table = _templates(paths, chars, 2 * resolution)
    missing = [chars[i] for i in range(len(chars)) if (table[i] < 0).all()]
    if missing:
        raise DataError(
            f"characters {missing!r} exist in none of the fonts {list(fonts)}",
            hint="choose other fonts or classes",
        )
    n = len(labels)
    # choose a font per sample among those having the character
    font_idx = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for i in range(len(chars)):
        sel = labels == i
        have = np.flatnonzero(table[i] >= 0)
        font_idx[sel] = have[np.minimum((u[sel] * len(have)).astype(int), len(have) - 1)]
    tmpl_idx = table[labels, font_idx]
    theta = _affine_thetas(n, jitter, rng)
    stroke = rng.random(n) < jitter.stroke
    thicken = rng.random(n) < 0.5
    ink = rng.uniform(1.0 - jitter.intensity, 1.0, n)
    noise_seed = int(rng.integers(2**63))
    size = 2 * resolution
    out = np.empty((n, 1, resolution, resolution), dtype=np.float32)
    tmpl = torch.from_numpy(templates)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        src = tmpl[torch.from_numpy(tmpl_idx[s:e])][:, None]
        th = torch.from_numpy(theta[s:e]).float()
        grid = F.affine_grid(th, [e - s, 1, size, size], align_corners=False)
        img = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if stroke[s:e].any():
            thick = F.max_pool2d(img, 3, stride=1, padding=1)
            thin = -F.max_pool2d(-img, 3, stride=1, padding=1)
            st = torch.from_numpy(stroke[s:e])[:, None, None, None]
            tk = torch.from_numpy(thicken[s:e])[:, None, None, None]
            img = torch.where(st, torch.where(tk, thick, thin), img)
        img = F.avg_pool2d(img, 2) * torch.from_numpy(ink[s:e]).float()[:, None, None, None]
        out[s:e] = img.numpy()
    if jitter.noise > 0:
        noise_rng = np.random.default_rng(noise_seed)
        out += noise_rng.normal(0.0, jitter.noise, out.shape).astype(np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return out, font_idx
