"""The SVG charts' geometry: one bar per day or bin, heights in proportion, the threshold line
where the threshold is, a score on a bin edge in the bin above it."""

from __future__ import annotations

from datetime import date, timedelta

from monitor.web import charts


def test_by_day_has_one_bar_a_day_in_proportion() -> None:
    start = date(2026, 11, 1)
    days = [(start + timedelta(days=i), n, 0) for i, n in enumerate([0, 2, 4, 1])]
    chart = charts.by_day(days)
    assert chart.bars[0].h == 0
    assert chart.bars[2].h == 2 * chart.bars[1].h
    assert chart.bars[2].y == chart.top  # the tallest bar reaches the top
    assert chart.peak == 4
    assert chart.bars[1].label == "2026-11-02: 2 matches, 0 alerted"


def test_histogram_puts_edge_scores_in_the_upper_bin_and_marks_the_threshold() -> None:
    chart = charts.histogram([0.40, 0.45, 0.45, 0.5], threshold=0.5, width=0.05)
    counts = [round(b.h / chart.bars[1].h * 2) if chart.bars[1].h else 0 for b in chart.bars]
    assert counts == [1, 2, 1]
    assert chart.marker_x is not None
    assert abs(chart.marker_x - chart.bars[2].x) < 2  # the line opens the 0.50 bin


def test_empty_data_draws_an_empty_chart() -> None:
    assert charts.histogram([], threshold=0.5).peak == 0
    assert charts.by_day([]).bars == ()
