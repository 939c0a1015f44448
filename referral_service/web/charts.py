"""Charts for the analyst's pages, drawn on the server as inline SVG: no script, nothing fetched.

Each chart is one `<svg role="img">` named by its `<title>` and described by its `<desc>` (every
number in it, as a sentence); the table beside it on the page is the source of truth, and the chart
takes its texts from the same formatting. Widths are percentages of the chart's box and heights
pixels, so the text keeps its size from a phone to a desktop (a viewBox would scale it down).
Styling is by class in static/spis.css: the pages' CSP allows no inline style.

A masked figure is never drawn as zero or as a bar of any length: it gets a short hatched marker
and its label ("masked — small number"). A figure with nothing to report (no one in it) gets no
bar, only its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

ROW = 50  # px per bar row: a label line, then the bar
LABEL_Y = 16  # the label's baseline within a row
BAR_Y = 24  # the bar's top within a row
BAR_H = 18
PLOT = 64.0  # % of the width the longest bar takes; the rest holds its value's text
MARKER_W = 26  # px: the hatched marker of a masked figure
TEXT_GAP = 1.0  # % between a bar's end and its text
TICK_ROOM = 12.0  # % of the width an axis figure needs clear of the next


@dataclass(frozen=True, slots=True)
class Bar:
    """One figure as a bar. `text` is how the table writes it, or why it has no value."""

    label: str
    value: float | None  # None: masked, or nothing to show
    text: str
    masked: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    """Bars side by side under one label (a month's hours given and received)."""

    label: str
    bars: tuple[Bar, ...]  # one per series, in the order the series are named


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean with its 95% confidence interval."""

    label: str
    mean: float | None
    low: float | None
    high: float | None
    text: str
    masked: bool = False


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar]) -> Markup:
    """Horizontal bars, one per figure, scaled to the largest shown."""
    top = max((b.value for b in bars if b.value is not None), default=0.0)
    rows = [_bar_row(chart_id, i * ROW, bar, top, "chart__bar") for i, bar in enumerate(bars)]
    desc = "; ".join(f"{b.label}: {b.text}" for b in bars)
    return _svg(chart_id, title, desc, len(bars) * ROW, _hatch(chart_id), *rows)


def grouped_bar_chart(
    chart_id: str, title: str, series: Sequence[str], groups: Sequence[Group]
) -> Markup:
    """Per group a label and one bar per series, all on one scale; a legend names the series
    and each bar's text starts with its series' name, so colour is never the only cue."""
    top = max((b.value for g in groups for b in g.bars if b.value is not None), default=0.0)
    legend = _legend(series)
    parts: list[str] = []
    y = ROW // 2
    group_h = LABEL_Y + 8 + len(series) * (BAR_H + 6) + 6
    for group in groups:
        parts.append(_text(0, y + LABEL_Y, group.label, "chart__label"))
        for s, bar in enumerate(group.bars):
            named = Bar(bar.label, bar.value, f"{series[s]} {bar.text}", bar.masked)
            bar_y = y + LABEL_Y + 8 + s * (BAR_H + 6) - BAR_Y
            parts.append(_bar_row(chart_id, bar_y, named, top, f"chart__bar chart__bar--s{s}", 0))
        y += group_h
    desc = "; ".join(
        f"{g.label}: "
        + ", ".join(f"{name} {b.text}" for name, b in zip(series, g.bars, strict=True))
        for g in groups
    )
    return _svg(chart_id, title, desc, y, _hatch(chart_id), legend, *parts)


def interval_chart(
    chart_id: str, title: str, rows: Sequence[Interval], *, note: str = ""
) -> Markup:
    """A dot for each mean and a whisker for its 95% confidence interval, on one axis with the
    zero line (no change) marked. `note` (e.g. "lower is better") is said in the description."""
    lo, hi = _domain(rows)
    top = 28
    axis = _axis(lo, hi, top, [top + i * ROW for i in range(len(rows))])
    drawn = [_interval_row(chart_id, top + i * ROW, row, lo, hi) for i, row in enumerate(rows)]
    desc = "; ".join(f"{r.label}: {r.text}" for r in rows) + ". The dashed line marks 0, no change."
    desc += f" {note}" if note else ""
    return _svg(chart_id, title, desc, top + len(rows) * ROW, _hatch(chart_id), axis, *drawn)


# -- the parts ---------------------------------------------------------------------------------


def _svg(chart_id: str, title: str, desc: str, height: int, *parts: str) -> Markup:
    body = "".join(parts)
    # Every text and id in it went through `escape`; the rest are numbers and fixed markup.
    return Markup(  # noqa: S704
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart__svg" id="{escape(chart_id)}" '
        f'width="100%" height="{height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>{body}</svg>'
    )


def _hatch(chart_id: str) -> str:
    """The diagonal hatching masked figures are marked with (an id per chart: ids are unique
    on the page)."""
    return (
        f'<defs><pattern id="{escape(chart_id)}-hatch" class="chart__hatch" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect class="chart__hatch-ground" width="6" height="6"/>'
        '<line class="chart__hatch-line" x1="0" y1="0" x2="0" y2="6"/></pattern></defs>'
    )


def _bar_row(chart_id: str, y: float, bar: Bar, top: float, css: str, label: int = 1) -> str:
    """One bar at row offset `y`: its label line (unless `label` is 0), then the bar and its
    value's text; a masked figure gets the hatched marker instead of a bar."""
    parts = [_text(0, y + LABEL_Y, bar.label, "chart__label")] if label else []
    bar_top = y + BAR_Y
    text_y = bar_top + BAR_H - 4
    if bar.masked:
        parts.append(
            f'<rect class="chart__masked" x="0" y="{bar_top}" width="{MARKER_W}" '
            f'height="{BAR_H}" fill="url(#{escape(chart_id)}-hatch)" data-masked="true"/>'
        )
        parts.append(
            _text(f"{MARKER_W + 6}", text_y, bar.text, "chart__value chart__value--masked")
        )
        return "".join(parts)
    if bar.value is None:
        parts.append(_text("0", text_y, bar.text, "chart__value chart__value--none"))
        return "".join(parts)
    share = PLOT * bar.value / top if top > 0 else 0.0
    parts.append(
        f'<rect class="{css}" x="0" y="{bar_top}" width="{share:.3f}%" height="{BAR_H}" '
        f'data-value="{bar.value:g}"/>'
    )
    parts.append(_text(f"{share + TEXT_GAP:.3f}%", text_y, bar.text, "chart__value"))
    return "".join(parts)


def _legend(series: Sequence[str]) -> str:
    parts = []
    for s, name in enumerate(series):
        x = f"{s * 30}%"
        parts.append(
            f'<rect class="chart__bar chart__bar--s{s}" x="{x}" y="2" width="14" height="14"/>'
        )
        parts.append(f'<text class="chart__legend" x="{s * 30 + 4}%" y="14">{escape(name)}</text>')
    return "".join(parts)


def _domain(rows: Sequence[Interval]) -> tuple[float, float]:
    """The axis: every shown interval and zero, with a little room either side."""
    ends = [v for r in rows if not r.masked for v in (r.low, r.high, r.mean) if v is not None]
    lo, hi = min([*ends, 0.0]), max([*ends, 0.0])
    if hi - lo == 0:
        return -1.0, 1.0
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def _x(value: float, lo: float, hi: float) -> float:
    """Where a value sits, in % of the width (the plot spans 2% to 98%)."""
    return 2 + 96 * (value - lo) / (hi - lo)


def _axis(lo: float, hi: float, y0: int, rows: Sequence[int]) -> str:
    """The ends of the axis and zero written above the rows; the zero line drawn through each
    row's whisker, not across its label."""
    zero = _x(0.0, lo, hi)
    lines = "".join(
        f'<line class="chart__zero" x1="{zero:.3f}%" y1="{y + BAR_Y - 4}" x2="{zero:.3f}%" '
        f'y2="{y + BAR_Y + BAR_H + 4}"/>'
        for y in rows
    )
    ticks = [_text(f"{zero:.3f}%", y0 - 12, "0", "chart__tick", anchor="middle")]
    # An end's figure only where it does not run into the zero's.
    if zero - 2 > TICK_ROOM:
        ticks.append(_text("2%", y0 - 12, f"{lo:+.1f}", "chart__tick"))
    if 98 - zero > TICK_ROOM:
        ticks.append(_text("98%", y0 - 12, f"{hi:+.1f}", "chart__tick", anchor="end"))
    return lines + "".join(ticks)


def _interval_row(chart_id: str, y: int, row: Interval, lo: float, hi: float) -> str:
    label = f"{row.label}: {row.text}"
    parts = [_text(0, y + LABEL_Y, label, "chart__label")]
    mid = y + BAR_Y + BAR_H // 2
    if row.masked:
        parts.append(
            f'<rect class="chart__masked" x="0" y="{y + BAR_Y}" width="{MARKER_W}" '
            f'height="{BAR_H}" fill="url(#{escape(chart_id)}-hatch)" data-masked="true"/>'
        )
        return "".join(parts)
    if row.mean is None or row.low is None or row.high is None:
        return "".join(parts)
    x_low, x_mean, x_high = (_x(v, lo, hi) for v in (row.low, row.mean, row.high))
    parts.append(
        f'<line class="chart__whisker" x1="{x_low:.3f}%" y1="{mid}" x2="{x_high:.3f}%" '
        f'y2="{mid}" data-low="{row.low:g}" data-high="{row.high:g}"/>'
    )
    for x in (x_low, x_high):
        parts.append(
            f'<line class="chart__whisker" x1="{x:.3f}%" y1="{mid - 6}" x2="{x:.3f}%" '
            f'y2="{mid + 6}"/>'
        )
    parts.append(
        f'<circle class="chart__dot" cx="{x_mean:.3f}%" cy="{mid}" r="6" '
        f'data-value="{row.mean:g}"/>'
    )
    return "".join(parts)


def _text(x: float | str, y: float, text: str, css: str, *, anchor: str = "start") -> str:
    where = f"{x}" if isinstance(x, str) else f"{x:g}"
    return f'<text class="{css}" x="{where}" y="{y:g}" text-anchor="{anchor}">{escape(text)}</text>'
