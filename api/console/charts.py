"""Charts drawn on the server as SVG: no script, no asset, readable without colour."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from markupsafe import Markup, escape

Number = int | float | Decimal


def _scale(values: Sequence[Number]) -> float:
    top = max((float(v) for v in values), default=0.0)
    return top if top > 0 else 1.0


def bars(rows: Sequence[tuple[str, Number]], *, title: str, unit: str = "") -> Markup:
    """Horizontal bars, one per labelled value."""
    width, label_width, row_height = 640, 210, 26
    height = max(len(rows), 1) * row_height + 8
    top = _scale([v for _, v in rows])
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for index, (label, value) in enumerate(rows):
        y = index * row_height + 4
        length = (width - label_width - 90) * float(value) / top
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row_height - 8}">'
            f"<title>{escape(label)}: {escape(unit)}{value}</title></rect>"
            f'<text x="{label_width + length + 6:.1f}" y="{y + 16}">{escape(unit)}{value}</text>'
        )
    if not rows:
        parts.append('<text x="8" y="20">nothing yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(
    series: Sequence[tuple[str, Sequence[tuple[str, Number]]]],
    *,
    title: str,
    unit: str = "",
    every: int = 5,
) -> Markup:
    """Vertical columns over time: one group per label, one column per series in it
    (labels are shown every `every` groups)."""
    width, height, left, bottom = 720, 220, 56, 28
    names = [name for name, _ in series]
    labels = [label for label, _ in series[0][1]] if series else []
    values = [float(v) for _, points in series for _, v in points]
    top = _scale(values)
    group = (width - left - 8) / max(len(labels), 1)
    column = max(group / max(len(series), 1) - 1, 1)
    plot = height - bottom
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{plot}" x2="{width - 8}" y2="{plot}" class="axis"/>',
        f'<text x="{left - 6}" y="12" text-anchor="end">{escape(unit)}{_short(top)}</text>',
        f'<text x="{left - 6}" y="{plot}" text-anchor="end">0</text>',
    ]
    for s, (name, points) in enumerate(series):
        for index, (label, value) in enumerate(points):
            length = (plot - 16) * float(value) / top
            x = left + index * group + s * (column + 1)
            parts.append(
                f'<rect class="series-{s}" x="{x:.1f}" y="{plot - length:.1f}" '
                f'width="{column:.1f}" height="{length:.1f}">'
                f"<title>{escape(label)} {escape(name)}: {escape(unit)}{value}</title></rect>"
            )
    for index, label in enumerate(labels):
        if index % every == 0:
            x = left + index * group
            parts.append(f'<text x="{x:.1f}" y="{height - 8}">{escape(label)}</text>')
    for s, name in enumerate(names):
        x = left + 8 + s * 130
        parts.append(
            f'<rect class="series-{s}" x="{x}" y="2" width="10" height="10"/>'
            f'<text x="{x + 14}" y="12">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _short(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}"
