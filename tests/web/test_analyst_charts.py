"""The analyst's charts (web/charts.py): well-formed SVG with a text alternative, bars in
proportion to their values, masked figures drawn as masked (never as a bar, never as zero)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from referral_service.web import charts

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def bars_of(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{SVG}rect") if "data-value" in r.attrib]


def texts(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text")]


def width(rect: ET.Element) -> float:
    return float(rect.attrib["width"].removesuffix("%"))


def test_a_bar_chart_is_an_image_named_by_its_title_and_described_by_its_numbers() -> None:
    svg = parsed(
        charts.bar_chart(
            "chart-funnel",
            "People at each stage",
            [charts.Bar("Referred", 120, "120"), charts.Bar("Routed", 60, "60")],
        )
    )
    assert svg.attrib["role"] == "img"
    assert svg.attrib["aria-labelledby"] == "chart-funnel-title chart-funnel-desc"
    assert svg.find(f"{SVG}title").text == "People at each stage"  # type: ignore[union-attr]
    assert svg.find(f"{SVG}desc").text == "Referred: 120; Routed: 60"  # type: ignore[union-attr]
    assert svg.find(f"{SVG}title").attrib["id"] == "chart-funnel-title"  # type: ignore[union-attr]


def test_bars_are_in_proportion_to_their_values_the_largest_taking_the_plot_width() -> None:
    values = [200.0, 100.0, 50.0, 0.0]
    svg = parsed(charts.bar_chart("c", "t", [charts.Bar(f"b{v}", v, f"{v:g}") for v in values]))
    widths = [width(rect) for rect in bars_of(svg)]
    assert widths == pytest.approx([charts.PLOT, charts.PLOT / 2, charts.PLOT / 4, 0.0])
    assert [float(r.attrib["data-value"]) for r in bars_of(svg)] == values
    # Each bar's text sits just after its end.
    value_texts = [t for t in svg.iter(f"{SVG}text") if t.attrib["class"] == "chart__value"]
    assert [float(t.attrib["x"].removesuffix("%")) for t in value_texts] == pytest.approx(
        [w + charts.TEXT_GAP for w in widths]
    )


def test_a_masked_figure_is_a_hatched_marker_with_its_label_never_a_bar_or_zero() -> None:
    chart = charts.bar_chart(
        "chart-x",
        "t",
        [
            charts.Bar("Referred", 40, "40"),
            charts.Bar("Completed", None, "masked — small number", masked=True),
        ],
    )
    svg = parsed(chart)
    assert [r.attrib["data-value"] for r in bars_of(svg)] == ["40"]  # one bar only
    [marker] = [r for r in svg.iter(f"{SVG}rect") if r.attrib.get("data-masked") == "true"]
    assert marker.attrib["fill"] == "url(#chart-x-hatch)"
    assert svg.find(f".//{SVG}pattern").attrib["id"] == "chart-x-hatch"  # type: ignore[union-attr]
    assert "masked — small number" in texts(svg)
    assert "0" not in texts(svg)
    assert "Completed: masked — small number" in (svg.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]


def test_a_figure_with_nothing_to_report_has_no_bar_only_its_text() -> None:
    svg = parsed(charts.bar_chart("c", "t", [charts.Bar("Programme cost", None, "not entered")]))
    assert bars_of(svg) == []
    assert [r for r in svg.iter(f"{SVG}rect") if r.attrib.get("data-masked")] == []
    assert "not entered" in texts(svg)


def test_labels_are_escaped_and_the_svg_stays_well_formed() -> None:
    chart = charts.bar_chart("c", "<b>&", [charts.Bar('<script>"x"</script>', 1, "1 & 2")])
    assert "<script>" not in str(chart)
    svg = parsed(chart)
    assert '<script>"x"</script>' in texts(svg)
    assert svg.find(f"{SVG}title").text == "<b>&"  # type: ignore[union-attr]


def test_grouped_bars_share_one_scale_and_each_bar_names_its_series() -> None:
    groups = [
        charts.Group("July 2026", (charts.Bar("", 30, "30.0"), charts.Bar("", 60, "60.0"))),
        charts.Group(
            "August 2026",
            (charts.Bar("", 15, "15.0"), charts.Bar("", None, "masked", masked=True)),
        ),
    ]
    svg = parsed(charts.grouped_bar_chart("h", "Hours", ("Given", "Received"), groups))
    widths = {float(r.attrib["data-value"]): width(r) for r in bars_of(svg)}
    assert widths == pytest.approx(
        {60.0: charts.PLOT, 30.0: charts.PLOT / 2, 15.0: charts.PLOT / 4}
    )
    shown = texts(svg)
    assert {"Given 30.0", "Received 60.0", "Given 15.0", "Received masked"} <= set(shown)
    assert {"Given", "Received"} <= set(shown)  # the legend
    assert (svg.find(f"{SVG}desc").text or "").startswith("July 2026: Given 30.0, Received 60.0")  # type: ignore[union-attr]
    # The bars of a series share its class (its colour), the legend's swatch too.
    classes = [
        r.attrib["class"]
        for r in svg.iter(f"{SVG}rect")
        if "chart__bar--s1" in r.attrib.get("class", "")
    ]
    assert len(classes) == 2  # the legend's swatch and July's received bar (August's is masked)


def _x(element: ET.Element, name: str) -> float:
    return float(element.attrib[name].removesuffix("%"))


def test_an_interval_chart_places_dot_whisker_and_zero_line_on_one_axis() -> None:
    rows = [
        charts.Interval("Whole board", 2.0, 1.0, 3.0, "+2.00 (95% CI 1.00 to 3.00)"),
        charts.Interval("July 2026", -1.0, -2.0, 0.5, "-1.00 (95% CI -2.00 to 0.50)"),
        charts.Interval(
            "August 2026", None, None, None, "masked — fewer than 8 people", masked=True
        ),
    ]
    svg = parsed(charts.interval_chart("w", "SWEMWBS", rows, note="Higher is better."))
    lo, hi = -2.0 - 0.4, 3.0 + 0.4  # the shown ends and zero, 8% room either side

    def at(v: float) -> float:
        return 2 + 96 * (v - lo) / (hi - lo)

    zero = next(line for line in svg.iter(f"{SVG}line") if line.attrib["class"] == "chart__zero")
    assert _x(zero, "x1") == pytest.approx(at(0), abs=1e-3)
    dots = list(svg.iter(f"{SVG}circle"))
    assert [float(d.attrib["data-value"]) for d in dots] == [2.0, -1.0]
    assert [_x(d, "cx") for d in dots] == pytest.approx([at(2.0), at(-1.0)], abs=1e-3)
    whiskers = [w for w in svg.iter(f"{SVG}line") if "data-low" in w.attrib]
    ends = [x for w in whiskers for x in (_x(w, "x1"), _x(w, "x2"))]
    assert ends == pytest.approx([at(1.0), at(3.0), at(-2.0), at(0.5)], abs=1e-3)
    assert len([r for r in svg.iter(f"{SVG}rect") if r.attrib.get("data-masked")]) == 1
    assert "August 2026: masked — fewer than 8 people" in texts(svg)
    desc = svg.find(f"{SVG}desc")
    assert desc is not None
    assert (desc.text or "").endswith(". The dashed line marks 0, no change. Higher is better.")


def test_charts_with_nothing_shown_draw_no_bars_and_divide_by_nothing() -> None:
    empty = parsed(charts.bar_chart("e", "t", [charts.Bar("a", 0, "0"), charts.Bar("b", 0, "0")]))
    assert [width(r) for r in bars_of(empty)] == [0.0, 0.0]
    masked = [charts.Interval("Whole board", None, None, None, "masked", masked=True)]
    svg = parsed(charts.interval_chart("i", "t", masked))
    assert list(svg.iter(f"{SVG}circle")) == []
    zero = next(line for line in svg.iter(f"{SVG}line") if line.attrib["class"] == "chart__zero")
    assert _x(zero, "x1") == pytest.approx(50.0)  # the axis runs -1 to 1
