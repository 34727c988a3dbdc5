"""Figures: layout, shared colour scales, errors that match the metrics, the CLI."""

import csv
import dataclasses
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import LineCollection, QuadMesh  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import kanpde  # noqa: E402
from kanpde import Box, Dirichlet, Disk, Interval, Problem, d, laplacian, plot, solve  # noqa: E402
from kanpde.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "problems"


def _sin1d(x):
    return torch.sin(math.pi * x)


LINE = Problem(
    name="line",
    domain=Interval(-1, 1),
    pde=lambda x, u: d(u, x, "x", "x") + math.pi**2 * _sin1d(x),
    conditions=[Dirichlet(0.0)],
    exact=_sin1d,
    model={"width": [1, 3, 1]},
    points={"interior": 60, "boundary": 2, "test": 101},
)


def _bowl(x):
    return 1 - (x**2).sum(1, keepdim=True)


DISK = Problem(
    name="disk",
    domain=Disk([0.0, 0.0], 1.0),
    pde=lambda x, u: laplacian(u, x) + 4,
    conditions=[Dirichlet(0.0)],
    exact=_bowl,
    model={"width": [2, 3, 1]},
    points={"interior": 150, "boundary": 40, "test": 31},
)


def _sin3(x):
    return torch.sin(math.pi * x).prod(1, keepdim=True)


CUBE = Problem(
    name="cube",
    domain=Box([0, 0, 0], [1, 1, 1]),
    pde=lambda x, u: laplacian(u, x) + 3 * math.pi**2 * _sin3(x),
    conditions=[Dirichlet(0.0)],
    exact=_sin3,
    model={"width": [3, 2, 1]},
    points={"interior": 150, "boundary": 60, "test": 9},
)

TINY = {"interior": 150, "boundary": 40, "initial": 30, "test": 21}
STEADY = {k: v for k, v in TINY.items() if k != "initial"}  # no initial count without time
CASES = {
    "line": (LINE, [{"grid": 3, "lbfgs": 8}, {"grid": 6, "lbfgs": 8}], {}),
    "poisson2d": (
        PROBLEMS / "poisson2d.py",
        [{"grid": 3, "lbfgs": 6}, {"grid": 5, "lbfgs": 6}, {"grid": 8, "lbfgs": 6}],
        STEADY,
    ),
    "diffusion1d": (
        PROBLEMS / "diffusion1d.py",
        [{"grid": 3, "adam": 5, "lr": 1e-2}, {"grid": 3, "lbfgs": 5}, {"grid": 5, "lbfgs": 5}],
        TINY,
    ),
    "kovasznay": (PROBLEMS / "kovasznay.py", [{"grid": 3, "lbfgs": 4}], STEADY),
    "disk": (DISK, [{"grid": 3, "lbfgs": 6}], {}),
    "cube": (CUBE, [{"grid": 3, "lbfgs": 4}], {}),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("plot-runs")
    out = {}
    for name, (problem, schedule, points) in CASES.items():
        if isinstance(problem, Path):
            problem = str(problem)
        out[name] = solve(
            problem, schedule=schedule, points=points or None, progress=False, log_every=2,
            out=base / name, checkpoint_every=0, device="cpu",
        )  # fmt: skip
    out["mlp"] = solve(
        str(PROBLEMS / "poisson2d.py"), model={"type": "mlp", "width": [2, 6, 1]},
        schedule=[{"adam": 4}], points=STEADY, progress=False, out=base / "mlp",
        checkpoint_every=0, device="cpu",
    )  # fmt: skip
    return out


# ----------------------------------------------------------------------------- helpers


def labelled(fig, prefix):
    return [a for a in fig.axes if a.get_label().startswith(prefix)]


def mesh(ax):
    (m,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    return m


def texts_inside(fig):
    """Every title, label, tick label, legend entry and annotation lies inside the figure."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        texts += list(ax.texts)
        for axis in (ax.xaxis, ax.yaxis) if ax.axison else ():  # tick labels in view
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-9 * (hi - lo)
            locs, labels = axis.get_majorticklocs(), axis.get_majorticklabels()
            texts += [t for v, t in zip(locs, labels) if lo - tol <= v <= hi + tol]
        if ax.get_legend() is not None:
            texts += ax.get_legend().get_texts()
    bad = []
    for t in texts:
        if not t.get_visible() or not t.get_text().strip():
            continue
        b = t.get_window_extent(renderer)
        if b.x0 < box.x0 - 1 or b.y0 < box.y0 - 1 or b.x1 > box.x1 + 1 or b.y1 > box.y1 + 1:
            bad.append(t.get_text())
    assert not bad, f"text outside the figure: {bad}"


# ----------------------------------------------------------------------------- solution


def test_solution_1d_lines_and_error(runs):
    run = runs["line"]
    fig = plot.solution(run)
    assert isinstance(fig, Figure)
    (ax,) = labelled(fig, "pred")
    (err,) = labelled(fig, "error")
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "u"
    # the file records an exact solution, so the reference line is labelled so
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"exact", "prediction"}
    assert err.get_ylabel() == "|error| of u"
    assert np.max(err.lines[0].get_ydata()) == pytest.approx(run.metrics["max_err"], abs=1e-12)
    assert "line" in fig._suptitle.get_text()
    texts_inside(fig)


@pytest.mark.parametrize("name", ["poisson2d", "kovasznay", "disk"])
def test_solution_2d_maps(runs, name):
    run = runs[name]
    fig = plot.solution(run)
    outputs = run.outputs
    assert len(labelled(fig, "pred")) == len(labelled(fig, "ref")) == len(outputs)
    assert len(labelled(fig, "error")) == len(outputs)
    assert len(fig.axes) == 5 * len(outputs)  # 3 maps + 2 colour bars per output
    worst = 0.0
    for j, o in enumerate(outputs):
        (p,) = labelled(fig, f"pred {o}")
        (r,) = labelled(fig, f"ref {o}")
        (e,) = labelled(fig, f"error {o}")
        # One colour scale for prediction and reference, spanning both.
        assert mesh(p).get_clim() == mesh(r).get_clim()
        lo = min(run.solution["pred"][:, j].min(), run.solution["ref"][:, j].min())
        hi = max(run.solution["pred"][:, j].max(), run.solution["ref"][:, j].max())
        assert mesh(p).get_clim() == pytest.approx((lo, hi), abs=0)
        assert mesh(e).get_clim()[0] == 0
        assert p.get_title() == f"{o}: prediction" and p.get_xlabel() == "x"
        assert p.get_ylabel() == "y" and p.get_aspect() == 1.0
        worst = max(worst, float(mesh(e).get_array().max()))
        # Every evaluation point is one drawn cell; nodes outside the domain are blank.
        assert mesh(p).get_array().count() == len(run.solution["x"])
    assert worst == pytest.approx(run.metrics["max_err"], abs=1e-12)
    texts_inside(fig)


def test_solution_disk_is_masked(runs):
    fig = plot.solution(runs["disk"])
    values = mesh(labelled(fig, "pred")[0]).get_array()
    assert values.mask[0, 0] and values.mask[-1, -1]  # the corners lie outside the disk
    assert not values.mask[values.shape[0] // 2, values.shape[1] // 2]


def test_solution_space_time(runs):
    run = runs["diffusion1d"]
    fig = plot.solution(run)
    (p,), (r,), (e,) = labelled(fig, "pred"), labelled(fig, "ref"), labelled(fig, "error")
    (s,) = labelled(fig, "slices")
    assert p.get_xlabel() == "x" and p.get_ylabel() == "t"
    assert mesh(p).get_clim() == mesh(r).get_clim()
    assert float(mesh(e).get_array().max()) == pytest.approx(run.metrics["max_err"], abs=1e-12)
    # Four times: prediction and reference each, plus the legend's reference entry.
    assert len(s.lines) == 9
    assert [t.get_text() for t in s.get_legend().get_texts()][0] == "t = 0"
    x = run.solution["x"]
    first = x[:, 1] == x[:, 1].min()
    order = np.argsort(x[first, 0])
    np.testing.assert_allclose(s.lines[0].get_ydata(), run.solution["pred"][first, 0][order])
    # each time's reference dashed in its prediction's colour (all were black: four crossing
    # black dashes could not be told apart)
    for pred_line, ref_line in zip(s.lines[0:8:2], s.lines[1:8:2]):
        assert ref_line.get_linestyle() == "--" and pred_line.get_linestyle() == "-"
        assert to_hex(ref_line.get_color()) == to_hex(pred_line.get_color())
    assert len({to_hex(ln.get_color()) for ln in s.lines[0:8:2]}) == 4
    np.testing.assert_allclose(s.lines[1].get_ydata(), run.solution["ref"][first, 0][order])
    texts_inside(fig)


def test_solution_3d_slices(runs):
    run = runs["cube"]
    fig = plot.solution(run)
    assert len(labelled(fig, "pred")) == 3 and len(labelled(fig, "error")) == 3
    clims = {mesh(a).get_clim() for a in labelled(fig, "pred") + labelled(fig, "ref")}
    assert len(clims) == 1  # one scale across slices, prediction and reference
    errors = [float(mesh(a).get_array().max()) for a in labelled(fig, "error")]
    assert max(errors) <= run.metrics["max_err"] + 1e-12
    tops = {mesh(a).get_clim()[1] for a in labelled(fig, "error")}
    assert len(tops) == 1 and tops.pop() == pytest.approx(run.metrics["max_err"], abs=1e-12)
    assert "z = " in labelled(fig, "pred")[0].get_title()
    texts_inside(fig)
    # slices inside the volume at a quarter, half and three quarters of z, each showing the
    # prediction on its plane (catches: slices starting on the face z = 0)
    pred = labelled(fig, "pred")
    assert [a.get_title() for a in pred] == [f"u: prediction, z = {z}" for z in (0.25, 0.5, 0.75)]
    x = run.solution["x"]
    for a, z in zip(pred, (0.25, 0.5, 0.75)):
        plane = run.solution["pred"][np.isclose(x[:, 2], z), 0]
        np.testing.assert_array_equal(np.sort(mesh(a).get_array().ravel()), np.sort(plane))


def test_solution_on_a_graded_reference_grid():
    """Reference solutions live on their own (non-uniform) grids: cells follow the nodes."""
    xs = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, 17))  # graded towards the walls
    ys = np.linspace(0, 1, 9) ** 2
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    x = np.stack([X.ravel(), Y.ravel()], axis=1)
    ref = np.stack([np.sin(3 * X).ravel(), (X * Y).ravel()], axis=1)
    pred = ref + 1e-3 * np.cos(7 * x[:, :1] + x[:, 1:])
    error = pred - ref
    metrics = {"rel_l2": 1e-3, "max_err": float(np.abs(error).max())}
    run = kanpde.Run(
        {"problem": "graded", "model": {"type": "kan", "width": [2, 3, 2]}}, {},
        {"x": x, "pred": pred, "ref": ref, "error": error}, metrics,
        {"names": ["x", "y"], "outputs": ["u", "v"]},
    )  # fmt: skip
    fig = plot.solution(run)
    assert labelled(fig, "ref v")[0].get_title() == "v: reference"  # no record of an exact one
    m = mesh(labelled(fig, "ref v")[0])
    np.testing.assert_allclose(m.get_array(), (X * Y).T)  # rows are y, columns x
    corners = m.get_coordinates()  # (ny + 1, nx + 1, 2): cell edges halfway between nodes
    np.testing.assert_allclose(corners[0, 1:-1, 0], (xs[:-1] + xs[1:]) / 2)
    np.testing.assert_allclose(corners[1:-1, 0, 1], (ys[:-1] + ys[1:]) / 2)
    worst = max(float(mesh(a).get_array().max()) for a in labelled(fig, "error"))
    assert worst == metrics["max_err"]
    texts_inside(fig)


def test_solution_options_and_fallbacks(runs):
    fig = plot.solution(runs["kovasznay"], outputs=["p"], ref_label="exact")
    assert labelled(fig, "ref p")[0].get_title() == "p: exact"
    assert not labelled(fig, "pred u")
    with pytest.raises(ValueError, match="not among"):
        plot.solution(runs["kovasznay"], outputs=["w"])
    # No stored solution: the model is evaluated on the problem file's domain grid.
    bare = dataclasses.replace(runs["poisson2d"], solution={})
    fig = plot.solution(bare)
    assert len(labelled(fig, "pred")) == 1 and not labelled(fig, "error")
    # ... and without a problem file there is nothing to plot: one clear line.
    bare = dataclasses.replace(runs["line"], solution={})
    with pytest.raises(ValueError, match="no solution stored"):
        plot.solution(bare)


def test_slices_count_or_coordinates_and_bad_requests_are_named(runs):
    cube, heat = runs["cube"], runs["diffusion1d"]
    # one coordinate given as a number: one row at the nearest node of the 9-node test grid
    pred = labelled(plot.solution(cube, slices=0.5), "pred")
    assert [a.get_title() for a in pred] == ["u: prediction, z = 0.5"]
    assert len(labelled(plot.solution(cube, slices=np.array(2)), "pred")) == 2  # a count
    pred = labelled(plot.solution(cube, slices=np.array([0.0, 1.0])), "pred")
    assert [a.get_title() for a in pred] == ["u: prediction, z = 0", "u: prediction, z = 1"]
    (s,) = labelled(plot.solution(heat, slices=[0.0, 1.0]), "slices")
    assert [t.get_text() for t in s.get_legend().get_texts()][:2] == ["t = 0", "t = 1"]
    for run, slices, message in [
        (cube, [5.0], r"\[5.0\] outside z in \[0, 1\]"),
        (cube, [0.5, float("nan")], r"\[nan\] outside z"),
        (heat, 2.0, r"\[2.0\] outside t in \[0, 1\]"),
        (cube, 0, "must be >= 1"),
        (heat, -2, "must be >= 1"),
        (cube, [], "no coordinates"),
        (cube, "z", "give a count"),
        (cube, True, "give a count"),
        (cube, ["a"], "must be numbers"),
        (cube, np.zeros((2, 2)), r"a flat list of coordinates, not shape \(2, 2\)"),
        (runs["kovasznay"], 3, "only for 3-D or space-time"),  # nothing to slice: not ignored
        (runs["line"], [0.5], "only for 3-D or space-time"),
    ]:
        with pytest.raises(ValueError, match=message):
            plot.solution(run, slices=slices)


def test_outputs_take_one_name_and_refuse_none_or_repeats(runs):
    run = runs["kovasznay"]
    fig = plot.solution(run, outputs="p")
    assert [a.get_label() for a in labelled(fig, "pred")] == ["pred p"]
    # the file records an exact solution, so that is the reference column's default title
    assert labelled(fig, "ref p")[0].get_title() == "p: exact"
    fig = plot.solution(run, outputs=np.array(["v", "u"]))  # any sequence, in its order
    assert [a.get_label() for a in labelled(fig, "pred")] == ["pred v", "pred u"]
    for outputs in ([], ["u", "u"]):
        with pytest.raises(ValueError, match="at most once, at least one"):
            plot.solution(run, outputs=outputs)


def test_cli_draws_chosen_outputs_and_slices(runs, tmp_path, capsys):
    out = tmp_path / "slice.png"
    argv = ["plot", str(runs["cube"].path), "--slices", "0.25,0.75", "--outputs", "u"]
    assert main([*argv, "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert plot._parse_slices("3") == 3 and plot._parse_slices("1.0") == [1.0]
    for args, message in [
        (["--slices", "0.25;0.5"], "--slices 0.25;0.5: give a count"),
        (["--slices", "9.0"], "slices (--slices): [9.0] outside z"),
        (["--outputs", "u,w"], "outputs (--outputs) ['w']: not among the run's outputs ['u']"),
        (["--slices", "0", "--kind", "history"], "--slices: only with --kind solution"),
        (["--slices", "2", "--kind", "history"], "--slices: only with --kind solution"),
    ]:
        assert main(["plot", str(runs["cube"].path), *args, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


# ------------------------------------------------------------------------------ history


def test_history_staircase(runs):
    run = runs["poisson2d"]
    fig = plot.history(run)
    loss, err = labelled(fig, "loss")[0], labelled(fig, "error")[0]
    assert loss.get_yscale() == "log" and err.get_yscale() == "log"
    assert err.get_xlabel() == "optimizer step" and loss.get_ylabel() == "loss"
    names = {t.get_text() for t in loss.get_legend().get_texts()}
    assert {"pde", "dirichlet", "total (weighted)"} <= names
    extensions = [e["step"] for e in run.events if e["event"] == "extend_grid"]
    assert len(extensions) == 2
    vertical = [ln.get_xdata()[0] for ln in loss.lines if ln.get_xdata()[0] == ln.get_xdata()[-1]]
    assert sorted(vertical) == extensions
    labels = [t.get_text().strip() for t in loss.texts]
    assert labels == ["G=3, L-BFGS", "G=5, L-BFGS", "G=8, L-BFGS"]
    texts_inside(fig)


def test_history_stage_labels_do_not_overlap(runs):
    # Stages close together (the default poisson2d run: 0, 300 and 700 of 3700 steps) had
    # their labels written over each other; they now go on rows above each other.
    close = kanpde.solve(
        str(ROOT / "problems" / "poisson2d.py"), schedule="3:adam=2,5:adam=2,8:adam=40",
        points={"interior": 50, "boundary": 20, "test": 11}, log_every=1, progress=False,
        device="cpu",
    )  # fmt: skip
    for run in [close, *runs.values()]:
        for x in ("step", "time"):
            fig = plot.history(run, x=x)
            canvas = FigureCanvasAgg(fig)
            canvas.draw()
            boxes = [t.get_window_extent(canvas.get_renderer()) for t in fig.axes[0].texts]
            for i, a in enumerate(boxes):
                assert not any(a.overlaps(b) for b in boxes[i + 1 :]), (run.config["problem"], x)
            texts_inside(fig)


def test_history_leaves_out_values_a_log_scale_cannot_show():
    # catches: zero losses kept (only negative ones left out), which a log axis cannot draw
    history = {"step": np.array([0.0, 1, 2, 3]), "loss": np.array([1.0, 0.0, -1.0, 0.5]),
               "loss_pde": np.array([2.0, 1.0, 0.0, 0.25])}  # fmt: skip
    run = kanpde.Run({"problem": "p", "model": {"type": "kan", "width": [1, 2, 1]}}, history,
                     {}, {})  # fmt: skip
    (loss,) = labelled(plot.history(run), "loss")
    lines = {ln.get_label(): ln.get_ydata() for ln in loss.lines}
    np.testing.assert_array_equal(lines["total (weighted)"], [1.0, np.nan, np.nan, 0.5])
    np.testing.assert_array_equal(lines["pde"], [2.0, 1.0, np.nan, 0.25])


def test_history_systems_stages_and_time(runs):
    fig = plot.history(runs["kovasznay"])
    names = {t.get_text() for t in labelled(fig, "error")[0].get_legend().get_texts()}
    assert {"relative L2 of u", "relative L2 of v", "relative L2 of p"} <= names
    fig = plot.history(runs["diffusion1d"], x="time")
    loss = labelled(fig, "loss")[0]
    assert [t.get_text().strip() for t in loss.texts] == ["G=3, Adam", "G=3, L-BFGS", "G=5, L-BFGS"]
    dashed = [ln for ln in loss.lines if ln.get_linestyle() == "--"]
    dotted = [ln for ln in loss.lines if ln.get_linestyle() == ":"]
    assert len(dashed) == 1 and len(dotted) == 1  # one grid extension, one optimizer change
    # against time, a stage starts at the time its first step was logged at (catches: the
    # step count drawn on the time axis)
    h = runs["diffusion1d"].history
    (extension,) = [e["step"] for e in runs["diffusion1d"].events if e["event"] == "extend_grid"]
    assert dashed[0].get_xdata()[0] == pytest.approx(np.interp(extension, h["step"], h["time"]))
    assert 0 < dashed[0].get_xdata()[0] <= h["time"][-1]
    assert labelled(fig, "error")[0].get_xlabel() == "training time (s)"
    with pytest.raises(ValueError, match="history"):
        plot.history(runs["line"], x="epoch")


# ------------------------------------------------------------------------------ network


def _edges(widths):
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def test_network_diagram(runs):
    run = runs["kovasznay"]
    fig = plot.network(run)
    (ax,) = labelled(fig, "network")
    lines, curves = [c for c in ax.collections if isinstance(c, LineCollection)]
    n = _edges(run.config["model"]["width"])
    assert len(curves.get_segments()) == n and len(lines.get_segments()) == 2 * n
    alphas = curves.get_colors()[:, 3]
    assert alphas.max() == pytest.approx(1.0) and alphas.min() < 1.0
    node_names = {t.get_text() for t in ax.texts}
    assert {"x", "y", "u", "v", "p"} <= node_names
    assert "KAN [2, 10, 10, 3]" in ax.get_title()
    texts_inside(fig)


def test_network_importance_is_mean_abs_phi(runs):
    run = runs["line"]
    model = run.model()
    fig = plot.network(model, x=run.solution["x"], beta=1e-9)  # opacity ∝ importance
    curves = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)][1]
    x = torch.as_tensor(run.solution["x"])
    phi = model.layers[0].edges(x)[0].detach().abs().mean(0)[0]  # (n_out,) for the one input
    expected = (phi / phi.max()).numpy()
    np.testing.assert_allclose(curves.get_colors()[:3, 3], np.maximum(expected, 0.04), rtol=1e-6)


def test_network_symbolic_labels_and_removed_edges(runs):
    model = runs["poisson2d"].model()
    layer = model.layers[0]
    layer.symbolic_labels = {(0, 1): "sin", (1, 3): "x^2"}
    model.layers[1].symbolic_edges = object()  # unknown shapes are ignored, never an error
    fig = plot.network(model, labels={(1, 2, 0): "exp"})
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"sin", "x^2", "exp"} <= texts
    # each label on a white patch above the edge lines it sits on
    for t in fig.axes[0].texts:
        if t.get_text() in ("sin", "x^2", "exp"):
            patch = t.get_bbox_patch()
            assert patch is not None and patch.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    red = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)][1].get_colors()
    assert (np.abs(red[:, 0] - red[:, 2]) > 0.3).sum() == 3  # three red (symbolic) curves

    # A layer's own edge_kinds() (pruned and symbolic edges) takes precedence.
    n_in, n_out = layer.in_features, layer.out_features
    kinds = [["spline"] * n_in for _ in range(n_out)]
    kinds[0][0], kinds[2][1] = "", "tanh"
    layer.edge_kinds = lambda: kinds
    del layer.symbolic_labels
    assert plot.edge_kinds(layer)[(0, 0)] == ""
    assert plot.symbolic_labels(layer) == {(1, 2): "tanh"}
    fig = plot.network(model)
    curves = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)][1]
    assert len(curves.get_segments()) == _edges(model.width) - 1  # the removed edge is gone
    assert "tanh" in {t.get_text() for t in fig.axes[0].texts}


def test_network_keeps_an_edge_of_no_importance_faintly_visible():
    # catches: the opacity floor (0.04) dropped, which made such an edge vanish
    model = kanpde.KAN([1, 2, 1], grid=3, dtype=torch.float64)
    with torch.no_grad():  # edge 0 -> 1 of the first layer is zero everywhere
        model.layers[0].coef[1, 0] = 0.0
        model.layers[0].scale_base[1, 0] = 0.0
    fig = plot.network(model)
    curves = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)][1]
    alphas = curves.get_colors()[:2, 3]  # the first layer's edges 0 -> 0 and 0 -> 1
    np.testing.assert_allclose(alphas, [1.0, 0.04], rtol=1e-12)


def test_compare_front_solution_lines_and_scales_of_hand_made_results():
    # catches: a tie in error put on the Pareto front, the seed note on a one-seed study,
    # 1-D points drawn in their stored order (a zigzag), and a constant field's colour scale
    # of +-0.5 around it rather than +-half its size
    rows = [
        {"model": m, "params": p, "rel_l2": e}
        for m, p, e in (
            ("KAN [1,2,1]", 100, 1e-2),
            ("MLP [1,5,5,1]", 200, 1e-2),
            ("KAN [1,5,1]", 300, 1e-3),
        )
    ]
    fig = plot.compare(rows)
    (front,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "Pareto front"]
    assert list(front.get_xdata()) == [100, 300]
    assert fig._suptitle.get_text() == "test relative L2 error vs cost"
    x = np.array([[0.5], [-1.0], [1.0], [0.0], [-0.5]])
    pred, ref = np.sin(x), np.sin(x) + 0.1 * x
    run = kanpde.Run({"problem": "p"}, {}, {"x": x, "pred": pred, "ref": ref, "error": pred - ref},
                     {}, {"names": ["x"], "outputs": ["u"]})  # fmt: skip
    fig = plot.solution(run)
    (p,), (e,) = labelled(fig, "pred"), labelled(fig, "error")
    (line,) = [ln for ln in p.lines if ln.get_label() == "prediction"]
    np.testing.assert_array_equal(
        line.get_xydata(), np.hstack([np.sort(x, 0), np.sin(np.sort(x, 0))])
    )
    np.testing.assert_allclose(e.lines[0].get_ydata(), 0.1 * np.abs(np.sort(x, 0)[:, 0]))
    x2 = np.stack(np.meshgrid([0.0, 1.0, 2.0], [0.0, 1.0], indexing="ij"), -1).reshape(-1, 2)
    flat = np.full((6, 1), 2e-6)
    run = kanpde.Run({"problem": "p"}, {}, {"x": x2, "pred": flat, "ref": flat, "error": 0 * flat},
                     {}, {"names": ["x", "y"], "outputs": ["u"]})  # fmt: skip
    assert mesh(labelled(plot.solution(run), "pred")[0]).get_clim() == pytest.approx((1e-6, 3e-6))


def _tick_labels(ax) -> list[str]:
    FigureCanvasAgg(ax.figure).draw()
    lo, hi = ax.get_xlim()
    ticks = ax.get_xticklabels() + ax.get_xticklabels(minor=True)
    return [t.get_text() for t in ticks if t.get_text() and lo <= t.get_position()[0] <= hi]


def test_compare_axes_are_labelled_on_narrow_ranges_and_skip_non_finite_seeds():
    # 260-400 parameters and 1.1-1.9 s hold no 1, 2 or 5 x 10^k: neither axis had a label;
    # a NaN error of one seed made the model's median NaN and it vanished from both panels
    cols = {"model": ["KAN [2,5,1]", "KAN [2,5,1]", "MLP [2,20,1]", "MLP [2,40,1]", "X [1]"],
            "params": [260, 260, 300, 400, 500], "rel_l2": [1e-3, math.nan, 2e-3, 3e-3, math.nan],
            "train_time": [1.1, 1.3, 1.5, 1.9, 1.0]}  # fmt: skip
    fig = plot.compare(cols)
    params, time = labelled(fig, "compare params")[0], labelled(fig, "compare time")[0]
    assert _tick_labels(params) == ["290", "320", "360"]
    assert _tick_labels(time) == ["1.2", "1.4", "1.7"]
    (kan,) = [c for c in params.containers if c.get_label().startswith("KAN")]
    assert kan.get_label() == "KAN [2,5,1] (1 of 2 seeds finite)"
    np.testing.assert_allclose(kan.lines[0].get_xydata(), [[260, 1e-3]])
    assert fig._suptitle.get_text().endswith("; no finite rel_l2: X [1]")
    # a wide range keeps the 1-2-5 labels
    cols["train_time"] = [0.1, 0.2, 3.0, 40.0, 1.0]
    time = labelled(plot.compare(cols), "compare time")[0]
    assert {"0.1", "0.2", "0.5", "1", "2", "5", "10", "20"} <= set(_tick_labels(time))


def test_a_chebyshev_run_is_titled_by_its_degree(tmp_path):
    # its titles said "G=3", the B-splines' interval count, for the polynomial degree
    run = solve(str(PROBLEMS / "poisson1d.py"), model={"basis": "chebyshev", "width": [1, 2, 1]},
                schedule=[{"grid": 3, "lbfgs": 2}, {"grid": 4, "lbfgs": 2}],
                points={"interior": 20, "boundary": 2, "test": 11}, progress=False,
                device="cpu")  # fmt: skip
    assert ", Chebyshev, degree 4, " in plot.solution(run)._suptitle.get_text()
    fig = plot.history(run)
    assert "Chebyshev, degree 4" in fig._suptitle.get_text()
    loss = fig.axes[0]
    assert [t.get_text().strip() for t in loss.texts] == ["degree 3, L-BFGS", "degree 4, L-BFGS"]


def test_compare_takes_train_time_before_an_older_wall_time_and_activations_span_the_data(runs):
    # catches: a legacy wall_time column preferred to train_time when a table has both, and a
    # run's edge functions drawn over the whole grid range rather than the range of the inputs
    rows = [{"model": "KAN [1,2,1]", "params": 10, "rel_l2": 0.1, "train_time": 2.0,
             "wall_time": 30.0}]  # fmt: skip
    (ax,) = labelled(plot.compare(rows), "compare time")
    assert ax.containers[0].lines[0].get_xydata()[0].tolist() == [2.0, 0.1]
    run = runs["poisson2d"]
    model = run.model()
    with torch.no_grad():
        h = model.layers[0](torch.as_tensor(run.solution["x"])).numpy()  # the 2nd layer's inputs
    for panel in labelled(plot.activations(run, 1), "edge 1 "):
        i = int(panel.get_label().split()[2])
        xs = panel.lines[0].get_xdata()
        assert (xs[0], xs[-1]) == pytest.approx((h[:, i].min(), h[:, i].max()), rel=1e-12)


def test_network_rejects_mlp(runs):
    # each names itself (activations() was called "the KAN diagram")
    with pytest.raises(ValueError, match=r"^network\(\) draws a KAN's edge functions; got MLP"):
        plot.network(runs["mlp"])
    with pytest.raises(ValueError, match=r"^activations\(\) draws a KAN's edge functions; got"):
        plot.activations(runs["mlp"])


def test_activations_grid_and_knots(runs):
    run = runs["poisson2d"]
    model = run.model()
    fig = plot.activations(run, 0)
    layer = model.layers[0]
    assert len(fig.axes) == layer.in_features * layer.out_features
    ax = labelled(fig, "edge 0 1 2")[0]
    assert ax.get_title() == "φ[0,1,2]: y → node 2" and ax.get_xlabel() == "y"
    curve, knots = ax.lines
    # The knots in view are the grid points inside the data range [-1, 1]: G + 1 of them.
    assert len(knots.get_xdata()) == layer.grid + 1
    x = torch.as_tensor(np.stack([knots.get_xdata()] * 2, axis=1))
    np.testing.assert_allclose(knots.get_ydata(), layer.edges(x)[0][:, 1, 2].detach().numpy())
    fig = plot.activations(model, -1)  # a bare model: its grid range, last layer
    assert len(fig.axes) == model.layers[-1].in_features
    assert "layer 1" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="layers 0..1"):
        plot.activations(model, 5)
    texts_inside(fig)
    assert f"G={model.layers[-1].grid}, k=3, bspline" in fig._suptitle.get_text()
    assert "dots: knots" in fig._suptitle.get_text()


@pytest.mark.parametrize(("basis", "title", "dots"), [
    ("chebyshev", "Chebyshev, degree 4", None), ("rbf", "G=4, rbf", "centres")])  # fmt: skip
def test_activations_describe_other_bases_as_they_are(basis, title, dots):
    # a Chebyshev model's figure spoke of k and drew "knots" it does not have
    model = kanpde.KAN([2, 2, 1], grid=4, basis=basis, dtype=torch.float64)
    fig = plot.activations(model, 0)
    text = fig._suptitle.get_text()
    assert title in text and "k=" not in text
    assert ("dots: " + dots in text) if dots else ("dots" not in text)
    assert all(len(ax.lines) == (2 if dots else 1) for ax in fig.axes)
    assert "silu part only" not in text  # outside the range their basis still acts
    net = plot.network(model)
    assert title in net.axes[0].get_title()
    labels = [t.get_text() for t in net.axes[0].texts if t.get_text().startswith("layer")]
    assert all(("degree 4" if basis == "chebyshev" else "G=4") in t for t in labels), labels


def test_log_error_is_refused_for_other_kinds(runs, tmp_path):
    with pytest.raises(ValueError, match="--log-error: only with --kind solution, not history"):
        plot.figure_for(runs["poisson2d"].path, "history", log_error=True)
    table = tmp_path / "comparison.csv"
    table.write_text("model,params,rel_l2\nKAN [2,3,1],10,0.1\n")
    for kind in (None, "compare"):
        with pytest.raises(ValueError, match="--log-error: only with --kind solution"):
            plot.figure_for(table, kind, log_error=True)


# ------------------------------------------------------------------------ compare / sweep


def _comparison_rows():
    rows = []
    for model, params, err, t in [
        ("KAN [2,5,1]", 200, 3e-3, 20.0), ("KAN [2,10,1]", 450, 8e-4, 40.0),
        ("MLP [2,18,18,1]", 451, 5e-3, 8.0), ("MLP [2,100,100,100,1]", 20601, 2e-3, 60.0),
    ]:  # fmt: skip
        for seed, f in enumerate((0.8, 1.0, 1.3)):
            rows.append({
                "model": model, "width": "-", "grid": 5, "params": params, "seed": seed,
                "mse": (err * f) ** 2, "rel_l2": err * f, "max_err": 3 * err * f,
                "train_time": t * f, "steps": 100, "evals": 120, "steps_per_s": 100 / t,
            })  # fmt: skip
    return rows


def test_compare_from_rows_and_csv(tmp_path):
    from kanpde.compare import Comparison, _figures

    rows = _comparison_rows()
    fig = plot.compare(rows)
    a, b = labelled(fig, "compare params")[0], labelled(fig, "compare time")[0]
    assert a.get_xscale() == b.get_yscale() == "log"
    assert a.get_xlabel() == "trainable parameters" and b.get_xlabel() == "training time (s)"
    assert a.get_ylabel() == "test relative L2 error"
    names = [t.get_text() for t in b.get_legend().get_texts()]
    assert "Pareto front" in names and "MLP [2,100,100,100,1]" in names
    # Pareto front on parameters: KAN [2,5,1] (fewest) then KAN [2,10,1] (most accurate).
    (front,) = [ln for ln in a.lines if ln.get_label() == "Pareto front"]
    assert list(front.get_xdata()) == [200, 450]
    assert "3 seeds" in fig._suptitle.get_text()
    # each model is drawn at its medians over the seeds (catches: means), the error bars
    # spanning min to max
    for ax, x in ((a, "params"), (b, "train_time")):
        for c in ax.containers:
            rs = [r for r in rows if r["model"] == c.get_label()]
            y = [r["rel_l2"] for r in rs]
            expected = (np.median([r[x] for r in rs]), np.median(y))
            np.testing.assert_allclose(c.lines[0].get_xydata()[0], expected, rtol=1e-12)
            (bars,) = [col for col in c.lines[2] if col.get_segments()[0][0][0] == expected[0]]
            np.testing.assert_allclose(bars.get_segments()[0][:, 1], [min(y), max(y)], rtol=1e-12)
    texts_inside(fig)

    # The files of `kanpde compare` (its comparison.csv) give the same figure.
    Comparison("poisson2d", rows, {}).save(tmp_path)
    (png,) = _figures(Comparison("poisson2d", rows, {}), tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = plot.compare(tmp_path / "comparison.csv", metric="mse")
    assert labelled(fig, "compare params")[0].get_ylabel() == "test MSE"
    # studies saved before the column was named train_time call it wall_time
    legacy = [{("wall_time" if k == "train_time" else k): v for k, v in r.items()} for r in rows]

    def time_front(rs):
        (ax,) = labelled(plot.compare(rs), "compare time")
        (front,) = [ln for ln in ax.lines if ln.get_label() == "Pareto front"]
        return list(front.get_xdata())

    assert time_front(legacy) == time_front(rows) and len(time_front(rows)) >= 2
    with pytest.raises(ValueError, match="missing column"):
        plot.compare([{"model": "KAN", "params": 3}])
    with pytest.raises(ValueError, match="file not found"):
        plot.compare(tmp_path / "nope.csv")


def test_sweep_slopes(tmp_path):
    from kanpde.compare import Sweep, fitted_slope

    grids = np.array([3, 5, 10, 20, 50])
    ext = 2.0 * grids**-4.0
    sep = 3.0 * grids**-3.0 * np.array([1.0, 1.2, 0.9, 1.1, 1.0])
    path = tmp_path / "sweep.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["grid", "rmse_extension", "rmse_separate"])
        w.writerows(zip(grids, ext, sep))
    fig = plot.sweep(path)
    ax = labelled(fig, "sweep")[0]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "fit: slope -4.00" in names
    assert f"fit: slope {fitted_slope(grids, sep):.2f}" in names
    assert ax.get_xlabel() == "grid size G (intervals)" and ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "5", "10", "20", "50"]
    texts_inside(fig)
    # the fitted line is the least-squares line of the logs (catches: one through the first
    # point), and a table without theory_slope gets the cubic splines' G^-4 through the first
    # point of the first series (catches: another default slope)
    (fit,) = [
        ln for ln in ax.lines if ln.get_label() == f"fit: slope {fitted_slope(grids, sep):.2f}"
    ]
    line = np.polyval(np.polyfit(np.log(grids), np.log(sep), 1), np.log(grids))
    np.testing.assert_allclose(fit.get_ydata(), np.exp(line), rtol=1e-12)
    (theory,) = [ln for ln in ax.lines if ln.get_label() == "theory: $G^{-4}$"]
    np.testing.assert_allclose(theory.get_xydata(), [[3, ext[0]], [50, ext[0] * (50 / 3) ** -4]])
    # a series whose first error cannot be drawn: the theory line starts at its first drawn
    # point (catches: the line anchored at the smallest grid whatever the error there)
    fig = plot.sweep({"grid": grids, "rmse": [np.nan, *ext[1:]]}, theory=-2.0)
    (theory,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "theory: $G^{-2}$"]
    np.testing.assert_allclose(theory.get_ydata(), ext[1] * (np.array([3, 50]) / 5) ** -2.0)
    # A given slope is drawn as given; a Sweep object works too.
    fig = plot.sweep({"grid": grids, "rmse": ext, "slope": [-3.5] * 5}, theory=None)
    names = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert names == ["RMSE", "fit: slope -3.50"]
    s = Sweep("poisson2d", list(grids), list(ext), list(sep), -4.0, -2.9)
    names = [t.get_text() for t in plot.sweep(s).axes[0].get_legend().get_texts()]
    assert "fit: slope -2.90" in names
    with pytest.raises(ValueError, match="rmse"):
        plot.sweep([{"grid": 3, "mse": 1.0}])


# -------------------------------------------------------------------------- command line


def test_plot_functions_take_a_results_path(runs):
    # a path (str or Path, the file or its directory) draws what the loaded run draws
    run = runs["line"]

    def pixels(fig):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig.set_dpi(30)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())

    for where in (str(run.path), run.path.parent):
        for figure in (plot.solution, plot.history, plot.network, plot.activations):
            assert np.array_equal(pixels(figure(where)), pixels(figure(run)))
    with pytest.raises(kanpde.ResultsError, match="missing"):
        plot.history(run.path.parent / "missing")


def test_cli_writes_png(runs, tmp_path, capsys):
    path = runs["line"].path
    for kind in ("solution", "history", "network", "activations"):
        out = tmp_path / f"{kind}.png"
        assert main(["plot", str(path), "--kind", kind, "-o", str(out), "--dpi", "40"]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure: {out}" in capsys.readouterr().out
    # Default kind and place: solution.png beside the results file; a run directory works.
    assert main(["plot", str(path.parent)]) == 0
    assert (path.parent / "solution.png").exists()
    assert main(["plot", str(path), "--kind", "history", "-o", str(tmp_path / "h.pdf")]) == 0
    assert (tmp_path / "h.pdf").read_bytes()[:4] == b"%PDF"
    log = tmp_path / "log.png"
    assert main(["plot", str(path), "--log-error", "-o", str(log), "--dpi", "40"]) == 0
    assert log.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and log.read_bytes() != out.read_bytes()


def test_cli_tables(tmp_path):
    rows = _comparison_rows()
    with open(tmp_path / "comparison.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["plot", str(tmp_path / "comparison.csv")]) == 0
    assert (tmp_path / "compare.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.h5"], "results file not found"),
        (["{run}", "--kind", "heatmap"], "--kind 'heatmap': unknown"),
        (["{run}", "-o", "{tmp}/figure.xyz"], "unknown image format"),
        (["{mlp}", "--kind", "network"], "--kind network: "),
        (["{mlp}", "--kind", "network"], "holds an MLP run; this figure draws a KAN's edges"),
        (["{tmp}/table.csv"], "not a comparison table"),
    ],
)
def test_cli_errors_are_one_line(runs, tmp_path, capsys, args, message):
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    fill = {"run": runs["poisson2d"].path, "mlp": runs["mlp"].path, "tmp": tmp_path}
    argv = ["plot"] + [a.format(**fill) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kanpde: error: ") and message in err
    assert err.count("\n") == 1


def test_figures_are_detached_from_pyplot(runs):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    plot.history(runs["line"])
    assert len(plt.get_fignums()) == before


def test_loaded_run_matches_returned_run(runs):
    run = runs["line"]
    loaded = kanpde.load(run.path)
    a = mesh_free_max(plot.solution(run))
    b = mesh_free_max(plot.solution(loaded))
    assert a == b == pytest.approx(run.metrics["max_err"], abs=1e-12)


def mesh_free_max(fig):
    return float(np.max(labelled(fig, "error")[0].lines[0].get_ydata()))


# ------------------------------------------------------- a notebook user's walkthrough (fixes)


def test_solution_of_a_problem_without_reference_and_without_a_file(tmp_path):
    # Nothing was stored, and the plot needed the problem file to evaluate the model: a problem
    # defined in a notebook could not be plotted at all. A renamed time axis was also drawn as
    # a 2-D map without time slices (time was found by its name).
    import math

    import torch

    from kanpde import Dirichlet, Initial, Interval, Problem, Time, d

    problem = Problem(
        name="tau", domain=Interval(-1, 1) * Time(0, 1, name="tau"),
        pde=lambda x, u: d(u, x, "tau") - d(u, x, "x", "x"),
        conditions=[Dirichlet(0.0), Initial(lambda x: torch.sin(math.pi * x[:, :1]))],
    )  # fmt: skip
    pts = {"interior": 60, "boundary": 20, "initial": 20}
    run = kanpde.solve(problem, schedule="3:lbfgs=3", out=tmp_path, progress=False, points=pts,
                       device="cpu")  # fmt: skip
    assert sorted(run.solution) == ["pred", "x"] and run.solution["x"].shape == (101 * 101, 2)
    loaded = kanpde.load(tmp_path)
    np.testing.assert_array_equal(loaded.solution["pred"], run.solution["pred"])
    fig = plot.solution(loaded)
    assert [ax.get_label() for ax in fig.axes if ax.get_label() != "<colorbar>"] == [
        "pred u", "slices u",
    ]  # fmt: skip
    assert labelled(fig, "slices u")[0].get_title() == "u at fixed tau"


def test_curves_of_a_csv_says_where_the_histories_are(tmp_path):
    path = tmp_path / "comparison.csv"
    path.write_text("model,params\n")
    with pytest.raises(
        ValueError, match="not an HDF5 file; the training curves are in comparison.h5"
    ):
        plot.curves(path)


def test_network_weighs_each_output_of_a_system_on_its_own(runs):
    # Edges into kovasznay's v (a tenth of u's size) were drawn near-invisible.
    run = runs["kovasznay"]
    fig = plot.network(run)
    (ax,) = labelled(fig, "network")
    curves = [c for c in ax.collections if isinstance(c, LineCollection)][1]
    width = run.config["model"]["width"]
    last = width[-2] * width[-1]  # the last layer's boxes come last, ordered by input, output
    alphas = curves.get_colors()[-last:, 3].reshape(width[-2], width[-1])
    np.testing.assert_allclose(alphas.max(axis=0), 1.0)


def test_history_of_a_trainer(runs):
    from kanpde import symbolic

    problem = kanpde.load_problem(str(ROOT / "problems" / "poisson2d.py"))
    model = kanpde.build_model(problem, {"width": [2, 2, 1], "grid": 3})
    pts = {"interior": 50, "boundary": 20, "test": 11}
    trainer = symbolic.train(problem, model, [{"adam": 10, "lr": 1e-2}], sparsity=1e-4,
                             points=pts, log_every=5)  # fmt: skip
    fig = plot.history(trainer)
    params = kanpde.count_parameters(model)
    assert fig._suptitle.get_text() == f"poisson2d: KAN [2, 2, 1], G=3, {params} parameters"
    (err,) = labelled(fig, "error")
    assert len(err.lines) >= 3  # the trainer's test errors


def test_systems_show_each_outputs_error_in_the_problems_order(runs):
    # The titles gave only the joint relative L2 (mixing u, v and p, which differ in scale),
    # and the history's legend ordered the outputs p, u, v.
    run = runs["kovasznay"]
    m = run.metrics
    title = plot.solution(run)._suptitle.get_text()
    parts = ", ".join(f"{o} {m[f'rel_l2_{o}']:.2e}" for o in ("u", "v", "p"))
    assert f"test rel. L2 {m['rel_l2']:.2e} ({parts})" in title
    (err,) = labelled(plot.history(run), "error")
    names = [t.get_text() for t in err.get_legend().get_texts() if "of" in t.get_text()]
    assert names == ["relative L2 of u", "relative L2 of v", "relative L2 of p"]


def test_log_error_keeps_small_errors_visible(runs):
    # |error| maps were linear only: a shock's error flattened everything else to one colour.
    from matplotlib.colors import LogNorm

    for name in ("poisson2d", "diffusion1d", "line"):
        fig = plot.solution(runs[name], log_error=True)
        (err,) = [ax for ax in fig.axes if ax.get_label().startswith("error")][:1]
        if err.collections:
            norm = err.collections[0].norm
            assert isinstance(norm, LogNorm) and norm.vmin == pytest.approx(norm.vmax * 1e-6)
        else:
            assert err.get_yscale() == "log"
        texts_inside(fig)
    fig = plot.solution(runs["poisson2d"])
    (err,) = [ax for ax in fig.axes if ax.get_label().startswith("error")][:1]
    assert not isinstance(err.collections[0].norm, LogNorm) and err.collections[0].norm.vmin == 0


def test_maps_show_outside_the_domain_in_grey_and_activation_rows_are_labelled(runs):
    # Cells outside a non-rectangular domain were white, as zero error is; activation panels
    # had no y label.
    fig = plot.solution(runs["poisson2d"])
    for ax in fig.axes:
        if ax.get_label() != "<colorbar>":
            assert ax.get_facecolor()[:3] == pytest.approx((0.8, 0.8, 0.8))
    fig = plot.activations(runs["poisson2d"], layer=0)
    panels = [ax for ax in fig.axes if ax.get_label().startswith("edge")]
    labels = {ax.get_ylabel() for ax in panels if ax.get_subplotspec().is_first_col()}
    assert labels == {"φ"} and {ax.get_ylabel() for ax in panels} == {"φ", ""}


def test_error_map_scale_ignores_nan_cells(runs):
    # err.max() turned one NaN into a NaN colour scale (and a log scale over [1e-6, 1]).
    import dataclasses

    run = runs["poisson2d"]
    err = np.abs(np.asarray(run.solution["error"], dtype=float)).copy()
    err[0] = np.nan
    top = float(np.nanmax(err))
    holed = dataclasses.replace(run, solution={**run.solution, "error": err})
    for log in (False, True):
        fig = plot.solution(holed, log_error=log)
        (ax,) = [a for a in fig.axes if a.get_label().startswith("error")]
        assert ax.get_title().endswith(f"(max {top:.2e})")
        assert ax.collections[0].norm.vmax == pytest.approx(top)


def test_history_of_a_run_still_training_comes_from_its_checkpoint(tmp_path, capsys):
    # kanpde plot refused a run with only its checkpoint ("result.h5: not written yet")
    from kanpde.results import load_progress

    stop = {"rows": 0}

    def interrupt(trainer, row):
        stop["rows"] += 1
        if stop["rows"] == 4:  # three rows logged (and checkpointed) before the Ctrl-C
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        solve(LINE, schedule="4:adam=40", points={"interior": 30, "test": 11}, log_every=5,
              checkpoint_every=5, out=tmp_path / "run", callback=interrupt, progress=False,
              device="cpu")  # fmt: skip
    assert not (tmp_path / "run" / "result.h5").exists()
    run = load_progress(tmp_path / "run")
    assert run.history["step"].tolist()[:3] == [0.0, 5.0, 10.0]
    assert run.attrs["in_progress"] and run.metrics["steps"] >= 10
    # the checkpoint's own numbers (catches: steps off by one, training time or parameter
    # count dropped, the path naming the directory rather than the checkpoint)
    from kanpde.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "run")
    assert run.metrics["steps"] == state["position"]["step"] == run.history["step"][-1]
    assert run.metrics["train_time"] == state["counters"]["train_time"] > 0
    assert run.metrics["parameters"] == kanpde.count_parameters(run.model()) == 6 * (4 + 3 + 2)
    assert run.path == tmp_path / "run" / "checkpoint.h5"
    fig = plot.history(run)
    assert fig._suptitle.get_text().endswith(f"(not finished: checkpoint at step "
                                             f"{run.metrics['steps']})")  # fmt: skip
    out = tmp_path / "h.png"
    assert main(["plot", str(tmp_path / "run"), "--kind", "history", "-o", str(out)]) == 0
    assert out.stat().st_size > 0
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "run"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the run has not finished (only its checkpoint); --kind history plots" in err
    with pytest.raises(kanpde.ResultsError, match="--kind history shows its progress"):
        kanpde.load(tmp_path / "run")
    assert all(line.get_marker() in (None, "None") for line in fig.axes[0].lines)
    # a checkpoint with one logged row: its values are drawn as points (a line showed nothing)
    one = dataclasses.replace(run, history={k: v[:1] for k, v in run.history.items()})
    fig = plot.history(one)
    drawn = [line for ax in fig.axes for line in ax.lines if len(line.get_xdata()) == 1]
    assert len(drawn) >= 5 and all(line.get_marker() == "o" for line in drawn)


def test_history_of_a_run_interrupted_after_grid_extension_names_the_grid_it_reached(tmp_path):
    # The checkpoint's config is the run's start (G=4, 54 parameters); its state has G=8 edges
    # (6 of them, 8 + 3 coefficients and 2 scales each): the title said "G=4, 54 parameters".
    from kanpde.results import load_progress

    def interrupt(trainer, row):
        if trainer.step >= 20:  # in the second stage, checkpointed at step 20
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        solve(LINE, schedule="4:adam=10,8:adam=40", points={"interior": 30, "test": 11},
              log_every=5, checkpoint_every=5, out=tmp_path / "run", callback=interrupt,
              progress=False, device="cpu")  # fmt: skip
    run = load_progress(tmp_path / "run")
    assert run.config["model"]["grid"] == 8
    assert run.metrics["parameters"] == run.config["parameters"] == 6 * (8 + 3 + 2)
    assert "G=8, 78 parameters" in plot.history(run)._suptitle.get_text()
    net = run.model()
    assert kanpde.count_parameters(net) == 78
    # the plot functions take the run's path as well (a str, and the checkpoint itself)
    for where in (str(tmp_path / "run"), tmp_path / "run" / "checkpoint.h5"):
        assert "G=8, 78 parameters" in plot.history(where)._suptitle.get_text()
    for figure in (plot.solution, plot.network, plot.activations):
        with pytest.raises(ValueError, match=r"has not finished \(only its checkpoint\)"):
            figure(tmp_path / "run")


def test_log_error_without_a_reference_is_refused(tmp_path, capsys):
    # it was ignored without a word: the figure came out as without the flag
    problem = Problem(name="noref", domain=Interval(-1, 1), pde=lambda x, u: d(u, x, "x", "x") + 1,
                      conditions=[Dirichlet(0.0)], points={"interior": 20})  # fmt: skip
    run = solve(problem, schedule="3:adam=2", device="cpu", progress=False, out=tmp_path)
    with pytest.raises(ValueError, match=r"log_error \(--log-error\): the run has no exact "
                       r"solution or reference, so there is no error panel"):  # fmt: skip
        plot.solution(run, log_error=True)
    assert main(["plot", str(tmp_path), "--log-error", "--out", str(tmp_path / "f.png")]) == 2
    assert "no error panel to draw on a log scale" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()
    plot.solution(run)  # without the flag: the prediction alone
