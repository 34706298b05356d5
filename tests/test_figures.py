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


def test_titles_and_the_index_say_the_nets_drawn(tmp_path, drawn):
    sweep_of(tmp_path, 4000, nets=(("plain", (20,)), ("resnet", (20, 56))))
    report = make_report(tmp_path, tmp_path / "report", figure7_on=False, verbose=False)
    title = drawn["figure1"]._suptitle.get_text()
    assert title == "Figure 1: plain-20 on CIFAR-10 (no plain-56 run)"  # not "plain-20 vs plain-56"
    index = (tmp_path / "report" / "README.md").read_text()
    assert f"### {title}" in index
    panels = [ax.get_title().split("\n")[0] for ax in drawn["figure6"].axes]
    assert panels == ["plain networks: plain-20", "ResNets: ResNet-20, ResNet-56"]
    assert "Figure 6, two panels: plain networks: plain-20 | ResNets: ResNet-20, ResNet-56" in index
    assert len(drawn["figure6"].axes) == 2 and report.complete


def test_points_above_a_clipped_axis_are_marked_and_counted(tmp_path, drawn):
    # the paper's 0-20% axis for full-length runs: plain-20's test error starts above it (in the first tenth)
    test = [0.6, 0.43, 0.30] + [0.15] * 29  # at 2,000, 4,000, 6,000, ..., 64,000
    fake_run(tmp_path, "plain", 20, 0, {"train": [0.1] * 32, "test": test}, steps=64000, every=2000)
    fake_run(tmp_path, "plain", 56, 0, {"train": [0.1] * 32, "test": [0.1] * 32}, steps=64000, every=2000)
    make_report(tmp_path, tmp_path / "report", figure7_on=False, verbose=False)
    ax = drawn["figure1"].axes[1]
    assert ax.get_ylim() == (0, 20)
    marks = [line for line in ax.lines if line.get_marker() == "^"]
    assert len(marks) == 1 and len(marks[0].get_xdata()) == 3  # 60%, 43%, 30%: on the top edge
    assert set(marks[0].get_ydata()) == {20} and not marks[0].get_clip_on()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "plain-20 test error: 3 of 32 points above 20%" in labels
    assert not [line for line in drawn["figure1"].axes[0].lines if line.get_marker() == "^"]  # nothing clipped


def test_full_length_curves_add_the_papers_axis_below_when_theirs_rose_above_it(tmp_path, drawn):
    # plain-56 at the paper's length stays high until the first lr drop (as on the JPEG copy): the axis rises to 60%,
    # where the final points (2% vs 6%) would be millimetres apart; a second row shows them on the paper's 0-20%
    high = [0.55] * 15 + [0.06] * 17  # at 2,000, 4,000, ..., 64,000
    fake_run(tmp_path, "plain", 20, 0, {"train": [0.02] * 32, "test": [0.12] * 32}, steps=64000, every=2000)
    fake_run(tmp_path, "plain", 56, 0, {"train": high, "test": high}, steps=64000, every=2000)
    make_report(tmp_path, tmp_path / "report", figure7_on=False, verbose=False)
    axes = drawn["figure1"].axes
    assert [ax.get_ylim() for ax in axes] == [(0, 60)] * 2 + [(0, 20)] * 2
    assert axes[2].get_title() == "the same, on the paper's axis (0-20%)" and "(dashed)" in axes[0].get_title()
    below = [t.get_text() for t in axes[3].get_legend().get_texts()]
    assert below == ["plain-56 test error: 15 of 32 points above 20%"]  # the nets are named once, in the top row
    assert [ax.get_ylim() for ax in drawn["figure6"].axes] == [(0, 60), (0, 20)]  # Figure 6 too: one panel, two rows
    index = (tmp_path / "report" / "README.md").read_text()
    assert index.count("; below, the same on the paper's 0-20% axis") == 2  # the captions of Figure 1 and 6
    # on the paper's own axis already, or shortened runs (which never come down onto it): one row
    make_report(tmp_path, tmp_path / "report2", ymax=20, figure7_on=False, verbose=False)
    assert len(drawn["figure1"].axes) == 2 and "paper's 0-20% axis" not in (tmp_path / "report2/README.md").read_text()
    short = tmp_path / "short"
    fake_run(short, "plain", 20, 0, {"train": [0.3] * 4, "test": [0.3] * 4}, steps=6400, every=1600)
    fake_run(short, "plain", 56, 0, {"train": [0.6] * 4, "test": [0.6] * 4}, steps=6400, every=1600)
    make_report(short, short / "report", figure7_on=False, verbose=False)
    assert [ax.get_ylim() for ax in drawn["figure1"].axes] == [(0, 60)] * 2


def test_one_colour_per_net_in_every_figure_and_a_panel_per_equal_depth_pair(tmp_path, drawn, monkeypatch):
    sweep_of(tmp_path, 4000, nets=(("plain", (20, 56)), ("resnet", (20, 56))))
    monkeypatch.setattr(figure7_module, "run_response_stds", lambda run, *a, **k: [1.0 + run["depth"] / 100] * 7)
    make_report(tmp_path, tmp_path / "report", verbose=False)
    colours: dict[str, set] = {}
    for name in ("figure1", "figure6", "pairs", "figure7"):
        for ax in drawn[name].axes:
            for line in ax.lines:
                label = line.get_gid() or line.get_label()
                if label and not label.startswith("_") or line.get_gid():
                    net = label.rsplit(" ", 1)[0] if line.get_gid() else label
                    net = net.replace("20-layer", "plain-20").replace("56-layer", "plain-56")
                    colours.setdefault(net, set()).add(line.get_color())
    assert {net: len(c) for net, c in colours.items()} == dict.fromkeys(
        ["plain-20", "plain-56", "ResNet-20", "ResNet-56"], 1
    )
    assert len({c for cs in colours.values() for c in cs}) == 4  # plain-20 and ResNet-20 no longer share one
    pairs = drawn["pairs"]
    assert [ax.get_title().split("\n")[0] for ax in pairs.axes] == [
        "20 layers: plain-20 vs ResNet-20",
        "56 layers: plain-56 vs ResNet-56",
    ]
    for ax in pairs.axes:  # dashed = training error, solid = test error there too
        assert {line.get_linestyle() for line in ax.lines} == {"--", "-"}
    assert (tmp_path / "report" / "pairs.png").is_file()
    assert (
        "Plain vs ResNet at equal depth: plain-20 vs ResNet-20 | plain-56 vs ResNet-56"
        in (tmp_path / "report" / "README.md").read_text()
    )


def test_figure7_takes_a_log_axis_where_its_stds_span_more_than_ten_times(tmp_path, drawn, monkeypatch):
    sweep_of(tmp_path, 4000, nets=(("plain", (20,)), ("resnet", (20,))))
    spread = {"plain": [20.0, 1.0, 0.5, 0.4, 0.3, 0.3, 0.2], "resnet": [0.9] * 7}
    monkeypatch.setattr(figure7_module, "run_response_stds", lambda run, *a, **k: spread[run["arch"]])
    make_report(tmp_path, tmp_path / "report", verbose=False)
    assert [ax.get_yscale() for ax in drawn["figure7"].axes] == ["log", "log"]
    assert "log scale" in drawn["figure7"].axes[0].get_title()
    spread["plain"] = [1.2] * 7  # within 10x: linear from 0
    make_report(tmp_path, tmp_path / "report2", verbose=False)
    assert [ax.get_yscale() for ax in drawn["figure7"].axes] == ["linear", "linear"]


def test_every_title_fits_its_figure(tmp_path, drawn, monkeypatch):
    """A title made from the nets drawn grows with them: with the paper's four Figure 7 nets it ran off both edges
    of results/tenth/figure7.png. It wraps to the figure's width, and the panels stay below it."""
    sweep_of(tmp_path, 4000, nets=(("plain", (20, 56)), ("resnet", (20, 56))))
    monkeypatch.setattr(figure7_module, "run_response_stds", lambda run, *a, **k: [1.0] * ((run["depth"] - 2) // 2 * 2))
    make_report(tmp_path, tmp_path / "report", verbose=False)
    assert {"figure1", "figure6", "figure7", "pairs"} <= set(drawn)
    for name, fig in drawn.items():
        FigureCanvasAgg(fig).draw()
        title = fig._suptitle.get_window_extent()
        assert 0 <= title.x0 and title.x1 <= fig.bbox.width, name
        assert all(ax.get_tightbbox().y1 <= title.y0 for ax in fig.axes), name  # no panel under the title
    assert "\n" in drawn["figure7"]._suptitle.get_text()  # this one is long enough to wrap
