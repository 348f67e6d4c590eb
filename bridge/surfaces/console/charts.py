"""Charts drawn on the server as inline SVG: no JavaScript, no library, nothing to build.

Colours come from the stylesheet (classes s0…s3), so the page's Content-Security-Policy can forbid inline
styles. Each bar and point carries a <title>, which browsers show on hover and screen readers read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDE, NARROW = 960, 540  # viewBox widths: a full-width card and a half-width one (text stays readable)
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 78, 12, 12, 30


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | int | None]


def nice_ticks(low: float, high: float, count: int = 4, integer: bool = True) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 × 10ⁿ apart) covering [low, high], 0 included."""
    low, high = min(low, 0), max(high, 0)
    if high == low:
        high = low + (1 if integer else 0.1)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1, math.ceil(step))
    first, last = math.floor(low / step) * step, math.ceil(high / step) * step
    ticks, value = [], first
    while value <= last + step / 1000:
        ticks.append(value)
        value += step
    return ticks


def _x_label_every(n: int, width: int) -> int:
    return max(1, math.ceil(n / (width // 80)))


def _frame(
    title: str, ticks: list[float], fmt: Callable[[float], str], scale: Callable[[float], float], width: int
) -> list[str]:
    parts = [
        f'<svg class="chart-svg w{width}" viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in ticks:
        y = scale(tick)
        css = "axis-zero" if tick == 0 else "grid"
        parts.append(f'<line class="{css}" x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(tick))}</text>')
    return parts


def _nothing(title: str) -> Markup:
    """The empty state: a sentence in the page's own text, readable at any screen width (a drawing scales)."""
    # bandit B704 is a false positive here and below: every text put in the markup goes through escape().
    return Markup(  # noqa: S704  # nosec B704
        f'<figure class="chart chart-empty" aria-label="{escape(title)}"><p class="nothing">Nothing in this period</p>'
        f"</figure>"
    )


def _legend(series: Sequence[Series]) -> str:
    if len(series) < 2:
        return ""
    items = "".join(f'<li><span class="swatch s{i}"></span>{escape(s.name)}</li>' for i, s in enumerate(series))
    return f'<ul class="legend">{items}</ul>'


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    fmt: Callable[[float], str] = str,
    integer: bool = True,
    width: int = WIDE,
    unit: int = 1,
    empty_when_zero: bool = True,
) -> Markup:
    """Grouped bars: one group per label, one bar per series."""
    values = [v for s in series for v in s.values if v is not None]
    if empty_when_zero and not any(values):
        return _nothing(title)
    ticks = nice_ticks(min(values, default=0), max(values, default=0) or unit, integer=integer)
    low, high = ticks[0], ticks[-1]
    plot_h = HEIGHT - TOP - BOTTOM

    def scale(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    parts = _frame(title, ticks, fmt, scale, width)
    n = max(len(labels), 1)
    group = (width - LEFT - RIGHT) / n
    bar = group * 0.78 / max(len(series), 1)
    every = _x_label_every(n, width)
    for i, label in enumerate(labels):
        x0 = LEFT + i * group + group * 0.11
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else None
            if value is None:
                continue
            top, bottom = sorted((scale(value), scale(0)))
            height = max(bottom - top, 0.8 if value else 0)
            parts.append(
                f'<rect class="bar s{j}" x="{x0 + j * bar:.1f}" y="{top:.1f}" width="{max(bar - 1, 1):.1f}" '
                f'height="{height:.1f}"><title>{escape(label)} · {escape(s.name)}: {escape(fmt(value))}</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text class="label" x="{LEFT + i * group + group / 2:.1f}" y="{HEIGHT - 10}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup(f'<figure class="chart">{"".join(parts)}{_legend(series)}</figure>')  # noqa: S704  # nosec B704


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    fmt: Callable[[float], str] = str,
    integer: bool = True,
    width: int = WIDE,
    unit: int = 1,
    empty_when_zero: bool = True,
) -> Markup:
    """One line per series, a point per label (with its value on hover)."""
    values = [v for s in series for v in s.values if v is not None]
    if empty_when_zero and not any(values):
        return _nothing(title)
    ticks = nice_ticks(min(values, default=0), max(values, default=0) or unit, integer=integer)
    low, high = ticks[0], ticks[-1]
    plot_h = HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    step = (width - LEFT - RIGHT) / n

    def scale(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    def x(i: int) -> float:
        return LEFT + step * i + step / 2

    parts = _frame(title, ticks, fmt, scale, width)
    for j, s in enumerate(series):
        points = [(x(i), scale(v), labels[i], v) for i, v in enumerate(s.values) if v is not None and i < len(labels)]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
            parts.append(f'<polyline class="line s{j}" points="{path}"/>')
        radius = 3 if len(points) <= 62 else 1.5
        for px, py, label, value in points:
            parts.append(
                f'<circle class="point s{j}" cx="{px:.1f}" cy="{py:.1f}" r="{radius}">'
                f"<title>{escape(label)} · {escape(s.name)}: {escape(fmt(value))}</title></circle>"
            )
    every = _x_label_every(n, width)
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(
                f'<text class="label" x="{x(i):.1f}" y="{HEIGHT - 10}" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup(f'<figure class="chart">{"".join(parts)}{_legend(series)}</figure>')  # noqa: S704  # nosec B704
