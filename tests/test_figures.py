"""The figures read cleanly: no legend covers a curve, dashed means training error in every figure, and the
x axis is in units that suit the run length."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from test_report import fake_run

from resnet_repro.report import figure7 as figure7_module
from resnet_repro.report import figures, make_report
from resnet_repro.report.style import x_unit


@pytest.fixture
def drawn(monkeypatch):
    """Every figure a report draws, by name, laid out as saved."""
    figs = {}
    for module in (figures, figure7_module):
        finish = module.finish

        def keep(fig, title, footer, out, name, finish=finish):
            paths = finish(fig, title, footer, out, name)
            figs[name] = fig
            return paths

        monkeypatch.setattr(module, "finish", keep)
    return figs


def zigzag(points: int) -> list[float]:
    """An error curve that sweeps the whole axis back and forth: no free corner for a legend inside the axes."""
    return [0.05 if i % 2 else 0.95 for i in range(points)]


def sweep_of(out, steps: int, nets=(("plain", (20, 32, 44, 56)), ("resnet", (20, 32, 44, 56, 110)))):
    every = max(1, steps // 40)
    for arch, depths in nets:
        for depth in depths:
            errors = {split: zigzag(steps // every) for split in ("train", "test")}
            fake_run(out, arch, depth, 0, errors, steps=steps, every=every)


def line_points(line, per_segment: int = 20) -> np.ndarray:
    """A line's points in display coordinates, with the segments between them sampled too."""
    xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
    t = np.linspace(0, 1, per_segment)[:, None, None]
    return (xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2)


@pytest.mark.parametrize("name", ["figure1", "figure6"])
def test_no_legend_covers_a_curve(tmp_path, drawn, name):
    sweep_of(tmp_path, 4000)
    make_report(tmp_path, tmp_path / "report", figure7_on=False, verbose=False)
    fig = drawn[name]
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    legends = 0
    for ax in fig.axes:
        legend = ax.get_legend()
        box = legend.get_window_extent(renderer)
        points = np.concatenate([line_points(line) for line in ax.lines])
        inside = (points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)
        assert not inside.any(), f"{name}: the legend of '{ax.get_title()}' covers {inside.sum()} points of its curves"
        legends += 1
    assert legends == {"figure1": 2, "figure6": 3}[name]


@pytest.mark.parametrize(
    "steps, scale, label, ticks_to",
    [
        (60, 1, "iter.", 60),  # not 0.000-0.006 in units of 1e4
        (600, 1, "iter.", 600),
        (2000, 1, "iter.", 2000),
        (6400, 1e3, "iter. (1e3)", 6.4),
        (32000, 1e4, "iter. (1e4)", 3.2),
        (64000, 1e4, "iter. (1e4)", 6.4),  # the paper's
    ],
)
def test_the_x_axis_is_in_units_that_suit_the_run_length(tmp_path, drawn, steps, scale, label, ticks_to):
    assert x_unit(steps) == (scale, label)
    sweep_of(tmp_path, steps, nets=(("plain", (20, 56)),))
    make_report(tmp_path, tmp_path / "report", figure7_on=False, verbose=False)
    for name in ("figure1", "figure6"):
        ax = drawn[name].axes[0]
        assert ax.get_xlabel() == label and ax.get_xlim() == pytest.approx((0, ticks_to))


def test_dashed_means_training_error_in_every_figure(tmp_path, tiny_batches, drawn):
    from test_damaged_reading import collected_run

    sweep_of(tmp_path, 4000)
    for arch in ("plain", "resnet"):
        collected_run(tmp_path / "fig7", arch, 8, tiny_batches)
    make_report(tmp_path, tmp_path / "report", figure7_on=False, verbose=False)
    make_report(tmp_path / "fig7", tmp_path / "report7", verbose=False)

    def styles(ax):
        return {line.get_linestyle() for line in ax.lines}

    train, test = drawn["figure1"].axes
    assert styles(train) == {"--"} and styles(test) == {"-"}  # matplotlib reports any dash pattern as "--"
    assert train.lines[0].get_linewidth() < test.lines[0].get_linewidth()  # bold = test error
    for ax in drawn["figure6"].axes:
        assert styles(ax) == {"--", "-"}
        assert all((line.get_linestyle() == "--") == (line.get_label().startswith("_")) for line in ax.lines)
    for ax in drawn["figure7"].axes:  # plain vs ResNet: markers, never dashes
        assert styles(ax) == {"-"}
        assert {line.get_marker() for line in ax.lines} == {"s", "o"}
