"""Charts fit the UI's metadata modal and say what they cannot draw."""

import math
import struct

from ops.common.plots import grouped_bar_png, heatmap_png, line_png, stacked_bar_png, undefined_note

MODAL_PX = 1240


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_wide_charts_fit_the_modal():
    many = [f"category {index}" for index in range(60)]
    charts = [
        grouped_bar_png(many, {"a": [0.5] * 60, "b": [0.25] * 60}, "t", "rate", ylim=(0, 1)),
        stacked_bar_png(many, {"kept": [3.0] * 60, "dropped": [1.0] * 60}, "t", "rows"),
        heatmap_png([[0.5] * 40] * 40, many[:40], many[:40], "t"),
        line_png(many, {"a": [0.1 * (i % 10) for i in range(60)]}, "t", "rate"),
    ]
    assert all(png_size(chart)[0] <= MODAL_PX for chart in charts), [png_size(chart) for chart in charts]


def test_undefined_values_are_named_not_silently_dropped():
    series = {"mlp": [0.4, math.nan], "encoder": [0.2, 0.3]}
    assert undefined_note(["topic", "format"], series) == "n/a (undefined, no bar): mlp / format"
    assert undefined_note(["topic"], {"only": [math.nan]}) == "n/a (undefined, no bar): topic"
    assert undefined_note(["topic"], {"only": [0.0]}) == ""


def test_charts_with_nothing_to_draw_still_render():
    assert png_size(grouped_bar_png(["a", "b"], {"s": [math.nan, math.nan]}, "t", "kappa"))[0] > 0
    assert png_size(stacked_bar_png(["a"], {"s": [0.0]}, "t", "rows"))[0] > 0
