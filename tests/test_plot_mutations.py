"""Mutation audit of kanpde.plot: the numbers behind the figures.

Every test builds a small hand-made run (or model, or table) whose values are known in closed
form, draws it, and reads the figure's artists back (line data, map arrays, colour limits,
axis scales, bar extents) against values computed here with NumPy. Each test names the bug
(mutation) it catches. No training: the file runs in a few seconds.
"""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection, QuadMesh  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import kanpde  # noqa: E402
from kanpde import plot  # noqa: E402

# ----------------------------------------------------------------------------- helpers


def _run(x, pred, ref=None, names=("x",), outputs=("u",), error=None, **attrs):
    """A Run holding the given evaluation points and values (no model, no history)."""
    sol = {"x": np.asarray(x, float), "pred": np.asarray(pred, float)}
    if ref is not None:
        sol["ref"] = np.asarray(ref, float)
    if error is not None:
        sol["error"] = np.asarray(error, float)
    cfg = {"problem": "hand", "model": {"type": "kan", "width": [len(names), 2, len(outputs)]}}
    return kanpde.Run(cfg, {}, sol, {}, {"names": list(names), "outputs": list(outputs), **attrs})


def _panels(fig, prefix):
    return [a for a in fig.axes if a.get_label().startswith(prefix)]


def _mesh(ax):
    (m,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    return m


def _tensor_grid(*axes):
    """Points of the tensor grid of ``axes`` in C order ("ij"), and the mesh arrays."""
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1), mesh


def _nearest(values, targets):
    """Indices of the nodes nearest each target, first occurrence, duplicates dropped."""
    out = []
    for t in targets:
        k = int(np.argmin(np.abs(np.asarray(values) - t)))
        if k not in out:
            out.append(k)
    return out


# ---------------------------------------------------------------- 1-D: lines and |error|


def test_1d_reference_line_is_sorted_and_error_is_abs_of_pred_minus_ref():
    """Points stored out of order: both lines run in increasing ``x``; without a stored
    ``error`` the panel shows ``|pred - ref|`` (never signed, never ``|pred|``), from 0 up.

    catches: the reference drawn in stored order (a zigzag), the error computed as ``pred``
    (the reference term dropped) or left signed, the error axis not starting at 0.
    """
    x = np.array([0.3, -0.9, 0.8, -0.2, 0.0, 0.55, -0.6])[:, None]
    ref = np.cos(2 * x)
    pred = ref + 0.1 * x  # the error changes sign with x
    fig = plot.solution(_run(x, pred, ref))
    (p,), (e,) = _panels(fig, "pred"), _panels(fig, "error")
    xs = np.sort(x[:, 0])
    (ref_line,) = [ln for ln in p.lines if ln.get_label() == "reference"]
    np.testing.assert_array_equal(ref_line.get_xydata(), np.c_[xs, np.cos(2 * xs)])
    np.testing.assert_allclose(e.lines[0].get_xydata(), np.c_[xs, 0.1 * np.abs(xs)], atol=1e-15)
    assert e.get_ylim()[0] == 0  # |error| >= 0: the axis starts at zero
    assert e.get_yscale() == "linear"


# ---------------------------------------------------------------- 2-D maps of a system


def _system_2d():
    """u and v on a 5 x 4 grid of [0, 2] x [-1, 0.5]; v's error is 1000 times smaller."""
    xs, ys = np.linspace(0, 2, 5), np.linspace(-1, 0.5, 4)
    x, (X, Y) = _tensor_grid(xs, ys)
    ref = np.stack([np.sin(X + 2 * Y).ravel(), 3 + (X * Y).ravel()], axis=1)
    pred = ref + np.stack([0.2 * (X - Y).ravel(), 2e-4 * np.cos(X * Y).ravel()], axis=1)
    return xs, ys, x, pred, ref


def test_2d_system_maps_per_output_values_and_scales():
    """Each output's maps hold that output's values (node (i, j) at row j, column i); the
    prediction and reference share one scale spanning both; the |error| scale of each output
    is its own maximum, from 0.

    catches: outputs picked by position rather than by name (outputs=["v"] drawing u), one
    error scale shared by all outputs (v's small error all one colour), the reference left
    out of the shared scale.
    """
    xs, ys, x, pred, ref = _system_2d()
    run = _run(x, pred, ref, names=("x", "y"), outputs=("u", "v"))
    shape = (len(xs), len(ys))
    # only v: its maps are v's values, not u's
    fig = plot.solution(run, outputs=["v"])
    (p,), (r,), (e,) = _panels(fig, "pred v"), _panels(fig, "ref v"), _panels(fig, "error v")
    assert not _panels(fig, "pred u")
    np.testing.assert_array_equal(_mesh(p).get_array(), pred[:, 1].reshape(shape).T)
    np.testing.assert_array_equal(_mesh(r).get_array(), ref[:, 1].reshape(shape).T)
    err_v = np.abs(pred[:, 1] - ref[:, 1])
    np.testing.assert_allclose(_mesh(e).get_array(), err_v.reshape(shape).T, rtol=1e-12)
    assert _mesh(e).get_clim() == pytest.approx((0.0, err_v.max()), rel=1e-12)
    # both outputs: each error map scaled by its own maximum (v's is ~1000x smaller than u's)
    fig = plot.solution(run)
    for j, o in enumerate(("u", "v")):
        (p,), (r,) = _panels(fig, f"pred {o}"), _panels(fig, f"ref {o}")
        (e,) = _panels(fig, f"error {o}")
        both = np.r_[pred[:, j], ref[:, j]]
        assert _mesh(p).get_clim() == _mesh(r).get_clim() == (both.min(), both.max())
        top = np.abs(pred[:, j] - ref[:, j]).max()
        assert _mesh(e).get_clim() == pytest.approx((0.0, top), rel=1e-12)
    assert _mesh(_panels(fig, "error v")[0]).get_clim()[1] < 1e-3


def test_2d_scattered_points_are_drawn_with_their_signed_values():
    """Scattered points (not a tensor grid) are drawn on a triangulation of the points, with
    the values themselves (negative ones too) at the vertices.

    catches: the triangulated map drawn with the absolute values.
    """
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(40, 2))
    ref = np.sin(2 * x[:, :1]) - x[:, 1:]
    pred = ref + 0.01 * x[:, :1]
    fig = plot.solution(_run(x, pred, ref, names=("x", "y")))
    (p,), (e,) = _panels(fig, "pred"), _panels(fig, "error")
    assert not [c for c in p.collections if isinstance(c, QuadMesh)]
    (tri,) = p.collections
    np.testing.assert_array_equal(np.asarray(tri.get_array()), pred[:, 0])
    assert pred.min() < 0
    np.testing.assert_allclose(
        np.asarray(e.collections[0].get_array()), 0.01 * np.abs(x[:, 0]), rtol=1e-12
    )


def test_2d_grid_reconstruction_tolerates_rounding_and_sparse_fill():
    """A grid whose coordinates carry round-off (1e-13 relative) is still a grid, and points
    on a fifth of a tensor grid's nodes (more than the documented eighth) are drawn as cells
    of that grid, the rest blank.

    catches: coordinates merged only when exactly equal (round-off made every point its own
    row: a scattered triangulation), a stricter fill threshold than one eighth.
    """
    xs, ys = np.linspace(0, 1, 6), np.linspace(0, 2, 7)
    x, (X, Y) = _tensor_grid(xs, ys)
    jitter = 1e-13 * np.random.default_rng(0).standard_normal(x.shape)
    values = (X + 10 * Y).ravel()[:, None]
    fig = plot.solution(_run(x + jitter, values, names=("x", "y")))
    arr = _mesh(_panels(fig, "pred")[0]).get_array()
    assert arr.shape == (7, 6)
    np.testing.assert_allclose(arr, (X + 10 * Y).T, rtol=0, atol=1e-11)
    # a fifth of a 10 x 10 grid: 20 nodes (100 cells <= 8 * 20, but > 4 * 20)
    g = np.arange(10.0)
    x, _ = _tensor_grid(g, g)
    keep = np.random.default_rng(1).choice(len(x), size=20, replace=False)
    x = x[keep]
    values = (x[:, 0] - 2 * x[:, 1])[:, None]
    fig = plot.solution(_run(x, values, names=("x", "y")))
    arr = _mesh(_panels(fig, "pred")[0]).get_array()
    assert arr.shape == (10, 10) and arr.count() == 20
    i, j = x[:, 0].astype(int), x[:, 1].astype(int)
    np.testing.assert_array_equal(arr[j, i], values[:, 0])


# ---------------------------------------------------------------- time axis: which is time


def test_time_axis_from_the_stored_attribute_and_from_the_name():
    """The run's ``time_axis`` attribute decides: -1 is steady even when the last axis is
    named ``t`` (three maps, no slices); older files without it are told by the name, in any
    case (``T`` is time).

    catches: a steady run named (x, t) drawn as space-time, a case-sensitive name test.
    """
    xs, ts = np.linspace(0, 1, 5), np.linspace(0, 1, 4)
    x, (X, T) = _tensor_grid(xs, ts)
    u = (X * T).ravel()[:, None]
    fig = plot.solution(_run(x, u, u + 0.1, names=("x", "t"), time_axis=-1))
    assert not _panels(fig, "slices") and len(_panels(fig, "error")) == 1
    fig = plot.solution(_run(x, u, u + 0.1, names=("x", "T")))
    (s,) = _panels(fig, "slices")
    assert s.get_title() == "u at fixed T"


# ---------------------------------------------------------------- space-time maps and slices


def _space_time(nx=7, nt=9):
    """u on x in [-1, 2], t in [0.5, 2.5] (time does not start at 0)."""
    xs, ts = np.linspace(-1, 2, nx), np.linspace(0.5, 2.5, nt)
    x, (X, T) = _tensor_grid(xs, ts)
    pred = (np.sin(X) * np.exp(-T)).ravel()[:, None]
    ref = pred + 0.05 * (X * T).ravel()[:, None]  # the error changes sign at x = 0
    return xs, ts, x, pred, ref


def test_space_time_slices_maps_and_scales():
    """Default: four slices at 0, 1/3, 2/3 and 1 of the time span (from its start, not from
    t = 0), each drawn as the prediction along x (solid) and the reference (dashed), marked
    on the prediction map by a horizontal line at that time. Prediction and reference share
    one scale spanning both; the |error| map is |pred - ref| scaled from 0 to its maximum.

    catches: slice times measured from t = 0 rather than the span's start, dashed lines that
    repeat the prediction, the markers drawn at x coordinates, the shared scale left without
    the reference, the error scale taken from the prediction, error = pred (reference term
    dropped) or signed.
    """
    xs, ts, x, pred, ref = _space_time()
    fig = plot.solution(_run(x, pred, ref, names=("x", "t"), time_axis=1))
    shape = (len(xs), len(ts))
    P, R = pred[:, 0].reshape(shape), ref[:, 0].reshape(shape)
    k_expected = _nearest(ts, ts[0] + np.array([0, 1 / 3, 2 / 3, 1]) * (ts[-1] - ts[0]))
    assert ts[k_expected].tolist() == [0.5, 1.25, 1.75, 2.5]
    (s,) = _panels(fig, "slices")
    solid = [ln for ln in s.lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in s.lines if ln.get_linestyle() == "--" and len(ln.get_xdata())]
    assert len(solid) == len(dashed) == 4
    for ln_p, ln_r, k in zip(solid, dashed, k_expected):
        np.testing.assert_array_equal(ln_p.get_xydata(), np.c_[xs, P[:, k]])
        np.testing.assert_array_equal(ln_r.get_xydata(), np.c_[xs, R[:, k]])
        assert ln_p.get_label() == f"t = {ts[k]:.3g}"
    (p,), (r,), (e,) = _panels(fig, "pred"), _panels(fig, "ref"), _panels(fig, "error")
    marks = [ln.get_ydata()[0] for ln in p.lines]
    assert marks == [ts[k] for k in k_expected]
    assert all(ln.get_ydata()[0] == ln.get_ydata()[1] for ln in p.lines)  # horizontal
    np.testing.assert_array_equal(_mesh(p).get_array(), P.T)  # x across, t up
    both = np.r_[P.ravel(), R.ravel()]
    assert _mesh(p).get_clim() == _mesh(r).get_clim() == (both.min(), both.max())
    assert R.max() > P.max()  # the reference widens the scale (the check above has teeth)
    E = np.abs(P - R)
    np.testing.assert_allclose(_mesh(e).get_array(), E.T, rtol=1e-12, atol=1e-17)
    assert _mesh(e).get_clim() == pytest.approx((0.0, E.max()), rel=1e-12)


def test_space_time_slices_at_given_times_and_more_slices_than_times():
    """Slices given as coordinates are taken at the nearest stored times (coordinates, not
    fractions of the span); asking for more slices than there are times gives each time once.

    catches: coordinates read as fractions of the span, repeated slices kept.
    """
    xs, ts, x, pred, ref = _space_time()
    run = _run(x, pred, ref, names=("x", "t"), time_axis=1)

    def slice_times(fig):
        (s,) = _panels(fig, "slices")
        return [float(ln.get_label()[4:]) for ln in s.lines if ln.get_label().startswith("t = ")]

    assert slice_times(plot.solution(run, slices=[1.0, 2.3])) == [1.0, 2.25]
    times = slice_times(plot.solution(run, slices=20))
    assert times == [float(f"{t:.3g}") for t in ts]  # all 9 stored times, each once
    assert slice_times(plot.solution(run, slices=2)) == [0.5, 2.5]  # the span's two ends


def test_slice_values_closed_form():
    """``_slice_values``: n steady slices at ``lo + (i + 1) / (n + 1) * (hi - lo)``, n time
    slices at ``lo + i / (n - 1) * (hi - lo)``, coordinates as given, each index once.

    catches: steady slices starting on a face, slice positions measured from 0 rather than
    from ``lo``, time slices skipping the initial time, coordinates read as fractions,
    duplicate indices kept.
    """
    axis = np.linspace(1.0, 9.0, 9)  # 1, 2, ..., 9
    assert plot._slice_values(axis, None, is_time=False) == [2, 4, 6]  # 3, 5, 7
    assert plot._slice_values(axis, 3, is_time=True) == [0, 4, 8]  # 1, 5, 9
    assert plot._slice_values(axis, None, is_time=True) == _nearest(axis, [1, 11 / 3, 19 / 3, 9])
    assert plot._slice_values(axis, [2.2, 8.6, 2.4], is_time=False) == [1, 8]
    assert plot._slice_values(axis, 30, is_time=False) == list(range(9))


# ------------------------------------------------------------------- 3-D and 2-D + time


def _volume(zs, nx=4, ny=5):
    xs, ys = np.linspace(0, 3, nx), np.linspace(-1, 1, ny)
    x, (X, Y, Z) = _tensor_grid(xs, ys, zs)
    pred = (X + 2 * Y + 0.5 * Z).ravel()[:, None]
    ref = pred + (0.1 * X * Z).ravel()[:, None] + 0.5  # wider range than the prediction
    return xs, ys, x, pred, ref


def test_3d_slices_positions_values_and_one_scale_over_the_volume():
    """Steady 3-D: slices at 1/4, 1/2, 3/4 of the z span measured from its start (z = 3, 5,
    7 on z in [1, 9]); each map is the plane ``z = z_k`` with x across and y up; one
    solution scale for all slices spanning prediction and reference over the whole volume;
    one error scale, the volume's maximum |error|.

    catches: slices from the face or from z = 0, planes cut along the wrong axis or
    transposed, the shared scale left without the reference.
    """
    zs = np.linspace(1, 9, 9)
    xs, ys, x, pred, ref = _volume(zs)
    fig = plot.solution(_run(x, pred, ref, names=("x", "y", "z")))
    shape = (len(xs), len(ys), len(zs))
    P, R = pred[:, 0].reshape(shape), ref[:, 0].reshape(shape)
    E = np.abs(P - R)
    maps = _panels(fig, "pred")
    assert [a.get_title() for a in maps] == [f"u: prediction, z = {z}" for z in (3, 5, 7)]
    both = np.r_[P.ravel(), R.ravel()]
    for a, k in zip(maps, (2, 4, 6)):
        np.testing.assert_array_equal(_mesh(a).get_array(), P[:, :, k].T)
        assert _mesh(a).get_clim() == (both.min(), both.max())
        assert a.get_xlabel() == "x" and a.get_ylabel() == "y"
    for a, k in zip(_panels(fig, "error"), (2, 4, 6)):
        np.testing.assert_allclose(_mesh(a).get_array(), E[:, :, k].T, rtol=1e-12)
        assert _mesh(a).get_clim() == pytest.approx((0.0, E.max()), rel=1e-12)


def test_2d_plus_time_slices_include_the_initial_and_final_time():
    """2-D + time: the slices are time slices, four by default from the first to the last
    time, not the steady quarter/half/three-quarter planes.

    catches: the time flag lost on the way to the slice plot.
    """
    ts = np.linspace(0, 1, 7)
    xs, ys, x, pred, ref = _volume(ts)
    fig = plot.solution(_run(x, pred, ref, names=("x", "y", "t"), time_axis=2))
    k = _nearest(ts, np.linspace(0, 1, 4))
    titles = [a.get_title() for a in _panels(fig, "pred")]
    assert titles == [f"u: prediction, t = {ts[i]:.3g}" for i in k]
    assert titles[0].endswith("t = 0") and titles[-1].endswith("t = 1")


def test_3d_slices_of_a_ball_scale_ignores_the_blank_nodes():
    """Nodes of the box outside a ball are blank (NaN): the solution scale is the min/max of
    the values that exist, a finite range.

    catches: NaN cells let into the colour limits (a NaN scale: an empty figure).
    """
    g = np.linspace(-1, 1, 7)
    x, _ = _tensor_grid(g, g, g)
    x = x[(x**2).sum(1) <= 1.0 + 1e-12]
    pred = (x[:, :1] + 0.5 * x[:, 1:2]) ** 2
    ref = pred - 0.3
    fig = plot.solution(_run(x, pred, ref, names=("x", "y", "z")))
    lo, hi = min(pred.min(), ref.min()), max(pred.max(), ref.max())
    for a in _panels(fig, "pred"):
        assert _mesh(a).get_clim() == pytest.approx((lo, hi), rel=1e-12)
        assert _mesh(a).get_array().mask.any()  # the box's corners outside the ball


# ------------------------------------------------------- no stored solution: the domain grid


PROBLEM_FILE = """
import torch
from kanpde import Dirichlet, Problem, Rectangle, laplacian

problem = Problem(
    name="bare", domain=Rectangle([0, -1], [2, 1]),
    pde=lambda x, u: laplacian(u, x) + 1, conditions=[Dirichlet(0.0)],
)
"""


def test_solution_without_stored_values_evaluates_the_model_on_the_domain_grid(tmp_path):
    """No stored solution: the model is evaluated on the domain's evaluation grid (101 x 101
    nodes of [0, 2] x [-1, 1] in 2-D) and drawn there: cell centres at those nodes, values
    ``net(x, y)``.

    catches: another grid size (e.g. 11 nodes per axis), values not the model's at the nodes.
    """
    from kanpde.results import EVAL_GRID
    from kanpde.training import model_config

    file = tmp_path / "bare.py"
    file.write_text(PROBLEM_FILE)
    torch.manual_seed(0)
    net = kanpde.KAN([2, 2, 1], grid=3, input_range=[(0, 2), (-1, 1)], dtype=torch.float64)
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    run = kanpde.Run(
        {"problem": "bare", "model": model_config(net)}, {}, {}, {},
        {"names": ["x", "y"], "outputs": ["u"], "problem_file": str(file)}, state=state,
    )  # fmt: skip
    fig = plot.solution(run)
    (p,) = _panels(fig, "pred")
    assert not _panels(fig, "ref") and not _panels(fig, "error")
    n = EVAL_GRID[2]
    assert n == 101
    xs, ys = np.linspace(0, 2, n), np.linspace(-1, 1, n)
    pts, _ = _tensor_grid(xs, ys)
    with torch.no_grad():
        u = net(torch.as_tensor(pts)).numpy()[:, 0]
    m = _mesh(p)
    np.testing.assert_allclose(m.get_array(), u.reshape(n, n).T, rtol=1e-12, atol=1e-14)
    corners = m.get_coordinates()  # cell edges halfway between nodes
    np.testing.assert_allclose(corners[0, 1:-1, 0], (xs[:-1] + xs[1:]) / 2, atol=1e-12)
    np.testing.assert_allclose(corners[1:-1, 0, 1], (ys[:-1] + ys[1:]) / 2, atol=1e-12)


# ---------------------------------------------------------------------------- history


def _history_run():
    h = {
        "step": np.array([0.0, 10, 20, 30, 40, 50]),
        "time": np.array([0.0, 1.0, 2.5, 4.0, 8.0, 9.0]),
        "stage": np.array([0.0, 0, 1, 1, 2, 2]),
        "grid": np.array([3.0, 3, 3, 3, 5, 5]),
        "loss": np.array([1.0, 0.5, 0.2, 0.1, 0.05, 0.01]),
        "rel_l2": np.array([0.9, 0.5, 0.3, 0.2, 0.1, 0.05]),
        "rel_l2_u": np.array([0.8, 0.4, 0.2, 0.1, 0.05, 0.02]),
        "rel_l2_v": np.array([0.95, 0.7, 0.6, 0.5, 0.4, 0.3]),
        "param_c": np.array([-1.0, -0.5, 0.2, 0.7, 1.1, 1.3]),
    }
    schedule = [{"optimizer": "adam"}, {"optimizer": "lbfgs"}, {"optimizer": "lbfgs"}]
    cfg = {"problem": "p", "model": {"type": "kan", "width": [2, 2, 2]}, "schedule": schedule}
    return kanpde.Run(cfg, h, {}, {}, {"names": ["x", "y"], "outputs": ["u", "v"]})


def test_history_stage_lines_per_output_errors_and_unknowns():
    """A stage starts where the stage before logged its last row (steps 10 and 30 here); the
    grid extension 3 -> 5 is dashed, the optimizer change dotted; each output's relative L2
    is its own column; an unknown coefficient is drawn as recorded (negative values too) on a
    linear scale, its legend giving the last value.

    catches: a stage drawn at its own first logged row, per-output lines drawing the joint
    error, negative coefficients dropped as on a log scale, the legend giving the first value.
    """
    run = _history_run()
    h = run.history
    fig = plot.history(run)
    (loss,), (err,), (pa,) = _panels(fig, "loss"), _panels(fig, "error"), _panels(fig, "unknowns")
    vertical = [ln for ln in loss.lines if len(ln.get_xdata()) == 2 and ln.get_xdata()[0] ==
                ln.get_xdata()[1]]  # fmt: skip
    assert sorted((ln.get_xdata()[0], ln.get_linestyle()) for ln in vertical) == [
        (10.0, ":"), (30.0, "--")]  # fmt: skip
    assert [t.get_text().strip() for t in loss.texts] == ["G=3, Adam", "G=3, L-BFGS",
                                                          "G=5, L-BFGS"]  # fmt: skip
    lines = {ln.get_label(): ln for ln in err.lines}
    for o in ("u", "v"):
        np.testing.assert_array_equal(lines[f"relative L2 of {o}"].get_ydata(), h[f"rel_l2_{o}"])
    np.testing.assert_array_equal(lines["relative L2"].get_ydata(), h["rel_l2"])
    (c,) = [ln for ln in pa.lines if ln.get_label().startswith("c = ")]
    np.testing.assert_array_equal(c.get_xydata(), np.c_[h["step"], h["param_c"]])
    assert c.get_label() == "c = 1.3" and pa.get_yscale() == "linear"
    assert loss.get_yscale() == err.get_yscale() == "log"
    # against time: a stage line sits at the time of the step it starts at (linear interp.)
    fig = plot.history(run, x="time")
    (loss,) = _panels(fig, "loss")
    xs = sorted(ln.get_xdata()[0] for ln in loss.lines if ln.get_linestyle() in (":", "--"))
    assert xs == [np.interp(10, h["step"], h["time"]), np.interp(30, h["step"], h["time"])]
    assert xs == [1.0, 4.0]


# ---------------------------------------------------------------------- compare / curves


def test_compare_time_bars_span_min_to_max_at_the_median():
    """Time panel: each model's marker at (median time, median error), its horizontal bar
    from the fastest to the slowest seed (asymmetric around the median here).

    catches: the left and right extents of the time bar swapped, the mean time plotted.
    """
    rows = [{"model": "KAN [2,5,1]", "params": 100, "rel_l2": e, "train_time": t}
            for e, t in ((1e-3, 1.0), (2e-3, 2.0), (4e-3, 10.0))]  # fmt: skip
    (ax,) = _panels(plot.compare(rows), "compare time")
    (c,) = ax.containers
    np.testing.assert_allclose(c.lines[0].get_xydata()[0], [2.0, 2e-3], rtol=1e-12)
    bars = [seg for col in c.lines[2] for seg in col.get_segments()]
    horizontal = [s for s in bars if s[0][1] == s[1][1]]
    (h,) = horizontal
    assert sorted(h[:, 0]) == [1.0, 10.0] and h[0, 1] == 2e-3
    vertical = [s for s in bars if s[0][0] == s[1][0]]
    (v,) = vertical
    assert sorted(v[:, 1]) == [1e-3, 4e-3] and v[0, 0] == 2.0


def test_pareto_front_ties_in_cost_keep_only_the_better_model():
    """Two models with the same parameter count: only the more accurate one is on the front,
    whichever is listed first.

    catches: the front ordered by cost alone (the worse model of a tie put on the front when
    listed first).
    """
    rows = [{"model": m, "params": p, "rel_l2": e}
            for m, p, e in (("A", 100, 1e-2), ("B", 100, 1e-3), ("C", 300, 1e-4))]  # fmt: skip
    (ax,) = _panels(plot.compare(rows), "compare params")
    (front,) = [ln for ln in ax.lines if ln.get_label() == "Pareto front"]
    # a post-step line through (100, 1e-3) and (300, 1e-4)
    assert sorted(set(front.get_xdata())) == [100, 300]
    assert 1e-2 not in set(front.get_ydata())
    assert plot._pareto([100, 100, 300], [1e-2, 1e-3, 1e-4]) == [1, 2]


def test_compare_default_metric_is_the_loss_without_test_errors():
    """A study of a problem without a reference has NaN test errors: the default metric is
    the final loss, each model at its median loss.

    catches: rel_l2 used whatever its values (an error: no finite values).
    """
    rows = [{"model": "KAN [2,5,1]", "params": 100, "rel_l2": math.nan, "loss": v}
            for v in (1e-4, 3e-4, 2e-3)]  # fmt: skip
    (ax,) = _panels(plot.compare(rows), "compare params")
    assert ax.get_ylabel() == "final training loss (weighted)"
    (c,) = ax.containers
    np.testing.assert_allclose(c.lines[0].get_xydata()[0], [100, 3e-4], rtol=1e-12)


def test_curves_from_a_comparison_file(tmp_path):
    """``comparison.h5``: one colour per model (the label before `` seed <s>``, brackets and
    spaces kept) in the comparison's order, one line per seed with its recorded values; loss
    and error on log scales, an unknown coefficient on a linear one (it may be negative).

    catches: models told apart by their first word only (KAN [2,5,1] and KAN [2,10,1] merged),
    the coefficient panel on a log scale.
    """
    import h5py

    steps = np.array([0.0, 5, 10])
    hist = {
        ("KAN [2,5,1]", 0): (np.array([1.0, 0.1, 0.01]), np.array([-0.5, 0.1, 0.9])),
        ("KAN [2,5,1]", 1): (np.array([2.0, 0.2, 0.02]), np.array([-0.4, 0.2, 1.0])),
        ("KAN [2,10,1]", 0): (np.array([3.0, 0.3, 0.03]), np.array([-0.3, 0.3, 1.1])),
    }
    path = tmp_path / "comparison.h5"
    with h5py.File(path, "w") as f:
        f.attrs["problem"] = "p"
        # the comparison's own model order (HDF5 lists groups alphabetically: [2,10,1] first)
        labels = [label for label, _ in hist]
        f.create_dataset("rows/model", data=np.array(labels, dtype=h5py.string_dtype()))
        for (label, seed), (loss, c) in hist.items():
            g = f.create_group(f"history/{label} seed {seed}")
            g["step"], g["loss"], g["rel_l2"], g["param_c"] = steps, loss, loss / 2, c
    fig = plot.curves(path)
    (lo,), (er,), (pc,) = (_panels(fig, f"curves {k}") for k in ("loss", "rel_l2", "param_c"))
    assert lo.get_yscale() == er.get_yscale() == "log" and pc.get_yscale() == "linear"
    assert [t.get_text() for t in lo.get_legend().get_texts()] == ["KAN [2,5,1]", "KAN [2,10,1]"]
    colors = [matplotlib.colors.to_hex(ln.get_color()) for ln in lo.lines]
    assert colors[0] == colors[1] != colors[2]  # two seeds of one model, then the other model
    drawn = sorted(tuple(ln.get_ydata()) for ln in pc.lines)
    assert drawn == sorted(tuple(c) for _, c in hist.values())
    drawn = sorted(tuple(ln.get_ydata()) for ln in er.lines)
    assert drawn == sorted(tuple(loss / 2) for loss, _ in hist.values())


def test_sweep_given_slope_line_passes_through_the_centroid_of_the_logs():
    """A recorded slope is drawn as the least-squares line with that slope: through the mean
    of log G and log error, not through the first point.

    catches: the fit line anchored at the first point.
    """
    grids = np.array([4.0, 8, 16, 32])
    err = np.array([1e-2, 2e-3, 1e-4, 9e-6])  # not on one line
    fig = plot.sweep({"grid": grids, "rmse": err, "slope": [-3.0] * 4}, theory=None)
    (fit,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "fit: slope -3.00"]
    lg, le = np.log(grids), np.log(err)
    np.testing.assert_allclose(fit.get_ydata(), np.exp(le.mean() - 3.0 * (lg - lg.mean())),
                               rtol=1e-12)  # fmt: skip
    assert fig.axes[0].get_xscale() == fig.axes[0].get_yscale() == "log"


# ------------------------------------------------------------------ activations / network


def test_activations_ranges_of_a_bare_model_and_of_a_constant_input():
    """A bare model's curves span its whole grid range [-1, 1] (its uniform samples fall
    inside it); a constant input c is shown over [c - 1/2, c + 1/2]; the curve is the edge
    function at those inputs.

    catches: a bare model's curves cut to the samples' range, a constant input shown as one
    point.
    """
    torch.manual_seed(0)
    model = kanpde.KAN([2, 2, 1], grid=3, dtype=torch.float64)
    fig = plot.activations(model, 0)
    for ax in _panels(fig, "edge 0 "):
        xs = ax.lines[0].get_xdata()
        assert (xs[0], xs[-1]) == (-1.0, 1.0)
    x = np.c_[np.linspace(-0.8, 0.6, 30), np.full(30, 0.3)]
    fig = plot.activations(model, 0, x=x)
    for o in range(2):
        (ax,) = _panels(fig, f"edge 0 1 {o}")
        xs, ys = ax.lines[0].get_xydata().T
        assert xs[0] == pytest.approx(-0.2, abs=1e-15) and xs[-1] == pytest.approx(0.8, abs=1e-15)
        pts = torch.as_tensor(np.c_[xs, xs])
        with torch.no_grad():
            np.testing.assert_allclose(ys, model.layers[0].edges(pts)[0][:, 1, o].numpy(),
                                       rtol=1e-12, atol=1e-15)  # fmt: skip
    (ax,) = _panels(fig, "edge 0 0 0")
    assert ax.lines[0].get_xdata()[[0, -1]] == pytest.approx([-0.8, 0.6], abs=1e-15)


def test_network_boxes_are_ordered_by_input_then_output_and_weighted_by_mean_abs_phi():
    """Edge ``i -> o`` of a layer with ``n_out`` outputs sits in box ``b = i * n_out + o`` at
    ``x = (b + 1/2) / (n_in n_out)``, joined to input node ``i`` at ``(i + 1/2) / n_in``; its
    opacity (beta -> 0: linear) is ``mean |phi|`` over the samples relative to the largest.

    catches: boxes ordered by output then input, importance ``|mean phi|`` (an edge whose
    function changes sign looks unimportant).
    """
    torch.manual_seed(1)
    model = kanpde.KAN([2, 3, 1], grid=3, dtype=torch.float64)
    x = np.random.default_rng(2).uniform(-1, 1, size=(200, 2))
    fig = plot.network(model, x=x, beta=1e-9)
    (ax,) = fig.axes
    lines, curves = [c for c in ax.collections if isinstance(c, LineCollection)]
    segs = lines.get_segments()
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    n_in, n_out = 2, 3
    with torch.no_grad():
        phi = model.layers[0].edges(torch.as_tensor(x))[0].numpy()  # (N, n_in, n_out)
    imp = np.abs(phi).mean(0)
    for e, (i, o) in enumerate((i, o) for i in range(n_in) for o in range(n_out)):
        cx = (i * n_out + o + 0.5) / (n_in * n_out)
        start, end = segs[2 * e]
        assert start == pytest.approx(((i + 0.5) / n_in, 0.0)) and end[0] == pytest.approx(cx)
        box = boxes[e]
        assert box.get_x() + box.get_width() / 2 == pytest.approx(cx)
        alpha = curves.get_colors()[e, 3]
        assert alpha == pytest.approx(max(imp[i, o] / imp.max(), 0.04), rel=1e-6)
    # an edge whose function changes sign over the samples: the check above needs |phi|
    assert any(phi[:, i, o].min() < 0 < phi[:, i, o].max() for i in range(2) for o in range(3))
