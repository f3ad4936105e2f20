"""Server-drawn SVG charts: the geometry is computed here, the template writes the elements.

No JavaScript and no chart library: a bar chart is a list of rectangles with a label each
(a ``<title>`` for hover and a text alternative for screen readers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 960, 220
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 40, 26, 10
EPSILON = 1e-9  # 0.45 / 0.05 is 8.999...: a score on a bin edge belongs to the bin above


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    label: str  # what the bar counts, in words
    tick: str = ""  # an axis label under the bar ("" for none)
    marked: bool = False  # drawn in the accent colour (the threshold's bin)


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    peak: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = PAD_LEFT
    top: int = PAD_TOP
    base: int = HEIGHT - PAD_BOTTOM
    marker_x: float | None = None  # a vertical line (the threshold)


def _bars(counts: Sequence[int], labels: Sequence[str], ticks: Sequence[str]) -> list[Bar]:
    peak = max([*counts, 1])
    span = (WIDTH - PAD_LEFT) / max(len(counts), 1)
    usable = HEIGHT - PAD_BOTTOM - PAD_TOP
    out = []
    for i, (n, label, tick) in enumerate(zip(counts, labels, ticks, strict=True)):
        h = usable * n / peak
        out.append(Bar(PAD_LEFT + i * span + 1, HEIGHT - PAD_BOTTOM - h, span - 2, h, label, tick))
    return out


def by_day(days: Sequence[tuple[date, int, int]]) -> Chart:
    """Matches per day; about eight dates are written under the axis, whatever the span."""
    every = max(1, math.ceil(len(days) / 8))
    labels = [f"{d:%Y-%m-%d}: {n} matches, {a} alerted" for d, n, a in days]
    ticks = [f"{d:%m-%d}" if i % every == 0 else "" for i, (d, _, _) in enumerate(days)]
    counts = [n for _, n, _ in days]
    return Chart(tuple(_bars(counts, labels, ticks)), max([*counts, 0]))


def histogram(scores: Sequence[float], threshold: float, width: float = 0.05) -> Chart:
    """Scores in ``width`` bins from the lowest of scores and threshold up to the highest; the
    threshold is a vertical line."""
    low = math.floor(min([*scores, threshold]) / width + EPSILON)
    high = math.floor(max([*scores, threshold]) / width + EPSILON) + 1
    edges = [round(k * width, 4) for k in range(low, high + 1)]
    counts = [0] * (len(edges) - 1)
    for score in scores:
        counts[min(math.floor(score / width + EPSILON) - low, len(counts) - 1)] += 1
    labels = [f"{a:.2f} to {b:.2f}: {n}" for a, b, n in zip(edges, edges[1:], counts, strict=False)]
    every = max(1, math.ceil(len(counts) / 8))
    ticks = [f"{a:.2f}" if i % every == 0 else "" for i, a in enumerate(edges[:-1])]
    bars = _bars(counts, labels, ticks)
    span = (WIDTH - PAD_LEFT) / max(len(counts), 1)
    marker = PAD_LEFT + (threshold / width - low) * span
    return Chart(tuple(bars), max([*counts, 0]), marker_x=marker)
